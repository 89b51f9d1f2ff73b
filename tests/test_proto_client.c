/*
 * test_proto_client: unit tests for the client request parser.
 *
 * Every input is fed the way a connection sees it: in one read, one byte per
 * read, and in reads split at pseudo-random points (fixed seeds, so failures
 * reproduce). The caller model is the one in conn.c: keep the unconsumed
 * bytes, append the new ones, call pc_parse until it needs more. All feeds
 * must give the same results, and those must match memcached 1.6.18 as
 * measured, except where DESIGN §3 makes coalesced stricter (keys with a
 * byte <= 0x20 or 0x7f, NUL included, and meta flag tokens with a control
 * byte, are refused with CLIENT_ERROR bad command line format). The
 * conformance suite's "parser against memcached" case holds the same forms
 * to a running memcached.
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
	/* The parts of writes and meta commands. */
	bool noreply, has_exptime, key_base64, too_large, too_many_keys;
	uint32_t flags, level;
	int32_t exptime;
	uint64_t cas, delta;
	bool has_data;
	size_t data_off, datalen;
	char *mflags; /* the meta flags joined by spaces (malloc'd), or NULL */
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

/* The fields of writes and meta commands, with the header's promises
 * about where their bytes are. */
static void record_parts(struct result *r, const struct pc_cmd *cmd, const char *buf, size_t used,
                         size_t base, const char *what)
{
	r->noreply = cmd->noreply;
	r->has_exptime = cmd->has_exptime;
	r->key_base64 = cmd->key_base64;
	r->too_large = cmd->too_large;
	r->too_many_keys = cmd->too_many_keys;
	r->flags = cmd->flags;
	r->level = cmd->level;
	r->exptime = cmd->exptime;
	r->cas = cmd->cas;
	r->delta = cmd->delta;
	for (uint32_t i = 0; i < cmd->nkeys; i++) {
		const struct pc_key *k = &cmd->keys[i];
		ck_assert_msg(k->len >= 1 && k->len <= PC_KEY_MAX, "%s: key %u of %zu bytes", what,
		              i, k->len);
		for (size_t j = 0; j < k->len; j++)
			ck_assert_msg((unsigned char)k->p[j] > 0x20 && k->p[j] != 0x7f,
			              "%s: key %u has a control byte", what, i);
	}
	if (cmd->data) {
		/* The block follows its line and ends the consumed bytes, CRLF after. */
		ck_assert_msg(cmd->data > buf && cmd->data[-1] == '\n' &&
		                  cmd->data + cmd->datalen + 2 == buf + used &&
		                  memcmp(cmd->data + cmd->datalen, "\r\n", 2) == 0,
		              "%s: data block misplaced", what);
		r->has_data = true;
		r->data_off = base + (size_t)(cmd->data - buf);
		r->datalen = cmd->datalen;
	} else {
		ck_assert_msg(cmd->datalen == 0, "%s: datalen without data", what);
	}
	if (cmd->nmflags) {
		size_t n = 0, cap = 1;
		ck_assert(cmd->nmflags <= PC_MFLAGS_MAX);
		for (uint32_t i = 0; i < cmd->nmflags; i++)
			cap += cmd->mflags[i].arglen + 2;
		r->mflags = malloc(cap);
		ck_assert(r->mflags != NULL);
		for (uint32_t i = 0; i < cmd->nmflags; i++) {
			const struct pc_mflag *f = &cmd->mflags[i];
			ck_assert_msg(f->arg >= buf && f->arg + f->arglen <= buf + used &&
			                  f->arg[-1] == f->flag,
			              "%s: meta flag %u outside its token", what, i);
			for (size_t j = 0; j < f->arglen; j++)
				ck_assert_msg((unsigned char)f->arg[j] > 0x20 && f->arg[j] != 0x7f,
				              "%s: meta flag %u has a control byte", what, i);
			if (i)
				r->mflags[n++] = ' ';
			r->mflags[n++] = f->flag;
			memcpy(r->mflags + n, f->arg, f->arglen);
			n += f->arglen;
		}
		r->mflags[n] = '\0';
	}
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
	if (st == PC_COMMAND && cmd->nkeys) {
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
	if (st == PC_COMMAND)
		record_parts(r, cmd, buf, used, base, what);
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
		free(run->r[i].mflags);
	}
	run->n = 0;
}

/* Feed in[0..len) through a fresh parser, read by read as s decides. The
 * buffer handed to pc_parse is always exactly as long as its content, so a
 * sanitizer catches any read past len. */
static void feed(struct run *run, const char *in, size_t len, size_t max_line, size_t max_value,
                 struct splitter *s)
{
	struct pc_parser p;
	char *buf = NULL;
	size_t blen = 0, base = 0, pos = 0;
	char what[300];

	memset(run, 0, sizeof(*run));
	snprintf(what, sizeof(what), "\"%s\" (%s)", show(in, len), s->name);
	pc_init(&p, max_line);
	if (max_value)
		p.max_value = max_value;
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
		ck_assert_msg(x->noreply == y->noreply && x->has_exptime == y->has_exptime &&
		                  x->key_base64 == y->key_base64 && x->too_large == y->too_large &&
		                  x->too_many_keys == y->too_many_keys && x->flags == y->flags &&
		                  x->level == y->level && x->exptime == y->exptime &&
		                  x->cas == y->cas && x->delta == y->delta &&
		                  x->has_data == y->has_data && x->data_off == y->data_off &&
		                  x->datalen == y->datalen && same_str(x->mflags, y->mflags),
		              "\"%s\": result %zu: command parts differ %s", what, i, mode);
	}
}

/* Feed in one read into *whole, then byte by byte and with NSEEDS random
 * splits, each of which must give what the single read gave. */
static void run_all_modes(const char *in, size_t len, size_t max_line, size_t max_value,
                          struct run *whole)
{
	struct splitter s = split_whole();
	struct run r;

	feed(whole, in, len, max_line, max_value, &s);
	s = split_bytes();
	feed(&r, in, len, max_line, max_value, &s);
	same_run(whole, &r, in, len, s.name);
	run_free(&r);
	for (unsigned seed = 1; seed <= NSEEDS; seed++) {
		s = split_random(seed);
		feed(&r, in, len, max_line, max_value, &s);
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
	/* Writes and meta commands: every part not given must be 0/false. */
	bool noreply, has_exptime, b64, too_large;
	uint32_t cflags, level; /* cflags: a storage command's client flags */
	int32_t exptime;
	uint64_t cas, delta;
	const char *data; /* the data block (NULL: none) */
	size_t dlen;      /* its length, when it holds a NUL */
	const char *mflags;
};

struct pcase {
	const char *in;
	size_t len;
	struct want w[4];
	size_t left;      /* bytes still waiting at the end of the input */
	size_t max_value; /* the parser's, when not the default */
};

#define L(lit) (sizeof(lit) - 1)

#define R_ERROR "ERROR\r\n"
#define R_BAD_FORMAT "CLIENT_ERROR bad command line format\r\n"
#define R_BAD_CHUNK "CLIENT_ERROR bad data chunk\r\n"
#define R_TOO_LONG "CLIENT_ERROR line too long\r\n"
#define R_UNSUPPORTED "SERVER_ERROR not supported\r\n"
#define R_TOO_LARGE "SERVER_ERROR object too large for cache\r\n"
#define R_BAD_EXPTIME "CLIENT_ERROR invalid exptime argument\r\n"
#define R_BAD_DELTA "CLIENT_ERROR invalid numeric delta argument\r\n"
#define R_DELETE_USAGE "CLIENT_ERROR bad command line format.  Usage: delete <key> [noreply]\r\n"
#define R_END "END\r\n"
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
/* A parsed command of type t ending at e, with the parts given as
 * designated initializers: W_CMD(PC_SET, 0, .keys = {"k"}, .data = "x"). */
#define W_CMD(t, e, ...)                                                                           \
	{                                                                                          \
		.st = PC_COMMAND, .type = (t), .end = (e), __VA_ARGS__                             \
	}
/* A value over max_value: answered, then its block discarded. */
#define W_TOO_LARGE(e, ...)                                                                        \
	{                                                                                          \
		.st = PC_COMMAND, .type = PC_REPLY, .reply = R_TOO_LARGE, .end = (e),              \
		.too_large = true, __VA_ARGS__                                                     \
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

static void check_parts(const struct want *w, const struct result *r, const struct pcase *c,
                        const char *what, size_t i)
{
	ck_assert_msg(r->noreply == w->noreply, "\"%s\": result %zu: noreply %d", what, i,
	              r->noreply);
	ck_assert_msg(r->has_exptime == w->has_exptime, "\"%s\": result %zu: has_exptime %d", what,
	              i, r->has_exptime);
	ck_assert_msg(r->key_base64 == w->b64, "\"%s\": result %zu: key_base64 %d", what, i,
	              r->key_base64);
	ck_assert_msg(r->too_large == w->too_large, "\"%s\": result %zu: too_large %d", what, i,
	              r->too_large);
	ck_assert_msg(r->flags == w->cflags, "\"%s\": result %zu: flags %u", what, i, r->flags);
	ck_assert_msg(r->level == w->level, "\"%s\": result %zu: level %u", what, i, r->level);
	ck_assert_msg(r->exptime == w->exptime, "\"%s\": result %zu: exptime %d", what, i,
	              (int)r->exptime);
	ck_assert_msg(r->cas == w->cas, "\"%s\": result %zu: cas %llu", what, i,
	              (unsigned long long)r->cas);
	ck_assert_msg(r->delta == w->delta, "\"%s\": result %zu: delta %llu", what, i,
	              (unsigned long long)r->delta);
	if (w->data) {
		size_t dl = w->dlen ? w->dlen : strlen(w->data);
		ck_assert_msg(r->has_data && r->datalen == dl &&
		                  memcmp(c->in + r->data_off, w->data, dl) == 0,
		              "\"%s\": result %zu: data \"%s\"", what, i,
		              r->has_data ? show(c->in + r->data_off, r->datalen) : "(none)");
	} else {
		ck_assert_msg(!r->has_data, "\"%s\": result %zu: data where there is none", what,
		              i);
	}
	ck_assert_msg(same_str(r->mflags, w->mflags), "\"%s\": result %zu: meta flags \"%s\"", what,
	              i, r->mflags ? r->mflags : "(none)");
}

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
		check_parts(w, r, c, what, i);
	}
	if (!run->closed)
		ck_assert_msg(run->left == c->left, "\"%s\": %zu bytes left waiting, expected %zu",
		              what, run->left, c->left);
}

static void check_case(const struct pcase *c, size_t max_line)
{
	struct run whole;

	run_all_modes(c->in, c->len, max_line, c->max_value, &whole);
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

		run_all_modes(in, len, MAX_LINE, 0, &r);
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

	feed(&r, in, len, MAX_LINE, 0, &s);
	ck_assert_uint_eq(r.n, 1);
	ck_assert_int_eq(r.r[0].st, PC_COMMAND);
	ck_assert_int_eq(r.r[0].type, PC_REPLY);
	ck_assert_str_eq(r.r[0].reply, R_ERROR);
	run_free(&r);

	s = split_list(three_reads, 3);
	feed(&r, in, len, MAX_LINE, 0, &s);
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

	feed(&r, in, len, MAX_LINE, 0, &s);
	ck_assert_uint_eq(r.n, 1);
	ck_assert_int_eq(r.r[0].type, PC_VERSION);
	ck_assert_uint_eq(r.r[0].end, len);
	run_free(&r);

	s = split_bytes();
	feed(&r, in, len, MAX_LINE, 0, &s);
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

	run_all_modes(in, len, MAX_LINE, 0, &r);
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

	run_all_modes(in, len, 4096, 0, &r);
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
	run_all_modes(in, len, MAX_LINE, 0, &r);
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
/* Storage commands: parsed once the whole data block is there              */

#define W_STORE(t, e, k, d, ...) W_CMD(t, e, .keys = {k}, .data = (d), __VA_ARGS__)
#define W_SET(e, k, d, ...) W_STORE(PC_SET, e, k, d, __VA_ARGS__)

static const struct pcase storage_ok[] = {
    C("set k 0 0 3\r\nxyz\r\n", W_SET(0, "k", "xyz")),
    C("set k 0 0 3\nxyz\r\n", W_SET(0, "k", "xyz")),
    C("set k 0 0 3\r\nx\r\n\r\n", W_SET(0, "k", "x\r\n")), /* CRLF inside the block */
    C("set k 0 0 0\r\n\r\n", W_SET(0, "k", "")),
    C("set k 0 0 5\r\na\0b\nc\r\n", W_SET(0, "k", "a\0b\nc", .dlen = 5)),
    C("set k 0 0 3 foo\r\nxyz\r\n", W_SET(0, "k", "xyz")), /* only "noreply" means noreply */
    C("set k 1 2 3\r\nxyz\r\n", W_SET(0, "k", "xyz", .cflags = 1, .exptime = 2)),
    C("add k 7 0 1\r\nx\r\n", W_STORE(PC_ADD, 0, "k", "x", .cflags = 7)),
    C("replace k 0 -1 1\r\nx\r\n", W_STORE(PC_REPLACE, 0, "k", "x", .exptime = -1)),
    C("append k 0 0 1\r\nx\r\n", W_STORE(PC_APPEND, 0, "k", "x")),
    C("prepend k 0 0 1\r\nx\r\n", W_STORE(PC_PREPEND, 0, "k", "x")),
    C("cas k 0 0 1 1\r\nx\r\n", W_STORE(PC_CAS, 0, "k", "x", .cas = 1)),
    C("cas k 0 0 1 18446744073709551615\r\nx\r\n", W_STORE(PC_CAS, 0, "k", "x", .cas = UINT64_MAX)),
    C("set k 0 0 3\r\nabc\r\nget k\r\n", W_SET(L("set k 0 0 3\r\nabc\r\n"), "k", "abc"),
      W_GET(0, "k")),
    C("set k 0 0 3\r\nabc\r\nset j 0 0 1\r\nx\r\n", W_SET(L("set k 0 0 3\r\nabc\r\n"), "k", "abc"),
      W_SET(0, "j", "x")),
    C("set k 0 0 1\r\nx\r\nversion\r\n", W_SET(L("set k 0 0 1\r\nx\r\n"), "k", "x"), W_VERSION(0)),
    C("set " K250 " 0 0 1\r\nx\r\n", W_SET(0, K250, "x")),
    C("set \xc3\xa9t\xc3\xa9 0 0 1\r\nx\r\n", W_SET(0, "\xc3\xa9t\xc3\xa9", "x")),
    /* memcached reads the line up to a NUL: what follows it is not there. */
    C("set k 0 0 1\0junk\r\nx\r\n", W_SET(0, "k", "x")),
    C("set k 0 0 1 noreply\0junk\r\nx\r\n", W_SET(0, "k", "x", .noreply = true)),
    /* The block is taken whole, whatever it holds. */
    C("set k 0 0 7\r\nget a\r\n\r\n", W_SET(0, "k", "get a\r\n")),
};

START_TEST(test_storage_parsed_with_data)
{
	check_case(&storage_ok[_i], MAX_LINE);
}
END_TEST

static const struct pcase storage_noreply[] = {
    C("set k 0 0 3 noreply\r\nxyz\r\n", W_SET(0, "k", "xyz", .noreply = true)),
    C("append k 0 0 1 noreply\r\nx\r\n", W_STORE(PC_APPEND, 0, "k", "x", .noreply = true)),
    C("cas k 0 0 1 1 noreply\r\nx\r\n", W_STORE(PC_CAS, 0, "k", "x", .cas = 1, .noreply = true)),
    C("set k 0 0 1 noreply\r\nx\r\nget a\r\n",
      W_SET(L("set k 0 0 1 noreply\r\nx\r\n"), "k", "x", .noreply = true), W_GET(0, "a")),
};

START_TEST(test_storage_noreply)
{
	check_case(&storage_noreply[_i], MAX_LINE);
}
END_TEST

/* Numbers as memcached's safe_strtol/strtoul/strtoull read them: libc
 * strto* with a sign, leading zeros and trailing white space; stored in the
 * field's width as is. */
static const struct pcase storage_numbers[] = {
    C("set k 0 0 +1\r\nx\r\n", W_SET(0, "k", "x")),
    C("set k 0 0 01\r\nx\r\n", W_SET(0, "k", "x")),
    C("set k 0 0 1 \r\nx\r\n", W_SET(0, "k", "x")),
    C("set k 0 0  1\r\nx\r\n", W_SET(0, "k", "x")),
    C("set k 0 0 1\nx\r\n", W_SET(0, "k", "x")),
    C("set k 0 0 1\t\r\nx\r\n", W_SET(0, "k", "x")),
    C("set k 0 0 1\r\r\nx\r\n", W_SET(0, "k", "x")),
    C("set k 0 0 -0\r\n\r\n", W_SET(0, "k", "")),
    C("set k 0 0 4294967297\r\nx\r\n", W_SET(0, "k", "x")), /* bytes = 1 */
    C("set k 4294967296 0 1\r\nx\r\n", W_SET(0, "k", "x")), /* flags = 0 */
    C("set k 4294967295 0 1\r\nx\r\n", W_SET(0, "k", "x", .cflags = UINT32_MAX)),
    C("set k 18446744073709551615 0 1\r\nx\r\n", W_SET(0, "k", "x", .cflags = UINT32_MAX)),
    C("set k -0 0 1\r\nx\r\n", W_SET(0, "k", "x")),
    C("set k +5 0 1\r\nx\r\n", W_SET(0, "k", "x", .cflags = 5)),
    C("set k 0 99999999999 1\r\nx\r\n", W_SET(0, "k", "x", .exptime = 1215752191)),
    C("set k 0 -1 1\r\nx\r\n", W_SET(0, "k", "x", .exptime = -1)),
    C("set k 0 -2147483648 1\r\nx\r\n", W_SET(0, "k", "x", .exptime = INT32_MIN)),
    C("set k 0 2147483648 1\r\nx\r\n", W_SET(0, "k", "x", .exptime = INT32_MIN)),
    C("cas k 0 0 1 007\r\nx\r\n", W_STORE(PC_CAS, 0, "k", "x", .cas = 7)),
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
    C("set k 0 0 1\r\nx\n\r\n", W_CHUNK(L("set k 0 0 1\r\nx\n\r")), W_ERROR(0)),
    C("set k 0 0 3 noreply\r\nxyzW\r\n", W_SILENT(L("set k 0 0 3 noreply\r\nxyzW\r"), F_CE),
      W_ERROR(0)),
    C("cas k 0 0 1 1 noreply\r\nxy\r\n", W_SILENT(L("cas k 0 0 1 1 noreply\r\nxy\r"), F_CE),
      W_ERROR(0)),
    C("ms k 2\r\nabc\r\n", W_CHUNK(L("ms k 2\r\nabc\r")), W_ERROR(0)),
    /* Meta commands always answer errors, q or not. */
    C("ms k 2 q\r\nabc\r\n", W_CHUNK(L("ms k 2 q\r\nabc\r")), W_ERROR(0)),
};

START_TEST(test_storage_bad_data_chunk)
{
	check_case(&storage_bad_chunk[_i], MAX_LINE);
}
END_TEST

static const struct pcase storage_waiting[] = {
    /* Nothing is consumed until the whole block is there. */
    WAIT("set k 0 0 3\r\n", L("set k 0 0 3\r\n")),
    WAIT("set k 0 0 3\r\nxy\r\n", L("set k 0 0 3\r\nxy\r\n")),
    WAIT("set k 0 0 3\r\nxyz\n", L("set k 0 0 3\r\nxyz\n")),
    WAIT("set k 0 0 3\r\nxyz\r", L("set k 0 0 3\r\nxyz\r")),
    WAIT("set k 0 0 1\r\nx\n", L("set k 0 0 1\r\nx\n")),
    WAIT("ms k 2\r\na", L("ms k 2\r\na")),
    CL("get a\r\nset k 0 0 3\r\nab", L("set k 0 0 3\r\nab"), W_GET(L("get a\r\n"), "a")),
    CL("set k 0 0 1\r\nx\r\nset k 0 0 3\r\nab", L("set k 0 0 3\r\nab"),
       W_SET(L("set k 0 0 1\r\nx\r\n"), "k", "x")),
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
    C("set k 0 0 1 2 3\r\nx\r\n", W_ERROR(L("set k 0 0 1 2 3\r\n")), W_ERROR(0)),
    C("cas k 0 0 1\r\nx\r\n", W_ERROR(L("cas k 0 0 1\r\n")), W_ERROR(0)),
    C("cas k 0 0 1 1 noreply x\r\nx\r\n", W_ERROR(L("cas k 0 0 1 1 noreply x\r\n")), W_ERROR(0)),
    C("set k 0 0\0 1\r\nx\r\n", W_ERROR(L("set k 0 0\0 1\r\n")), W_ERROR(0)),
    C("set k 0 0 -1\r\n", W_BADFMT(0)),
    C("set k 0 0 -1\r\nx\r\n", W_BADFMT(L("set k 0 0 -1\r\n")), W_ERROR(0)),
    C("set k 0 0 abc\r\nxyz\r\n", W_BADFMT(L("set k 0 0 abc\r\n")), W_ERROR(0)),
    C("set k 0 0 1x\r\nx\r\n", W_BADFMT(L("set k 0 0 1x\r\n")), W_ERROR(0)),
    C("set k 0 0 0x1\r\nx\r\n", W_BADFMT(L("set k 0 0 0x1\r\n")), W_ERROR(0)),
    C("set k abc 0 1\r\nx\r\n", W_BADFMT(L("set k abc 0 1\r\n")), W_ERROR(0)),
    C("set k 1.5 0 1\r\nx\r\n", W_BADFMT(L("set k 1.5 0 1\r\n")), W_ERROR(0)),
    C("set k 0 abc 1\r\nx\r\n", W_BADFMT(L("set k 0 abc 1\r\n")), W_ERROR(0)),
    C("set k 0 1e3 1\r\nx\r\n", W_BADFMT(L("set k 0 1e3 1\r\n")), W_ERROR(0)),
    C("set k -1 0 1\r\nx\r\n", W_BADFMT(L("set k -1 0 1\r\n")), W_ERROR(0)),
    C("set k 0 99999999999999999999 1\r\nx\r\n", W_BADFMT(L("set k 0 99999999999999999999 1\r\n")),
      W_ERROR(0)),
    C("set " K251 " 0 0 1\r\nx\r\n", W_BADFMT(L("set " K251 " 0 0 1\r\n")), W_ERROR(0)),
    C("cas k 0 0 1 x\r\nx\r\n", W_BADFMT(L("cas k 0 0 1 x\r\n")), W_ERROR(0)),
    C("cas k 0 0 1 -1\r\nx\r\n", W_BADFMT(L("cas k 0 0 1 -1\r\n")), W_ERROR(0)),
    C("cas k 0 0 1 18446744073709551616\r\nx\r\n",
      W_BADFMT(L("cas k 0 0 1 18446744073709551616\r\n")), W_ERROR(0)),
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
    C("set " K251 " 0 0 1 noreply\r\nx\r\n", W_SILENT(L("set " K251 " 0 0 1 noreply\r\n"), F_CE),
      W_ERROR(0)),
};

START_TEST(test_storage_malformed_swallows_nothing)
{
	check_case(&storage_malformed[_i], MAX_LINE);
}
END_TEST

/* A value over max_value: memcached's error at once (none with noreply),
 * then the block is discarded as it arrives, unchecked. Only set and ms
 * tell the key, whose old value memcached drops. */
static const struct pcase too_large[] = {
    {.in = "set k 0 0 4\r\nabcd\r\nget a\r\n",
     .len = L("set k 0 0 4\r\nabcd\r\nget a\r\n"),
     .max_value = 3,
     .w = {W_TOO_LARGE(L("set k 0 0 4\r\n"), .keys = {"k"}), W_GET(0, "a")}},
    {.in = "set k 0 0 3\r\nabc\r\n",
     .len = L("set k 0 0 3\r\nabc\r\n"),
     .max_value = 3,
     .w = {W_SET(0, "k", "abc")}},
    {.in = "set k 0 0 4 noreply\r\nabcd\r\nget a\r\n",
     .len = L("set k 0 0 4 noreply\r\nabcd\r\nget a\r\n"),
     .max_value = 3,
     .w = {{.st = PC_COMMAND,
            .type = PC_SILENT,
            .end = L("set k 0 0 4 noreply\r\n"),
            .too_large = true,
            .keys = {"k"}},
           W_GET(0, "a")}},
    {.in = "add k 0 0 4\r\nabcd\r\nget a\r\n",
     .len = L("add k 0 0 4\r\nabcd\r\nget a\r\n"),
     .max_value = 3,
     .w = {W_TOO_LARGE(L("add k 0 0 4\r\n")), W_GET(0, "a")}},
    {.in = "cas k 0 0 4 1\r\nabcd\r\nget a\r\n",
     .len = L("cas k 0 0 4 1\r\nabcd\r\nget a\r\n"),
     .max_value = 3,
     .w = {W_TOO_LARGE(L("cas k 0 0 4 1\r\n")), W_GET(0, "a")}},
    /* The discarded bytes need not end in CRLF. */
    {.in = "set k 0 0 4\r\nabcdefget a\r\n",
     .len = L("set k 0 0 4\r\nabcdefget a\r\n"),
     .max_value = 3,
     .w = {W_TOO_LARGE(L("set k 0 0 4\r\n"), .keys = {"k"}), W_GET(0, "a")}},
    {.in = "set k 0 0 9\r\nget x\r\n\r\n\r\nget a\r\n",
     .len = L("set k 0 0 9\r\nget x\r\n\r\n\r\nget a\r\n"),
     .max_value = 3,
     .w = {W_TOO_LARGE(L("set k 0 0 9\r\n"), .keys = {"k"}), W_GET(0, "a")}},
    /* A key coalesced refuses is not told. */
    {.in = "set a\tb 0 0 4\r\nabcd\r\nget a\r\n",
     .len = L("set a\tb 0 0 4\r\nabcd\r\nget a\r\n"),
     .max_value = 3,
     .w = {W_TOO_LARGE(L("set a\tb 0 0 4\r\n")), W_GET(0, "a")}},
    {.in = "ms k 4 T0\r\nabcd\r\nget a\r\n",
     .len = L("ms k 4 T0\r\nabcd\r\nget a\r\n"),
     .max_value = 3,
     .w = {W_TOO_LARGE(L("ms k 4 T0\r\n"), .keys = {"k"}), W_GET(0, "a")}},
    {.in = "ms YWJj 4 b q\r\nabcd\r\nget a\r\n",
     .len = L("ms YWJj 4 b q\r\nabcd\r\nget a\r\n"),
     .max_value = 3,
     .w = {W_TOO_LARGE(L("ms YWJj 4 b q\r\n"), .keys = {"YWJj"}, .b64 = true), W_GET(0, "a")}},
    /* memcached's other checks come first. */
    {.in = "ms k 4 zz\r\nabcd\r\nget a\r\n",
     .len = L("ms k 4 zz\r\nabcd\r\nget a\r\n"),
     .max_value = 3,
     .w = {W_REPLY(L("ms k 4 zz\r\n"), R_INVALID_FLAG, F_CE), W_GET(0, "a")}},
    {.in = "set k 0 x 4\r\nabcd\r\n",
     .len = L("set k 0 x 4\r\nabcd\r\n"),
     .max_value = 3,
     .w = {W_BADFMT(L("set k 0 x 4\r\n")), W_ERROR(0)}},
    /* With the default limit of 1 MiB. */
    C("set k 0 0 2147483645\r\nabc\r\n", W_TOO_LARGE(L("set k 0 0 2147483645\r\n"), .keys = {"k"})),
    C("set k 0 0 99999999999\r\nabc\r\n",
      W_TOO_LARGE(L("set k 0 0 99999999999\r\n"), .keys = {"k"})),
    C("set k 0 0 1048577\r\nabc\r\n", W_TOO_LARGE(L("set k 0 0 1048577\r\n"), .keys = {"k"})),
    WAIT("set k 0 0 1048576\r\nabc\r\n", L("set k 0 0 1048576\r\nabc\r\n")),
};

START_TEST(test_storage_too_large_discarded)
{
	check_case(&too_large[_i], MAX_LINE);
}
END_TEST

/* DESIGN §3's stricter keys: memcached would store these, so their block is
 * read (and dropped) to keep the stream in step. */
static const struct pcase storage_bad_key[] = {
    C("set a\tb 0 0 1\r\nx\r\nget c\r\n", W_BADFMT(L("set a\tb 0 0 1\r\n")), W_GET(0, "c")),
    C("set a\x7f 0 0 1\r\nx\r\nget c\r\n", W_BADFMT(L("set a\x7f 0 0 1\r\n")), W_GET(0, "c")),
    C("cas \x01 0 0 1 1\r\nx\r\nget c\r\n", W_BADFMT(L("cas \x01 0 0 1 1\r\n")), W_GET(0, "c")),
    C("set a\x01 0 0 1 noreply\r\nx\r\nget c\r\n", W_SILENT(L("set a\x01 0 0 1 noreply\r\n"), F_CE),
      W_GET(0, "c")),
    C("set a\rb 0 0 3\r\nxyzget c\r\n", W_BADFMT(L("set a\rb 0 0 3\r\n")), W_ERROR(0)),
    C("ms a\tb 2\r\nab\r\nget c\r\n", W_BADFMT(L("ms a\tb 2\r\n")), W_GET(0, "c")),
};

START_TEST(test_storage_bad_key_discards_block)
{
	check_case(&storage_bad_key[_i], MAX_LINE);
}
END_TEST

/* p->need says how much to buffer; nothing is consumed before. */
START_TEST(test_storage_need)
{
	static const char in[] = "set k 0 0 5\r\nhello\r\nget a\r\n";
	const size_t line = L("set k 0 0 5\r\n");
	struct pc_parser p;
	struct pc_cmd cmd;
	size_t used;

	pc_init(&p, MAX_LINE);
	for (size_t n = 1; n < line; n++) {
		ck_assert_int_eq(pc_parse(&p, in, n, &cmd, &used), PC_NEED_MORE);
		ck_assert_uint_eq(p.need, 0);
	}
	for (size_t n = line; n < line + 7; n++) {
		ck_assert_int_eq(pc_parse(&p, in, n, &cmd, &used), PC_NEED_MORE);
		ck_assert_uint_eq(used, 0);
		ck_assert_uint_eq(p.need, line + 7);
	}
	ck_assert_int_eq(pc_parse(&p, in, sizeof(in) - 1, &cmd, &used), PC_COMMAND);
	ck_assert_int_eq(cmd.type, PC_SET);
	ck_assert_uint_eq(used, line + 7);
	ck_assert_ptr_eq(cmd.data, in + line);
	ck_assert_uint_eq(cmd.datalen, 5);
	ck_assert_uint_eq(p.need, 0);
	ck_assert_int_eq(pc_parse(&p, in + used, sizeof(in) - 1 - used, &cmd, &used), PC_COMMAND);
	ck_assert_int_eq(cmd.type, PC_GET);
	pc_free(&p);
}
END_TEST

/* A 1 MiB value: the block is never searched or copied; the parser looks
 * only at its line and its last two bytes. The pages between are made
 * unreadable, so a parser that reads them crashes. */
START_TEST(test_storage_block_never_read)
{
	long ps = sysconf(_SC_PAGESIZE);
	size_t page = ps > 0 ? (size_t)ps : 4096, vlen = 1048576;
	size_t npages = (vlen + 64) / page + 2, size = npages * page;
	char *buf = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	int hl = snprintf(buf, 64, "set big 0 0 %zu\r\n", vlen);
	size_t total = (size_t)hl + vlen + 2, n;
	struct pc_parser p;
	struct pc_cmd cmd;
	size_t used;

	ck_assert(buf != MAP_FAILED);
	memset(buf + hl, 'v', vlen);
	memcpy(buf + hl + vlen, "\r\n", 2);
	pc_init(&p, MAX_LINE);
	ck_assert(mprotect(buf + page, ((total - 2) / page - 1) * page, PROT_NONE) == 0);
	/* Arriving in 16 KiB reads, as a connection sees it. */
	for (n = (size_t)hl; n < total; n += 16384) {
		ck_assert_int_eq(pc_parse(&p, buf, n, &cmd, &used), PC_NEED_MORE);
		ck_assert_uint_eq(used, 0);
		ck_assert_uint_eq(p.need, total);
	}
	ck_assert_int_eq(pc_parse(&p, buf, total, &cmd, &used), PC_COMMAND);
	ck_assert_int_eq(cmd.type, PC_SET);
	ck_assert_uint_eq(used, total);
	ck_assert_ptr_eq(cmd.data, buf + hl);
	ck_assert_uint_eq(cmd.datalen, vlen);
	pc_free(&p);
	munmap(buf, size);
}
END_TEST

/* A value over the limit goes by without being buffered, across reads. */
START_TEST(test_storage_too_large_across_reads)
{
	size_t vlen = 3 * 1048576, len;
	char *in = malloc(vlen + 64);
	static const size_t reads[] = {5, 20, 16384, 1048576, 2000000, 3};
	struct splitter s = split_list(reads, sizeof(reads) / sizeof(reads[0]));
	struct run r;

	ck_assert(in != NULL);
	len = (size_t)sprintf(in, "set k 0 0 %zu\r\n", vlen);
	memset(in + len, 'x', vlen);
	len += vlen;
	len += (size_t)sprintf(in + len, "\r\nget a\r\n");
	feed(&r, in, len, MAX_LINE, 0, &s);
	ck_assert_uint_eq(r.n, 2);
	ck_assert_int_eq(r.r[0].type, PC_REPLY);
	ck_assert_str_eq(r.r[0].reply, R_TOO_LARGE);
	ck_assert_int_eq(r.r[1].type, PC_GET);
	ck_assert_uint_eq(r.r[1].end, len);
	run_free(&r);
	free(in);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* delete, incr/decr, touch, gat/gats, verbosity, flush_all                  */

#define W_KEY(t, e, k, ...) W_CMD(t, e, .keys = {k}, __VA_ARGS__)

static const struct pcase delete_forms[] = {
    C("delete k\r\n", W_KEY(PC_DELETE, 0, "k")),
    C("delete k 0\r\n", W_KEY(PC_DELETE, 0, "k")),
    C("delete k noreply\r\n", W_KEY(PC_DELETE, 0, "k", .noreply = true)),
    C("delete k 0 noreply\r\n", W_KEY(PC_DELETE, 0, "k", .noreply = true)),
    C("delete noreply\r\n", W_KEY(PC_DELETE, 0, "noreply")), /* the key */
    C("delete " K250 "\r\n", W_KEY(PC_DELETE, 0, K250)),
    C("delete k\r\nget a\r\n", W_KEY(PC_DELETE, L("delete k\r\n"), "k"), W_GET(0, "a")),
    C("delete\r\n", W_ERROR(0)),
    C("delete k 0 noreply x\r\n", W_ERROR(0)),
    C("delete k 1\r\n", W_REPLY(0, R_DELETE_USAGE, F_CE)),
    C("delete k 00\r\n", W_REPLY(0, R_DELETE_USAGE, F_CE)),
    C("delete k x\r\n", W_REPLY(0, R_DELETE_USAGE, F_CE)),
    C("delete k 0 x\r\n", W_REPLY(0, R_DELETE_USAGE, F_CE)),
    C("delete k noreply 0\r\n", W_REPLY(0, R_DELETE_USAGE, F_CE)),
    C("delete k 1 noreply\r\n", W_SILENT(0, F_CE)),
    C("delete " K251 "\r\n", W_BADFMT(0)),
    C("delete " K251 " noreply\r\n", W_SILENT(0, F_CE)),
    /* Stricter than memcached, which deletes "a" for the last three. */
    C("delete a\tb\r\n", W_BADFMT(0)),
    C("delete a\0\r\n", W_BADFMT(0)),
    C("delete a\0b\r\n", W_BADFMT(0)),
    C("delete a\0 noreply\r\n", W_BADFMT(0)),
};

START_TEST(test_delete)
{
	check_case(&delete_forms[_i], MAX_LINE);
}
END_TEST

static const struct pcase arith_forms[] = {
    C("incr k 1\r\n", W_KEY(PC_INCR, 0, "k", .delta = 1)),
    C("decr k 1\r\n", W_KEY(PC_DECR, 0, "k", .delta = 1)),
    C("incr k 0\r\n", W_KEY(PC_INCR, 0, "k")),
    C("incr k +5\r\n", W_KEY(PC_INCR, 0, "k", .delta = 5)),
    C("incr k 007\r\n", W_KEY(PC_INCR, 0, "k", .delta = 7)),
    C("incr k -0\r\n", W_KEY(PC_INCR, 0, "k")),
    C("decr k 18446744073709551615\r\n", W_KEY(PC_DECR, 0, "k", .delta = UINT64_MAX)),
    C("incr k 1 noreply\r\n", W_KEY(PC_INCR, 0, "k", .delta = 1, .noreply = true)),
    C("incr k 1 foo\r\n", W_KEY(PC_INCR, 0, "k", .delta = 1)),
    C("incr k\r\n", W_ERROR(0)),
    C("incr k 1 2 3\r\n", W_ERROR(0)),
    C("decr\r\n", W_ERROR(0)),
    C("incr k x\r\n", W_REPLY(0, R_BAD_DELTA, F_CE)),
    C("incr k -1\r\n", W_REPLY(0, R_BAD_DELTA, F_CE)),
    C("incr k 1.5\r\n", W_REPLY(0, R_BAD_DELTA, F_CE)),
    C("decr k 18446744073709551616\r\n", W_REPLY(0, R_BAD_DELTA, F_CE)),
    C("incr k x noreply\r\n", W_SILENT(0, F_CE)),
    C("incr k noreply\r\n", W_SILENT(0, F_CE)),
    C("incr " K251 " 1\r\n", W_BADFMT(0)),
    C("incr " K251 " x\r\n", W_BADFMT(0)), /* the key is checked first */
    C("incr " K251 " 1 noreply\r\n", W_SILENT(0, F_CE)),
    C("incr a\x01 1\r\n", W_BADFMT(0)),
    C("incr a\x01 x\r\n", W_REPLY(0, R_BAD_DELTA, F_CE)), /* memcached's checks first */
};

START_TEST(test_incr_decr)
{
	check_case(&arith_forms[_i], MAX_LINE);
}
END_TEST

static const struct pcase touch_forms[] = {
    C("touch k 10\r\n", W_KEY(PC_TOUCH, 0, "k", .exptime = 10)),
    C("touch k -1\r\n", W_KEY(PC_TOUCH, 0, "k", .exptime = -1)),
    C("touch k 0\r\n", W_KEY(PC_TOUCH, 0, "k")),
    C("touch k 99999999999\r\n", W_KEY(PC_TOUCH, 0, "k", .exptime = 1215752191)),
    C("touch k 10 noreply\r\n", W_KEY(PC_TOUCH, 0, "k", .exptime = 10, .noreply = true)),
    C("touch k 10 x\r\n", W_KEY(PC_TOUCH, 0, "k", .exptime = 10)),
    C("touch k\r\n", W_ERROR(0)),
    C("touch k 1 2 3\r\n", W_ERROR(0)),
    C("touch k x\r\n", W_REPLY(0, R_BAD_EXPTIME, F_CE)),
    C("touch k 1.5\r\n", W_REPLY(0, R_BAD_EXPTIME, F_CE)),
    C("touch k 99999999999999999999\r\n", W_REPLY(0, R_BAD_EXPTIME, F_CE)),
    C("touch k noreply\r\n", W_SILENT(0, F_CE)),
    C("touch k x noreply\r\n", W_SILENT(0, F_CE)),
    C("touch " K251 " 1\r\n", W_BADFMT(0)),
    C("touch a\x7f 1\r\n", W_BADFMT(0)),
};

START_TEST(test_touch)
{
	check_case(&touch_forms[_i], MAX_LINE);
}
END_TEST

static const struct pcase gat_forms[] = {
    C("gat 10 a b\r\n", W_CMD(PC_GAT, 0, .exptime = 10, .keys = {"a", "b"})),
    C("gats 0 a\r\n", W_CMD(PC_GATS, 0, .keys = {"a"})),
    C("gat -1 a a\r\n", W_CMD(PC_GAT, 0, .exptime = -1, .keys = {"a", "a"})),
    C("gat 0 a noreply\r\n", W_CMD(PC_GAT, 0, .keys = {"a", "noreply"})),
    C("gat  5   a  \r\n", W_CMD(PC_GAT, 0, .exptime = 5, .keys = {"a"})),
    /* No key: memcached answers an empty result. */
    C("gat 0\r\n", W_REPLY(0, R_END, 0)),
    C("gats 0 \r\n", W_REPLY(0, R_END, 0)),
    C("gat\r\n", W_ERROR(0)),
    C("gats\r\n", W_ERROR(0)),
    C("gat x a\r\n", W_REPLY(0, R_BAD_EXPTIME, F_CE)),
    C("gat x\r\n", W_REPLY(0, R_BAD_EXPTIME, F_CE)),
    C("gats 1.5 a\r\n", W_REPLY(0, R_BAD_EXPTIME, F_CE)),
    C("gat 0 " K251 "\r\n", W_BADFMT(0)),
    C("gat 0 a " K251 " b\r\n", W_BADFMT(0)),
    C("gat 0 a\tb\r\n", W_BADFMT(0)),
    C("gat 0 a\0\r\n", W_BADFMT(0)),
    C("gat 0 a\r\ngat 1 b\r\n", W_CMD(PC_GAT, L("gat 0 a\r\n"), .keys = {"a"}),
      W_CMD(PC_GAT, 0, .exptime = 1, .keys = {"b"})),
};

START_TEST(test_gat)
{
	check_case(&gat_forms[_i], MAX_LINE);
}
END_TEST

START_TEST(test_gat_past_23_tokens_and_key_limit)
{
	size_t len;
	char *in = build("gat 7", " b", 30, "\r\n", &len);
	struct run r;

	run_all_modes(in, len, MAX_LINE, 0, &r);
	ck_assert_uint_eq(r.n, 1);
	ck_assert_int_eq(r.r[0].type, PC_GAT);
	ck_assert_int_eq(r.r[0].exptime, 7);
	ck_assert_uint_eq(r.r[0].nkeys, 30);
	run_free(&r);
	free(in);

	/* max_keys applies as for get. */
	in = build("gats 7", " b", 9, "\r\n", &len);
	{
		struct pc_parser p;
		struct pc_cmd cmd;
		size_t used;

		pc_init(&p, MAX_LINE);
		p.max_keys = 8;
		ck_assert_int_eq(pc_parse(&p, in, len, &cmd, &used), PC_COMMAND);
		ck_assert_int_eq(cmd.type, PC_REPLY);
		ck_assert(cmd.too_many_keys && cmd.client_error);
		ck_assert_uint_eq(used, len);
		pc_free(&p);
	}
	free(in);
}
END_TEST

static const struct pcase verbosity_forms[] = {
    C("verbosity 1\r\n", W_CMD(PC_VERBOSITY, 0, .level = 1)),
    C("verbosity 0\r\n", W_CMD(PC_VERBOSITY, 0)),
    C("verbosity 1 noreply\r\n", W_CMD(PC_VERBOSITY, 0, .level = 1, .noreply = true)),
    C("verbosity 1 2\r\n", W_CMD(PC_VERBOSITY, 0, .level = 1)),
    C("verbosity 4294967296\r\n", W_CMD(PC_VERBOSITY, 0)),
    C("verbosity 4294967295\r\n", W_CMD(PC_VERBOSITY, 0, .level = UINT32_MAX)),
    C("verbosity\r\n", W_ERROR(0)),
    C("verbosity 1 2 3\r\n", W_ERROR(0)),
    C("verbosity x\r\n", W_BADFMT(0)),
    C("verbosity -1\r\n", W_BADFMT(0)),
    C("verbosity noreply\r\n", W_SILENT(0, F_CE)),
    C("verbosity x noreply\r\n", W_SILENT(0, F_CE)),
};

START_TEST(test_verbosity)
{
	check_case(&verbosity_forms[_i], MAX_LINE);
}
END_TEST

static const struct pcase flush_forms[] = {
    C("flush_all\r\n", W_CMD(PC_FLUSH_ALL, 0)),
    C("flush_all 0\r\n", W_CMD(PC_FLUSH_ALL, 0, .has_exptime = true)),
    C("flush_all 10\r\n", W_CMD(PC_FLUSH_ALL, 0, .has_exptime = true, .exptime = 10)),
    C("flush_all -5\r\n", W_CMD(PC_FLUSH_ALL, 0, .has_exptime = true, .exptime = -5)),
    C("flush_all noreply\r\n", W_CMD(PC_FLUSH_ALL, 0, .noreply = true)),
    C("flush_all 10 noreply\r\n",
      W_CMD(PC_FLUSH_ALL, 0, .has_exptime = true, .exptime = 10, .noreply = true)),
    C("flush_all 1 2\r\n", W_CMD(PC_FLUSH_ALL, 0, .has_exptime = true, .exptime = 1)),
    C("flush_all 1 2 3\r\n", W_ERROR(0)),
    C("flush_all x\r\n", W_REPLY(0, R_BAD_EXPTIME, F_CE)),
    C("flush_all noreply 5\r\n", W_REPLY(0, R_BAD_EXPTIME, F_CE)),
    C("flush_all x noreply\r\n", W_SILENT(0, F_CE)),
    C("flush_all noreply noreply\r\n", W_SILENT(0, F_CE)),
};

START_TEST(test_flush_all)
{
	check_case(&flush_forms[_i], MAX_LINE);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* Meta commands                                                            */

#define W_META(t, e, k, fl, ...) W_CMD(t, e, .keys = {k}, .mflags = (fl), __VA_ARGS__)
#define O32 "O" K10 K10 K10 "k"                      /* an opaque token of 32 bytes: the most */
#define O33 "O" K10 K10 K10 "kk"                     /* one byte too many */
#define F16 "v t c f k s O1 q T30 N30 R30 h l u P L" /* 16 flags: 17 at most */

static const struct pcase mg_forms[] = {
    C("mg a\r\n", W_META(PC_MG, 0, "a", NULL)),
    C("mg a v\r\n", W_META(PC_MG, 0, "a", "v")),
    C("mg a v t c f k s O123 q T30 N-1 R30 h l u\r\n",
      W_META(PC_MG, 0, "a", "v t c f k s O123 q T30 N-1 R30 h l u")),
    C("mg a qfoo MX Fx1\r\n", W_REPLY(0, R_BAD_FORMAT, F_CE)),     /* F's fault keeps the wording */
    C("mg a qfoo MX F1\r\n", W_META(PC_MG, 0, "a", "qfoo MX F1")), /* M is not checked for mg */
    C("mg a C5 D1 J2 I E\r\n", W_REPLY(0, R_INVALID_FLAG, F_CE)),  /* no E in 1.6.18 */
    C("mg a C5 D1 J2 I\r\n", W_META(PC_MG, 0, "a", "C5 D1 J2 I")),
    C("mg a " F16 "\r\n", W_META(PC_MG, 0, "a", F16)),
    C("mg a " O32 "\r\n", W_META(PC_MG, 0, "a", O32)),
    C("mg a k\0junk\r\n", W_META(PC_MG, 0, "a", "k")),
    C("mg YWJj b v\r\n", W_META(PC_MG, 0, "YWJj", "b v", .b64 = true)),
    C("mg YQ== b\r\n", W_META(PC_MG, 0, "YQ==", "b", .b64 = true)),
    C("mg a v q\r\nmn\r\n", W_META(PC_MG, L("mg a v q\r\n"), "a", "v q"), W_CMD(PC_MN, 0)),
    C("mg\r\n", W_ERROR(0)),
    C("mg " K251 " v\r\n", W_BADFMT(0)),
    C("mg " K251 " zz\r\n", W_BADFMT(0)),
    C("mg a " F16 " I\r\n", W_META(PC_MG, 0, "a", F16 " I")),
    C("mg a " F16 " I b\r\n", W_REPLY(0, R_MG_TOO_MANY, F_CE)),
    C("mg a E5\r\n", W_REPLY(0, R_INVALID_FLAG, F_CE)),
    C("mg a noreply\r\n", W_REPLY(0, R_INVALID_FLAG, F_CE)),
    C("mg a v v\r\n", W_REPLY(0, R_DUP_FLAG, F_CE)),
    C("mg a v vx\r\n", W_REPLY(0, R_DUP_FLAG, F_CE)),
    C("mg a \x80\r\n", W_REPLY(0, R_DUP_FLAG, F_CE)),
    C("mg a \x7f\r\n", W_REPLY(0, R_DUP_FLAG, F_CE)),
    C("mg a Tx\r\n", W_REPLY(0, R_BAD_TOKEN, F_CE)),
    C("mg a T\r\n", W_REPLY(0, R_BAD_TOKEN, F_CE)),
    C("mg a N\r\n", W_REPLY(0, R_BAD_TOKEN, F_CE)),
    C("mg a R1.5\r\n", W_REPLY(0, R_BAD_TOKEN, F_CE)),
    C("mg a Cx\r\n", W_REPLY(0, R_BAD_TOKEN, F_CE)),
    C("mg a C-1\r\n", W_REPLY(0, R_BAD_TOKEN, F_CE)),
    C("mg a Fx\r\n", W_BADFMT(0)),
    C("mg a F-1\r\n", W_BADFMT(0)),
    C("mg a Tx Fx\r\n", W_REPLY(0, R_BAD_TOKEN, F_CE)),
    C("mg a Fx Tx\r\n", W_REPLY(0, R_BAD_TOKEN, F_CE)),
    C("mg a M\r\n", W_REPLY(0, R_M_LENGTH, F_CE)),
    C("mg a MSS\r\n", W_REPLY(0, R_M_LENGTH, F_CE)),
    C("mg a Jx\r\n", W_REPLY(0, R_BAD_INITIAL, F_CE)),
    C("mg a Dx\r\n", W_REPLY(0, R_BAD_DELTA_VALUE, F_CE)),
    C("mg a Tx Dx\r\n", W_REPLY(0, R_BAD_DELTA_VALUE, F_CE)), /* the last fault */
    C("mg a Tx zz\r\n", W_REPLY(0, R_INVALID_FLAG, F_CE)),    /* unless it stops */
    C("mg a Tx v v\r\n", W_REPLY(0, R_DUP_FLAG, F_CE)),
    C("mg a b\r\n", W_REPLY(0, R_DECODE_KEY, F_CE)),
    C("mg ==== b\r\n", W_REPLY(0, R_DECODE_KEY, F_CE)),
    C("mg YQ= b\r\n", W_REPLY(0, R_DECODE_KEY, F_CE)),
    C("mg a b Tx\r\n", W_REPLY(0, R_BAD_TOKEN, F_CE)),
    C("mg a " O33 "\r\n", W_REPLY(0, R_OPAQUE_LONG, F_CE)),
    /* Stricter than memcached: only clean tokens are forwarded. */
    C("mg a\tb v\r\n", W_BADFMT(0)),
    C("mg a\0 v\r\n", W_BADFMT(0)),
    C("mg a v\x01\r\n", W_BADFMT(0)),
    C("mg a O\x01x\r\n", W_BADFMT(0)),
    C("mg a T30\t\r\n", W_BADFMT(0)),
};

START_TEST(test_meta_get)
{
	check_case(&mg_forms[_i], MAX_LINE);
}
END_TEST

static const struct pcase ms_forms[] = {
    C("ms k 2\r\nab\r\n", W_META(PC_MS, 0, "k", NULL, .data = "ab")),
    C("ms k 2 T0 F5 c q k O9 I MS C1\r\nab\r\n",
      W_META(PC_MS, 0, "k", "T0 F5 c q k O9 I MS C1", .data = "ab")),
    C("ms k 2 ME\r\nab\r\n", W_META(PC_MS, 0, "k", "ME", .data = "ab")),
    C("ms k 2 MA\r\nab\r\n", W_META(PC_MS, 0, "k", "MA", .data = "ab")),
    C("ms k 2 MP\r\nab\r\n", W_META(PC_MS, 0, "k", "MP", .data = "ab")),
    C("ms k 2 MR\r\nab\r\n", W_META(PC_MS, 0, "k", "MR", .data = "ab")),
    C("ms k 0\r\n\r\nget a\r\n", W_META(PC_MS, L("ms k 0\r\n\r\n"), "k", NULL, .data = ""),
      W_GET(0, "a")),
    C("ms k +2 v\r\nab\r\n", W_META(PC_MS, 0, "k", "v", .data = "ab")),
    C("ms YWJj 1 b\r\nx\r\n", W_META(PC_MS, 0, "YWJj", "b", .data = "x", .b64 = true)),
    C("ms k 2 " O32 "\r\nab\r\n", W_META(PC_MS, 0, "k", O32, .data = "ab")),
    /* Faults before the length: nothing discarded. */
    C("ms\r\n", W_ERROR(0)),
    C("ms k\r\n", W_BADFMT(0)),
    C("ms k\r\nab\r\n", W_BADFMT(L("ms k\r\n")), W_ERROR(0)),
    C("ms k x\r\n", W_BADFMT(0)),
    C("ms k -1\r\nab\r\n", W_BADFMT(L("ms k -1\r\n")), W_ERROR(0)),
    C("ms k 2147483646\r\n", W_BADFMT(0)),
    C("ms " K251 " 2\r\nab\r\n", W_BADFMT(L("ms " K251 " 2\r\n")), W_ERROR(0)),
    C("ms " K251 "\r\n", W_BADFMT(0)),
    C("ms k 2 " F16 "\r\nab\r\n", W_META(PC_MS, 0, "k", F16, .data = "ab")),
    C("ms k 2 " F16 " I\r\nab\r\n", W_REPLY(L("ms k 2 " F16 " I\r\n"), R_META_TOO_MANY, F_CE),
      W_ERROR(0)),
    /* Faults after it: the block is discarded, unchecked. */
    C("ms k 2 noreply\r\nab\r\nget a\r\n", W_REPLY(L("ms k 2 noreply\r\n"), R_INVALID_FLAG, F_CE),
      W_GET(0, "a")),
    C("ms k 2 v v\r\nab\r\nget a\r\n", W_REPLY(L("ms k 2 v v\r\n"), R_DUP_FLAG, F_CE),
      W_GET(0, "a")),
    C("ms k 2 T\r\nabcdget a\r\n", W_REPLY(L("ms k 2 T\r\n"), R_BAD_TOKEN, F_CE), W_GET(0, "a")),
    C("ms k 2 b\r\nab\r\nget a\r\n", W_REPLY(L("ms k 2 b\r\n"), R_DECODE_KEY, F_CE), W_GET(0, "a")),
    C("ms k 2 Fx\r\nab\r\nget a\r\n", W_BADFMT(L("ms k 2 Fx\r\n")), W_GET(0, "a")),
    C("ms k 2 MX\r\nab\r\nget a\r\n", W_REPLY(L("ms k 2 MX\r\n"), R_MS_MODE, F_CE), W_GET(0, "a")),
    C("ms k 2 MI\r\nab\r\nget a\r\n", W_REPLY(L("ms k 2 MI\r\n"), R_MS_MODE, F_CE), W_GET(0, "a")),
    C("ms k 2 " O33 "\r\nab\r\nget a\r\n", W_REPLY(L("ms k 2 " O33 "\r\n"), R_OPAQUE_LONG, F_CE),
      W_GET(0, "a")),
    C("ms k 2 " O33 " MX\r\nab\r\nget a\r\n", W_REPLY(L("ms k 2 " O33 " MX\r\n"), R_MS_MODE, F_CE),
      W_GET(0, "a")),
    C("ms k 2 v\x01\r\nab\r\nget a\r\n", W_BADFMT(L("ms k 2 v\x01\r\n")), W_GET(0, "a")),
};

START_TEST(test_meta_set)
{
	check_case(&ms_forms[_i], MAX_LINE);
}
END_TEST

static const struct pcase md_ma_forms[] = {
    C("md k\r\n", W_META(PC_MD, 0, "k", NULL)),
    C("md k q C5 I T30 O1 k\r\n", W_META(PC_MD, 0, "k", "q C5 I T30 O1 k")),
    C("md YWJj b\r\n", W_META(PC_MD, 0, "YWJj", "b", .b64 = true)),
    C("md\r\n", W_ERROR(0)),
    C("md " K251 "\r\n", W_BADFMT(0)),
    C("md k zz\r\n", W_REPLY(0, R_INVALID_OR_DUP, F_CE)),
    C("md k q q\r\n", W_REPLY(0, R_INVALID_OR_DUP, F_CE)),
    C("md k Tx\r\n", W_REPLY(0, R_INVALID_OR_DUP, F_CE)),
    C("md k b\r\n", W_REPLY(0, R_INVALID_OR_DUP, F_CE)),
    C("md k noreply\r\n", W_REPLY(0, R_INVALID_OR_DUP, F_CE)),
    C("md k " O33 "\r\n", W_REPLY(0, R_OPAQUE_LONG, F_CE)),
    C("md k " F16 " I b\r\n", W_REPLY(0, R_META_TOO_MANY, F_CE)),
    C("md a\0\r\n", W_BADFMT(0)),
    C("ma k\r\n", W_META(PC_MA, 0, "k", NULL)),
    C("ma k D5 J10 N0 MI q O1 t c v\r\n", W_META(PC_MA, 0, "k", "D5 J10 N0 MI q O1 t c v")),
    C("ma k MD\r\n", W_META(PC_MA, 0, "k", "MD")),
    C("ma k M+\r\n", W_META(PC_MA, 0, "k", "M+")),
    C("ma k M-\r\n", W_META(PC_MA, 0, "k", "M-")),
    C("ma\r\n", W_ERROR(0)),
    C("ma " K251 "\r\n", W_BADFMT(0)),
    C("ma k MX\r\n", W_REPLY(0, R_MA_MODE, F_CE)),
    C("ma k MS\r\n", W_REPLY(0, R_MA_MODE, F_CE)),
    C("ma k Dx\r\n", W_REPLY(0, R_INVALID_OR_DUP, F_CE)),
    C("ma k D-1\r\n", W_REPLY(0, R_INVALID_OR_DUP, F_CE)),
    C("ma k noreply\r\n", W_REPLY(0, R_INVALID_OR_DUP, F_CE)),
    C("ma k " O33 "\r\n", W_REPLY(0, R_OPAQUE_LONG, F_CE)),
    C("ma k " O33 " MX\r\n", W_REPLY(0, R_MA_MODE, F_CE)),
    C("ma k\x01 D1\r\n", W_BADFMT(0)),
};

START_TEST(test_meta_delete_and_arithmetic)
{
	check_case(&md_ma_forms[_i], MAX_LINE);
}
END_TEST

static const struct pcase mn_me_forms[] = {
    C("mn\r\n", W_CMD(PC_MN, 0)),
    C("mn foo bar\r\n", W_CMD(PC_MN, 0)),
    C("mn noreply\r\n", W_CMD(PC_MN, 0)),
    C("me k\r\n", W_KEY(PC_ME, 0, "k")),
    C("me k zzz q q\r\n", W_KEY(PC_ME, 0, "k")), /* other flags are ignored */
    C("me YWJj b\r\n", W_KEY(PC_ME, 0, "YWJj", .b64 = true)),
    C("me a bx\r\n", W_KEY(PC_ME, 0, "a")), /* only a lone b counts */
    C("me a v b\r\n", W_KEY(PC_ME, 0, "a")),
    C("me\r\n", W_BADFMT(0)),
    C("me " K251 "\r\n", W_BADFMT(0)),
    C("me a b\r\n", W_BADFMT(0)),
    C("me a\tb\r\n", W_BADFMT(0)),
    C("mz\r\n", W_ERROR(0)),
    C("m1 a\r\n", W_ERROR(0)),
};

START_TEST(test_meta_noop_and_debug)
{
	check_case(&mn_me_forms[_i], MAX_LINE);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* Other commands memcached knows                                            */

static const struct pcase refused[] = {
    C("cache_memlimit 100\r\n", W_UNSUP(0)),
    C("shutdown\r\n", W_UNSUP(0)),
    C("shutdown graceful\r\n", W_UNSUP(0)),
    C("slabs reassign 1 2\r\n", W_UNSUP(0)),
    C("lru_crawler metadump all\r\n", W_UNSUP(0)),
    C("lru mode flat\r\n", W_UNSUP(0)),
    C("watch\r\n", W_UNSUP(0)),
    C("refresh_certs\r\n", W_UNSUP(0)),
    C("shutdown\r\nget a\r\n", W_UNSUP(L("shutdown\r\n")), W_GET(0, "a")),
};

START_TEST(test_known_commands_refused)
{
	check_case(&refused[_i], MAX_LINE);
}
END_TEST

/* Commands whose noreply memcached honours are refused without a word. */
static const struct pcase refused_noreply[] = {
    C("cache_memlimit 100 noreply\r\n", W_SILENT(0, F_UNSUP)),
    C("cache_memlimit 100 noreply\r\nget a\r\n",
      W_SILENT(L("cache_memlimit 100 noreply\r\n"), F_UNSUP), W_GET(0, "a")),
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
 * Regression: noreply silences a command only where memcached honours it
 * (set_noreply_maybe after a passing token-count check). Measured on 1.6.18,
 * each of these still gets a reply (MN, VALUE…END, CLIENT_ERROR invalid flag,
 * ERROR: shutdown not enabled, ERROR, NOT_FOUND…), so silence here breaks
 * DESIGN's "every request gets exactly one reply" and leaves the client
 * waiting. Which reply coalesced sends is its business; that it sends one --
 * a reply of the parser's own, or a command without noreply -- is tested.
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

	run_all_modes(in, strlen(in), MAX_LINE, 0, &r);
	ck_assert_msg(r.n == 1 && r.r[0].st == PC_COMMAND && r.r[0].type != PC_SILENT &&
	                  !r.r[0].noreply,
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
	struct pcase c = DYN(in, len, W_SET(0, "k", "x"));

	check_case(&c, MAX_LINE);
	len = build_in(in, sizeof(in), "set k ", "0", 70, "7 0 1\r\nx\r\n");
	c = (struct pcase)DYN(in, len, W_SET(0, "k", "x", .cflags = 7));
	check_case(&c, MAX_LINE);
	len =
	    build_in(in, sizeof(in), "ms k ", "0", 70, "1 T00000000000000000000000000009\r\nx\r\n");
	c = (struct pcase)DYN(in, len,
	                      W_META(PC_MS, 0, "k", "T00000000000000000000000000009", .data = "x"));
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
 * tokens) are read with their block by both; the same flag twice is
 * "duplicate flag", the block discarded.
 */
START_TEST(test_meta_set_too_many_flags_swallows_nothing)
{
	char in[128];
	size_t len = build_in(in, sizeof(in), "ms k 2 ", F16, 1, "\r\nab\r\n");
	struct pcase c = DYN(in, len, W_META(PC_MS, 0, "k", F16, .data = "ab"));

	check_case(&c, MAX_LINE);
	len = build_in(in, sizeof(in), "ms k 2 ", F16, 1, " I\r\nab\r\n");
	c = (struct pcase)DYN(
	    in, len, W_REPLY(len - L("ab\r\n"), "CLIENT_ERROR options flags too long\r\n", F_CE),
	    W_ERROR(0));
	check_case(&c, MAX_LINE);
	len = build_in(in, sizeof(in), "ms k 2", " T0", 16, "\r\nab\r\nget a\r\n");
	c = (struct pcase)DYN(in, len, W_REPLY(len - L("ab\r\nget a\r\n"), R_DUP_FLAG, F_CE),
	                      W_GET(0, "a"));
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
	TCase *keycmd = tcase_create("key_commands");
	TCase *meta = tcase_create("meta");
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

	tcase_set_timeout(store, 60);
	tcase_add_loop_test(store, test_storage_parsed_with_data, 0, NCASES(storage_ok));
	tcase_add_loop_test(store, test_storage_noreply, 0, NCASES(storage_noreply));
	tcase_add_loop_test(store, test_storage_numbers_as_memcached, 0, NCASES(storage_numbers));
	tcase_add_loop_test(store, test_storage_bad_data_chunk, 0, NCASES(storage_bad_chunk));
	tcase_add_loop_test(store, test_storage_waits_for_data, 0, NCASES(storage_waiting));
	tcase_add_loop_test(store, test_storage_malformed_swallows_nothing, 0,
	                    NCASES(storage_malformed));
	tcase_add_loop_test(store, test_storage_too_large_discarded, 0, NCASES(too_large));
	tcase_add_loop_test(store, test_storage_bad_key_discards_block, 0, NCASES(storage_bad_key));
	tcase_add_test(store, test_storage_need);
	tcase_add_test(store, test_storage_block_never_read);
	tcase_add_test(store, test_storage_too_large_across_reads);
	suite_add_tcase(s, store);

	tcase_add_loop_test(keycmd, test_delete, 0, NCASES(delete_forms));
	tcase_add_loop_test(keycmd, test_incr_decr, 0, NCASES(arith_forms));
	tcase_add_loop_test(keycmd, test_touch, 0, NCASES(touch_forms));
	tcase_add_loop_test(keycmd, test_gat, 0, NCASES(gat_forms));
	tcase_add_test(keycmd, test_gat_past_23_tokens_and_key_limit);
	tcase_add_loop_test(keycmd, test_verbosity, 0, NCASES(verbosity_forms));
	tcase_add_loop_test(keycmd, test_flush_all, 0, NCASES(flush_forms));
	suite_add_tcase(s, keycmd);

	tcase_add_loop_test(meta, test_meta_get, 0, NCASES(mg_forms));
	tcase_add_loop_test(meta, test_meta_set, 0, NCASES(ms_forms));
	tcase_add_loop_test(meta, test_meta_delete_and_arithmetic, 0, NCASES(md_ma_forms));
	tcase_add_loop_test(meta, test_meta_noop_and_debug, 0, NCASES(mn_me_forms));
	suite_add_tcase(s, meta);

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
