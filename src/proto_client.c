/*
 * proto_client: memcached text protocol requests, parsed as memcached 1.6
 * parses them (lines end at '\n', an optional '\r' before it; tokens split on
 * spaces only; the command word matched exactly), except that get/gets keys
 * are checked strictly so that nothing but a clean key can ever be forwarded.
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

void pc_init(struct pc_parser *p, size_t max_line)
{
	memset(p, 0, sizeof(*p));
	p->max_line = max_line;
	p->max_keys = UINT32_MAX;
}

void pc_free(struct pc_parser *p)
{
	free(p->keys);
	p->keys = NULL;
	p->kcap = 0;
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

static bool tok_unsigned(const struct tok *t)
{
	char buf[64], *p = tok_copy(t, buf, sizeof(buf)), *end;
	unsigned long long v;
	bool ok;

	if (!p)
		return false;
	errno = 0;
	v = strtoull(p, &end, 10);
	/* strtoull accepts "-1"; memcached refuses a sign that wrapped around. */
	ok = errno != ERANGE && num_end_ok(p, end) &&
	     !((long long)v < 0 && memchr(p, '-', (size_t)(end - p)));
	tok_done(p, buf);
	return ok;
}

static enum pc_status reply(struct pc_cmd *cmd, const char *text, bool client_error)
{
	cmd->type = PC_REPLY;
	cmd->reply = text;
	cmd->client_error = client_error;
	return PC_COMMAND;
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

static enum pc_status parse_get(struct pc_parser *p, const char *s, const char *e,
                                struct pc_cmd *cmd)
{
	uint32_t n = 0;
	bool too_many = false;
	struct tok k;

	/* The whole line, past any NUL: a key memcached would truncate is refused. */
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

/* set/add/replace/append/prepend/cas: check the line as memcached does, then
 * discard the data block so the stream stays in sync. */
static enum pc_status parse_storage(struct pc_parser *p, const struct tok *t, size_t nt, bool cas,
                                    struct pc_cmd *cmd)
{
	size_t want = cas ? 6 : 5;
	bool noreply;
	int32_t exptime, v;

	if (nt != want && nt != want + 1)
		return reply(cmd, R_ERROR, true);
	noreply = tok_is(&t[nt - 1], "noreply");
	/* A bad line discards nothing: the data block is parsed as commands,
	 * as memcached does. */
	if (t[1].len > PC_KEY_MAX || !tok_unsigned(&t[2]) || !tok_int32(&t[3], &exptime) ||
	    !tok_int32(&t[4], &v) || (cas && !tok_unsigned(&t[5])) || v < 0 || v > INT32_MAX - 2) {
		if (noreply) {
			cmd->type = PC_SILENT;
			cmd->client_error = true;
			return PC_COMMAND;
		}
		return reply(cmd, R_BAD_FORMAT, true);
	}
	p->swallow = (uint64_t)v + 2;
	p->swallow_noreply = noreply;
	p->swallow_check = true;
	return PC_NEED_MORE;
}

/* ms <key> <datalen> <flags>*: meta set, which also carries a data block. */
static enum pc_status parse_mset(struct pc_parser *p, const struct tok *t, size_t nt,
                                 struct pc_cmd *cmd)
{
	int32_t v;

	if (nt < 2)
		return reply(cmd, R_ERROR, true);
	/* memcached takes at most 16 flags, and says so before the length. */
	if (nt > 19)
		return reply(cmd, "CLIENT_ERROR options flags too long\r\n", true);
	if (nt < 3 || t[1].len > PC_KEY_MAX || !tok_int32(&t[2], &v) || v < 0 || v > INT32_MAX - 2)
		return reply(cmd, R_BAD_FORMAT, true);
	p->swallow = (uint64_t)v + 2;
	p->swallow_noreply = false;
	p->swallow_check = true;
	return PC_NEED_MORE;
}

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
    {"incr", 4, 4},
    {"decr", 4, 4},
    {"touch", 4, 4},
    {"delete", 3, 4},
    {"flush_all", 2, 3},
    {"verbosity", 3, 3},
    {"cache_memlimit", 3, 3},
    {"gat", 0, 0},
    {"gats", 0, 0},
    {"shutdown", 0, 0},
    {"slabs", 0, 0},
    {"lru_crawler", 0, 0},
    {"lru", 0, 0},
    {"watch", 0, 0},
    {"refresh_certs", 0, 0},
    {"mg", 0, 0},
    {"md", 0, 0},
    {"mn", 0, 0},
    {"ma", 0, 0},
    {"me", 0, 0},
};

/* memcached cuts at most 23 tokens from a line before the command sees it;
 * the last of them decides the HTTP rule below. */
#define MAX_TOKENS 23

static enum pc_status parse_line(struct pc_parser *p, const char *line, size_t len,
                                 struct pc_cmd *cmd)
{
	/* memcached sees the line as a C string: the command ends at a NUL. */
	const char *nul = memchr(line, '\0', len);
	const char *e = nul ? nul : line + len;
	struct tok t[MAX_TOKENS];
	size_t nt = tokenize(line, e, t, MAX_TOKENS);

	if (nt == 0 || t[0].len < 2)
		return reply(cmd, R_ERROR, true);
	if (tok_is(&t[0], "get") || tok_is(&t[0], "gets") || tok_is(&t[0], "bget")) {
		if (nt < 2)
			return reply(cmd, R_ERROR, true);
		cmd->type = tok_is(&t[0], "gets") ? PC_GETS : PC_GET;
		return parse_get(p, t[0].p + t[0].len, line + len, cmd);
	}
	if (tok_is(&t[0], "version")) {
		cmd->type = PC_VERSION;
		return PC_COMMAND;
	}
	if (tok_is(&t[0], "quit")) {
		cmd->type = PC_QUIT;
		return PC_COMMAND;
	}
	if (tok_is(&t[0], "stats")) {
		cmd->type = PC_STATS;
		if (nt > 1) {
			cmd->args = t[1].p;
			cmd->argslen = (size_t)(e - t[1].p);
		}
		return PC_COMMAND;
	}
	if (tok_is(&t[0], "set") || tok_is(&t[0], "add") || tok_is(&t[0], "replace") ||
	    tok_is(&t[0], "append") || tok_is(&t[0], "prepend"))
		return parse_storage(p, t, nt, false, cmd);
	if (tok_is(&t[0], "cas"))
		return parse_storage(p, t, nt, true, cmd);
	if (tok_is(&t[0], "ms"))
		return parse_mset(p, t, nt, cmd);
	for (size_t i = 0; i < sizeof(refused) / sizeof(refused[0]); i++)
		if (tok_is(&t[0], refused[i].word))
			return refuse(cmd, refused[i].min && nt >= refused[i].min &&
			                       nt <= refused[i].max &&
			                       tok_is(&t[nt - 1], "noreply"));
	/* An HTTP request line: memcached hangs up without a word, but only for
	 * words outside the first letters it dispatches on. */
	if (!strchr("gsacidt", t[0].p[0]) && !(t[0].len == 2 && t[0].p[0] == 'm') &&
	    t[nt - 1].len >= 5 && memcmp(t[nt - 1].p, "HTTP/", 5) == 0) {
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

static enum pc_status swallow(struct pc_parser *p, const char *buf, size_t len, struct pc_cmd *cmd,
                              size_t *consumed)
{
	size_t take = len < p->swallow ? len : (size_t)p->swallow;

	if (take >= 2) {
		p->swallow_tail[0] = buf[take - 2];
		p->swallow_tail[1] = buf[take - 1];
	} else if (take == 1) {
		p->swallow_tail[0] = p->swallow_tail[1];
		p->swallow_tail[1] = buf[0];
	}
	p->swallow -= take;
	*consumed = take;
	if (p->swallow)
		return PC_NEED_MORE;
	if (p->swallow_check && (p->swallow_tail[0] != '\r' || p->swallow_tail[1] != '\n')) {
		if (p->swallow_noreply) {
			cmd->type = PC_SILENT;
			cmd->client_error = true;
			return PC_COMMAND;
		}
		return reply(cmd, R_BAD_CHUNK, true);
	}
	return refuse(cmd, p->swallow_noreply);
}

enum pc_status pc_parse(struct pc_parser *p, const char *buf, size_t len, struct pc_cmd *cmd,
                        size_t *consumed)
{
	const char *nl;
	size_t linelen, end;
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
	if (p->swallow)
		return swallow(p, buf, len, cmd, consumed);
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
	if (st == PC_NEED_MORE && p->swallow) {
		/* A storage command: go straight on to its data block. */
		size_t more;
		st = swallow(p, buf + *consumed, len - *consumed, cmd, &more);
		*consumed += more;
	}
	return st;
}
