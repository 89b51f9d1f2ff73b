/*
 * fuzz_feed: drives proto_client the way a client connection does, for the
 * fuzz targets that share it. The input arrives in chunks; after each chunk
 * pc_parse() runs until it needs more bytes, and the bytes it consumed are
 * discarded. Every pc_parse() call is reported to a callback, which checks
 * what it wants.
 *
 * Discarding is modelled by moving the start of the pending bytes forward
 * instead of memmove(): the input sits at its own offset in one allocation,
 * and ASan poisoning marks both the discarded bytes and the bytes not yet
 * received, so any read outside what pc_parse() was given is reported.
 */
#ifndef COALESCED_FUZZ_FEED_H
#define COALESCED_FUZZ_FEED_H

#include "proto_client.h"

#include <sanitizer/asan_interface.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* What one pc_parse() call saw and returned. */
struct feed_call {
	const struct pc_parser *p; /* state after the call */
	const char *buf;           /* what the call was given */
	size_t len;
	size_t pos;              /* stream offset of buf[0] */
	bool first;              /* the connection's first call */
	uint64_t swallow_before; /* data block bytes pending before the call */
	enum pc_status st;
	const struct pc_cmd *cmd;
	size_t consumed;
};

typedef void (*feed_cb)(void *ctx, const struct feed_call *c);

/* How the input is cut into reads, and the parser's limits. */
struct feed_plan {
	size_t max_line;
	uint32_t max_keys;
	size_t max_value;
	size_t split; /* one cut at this offset, when chunk is 0 */
	size_t chunk; /* else reads of this many bytes */
};

/*
 * The first input byte chooses the plan, so that the fuzzer explores cut
 * points alongside contents: bit 0 picks tight limits (max_line 2048, the
 * smallest the configuration allows, at most 8 keys per get and values of
 * at most 64 bytes) or loose ones (4096, no key limit, the default value
 * limit); the other seven bits either place one cut proportionally in the
 * input or set a read size of 1 to 64 bytes.
 */
static inline struct feed_plan feed_plan_of(uint8_t b, size_t n)
{
	struct feed_plan pl;
	unsigned sel = b >> 1;

	pl.max_line = (b & 1) ? 2048 : 4096;
	pl.max_keys = (b & 1) ? 8 : UINT32_MAX;
	pl.max_value = (b & 1) ? 64 : PC_VALUE_MAX_DEFAULT;
	if (sel < 64) {
		pl.split = n * sel / 64;
		pl.chunk = 0;
	} else {
		pl.split = 0;
		pl.chunk = (size_t)(sel - 64) + 1;
	}
	return pl;
}

/* Result of a whole run. */
struct feed_result {
	bool closed; /* the parser asked to close the connection */
	size_t calls;
	size_t pos;       /* stream offset of the first byte not consumed */
	uint64_t swallow; /* data block bytes still pending at the end */
};

/*
 * Feed data[0..n) according to pl, calling cb after every pc_parse(). Stops
 * at PC_CLOSE, as a connection does. A quit is not a stop here: the parser
 * must stay sound after it, and going on lets the fuzzer reach more states.
 * Traps if the parser fails to make progress.
 */
static inline struct feed_result feed_run(const uint8_t *data, size_t n, const struct feed_plan *pl,
                                          feed_cb cb, void *ctx)
{
	struct feed_result r = {0};
	struct pc_parser p;
	char *mem = malloc(n ? n : 1);
	size_t start = 0, have = 0, reads = 0;
	size_t limit;

	if (!mem)
		__builtin_trap();
	memcpy(mem, data, n);
	ASAN_POISON_MEMORY_REGION(mem, n);
	pc_init(&p, pl->max_line);
	p.max_keys = pl->max_keys;
	p.max_value = pl->max_value;
	/* Every call that returns a command or a close consumes at least one
	 * byte, and a read ends in at most one call that consumes none: more
	 * calls than bytes plus reads means the parser is stuck. */
	limit = n + (pl->chunk ? n / pl->chunk + 1 : 2) + 1;
	while (have < n && !r.closed) {
		size_t cut =
		    pl->chunk ? have + pl->chunk : (reads == 0 && pl->split ? pl->split : n);
		if (cut > n)
			cut = n;
		ASAN_UNPOISON_MEMORY_REGION(mem + have, cut - have);
		have = cut;
		reads++;
		/* A connection parses only when it holds bytes. */
		while (start < have) {
			struct pc_cmd cmd;
			struct feed_call fc;
			size_t used = (size_t)-1;

			fc.buf = mem + start;
			fc.len = have - start;
			fc.pos = start;
			fc.first = !p.started;
			fc.swallow_before = p.swallow;
			fc.st = pc_parse(&p, fc.buf, fc.len, &cmd, &used);
			fc.p = &p;
			fc.cmd = &cmd;
			fc.consumed = used;
			if (++r.calls > limit)
				__builtin_trap();
			if (used > fc.len)
				__builtin_trap();
			cb(ctx, &fc);
			/* Discarded bytes must never be read again. */
			ASAN_POISON_MEMORY_REGION(mem + start, used);
			start += used;
			if (fc.st == PC_CLOSE) {
				r.closed = true;
				break;
			}
			if (fc.st == PC_NEED_MORE)
				break;
		}
	}
	r.pos = start;
	r.swallow = p.swallow;
	pc_free(&p);
	ASAN_UNPOISON_MEMORY_REGION(mem, n);
	free(mem);
	return r;
}

/* A reply line: non-empty text that ends in CRLF and has no other CR or LF. */
static inline bool feed_reply_ok(const char *s)
{
	size_t n;

	if (!s)
		return false;
	n = strlen(s);
	if (n < 3 || s[n - 2] != '\r' || s[n - 1] != '\n')
		return false;
	return !memchr(s, '\r', n - 2) && !memchr(s, '\n', n - 2);
}

#endif
