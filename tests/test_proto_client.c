/*
 * test_proto_client: unit tests for the client request parser.
 *
 * Every input is fed the way a connection sees it: in one read, one byte per
 * read, and in reads split at pseudo-random points (fixed seeds, so failures
 * reproduce). The caller model is the one in client.c: keep the unconsumed
 * bytes, append the new ones, call pc_parse until it needs more. All feeds
 * must give the same results, and those must match memcached 1.6.18 as
 * measured (/tmp/notes/memcached_oracle.md), except where DESIGN §3 makes
 * coalesced stricter (get/gets keys with a byte <= 0x20 or 0x7f, NUL
 * included, are refused with CLIENT_ERROR bad command line format).
 *
 * Tests in the "regressions" case pin down disagreements with memcached that
 * the parser once had (see the comments there).
 */
#include <check.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "proto_client.h"

Suite *proto_client_suite(void);

#define MAX_LINE 65536 /* the max_line_bytes default */
#define MAX_RESULTS 16
#define NSEEDS 8

/* ------------------------------------------------------------------------ */
/* Feeding a parser as a connection would                                    */

struct result {
	enum pc_status st;
	enum pc_type type;
	const char *reply;
	const char *why;
	bool client_error;
	bool unsupported;
	size_t end; /* stream offset just past the bytes this result consumed */
	uint32_t nkeys;
	size_t *koff; /* keys as stream offsets: buffers move between reads */
	size_t *klen;
	bool has_args;
	size_t args_off, argslen;
};

struct run {
	struct result r[MAX_RESULTS];
	size_t n;
	bool closed;
	size_t left; /* bytes still unconsumed when the input ran out */
};

enum split { SPLIT_WHOLE, SPLIT_BYTES, SPLIT_RANDOM, SPLIT_LIST };

struct splitter {
	enum split how;
	uint64_t rng;
	const size_t *list; /* SPLIT_LIST: read sizes, then the rest at once */
	size_t nlist, at;
	char name[32];
};

static struct splitter split_whole(void)
{
	struct splitter s = {.how = SPLIT_WHOLE, .name = "one read"};
	return s;
}

static struct splitter split_bytes(void)
{
	struct splitter s = {.how = SPLIT_BYTES, .name = "byte by byte"};
	return s;
}

static struct splitter split_random(unsigned seed)
{
	struct splitter s = {.how = SPLIT_RANDOM};
	/* Spread small seeds over the state so the first reads differ. */
	s.rng = (uint64_t)seed * 0x9E3779B97F4A7C15u;
	snprintf(s.name, sizeof(s.name), "random seed %u", seed);
	return s;
}

static struct splitter split_list(const size_t *list, size_t n)
{
	struct splitter s = {.how = SPLIT_LIST, .list = list, .nlist = n, .name = "given reads"};
	return s;
}

static size_t next_chunk(struct splitter *s, size_t remaining)
{
	size_t n = remaining;
	uint64_t x;

	switch (s->how) {
	case SPLIT_WHOLE:
		break;
	case SPLIT_BYTES:
		n = 1;
		break;
	case SPLIT_LIST:
		if (s->at < s->nlist)
			n = s->list[s->at++];
		break;
	case SPLIT_RANDOM:
		/* xorshift64: reproducible without depending on libc's rand(). */
		x = s->rng;
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		s->rng = x;
		/* Mostly short reads, which cut lines anywhere, now and then a long one. */
		n = (x >> 40) % 8 == 0 ? 1 + (size_t)(x % 512) : 1 + (size_t)(x % 8);
		break;
	}
	if (n == 0)
		n = 1;
	return n < remaining ? n : remaining;
}

/* Bytes as printable text, for failure messages. A few buffers in turn, so
 * that one message may show several strings. */
static const char *show(const char *in, size_t len)
{
	static char bufs[4][200];
	static unsigned turn;
	char *out = bufs[turn++ % 4];
	size_t o = 0, i;

	for (i = 0; i < len && o + 8 < sizeof(bufs[0]); i++) {
		unsigned char c = (unsigned char)in[i];
		if (c >= 0x20 && c < 0x7f && c != '\\')
			out[o++] = (char)c;
		else
			o += (size_t)snprintf(out + o, sizeof(bufs[0]) - o, "\\x%02x", c);
	}
	if (i < len)
		o += (size_t)snprintf(out + o, sizeof(bufs[0]) - o, "...");
	out[o] = '\0';
	return out;
}

static void record(struct run *run, const struct pc_cmd *cmd, enum pc_status st, const char *buf,
                   size_t used, size_t base, const char *what)
{
	struct result *r;

	ck_assert_msg(run->n < MAX_RESULTS, "%s: more than %d results", what, MAX_RESULTS);
	r = &run->r[run->n++];
	memset(r, 0, sizeof(*r));
	r->st = st;
	r->type = cmd->type;
	r->reply = cmd->reply;
	r->why = cmd->why;
	r->client_error = cmd->client_error;
	r->unsupported = cmd->unsupported;
	r->end = base + used;
	if (st == PC_COMMAND && (cmd->type == PC_GET || cmd->type == PC_GETS)) {
		r->nkeys = cmd->nkeys;
		r->koff = calloc(cmd->nkeys + 1, sizeof(size_t));
		r->klen = calloc(cmd->nkeys + 1, sizeof(size_t));
		ck_assert(r->koff && r->klen);
		for (uint32_t i = 0; i < cmd->nkeys; i++) {
			const char *p = cmd->keys[i].p;
			/* Keys point into the bytes this command consumed. */
			ck_assert_msg(p >= buf && p + cmd->keys[i].len <= buf + used,
			              "%s: key %u outside the consumed bytes", what, i);
			r->koff[i] = base + (size_t)(p - buf);
			r->klen[i] = cmd->keys[i].len;
		}
	}
	if (st == PC_COMMAND && cmd->type == PC_STATS && cmd->args) {
		ck_assert_msg(cmd->args >= buf && cmd->args + cmd->argslen <= buf + used,
		              "%s: stats args outside the consumed bytes", what);
		r->has_args = true;
		r->args_off = base + (size_t)(cmd->args - buf);
		r->argslen = cmd->argslen;
	}
	/* The header's promises, whatever the input. */
	if (st == PC_COMMAND && cmd->type == PC_REPLY) {
		size_t n = cmd->reply ? strlen(cmd->reply) : 0;
		ck_assert_msg(n >= 2 && memcmp(cmd->reply + n - 2, "\r\n", 2) == 0,
		              "%s: PC_REPLY without a CRLF-terminated reply", what);
	}
	if (st == PC_COMMAND && cmd->type == PC_SILENT)
		ck_assert_msg(cmd->reply == NULL, "%s: PC_SILENT with a reply", what);
	if (st == PC_CLOSE)
		ck_assert_msg(cmd->why != NULL, "%s: PC_CLOSE without a reason to log", what);
}

static void run_free(struct run *run)
{
	for (size_t i = 0; i < run->n; i++) {
		free(run->r[i].koff);
		free(run->r[i].klen);
	}
	run->n = 0;
}

/* Feed in[0..len) through a fresh parser, read by read as s decides. The
 * buffer handed to pc_parse is always exactly as long as its content, so a
 * sanitizer catches any read past len. */
static void feed(struct run *run, const char *in, size_t len, size_t max_line, struct splitter *s)
{
	struct pc_parser p;
	char *buf = NULL;
	size_t blen = 0, base = 0, pos = 0;
	char what[300];

	memset(run, 0, sizeof(*run));
	snprintf(what, sizeof(what), "\"%s\" (%s)", show(in, len), s->name);
	pc_init(&p, max_line);
	while (pos < len && !run->closed) {
		size_t n = next_chunk(s, len - pos);
		char *nb = realloc(buf, blen + n);

		ck_assert(nb != NULL);
		buf = nb;
		memcpy(buf + blen, in + pos, n);
		blen += n;
		pos += n;
		while (blen > 0) {
			struct pc_cmd cmd;
			size_t used = SIZE_MAX;
			enum pc_status st = pc_parse(&p, buf, blen, &cmd, &used);

			ck_assert_msg(used <= blen, "%s: consumed %zu of %zu bytes", what, used,
			              blen);
			if (st != PC_NEED_MORE)
				record(run, &cmd, st, buf, used, base, what);
			if (used) {
				memmove(buf, buf + used, blen - used);
				blen -= used;
				base += used;
				if (blen) {
					nb = realloc(buf, blen);
					ck_assert(nb != NULL);
					buf = nb;
				}
			}
			if (st == PC_CLOSE) {
				run->closed = true;
				break;
			}
			if (st == PC_NEED_MORE)
				break;
			/* A command that consumes nothing would loop forever. */
			ck_assert_msg(used > 0, "%s: a command consumed no bytes", what);
		}
	}
	run->left = blen;
	pc_free(&p);
	free(buf);
}

static bool same_str(const char *a, const char *b)
{
	return a == b || (a && b && strcmp(a, b) == 0);
}

/* b must equal a: how the input was split may not change the results. */
static void same_run(const struct run *a, const struct run *b, const char *in, size_t len,
                     const char *mode)
{
	char what[200];

	snprintf(what, sizeof(what), "%s", show(in, len));

	ck_assert_msg(a->n == b->n, "\"%s\": %zu results in one read, %zu %s", what, a->n, b->n,
	              mode);
	ck_assert_msg(a->closed == b->closed, "\"%s\": closed differs %s", what, mode);
	if (!a->closed)
		ck_assert_msg(a->left == b->left, "\"%s\": %zu bytes left in one read, %zu %s",
		              what, a->left, b->left, mode);
	for (size_t i = 0; i < a->n; i++) {
		const struct result *x = &a->r[i], *y = &b->r[i];

		ck_assert_msg(
		    x->st == y->st && x->type == y->type && same_str(x->reply, y->reply) &&
		        x->client_error == y->client_error && x->unsupported == y->unsupported,
		    "\"%s\": result %zu differs %s (status %d/%d, type %d/%d)", what, i, mode,
		    x->st, y->st, x->type, y->type);
		if (x->st != PC_CLOSE)
			ck_assert_msg(x->end == y->end, "\"%s\": result %zu ends at %zu, %zu %s",
			              what, i, x->end, y->end, mode);
		ck_assert_msg(x->nkeys == y->nkeys, "\"%s\": result %zu: %u keys, %u %s", what, i,
		              x->nkeys, y->nkeys, mode);
		for (uint32_t k = 0; k < x->nkeys; k++)
			ck_assert_msg(x->koff[k] == y->koff[k] && x->klen[k] == y->klen[k],
			              "\"%s\": result %zu key %u differs %s", what, i, k, mode);
		ck_assert_msg(x->has_args == y->has_args && x->args_off == y->args_off &&
		                  x->argslen == y->argslen,
		              "\"%s\": result %zu stats args differ %s", what, i, mode);
	}
}

/* Feed in one read into *whole, then byte by byte and with NSEEDS random
 * splits, each of which must give what the single read gave. */
static void run_all_modes(const char *in, size_t len, size_t max_line, struct run *whole)
{
	struct splitter s = split_whole();
	struct run r;

	feed(whole, in, len, max_line, &s);
	s = split_bytes();
	feed(&r, in, len, max_line, &s);
	same_run(whole, &r, in, len, s.name);
	run_free(&r);
	for (unsigned seed = 1; seed <= NSEEDS; seed++) {
		s = split_random(seed);
		feed(&r, in, len, max_line, &s);
		same_run(whole, &r, in, len, s.name);
		run_free(&r);
	}
}

/* ------------------------------------------------------------------------ */
/* Expected results                                                          */

#define F_CE 1u    /* client_error set */
#define F_UNSUP 2u /* unsupported set */

struct want {
	enum pc_status st; /* PC_NEED_MORE (0) ends the list */
	enum pc_type type;
	const char *reply;
	unsigned flags;
	size_t end; /* stream offset after this result; 0: the whole input */
	const char *keys[8];
	const char *args;
};

struct pcase {
	const char *in;
	size_t len;
	struct want w[4];
	size_t left; /* bytes still waiting at the end of the input */
};

#define L(lit) (sizeof(lit) - 1)

#define R_ERROR "ERROR\r\n"
#define R_BAD_FORMAT "CLIENT_ERROR bad command line format\r\n"
#define R_BAD_CHUNK "CLIENT_ERROR bad data chunk\r\n"
#define R_TOO_LONG "CLIENT_ERROR line too long\r\n"
#define R_UNSUPPORTED "SERVER_ERROR not supported\r\n"

#define W_GET(e, ...)                                                                              \
	{                                                                                          \
		.st = PC_COMMAND, .type = PC_GET, .end = (e), .keys = { __VA_ARGS__ }              \
	}
#define W_GETS(e, ...)                                                                             \
	{                                                                                          \
		.st = PC_COMMAND, .type = PC_GETS, .end = (e), .keys = { __VA_ARGS__ }             \
	}
#define W_REPLY(e, text, fl)                                                                       \
	{                                                                                          \
		.st = PC_COMMAND, .type = PC_REPLY, .reply = (text), .flags = (fl), .end = (e)     \
	}
#define W_ERROR(e) W_REPLY(e, R_ERROR, F_CE)
#define W_BADFMT(e) W_REPLY(e, R_BAD_FORMAT, F_CE)
#define W_CHUNK(e) W_REPLY(e, R_BAD_CHUNK, F_CE)
#define W_UNSUP(e) W_REPLY(e, R_UNSUPPORTED, F_UNSUP)
#define W_SILENT(e, fl)                                                                            \
	{                                                                                          \
		.st = PC_COMMAND, .type = PC_SILENT, .flags = (fl), .end = (e)                     \
	}
#define W_VERSION(e)                                                                               \
	{                                                                                          \
		.st = PC_COMMAND, .type = PC_VERSION, .end = (e)                                   \
	}
#define W_QUIT(e)                                                                                  \
	{                                                                                          \
		.st = PC_COMMAND, .type = PC_QUIT, .end = (e)                                      \
	}
#define W_STATS(e, a)                                                                              \
	{                                                                                          \
		.st = PC_COMMAND, .type = PC_STATS, .end = (e), .args = (a)                        \
	}
#define W_CLOSE(text)                                                                              \
	{                                                                                          \
		.st = PC_CLOSE, .reply = (text), .flags = F_CE                                     \
	}

/* A case: the input literal (NULs included) and its expected results. */
#define C(lit, ...)                                                                                \
	{                                                                                          \
		.in = (lit), .len = sizeof(lit) - 1, .w = { __VA_ARGS__ }                          \
	}
/* The same with bytes still waiting for a newline at the end. */
#define CL(lit, n, ...)                                                                            \
	{                                                                                          \
		.in = (lit), .len = sizeof(lit) - 1, .w = {__VA_ARGS__}, .left = (n)               \
	}
/* No result yet; n bytes wait. */
#define WAIT(lit, n)                                                                               \
	{                                                                                          \
		.in = (lit), .len = sizeof(lit) - 1, .left = (n)                                   \
	}
/* A case built at run time. */
#define DYN(p, n, ...)                                                                             \
	{                                                                                          \
		.in = (p), .len = (n), .w = { __VA_ARGS__ }                                        \
	}

/* 250 and 251 byte keys, by literal concatenation. */
#define K10 "kkkkkkkkkk"
#define K50 K10 K10 K10 K10 K10
#define K250 K50 K50 K50 K50 K50
#define K251 K250 "k"

static void check_want(const struct run *run, const struct pcase *c)
{
	char what[200];
	size_t nw = 0;

	snprintf(what, sizeof(what), "%s", show(c->in, c->len));
	while (nw < 4 && c->w[nw].st != PC_NEED_MORE)
		nw++;
	ck_assert_msg(run->n == nw, "\"%s\": %zu results, expected %zu", what, run->n, nw);
	for (size_t i = 0; i < nw; i++) {
		const struct want *w = &c->w[i];
		const struct result *r = &run->r[i];
		size_t nk = 0;

		ck_assert_msg(r->st == w->st, "\"%s\": result %zu: status %d, expected %d", what, i,
		              r->st, w->st);
		if (w->st == PC_COMMAND)
			ck_assert_msg(r->type == w->type,
			              "\"%s\": result %zu: type %d, expected %d", what, i, r->type,
			              w->type);
		ck_assert_msg(same_str(r->reply, w->reply),
		              "\"%s\": result %zu: reply \"%s\", expected \"%s\"", what, i,
		              r->reply ? show(r->reply, strlen(r->reply)) : "(null)",
		              w->reply ? show(w->reply, strlen(w->reply)) : "(null)");
		ck_assert_msg(r->client_error == !!(w->flags & F_CE),
		              "\"%s\": result %zu: client_error %d", what, i, r->client_error);
		ck_assert_msg(r->unsupported == !!(w->flags & F_UNSUP),
		              "\"%s\": result %zu: unsupported %d", what, i, r->unsupported);
		if (w->st == PC_COMMAND) {
			size_t end = w->end ? w->end : c->len;
			ck_assert_msg(r->end == end,
			              "\"%s\": result %zu ends at byte %zu, expected %zu", what, i,
			              r->end, end);
		}
		while (nk < 8 && w->keys[nk])
			nk++;
		ck_assert_msg(r->nkeys == nk, "\"%s\": result %zu: %u keys, expected %zu", what, i,
		              r->nkeys, nk);
		for (size_t k = 0; k < nk; k++) {
			size_t kl = strlen(w->keys[k]);
			ck_assert_msg(r->klen[k] == kl &&
			                  memcmp(c->in + r->koff[k], w->keys[k], kl) == 0,
			              "\"%s\": result %zu: key %zu is \"%s\"", what, i, k,
			              show(c->in + r->koff[k], r->klen[k]));
		}
		if (w->args) {
			size_t al = strlen(w->args);
			ck_assert_msg(r->has_args && r->argslen == al &&
			                  memcmp(c->in + r->args_off, w->args, al) == 0,
			              "\"%s\": result %zu: stats args wrong", what, i);
		} else if (w->st == PC_COMMAND && w->type == PC_STATS) {
			ck_assert_msg(!r->has_args, "\"%s\": stats args where there are none",
			              what);
		}
	}
	if (!run->closed)
		ck_assert_msg(run->left == c->left, "\"%s\": %zu bytes left waiting, expected %zu",
		              what, run->left, c->left);
}

static void check_case(const struct pcase *c, size_t max_line)
{
	struct run whole;

	run_all_modes(c->in, c->len, max_line, &whole);
	check_want(&whole, c);
	run_free(&whole);
}

/* prefix + unit * n + suffix into b (cap bytes); returns the length. */
static size_t build_in(char *b, size_t cap, const char *prefix, const char *unit, size_t n,
                       const char *suffix)
{
	size_t pl = strlen(prefix), ul = strlen(unit), sl = strlen(suffix);

	ck_assert(pl + ul * n + sl < cap);
	memcpy(b, prefix, pl);
	for (size_t i = 0; i < n; i++)
		memcpy(b + pl + i * ul, unit, ul);
	memcpy(b + pl + ul * n, suffix, sl + 1);
	return pl + ul * n + sl;
}

/* The same in a malloc'd buffer; *len gets the length. */
static char *build(const char *prefix, const char *unit, size_t n, const char *suffix, size_t *len)
{
	size_t cap = strlen(prefix) + strlen(unit) * n + strlen(suffix) + 1;
	char *b = malloc(cap);

	ck_assert(b != NULL);
	*len = build_in(b, cap, prefix, unit, n, suffix);
	return b;
}

#define NCASES(a) ((int)(sizeof(a) / sizeof((a)[0])))

/* ------------------------------------------------------------------------ */
/* get / gets                                                                */

static const struct pcase get_forms[] = {
    C("get a\r\n", W_GET(0, "a")),
    C("get a\n", W_GET(0, "a")),
    C("gets a\r\n", W_GETS(0, "a")),
    C("bget a\r\n", W_GET(0, "a")), /* memcached's undocumented alias */
    C("get a b a zz\r\n", W_GET(0, "a", "b", "a", "zz")),
    C("gets a b\r\n", W_GETS(0, "a", "b")),
    C("get  a   b\r\n", W_GET(0, "a", "b")),
    C("get a \r\n", W_GET(0, "a")),
    C(" get a\r\n", W_GET(0, "a")),
    C("   gets   a  b   \r\n", W_GETS(0, "a", "b")),
    C("get a b\n", W_GET(0, "a", "b")),
    C("get HTTP/1.1\r\n", W_GET(0, "HTTP/1.1")), /* a known word skips the HTTP rule */
    C("get noreply\r\n", W_GET(0, "noreply")),   /* just a key for get */
    C("get a\r\nget b\r\n", W_GET(L("get a\r\n"), "a"), W_GET(0, "b")),
    C("gets a\r\nget a\r\n", W_GETS(L("gets a\r\n"), "a"), W_GET(0, "a")),
    /* An incomplete line waits, whatever it holds. */
    CL("get a\r\n\0", 1, W_GET(L("get a\r\n"), "a")),
    WAIT("get a", 5),
    WAIT("get a\r", 6),
};

START_TEST(test_get_forms)
{
	check_case(&get_forms[_i], MAX_LINE);
}
END_TEST

/* memcached cuts 23 tokens at a time; for get the boundary must not show. */
START_TEST(test_get_keys_past_23_tokens)
{
	for (size_t nkeys = 21; nkeys <= 26; nkeys++) {
		size_t len;
		char *in = build("get", " b", nkeys, "   \r\n", &len);
		struct run r;

		run_all_modes(in, len, MAX_LINE, &r);
		ck_assert_uint_eq(r.n, 1);
		ck_assert_int_eq(r.r[0].type, PC_GET);
		ck_assert_uint_eq(r.r[0].nkeys, nkeys);
		for (size_t k = 0; k < nkeys; k++)
			ck_assert(r.r[0].klen[k] == 1 && in[r.r[0].koff[k]] == 'b');
		run_free(&r);
		free(in);
	}
}
END_TEST

static const struct pcase empty_lines[] = {
    C("\r\n", W_ERROR(0)),
    C("\n", W_ERROR(0)),
    C("   \r\n", W_ERROR(0)),
    C("\r\r\n", W_ERROR(0)),
    C("\0\r\n", W_ERROR(0)),
    C("g\r\n", W_ERROR(0)),
    C("x\r\n", W_ERROR(0)),
    C("get\r\n", W_ERROR(0)),
    C("gets\r\n", W_ERROR(0)),
    C("bget\r\n", W_ERROR(0)),
    C("get\n", W_ERROR(0)),
    C("get \r\n", W_ERROR(0)),
    C("gets \r\n", W_ERROR(0)),
    C("get     \r\n", W_ERROR(0)),
    C("\r\nget a\r\n", W_ERROR(2), W_GET(0, "a")),
    C("\nget a\r\n", W_ERROR(1), W_GET(0, "a")),
    C("get a\r\n\r\n", W_GET(L("get a\r\n"), "a"), W_ERROR(0)),
    C("get a\n\n", W_GET(L("get a\n"), "a"), W_ERROR(0)),
    /* The line "\rget a" is an unknown command, as in memcached. */
    C("get a\r\n\rget a\r\n", W_GET(L("get a\r\n"), "a"), W_ERROR(0)),
};

START_TEST(test_empty_and_keyless_lines)
{
	check_case(&empty_lines[_i], MAX_LINE);
}
END_TEST

static const struct pcase key_length[] = {
    C("get " K250 "\r\n", W_GET(0, K250)),
    C("gets " K250 "\r\n", W_GETS(0, K250)),
    C("get " K250 " " K250 "\r\n", W_GET(0, K250, K250)),
    C("get " K251 "\r\n", W_BADFMT(0)),
    C("gets " K251 "\r\n", W_BADFMT(0)),
    C("bget " K251 "\r\n", W_BADFMT(0)),
    /* One bad key refuses the whole command: "a" and "b" are not fetched. */
    C("get a " K251 " b\r\n", W_BADFMT(0)),
    C("get a\r\nget " K251 "\r\nget b\r\n", W_GET(L("get a\r\n"), "a"),
      W_BADFMT(L("get a\r\nget " K251 "\r\n")), W_GET(0, "b")),
    C("get " K251 "\r\nversion\r\n", W_BADFMT(L("get " K251 "\r\n")), W_VERSION(0)),
};

START_TEST(test_key_length_limit)
{
	check_case(&key_length[_i], MAX_LINE);
}
END_TEST

/* DESIGN §3: stricter than memcached, which accepts (or cuts at NUL) all of
 * these; a key that could poison a shared upstream request is refused. */
static const struct pcase key_bytes[] = {
    C("get a\tb\r\n", W_BADFMT(0)),
    C("gets a\tb\r\n", W_BADFMT(0)),
    C("get \x01\r\n", W_BADFMT(0)),
    C("get a\x01"
      "b\r\n",
      W_BADFMT(0)),
    C("get a\x1f\r\n", W_BADFMT(0)),
    C("get a\x1b\r\n", W_BADFMT(0)),
    C("get a\x0b"
      "b\r\n",
      W_BADFMT(0)),
    C("get a\x0c\r\n", W_BADFMT(0)),
    C("get a\x7f\r\n", W_BADFMT(0)),
    C("gets \x7f"
      "a\r\n",
      W_BADFMT(0)),
    C("get a\0b\r\n", W_BADFMT(0)),
    C("get a\0\r\n", W_BADFMT(0)),
    C("get a\0\0\r\n", W_BADFMT(0)),
    C("gets a b\0c\r\n", W_BADFMT(0)),
    C("get a\rb\r\n", W_BADFMT(0)),
    C("get a\r\r\n", W_BADFMT(0)), /* only one \r is line end */
    C("get \r\r\n", W_BADFMT(0)),
    C("get a b\x01\r\n", W_BADFMT(0)), /* the valid "a" is not forwarded either */
    C("get a\x01 b\r\n", W_BADFMT(0)),
    C("get a\tb\r\nget c\r\n", W_BADFMT(L("get a\tb\r\n")), W_GET(0, "c")),
};

START_TEST(test_key_control_bytes_refused)
{
	check_case(&key_bytes[_i], MAX_LINE);
}
END_TEST

static const struct pcase key_utf8[] = {
    C("get \xc3\xa9t\xc3\xa9\r\n", W_GET(0, "\xc3\xa9t\xc3\xa9")),
    C("gets \xe2\x82\xac\r\n", W_GETS(0, "\xe2\x82\xac")),
    C("get \xff\x80\r\n", W_GET(0, "\xff\x80")),
    C("get a\x80"
      "b c\r\n",
      W_GET(0,
            "a\x80"
            "b",
            "c")),
};

START_TEST(test_key_high_bytes_accepted)
{
	check_case(&key_utf8[_i], MAX_LINE);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* The command word                                                          */

static const struct pcase command_word[] = {
    C("get\ta\r\n", W_ERROR(0)), /* only ' ' separates tokens */
    C("gets\ta\r\n", W_ERROR(0)),
    C("GET a\r\n", W_ERROR(0)), /* matched case-sensitively */
    C("GETS a\r\n", W_ERROR(0)),
    C("VERSION\r\n", W_ERROR(0)),
    C("versionx\r\n", W_ERROR(0)), /* no prefix matching */
    C("getx a\r\n", W_ERROR(0)),
    C("get_a a\r\n", W_ERROR(0)),
    /* memcached sees a C string: a NUL ends the command. */
    C("ver\0sion\r\n", W_ERROR(0)),
    C("get\0 a\r\n", W_ERROR(0)),
    C("\0get a\r\n", W_ERROR(0)),
    C("version\0junk\r\n", W_VERSION(0)),
    C("version\0\r\n", W_VERSION(0)),
    C("quit\0 x\r\n", W_QUIT(0)),
};

START_TEST(test_command_word_exact)
{
	check_case(&command_word[_i], MAX_LINE);
}
END_TEST

static const struct pcase version_quit[] = {
    C("version\r\n", W_VERSION(0)),
    C("version\n", W_VERSION(0)),
    C("version x\r\n", W_VERSION(0)), /* arguments are ignored */
    C("version HTTP/1.1\r\n", W_VERSION(0)),
    C("  version  \r\n", W_VERSION(0)),
    C("version a b c d e f g h i j k l m n o p q r s t u v w x y z\r\n", W_VERSION(0)),
    C("quit\r\n", W_QUIT(0)),
    C("quit\n", W_QUIT(0)),
    C("quit x\r\n", W_QUIT(0)),
    C("quit a b c d e f g h i j k l m n o p q r s t u v w x y z\r\n", W_QUIT(0)),
    C("version\r\nquit\r\nversion\r\n", W_VERSION(L("version\r\n")),
      W_QUIT(L("version\r\nquit\r\n")), W_VERSION(0)),
};

START_TEST(test_version_and_quit)
{
	check_case(&version_quit[_i], MAX_LINE);
}
END_TEST

static const struct pcase stats[] = {
    C("stats\r\n", W_STATS(0, NULL)),
    C("stats\n", W_STATS(0, NULL)),
    C("stats reset\r\n", W_STATS(0, "reset")),
    C("stats  settings x\r\n", W_STATS(0, "settings x")),
    C("stats detail dump\r\n", W_STATS(0, "detail dump")),
    C("stats reset\0junk\r\n", W_STATS(0, "reset")),
    C("stats reset\r\nstats\r\n", W_STATS(L("stats reset\r\n"), "reset"), W_STATS(0, NULL)),
};

START_TEST(test_stats_args)
{
	check_case(&stats[_i], MAX_LINE);
}
END_TEST

static const struct pcase unknown[] = {
    C("foo\r\n", W_ERROR(0)),
    C("foo bar baz\r\n", W_ERROR(0)),
    C("VALUE a\r\n", W_ERROR(0)),
    C("END\r\n", W_ERROR(0)),
    C("misbehave\r\n", W_ERROR(0)), /* not in Debian's build */
    C("debugtime 1\r\n", W_ERROR(0)),
    C("extstore x\r\n", W_ERROR(0)),
    C("mz\r\n", W_ERROR(0)),
    C("m\r\n", W_ERROR(0)),
    C("foo HTTP\r\n", W_ERROR(0)),
    C("foo HTTP1.1\r\n", W_ERROR(0)),    /* the slash is part of the rule */
    C("foo HTTP/1.1 x\r\n", W_ERROR(0)), /* HTTP/ must be the last token */
    C("GET a HTTP/1.0 b\r\n", W_ERROR(0)),
    C("x HTTP/1.1\r\n", W_ERROR(0)), /* a 1-byte command fails first */
    C("H HTTP/1.1\r\n", W_ERROR(0)),
    C("foo\r\nbar\r\n", W_ERROR(L("foo\r\n")), W_ERROR(0)),
};

START_TEST(test_unknown_commands)
{
	check_case(&unknown[_i], MAX_LINE);
}
END_TEST

/* memcached hangs up on an HTTP request line without a word. */
static const struct pcase http[] = {
    C("GET / HTTP/1.1\r\n", W_CLOSE(NULL)),
    C("GET / HTTP/1.1\n", W_CLOSE(NULL)),
    C("POST /x HTTP/1.0\r\n", W_CLOSE(NULL)),
    C("HTTP/1.1\r\n", W_CLOSE(NULL)),
    C("foo HTTP/\r\n", W_CLOSE(NULL)),
    C("GET  HTTP/1.1 \r\n", W_CLOSE(NULL)),
    C("fx HTTP/1.1\r\n", W_CLOSE(NULL)),
    C("rx HTTP/1.1\r\n", W_CLOSE(NULL)),
    C("mzz HTTP/1.1\r\n", W_CLOSE(NULL)),
    C("GET / HTTP/1.1\r\nHost: x\r\n\r\n", W_CLOSE(NULL)),
    C("foo\r\nGET / HTTP/1.1\r\n", W_ERROR(L("foo\r\n")), W_CLOSE(NULL)),
    C("get a\r\nGET / HTTP/1.1\r\n", W_GET(L("get a\r\n"), "a"), W_CLOSE(NULL)),
};

START_TEST(test_http_request_closes)
{
	check_case(&http[_i], MAX_LINE);
}
END_TEST

/* The rule looks at the 23rd token when there are more: memcached closes on
 * `foo` + 21 × ` x` + ` HTTP/1.1 y z`, answers ERROR with 22 × ` x`. */
START_TEST(test_http_rule_uses_23rd_token)
{
	size_t len;
	char *in = build("foo", " x", 21, " HTTP/1.1 y z\r\n", &len);
	struct pcase c = DYN(in, len, W_CLOSE(NULL));

	check_case(&c, MAX_LINE);
	free(in);
	in = build("foo", " x", 22, " HTTP/1.1 y z\r\n", &len);
	c = (struct pcase)DYN(in, len, W_ERROR(0));
	check_case(&c, MAX_LINE);
	free(in);
}
END_TEST

static const struct pcase binary[] = {
    C("\x80", W_CLOSE(NULL)),
    C("\x80get a\r\n", W_CLOSE(NULL)),
    C("\x80\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0", W_CLOSE(NULL)),
    /* Only the connection's first byte decides; later 0x80 is a plain byte. */
    C("version\r\n\x80\r\n", W_VERSION(L("version\r\n")), W_ERROR(0)),
    C("version\r\n\x80\0\0\0\r\n", W_VERSION(L("version\r\n")), W_ERROR(0)),
    WAIT("\x81\0\0\0", 4),
};

START_TEST(test_binary_magic_closes)
{
	check_case(&binary[_i], MAX_LINE);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* Long lines                                                                */

START_TEST(test_2048_bytes_without_newline_wait)
{
	size_t len;
	char *in = build("", "x", 2048, "", &len);
	struct pcase c = {.in = in, .len = len, .left = 2048};

	check_case(&c, MAX_LINE);
	free(in);
}
END_TEST

START_TEST(test_2049_bytes_without_newline_close_silently)
{
	size_t len;
	char *in = build("", "x", 2049, "", &len);
	struct pcase c = DYN(in, len, W_CLOSE(NULL));

	check_case(&c, MAX_LINE);
	free(in);
	in = build("version ", "x", 3000, "", &len);
	c = (struct pcase)DYN(in, len, W_CLOSE(NULL));
	check_case(&c, MAX_LINE);
	free(in);
}
END_TEST

START_TEST(test_2048_byte_line_with_newline)
{
	size_t len;
	char *in = build("", "x", 2046, "\r\n", &len);
	struct pcase c = DYN(in, len, W_ERROR(0));

	check_case(&c, MAX_LINE);
	free(in);
}
END_TEST

/* Earlier complete lines are answered; then the garbage closes. */
START_TEST(test_reply_then_long_garbage_closes)
{
	size_t len;
	char *in = build("version\r\n", "x", 2049, "", &len);
	struct pcase c = DYN(in, len, W_VERSION(L("version\r\n")), W_CLOSE(NULL));

	check_case(&c, MAX_LINE);
	free(in);
	in = build("get a\r\n", "x", 2049, "", &len);
	c = (struct pcase)DYN(in, len, W_GET(L("get a\r\n"), "a"), W_CLOSE(NULL));
	check_case(&c, MAX_LINE);
	free(in);
}
END_TEST

/* The 2048 limit counts the unconsumed bytes across reads, and applies only
 * while no newline has arrived: memcached answers ERROR to x*2000 followed by
 * x*100 CRLF in the next read, and closes on x*1000 then x*1100. */
START_TEST(test_2048_rule_counts_across_reads)
{
	size_t len;
	char *in = build("", "x", 2100, "\r\n", &len);
	const size_t two_reads[] = {2000, 102};
	const size_t three_reads[] = {1000, 1100, 2};
	struct splitter s = split_list(two_reads, 2);
	struct run r;

	feed(&r, in, len, MAX_LINE, &s);
	ck_assert_uint_eq(r.n, 1);
	ck_assert_int_eq(r.r[0].st, PC_COMMAND);
	ck_assert_int_eq(r.r[0].type, PC_REPLY);
	ck_assert_str_eq(r.r[0].reply, R_ERROR);
	run_free(&r);

	s = split_list(three_reads, 3);
	feed(&r, in, len, MAX_LINE, &s);
	ck_assert_uint_eq(r.n, 1);
	ck_assert_int_eq(r.r[0].st, PC_CLOSE);
	ck_assert_ptr_null(r.r[0].reply);
	run_free(&r);
	free(in);
}
END_TEST

/* A long non-get line lives only if its newline is already there (memcached
 * behaves the same way, bounded by its 16 KB read buffer). */
START_TEST(test_long_nonget_line_depends_on_reads)
{
	size_t len;
	char *in = build("version ", "x", 3000, "\r\n", &len);
	struct splitter s = split_whole();
	struct run r;

	feed(&r, in, len, MAX_LINE, &s);
	ck_assert_uint_eq(r.n, 1);
	ck_assert_int_eq(r.r[0].type, PC_VERSION);
	ck_assert_uint_eq(r.r[0].end, len);
	run_free(&r);

	s = split_bytes();
	feed(&r, in, len, MAX_LINE, &s);
	ck_assert_uint_eq(r.n, 1);
	ck_assert_int_eq(r.r[0].st, PC_CLOSE);
	ck_assert_ptr_null(r.r[0].reply);
	run_free(&r);
	free(in);
}
END_TEST

static void check_get_of_a(const char *prefix, size_t nkeys, enum pc_type type)
{
	size_t len;
	char *in = build(prefix, "a ", nkeys, "\r\n", &len);
	struct run r;

	run_all_modes(in, len, MAX_LINE, &r);
	ck_assert_uint_eq(r.n, 1);
	ck_assert_int_eq(r.r[0].st, PC_COMMAND);
	ck_assert_int_eq(r.r[0].type, type);
	ck_assert_uint_eq(r.r[0].nkeys, nkeys);
	ck_assert_uint_eq(r.r[0].end, len);
	for (size_t k = 0; k < nkeys; k++)
		ck_assert(r.r[0].klen[k] == 1 && in[r.r[0].koff[k]] == 'a');
	run_free(&r);
	free(in);
}

/* A multi-get may exceed 2048 bytes before its newline: up to 100 leading
 * spaces, then "get " or "gets ". */
START_TEST(test_long_get_line_waits_for_newline)
{
	char prefix[120];

	check_get_of_a("get ", 1500, PC_GET);
	check_get_of_a("gets ", 1500, PC_GETS);
	memset(prefix, ' ', 100);
	memcpy(prefix + 100, "get ", 5);
	check_get_of_a(prefix, 1500, PC_GET);
}
END_TEST

START_TEST(test_long_line_needs_get_word)
{
	static const char *const prefixes[] = {
	    "gat 0 ", "gats 0 ", "bget ", "GET ", "get\t", "getx ", "set k 0 0 ",
	};
	char spaces[120];

	for (size_t i = 0; i < sizeof(prefixes) / sizeof(prefixes[0]); i++) {
		size_t len;
		char *in = build(prefixes[i], "a ", 1500, "", &len);
		struct pcase c = DYN(in, len, W_CLOSE(NULL));

		check_case(&c, MAX_LINE);
		free(in);
	}
	/* 101 leading spaces are too many. */
	memset(spaces, ' ', 101);
	memcpy(spaces + 101, "get ", 5);
	{
		size_t len;
		char *in = build(spaces, "a ", 1500, "", &len);
		struct pcase c = DYN(in, len, W_CLOSE(NULL));

		check_case(&c, MAX_LINE);
		free(in);
	}
}
END_TEST

START_TEST(test_get_line_over_max_line_closes)
{
	size_t len;
	char *in = build("get ", "a ", 3000, "", &len);
	struct pcase c = DYN(in, len, W_CLOSE(R_TOO_LONG));

	check_case(&c, 4096);
	free(in);
	/* Also when the newline is in the same read. */
	in = build("get ", "a ", 3000, "\r\n", &len);
	c = (struct pcase)DYN(in, len, W_CLOSE(R_TOO_LONG));
	check_case(&c, 4096);
	free(in);
}
END_TEST

START_TEST(test_get_line_at_max_line_boundary)
{
	size_t len;
	/* 4 + 2046 * 2 = 4096 bytes before the newline: just fits. */
	char *in = build("get ", "a ", 2046, "\n", &len);
	struct run r;

	run_all_modes(in, len, 4096, &r);
	ck_assert_uint_eq(r.n, 1);
	ck_assert_int_eq(r.r[0].type, PC_GET);
	ck_assert_uint_eq(r.r[0].nkeys, 2046);
	run_free(&r);
	free(in);
	/* One byte more does not. */
	in = build("get ", "a ", 2046, "b\n", &len);
	{
		struct pcase c = DYN(in, len, W_CLOSE(R_TOO_LONG));
		check_case(&c, 4096);
	}
	free(in);
}
END_TEST

START_TEST(test_get_of_thousands_of_keys)
{
	const size_t nkeys = 3000;
	char *in = malloc(4 + nkeys * 6 + 3);
	size_t len = 0;
	struct run r;

	ck_assert(in != NULL);
	len += (size_t)sprintf(in, "get");
	for (size_t k = 0; k < nkeys; k++)
		len += (size_t)sprintf(in + len, " k%04zu", k);
	len += (size_t)sprintf(in + len, "\r\n");
	run_all_modes(in, len, MAX_LINE, &r);
	ck_assert_uint_eq(r.n, 1);
	ck_assert_int_eq(r.r[0].type, PC_GET);
	ck_assert_uint_eq(r.r[0].nkeys, nkeys);
	for (size_t k = 0; k < nkeys; k++) {
		char want[8];
		snprintf(want, sizeof(want), "k%04zu", k);
		ck_assert(r.r[0].klen[k] == 5 && memcmp(in + r.r[0].koff[k], want, 5) == 0);
	}
	run_free(&r);
	free(in);
}
END_TEST

/* A 60 000-byte get line arriving one byte per read: no early result, and
 * the whole line once its newline is in. That it is not rescanned from its
 * start on every read is test_scan_never_rereads_searched_bytes's job, which
 * does not depend on how fast the machine is. */
START_TEST(test_scan_is_resumable)
{
	size_t len;
	char *in = build("get ", "abcd ", 12000, "\r\n", &len);
	char *buf = malloc(len);
	struct pc_parser p;
	struct pc_cmd cmd;
	size_t used = 0;
	enum pc_status st = PC_NEED_MORE;

	ck_assert(buf != NULL);
	pc_init(&p, MAX_LINE);
	for (size_t i = 0; i < len; i++) {
		buf[i] = in[i];
		st = pc_parse(&p, buf, i + 1, &cmd, &used);
		if (i + 1 < len)
			ck_assert_msg(st == PC_NEED_MORE && used == 0, "early result at byte %zu",
			              i);
	}
	ck_assert_int_eq(st, PC_COMMAND);
	ck_assert_int_eq(cmd.type, PC_GET);
	ck_assert_uint_eq(cmd.nkeys, 12000);
	ck_assert_uint_eq(used, len);
	pc_free(&p);
	free(buf);
	free(in);
}
END_TEST

/* The same, deterministically: bytes already searched are made unreadable
 * (apart from the first page, where the get prefix is checked), so a parser
 * that searches them again crashes instead of passing slowly. */
START_TEST(test_scan_never_rereads_searched_bytes)
{
	long ps = sysconf(_SC_PAGESIZE);
	size_t page = ps > 0 ? (size_t)ps : 4096, npages = 16, size = page * npages;
	char *buf = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	struct pc_parser p;
	struct pc_cmd cmd;
	size_t used, len = size - 2, nkeys = 0;
	enum pc_status st;

	ck_assert(buf != MAP_FAILED);
	/* "get" then " k" keys up to len bytes, then CRLF. */
	memcpy(buf, "get", 3);
	for (size_t i = 3; i < len; i++)
		buf[i] = (i % 2) ? ' ' : 'k';
	if (buf[len - 1] == ' ')
		buf[len - 1] = 'k';
	for (size_t i = 3; i < len; i++)
		nkeys += buf[i] == 'k' && buf[i - 1] == ' ';
	pc_init(&p, size);
	for (size_t n = 1; n <= len; n++) {
		/* On entering page q, page q-1 has been searched: hide it. */
		if (n > 1 && (n - 1) % page == 0 && (n - 1) / page >= 2) {
			char *searched = buf + ((n - 1) / page - 1) * page;
			ck_assert(mprotect(searched, page, PROT_NONE) == 0);
		}
		st = pc_parse(&p, buf, n, &cmd, &used);
		ck_assert_msg(st == PC_NEED_MORE && used == 0, "early result at %zu bytes", n);
	}
	/* The newline: now the whole line is read once more, legitimately. */
	ck_assert(mprotect(buf, size, PROT_READ | PROT_WRITE) == 0);
	buf[len] = '\r';
	st = pc_parse(&p, buf, len + 1, &cmd, &used);
	ck_assert_int_eq(st, PC_NEED_MORE);
	buf[len + 1] = '\n';
	st = pc_parse(&p, buf, len + 2, &cmd, &used);
	ck_assert_int_eq(st, PC_COMMAND);
	ck_assert_int_eq(cmd.type, PC_GET);
	ck_assert_uint_eq(cmd.nkeys, nkeys);
	ck_assert_uint_eq(used, size);
	pc_free(&p);
	munmap(buf, size);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* Storage commands: refused, with the data block consumed                  */

static const struct pcase storage_ok[] = {
    C("set k 0 0 3\r\nxyz\r\n", W_UNSUP(0)),
    C("set k 0 0 3\r\nx\r\n\r\n", W_UNSUP(0)), /* CRLF inside the block */
    C("set k 0 0 0\r\n\r\n", W_UNSUP(0)),
    C("set k 0 0 3 foo\r\nxyz\r\n", W_UNSUP(0)), /* only "noreply" means noreply */
    C("add k 0 0 1\r\nx\r\n", W_UNSUP(0)),
    C("replace k 0 0 1\r\nx\r\n", W_UNSUP(0)),
    C("append k 0 0 1\r\nx\r\n", W_UNSUP(0)),
    C("prepend k 0 0 1\r\nx\r\n", W_UNSUP(0)),
    C("cas k 0 0 1 1\r\nx\r\n", W_UNSUP(0)),
    C("set k 0 0 3\r\nabc\r\nget k\r\n", W_UNSUP(L("set k 0 0 3\r\nabc\r\n")), W_GET(0, "k")),
    C("set k 0 0 3\r\nabc\r\nset k 0 0 1\r\nx\r\n", W_UNSUP(L("set k 0 0 3\r\nabc\r\n")),
      W_UNSUP(0)),
    C("set k 0 0 1\r\nx\r\nversion\r\n", W_UNSUP(L("set k 0 0 1\r\nx\r\n")), W_VERSION(0)),
    C("set " K250 " 0 0 1\r\nx\r\n", W_UNSUP(0)),
};

START_TEST(test_storage_refused_after_data)
{
	check_case(&storage_ok[_i], MAX_LINE);
}
END_TEST

static const struct pcase storage_noreply[] = {
    C("set k 0 0 3 noreply\r\nxyz\r\n", W_SILENT(0, F_UNSUP)),
    C("append k 0 0 1 noreply\r\nx\r\n", W_SILENT(0, F_UNSUP)),
    C("cas k 0 0 1 1 noreply\r\nx\r\n", W_SILENT(0, F_UNSUP)),
    C("set k 0 0 1 noreply\r\nx\r\nget a\r\n", W_SILENT(L("set k 0 0 1 noreply\r\nx\r\n"), F_UNSUP),
      W_GET(0, "a")),
};

START_TEST(test_storage_noreply_silent)
{
	check_case(&storage_noreply[_i], MAX_LINE);
}
END_TEST

/* Numbers as memcached's safe_strtol/strtoul read them: libc strto* with a
 * sign, leading zeros and trailing white space; bytes truncated to int32. */
static const struct pcase storage_numbers[] = {
    C("set k 0 0 +1\r\nx\r\n", W_UNSUP(0)),
    C("set k 0 0 01\r\nx\r\n", W_UNSUP(0)),
    C("set k 0 0 1 \r\nx\r\n", W_UNSUP(0)),
    C("set k 0 0  1\r\nx\r\n", W_UNSUP(0)),
    C("set k 0 0 1\nx\r\n", W_UNSUP(0)),
    C("set k 0 0 1\t\r\nx\r\n", W_UNSUP(0)),
    C("set k 0 0 1\r\r\nx\r\n", W_UNSUP(0)),
    C("set k 0 0 4294967297\r\nx\r\n", W_UNSUP(0)), /* bytes = 1 */
    C("set k 4294967296 0 1\r\nx\r\n", W_UNSUP(0)),
    C("set k 0 99999999999 1\r\nx\r\n", W_UNSUP(0)),
    C("set k 0 -1 1\r\nx\r\n", W_UNSUP(0)),
    C("cas k 0 0 1 18446744073709551615\r\nx\r\n", W_UNSUP(0)),
};

START_TEST(test_storage_numbers_as_memcached)
{
	check_case(&storage_numbers[_i], MAX_LINE);
}
END_TEST

/* Exactly bytes+2 bytes are the block; if they do not end in CRLF the rest
 * is parsed as commands again. */
static const struct pcase storage_bad_chunk[] = {
    C("set k 0 0 3\r\nxyzW\r\n", W_CHUNK(L("set k 0 0 3\r\nxyzW\r")), W_ERROR(0)),
    C("set k 0 0 3\r\nabcde\r\n", W_CHUNK(L("set k 0 0 3\r\nabcde")), W_ERROR(0)),
    C("set k 0 0 3\r\na\r\nb\r\n", W_CHUNK(L("set k 0 0 3\r\na\r\nb\r")), W_ERROR(0)),
    C("set k 0 0 3\r\nget a\r\n", W_CHUNK(L("set k 0 0 3\r\nget a")), W_ERROR(0)),
    C("set k 0 0 1\r\nxy\r\n", W_CHUNK(L("set k 0 0 1\r\nxy\r")), W_ERROR(0)),
    C("set k 0 0 1\r\nxyzget a\r\n", W_CHUNK(L("set k 0 0 1\r\nxyz")), W_GET(0, "a")),
    C("set k 0 0 3 noreply\r\nxyzW\r\n", W_SILENT(L("set k 0 0 3 noreply\r\nxyzW\r"), F_CE),
      W_ERROR(0)),
    C("ms k 2\r\nabc\r\n", W_CHUNK(L("ms k 2\r\nabc\r")), W_ERROR(0)),
};

START_TEST(test_storage_bad_data_chunk)
{
	check_case(&storage_bad_chunk[_i], MAX_LINE);
}
END_TEST

static const struct pcase storage_waiting[] = {
    /* Everything given is consumed into the block; no reply yet. */
    WAIT("set k 0 0 3\r\n", 0),
    WAIT("set k 0 0 3\r\nxy\r\n", 0),
    WAIT("set k 0 0 3\r\nxyz\n", 0),
    WAIT("set k 0 0 1\r\nx\n", 0),
    WAIT("set k 0 0 2147483645\r\nabc\r\n", 0),  /* INT_MAX - 2: the largest */
    WAIT("set k 0 0 99999999999\r\nabc\r\n", 0), /* truncated to 1215752191 */
};

START_TEST(test_storage_waits_for_data)
{
	check_case(&storage_waiting[_i], MAX_LINE);
}
END_TEST

/* A malformed line swallows nothing: the data line becomes the next command. */
static const struct pcase storage_malformed[] = {
    C("set\r\n", W_ERROR(0)),
    C("set k\r\n", W_ERROR(0)),
    C("set k 0 0\r\n", W_ERROR(0)),
    C("set k 0 0\r\nxyz\r\n", W_ERROR(L("set k 0 0\r\n")), W_ERROR(0)),
    C("set k 0 0 3 noreply extra\r\nxyz\r\n", W_ERROR(L("set k 0 0 3 noreply extra\r\n")),
      W_ERROR(0)),
    C("cas k 0 0 1\r\nx\r\n", W_ERROR(L("cas k 0 0 1\r\n")), W_ERROR(0)),
    C("set k 0 0 -1\r\n", W_BADFMT(0)),
    C("set k 0 0 -1\r\nx\r\n", W_BADFMT(L("set k 0 0 -1\r\n")), W_ERROR(0)),
    C("set k 0 0 abc\r\nxyz\r\n", W_BADFMT(L("set k 0 0 abc\r\n")), W_ERROR(0)),
    C("set k 0 0 0x1\r\nx\r\n", W_BADFMT(L("set k 0 0 0x1\r\n")), W_ERROR(0)),
    C("set k abc 0 1\r\nx\r\n", W_BADFMT(L("set k abc 0 1\r\n")), W_ERROR(0)),
    C("set k 0 abc 1\r\nx\r\n", W_BADFMT(L("set k 0 abc 1\r\n")), W_ERROR(0)),
    C("set k -1 0 1\r\nx\r\n", W_BADFMT(L("set k -1 0 1\r\n")), W_ERROR(0)),
    C("set " K251 " 0 0 1\r\nx\r\n", W_BADFMT(L("set " K251 " 0 0 1\r\n")), W_ERROR(0)),
    C("cas k 0 0 1 x\r\nx\r\n", W_BADFMT(L("cas k 0 0 1 x\r\n")), W_ERROR(0)),
    C("cas k 0 0 1 -1\r\nx\r\n", W_BADFMT(L("cas k 0 0 1 -1\r\n")), W_ERROR(0)),
    C("set k 0 0 2147483647\r\n", W_BADFMT(0)),
    C("set k 0 0 2147483646\r\n", W_BADFMT(0)),
    C("set k 0 0 99999999999999999999\r\nx\r\n", W_BADFMT(L("set k 0 0 99999999999999999999\r\n")),
      W_ERROR(0)),
    /* noreply hides the error, as in memcached; the data still is a command. */
    C("set k 0 0 abc noreply\r\nxyz\r\n", W_SILENT(L("set k 0 0 abc noreply\r\n"), F_CE),
      W_ERROR(0)),
    C("set k 0 0 -1 noreply\r\n", W_SILENT(0, F_CE)),
    C("set k 0 0 noreply\r\nx\r\n", W_SILENT(L("set k 0 0 noreply\r\n"), F_CE), W_ERROR(0)),
    C("cas k 0 0 1 noreply\r\nx\r\n", W_SILENT(L("cas k 0 0 1 noreply\r\n"), F_CE), W_ERROR(0)),
};

START_TEST(test_storage_malformed_swallows_nothing)
{
	check_case(&storage_malformed[_i], MAX_LINE);
}
END_TEST

/* Meta set carries a data block too. */
static const struct pcase mset[] = {
    C("ms k 2\r\nab\r\n", W_UNSUP(0)),
    C("ms k 2 T0 F5\r\nab\r\n", W_UNSUP(0)),
    C("ms k 2 noreply\r\nab\r\n", W_UNSUP(0)), /* meta commands have no noreply */
    C("ms k 0\r\n\r\nget a\r\n", W_UNSUP(L("ms k 0\r\n\r\n")), W_GET(0, "a")),
    C("ms k\r\n", W_BADFMT(0)),
    C("ms k x\r\n", W_BADFMT(0)),
    C("ms k -1\r\n", W_BADFMT(0)),
    C("ms " K251 " 2\r\nab\r\n", W_BADFMT(L("ms " K251 " 2\r\n")), W_ERROR(0)),
    WAIT("ms k 2\r\na", 0),
};

START_TEST(test_meta_set_refused_after_data)
{
	check_case(&mset[_i], MAX_LINE);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* Other commands memcached knows                                            */

static const struct pcase refused[] = {
    C("delete k\r\n", W_UNSUP(0)),
    C("delete k 0\r\n", W_UNSUP(0)),
    C("incr k 1\r\n", W_UNSUP(0)),
    C("decr k 1\r\n", W_UNSUP(0)),
    C("touch k 0\r\n", W_UNSUP(0)),
    C("gat 0 a\r\n", W_UNSUP(0)),
    C("gats 0 a\r\n", W_UNSUP(0)),
    C("flush_all\r\n", W_UNSUP(0)),
    C("flush_all 0\r\n", W_UNSUP(0)),
    C("verbosity 1\r\n", W_UNSUP(0)),
    C("cache_memlimit 100\r\n", W_UNSUP(0)),
    C("shutdown\r\n", W_UNSUP(0)),
    C("shutdown graceful\r\n", W_UNSUP(0)),
    C("slabs reassign 1 2\r\n", W_UNSUP(0)),
    C("lru_crawler metadump all\r\n", W_UNSUP(0)),
    C("lru mode flat\r\n", W_UNSUP(0)),
    C("watch\r\n", W_UNSUP(0)),
    C("refresh_certs\r\n", W_UNSUP(0)),
    C("mg a v\r\n", W_UNSUP(0)),
    C("md a\r\n", W_UNSUP(0)),
    C("mn\r\n", W_UNSUP(0)),
    C("ma a\r\n", W_UNSUP(0)),
    C("me a\r\n", W_UNSUP(0)),
    C("mg a v q\r\nmn\r\n", W_UNSUP(L("mg a v q\r\n")), W_UNSUP(0)),
    C("delete k\r\nget a\r\n", W_UNSUP(L("delete k\r\n")), W_GET(0, "a")),
};

START_TEST(test_known_commands_refused)
{
	check_case(&refused[_i], MAX_LINE);
}
END_TEST

/* Commands whose noreply memcached honours are refused without a word. */
static const struct pcase refused_noreply[] = {
    C("delete k noreply\r\n", W_SILENT(0, F_UNSUP)),
    C("delete k 0 noreply\r\n", W_SILENT(0, F_UNSUP)),
    C("incr a 1 noreply\r\n", W_SILENT(0, F_UNSUP)),
    C("decr a 1 noreply\r\n", W_SILENT(0, F_UNSUP)),
    C("touch k 0 noreply\r\n", W_SILENT(0, F_UNSUP)),
    C("flush_all noreply\r\n", W_SILENT(0, F_UNSUP)),
    C("flush_all 0 noreply\r\n", W_SILENT(0, F_UNSUP)),
    C("verbosity 1 noreply\r\n", W_SILENT(0, F_UNSUP)),
    C("cache_memlimit 100 noreply\r\n", W_SILENT(0, F_UNSUP)),
    C("delete k noreply\r\nget a\r\n", W_SILENT(L("delete k noreply\r\n"), F_UNSUP), W_GET(0, "a")),
};

START_TEST(test_known_commands_noreply_silent)
{
	check_case(&refused_noreply[_i], MAX_LINE);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* Regressions: once mismatches with memcached 1.6.18                        */

/*
 * Regression: memcached dispatches on the command's first byte before it ever tries
 * the HTTP rule (proto_text.c process_command_ascii): an unknown word that
 * starts with g, s, a, c, i, d or t, or a 2-byte word starting with m, gets
 * ERROR and the connection stays open. Measured on 1.6.18: `getx HTTP/1.1`,
 * `stat / HTTP/1.1`, `mz HTTP/1.1`, `ax|cx|ix|dx|tx HTTP/1.1` → ERROR (while
 * `fx`, `rx`, `mzz HTTP/1.1` close). The parser closes on all of them.
 */
static const struct pcase http_nested[] = {
    C("getx HTTP/1.1\r\n", W_ERROR(0)),   C("stat / HTTP/1.1\r\n", W_ERROR(0)),
    C("sets / HTTP/1.0\r\n", W_ERROR(0)), C("mz HTTP/1.1\r\n", W_ERROR(0)),
    C("ax HTTP/1.1\r\n", W_ERROR(0)),     C("cx HTTP/1.1\r\n", W_ERROR(0)),
    C("ix HTTP/1.1\r\n", W_ERROR(0)),     C("dx HTTP/1.1\r\n", W_ERROR(0)),
    C("tx HTTP/1.1\r\n", W_ERROR(0)),
};

START_TEST(test_http_rule_skipped_for_words_memcached_nests)
{
	check_case(&http_nested[_i], MAX_LINE);
}
END_TEST

/*
 * Regression: noreply silences a refused command only where memcached honours it
 * (set_noreply_maybe after a passing token-count check). Measured on 1.6.18,
 * each of these still gets a reply (MN, VALUE…END, CLIENT_ERROR invalid flag,
 * ERROR: shutdown not enabled, ERROR, NOT_FOUND…), so silence here breaks
 * DESIGN's "every request gets exactly one reply" and leaves the client
 * waiting. Which reply coalesced sends is its business; that it sends one is
 * what is tested.
 */
static const char *const noreply_ignored[] = {
    "mn noreply\r\n",
    "gat 0 a noreply\r\n",
    "gats 0 a noreply\r\n",
    "mg a v noreply\r\n",
    "md k noreply\r\n",
    "ma k noreply\r\n",
    "me k noreply\r\n",
    "shutdown noreply\r\n",
    "lru_crawler noreply\r\n",
    "slabs noreply\r\n",
    "incr noreply\r\n",
    "delete noreply\r\n",
    "flush_all 0 0 noreply\r\n",
};

START_TEST(test_noreply_ignored_where_memcached_ignores_it)
{
	const char *in = noreply_ignored[_i];
	struct run r;

	run_all_modes(in, strlen(in), MAX_LINE, &r);
	ck_assert_msg(r.n == 1 && r.r[0].st == PC_COMMAND && r.r[0].type == PC_REPLY,
	              "\"%s\": memcached replies, coalesced must too (type %d)",
	              show(in, strlen(in)), r.n ? (int)r.r[0].type : -1);
	run_free(&r);
}
END_TEST

/*
 * Regression: numbers are copied into a 64-byte buffer first, so a zero-padded
 * number of 64+ characters fails; memcached's strtol takes it (measured:
 * `set k 0 0 ` + 70 zeros + `1` then `x` → STORED, likewise for flags).
 * The parser answers CLIENT_ERROR and parses the data line as a command.
 */
START_TEST(test_storage_long_zero_padded_numbers)
{
	/* On the stack: a failing assertion must not leak (CK_FORK=no). */
	char in[128];
	size_t len = build_in(in, sizeof(in), "set k 0 0 ", "0", 70, "1\r\nx\r\n");
	struct pcase c = DYN(in, len, W_UNSUP(0));

	check_case(&c, MAX_LINE);
	len = build_in(in, sizeof(in), "set k ", "0", 70, " 0 1\r\nx\r\n");
	c = (struct pcase)DYN(in, len, W_UNSUP(0));
	check_case(&c, MAX_LINE);
}
END_TEST

/*
 * Regression: `ms` on its own fails memcached's token-count check (WANT_TOKENS_MIN)
 * → ERROR (measured), not CLIENT_ERROR bad command line format.
 */
START_TEST(test_meta_set_without_key_is_error)
{
	struct pcase c = C("ms\r\n", W_ERROR(0));

	check_case(&c, MAX_LINE);
}
END_TEST

/*
 * Regression: memcached refuses an ms line of more than 19 tokens before reading the
 * data length ("CLIENT_ERROR options flags too long", nothing swallowed; the
 * data line then gives ERROR — measured with 17 flags). The parser swallows
 * the block instead, so the two streams fall out of step. 16 flags (19
 * tokens) are swallowed by both.
 */
START_TEST(test_meta_set_too_many_flags_swallows_nothing)
{
	char in[128];
	size_t len = build_in(in, sizeof(in), "ms k 2", " T0", 16, "\r\nab\r\n");
	struct pcase c = DYN(in, len, W_UNSUP(0));

	check_case(&c, MAX_LINE);
	len = build_in(in, sizeof(in), "ms k 2", " T0", 17, "\r\nab\r\n");
	c = (struct pcase)DYN(
	    in, len, W_REPLY(len - L("ab\r\n"), "CLIENT_ERROR options flags too long\r\n", F_CE),
	    W_ERROR(0));
	check_case(&c, MAX_LINE);
}
END_TEST

/* ------------------------------------------------------------------------ */

Suite *proto_client_suite(void)
{
	Suite *s = suite_create("proto_client");
	TCase *tc = tcase_create("get");
	TCase *cmd = tcase_create("commands");
	TCase *lines = tcase_create("long_lines");
	TCase *store = tcase_create("storage");
	TCase *bugs = tcase_create("regressions");

	tcase_add_loop_test(tc, test_get_forms, 0, NCASES(get_forms));
	tcase_add_test(tc, test_get_keys_past_23_tokens);
	tcase_add_loop_test(tc, test_empty_and_keyless_lines, 0, NCASES(empty_lines));
	tcase_add_loop_test(tc, test_key_length_limit, 0, NCASES(key_length));
	tcase_add_loop_test(tc, test_key_control_bytes_refused, 0, NCASES(key_bytes));
	tcase_add_loop_test(tc, test_key_high_bytes_accepted, 0, NCASES(key_utf8));
	suite_add_tcase(s, tc);

	tcase_add_loop_test(cmd, test_command_word_exact, 0, NCASES(command_word));
	tcase_add_loop_test(cmd, test_version_and_quit, 0, NCASES(version_quit));
	tcase_add_loop_test(cmd, test_stats_args, 0, NCASES(stats));
	tcase_add_loop_test(cmd, test_unknown_commands, 0, NCASES(unknown));
	tcase_add_loop_test(cmd, test_http_request_closes, 0, NCASES(http));
	tcase_add_test(cmd, test_http_rule_uses_23rd_token);
	tcase_add_loop_test(cmd, test_binary_magic_closes, 0, NCASES(binary));
	tcase_add_loop_test(cmd, test_known_commands_refused, 0, NCASES(refused));
	tcase_add_loop_test(cmd, test_known_commands_noreply_silent, 0, NCASES(refused_noreply));
	suite_add_tcase(s, cmd);

	/* Byte-by-byte feeding of multi-kilobyte lines takes a while under
	 * sanitizers and valgrind. */
	tcase_set_timeout(lines, 60);
	tcase_add_test(lines, test_2048_bytes_without_newline_wait);
	tcase_add_test(lines, test_2049_bytes_without_newline_close_silently);
	tcase_add_test(lines, test_2048_byte_line_with_newline);
	tcase_add_test(lines, test_reply_then_long_garbage_closes);
	tcase_add_test(lines, test_2048_rule_counts_across_reads);
	tcase_add_test(lines, test_long_nonget_line_depends_on_reads);
	tcase_add_test(lines, test_long_get_line_waits_for_newline);
	tcase_add_test(lines, test_long_line_needs_get_word);
	tcase_add_test(lines, test_get_line_over_max_line_closes);
	tcase_add_test(lines, test_get_line_at_max_line_boundary);
	tcase_add_test(lines, test_get_of_thousands_of_keys);
	tcase_add_test(lines, test_scan_is_resumable);
	tcase_add_test(lines, test_scan_never_rereads_searched_bytes);
	suite_add_tcase(s, lines);

	tcase_add_loop_test(store, test_storage_refused_after_data, 0, NCASES(storage_ok));
	tcase_add_loop_test(store, test_storage_noreply_silent, 0, NCASES(storage_noreply));
	tcase_add_loop_test(store, test_storage_numbers_as_memcached, 0, NCASES(storage_numbers));
	tcase_add_loop_test(store, test_storage_bad_data_chunk, 0, NCASES(storage_bad_chunk));
	tcase_add_loop_test(store, test_storage_waits_for_data, 0, NCASES(storage_waiting));
	tcase_add_loop_test(store, test_storage_malformed_swallows_nothing, 0,
	                    NCASES(storage_malformed));
	tcase_add_loop_test(store, test_meta_set_refused_after_data, 0, NCASES(mset));
	suite_add_tcase(s, store);

	tcase_add_loop_test(bugs, test_http_rule_skipped_for_words_memcached_nests, 0,
	                    NCASES(http_nested));
	tcase_add_loop_test(bugs, test_noreply_ignored_where_memcached_ignores_it, 0,
	                    NCASES(noreply_ignored));
	tcase_add_test(bugs, test_storage_long_zero_padded_numbers);
	tcase_add_test(bugs, test_meta_set_without_key_is_error);
	tcase_add_test(bugs, test_meta_set_too_many_flags_swallows_nothing);
	suite_add_tcase(s, bugs);
	return s;
}
