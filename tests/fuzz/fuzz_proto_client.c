/*
 * fuzz_proto_client: libFuzzer target for the client request parser.
 *
 * The first input byte picks how the rest is cut into reads and the
 * parser's limits (fuzz_feed.h); the rest is what a client sends. Each pc_parse() call
 * is checked against the parser's contract, and the whole stream is parsed a
 * second time in one read: wherever the answer may not depend on how TCP cut
 * the stream, both runs must produce the same commands at the same offsets,
 * with the same parts (keys, numbers, data blocks, meta flags). Every part
 * of a parsed command must lie where the header says. Any violation traps.
 */
#include "fuzz_feed.h"
#include "proto_client.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define CHECK(cond)                                                                                \
	do {                                                                                       \
		if (!(cond))                                                                       \
			__builtin_trap();                                                          \
	} while (0)

/* One command as seen from outside, for comparing two runs. */
struct event {
	enum pc_status st;
	enum pc_type type;
	bool client_error, unsupported, too_many_keys, too_large;
	uint32_t nkeys;
	size_t end;    /* stream offset after the command (not for PC_CLOSE) */
	uint64_t hash; /* of the reply text, keys, arguments and every part */
};

struct events {
	struct event *v;
	size_t n, cap;
};

static uint64_t fnv(uint64_t h, const void *p, size_t n)
{
	const unsigned char *s = p;

	for (size_t i = 0; i < n; i++)
		h = (h ^ s[i]) * 1099511628211ULL;
	/* A separator, so that "ab","c" and "a","bc" differ. */
	return (h ^ 0x100) * 1099511628211ULL;
}

static bool inside(const char *p, size_t n, const char *buf, size_t len)
{
	return p >= buf && n <= len && (size_t)(p - buf) <= len - n;
}

static bool key_clean(const char *k, size_t n)
{
	if (n < 1 || n > 250)
		return false;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)k[i];
		if (c <= 0x20 || c == 0x7f)
			return false;
	}
	return true;
}

static bool bytes_clean(const char *p, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)p[i];
		if (ch <= 0x20 || ch == 0x7f)
			return false;
	}
	return true;
}

static bool is_storage(enum pc_type t)
{
	return t == PC_SET || t == PC_ADD || t == PC_REPLACE || t == PC_APPEND || t == PC_PREPEND ||
	       t == PC_CAS;
}

static bool is_meta(enum pc_type t)
{
	return t == PC_MG || t == PC_MS || t == PC_MD || t == PC_MA || t == PC_MN || t == PC_ME;
}

/* The parts of a parsed command: where they are and what they hold. */
static void check_parts(const struct feed_call *c)
{
	const struct pc_cmd *cmd = c->cmd;
	/* The end of a discarded block may come first in the same call. */
	const char *start = c->buf + c->swallow_before;
	size_t len = c->consumed - (size_t)c->swallow_before;
	const char *nl = memchr(start, '\n', len);
	size_t line;

	/* A command starts with its line, which its keys and flags are from. */
	CHECK(c->swallow_before <= c->consumed && nl != NULL);
	line = (size_t)(nl - start);
	CHECK(cmd->reply == NULL && !cmd->client_error && !cmd->unsupported && !cmd->too_large);
	CHECK(pc_type_word(cmd->type) != NULL);
	for (uint32_t i = 0; i < cmd->nkeys; i++) {
		CHECK(inside(cmd->keys[i].p, cmd->keys[i].len, start, line));
		CHECK(key_clean(cmd->keys[i].p, cmd->keys[i].len));
	}
	if (cmd->type == PC_GET || cmd->type == PC_GETS || cmd->type == PC_GAT ||
	    cmd->type == PC_GATS)
		CHECK(cmd->nkeys >= 1 && cmd->nkeys <= c->p->max_keys);
	else if (cmd->type == PC_MN || cmd->type == PC_VERSION || cmd->type == PC_QUIT ||
	         cmd->type == PC_STATS || cmd->type == PC_VERBOSITY || cmd->type == PC_FLUSH_ALL)
		CHECK(cmd->nkeys == 0);
	else
		CHECK(cmd->nkeys == 1);
	if (is_storage(cmd->type) || cmd->type == PC_MS) {
		/* The block right after the line, CRLF after it, and the command
		 * ends there. */
		CHECK(cmd->data == nl + 1);
		CHECK(cmd->datalen <= c->p->max_value);
		CHECK(len == line + 1 + cmd->datalen + 2);
		CHECK(cmd->data[cmd->datalen] == '\r' && cmd->data[cmd->datalen + 1] == '\n');
	} else {
		CHECK(cmd->data == NULL && cmd->datalen == 0);
		CHECK(len == line + 1);
	}
	if (is_meta(cmd->type) && cmd->type != PC_MN && cmd->type != PC_ME) {
		CHECK(cmd->nmflags <= PC_MFLAGS_MAX);
		for (uint32_t i = 0; i < cmd->nmflags; i++) {
			const struct pc_mflag *f = &cmd->mflags[i];
			CHECK(inside(f->arg - 1, f->arglen + 1, start, line));
			CHECK(f->arg[-1] == f->flag && bytes_clean(f->arg - 1, f->arglen + 1));
			if (f->flag == 'O')
				CHECK(f->arglen + 1 <= 32);
		}
	} else {
		/* me takes b alone, and no other flag. */
		CHECK(cmd->nmflags == 0 && (cmd->type == PC_ME || !cmd->key_base64));
	}
	if (cmd->key_base64)
		CHECK(pc_base64_decode(cmd->keys[0].p, cmd->keys[0].len, NULL) > 0);
	if (cmd->noreply)
		CHECK(!is_meta(cmd->type) && cmd->type != PC_GET && cmd->type != PC_GETS &&
		      cmd->type != PC_GAT && cmd->type != PC_GATS);
}

static uint64_t hash_parts(uint64_t h, const struct pc_cmd *cmd)
{
	h = fnv(h, &cmd->noreply, sizeof(cmd->noreply));
	h = fnv(h, &cmd->flags, sizeof(cmd->flags));
	h = fnv(h, &cmd->exptime, sizeof(cmd->exptime));
	h = fnv(h, &cmd->has_exptime, sizeof(cmd->has_exptime));
	h = fnv(h, &cmd->cas, sizeof(cmd->cas));
	h = fnv(h, &cmd->delta, sizeof(cmd->delta));
	h = fnv(h, &cmd->level, sizeof(cmd->level));
	h = fnv(h, &cmd->key_base64, sizeof(cmd->key_base64));
	if (cmd->data)
		h = fnv(h, cmd->data, cmd->datalen);
	for (uint32_t i = 0; i < cmd->nmflags; i++) {
		h = fnv(h, &cmd->mflags[i].flag, 1);
		h = fnv(h, cmd->mflags[i].arg, cmd->mflags[i].arglen);
	}
	return h;
}

static void check_call(void *ctx, const struct feed_call *c)
{
	struct events *ev = ctx;
	const struct pc_cmd *cmd = c->cmd;
	struct event e;

	CHECK(c->consumed <= c->len);
	if (c->st == PC_NEED_MORE) {
		if (c->consumed == 0 && c->swallow_before == 0 && c->p->need) {
			/* Waiting for a data block: its line is there, the rest not. */
			CHECK(c->p->swallow == 0);
			CHECK(c->len < c->p->need);
			CHECK(memchr(c->buf, '\n', c->len) != NULL);
		} else if (c->consumed == 0 && c->swallow_before == 0) {
			/* Waiting for a line end: there must be none in what it was given. */
			CHECK(c->p->swallow == 0);
			CHECK(c->p->scanned <= c->len);
			CHECK(!memchr(c->buf, '\n', c->len));
			/* And the limits on an unfinished line must not be passed. */
			CHECK(c->len <= c->p->max_line);
		}
		return;
	}
	CHECK(c->st == PC_COMMAND || c->st == PC_CLOSE);
	if (c->st == PC_CLOSE) {
		CHECK(cmd->reply == NULL || feed_reply_ok(cmd->reply));
	} else {
		/* A command that consumed nothing would be parsed again forever. */
		CHECK(c->consumed > 0);
		switch (cmd->type) {
		case PC_GET:
		case PC_GETS:
			CHECK(cmd->nkeys >= 1 && cmd->keys != NULL);
			CHECK(cmd->nkeys <= c->p->max_keys && !cmd->too_many_keys);
			/* Every key is from this command's line, before its '\n'. */
			CHECK(c->consumed >= 1 && c->buf[c->consumed - 1] == '\n');
			for (uint32_t i = 0; i < cmd->nkeys; i++) {
				CHECK(inside(cmd->keys[i].p, cmd->keys[i].len, c->buf,
				             c->consumed - 1));
				CHECK(key_clean(cmd->keys[i].p, cmd->keys[i].len));
			}
			break;
		case PC_REPLY:
			CHECK(feed_reply_ok(cmd->reply));
			/* Too many keys is a client's mistake, answered, never sent. */
			CHECK(!cmd->too_many_keys || cmd->client_error);
			/* A value over the limit: memcached's words, its block to go. */
			if (cmd->too_large)
				CHECK(strcmp(cmd->reply,
				             "SERVER_ERROR object too large for cache\r\n") == 0 &&
				      c->p->swallow > 0);
			CHECK(cmd->nkeys == 0 || cmd->too_large);
			CHECK(!cmd->data && !cmd->nmflags);
			break;
		case PC_STATS:
			CHECK(cmd->argslen == 0 ||
			      inside(cmd->args, cmd->argslen, c->buf, c->consumed));
			break;
		case PC_VERSION:
		case PC_QUIT:
			break;
		case PC_SILENT:
			CHECK(cmd->reply == NULL && !cmd->data && !cmd->nmflags);
			CHECK(cmd->client_error || cmd->unsupported || cmd->too_large);
			CHECK(!cmd->too_large || c->p->swallow > 0);
			break;
		default:
			check_parts(c);
			break;
		}
		for (uint32_t i = 0; i < cmd->nkeys; i++)
			CHECK(key_clean(cmd->keys[i].p, cmd->keys[i].len));
	}

	memset(&e, 0, sizeof(e));
	e.st = c->st;
	e.type = cmd->type;
	e.client_error = cmd->client_error;
	e.unsupported = cmd->unsupported;
	e.too_many_keys = cmd->too_many_keys;
	e.too_large = cmd->too_large;
	e.nkeys = cmd->nkeys;
	e.end = c->st == PC_CLOSE ? 0 : c->pos + c->consumed;
	e.hash = 14695981039346656037ULL;
	if (cmd->reply)
		e.hash = fnv(e.hash, cmd->reply, strlen(cmd->reply));
	for (uint32_t i = 0; i < cmd->nkeys; i++)
		e.hash = fnv(e.hash, cmd->keys[i].p, cmd->keys[i].len);
	if (c->st == PC_COMMAND)
		e.hash = hash_parts(e.hash, cmd);
	if (c->st == PC_COMMAND && cmd->type == PC_STATS && cmd->argslen)
		e.hash = fnv(e.hash, cmd->args, cmd->argslen);
	if (ev->n == ev->cap) {
		size_t cap = ev->cap ? ev->cap * 2 : 64;
		struct event *v = realloc(ev->v, cap * sizeof(*v));
		CHECK(v != NULL);
		ev->v = v;
		ev->cap = cap;
	}
	ev->v[ev->n++] = e;
}

/* Longest stretch of the stream without a '\n'. */
static size_t longest_line(const uint8_t *d, size_t n)
{
	size_t best = 0, cur = 0;

	for (size_t i = 0; i < n; i++) {
		if (d[i] == '\n') {
			cur = 0;
			continue;
		}
		if (++cur > best)
			best = cur;
	}
	return best;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct feed_plan cut, whole;
	struct events a = {0}, b = {0};
	struct feed_result ra, rb;

	if (size < 1)
		return 0;
	cut = feed_plan_of(data[0], size - 1);
	ra = feed_run(data + 1, size - 1, &cut, check_call, &a);

	whole = cut;
	whole.split = 0;
	whole.chunk = 0;
	rb = feed_run(data + 1, size - 1, &whole, check_call, &b);

	/*
	 * How reads are cut may change the outcome only through the rules for
	 * a line whose '\n' has not arrived (memcached behaves the same way): no
	 * '\n' within 2048 bytes, or a line beyond max_line. When no stretch of
	 * the stream is that long, neither rule can fire, and the two runs must
	 * agree exactly.
	 */
	if (longest_line(data + 1, size - 1) <= PC_SHORT_LINE_MAX) {
		CHECK(a.n == b.n);
		for (size_t i = 0; i < a.n; i++) {
			const struct event *x = &a.v[i], *y = &b.v[i];
			CHECK(x->st == y->st && x->type == y->type && x->nkeys == y->nkeys);
			CHECK(x->client_error == y->client_error &&
			      x->unsupported == y->unsupported &&
			      x->too_many_keys == y->too_many_keys && x->too_large == y->too_large);
			CHECK(x->end == y->end && x->hash == y->hash);
		}
		CHECK(ra.closed == rb.closed);
		if (!ra.closed)
			CHECK(ra.pos == rb.pos && ra.swallow == rb.swallow);
	}
	free(a.v);
	free(b.v);
	return 0;
}
