/*
 * proto_resp: RESP2 requests, parsed as Redis 7.0 parses them
 * (processInputBuffer in networking.c): a command starting with '*' is a
 * multibulk array, anything else an inline line split like sdssplitargs().
 * The quirks that clients can observe are kept:
 *   - count lines end at the first '\r', and the byte after it is skipped
 *     unchecked, as are the two bytes after a bulk's payload;
 *   - numbers follow string2ll (no sign but '-', no leading zero, at most 20
 *     characters); an array count <= 0 is a command that is skipped;
 *   - the error for an unexpected byte quotes that byte, a '\r' or '\n' shown
 *     as a space, as Redis' error formatting does.
 * Where Redis' answer depends on how TCP cut the stream, ours does not: a
 * line whose end is more than max_inline bytes away is "too big" however it
 * arrives. (Redis checks only when a read leaves no line end in its buffer,
 * so a line somewhat over 64 KiB passes there if its end comes in the same
 * read.) A NUL byte is data everywhere (Redis stops scanning at a NUL, so a
 * line holding one waits until it is too big); this keeps inline commands
 * binary-safe too.
 */
#include "proto_resp.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define E_PREFIX "-ERR Protocol error: "
#define E_TOO_BIG_INLINE E_PREFIX "too big inline request\r\n"
#define E_QUOTES E_PREFIX "unbalanced quotes in request\r\n"
#define E_TOO_BIG_MBULK E_PREFIX "too big mbulk count string\r\n"
#define E_MBULK_LEN E_PREFIX "invalid multibulk length\r\n"
#define E_TOO_BIG_BULK E_PREFIX "too big bulk count string\r\n"
#define E_BULK_LEN E_PREFIX "invalid bulk length\r\n"
#define E_NOMEM "-ERR out of memory\r\n"

/* Arrays above this many slots are given back once their command is done,
 * so one huge command does not pin its memory for the connection's life. */
#define RP_KEEP_SLOTS 1024

enum { ST_START = 0, ST_ELEMS, ST_FAILED };

void rp_init(struct rp_parser *p)
{
	memset(p, 0, sizeof(*p));
	p->max_bulk = RP_MAX_BULK_DEFAULT;
	p->max_array = RP_MAX_ARRAY_DEFAULT;
	p->max_inline = RP_MAX_INLINE_DEFAULT;
	p->bulklen = -1;
}

void rp_free(struct rp_parser *p)
{
	free(p->offs);
	free(p->argv);
	free(p->arena);
	p->offs = NULL;
	p->argv = NULL;
	p->arena = NULL;
	p->cap = 0;
	p->arena_cap = 0;
}

bool rp_strtoll(const char *s, size_t n, int64_t *out)
{
	const char *e = s + n;
	bool neg = false;
	uint64_t v;

	/* Twenty characters hold every int64 in this notation. */
	if (n == 0 || n > 20)
		return false;
	if (n == 1 && s[0] == '0') {
		*out = 0;
		return true;
	}
	if (*s == '-') {
		neg = true;
		s++;
	}
	if (s == e || *s < '1' || *s > '9')
		return false;
	v = (uint64_t)(*s++ - '0');
	for (; s < e; s++) {
		unsigned d = (unsigned)(*s - '0');
		if (d > 9 || v > (UINT64_MAX - d) / 10)
			return false;
		v = v * 10 + d;
	}
	if (neg) {
		if (v > (uint64_t)INT64_MAX + 1)
			return false;
		*out = v == (uint64_t)INT64_MAX + 1 ? INT64_MIN : -(int64_t)v;
	} else {
		if (v > (uint64_t)INT64_MAX)
			return false;
		*out = (int64_t)v;
	}
	return true;
}

static enum rp_status fail(struct rp_parser *p, struct rp_cmd *cmd, const char *reply,
                           const char *why)
{
	p->state = ST_FAILED;
	p->fail_reply = reply;
	p->fail_why = why;
	cmd->reply = reply;
	cmd->replylen = strlen(reply);
	cmd->why = why;
	return RP_ERROR;
}

enum find { F_FOUND, F_MORE, F_TOO_BIG };

/*
 * Look for ch in the line that starts at b[start], resuming after the bytes
 * already searched. The line is too big when its first max_inline + 1 bytes
 * hold no ch: that is when Redis gives up on it, had they arrived alone.
 */
static enum find find_end(struct rp_parser *p, const char *b, size_t n, size_t start, char ch,
                          size_t *at)
{
	size_t avail = n - start;
	size_t lim = avail > p->max_inline ? p->max_inline + 1 : avail;
	const char *s = b + start, *hit;

	if (p->scanned < lim && (hit = memchr(s + p->scanned, ch, lim - p->scanned))) {
		*at = (size_t)(hit - b);
		p->scanned = (size_t)(hit - s);
		return F_FOUND;
	}
	p->scanned = lim;
	return avail > p->max_inline ? F_TOO_BIG : F_MORE;
}

static bool grow(struct rp_parser *p, uint32_t need)
{
	uint32_t cap = p->cap ? p->cap : 8;
	size_t *offs;
	struct rp_arg *argv;

	if (need <= p->cap)
		return true;
	while (cap < need)
		cap = cap > UINT32_MAX / 2 ? need : cap * 2;
	offs = realloc(p->offs, sizeof(*offs) * cap);
	if (!offs)
		return false;
	p->offs = offs;
	argv = realloc(p->argv, sizeof(*argv) * cap);
	if (!argv)
		return false;
	p->argv = argv;
	p->cap = cap;
	return true;
}

/* isspace() in the C locale, which is what sdssplitargs skips between
 * arguments; only four of these end an unquoted argument. */
static bool blank(unsigned char c)
{
	return c == ' ' || (c >= '\t' && c <= '\r');
}

static int hexval(unsigned char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

enum split { SPLIT_OK, SPLIT_QUOTES, SPLIT_NOMEM };

/*
 * sdssplitargs() over [s, e): arguments split on blanks; "double quotes"
 * take \xHH and \n \r \t \b \a escapes (any other escaped byte stands for
 * itself), 'single quotes' only \'; a closing quote must be followed by a
 * blank or the end. A quote may open in the middle of an argument. The
 * unquoted bytes go to the arena, which is never longer than the line.
 */
static enum split split_args(struct rp_parser *p, const char *s, const char *e)
{
	size_t n = (size_t)(e - s);
	char *out;

	p->argc = 0;
	if (p->arena_cap < n) {
		char *a = realloc(p->arena, n);
		if (!a)
			return SPLIT_NOMEM;
		p->arena = a;
		p->arena_cap = n;
	}
	out = p->arena;
	for (;;) {
		bool inq = false, insq = false, done = false;
		char *arg;

		while (s < e && blank((unsigned char)*s))
			s++;
		if (s == e)
			return SPLIT_OK;
		arg = out;
		while (!done) {
			if (inq) {
				if (s == e)
					return SPLIT_QUOTES;
				if (*s == '\\' && e - s >= 4 && s[1] == 'x' &&
				    hexval((unsigned char)s[2]) >= 0 &&
				    hexval((unsigned char)s[3]) >= 0) {
					*out++ = (char)(hexval((unsigned char)s[2]) * 16 +
					                hexval((unsigned char)s[3]));
					s += 4;
				} else if (*s == '\\' && e - s >= 2) {
					char c = s[1];
					switch (c) {
					case 'n':
						c = '\n';
						break;
					case 'r':
						c = '\r';
						break;
					case 't':
						c = '\t';
						break;
					case 'b':
						c = '\b';
						break;
					case 'a':
						c = '\a';
						break;
					}
					*out++ = c;
					s += 2;
				} else if (*s == '"') {
					if (e - s >= 2 && !blank((unsigned char)s[1]))
						return SPLIT_QUOTES;
					done = true;
					s++;
				} else {
					*out++ = *s++;
				}
			} else if (insq) {
				if (s == e)
					return SPLIT_QUOTES;
				if (*s == '\\' && e - s >= 2 && s[1] == '\'') {
					*out++ = '\'';
					s += 2;
				} else if (*s == '\'') {
					if (e - s >= 2 && !blank((unsigned char)s[1]))
						return SPLIT_QUOTES;
					done = true;
					s++;
				} else {
					*out++ = *s++;
				}
			} else if (s == e) {
				done = true;
			} else {
				switch (*s) {
				case ' ':
				case '\n':
				case '\r':
				case '\t':
					done = true;
					break;
				case '"':
					inq = true;
					break;
				case '\'':
					insq = true;
					break;
				default:
					*out++ = *s;
					break;
				}
				s++;
			}
		}
		if (!grow(p, p->argc + 1))
			return SPLIT_NOMEM;
		p->argv[p->argc].p = arg;
		p->argv[p->argc].len = (size_t)(out - arg);
		p->argc++;
	}
}

static void reset(struct rp_parser *p)
{
	p->state = ST_START;
	p->pos = 0;
	p->scanned = 0;
	p->left = 0;
	p->bulklen = -1;
	p->argc = 0;
}

static enum rp_status done(struct rp_parser *p, struct rp_cmd *cmd, bool is_inline)
{
	cmd->argv = p->argv;
	cmd->argc = p->argc;
	cmd->is_inline = is_inline;
	reset(p);
	return RP_COMMAND;
}

/* "expected '$', got 'x'", x shown as Redis' error formatting shows it. */
static enum rp_status expected_dollar(struct rp_parser *p, struct rp_cmd *cmd, char got)
{
	if (got == '\r' || got == '\n' || got == '\0')
		got = ' ';
	snprintf(p->err, sizeof(p->err), E_PREFIX "expected '$', got '%c'\r\n", got);
	return fail(p, cmd, p->err, "expected $ but got something else");
}

enum rp_status rp_parse(struct rp_parser *p, const char *buf, size_t len, struct rp_cmd *cmd,
                        size_t *consumed)
{
	size_t base = 0, at;

	memset(cmd, 0, sizeof(*cmd));
	*consumed = 0;
	p->want = 0;
	if (p->state == ST_FAILED)
		return fail(p, cmd, p->fail_reply, p->fail_why);
	if (p->state == ST_START && p->cap > RP_KEEP_SLOTS) {
		free(p->offs);
		free(p->argv);
		p->offs = NULL;
		p->argv = NULL;
		p->cap = 0;
	}
	for (;;) {
		const char *b = buf + base;
		size_t n = len - base;

		if (p->state == ST_START) {
			enum find f;
			int64_t v;

			if (n == 0)
				break;
			if (b[0] != '*') {
				const char *e;

				f = find_end(p, b, n, 0, '\n', &at);
				if (f == F_TOO_BIG)
					return fail(p, cmd, E_TOO_BIG_INLINE,
					            "too big inline request");
				if (f == F_MORE)
					break;
				e = b + at;
				if (at > 0 && e[-1] == '\r')
					e--;
				switch (split_args(p, b, e)) {
				case SPLIT_QUOTES:
					return fail(p, cmd, E_QUOTES,
					            "unbalanced quotes in inline request");
				case SPLIT_NOMEM:
					return fail(p, cmd, E_NOMEM, "out of memory");
				case SPLIT_OK:
					break;
				}
				base += at + 1;
				p->scanned = 0;
				if (p->argc == 0)
					continue;
				*consumed = base;
				return done(p, cmd, true);
			}
			f = find_end(p, b, n, 0, '\r', &at);
			if (f == F_TOO_BIG)
				return fail(p, cmd, E_TOO_BIG_MBULK, "too big mbulk count string");
			if (f == F_MORE || at + 1 >= n)
				break;
			if (!rp_strtoll(b + 1, at - 1, &v) || v > (int64_t)p->max_array)
				return fail(p, cmd, E_MBULK_LEN, "invalid mbulk count");
			p->scanned = 0;
			if (v <= 0) {
				base += at + 2;
				continue;
			}
			p->state = ST_ELEMS;
			p->left = (uint32_t)v;
			p->argc = 0;
			p->pos = at + 2;
			p->bulklen = -1;
		}

		while (p->left > 0) {
			if (p->bulklen < 0) {
				enum find f = find_end(p, b, n, p->pos, '\r', &at);
				int64_t v;

				if (f == F_TOO_BIG)
					return fail(p, cmd, E_TOO_BIG_BULK,
					            "too big bulk count string");
				if (f == F_MORE || at + 1 >= n)
					goto more;
				if (b[p->pos] != '$')
					return expected_dollar(p, cmd, b[p->pos]);
				if (!rp_strtoll(b + p->pos + 1, at - p->pos - 1, &v) || v < 0 ||
				    (uint64_t)v > p->max_bulk)
					return fail(p, cmd, E_BULK_LEN, "invalid bulk length");
				p->scanned = 0;
				p->pos = at + 2;
				p->bulklen = v;
			}
			if ((uint64_t)(n - p->pos) < (uint64_t)p->bulklen + 2) {
				uint64_t w = (uint64_t)p->pos + (uint64_t)p->bulklen + 2;
				p->want = w > SIZE_MAX ? SIZE_MAX : (size_t)w;
				goto more;
			}
			if (!grow(p, p->argc + 1))
				return fail(p, cmd, E_NOMEM, "out of memory");
			p->offs[p->argc] = p->pos;
			p->argv[p->argc].len = (size_t)p->bulklen;
			p->argc++;
			p->pos += (size_t)p->bulklen + 2;
			p->bulklen = -1;
			p->left--;
		}
		for (uint32_t i = 0; i < p->argc; i++)
			p->argv[i].p = b + p->offs[i];
		*consumed = base + p->pos;
		return done(p, cmd, false);
	}
more:
	*consumed = base;
	return RP_NEED_MORE;
}
