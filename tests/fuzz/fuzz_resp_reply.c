/*
 * fuzz_resp_reply: libFuzzer target for the RESP2 reply parser.
 *
 * The first input byte picks the limits, whether big bulks are streamed,
 * and how the rest is cut into reads; the rest is what a Redis server
 * sends. The stream is parsed as cut and again in one read without
 * streaming: both must give the same tokens (a streamed bulk reassembled)
 * at the same offsets and fail for the same reason. The parser is strict and
 * Redis' grammar canonical, so the tokens composed again (proto_respreply's
 * composer) must give back exactly the bytes consumed. Each call is checked
 * against the contract; any violation traps. Bytes not yet received and
 * bytes consumed are poisoned, as in fuzz_resp_request.
 */
#include "proto_respreply.h"

#include <sanitizer/asan_interface.h>
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

struct plan {
	bool tight;
	bool stream;
	size_t split, chunk;
};

static struct plan plan_of(uint8_t b, size_t n)
{
	struct plan pl = {0};
	unsigned sel = b >> 2;

	pl.tight = b & 1;
	pl.stream = b & 2;
	if (sel < 32)
		pl.split = n * sel / 32;
	else
		pl.chunk = sel - 32 + 1;
	return pl;
}

struct event {
	enum rr_type type;
	uint32_t depth;
	bool done;
	int64_t n;
	size_t len;
	size_t end; /* stream offset after the token (a streamed bulk: its end) */
	uint64_t hash;
};

struct out {
	struct event *v;
	size_t n, cap;
	char *enc; /* the tokens composed again */
	size_t enclen, enccap;
	const char *why;
};

static uint64_t fnv(uint64_t h, const void *p, size_t n)
{
	const unsigned char *s = p;

	for (size_t i = 0; i < n; i++)
		h = (h ^ s[i]) * 1099511628211ULL;
	return h;
}

static bool inside(const char *p, size_t n, const char *buf, size_t len)
{
	return p >= buf && n <= len && (size_t)(p - buf) <= len - n;
}

static void push(struct out *o, const struct event *e)
{
	if (o->n == o->cap) {
		size_t cap = o->cap ? o->cap * 2 : 64;
		struct event *v = realloc(o->v, cap * sizeof(*v));
		CHECK(v != NULL);
		o->v = v;
		o->cap = cap;
	}
	o->v[o->n++] = *e;
}

/* Room for need more bytes of encoding. */
static char *enc_room(struct out *o, size_t need)
{
	if (o->enclen + need > o->enccap) {
		size_t cap = (o->enclen + need) * 2;
		char *e = realloc(o->enc, cap);
		CHECK(e != NULL);
		o->enc = e;
		o->enccap = cap;
	}
	return o->enc + o->enclen;
}

static void enc_hdr(struct out *o, char type, int64_t n)
{
	o->enclen += rr_put_hdr(enc_room(o, RR_HDR_MAX), RR_HDR_MAX, type, n);
}

static void enc_raw(struct out *o, const char *p, size_t n)
{
	if (n)
		memcpy(enc_room(o, n), p, n);
	o->enclen += n;
}

static size_t run(const uint8_t *data, size_t n, const struct plan *pl, struct out *o)
{
	struct rr_parser p;
	char *mem = malloc(n ? n : 1);
	size_t start = 0, have = 0, calls = 0, limit, st_bytes = 0;
	bool failed = false, in_stream = false;
	struct event cur = {0}; /* the streamed bulk */

	CHECK(mem != NULL);
	memcpy(mem, data, n);
	ASAN_POISON_MEMORY_REGION(mem, n);
	rr_init(&p);
	if (pl->tight) {
		p.max_bulk = 64;
		p.max_array = 8;
		p.max_line = 32;
	} else {
		p.max_line = 1024;
	}
	p.stream_over = pl->stream ? 8 : SIZE_MAX;
	/* Every token but a streamed bulk's last chunk consumes a byte, and
	 * that chunk consumes its CRLF unless the bulk is empty; a read ends in
	 * at most one call that returns no token. */
	limit = 2 * n + (pl->chunk ? n / pl->chunk + 1 : 2) + 2;
	while (have < n && !failed) {
		size_t cut =
		    pl->chunk ? have + pl->chunk : (have == 0 && pl->split ? pl->split : n);
		if (cut > n)
			cut = n;
		ASAN_UNPOISON_MEMORY_REGION(mem + have, cut - have);
		have = cut;
		while (start < have) {
			size_t len = have - start, used = (size_t)-1;
			const char *buf = mem + start;
			struct rr_token t;
			struct event e = {0};
			bool emit = true;
			enum rr_status st = rr_parse(&p, buf, len, &t, &used);

			CHECK(++calls <= limit);
			CHECK(used <= len);
			if (st == RR_NEED_MORE) {
				CHECK(used == 0);
				break;
			}
			if (st == RR_INVALID) {
				struct rr_token t2;
				size_t u2;
				CHECK(p.why != NULL);
				CHECK(rr_parse(&p, buf, len, &t2, &u2) == RR_INVALID);
				o->why = p.why;
				failed = true;
				break;
			}
			CHECK(st == RR_TOKEN);
			CHECK(t.depth <= RR_MAX_DEPTH);
			CHECK(t.done == rr_idle(&p));
			if (t.p)
				CHECK(inside(t.p, t.len, buf, used));
			e.type = t.type;
			e.depth = t.depth;
			e.done = t.done;
			e.end = start + used;
			e.hash = 14695981039346656037ULL;
			switch (t.type) {
			case RR_SIMPLE:
			case RR_ERROR:
				CHECK(used > 0 && t.len <= p.max_line);
				e.hash = fnv(e.hash, t.p, t.len);
				e.len = t.len;
				o->enclen +=
				    rr_put_line(enc_room(o, t.len + 3), t.len + 3,
				                t.type == RR_SIMPLE ? '+' : '-', t.p, t.len);
				break;
			case RR_INTEGER:
				e.n = t.n;
				enc_hdr(o, ':', t.n);
				break;
			case RR_NIL:
				enc_raw(o, RR_NULL_BULK, 5);
				break;
			case RR_NIL_ARRAY:
				enc_raw(o, RR_NULL_ARRAY, 5);
				break;
			case RR_ARRAY:
				CHECK(t.n >= 0 && t.n <= (int64_t)p.max_array);
				e.n = t.n;
				enc_hdr(o, '*', t.n);
				break;
			case RR_BULK:
				CHECK(t.len <= p.max_bulk);
				enc_hdr(o, '$', (int64_t)t.len);
				e.len = t.len;
				if (!t.whole) {
					CHECK(pl->stream && t.p == NULL && !t.done && !in_stream);
					CHECK(t.len > p.stream_over);
					in_stream = true;
					cur = e;
					st_bytes = used;
					emit = false;
					break;
				}
				e.hash = fnv(e.hash, t.p, t.len);
				enc_raw(o, t.p, t.len);
				enc_raw(o, "\r\n", 2);
				break;
			case RR_CHUNK:
				CHECK(in_stream && t.depth == cur.depth);
				CHECK(used > 0 || t.end);
				st_bytes += used;
				cur.hash = fnv(cur.hash, t.p, t.len);
				enc_raw(o, t.p, t.len);
				if (!t.end) {
					CHECK(!t.done);
					emit = false;
					break;
				}
				enc_raw(o, "\r\n", 2);
				in_stream = false;
				e = cur;
				e.done = t.done;
				e.end = start + used;
				break;
			default:
				__builtin_trap();
			}
			if (emit)
				push(o, &e);
			/* Consumed bytes are never read again. */
			ASAN_POISON_MEMORY_REGION(mem + start, used);
			start += used;
		}
	}
	/* Composed again, the tokens are the bytes consumed. */
	CHECK(o->enclen == start);
	ASAN_UNPOISON_MEMORY_REGION(mem, n);
	CHECK(start == 0 || memcmp(o->enc, mem, start) == 0);
	free(mem);
	if (failed)
		return SIZE_MAX;
	/* A bulk cut short counts as not consumed, streamed or not. */
	return in_stream ? start - st_bytes : start;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct plan cut, whole;
	struct out a = {0}, b = {0};
	size_t ea, eb;

	if (size < 1)
		return 0;
	cut = plan_of(data[0], size - 1);
	whole = cut;
	whole.split = 0;
	whole.chunk = 0;
	whole.stream = false;
	ea = run(data + 1, size - 1, &cut, &a);
	eb = run(data + 1, size - 1, &whole, &b);

	CHECK(ea == eb);
	CHECK((a.why == NULL) == (b.why == NULL));
	if (a.why)
		CHECK(strcmp(a.why, b.why) == 0);
	CHECK(a.n == b.n);
	for (size_t i = 0; i < a.n; i++) {
		const struct event *x = &a.v[i], *y = &b.v[i];
		CHECK(x->type == y->type && x->depth == y->depth && x->done == y->done);
		CHECK(x->n == y->n && x->len == y->len && x->end == y->end && x->hash == y->hash);
	}
	free(a.v);
	free(b.v);
	free(a.enc);
	free(b.enc);
	return 0;
}
