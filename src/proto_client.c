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
 *
 * This file owns the framing, get/gets and the classic commands, and
 * dispatches the rest: meta commands to proto_meta, tokens, numbers and keys
 * to proto_tok, so that both kinds of command read a line the same way.
 */
#include "proto_client.h"

#include "proto_cmd.h"
#include "proto_meta.h"
#include "proto_tok.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>

#define R_BAD_CHUNK "CLIENT_ERROR bad data chunk\r\n"
#define R_TOO_LONG "CLIENT_ERROR line too long\r\n"
#define R_UNSUPPORTED "SERVER_ERROR not supported\r\n"
#define R_TOO_MANY_KEYS "CLIENT_ERROR too many keys\r\n"
#define R_BAD_EXPTIME "CLIENT_ERROR invalid exptime argument\r\n"
#define R_BAD_DELTA "CLIENT_ERROR invalid numeric delta argument\r\n"
#define R_DELETE_USAGE "CLIENT_ERROR bad command line format.  Usage: delete <key> [noreply]\r\n"
#define R_END "END\r\n"

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

/* A client's mistake, answered unless the command said noreply. */
static enum pc_status fail(struct pc_cmd *cmd, const char *text, bool noreply)
{
	if (noreply) {
		cmd->type = PC_SILENT;
		cmd->client_error = true;
		return PC_COMMAND;
	}
	return pcmd_reply(cmd, text, true);
}

static enum pc_status refuse(struct pc_cmd *cmd, bool noreply)
{
	cmd->unsupported = true;
	if (noreply) {
		cmd->type = PC_SILENT;
		return PC_COMMAND;
	}
	return pcmd_reply(cmd, R_UNSUPPORTED, false);
}

static bool last_is_noreply(const struct pt_line *l)
{
	return pt_is(&l->t[l->nt - 1], "noreply");
}

/* Keys of a get/gets/gat/gats: every token of [s, e), the whole line past
 * any NUL: a key memcached would truncate is refused. */
static enum pc_status parse_keys(struct pc_parser *p, const char *s, const char *e,
                                 struct pc_cmd *cmd)
{
	uint32_t n = 0;
	bool too_many = false;
	struct pt_tok k;

	while (pt_next(&s, e, &k)) {
		if (!pt_key_ok(k.p, k.len))
			return pcmd_reply(cmd, R_BAD_FORMAT, true);
		/* Past the limit, keys are still checked but no longer kept. */
		if (n >= p->max_keys) {
			too_many = true;
			continue;
		}
		if (n == p->kcap) {
			uint32_t cap = p->kcap ? p->kcap * 2 : 8;
			struct pc_key *nk = realloc(p->keys, cap * sizeof(*nk));
			if (!nk)
				return pcmd_reply(cmd, "SERVER_ERROR out of memory\r\n", false);
			p->keys = nk;
			p->kcap = cap;
		}
		p->keys[n].p = k.p;
		p->keys[n].len = k.len;
		n++;
	}
	if (too_many) {
		cmd->too_many_keys = true;
		return pcmd_reply(cmd, R_TOO_MANY_KEYS, true);
	}
	cmd->keys = p->keys;
	cmd->nkeys = n;
	return PC_COMMAND;
}

/* gat|gats <exptime> <key>*: the exptime is checked first, as memcached
 * does; without keys memcached answers an empty result. */
static enum pc_status parse_gat(struct pc_parser *p, const struct pt_line *l, enum pc_type type,
                                struct pc_cmd *cmd)
{
	const struct pt_tok *t = l->t;
	int32_t exptime;

	if (l->nt < 2)
		return pcmd_reply(cmd, R_ERROR, true);
	if (!pt_int32(&t[1], &exptime))
		return pcmd_reply(cmd, R_BAD_EXPTIME, true);
	parse_keys(p, t[1].p + t[1].len, l->p + l->len, cmd);
	if (cmd->type == PC_REPLY)
		return PC_COMMAND;
	if (cmd->nkeys == 0) {
		cmd->keys = NULL;
		return pcmd_reply(cmd, R_END, false);
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
static enum pc_status parse_storage(struct pc_parser *p, const struct pt_line *l, enum pc_type type,
                                    struct pc_cmd *cmd)
{
	const struct pt_tok *t = l->t;
	size_t want = type == PC_CAS ? 6 : 5;
	bool noreply;
	uint32_t flags;
	int32_t exptime, v;
	uint64_t cas = 0;

	if (l->nt != want && l->nt != want + 1)
		return pcmd_reply(cmd, R_ERROR, true);
	/* memcached looks at the last token whatever the count ("set k 0 0
	 * noreply" is silent too). */
	noreply = last_is_noreply(l);
	/* A bad line discards nothing: the data block is parsed as commands,
	 * as memcached does. */
	if (t[1].len > PC_KEY_MAX || !pt_uint32(&t[2], &flags) || !pt_int32(&t[3], &exptime) ||
	    !pt_int32(&t[4], &v) || (type == PC_CAS && !pt_uint64(&t[5], &cas)) || v < 0 ||
	    v > INT32_MAX - 2)
		return fail(cmd, R_BAD_FORMAT, noreply);
	if ((size_t)v > p->max_value) {
		p->swallow = (uint64_t)v + 2;
		cmd->too_large = true;
		/* memcached drops the old value of a set it cannot store. */
		if (type == PC_SET && pt_line_key_ok(l, &t[1]))
			pcmd_set_key(p, cmd, &t[1]);
		if (noreply) {
			cmd->type = PC_SILENT;
			return PC_COMMAND;
		}
		return pcmd_reply(cmd, R_TOO_LARGE, false);
	}
	/* A key memcached would take: its block is read (and dropped) too. */
	if (!pt_line_key_ok(l, &t[1])) {
		p->swallow = (uint64_t)v + 2;
		return fail(cmd, R_BAD_FORMAT, noreply);
	}
	cmd->type = type;
	pcmd_set_key(p, cmd, &t[1]);
	cmd->flags = flags;
	cmd->exptime = exptime;
	cmd->cas = cas;
	cmd->noreply = noreply;
	cmd->datalen = (size_t)v;
	return PC_NEED_MORE;
}

/* delete <key> [0] [noreply] */
static enum pc_status parse_delete(struct pc_parser *p, const struct pt_line *l, struct pc_cmd *cmd)
{
	const struct pt_tok *t = l->t;
	bool noreply = false;

	if (l->nt < 2 || l->nt > 4)
		return pcmd_reply(cmd, R_ERROR, true);
	if (l->nt > 2) {
		bool zero = pt_is(&t[2], "0");
		noreply = last_is_noreply(l);
		if (!(l->nt == 3 && (zero || noreply)) && !(l->nt == 4 && zero && noreply))
			return fail(cmd, R_DELETE_USAGE, noreply);
	}
	if (!pt_line_key_ok(l, &t[1]))
		return fail(cmd, R_BAD_FORMAT, noreply);
	cmd->type = PC_DELETE;
	pcmd_set_key(p, cmd, &t[1]);
	cmd->noreply = noreply;
	return PC_COMMAND;
}

/* incr|decr <key> <delta> [noreply] */
static enum pc_status parse_arith(struct pc_parser *p, const struct pt_line *l, enum pc_type type,
                                  struct pc_cmd *cmd)
{
	const struct pt_tok *t = l->t;
	bool noreply;
	uint64_t delta;

	if (l->nt != 3 && l->nt != 4)
		return pcmd_reply(cmd, R_ERROR, true);
	noreply = last_is_noreply(l);
	if (t[1].len > PC_KEY_MAX)
		return fail(cmd, R_BAD_FORMAT, noreply);
	if (!pt_uint64(&t[2], &delta))
		return fail(cmd, R_BAD_DELTA, noreply);
	if (!pt_line_key_ok(l, &t[1]))
		return fail(cmd, R_BAD_FORMAT, noreply);
	cmd->type = type;
	pcmd_set_key(p, cmd, &t[1]);
	cmd->delta = delta;
	cmd->noreply = noreply;
	return PC_COMMAND;
}

/* touch <key> <exptime> [noreply] */
static enum pc_status parse_touch(struct pc_parser *p, const struct pt_line *l, struct pc_cmd *cmd)
{
	const struct pt_tok *t = l->t;
	bool noreply;
	int32_t exptime;

	if (l->nt != 3 && l->nt != 4)
		return pcmd_reply(cmd, R_ERROR, true);
	noreply = last_is_noreply(l);
	if (t[1].len > PC_KEY_MAX)
		return fail(cmd, R_BAD_FORMAT, noreply);
	if (!pt_int32(&t[2], &exptime))
		return fail(cmd, R_BAD_EXPTIME, noreply);
	if (!pt_line_key_ok(l, &t[1]))
		return fail(cmd, R_BAD_FORMAT, noreply);
	cmd->type = PC_TOUCH;
	pcmd_set_key(p, cmd, &t[1]);
	cmd->exptime = exptime;
	cmd->noreply = noreply;
	return PC_COMMAND;
}

/* verbosity <level> [noreply] */
static enum pc_status parse_verbosity(const struct pt_line *l, struct pc_cmd *cmd)
{
	bool noreply;
	uint32_t level;

	if (l->nt != 2 && l->nt != 3)
		return pcmd_reply(cmd, R_ERROR, true);
	noreply = last_is_noreply(l);
	if (!pt_uint32(&l->t[1], &level))
		return fail(cmd, R_BAD_FORMAT, noreply);
	cmd->type = PC_VERBOSITY;
	cmd->level = level;
	cmd->noreply = noreply;
	return PC_COMMAND;
}

/* flush_all [delay] [noreply]: any token but a final noreply is the delay. */
static enum pc_status parse_flush_all(const struct pt_line *l, struct pc_cmd *cmd)
{
	bool noreply;
	int32_t delay = 0;

	if (l->nt > 3)
		return pcmd_reply(cmd, R_ERROR, true);
	noreply = last_is_noreply(l);
	if (l->nt != (noreply ? 2u : 1u)) {
		if (!pt_int32(&l->t[1], &delay))
			return fail(cmd, R_BAD_EXPTIME, noreply);
		cmd->has_exptime = true;
	}
	cmd->type = PC_FLUSH_ALL;
	cmd->exptime = delay;
	cmd->noreply = noreply;
	return PC_COMMAND;
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

static enum pc_status parse_command(struct pc_parser *p, const struct pt_line *l, enum pc_type type,
                                    struct pc_cmd *cmd)
{
	const struct pt_tok *t = l->t;

	switch (type) {
	case PC_GET:
	case PC_GETS:
		if (l->nt < 2)
			return pcmd_reply(cmd, R_ERROR, true);
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
		return pcmd_reply(cmd, R_ERROR, true);
	}
}

/* One command line, without its line end. PC_NEED_MORE: a good storage or
 * ms line, whose data block (cmd->datalen bytes and CRLF) comes next. */
static enum pc_status parse_line(struct pc_parser *p, const char *line, size_t len,
                                 struct pc_cmd *cmd)
{
	struct pt_line l;
	const struct pt_tok *t = l.t;

	l.p = line;
	l.len = len;
	l.nul = memchr(line, '\0', len);
	l.nt = pt_tokenize(line, l.nul ? l.nul : line + len, l.t, PT_MAX_TOKENS);
	if (l.nt == 0 || t[0].len < 2)
		return pcmd_reply(cmd, R_ERROR, true);
	/* memcached dispatches every two-byte word starting with m as meta. */
	if (t[0].len == 2 && t[0].p[0] == 'm')
		return pm_parse(p, &l, cmd);
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		if (pt_is(&t[0], commands[i].word))
			return parse_command(p, &l, commands[i].type, cmd);
	for (size_t i = 0; i < sizeof(refused) / sizeof(refused[0]); i++)
		if (pt_is(&t[0], refused[i].word))
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
	return pcmd_reply(cmd, R_ERROR, true);
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
