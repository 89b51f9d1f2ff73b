/*
 * proto_meta: the meta commands, checked in memcached 1.6.18's order
 * (proto_text.c, _meta_flag_preparse) so that a line with several faults
 * gets memcached's reply; then, as for every command, whatever is forwarded
 * verbatim (the key, each flag token) is checked strictly (DESIGN §3).
 */
#include "proto_meta.h"

#include "proto_cmd.h"

#include <limits.h>
#include <string.h>

/* Meta commands' own wording, which differs from command to command. */
#define R_MG_TOO_MANY "CLIENT_ERROR options flags are too long\r\n"
#define R_META_TOO_MANY "CLIENT_ERROR options flags too long\r\n"
#define R_DUP_FLAG "CLIENT_ERROR duplicate flag\r\n"
#define R_INVALID_FLAG "CLIENT_ERROR invalid flag\r\n"
#define R_INVALID_OR_DUP "CLIENT_ERROR invalid or duplicate flag\r\n"
#define R_DECODE_KEY "CLIENT_ERROR error decoding key\r\n"
#define R_BAD_TOKEN "CLIENT_ERROR bad token in command line format\r\n"
#define R_M_LENGTH "CLIENT_ERROR incorrect length for M token\r\n"
#define R_BAD_INITIAL "CLIENT_ERROR invalid numeric initial value\r\n"
#define R_BAD_DELTA_VALUE "CLIENT_ERROR invalid numeric delta value\r\n"
#define R_OPAQUE_LONG "CLIENT_ERROR opaque token too long\r\n"
#define R_MS_MODE "CLIENT_ERROR invalid mode for ms M token\r\n"
#define R_MA_MODE "CLIENT_ERROR invalid mode for ma M token\r\n"

/* A meta command may have 19 tokens (memcached counts 20: it adds one for
 * the end of the line), and an opaque token up to 32 bytes, its O included. */
#define PM_MAX_TOKENS 19
#define PM_OPAQUE_MAX 32

/* A base64 digit's value; '=' counts as 0 (and as padding); -1: skipped. */
static int pm_b64_value(unsigned char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '+')
		return 62;
	if (c == '/')
		return 63;
	if (c == '=')
		return 0;
	return -1;
}

size_t pc_base64_decode(const char *in, size_t len, unsigned char *out)
{
	size_t digits = 0, n = 0;
	unsigned group = 0, pad = 0;
	uint32_t bits = 0;

	for (size_t i = 0; i < len; i++)
		digits += pm_b64_value((unsigned char)in[i]) >= 0;
	if (digits == 0 || digits % 4)
		return 0;
	for (size_t i = 0; i < len; i++) {
		int v = pm_b64_value((unsigned char)in[i]);
		if (v < 0)
			continue;
		pad += in[i] == '=';
		bits = bits << 6 | (uint32_t)v;
		if (++group < 4)
			continue;
		/* A full group: three bytes, less one per '=' in it; a group with
		 * padding ends the key, whatever follows. */
		if (pad > 2)
			return 0;
		for (unsigned b = 0; b < 3 - pad; b++, n++)
			if (out)
				out[n] = (unsigned char)(bits >> (16 - 8 * b));
		if (pad)
			break;
		group = 0;
		bits = 0;
	}
	return n;
}

/*
 * The flags of a meta command, tokens first..nt-1 (at most PC_MFLAGS_MAX,
 * for the caller has checked the token count), checked as memcached's
 * _meta_flag_preparse checks them and kept in p->mflags. Returns NULL, or
 * the error memcached gives: a repeated or unknown flag stops the check at
 * once; other faults are noted and the last one noted is reported. *mode
 * gets the M flag's mode byte, or 0.
 */
static const char *pm_flags(struct pc_parser *p, const struct pt_line *l, size_t first, char *mode)
{
	const struct pt_tok *key = &l->t[1];
	bool seen[127] = {false};
	bool bad = false;
	const char *err = R_BAD_FORMAT;

	*mode = 0;
	for (size_t i = first; i < l->nt; i++) {
		const struct pt_tok *f = &l->t[i];
		struct pt_tok arg = {f->p + 1, f->len - 1};
		unsigned char o = (unsigned char)f->p[0];
		uint64_t u;
		int32_t n;

		if (o >= 127 || seen[o])
			return R_DUP_FLAG;
		seen[o] = true;
		switch (o) {
		case 'b':
			if (!pc_base64_decode(key->p, key->len, NULL)) {
				err = R_DECODE_KEY;
				bad = true;
			}
			break;
		case 'N':
		case 'T':
		case 'R':
			if (!pt_int32(&arg, &n)) {
				err = R_BAD_TOKEN;
				bad = true;
			}
			break;
		case 'l':
		case 'O':
		case 'P':
		case 'L':
		case 'k':
		case 's':
		case 't':
		case 'c':
		case 'f':
		case 'v':
		case 'h':
		case 'u':
		case 'q':
		case 'I':
			break;
		case 'F':
			/* memcached notes the fault but keeps the earlier wording. */
			if (!pt_unsigned(&arg, false, &u))
				bad = true;
			break;
		case 'C':
			if (!pt_uint64(&arg, &u)) {
				err = R_BAD_TOKEN;
				bad = true;
			}
			break;
		case 'M':
			if (f->len != 2) {
				err = R_M_LENGTH;
				bad = true;
			} else {
				*mode = f->p[1];
			}
			break;
		case 'J':
			if (!pt_uint64(&arg, &u)) {
				err = R_BAD_INITIAL;
				bad = true;
			}
			break;
		case 'D':
			if (!pt_uint64(&arg, &u)) {
				err = R_BAD_DELTA_VALUE;
				bad = true;
			}
			break;
		default:
			return R_INVALID_FLAG;
		}
		p->mflags[i - first].flag = (char)o;
		p->mflags[i - first].arg = arg.p;
		p->mflags[i - first].arglen = arg.len;
	}
	return bad ? err : NULL;
}

static bool pm_opaque_too_long(const struct pc_parser *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (p->mflags[i].flag == 'O' && p->mflags[i].arglen + 1 > PM_OPAQUE_MAX)
			return true;
	return false;
}

/* Flag tokens are forwarded as sent: no control byte may be in them. */
static bool pm_flags_clean(const struct pc_parser *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		for (size_t j = 0; j < p->mflags[i].arglen; j++) {
			unsigned char c = (unsigned char)p->mflags[i].arg[j];
			if (c <= 0x20 || c == 0x7f)
				return false;
		}
	return true;
}

static bool pm_mode_in(char mode, const char *modes)
{
	return mode == 0 || strchr(modes, mode) != NULL;
}

/* me <key> [b]: memcached reads nothing else from the line. */
static enum pc_status pm_parse_me(struct pc_parser *p, const struct pt_line *l, struct pc_cmd *cmd)
{
	const struct pt_tok *t = l->t;
	bool b64;

	if (l->nt < 2 || t[1].len > PC_KEY_MAX)
		return pcmd_reply(cmd, R_BAD_FORMAT, true);
	b64 = l->nt >= 3 && pt_is(&t[2], "b");
	if ((b64 && !pc_base64_decode(t[1].p, t[1].len, NULL)) || !pt_line_key_ok(l, &t[1]))
		return pcmd_reply(cmd, R_BAD_FORMAT, true);
	cmd->type = PC_ME;
	pcmd_set_key(p, cmd, &t[1]);
	cmd->key_base64 = b64;
	return PC_COMMAND;
}

/*
 * mg|md|ma <key> <flag>*, ms <key> <datalen> <flag>*, mn, me. Meta errors are
 * always answered (q hides only nominal replies). An ms refused after its
 * length was read has its data block discarded, as memcached does; before
 * that, the block is parsed as commands. Returns PC_NEED_MORE for a good
 * ms: its data block comes next.
 */
enum pc_status pm_parse(struct pc_parser *p, const struct pt_line *l, struct pc_cmd *cmd)
{
	const struct pt_tok *t = l->t;
	enum pc_type type;
	size_t first = 2, n;
	int32_t v = 0;
	char mode;
	const char *err;

	switch (t[0].p[1]) {
	case 'n':
		cmd->type = PC_MN;
		return PC_COMMAND;
	case 'e':
		return pm_parse_me(p, l, cmd);
	case 'g':
		type = PC_MG;
		break;
	case 's':
		type = PC_MS;
		break;
	case 'd':
		type = PC_MD;
		break;
	case 'a':
		type = PC_MA;
		break;
	default:
		return pcmd_reply(cmd, R_ERROR, true);
	}
	if (l->nt < 2)
		return pcmd_reply(cmd, R_ERROR, true);
	if (t[1].len > PC_KEY_MAX || (type == PC_MS && l->nt == 2))
		return pcmd_reply(cmd, R_BAD_FORMAT, true);
	if (l->nt > PM_MAX_TOKENS)
		return pcmd_reply(cmd, type == PC_MG ? R_MG_TOO_MANY : R_META_TOO_MANY, true);
	if (type == PC_MS) {
		if (!pt_int32(&t[2], &v) || v < 0 || v > INT32_MAX - 2)
			return pcmd_reply(cmd, R_BAD_FORMAT, true);
		first = 3;
	}
	n = l->nt - first;
	err = pm_flags(p, l, first, &mode);
	if (err && (type == PC_MD || type == PC_MA))
		err = R_INVALID_OR_DUP;
	if (!err) {
		/* The order of these differs by command, as in memcached. (memcached
		 * checks an ma's opaque only after applying the delta, and answers
		 * a non-numeric value's error instead; refusing first applies
		 * nothing, which is the saner of the two.) */
		bool opaque = pm_opaque_too_long(p, n);
		if (type == PC_MS && !pm_mode_in(mode, "EAPRS"))
			err = R_MS_MODE;
		else if (type == PC_MA && !pm_mode_in(mode, "I+D-"))
			err = R_MA_MODE;
		else if (opaque)
			err = R_OPAQUE_LONG;
	}
	if (!err && type == PC_MS && (size_t)v > p->max_value) {
		p->swallow = (uint64_t)v + 2;
		cmd->too_large = true;
		/* memcached drops the old value of an ms it cannot store. */
		if (pt_line_key_ok(l, &t[1]) && pm_flags_clean(p, n)) {
			pcmd_set_key(p, cmd, &t[1]);
			for (size_t i = 0; i < n; i++)
				cmd->key_base64 |= p->mflags[i].flag == 'b';
		}
		return pcmd_reply(cmd, R_TOO_LARGE, false);
	}
	if (!err && (!pt_line_key_ok(l, &t[1]) || !pm_flags_clean(p, n)))
		err = R_BAD_FORMAT;
	if (err) {
		if (type == PC_MS)
			p->swallow = (uint64_t)v + 2;
		return pcmd_reply(cmd, err, true);
	}
	cmd->type = type;
	pcmd_set_key(p, cmd, &t[1]);
	cmd->mflags = p->mflags;
	cmd->nmflags = (uint32_t)n;
	for (size_t i = 0; i < n; i++)
		cmd->key_base64 |= p->mflags[i].flag == 'b';
	if (type != PC_MS)
		return PC_COMMAND;
	cmd->datalen = (size_t)v;
	return PC_NEED_MORE;
}
