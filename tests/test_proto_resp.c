/*
 * test_proto_resp: unit tests for the RESP2 request parser (proto_resp) and
 * the reply parser and composer (proto_respreply), and an oracle test that
 * holds the request parser's protocol errors against a real redis-server.
 *
 * Every table case is fed whole, one byte per read, and cut in two at every
 * position; each run is turned into a description (commands, tokens, the
 * error, bytes left over) that must be the same for all of them. In the
 * cut runs the pending bytes move to a fresh allocation before every call,
 * so a parser that kept a pointer into an old buffer reads freed memory.
 */
#include <check.h>
#include <limits.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "proto_resp.h"
#include "proto_respreply.h"
#include "testutil.h"

Suite *proto_resp_suite(void);

#define NCASES(a) ((int)(sizeof(a) / sizeof((a)[0])))

/* For hot loops: a passing ck_assert costs a write to Check's pipe. */
#define OK(cond)                                                                                   \
	do {                                                                                       \
		if (!(cond))                                                                       \
			ck_abort_msg("%s:%d: %s", __FILE__, __LINE__, #cond);                      \
	} while (0)

/* A growing string for descriptions. */
struct sb {
	char *s;
	size_t n, cap;
};

static void sb_addn(struct sb *b, const char *s, size_t n)
{
	if (b->n + n + 1 > b->cap) {
		b->cap = (b->n + n + 1) * 2;
		b->s = realloc(b->s, b->cap);
		OK((b->s) != NULL);
	}
	memcpy(b->s + b->n, s, n);
	b->n += n;
	b->s[b->n] = '\0';
}

static void sb_add(struct sb *b, const char *s)
{
	sb_addn(b, s, strlen(s));
}

__attribute__((format(printf, 2, 3))) static void sb_fmt(struct sb *b, const char *fmt, ...)
{
	char tmp[128];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(tmp, sizeof(tmp), fmt, ap);
	va_end(ap);
	sb_add(b, tmp);
}

/* Bytes shown printable: anything but 0x21..0x7e, '|', ';' and '\' as \xHH. */
static void sb_esc(struct sb *b, const char *p, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)p[i];
		if (c < 0x21 || c > 0x7e || c == '|' || c == ';' || c == '\\') {
			char tmp[8];
			snprintf(tmp, sizeof(tmp), "\\x%02x", c);
			sb_add(b, tmp);
		} else {
			sb_addn(b, (const char *)&c, 1);
		}
	}
}

static bool inside(const char *p, size_t n, const char *buf, size_t len)
{
	return p >= buf && n <= len && (size_t)(p - buf) <= len - n;
}

/* How a run cuts its input: one cut at split (chunk 0), or reads of chunk. */
struct cut {
	size_t split, chunk;
	bool move; /* pending bytes move to a fresh allocation before each call */
};

/* Parser limits: 0 Redis' defaults, 1 tiny, 2 Redis 7.0 (INT_MAX elements). */
static void set_limits(struct rp_parser *p, int lim)
{
	if (lim == 1) {
		p->max_bulk = 10;
		p->max_array = 3;
		p->max_inline = 16;
	} else if (lim == 2) {
		p->max_array = INT_MAX;
	}
}

/* Drive a parser over in[0..n) as a connection would; the loop makes at
 * most one call per byte and read plus one, or the parser is stuck. */
typedef int (*step_fn)(void *parser, const char *buf, size_t len, size_t *used, struct sb *out);
enum { STEP_MORE, STEP_GO, STEP_STOP };

static char *drive(const char *in, size_t n, const struct cut *c, step_fn step, void *parser,
                   size_t *left)
{
	struct sb out = {0};
	char *data = malloc(n ? n : 1);
	size_t start = 0, have = 0, calls = 0, limit;
	bool stopped = false;

	OK((data) != NULL);
	memcpy(data, in, n);
	limit = 2 * n + 4;
	while (have < n && !stopped) {
		size_t cut = c->chunk ? have + c->chunk : (have == 0 && c->split ? c->split : n);
		have = cut > n ? n : cut;
		while (start < have) {
			size_t len = have - start, used = (size_t)-1;
			char *buf = data + start;
			int r;

			if (c->move) {
				buf = malloc(len);
				OK((buf) != NULL);
				memcpy(buf, data + start, len);
			}
			r = step(parser, buf, len, &used, &out);
			if (c->move)
				free(buf);
			if (used > len)
				ck_abort_msg("consumed %zu of %zu", used, len);
			if (++calls > limit)
				ck_abort_msg("parser stuck after %zu calls", calls);
			start += used;
			if (r == STEP_STOP) {
				stopped = true;
				break;
			}
			if (r == STEP_MORE)
				break;
		}
	}
	*left = stopped ? 0 : n - start;
	free(data);
	if (!out.s)
		sb_add(&out, "");
	return out.s;
}

/* ---- requests ---- */

static int rq_step(void *parser, const char *buf, size_t len, size_t *used, struct sb *out)
{
	struct rp_parser *p = parser;
	struct rp_cmd cmd;
	enum rp_status st = rp_parse(p, buf, len, &cmd, used);

	if (st == RP_NEED_MORE)
		return STEP_MORE;
	if (st == RP_ERROR) {
		struct rp_cmd again;
		size_t u2;
		const char *pre = "-ERR ";

		OK((cmd.reply) != NULL);
		OK((cmd.why) != NULL);
		OK((strlen(cmd.reply)) == (cmd.replylen));
		OK(cmd.replylen > 7 && !memcmp(cmd.reply, pre, 5));
		OK(!memcmp(cmd.reply + cmd.replylen - 2, "\r\n", 2));
		OK(!memchr(cmd.reply, '\r', cmd.replylen - 2));
		OK(!memchr(cmd.reply, '\n', cmd.replylen - 2));
		/* The text as is, but for bytes that are not ASCII. */
		sb_add(out, "!");
		for (size_t i = 5; i < cmd.replylen - 2; i++) {
			if ((unsigned char)cmd.reply[i] < 0x7f)
				sb_addn(out, cmd.reply + i, 1);
			else
				sb_esc(out, cmd.reply + i, 1);
		}
		/* The error sticks. */
		OK(rp_parse(p, buf, len, &again, &u2) == RP_ERROR);
		OK(!strcmp(again.reply, cmd.reply));
		return STEP_STOP;
	}
	OK((st) == (RP_COMMAND));
	OK((cmd.argc) >= (1));
	OK(*used > 0);
	for (uint32_t i = 0; i < cmd.argc; i++) {
		const struct rp_arg *a = &cmd.argv[i];
		/* Multibulk arguments lie in what was consumed; inline ones in
		 * the parser's own buffer. */
		if (!cmd.is_inline)
			OK(inside(a->p, a->len, buf, *used));
		if (i)
			sb_add(out, "|");
		sb_esc(out, a->p, a->len);
	}
	sb_add(out, ";");
	return STEP_GO;
}

static char *rq_run(const char *in, size_t n, int lim, const struct cut *c)
{
	struct rp_parser p;
	struct sb out = {0};
	size_t left;
	char *s;

	rp_init(&p);
	set_limits(&p, lim);
	s = drive(in, n, c, rq_step, &p, &left);
	rp_free(&p);
	sb_add(&out, s);
	if (left)
		sb_fmt(&out, "+%zu", left);
	free(s);
	return out.s;
}

/* Whole, byte by byte, and cut at every position: all must say want. */
static void rq_check(const char *in, size_t n, int lim, const char *want)
{
	struct cut whole = {0, 0, false}, bytes = {0, 1, true};
	char *s = rq_run(in, n, lim, &whole);

	ck_assert_msg(!strcmp(s, want), "\"%.60s\" whole: got \"%s\", want \"%s\"", in, s, want);
	free(s);
	s = rq_run(in, n, lim, &bytes);
	ck_assert_msg(!strcmp(s, want), "\"%.60s\" bytewise: got \"%s\", want \"%s\"", in, s, want);
	free(s);
	for (size_t i = 1; i < n; i++) {
		struct cut at = {i, 0, true};
		s = rq_run(in, n, lim, &at);
		ck_assert_msg(!strcmp(s, want), "\"%.60s\" cut at %zu: got \"%s\", want \"%s\"", in,
		              i, s, want);
		free(s);
	}
}

struct rq {
	const char *in;
	size_t n;
	int lim;
	const char *want;
};

#define RQ(lit, lim, want)                                                                         \
	{                                                                                          \
		(lit), sizeof(lit) - 1, (lim), (want)                                              \
	}

static const struct rq rq_ok[] = {
    RQ("*2\r\n$3\r\nGET\r\n$1\r\nk\r\n", 0, "GET|k;"),
    RQ("*1\r\n$4\r\nPING\r\n*2\r\n$3\r\nGET\r\n$1\r\nk\r\n", 0, "PING;GET|k;"),
    RQ("*3\r\n$4\r\nMGET\r\n$0\r\n\r\n$2\r\nab\r\n", 0, "MGET||ab;"),
    /* Binary-safe: CRLF and NUL inside a bulk. */
    RQ("*2\r\n$4\r\nECHO\r\n$4\r\na\r\nb\r\n", 0, "ECHO|a\\x0d\\x0ab;"),
    RQ("*2\r\n$4\r\nECHO\r\n$3\r\n\0\xff\x01\r\n", 0, "ECHO|\\x00\\xff\\x01;"),
    /* Empty and negative arrays are skipped, as Redis skips them. */
    RQ("*0\r\n*-1\r\n*-100\r\n*1\r\n$4\r\nPING\r\n", 0, "PING;"),
    RQ("*0\r\n", 0, ""),
    /* Redis skips the byte after a count line's CR and the two after a
     * payload without looking at them. */
    RQ("*1\rx$4\r\nPING\r\n", 0, "PING;"),
    RQ("*1\r\n$4\rxPINGxy", 0, "PING;"),
    RQ("*1\r\n$4\r\nPINGxx*1\r\n$1\r\na\r\n", 0, "PING;a;"),
    /* Incomplete: nothing consumed. */
    RQ("*2\r\n$3\r\nGET\r\n", 0, "+13"),
    RQ("*1\r\n$4\r\nPING\r", 0, "+13"),
    RQ("*1\r\n$4\r\nPING", 0, "+12"),
    RQ("*1\r", 0, "+3"),
    RQ("*", 0, "+1"),
    RQ("PING\r\n*1\r\n$4", 0, "PING;+6"),
    /* Inline. */
    RQ("GET k\r\n", 0, "GET|k;"),
    RQ("GET k\n", 0, "GET|k;"),
    RQ("  GET \t  k   \r\n", 0, "GET|k;"),
    RQ("\r\n\n  \r\n\t\nPING\n", 0, "PING;"),
    RQ("\n", 0, ""),
    RQ("GET k", 0, "+5"),
    RQ("GET k\r", 0, "+6"),
    RQ("PING\r\r\n", 0, "PING;"),
    RQ("ECHO a\rb\r\n", 0, "ECHO|a|b;"),
    RQ("SET \"a b\" 'c d'\r\n", 0, "SET|a\\x20b|c\\x20d;"),
    RQ("ECHO \"\\x41\\x4a\\x7e\\xff\\xFf\\n\\r\\t\\b\\a\\\\\\\"\\q\"\n", 0,
       "ECHO|AJ~\\xff\\xff\\x0a\\x0d\\x09\\x08\\x07\\x5c\"q;"),
    RQ("ECHO \"\\x4g\" \"\\x\" \"\\x4\"\n", 0, "ECHO|x4g|x|x4;"),
    RQ("ECHO 'it\\'s' 'a\\nb' '\"'\n", 0, "ECHO|it's|a\\x5cnb|\";"),
    RQ("ECHO \"it's\"\n", 0, "ECHO|it's;"),
    RQ("ECHO \"\" ''\r\n", 0, "ECHO||;"),
    RQ("\"\"\r\n", 0, ";"),
    RQ("ECHO a\"b c\"\r\n", 0, "ECHO|ab\\x20c;"),
    RQ("ECHO a'b c' d\r\n", 0, "ECHO|ab\\x20c|d;"),
    RQ("ECHO \"a\"\v\r\n", 0, "ECHO|a;"),
    RQ("ECHO \"a\"\fb\n", 0, "ECHO|a|b;"),
    RQ("ECHO \"a\rb\"\r\n", 0, "ECHO|a\\x0db;"),
    /* Only space, tab, CR and LF end an unquoted argument; every blank
     * is skipped before one. */
    RQ("ECHO a\vb\r\n", 0, "ECHO|a\\x0bb;"),
    RQ("\v\fECHO \vx\r\n", 0, "ECHO|x;"),
    /* A NUL is data (see proto_resp.c). */
    RQ("ECHO a\0b\r\n", 0, "ECHO|a\\x00b;"),
    RQ("ECHO \"\0\"\r\n", 0, "ECHO|\\x00;"),
    RQ("ECHO \xff\xfe\r\n", 0, "ECHO|\\xff\\xfe;"),
    RQ("*1\r\n$4\r\nPING\r\nPING\r\n*1\r\n$4\r\nPING\r\n", 0, "PING;PING;PING;"),
    /* Limits: lines of max_inline bytes, bulks of max_bulk, arrays of max_array. */
    RQ("0123456789abcdef\n", 1, "0123456789abcdef;"),
    RQ("0123456789abcde\r\n", 1, "0123456789abcde;"),
    RQ("0123456789abcdef", 1, "+16"),
    RQ("*3\r\n$10\r\n0123456789\r\n$1\r\na\r\n$0\r\n\r\n", 1, "0123456789|a|;"),
    RQ("*00000000000003\r\n", 1, "!Protocol error: invalid multibulk length"),
    RQ("*1\r\n$000000000000001\r\n", 1, "!Protocol error: invalid bulk length"),
    RQ("*1\r\n$10\r\n", 1, "+9"),
};

static const struct rq rq_err[] = {
    RQ("*x\r\n", 0, "!Protocol error: invalid multibulk length"),
    RQ("*\r\n", 0, "!Protocol error: invalid multibulk length"),
    RQ("*01\r\n", 0, "!Protocol error: invalid multibulk length"),
    RQ("*+1\r\n", 0, "!Protocol error: invalid multibulk length"),
    RQ("*1 \r\n", 0, "!Protocol error: invalid multibulk length"),
    RQ("* 1\r\n", 0, "!Protocol error: invalid multibulk length"),
    RQ("*-0\r\n", 0, "!Protocol error: invalid multibulk length"),
    RQ("*1\n\r\n", 0, "!Protocol error: invalid multibulk length"),
    RQ("*1\0\r\n", 0, "!Protocol error: invalid multibulk length"),
    RQ("*99999999999999999999\r\n", 0, "!Protocol error: invalid multibulk length"),
    RQ("*1048577\r\n", 0, "!Protocol error: invalid multibulk length"),
    RQ("*2147483648\r\n", 2, "!Protocol error: invalid multibulk length"),
    RQ("*4\r\n", 1, "!Protocol error: invalid multibulk length"),
    RQ("*1\r\nA\r\n", 0, "!Protocol error: expected '$', got 'A'"),
    RQ("*1\r\n\r\n", 0, "!Protocol error: expected '$', got ' '"),
    RQ("*1\r\n\n\r\n", 0, "!Protocol error: expected '$', got ' '"),
    RQ("*1\r\n\0\r\n", 0, "!Protocol error: expected '$', got ' '"),
    RQ("*1\r\n\xff\r\n", 0, "!Protocol error: expected '$', got '\\xff'"),
    RQ("*2\r\n$4\r\nECHO\r\n:5\r\n", 0, "!Protocol error: expected '$', got ':'"),
    RQ("*1\r\n$-1\r\n", 0, "!Protocol error: invalid bulk length"),
    RQ("*1\r\n$\r\n", 0, "!Protocol error: invalid bulk length"),
    RQ("*1\r\n$01\r\n", 0, "!Protocol error: invalid bulk length"),
    RQ("*1\r\n$1 \r\n", 0, "!Protocol error: invalid bulk length"),
    RQ("*1\r\n$536870913\r\n", 0, "!Protocol error: invalid bulk length"),
    RQ("*1\r\n$11\r\n", 1, "!Protocol error: invalid bulk length"),
    RQ("*1\r\n$4\r\nPING\r\n*1\r\n$x\r\n", 0, "PING;!Protocol error: invalid bulk length"),
    RQ("ECHO \"abc\r\n", 0, "!Protocol error: unbalanced quotes in request"),
    RQ("ECHO 'abc\r\n", 0, "!Protocol error: unbalanced quotes in request"),
    RQ("ECHO \"a\"b\r\n", 0, "!Protocol error: unbalanced quotes in request"),
    RQ("ECHO 'a'b\r\n", 0, "!Protocol error: unbalanced quotes in request"),
    RQ("ECHO \"a\\\"\r\n", 0, "!Protocol error: unbalanced quotes in request"),
    RQ("ECHO \"a\\\r\n", 0, "!Protocol error: unbalanced quotes in request"),
    RQ("ECHO \"a\"\"b\"\r\n", 0, "!Protocol error: unbalanced quotes in request"),
    RQ("PING\r\nECHO \"\n", 0, "PING;!Protocol error: unbalanced quotes in request"),
    RQ("0123456789abcdefg\n", 1, "!Protocol error: too big inline request"),
    RQ("0123456789abcdefg", 1, "!Protocol error: too big inline request"),
    RQ("0123456789abcdef\r\n", 1, "!Protocol error: too big inline request"),
    RQ("*000000000000003\r\n", 1, "!Protocol error: invalid multibulk length"),
    RQ("*0000000000000003\r\n", 1, "!Protocol error: too big mbulk count string"),
    RQ("*0000000000000000", 1, "!Protocol error: too big mbulk count string"),
    RQ("*1\r\n$000000000000001\r\n", 1, "!Protocol error: invalid bulk length"),
    RQ("*1\r\n$0000000000000001\r\n", 1, "!Protocol error: too big bulk count string"),
    RQ("*1\r\n$0000000000000000", 1, "!Protocol error: too big bulk count string"),
};

START_TEST(test_rq_ok)
{
	const struct rq *c = &rq_ok[_i];
	rq_check(c->in, c->n, c->lim, c->want);
}
END_TEST

START_TEST(test_rq_err)
{
	const struct rq *c = &rq_err[_i];
	rq_check(c->in, c->n, c->lim, c->want);
}
END_TEST

/* A string of n copies of ch, then tail. */
static char *fill(size_t n, char ch, const char *head, const char *tail, size_t *len)
{
	size_t h = strlen(head), t = strlen(tail);
	char *s = malloc(h + n + t + 1);

	ck_assert_ptr_nonnull(s);
	memcpy(s, head, h);
	memset(s + h, ch, n);
	memcpy(s + h + n, tail, t + 1);
	*len = h + n + t;
	return s;
}

/* The default line bound, 64 KiB, in reads of a few sizes (cutting such
 * inputs at every position would take too long). */
static void big_check(const char *in, size_t n, const char *want_prefix, size_t want_len)
{
	static const size_t chunks[] = {0, 1, 7, 1000, 16384};

	for (int i = 0; i < NCASES(chunks); i++) {
		struct cut c = {chunks[i] ? 0 : n / 2, chunks[i], false};
		char *s = rq_run(in, n, 0, &c);
		ck_assert_msg(!strncmp(s, want_prefix, strlen(want_prefix)) &&
		                  (want_len == 0 || strlen(s) == want_len),
		              "chunk %zu: got \"%.80s\" (%zu), want \"%s\"", chunks[i], s,
		              strlen(s), want_prefix);
		free(s);
	}
}

START_TEST(test_rq_big_lines)
{
	size_t n;
	char *s;

	/* 65536 bytes before the line end pass; one more does not. */
	s = fill(65536, 'a', "", "\n", &n);
	big_check(s, n, "aaaa", 65537);
	free(s);
	s = fill(65535, 'a', "", "\r\n", &n);
	big_check(s, n, "aaaa", 65536);
	free(s);
	s = fill(65537, 'a', "", "\n", &n);
	big_check(s, n, "!Protocol error: too big inline request", 0);
	free(s);
	s = fill(100000, 'a', "", "", &n);
	big_check(s, n, "!Protocol error: too big inline request", 0);
	free(s);
	s = fill(65535, '1', "*", "", &n);
	big_check(s, n, "+65536", 0);
	free(s);
	s = fill(65537, '1', "*", "", &n);
	big_check(s, n, "!Protocol error: too big mbulk count string", 0);
	free(s);
	s = fill(65537, '1', "*1\r\n$", "", &n);
	big_check(s, n, "!Protocol error: too big bulk count string", 0);
	free(s);
	/* A bulk may be much longer than a line. */
	s = fill(200000, 'b', "*2\r\n$4\r\nECHO\r\n$200000\r\n", "\r\n", &n);
	big_check(s, n, "ECHO|bbbb", 5 + 200000 + 1);
	free(s);
}
END_TEST

START_TEST(test_rq_api)
{
	struct rp_parser p;
	struct rp_cmd cmd;
	size_t used;
	const char big[] = "*2\r\n$3\r\nGET\r\n$536870912\r\nab";
	const char inl[] = "GET k\r\n";
	const char mb[] = "\r\n*1\r\n$4\r\nPING\r\n";
	int64_t v;

	rp_init(&p);
	ck_assert_uint_eq(p.max_bulk, 512ULL * 1024 * 1024);
	ck_assert_uint_eq(p.max_array, 1024 * 1024);
	ck_assert_uint_eq(p.max_inline, 65536);
	/* The largest bulk Redis takes; want tells how far the command reaches. */
	ck_assert_int_eq(rp_parse(&p, big, sizeof(big) - 1, &cmd, &used), RP_NEED_MORE);
	ck_assert_uint_eq(used, 0);
	ck_assert_uint_eq(p.want, 13 + 12 + 536870912 + 2);
	rp_free(&p);

	rp_init(&p);
	ck_assert_int_eq(rp_parse(&p, inl, sizeof(inl) - 1, &cmd, &used), RP_COMMAND);
	ck_assert(cmd.is_inline);
	ck_assert_uint_eq(used, sizeof(inl) - 1);
	/* Skipped lines are consumed with the command after them. */
	ck_assert_int_eq(rp_parse(&p, mb, sizeof(mb) - 1, &cmd, &used), RP_COMMAND);
	ck_assert(!cmd.is_inline);
	ck_assert_uint_eq(used, sizeof(mb) - 1);
	ck_assert_uint_eq(cmd.argc, 1);
	ck_assert_ptr_eq(cmd.argv[0].p, mb + 10);
	/* ... and by a need-more. */
	ck_assert_int_eq(rp_parse(&p, "\n*0\r\n*1\r\n", 9, &cmd, &used), RP_NEED_MORE);
	ck_assert_uint_eq(used, 5);
	rp_free(&p);
	rp_free(&p); /* twice is harmless */

	ck_assert(rp_strtoll("0", 1, &v) && v == 0);
	ck_assert(rp_strtoll("-1", 2, &v) && v == -1);
	ck_assert(rp_strtoll("9223372036854775807", 19, &v) && v == INT64_MAX);
	ck_assert(rp_strtoll("-9223372036854775808", 20, &v) && v == INT64_MIN);
	ck_assert(!rp_strtoll("9223372036854775808", 19, &v));
	ck_assert(!rp_strtoll("-9223372036854775809", 20, &v));
	ck_assert(!rp_strtoll("18446744073709551616", 20, &v));
	ck_assert(!rp_strtoll("", 0, &v));
	ck_assert(!rp_strtoll("-", 1, &v));
	ck_assert(!rp_strtoll("-0", 2, &v));
	ck_assert(!rp_strtoll("00", 2, &v));
	ck_assert(!rp_strtoll("+1", 2, &v));
	ck_assert(!rp_strtoll("1a", 2, &v));
}
END_TEST

/* A command of many elements grows the argument array, which is given
 * back after the command. */
START_TEST(test_rq_many_args)
{
	const uint32_t n = 100000;
	struct sb in = {0};
	struct rp_parser p;
	struct rp_cmd cmd;
	size_t used;

	sb_fmt(&in, "*%u\r\n", n);
	for (uint32_t i = 0; i < n; i++)
		sb_add(&in, i % 2 ? "$1\r\nb\r\n" : "$2\r\naa\r\n");
	sb_add(&in, "PING\r\n");
	rp_init(&p);
	ck_assert_int_eq(rp_parse(&p, in.s, in.n, &cmd, &used), RP_COMMAND);
	ck_assert_uint_eq(cmd.argc, n);
	for (uint32_t i = 0; i < n; i++)
		OK(cmd.argv[i].len == (i % 2 ? 1u : 2u));
	ck_assert_uint_ge(p.cap, n);
	ck_assert_int_eq(rp_parse(&p, in.s + used, in.n - used, &cmd, &used), RP_COMMAND);
	ck_assert_uint_le(p.cap, 1024);
	rp_free(&p);
	free(in.s);
}
END_TEST

/* ---- replies ---- */

struct rr_run {
	struct rr_parser p;
	struct sb stream;  /* payload of a streamed bulk so far */
	uint32_t st_depth; /* its header's depth */
	size_t st_bytes;   /* bytes consumed by it so far */
	bool in_stream;
	bool saw_chunk;
};

static void rr_desc(struct sb *out, uint32_t depth, const char *s, bool done)
{
	sb_fmt(out, "%u", depth);
	sb_add(out, s);
	sb_add(out, done ? ".;" : ";");
}

static int rr_step(void *parser, const char *buf, size_t len, size_t *used, struct sb *out)
{
	struct rr_run *r = parser;
	struct rr_token t;
	enum rr_status st = rr_parse(&r->p, buf, len, &t, used);
	struct sb d = {0};

	if (st == RR_NEED_MORE) {
		OK((*used) == (0));
		return STEP_MORE;
	}
	if (st == RR_INVALID) {
		struct rr_token t2;
		size_t u2;
		OK((r->p.why) != NULL);
		sb_add(out, "!");
		sb_add(out, r->p.why);
		OK(rr_parse(&r->p, buf, len, &t2, &u2) == RR_INVALID);
		return STEP_STOP;
	}
	OK(*used > 0 || (t.type == RR_CHUNK && t.end));
	if (t.p)
		OK(inside(t.p, t.len, buf, *used));
	sb_add(&d, "");
	switch (t.type) {
	case RR_SIMPLE:
	case RR_ERROR:
		sb_add(&d, t.type == RR_SIMPLE ? "+" : "-");
		sb_esc(&d, t.p, t.len);
		break;
	case RR_INTEGER:
		sb_fmt(&d, ":%lld", (long long)t.n);
		break;
	case RR_BULK:
		if (!t.whole) {
			OK(!r->in_stream);
			OK((t.p) == NULL);
			OK(!t.done);
			r->in_stream = true;
			r->st_depth = t.depth;
			r->st_bytes = *used;
			r->stream.n = 0;
			sb_add(&r->stream, "");
			free(d.s);
			return STEP_GO;
		}
		sb_add(&d, "$");
		sb_esc(&d, t.p, t.len);
		break;
	case RR_CHUNK:
		OK(r->in_stream);
		OK((t.depth) == (r->st_depth));
		r->saw_chunk = true;
		r->st_bytes += *used;
		sb_esc(&r->stream, t.p, t.len);
		if (!t.end) {
			OK(!t.done);
			free(d.s);
			return STEP_GO;
		}
		r->in_stream = false;
		/* Reassembled, it reads like a whole bulk: "$" then the payload. */
		sb_add(&d, "$");
		sb_add(&d, r->stream.s);
		break;
	case RR_NIL:
		sb_add(&d, "$nil");
		break;
	case RR_ARRAY:
		sb_fmt(&d, "*%lld", (long long)t.n);
		break;
	case RR_NIL_ARRAY:
		sb_add(&d, "*nil");
		break;
	default:
		ck_abort_msg("bad token type %d", t.type);
	}
	rr_desc(out, t.type == RR_CHUNK ? r->st_depth : t.depth, d.s, t.done);
	OK(t.done == rr_idle(&r->p));
	free(d.s);
	return STEP_GO;
}

static char *rr_run_one(const char *in, size_t n, size_t max_line, size_t stream_over,
                        const struct cut *c, bool *saw_chunk)
{
	struct rr_run r;
	struct sb out = {0};
	size_t left;
	char *s;

	memset(&r, 0, sizeof(r));
	rr_init(&r.p);
	if (max_line)
		r.p.max_line = max_line;
	r.p.stream_over = stream_over;

	s = drive(in, n, c, rr_step, &r, &left);
	/* A bulk cut short counts as left over, streamed or not. */
	if (r.in_stream && !r.p.failed)
		left += r.st_bytes;
	sb_add(&out, s);
	if (left)
		sb_fmt(&out, "+%zu", left);
	free(s);
	s = out.s;
	if (saw_chunk)
		*saw_chunk = r.saw_chunk;
	free(r.stream.s);
	return s;
}

static void rr_check(const char *in, size_t n, size_t max_line, const char *want)
{
	/* Streamed or whole, and however cut, the same tokens. */
	static const size_t streams[] = {SIZE_MAX, 0, 2};

	for (int k = 0; k < NCASES(streams); k++) {
		struct cut whole = {0, 0, false}, bytes = {0, 1, true};
		char *s = rr_run_one(in, n, max_line, streams[k], &whole, NULL);
		ck_assert_msg(!strcmp(s, want), "\"%.60s\" whole: got \"%s\", want \"%s\"", in, s,
		              want);
		free(s);
		s = rr_run_one(in, n, max_line, streams[k], &bytes, NULL);
		ck_assert_msg(!strcmp(s, want), "\"%.60s\" bytewise (stream over %zu): got \"%s\"",
		              in, streams[k], s);
		free(s);
		for (size_t i = 1; i < n; i++) {
			struct cut at = {i, 0, true};
			s = rr_run_one(in, n, max_line, streams[k], &at, NULL);
			ck_assert_msg(!strcmp(s, want),
			              "\"%.60s\" cut at %zu (stream over %zu): got \"%s\", want "
			              "\"%s\"",
			              in, i, streams[k], s, want);
			free(s);
		}
	}
}

struct rrc {
	const char *in;
	size_t n;
	size_t max_line;
	const char *want;
};

#define RR(lit, ml, want)                                                                          \
	{                                                                                          \
		(lit), sizeof(lit) - 1, (ml), (want)                                               \
	}

static const struct rrc rr_cases[] = {
    RR("+OK\r\n", 0, "0+OK.;"),
    RR("+\r\n", 0, "0+.;"),
    RR("-ERR unknown command 'x'\r\n", 0, "0-ERR\\x20unknown\\x20command\\x20'x'.;"),
    RR("-LOADING Redis is loading\r\n+PONG\r\n", 0,
       "0-LOADING\\x20Redis\\x20is\\x20loading.;0+PONG.;"),
    RR(":0\r\n:-5\r\n:9223372036854775807\r\n", 0, "0:0.;0:-5.;0:9223372036854775807.;"),
    RR(":-9223372036854775808\r\n", 0, "0:-9223372036854775808.;"),
    RR("$3\r\nfoo\r\n", 0, "0$foo.;"),
    RR("$0\r\n\r\n", 0, "0$.;"),
    RR("$-1\r\n", 0, "0$nil.;"),
    RR("$6\r\na\r\n\0\xffz\r\n", 0, "0$a\\x0d\\x0a\\x00\\xffz.;"),
    RR("*2\r\n$1\r\na\r\n$-1\r\n", 0, "0*2;1$a;1$nil.;"),
    RR("*3\r\n$3\r\nfoo\r\n$-1\r\n$0\r\n\r\n*1\r\n$1\r\nx\r\n", 0, "0*3;1$foo;1$nil;1$.;0*1;1$x.;"),
    RR("*0\r\n*-1\r\n", 0, "0*0.;0*nil.;"),
    RR("*2\r\n*1\r\n:1\r\n*0\r\n", 0, "0*2;1*1;2:1;1*0.;"),
    RR("*2\r\n*2\r\n+a\r\n-b\r\n*-1\r\n:7\r\n", 0, "0*2;1*2;2+a;2-b;1*nil.;0:7.;"),
    RR("*1\r\n*1\r\n*1\r\n*1\r\n$2\r\nzz\r\n", 0, "0*1;1*1;2*1;3*1;4$zz.;"),
    /* Incomplete. */
    RR("+OK\r", 0, "+4"),
    RR("+OK", 0, "+3"),
    RR("$3\r\nfo", 0, "+6"),
    RR("$3\r\nfoo\r", 0, "+8"),
    RR("*2\r\n$1\r\na\r\n", 0, "0*2;1$a;"),
    /* Invalid. */
    RR("%2\r\n", 0, "!unexpected type byte"),
    RR("_\r\n", 0, "!unexpected type byte"),
    RR("\r\n", 0, "!unexpected type byte"),
    RR("+OK\rX", 0, "!CR not followed by LF"),
    RR("+O\nK\r\n", 0, "!LF inside a status line"),
    RR(":01\r\n", 0, "!invalid integer"),
    RR(":+1\r\n", 0, "!invalid integer"),
    RR(":\r\n", 0, "!invalid integer"),
    RR(": 1\r\n", 0, "!invalid integer"),
    RR(":9223372036854775808\r\n", 0, "!invalid integer"),
    RR("$-2\r\n", 0, "!invalid bulk length"),
    RR("$\r\n", 0, "!invalid bulk length"),
    RR("$536870913\r\n", 0, "!invalid bulk length"),
    RR("$3\r\nfooXY", 0, "!bulk string not followed by CRLF"),
    RR("$3\r\nfoo\rX", 0, "!bulk string not followed by CRLF"),
    RR("*-2\r\n", 0, "!invalid array length"),
    RR("*1048577\r\n", 0, "!invalid array length"),
    RR("*1\r\n!x\r\n", 0, "0*1;!unexpected type byte"),
    RR("+0123456789\r\n", 10, "0+0123456789.;"),
    RR("+0123456789a\r\n", 10, "!reply line too long"),
    RR("+0123456789a", 10, "!reply line too long"),
    RR("-0123456789", 10, "+11"),
};

START_TEST(test_rr_cases)
{
	const struct rrc *c = &rr_cases[_i];
	rr_check(c->in, c->n, c->max_line, c->want);
}
END_TEST

START_TEST(test_rr_depth)
{
	struct sb in = {0}, want = {0};
	struct cut whole = {0, 0, false};
	char *s;

	for (int i = 0; i < RR_MAX_DEPTH; i++) {
		sb_add(&in, "*1\r\n");
		sb_fmt(&want, "%d*1;", i);
	}
	sb_add(&in, ":1\r\n");
	sb_fmt(&want, "%d:1.;", RR_MAX_DEPTH);
	s = rr_run_one(in.s, in.n, 0, SIZE_MAX, &whole, NULL);
	ck_assert_str_eq(s, want.s);
	free(s);
	/* One level more is refused. */
	in.n -= 4;
	sb_add(&in, "*1\r\n:1\r\n");
	want.n = 0;
	for (int i = 0; i < RR_MAX_DEPTH; i++)
		sb_fmt(&want, "%d*1;", i);
	sb_add(&want, "!arrays nested too deep");
	s = rr_run_one(in.s, in.n, 0, SIZE_MAX, &whole, NULL);
	ck_assert_str_eq(s, want.s);
	free(s);
	free(in.s);
	free(want.s);
}
END_TEST

/* A big bulk streams as chunks when asked to, and not otherwise. */
START_TEST(test_rr_stream)
{
	size_t n;
	char *in = fill(1 << 20, 'v', "*2\r\n$1048576\r\n", "\r\n$1\r\nk\r\n", &n);
	struct cut c = {0, 16384, false};
	bool saw;
	char *s;
	struct rr_parser p;
	struct rr_token t;
	size_t used;

	s = rr_run_one(in, n, 0, 65536, &c, &saw);
	ck_assert(saw);
	ck_assert_uint_eq(strlen(s), 4 + 2 + (1 << 20) + 1 + 5);
	ck_assert(!strncmp(s, "0*2;1$vvv", 9));
	ck_assert_str_eq(s + strlen(s) - 5, "1$k.;");
	free(s);
	s = rr_run_one(in, n, 0, SIZE_MAX, &c, &saw);
	ck_assert(!saw);
	free(s);

	/* want: how many bytes the whole bulk needs. */
	rr_init(&p);
	ck_assert_int_eq(rr_parse(&p, in, 100, &t, &used), RR_TOKEN);
	ck_assert_int_eq(t.type, RR_ARRAY);
	ck_assert_int_eq(rr_parse(&p, in + used, 100 - used, &t, &used), RR_NEED_MORE);
	ck_assert_uint_eq(p.want, 10 + (1 << 20) + 2);
	free(in);
}
END_TEST

START_TEST(test_rr_compose)
{
	char buf[64];
	size_t n;
	struct rr_parser p;
	struct rr_token t;
	size_t used;

	n = rr_put_hdr(buf, sizeof(buf), '*', 3);
	ck_assert_uint_eq(n, 4);
	ck_assert(!memcmp(buf, "*3\r\n", 4));
	n = rr_put_hdr(buf, sizeof(buf), ':', INT64_MIN);
	ck_assert(n <= RR_HDR_MAX && !memcmp(buf, ":-9223372036854775808\r\n", n) && n == 23);
	n = rr_put_hdr(buf, sizeof(buf), '$', INT64_MAX);
	ck_assert(!memcmp(buf, "$9223372036854775807\r\n", n) && n == 22);
	n = rr_put_hdr(buf, sizeof(buf), '$', 0);
	ck_assert(n == 4 && !memcmp(buf, "$0\r\n", 4));
	n = rr_put_hdr(buf, sizeof(buf), '$', -1);
	ck_assert(n == 5 && !memcmp(buf, RR_NULL_BULK, 5));
	n = rr_put_hdr(buf, sizeof(buf), '*', -1);
	ck_assert(n == 5 && !memcmp(buf, RR_NULL_ARRAY, 5));

	/* Sizing: nothing is written when it does not fit. */
	memset(buf, 'x', sizeof(buf));
	ck_assert_uint_eq(rr_put_bulk(buf, 0, "a\r\nb", 4), 4 + 4 + 2);
	ck_assert_uint_eq(rr_put_bulk(buf, 9, "a\r\nb", 4), 10);
	ck_assert_int_eq(buf[0], 'x');
	ck_assert_uint_eq(rr_put_hdr(buf, 3, '*', 10), 5);
	ck_assert_int_eq(buf[0], 'x');
	n = rr_put_bulk(buf, sizeof(buf), "a\r\nb", 4);
	ck_assert(n == 10 && !memcmp(buf, "$4\r\na\r\nb\r\n", 10));
	n = rr_put_bulk(buf, sizeof(buf), NULL, 0);
	ck_assert(n == 6 && !memcmp(buf, "$0\r\n\r\n", 6));
	n = rr_put_line(buf, sizeof(buf), '-', "ERR a\r\nb", 8);
	ck_assert(n == 11 && !memcmp(buf, "-ERR a  b\r\n", 11));
	n = rr_put_line(buf, sizeof(buf), '+', "OK", 2);
	ck_assert(n == 5 && !memcmp(buf, "+OK\r\n", 5));
	ck_assert_uint_eq(rr_put_line(buf, 4, '+', "OK", 2), 5);

	/* What is composed parses back. */
	n = rr_put_bulk(buf, sizeof(buf), "\r\n\0", 3);
	rr_init(&p);
	ck_assert_int_eq(rr_parse(&p, buf, n, &t, &used), RR_TOKEN);
	ck_assert(t.type == RR_BULK && t.whole && t.done && t.len == 3 && used == n);
	ck_assert(!memcmp(t.p, "\r\n\0", 3));
}
END_TEST

/* ---- the oracle: a real redis-server ---- */

/* What Redis answers to the commands the oracle inputs use. */
static void emulate(struct sb *out, const struct rp_cmd *cmd)
{
	char buf[256];
	const struct rp_arg *a = cmd->argv;
	bool ping = a[0].len == 4 && !strncasecmp(a[0].p, "ping", 4);
	bool echo = a[0].len == 4 && !strncasecmp(a[0].p, "echo", 4);

	ck_assert_msg(ping || echo, "oracle inputs use PING and ECHO only");
	if (ping && cmd->argc == 1) {
		sb_add(out, "+PONG\r\n");
	} else if ((ping && cmd->argc == 2) || (echo && cmd->argc == 2)) {
		size_t n = rr_put_hdr(buf, sizeof(buf), '$', (int64_t)a[1].len);
		sb_addn(out, buf, n);
		sb_addn(out, a[1].p, a[1].len);
		sb_add(out, "\r\n");
	} else {
		snprintf(buf, sizeof(buf), "-ERR wrong number of arguments for '%s' command\r\n",
		         ping ? "ping" : "echo");
		sb_add(out, buf);
	}
}

/* Our answer to in, as Redis (7.0: up to INT_MAX elements) would give it;
 * *closed: it ends in a protocol error. */
static char *oracle_expect(const char *in, size_t n, bool *closed, size_t *outlen)
{
	struct rp_parser p;
	struct sb out = {0};
	size_t pos = 0, used;

	rp_init(&p);
	p.max_array = INT_MAX;
	*closed = false;
	sb_add(&out, "");
	for (;;) {
		struct rp_cmd cmd;
		enum rp_status st = rp_parse(&p, in + pos, n - pos, &cmd, &used);
		pos += used;
		if (st == RP_NEED_MORE)
			break;
		if (st == RP_ERROR) {
			sb_addn(&out, cmd.reply, cmd.replylen);
			*closed = true;
			break;
		}
		emulate(&out, &cmd);
	}
	ck_assert_msg(*closed || pos == n, "oracle input \"%.40s\" must be complete", in);
	rp_free(&p);
	*outlen = out.n;
	return out.s;
}

static const struct rq oracle_cases[] = {
    RQ("PING\r\n", 0, NULL),
    RQ("ping\n", 0, NULL),
    RQ("\r\n\n  \r\n\t\nPING\n", 0, NULL),
    RQ("*1\r\n$4\r\nPING\r\n*-1\r\n*0\r\n*-7\r\nPING\r\n", 0, NULL),
    RQ("*2\r\n$4\r\nECHO\r\n$4\r\na\r\nb\r\n", 0, NULL),
    RQ("*2\r\n$4\r\nECHO\r\n$3\r\n\0\xff\x01\r\n", 0, NULL),
    RQ("*1\rx$4\r\nPING\r\n", 0, NULL),
    RQ("*1\r\n$4\r\nPINGxx", 0, NULL),
    RQ("*1\r\n$4\rxPINGxy", 0, NULL),
    RQ("ECHO \"\\x41\\x4a\\x7e\\xff\\xFf\\n\\r\\t\\b\\a\\\\\\\"\\q\\x4g\\x\"\n", 0, NULL),
    RQ("ECHO 'it\\'s \\n \"'\r\n", 0, NULL),
    RQ("ECHO \"it's\"\r\n", 0, NULL),
    RQ("ECHO a\"b c\"\r\n", 0, NULL),
    RQ("ECHO a'b c'\r\n", 0, NULL),
    RQ("ECHO \"a\"\v\r\n", 0, NULL),
    RQ("ECHO \"\"\r\n", 0, NULL),
    RQ("ECHO a\vb\r\n", 0, NULL),
    RQ("\v\fECHO \vx\r\n", 0, NULL),
    RQ("ECHO \xff\xfe\r\n", 0, NULL),
    RQ("ECHO \"a\rb\"\r\n", 0, NULL),
    RQ("PING a\rb\r\n", 0, NULL),
    RQ("PING\r\r\n", 0, NULL),
    RQ("  PING   \"x y\"  \r\n", 0, NULL),
    RQ("*x\r\n", 0, NULL),
    RQ("*\r\n", 0, NULL),
    RQ("*01\r\n", 0, NULL),
    RQ("*+1\r\n", 0, NULL),
    RQ("*1 \r\n", 0, NULL),
    RQ("*-0\r\n", 0, NULL),
    RQ("*1\n\r\n", 0, NULL),
    RQ("*99999999999999999999\r\n", 0, NULL),
    RQ("*2147483648\r\n", 0, NULL),
    RQ("*1\r\nA\r\n", 0, NULL),
    RQ("*1\r\n\r\n", 0, NULL),
    RQ("*1\r\n\n\r\n", 0, NULL),
    RQ("*1\r\n\xff\r\n", 0, NULL),
    RQ("*2\r\n$4\r\nECHO\r\n:5\r\n", 0, NULL),
    RQ("*1\r\n$-1\r\n", 0, NULL),
    RQ("*1\r\n$\r\n", 0, NULL),
    RQ("*1\r\n$01\r\n", 0, NULL),
    RQ("*1\r\n$1 \r\n", 0, NULL),
    RQ("*1\r\n$536870913\r\n", 0, NULL),
    RQ("PING\r\n*1\r\n$x\r\n", 0, NULL),
    RQ("ECHO \"abc\r\n", 0, NULL),
    RQ("ECHO 'abc\r\n", 0, NULL),
    RQ("ECHO \"a\"b\r\n", 0, NULL),
    RQ("ECHO 'a'b\r\n", 0, NULL),
    RQ("ECHO \"a\\\"\r\n", 0, NULL),
    RQ("ECHO \"a\"\"b\"\r\n", 0, NULL),
    RQ("PING\r\nECHO \"\n", 0, NULL),
};

/* Send in to Redis on a fresh connection; compare its answer with ours. */
static void oracle_one(int port, const char *in, size_t n)
{
	static const char marker[] = "ECHO __end__\r\n";
	bool closed;
	size_t elen, glen;
	char *exp, *got, *full = malloc(n + sizeof(marker));
	int fd = tu_connect(port);

	ck_assert_int_ge(fd, 0);
	ck_assert_ptr_nonnull(full);
	memcpy(full, in, n);
	exp = oracle_expect(in, n, &closed, &elen);
	if (closed) {
		/* Redis answers and closes. */
		tu_send(fd, in, n);
		got = tu_recv_all(fd, 5000, 5000, &glen);
	} else {
		/* A last command of our own shows where Redis' answer ends. */
		memcpy(full + n, marker, sizeof(marker) - 1);
		free(exp);
		exp = oracle_expect(full, n + sizeof(marker) - 1, &closed, &elen);
		tu_send(fd, full, n + sizeof(marker) - 1);
		got = tu_recv_until(fd, "__end__\r\n", 5000, &glen);
	}
	ck_assert_msg(glen == elen && !memcmp(got, exp, elen),
	              "input \"%.60s\": redis sent \"%.200s\" (%zu), we expect \"%.200s\" (%zu)",
	              in, got, glen, exp, elen);
	if (closed)
		ck_assert_msg(tu_closed(fd, 2000), "redis did not close after \"%.60s\"", in);
	close(fd);
	free(got);
	free(exp);
	free(full);
}

static struct proc redis;

static void redis_setup(void)
{
	tu_redis_start(&redis);
}

static void redis_teardown(void)
{
	tu_stop(&redis);
}

START_TEST(test_oracle_cases)
{
	for (int i = 0; i < NCASES(oracle_cases); i++)
		oracle_one(redis.port, oracle_cases[i].in, oracle_cases[i].n);
}
END_TEST

/* The 64 KiB bounds, over a real socket (Redis reads 16 KiB at a time). */
START_TEST(test_oracle_big)
{
	static const struct {
		size_t n;
		char ch;
		const char *head, *tail;
	} big[] = {
	    {65537, 'a', "", ""},
	    {200000, 'a', "", "\n"},
	    {65531, 'a', "ECHO ", "\n"},
	    {65530, 'a', "ECHO ", "\r\n"},
	    {65537, '1', "*", ""},
	    {65537, '1', "*1\r\n$", ""},
	    {100000, 'b', "*2\r\n$4\r\nECHO\r\n$100000\r\n", "\r\n"},
	};

	for (int i = 0; i < NCASES(big); i++) {
		size_t n;
		char *s = fill(big[i].n, big[i].ch, big[i].head, big[i].tail, &n);
		oracle_one(redis.port, s, n);
		free(s);
	}
}
END_TEST

Suite *proto_resp_suite(void)
{
	Suite *s = suite_create("proto_resp");
	TCase *tr = tcase_create("requests");
	TCase *tp = tcase_create("replies");
	TCase *to = tcase_create("redis_oracle");

	tcase_add_loop_test(tr, test_rq_ok, 0, NCASES(rq_ok));
	tcase_add_loop_test(tr, test_rq_err, 0, NCASES(rq_err));
	tcase_add_test(tr, test_rq_big_lines);
	tcase_add_test(tr, test_rq_api);
	tcase_add_test(tr, test_rq_many_args);
	tcase_set_timeout(tr, 60);
	suite_add_tcase(s, tr);

	tcase_add_loop_test(tp, test_rr_cases, 0, NCASES(rr_cases));
	tcase_add_test(tp, test_rr_depth);
	tcase_add_test(tp, test_rr_stream);
	tcase_add_test(tp, test_rr_compose);
	tcase_set_timeout(tp, 60);
	suite_add_tcase(s, tp);

	tcase_add_checked_fixture(to, redis_setup, redis_teardown);
	tcase_add_test(to, test_oracle_cases);
	tcase_add_test(to, test_oracle_big);
	tcase_set_timeout(to, 60);
	suite_add_tcase(s, to);
	return s;
}
