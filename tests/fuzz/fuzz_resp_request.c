/*
 * fuzz_resp_request: libFuzzer target for the RESP2 request parser.
 *
 * The first input byte picks the parser's limits and how the rest is cut
 * into reads (resp_plan below); the rest is what a client sends. The stream
 * is parsed twice, once as cut and once in one read, and the two runs must
 * produce the same commands at the same offsets and the same error: the
 * parser's answer never depends on how TCP cut the stream. Every call is
 * checked against the parser's contract, and every command is composed
 * again as a multibulk array (proto_respreply) and parsed back to the same
 * arguments. Any violation traps.
 *
 * The input sits in one allocation; ASan poisoning marks the bytes not yet
 * received and those already consumed, so any read outside what rp_parse()
 * was given is reported. In "move" plans each call instead gets a fresh copy
 * of the pending bytes, freed after it, so that a parser keeping a pointer
 * into an earlier buffer reads freed memory.
 */
#include "proto_resp.h"
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

struct resp_plan {
	bool tight; /* small limits, which the fuzzer reaches easily */
	bool move;  /* pending bytes move before every call */
	size_t split, chunk;
};

/* Bit 0 tight limits, bit 1 moving buffers; the other six bits place one
 * cut proportionally in the input (below 32) or set a read size of 1 to 32
 * bytes. */
static struct resp_plan resp_plan_of(uint8_t b, size_t n)
{
	struct resp_plan pl = {0};
	unsigned sel = b >> 2;

	pl.tight = b & 1;
	pl.move = b & 2;
	if (sel < 32)
		pl.split = n * sel / 32;
	else
		pl.chunk = sel - 32 + 1;
	return pl;
}

static void set_limits(struct rp_parser *p, bool tight)
{
	if (tight) {
		p->max_bulk = 64;
		p->max_array = 8;
		p->max_inline = 32;
	} else {
		/* Redis' bounds, but a line bound that 8 KiB inputs can pass. */
		p->max_inline = 1024;
	}
}

struct event {
	enum rp_status st;
	size_t end; /* stream offset after the command */
	uint32_t argc;
	bool is_inline;
	uint64_t hash; /* of the arguments, or of the error reply */
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
	return (h ^ 0x100) * 1099511628211ULL;
}

static bool inside(const char *p, size_t n, const char *buf, size_t len)
{
	return p >= buf && n <= len && (size_t)(p - buf) <= len - n;
}

static void push(struct events *ev, const struct event *e)
{
	if (ev->n == ev->cap) {
		size_t cap = ev->cap ? ev->cap * 2 : 64;
		struct event *v = realloc(ev->v, cap * sizeof(*v));
		CHECK(v != NULL);
		ev->v = v;
		ev->cap = cap;
	}
	ev->v[ev->n++] = *e;
}

/* Compose the command as a multibulk array; a fresh parser must read back
 * exactly the same arguments from exactly those bytes. */
static void roundtrip(const struct rp_cmd *cmd)
{
	size_t total = rr_put_hdr(NULL, 0, '*', cmd->argc), off, used;
	struct rp_parser p;
	struct rp_cmd back;
	char *buf;

	for (uint32_t i = 0; i < cmd->argc; i++)
		total += rr_put_bulk(NULL, 0, NULL, cmd->argv[i].len);
	buf = malloc(total);
	CHECK(buf != NULL);
	off = rr_put_hdr(buf, total, '*', cmd->argc);
	for (uint32_t i = 0; i < cmd->argc; i++)
		off += rr_put_bulk(buf + off, total - off, cmd->argv[i].p, cmd->argv[i].len);
	CHECK(off == total);
	rp_init(&p);
	p.max_array = cmd->argc;
	CHECK(rp_parse(&p, buf, total, &back, &used) == RP_COMMAND);
	CHECK(used == total && back.argc == cmd->argc && !back.is_inline);
	for (uint32_t i = 0; i < cmd->argc; i++) {
		CHECK(back.argv[i].len == cmd->argv[i].len);
		CHECK(inside(back.argv[i].p, back.argv[i].len, buf, total));
		CHECK(memcmp(back.argv[i].p, cmd->argv[i].p, cmd->argv[i].len) == 0);
	}
	rp_free(&p);
	free(buf);
}

static bool reply_ok(const struct rp_cmd *cmd)
{
	const char *r = cmd->reply;
	size_t n = cmd->replylen;

	if (!r || !cmd->why || strlen(r) != n || n < 7)
		return false;
	if (memcmp(r, "-ERR ", 5) != 0 || memcmp(r + n - 2, "\r\n", 2) != 0)
		return false;
	return !memchr(r, '\r', n - 2) && !memchr(r, '\n', n - 2);
}

/* Feed data[0..n) as pl cuts it; returns the stream offset of the first
 * byte not consumed, or SIZE_MAX after a protocol error. */
static size_t run(const uint8_t *data, size_t n, const struct resp_plan *pl, struct events *ev)
{
	struct rp_parser p;
	char *mem = malloc(n ? n : 1);
	size_t start = 0, have = 0, calls = 0, limit;
	bool failed = false;

	CHECK(mem != NULL);
	memcpy(mem, data, n);
	ASAN_POISON_MEMORY_REGION(mem, n);
	rp_init(&p);
	set_limits(&p, pl->tight);
	/* A command consumes at least one byte, and each read ends with at
	 * most one call that consumes none. */
	limit = n + (pl->chunk ? n / pl->chunk + 1 : 2) + 1;
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
			char *copy = NULL;
			struct rp_cmd cmd;
			struct event e = {0};
			enum rp_status st;

			if (pl->move) {
				copy = malloc(len);
				CHECK(copy != NULL);
				memcpy(copy, buf, len);
				buf = copy;
			}
			st = rp_parse(&p, buf, len, &cmd, &used);
			CHECK(++calls <= limit);
			CHECK(used <= len);
			e.st = st;
			e.hash = 14695981039346656037ULL;
			if (st == RP_ERROR) {
				struct rp_cmd again;
				size_t u2;
				CHECK(reply_ok(&cmd));
				e.hash = fnv(e.hash, cmd.reply, cmd.replylen);
				CHECK(rp_parse(&p, buf, len, &again, &u2) == RP_ERROR);
				CHECK(strcmp(again.reply, cmd.reply) == 0);
				failed = true;
				push(ev, &e);
			} else if (st == RP_COMMAND) {
				CHECK(used > 0);
				CHECK(cmd.argc >= 1 && cmd.argv != NULL);
				/* A line is at most max_inline bytes; so is what
				 * its arguments unquote to. */
				for (uint32_t i = 0; i < cmd.argc; i++) {
					const struct rp_arg *a = &cmd.argv[i];
					if (cmd.is_inline) {
						CHECK(a->len <= p.max_inline);
					} else {
						CHECK(inside(a->p, a->len, buf, used));
						CHECK(a->len <= p.max_bulk);
					}
					e.hash = fnv(e.hash, a->p, a->len);
				}
				if (!cmd.is_inline)
					CHECK(cmd.argc <= p.max_array);
				e.argc = cmd.argc;
				e.is_inline = cmd.is_inline;
				e.end = start + used;
				roundtrip(&cmd);
				push(ev, &e);
			} else {
				CHECK(st == RP_NEED_MORE);
			}
			free(copy);
			/* Consumed bytes are never read again. */
			ASAN_POISON_MEMORY_REGION(mem + start, used);
			start += used;
			if (st != RP_COMMAND)
				break;
		}
	}
	rp_free(&p);
	ASAN_UNPOISON_MEMORY_REGION(mem, n);
	free(mem);
	return failed ? SIZE_MAX : start;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct resp_plan cut, whole;
	struct events a = {0}, b = {0};
	size_t ea, eb;

	if (size < 1)
		return 0;
	cut = resp_plan_of(data[0], size - 1);
	whole = cut;
	whole.split = 0;
	whole.chunk = 0;
	whole.move = false;
	ea = run(data + 1, size - 1, &cut, &a);
	eb = run(data + 1, size - 1, &whole, &b);

	CHECK(ea == eb);
	CHECK(a.n == b.n);
	for (size_t i = 0; i < a.n; i++) {
		const struct event *x = &a.v[i], *y = &b.v[i];
		CHECK(x->st == y->st && x->end == y->end && x->argc == y->argc);
		CHECK(x->is_inline == y->is_inline && x->hash == y->hash);
	}
	free(a.v);
	free(b.v);
	return 0;
}
