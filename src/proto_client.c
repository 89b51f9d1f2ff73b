/*
 * proto_client: memcached text protocol requests, parsed as memcached 1.6.18
 * parses them (proto_text.c): lines end at '\n', an optional '\r' before it;
 * tokens split on spaces only; the command word matched exactly; a line's
 * faults checked in memcached's order, so that a line with several gets
 * memcached's reply. On top of that, whatever may be forwarded verbatim --
 * keys and meta flag tokens -- is checked strictly (DESIGN §3), after
 * memcached's own checks, so that only clean parts can reach an upstream.
 *
 * A command with a data block (set & co., ms) is returned only once the whole
 * block is buffered; until then p->need tells the caller how much to hold. A
 * block that cannot be taken (too large, or its command refused after
 * memcached would have read it) is discarded as it arrives (p->swallow).
 */
#include "proto_client.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#define R_ERROR "ERROR\r\n"
#define R_BAD_FORMAT "CLIENT_ERROR bad command line format\r\n"
#define R_BAD_CHUNK "CLIENT_ERROR bad data chunk\r\n"
#define R_TOO_LONG "CLIENT_ERROR line too long\r\n"
#define R_UNSUPPORTED "SERVER_ERROR not supported\r\n"
#define R_TOO_MANY_KEYS "CLIENT_ERROR too many keys\r\n"
#define R_TOO_LARGE "SERVER_ERROR object too large for cache\r\n"
#define R_BAD_EXPTIME "CLIENT_ERROR invalid exptime argument\r\n"
#define R_BAD_DELTA "CLIENT_ERROR invalid numeric delta argument\r\n"
#define R_DELETE_USAGE "CLIENT_ERROR bad command line format.  Usage: delete <key> [noreply]\r\n"
#define R_END "END\r\n"
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

/* memcached cuts at most 23 tokens from a line before the command sees it;
 * the last of them decides the HTTP rule below. */
#define MAX_TOKENS 23
/* A meta command may have 19 tokens (memcached counts 20: it adds one for
 * the end of the line), and an opaque token up to 32 bytes, its O included. */
#define META_MAX_TOKENS 19
#define META_OPAQUE_MAX 32

void pc_init(struct pc_parser *p, size_t max_line)
{
	memset(p, 0, sizeof(*p));
	p->max_line = max_line;
	p->max_keys = UINT32_MAX;
	p->max_value = PC_VALUE_MAX_DEFAULT;
}

void pc_free(struct pc_parser *p)
{
	free(p->keys);
	p->keys = NULL;
	p->kcap = 0;
}

const char *pc_type_word(enum pc_type type)
{
	switch (type) {
	case PC_GET:
		return "get";
	case PC_GETS:
		return "gets";
	case PC_VERSION:
		return "version";
	case PC_QUIT:
		return "quit";
	case PC_STATS:
		return "stats";
	case PC_REPLY:
	case PC_SILENT:
		return NULL;
	case PC_SET:
		return "set";
	case PC_ADD:
		return "add";
	case PC_REPLACE:
		return "replace";
	case PC_APPEND:
		return "append";
	case PC_PREPEND:
		return "prepend";
	case PC_CAS:
		return "cas";
	case PC_DELETE:
		return "delete";
	case PC_INCR:
		return "incr";
	case PC_DECR:
		return "decr";
	case PC_TOUCH:
		return "touch";
	case PC_GAT:
		return "gat";
	case PC_GATS:
		return "gats";
	case PC_VERBOSITY:
		return "verbosity";
	case PC_FLUSH_ALL:
		return "flush_all";
	case PC_MG:
		return "mg";
	case PC_MS:
		return "ms";
	case PC_MD:
		return "md";
	case PC_MA:
		return "ma";
	case PC_MN:
		return "mn";
	case PC_ME:
		return "me";
	}
	return NULL;
}

/* A base64 digit's value; '=' counts as 0 (and as padding); -1: skipped. */
static int b64_value(unsigned char c)
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
		digits += b64_value((unsigned char)in[i]) >= 0;
	if (digits == 0 || digits % 4)
		return 0;
	for (size_t i = 0; i < len; i++) {
		int v = b64_value((unsigned char)in[i]);
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

struct tok {
	const char *p;
	size_t len;
};

/* The next token of [*s, e), split on runs of spaces; false at the end. */
static bool next_token(const char **s, const char *e, struct tok *t)
{
	const char *p = *s;

	while (p < e && *p == ' ')
		p++;
	if (p == e)
		return false;
	t->p = p;
	while (p < e && *p != ' ')
		p++;
	t->len = (size_t)(p - t->p);
	*s = p;
	return true;
}

/* Up to max tokens of [s, e); returns the count. */
static size_t tokenize(const char *s, const char *e, struct tok *t, size_t max)
{
	size_t n = 0;

	while (n < max && next_token(&s, e, &t[n]))
		n++;
	return n;
}

static bool tok_is(const struct tok *t, const char *word)
{
	size_t n = strlen(word);
	return t->len == n && memcmp(t->p, word, n) == 0;
}

/*
 * memcached's safe_strtol / safe_strtoul / safe_strtoull: libc strto* (so a
 * sign, leading blanks and zeros pass), the number may be followed only by
 * white space, and the result is stored in the narrower type as is.
 */
/* A NUL-terminated copy for strto*: on the stack, or (for a number padded
 * with many zeros, which memcached accepts) on the heap. */
static char *tok_copy(const struct tok *t, char *buf, size_t cap)
{
	char *p = t->len < cap ? buf : malloc(t->len + 1);

	if (!p || t->len == 0) {
		if (p && p != buf)
			free(p);
		return NULL;
	}
	memcpy(p, t->p, t->len);
	p[t->len] = '\0';
	return p;
}

static void tok_done(char *p, char *buf)
{
	if (p != buf)
		free(p);
}

static bool num_end_ok(const char *buf, const char *end)
{
	return end != buf && (*end == '\0' || *end == ' ' || (*end >= '\t' && *end <= '\r'));
}

static bool tok_int32(const struct tok *t, int32_t *out)
{
	char buf[64], *p = tok_copy(t, buf, sizeof(buf)), *end;
	long v;
	bool ok;

	if (!p)
		return false;
	errno = 0;
	v = strtol(p, &end, 10);
	ok = errno != ERANGE && num_end_ok(p, end);
	tok_done(p, buf);
	if (ok)
		*out = (int32_t)v;
	return ok;
}

/* safe_strtoul (wide false: unsigned long) or safe_strtoull. A value so
 * large that it is negative as a signed number is refused if the token has
 * a '-' anywhere: strto* accepts "-1" and wraps it around. */
static bool tok_unsigned(const struct tok *t, bool wide, uint64_t *out)
{
	char buf[64], *p = tok_copy(t, buf, sizeof(buf)), *end;
	uint64_t v;
	bool neg, ok;

	if (!p)
		return false;
	errno = 0;
	if (wide) {
		unsigned long long u = strtoull(p, &end, 10);
		v = u;
		neg = (long long)u < 0;
	} else {
		unsigned long u = strtoul(p, &end, 10);
		v = u;
		neg = (long)u < 0;
	}
	ok = errno != ERANGE && num_end_ok(p, end) && !(neg && strchr(p, '-'));
	tok_done(p, buf);
	if (ok)
		*out = v;
	return ok;
}

static bool tok_uint32(const struct tok *t, uint32_t *out)
{
	uint64_t v;

	if (!tok_unsigned(t, false, &v))
		return false;
	*out = (uint32_t)v;
	return true;
}

static bool tok_uint64(const struct tok *t, uint64_t *out)
{
	return tok_unsigned(t, true, out);
}

static enum pc_status reply(struct pc_cmd *cmd, const char *text, bool client_error)
{
	cmd->type = PC_REPLY;
	cmd->reply = text;
	cmd->client_error = client_error;
	return PC_COMMAND;
}

/* A client's mistake, answered unless the command said noreply. */
static enum pc_status fail(struct pc_cmd *cmd, const char *text, bool noreply)
{
	if (noreply) {
		cmd->type = PC_SILENT;
		cmd->client_error = true;
		return PC_COMMAND;
	}
	return reply(cmd, text, true);
}

static enum pc_status refuse(struct pc_cmd *cmd, bool noreply)
{
	cmd->unsupported = true;
	if (noreply) {
		cmd->type = PC_SILENT;
		return PC_COMMAND;
	}
	return reply(cmd, R_UNSUPPORTED, false);
}

static bool key_ok(const char *k, size_t len)
{
	if (len == 0 || len > PC_KEY_MAX)
		return false;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)k[i];
		if (c <= 0x20 || c == 0x7f)
			return false;
	}
	return true;
}

/* A command line, cut into tokens as memcached cuts it: up to its first NUL,
 * for memcached sees the line as a C string. */
struct line {
	const char *p; /* without its line end */
	size_t len;
	const char *nul; /* the first NUL, or NULL */
	struct tok t[MAX_TOKENS];
	size_t nt;
};

/* The key token k as a key that may be forwarded: clean, and not cut short
 * by a NUL (memcached would take the bytes before the NUL as the key). */
static bool line_key_ok(const struct line *l, const struct tok *k)
{
	return key_ok(k->p, k->len) && !(l->nul && k->p + k->len == l->nul);
}

static void set_key(struct pc_parser *p, struct pc_cmd *cmd, const struct tok *k)
{
	p->key1.p = k->p;
	p->key1.len = k->len;
	cmd->keys = &p->key1;
	cmd->nkeys = 1;
}

static bool last_is_noreply(const struct line *l)
{
	return tok_is(&l->t[l->nt - 1], "noreply");
}

/* Keys of a get/gets/gat/gats: every token of [s, e), the whole line past
 * any NUL: a key memcached would truncate is refused. */
static enum pc_status parse_keys(struct pc_parser *p, const char *s, const char *e,
                                 struct pc_cmd *cmd)
{
	uint32_t n = 0;
	bool too_many = false;
	struct tok k;

	while (next_token(&s, e, &k)) {
		if (!key_ok(k.p, k.len))
			return reply(cmd, R_BAD_FORMAT, true);
		/* Past the limit, keys are still checked but no longer kept. */
		if (n >= p->max_keys) {
			too_many = true;
			continue;
		}
		if (n == p->kcap) {
			uint32_t cap = p->kcap ? p->kcap * 2 : 8;
			struct pc_key *nk = realloc(p->keys, cap * sizeof(*nk));
			if (!nk)
				return reply(cmd, "SERVER_ERROR out of memory\r\n", false);
			p->keys = nk;
			p->kcap = cap;
		}
		p->keys[n].p = k.p;
		p->keys[n].len = k.len;
		n++;
	}
	if (too_many) {
		cmd->too_many_keys = true;
		return reply(cmd, R_TOO_MANY_KEYS, true);
	}
	cmd->keys = p->keys;
	cmd->nkeys = n;
	return PC_COMMAND;
}

/* gat|gats <exptime> <key>*: the exptime is checked first, as memcached
 * does; without keys memcached answers an empty result. */
static enum pc_status parse_gat(struct pc_parser *p, const struct line *l, enum pc_type type,
                                struct pc_cmd *cmd)
{
	const struct tok *t = l->t;
	int32_t exptime;

	if (l->nt < 2)
		return reply(cmd, R_ERROR, true);
	if (!tok_int32(&t[1], &exptime))
		return reply(cmd, R_BAD_EXPTIME, true);
	parse_keys(p, t[1].p + t[1].len, l->p + l->len, cmd);
	if (cmd->type == PC_REPLY)
		return PC_COMMAND;
	if (cmd->nkeys == 0) {
		cmd->keys = NULL;
		return reply(cmd, R_END, false);
	}
	cmd->type = type;
	cmd->exptime = exptime;
	return PC_COMMAND;
}

/*
 * <set|add|replace|append|prepend> <key> <flags> <exptime> <bytes> [noreply]
 * cas <key> <flags> <exptime> <bytes> <cas> [noreply]
 * Returns PC_NEED_MORE when the line is good: its data block comes next.
 */
static enum pc_status parse_storage(struct pc_parser *p, const struct line *l, enum pc_type type,
                                    struct pc_cmd *cmd)
{
	const struct tok *t = l->t;
	size_t want = type == PC_CAS ? 6 : 5;
	bool noreply;
	uint32_t flags;
	int32_t exptime, v;
	uint64_t cas = 0;

	if (l->nt != want && l->nt != want + 1)
		return reply(cmd, R_ERROR, true);
	/* memcached looks at the last token whatever the count ("set k 0 0
	 * noreply" is silent too). */
	noreply = last_is_noreply(l);
	/* A bad line discards nothing: the data block is parsed as commands,
	 * as memcached does. */
	if (t[1].len > PC_KEY_MAX || !tok_uint32(&t[2], &flags) || !tok_int32(&t[3], &exptime) ||
	    !tok_int32(&t[4], &v) || (type == PC_CAS && !tok_uint64(&t[5], &cas)) || v < 0 ||
	    v > INT32_MAX - 2)
		return fail(cmd, R_BAD_FORMAT, noreply);
	if ((size_t)v > p->max_value) {
		p->swallow = (uint64_t)v + 2;
		cmd->too_large = true;
		/* memcached drops the old value of a set it cannot store. */
		if (type == PC_SET && line_key_ok(l, &t[1]))
			set_key(p, cmd, &t[1]);
		if (noreply) {
			cmd->type = PC_SILENT;
			return PC_COMMAND;
		}
		return reply(cmd, R_TOO_LARGE, false);
	}
	/* A key memcached would take: its block is read (and dropped) too. */
	if (!line_key_ok(l, &t[1])) {
		p->swallow = (uint64_t)v + 2;
		return fail(cmd, R_BAD_FORMAT, noreply);
	}
	cmd->type = type;
	set_key(p, cmd, &t[1]);
	cmd->flags = flags;
	cmd->exptime = exptime;
	cmd->cas = cas;
	cmd->noreply = noreply;
	cmd->datalen = (size_t)v;
	return PC_NEED_MORE;
}

/* delete <key> [0] [noreply] */
static enum pc_status parse_delete(struct pc_parser *p, const struct line *l, struct pc_cmd *cmd)
{
	const struct tok *t = l->t;
	bool noreply = false;

	if (l->nt < 2 || l->nt > 4)
		return reply(cmd, R_ERROR, true);
	if (l->nt > 2) {
		bool zero = tok_is(&t[2], "0");
		noreply = last_is_noreply(l);
		if (!(l->nt == 3 && (zero || noreply)) && !(l->nt == 4 && zero && noreply))
			return fail(cmd, R_DELETE_USAGE, noreply);
	}
	if (!line_key_ok(l, &t[1]))
		return fail(cmd, R_BAD_FORMAT, noreply);
	cmd->type = PC_DELETE;
	set_key(p, cmd, &t[1]);
	cmd->noreply = noreply;
	return PC_COMMAND;
}

/* incr|decr <key> <delta> [noreply] */
static enum pc_status parse_arith(struct pc_parser *p, const struct line *l, enum pc_type type,
                                  struct pc_cmd *cmd)
{
	const struct tok *t = l->t;
	bool noreply;
	uint64_t delta;

	if (l->nt != 3 && l->nt != 4)
		return reply(cmd, R_ERROR, true);
	noreply = last_is_noreply(l);
	if (t[1].len > PC_KEY_MAX)
		return fail(cmd, R_BAD_FORMAT, noreply);
	if (!tok_uint64(&t[2], &delta))
		return fail(cmd, R_BAD_DELTA, noreply);
	if (!line_key_ok(l, &t[1]))
		return fail(cmd, R_BAD_FORMAT, noreply);
	cmd->type = type;
	set_key(p, cmd, &t[1]);
	cmd->delta = delta;
	cmd->noreply = noreply;
	return PC_COMMAND;
}

/* touch <key> <exptime> [noreply] */
static enum pc_status parse_touch(struct pc_parser *p, const struct line *l, struct pc_cmd *cmd)
{
	const struct tok *t = l->t;
	bool noreply;
	int32_t exptime;

	if (l->nt != 3 && l->nt != 4)
		return reply(cmd, R_ERROR, true);
	noreply = last_is_noreply(l);
	if (t[1].len > PC_KEY_MAX)
		return fail(cmd, R_BAD_FORMAT, noreply);
	if (!tok_int32(&t[2], &exptime))
		return fail(cmd, R_BAD_EXPTIME, noreply);
	if (!line_key_ok(l, &t[1]))
		return fail(cmd, R_BAD_FORMAT, noreply);
	cmd->type = PC_TOUCH;
	set_key(p, cmd, &t[1]);
	cmd->exptime = exptime;
	cmd->noreply = noreply;
	return PC_COMMAND;
}

/* verbosity <level> [noreply] */
static enum pc_status parse_verbosity(const struct line *l, struct pc_cmd *cmd)
{
	bool noreply;
	uint32_t level;

	if (l->nt != 2 && l->nt != 3)
		return reply(cmd, R_ERROR, true);
	noreply = last_is_noreply(l);
	if (!tok_uint32(&l->t[1], &level))
		return fail(cmd, R_BAD_FORMAT, noreply);
	cmd->type = PC_VERBOSITY;
	cmd->level = level;
	cmd->noreply = noreply;
	return PC_COMMAND;
}

/* flush_all [delay] [noreply]: any token but a final noreply is the delay. */
static enum pc_status parse_flush_all(const struct line *l, struct pc_cmd *cmd)
{
	bool noreply;
	int32_t delay = 0;

	if (l->nt > 3)
		return reply(cmd, R_ERROR, true);
	noreply = last_is_noreply(l);
	if (l->nt != (noreply ? 2u : 1u)) {
		if (!tok_int32(&l->t[1], &delay))
			return fail(cmd, R_BAD_EXPTIME, noreply);
		cmd->has_exptime = true;
	}
	cmd->type = PC_FLUSH_ALL;
	cmd->exptime = delay;
	cmd->noreply = noreply;
	return PC_COMMAND;
}

/*
 * The flags of a meta command, tokens first..nt-1 (at most PC_MFLAGS_MAX,
 * for the caller has checked the token count), checked as memcached's
 * _meta_flag_preparse checks them and kept in p->mflags. Returns NULL, or
 * the error memcached gives: a repeated or unknown flag stops the check at
 * once; other faults are noted and the last one noted is reported. *mode
 * gets the M flag's mode byte, or 0.
 */
static const char *meta_flags(struct pc_parser *p, const struct line *l, size_t first, char *mode)
{
	const struct tok *key = &l->t[1];
	bool seen[127] = {false};
	bool bad = false;
	const char *err = R_BAD_FORMAT;

	*mode = 0;
	for (size_t i = first; i < l->nt; i++) {
		const struct tok *f = &l->t[i];
		struct tok arg = {f->p + 1, f->len - 1};
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
			if (!tok_int32(&arg, &n)) {
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
			if (!tok_unsigned(&arg, false, &u))
				bad = true;
			break;
		case 'C':
			if (!tok_uint64(&arg, &u)) {
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
			if (!tok_uint64(&arg, &u)) {
				err = R_BAD_INITIAL;
				bad = true;
			}
			break;
		case 'D':
			if (!tok_uint64(&arg, &u)) {
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

static bool meta_opaque_too_long(const struct pc_parser *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (p->mflags[i].flag == 'O' && p->mflags[i].arglen + 1 > META_OPAQUE_MAX)
			return true;
	return false;
}

/* Flag tokens are forwarded as sent: no control byte may be in them. */
static bool meta_flags_clean(const struct pc_parser *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		for (size_t j = 0; j < p->mflags[i].arglen; j++) {
			unsigned char c = (unsigned char)p->mflags[i].arg[j];
			if (c <= 0x20 || c == 0x7f)
				return false;
		}
	return true;
}

static bool mode_in(char mode, const char *modes)
{
	return mode == 0 || strchr(modes, mode) != NULL;
}

/* me <key> [b]: memcached reads nothing else from the line. */
static enum pc_status parse_me(struct pc_parser *p, const struct line *l, struct pc_cmd *cmd)
{
	const struct tok *t = l->t;
	bool b64;

	if (l->nt < 2 || t[1].len > PC_KEY_MAX)
		return reply(cmd, R_BAD_FORMAT, true);
	b64 = l->nt >= 3 && tok_is(&t[2], "b");
	if ((b64 && !pc_base64_decode(t[1].p, t[1].len, NULL)) || !line_key_ok(l, &t[1]))
		return reply(cmd, R_BAD_FORMAT, true);
	cmd->type = PC_ME;
	set_key(p, cmd, &t[1]);
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
static enum pc_status parse_meta(struct pc_parser *p, const struct line *l, struct pc_cmd *cmd)
{
	const struct tok *t = l->t;
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
		return parse_me(p, l, cmd);
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
		return reply(cmd, R_ERROR, true);
	}
	if (l->nt < 2)
		return reply(cmd, R_ERROR, true);
	if (t[1].len > PC_KEY_MAX || (type == PC_MS && l->nt == 2))
		return reply(cmd, R_BAD_FORMAT, true);
	if (l->nt > META_MAX_TOKENS)
		return reply(cmd, type == PC_MG ? R_MG_TOO_MANY : R_META_TOO_MANY, true);
	if (type == PC_MS) {
		if (!tok_int32(&t[2], &v) || v < 0 || v > INT32_MAX - 2)
			return reply(cmd, R_BAD_FORMAT, true);
		first = 3;
	}
	n = l->nt - first;
	err = meta_flags(p, l, first, &mode);
	if (err && (type == PC_MD || type == PC_MA))
		err = R_INVALID_OR_DUP;
	if (!err) {
		/* The order of these differs by command, as in memcached. (memcached
		 * checks an ma's opaque only after applying the delta, and answers
		 * a non-numeric value's error instead; refusing first applies
		 * nothing, which is the saner of the two.) */
		bool opaque = meta_opaque_too_long(p, n);
		if (type == PC_MS && !mode_in(mode, "EAPRS"))
			err = R_MS_MODE;
		else if (type == PC_MA && !mode_in(mode, "I+D-"))
			err = R_MA_MODE;
		else if (opaque)
			err = R_OPAQUE_LONG;
	}
	if (!err && type == PC_MS && (size_t)v > p->max_value) {
		p->swallow = (uint64_t)v + 2;
		cmd->too_large = true;
		/* memcached drops the old value of an ms it cannot store. */
		if (line_key_ok(l, &t[1]) && meta_flags_clean(p, n)) {
			set_key(p, cmd, &t[1]);
			for (size_t i = 0; i < n; i++)
				cmd->key_base64 |= p->mflags[i].flag == 'b';
		}
		return reply(cmd, R_TOO_LARGE, false);
	}
	if (!err && (!line_key_ok(l, &t[1]) || !meta_flags_clean(p, n)))
		err = R_BAD_FORMAT;
	if (err) {
		if (type == PC_MS)
			p->swallow = (uint64_t)v + 2;
		return reply(cmd, err, true);
	}
	cmd->type = type;
	set_key(p, cmd, &t[1]);
	cmd->mflags = p->mflags;
	cmd->nmflags = (uint32_t)n;
	for (size_t i = 0; i < n; i++)
		cmd->key_base64 |= p->mflags[i].flag == 'b';
	if (type != PC_MS)
		return PC_COMMAND;
	cmd->datalen = (size_t)v;
	return PC_NEED_MORE;
}

/* The command words parsed here (meta commands aside), and what they are. */
static const struct {
	const char *word;
	enum pc_type type;
} commands[] = {
    {"get", PC_GET},
    {"gets", PC_GETS},
    {"bget", PC_GET}, /* memcached's undocumented alias */
    {"set", PC_SET},
    {"delete", PC_DELETE},
    {"version", PC_VERSION},
    {"quit", PC_QUIT},
    {"stats", PC_STATS},
    {"add", PC_ADD},
    {"replace", PC_REPLACE},
    {"append", PC_APPEND},
    {"prepend", PC_PREPEND},
    {"cas", PC_CAS},
    {"incr", PC_INCR},
    {"decr", PC_DECR},
    {"touch", PC_TOUCH},
    {"gat", PC_GAT},
    {"gats", PC_GATS},
    {"verbosity", PC_VERBOSITY},
    {"flush_all", PC_FLUSH_ALL},
};

/*
 * Every other word memcached 1.6 (as Debian builds it) knows. Those that
 * honour noreply stay silent with it, but only where memcached would accept
 * the line's token count (tokens counted with the command word); the others
 * always answer.
 */
static const struct {
	const char *word;
	uint8_t min, max; /* token counts accepting noreply; 0: never silent */
} refused[] = {
    {"cache_memlimit", 3, 3}, {"shutdown", 0, 0}, {"slabs", 0, 0},
    {"lru_crawler", 0, 0},    {"lru", 0, 0},      {"watch", 0, 0},
    {"refresh_certs", 0, 0},
};

static enum pc_status parse_command(struct pc_parser *p, const struct line *l, enum pc_type type,
                                    struct pc_cmd *cmd)
{
	const struct tok *t = l->t;

	switch (type) {
	case PC_GET:
	case PC_GETS:
		if (l->nt < 2)
			return reply(cmd, R_ERROR, true);
		cmd->type = type;
		return parse_keys(p, t[0].p + t[0].len, l->p + l->len, cmd);
	case PC_VERSION:
	case PC_QUIT:
		cmd->type = type;
		return PC_COMMAND;
	case PC_STATS:
		cmd->type = PC_STATS;
		if (l->nt > 1) {
			const char *e = l->nul ? l->nul : l->p + l->len;
			cmd->args = t[1].p;
			cmd->argslen = (size_t)(e - t[1].p);
		}
		return PC_COMMAND;
	case PC_SET:
	case PC_ADD:
	case PC_REPLACE:
	case PC_APPEND:
	case PC_PREPEND:
	case PC_CAS:
		return parse_storage(p, l, type, cmd);
	case PC_DELETE:
		return parse_delete(p, l, cmd);
	case PC_INCR:
	case PC_DECR:
		return parse_arith(p, l, type, cmd);
	case PC_TOUCH:
		return parse_touch(p, l, cmd);
	case PC_GAT:
	case PC_GATS:
		return parse_gat(p, l, type, cmd);
	case PC_VERBOSITY:
		return parse_verbosity(l, cmd);
	case PC_FLUSH_ALL:
		return parse_flush_all(l, cmd);
	default:
		return reply(cmd, R_ERROR, true);
	}
}

/* One command line, without its line end. PC_NEED_MORE: a good storage or
 * ms line, whose data block (cmd->datalen bytes and CRLF) comes next. */
static enum pc_status parse_line(struct pc_parser *p, const char *line, size_t len,
                                 struct pc_cmd *cmd)
{
	struct line l;
	const struct tok *t = l.t;

	l.p = line;
	l.len = len;
	l.nul = memchr(line, '\0', len);
	l.nt = tokenize(line, l.nul ? l.nul : line + len, l.t, MAX_TOKENS);
	if (l.nt == 0 || t[0].len < 2)
		return reply(cmd, R_ERROR, true);
	/* memcached dispatches every two-byte word starting with m as meta. */
	if (t[0].len == 2 && t[0].p[0] == 'm')
		return parse_meta(p, &l, cmd);
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		if (tok_is(&t[0], commands[i].word))
			return parse_command(p, &l, commands[i].type, cmd);
	for (size_t i = 0; i < sizeof(refused) / sizeof(refused[0]); i++)
		if (tok_is(&t[0], refused[i].word))
			return refuse(cmd, refused[i].min && l.nt >= refused[i].min &&
			                       l.nt <= refused[i].max && last_is_noreply(&l));
	/* An HTTP request line: memcached hangs up without a word, but only for
	 * words outside the first letters it dispatches on. */
	if (!strchr("gsacidt", t[0].p[0]) && !(t[0].len == 2 && t[0].p[0] == 'm') &&
	    t[l.nt - 1].len >= 5 && memcmp(t[l.nt - 1].p, "HTTP/", 5) == 0) {
		cmd->client_error = true;
		cmd->why = "HTTP request";
		return PC_CLOSE;
	}
	return reply(cmd, R_ERROR, true);
}

/* The start of a multi-get, as memcached recognises one before its newline. */
static bool is_get_prefix(const char *buf, size_t len)
{
	size_t i = 0;

	while (i < len && buf[i] == ' ')
		i++;
	if (i > 100)
		return false;
	return (len - i >= 4 && memcmp(buf + i, "get ", 4) == 0) ||
	       (len - i >= 5 && memcmp(buf + i, "gets ", 5) == 0);
}

/* The command at buf[0..len), no data block being discarded. */
static enum pc_status parse_next(struct pc_parser *p, const char *buf, size_t len,
                                 struct pc_cmd *cmd, size_t *consumed)
{
	const char *nl;
	size_t linelen, end, need;
	enum pc_status st;
	bool noreply;

	/* A data block still arriving: nothing to do until it is all here. */
	if (p->need && len < p->need)
		return PC_NEED_MORE;
	if (p->scanned > len)
		p->scanned = 0;
	nl = memchr(buf + p->scanned, '\n', len - p->scanned);
	if (!nl) {
		p->scanned = len;
		if ((len > PC_SHORT_LINE_MAX && !is_get_prefix(buf, len)) || len > p->max_line) {
			*consumed = len;
			p->scanned = 0;
			bool short_rule = len > PC_SHORT_LINE_MAX && !is_get_prefix(buf, len);
			cmd->reply = short_rule ? NULL : R_TOO_LONG;
			cmd->why =
			    short_rule ? "no newline in 2048 bytes" : "request line too long";
			cmd->client_error = true;
			return PC_CLOSE;
		}
		return PC_NEED_MORE;
	}
	p->scanned = 0;
	p->need = 0;
	linelen = (size_t)(nl - buf);
	*consumed = linelen + 1;
	if (linelen > p->max_line) {
		cmd->reply = R_TOO_LONG;
		cmd->why = "request line too long";
		cmd->client_error = true;
		return PC_CLOSE;
	}
	end = linelen;
	if (end > 1 && buf[end - 1] == '\r')
		end--;
	st = parse_line(p, buf, end, cmd);
	if (st != PC_NEED_MORE)
		return st;
	/* A command with a data block: returned whole or not at all. */
	need = linelen + 1 + cmd->datalen + 2;
	if (len < need) {
		p->need = need;
		*consumed = 0;
		memset(cmd, 0, sizeof(*cmd));
		return PC_NEED_MORE;
	}
	*consumed = need;
	if (buf[need - 2] != '\r' || buf[need - 1] != '\n') {
		/* Silent under noreply; an ms has none (memcached answers its bad
		 * block even under q). */
		noreply = cmd->noreply;
		memset(cmd, 0, sizeof(*cmd));
		return fail(cmd, R_BAD_CHUNK, noreply);
	}
	cmd->data = buf + linelen + 1;
	return PC_COMMAND;
}

enum pc_status pc_parse(struct pc_parser *p, const char *buf, size_t len, struct pc_cmd *cmd,
                        size_t *consumed)
{
	size_t skipped = 0, used = 0;
	enum pc_status st;

	memset(cmd, 0, sizeof(*cmd));
	*consumed = 0;
	if (!p->started && len > 0) {
		p->started = true;
		/* The binary protocol's request magic: not spoken here. */
		if ((unsigned char)buf[0] == 0x80) {
			*consumed = len;
			cmd->client_error = true;
			cmd->why = "binary protocol";
			return PC_CLOSE;
		}
	}
	if (p->swallow) {
		skipped = len < p->swallow ? len : (size_t)p->swallow;
		p->swallow -= skipped;
		*consumed = skipped;
		if (p->swallow || skipped == len)
			return PC_NEED_MORE;
		/* The discarded block ends here: on to the next command. */
	}
	st = parse_next(p, buf + skipped, len - skipped, cmd, &used);
	*consumed = skipped + used;
	return st;
}
