/*
 * fuzz_mcreply: libFuzzer target for the upstream reply-line parser.
 *
 * mcr_parse_line() runs on the whole input and on each '\n'-separated line of
 * it (without the '\n', as the upstream reader passes lines), each in an
 * allocation of exactly its size so that ASan sees any read past the line.
 * The result is checked for memory safety (key and text inside the line),
 * for the key rules (a key that reaches a client must be clean), and against
 * an independent reading of the reply grammar. Any violation traps.
 */
#include "proto_mcreply.h"

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

static bool inside(const char *p, size_t n, const char *buf, size_t len)
{
	return p >= buf && n <= len && (size_t)(p - buf) <= len - n;
}

static bool starts(const char *s, size_t n, const char *w)
{
	size_t k = strlen(w);
	return n >= k && memcmp(s, w, k) == 0;
}

/* Decimal digits only, at least one, no overflow past max. */
static bool number(const char *s, size_t n, uint64_t max, uint64_t *out)
{
	uint64_t v = 0;

	if (n == 0)
		return false;
	for (size_t i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return false;
		if (v > max / 10 || v * 10 > max - (uint64_t)(s[i] - '0'))
			return false;
		v = v * 10 + (uint64_t)(s[i] - '0');
	}
	*out = v;
	return true;
}

/*
 * "VALUE <key> <flags> <bytes> <cas>", fields split by single spaces, read
 * independently of the parser: the key 1..250 bytes of printable ASCII (no
 * space) or >= 0x80, flags a 32-bit and bytes and cas 64-bit decimals.
 */
static bool value_line(const char *s, size_t n, struct mcr_line *want)
{
	const char *f[5];
	size_t fl[5], nf = 0, i = 0;

	while (nf < 5) {
		size_t st = i;
		while (i < n && s[i] != ' ')
			i++;
		f[nf] = s + st;
		fl[nf] = i - st;
		nf++;
		/* After the fifth field the line must end: leave i on anything more. */
		if (i == n || nf == 5)
			break;
		i++; /* the single space */
	}
	if (nf != 5 || i != n || fl[0] != 5 || memcmp(f[0], "VALUE", 5) != 0)
		return false;
	if (fl[1] < 1 || fl[1] > 250)
		return false;
	for (size_t k = 0; k < fl[1]; k++) {
		unsigned char c = (unsigned char)f[1][k];
		if (!((c >= 0x21 && c <= 0x7e) || c >= 0x80))
			return false;
	}
	uint64_t flags;
	if (!number(f[2], fl[2], UINT32_MAX, &flags) ||
	    !number(f[3], fl[3], UINT64_MAX, &want->bytes) ||
	    !number(f[4], fl[4], UINT64_MAX, &want->cas))
		return false;
	want->flags = (uint32_t)flags;
	want->key = f[1];
	want->keylen = fl[1];
	return true;
}

static void check_text(const struct mcr_line *r, const char *after, const char *line, size_t len,
                       const char *end)
{
	/* The text is the rest of the line after one optional space. */
	const char *t = after < end && *after == ' ' ? after + 1 : after;

	CHECK(inside(r->text, r->textlen, line, len));
	CHECK(r->text == t && r->text + r->textlen == end);
}

static void check_one(const char *line, size_t len)
{
	struct mcr_line r, want;
	enum mcr_kind k = mcr_parse_line(line, len, &r);
	/* One trailing CR is part of the line end. */
	size_t n = len && line[len - 1] == '\r' ? len - 1 : len;
	const char *end = line + n;

	CHECK(k == r.kind);
	if (k == MCR_VALUE) {
		CHECK(r.key != NULL && inside(r.key, r.keylen, line, len));
		CHECK(r.keylen >= 1 && r.keylen <= 250);
		for (size_t i = 0; i < r.keylen; i++) {
			unsigned char c = (unsigned char)r.key[i];
			CHECK(c > 0x20 && c != 0x7f);
		}
	}
	if (r.text)
		CHECK(inside(r.text, r.textlen, line, len));

	/* The grammar, read independently: the kind must match exactly. */
	memset(&want, 0, sizeof(want));
	if (value_line(line, n, &want)) {
		CHECK(k == MCR_VALUE);
		CHECK(r.key == want.key && r.keylen == want.keylen);
		CHECK(r.flags == want.flags && r.bytes == want.bytes && r.cas == want.cas);
	} else if (starts(line, n, "VALUE ")) {
		CHECK(k == MCR_INVALID);
	} else if (n == 3 && memcmp(line, "END", 3) == 0) {
		CHECK(k == MCR_END);
	} else if (n == 5 && memcmp(line, "ERROR", 5) == 0) {
		/* A bare ERROR may carry its own word as text: only where matters. */
		CHECK(k == MCR_ERROR);
		CHECK(r.text + r.textlen == end);
	} else if (starts(line, n, "ERROR ")) {
		CHECK(k == MCR_ERROR);
		check_text(&r, line + 5, line, len, end);
	} else if (starts(line, n, "CLIENT_ERROR")) {
		CHECK(k == MCR_CLIENT_ERROR);
		check_text(&r, line + 12, line, len, end);
	} else if (starts(line, n, "SERVER_ERROR")) {
		CHECK(k == MCR_SERVER_ERROR);
		check_text(&r, line + 12, line, len, end);
	} else if (starts(line, n, "VERSION ")) {
		CHECK(k == MCR_VERSION);
		check_text(&r, line + 7, line, len, end);
	} else {
		CHECK(k == MCR_INVALID);
	}
}

/* Parse a copy of exactly n bytes, so an over-read is an ASan error. */
static void check_copy(const uint8_t *p, size_t n)
{
	char *c = malloc(n ? n : 1);

	CHECK(c != NULL);
	memcpy(c, p, n);
	check_one(c, n);
	free(c);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	size_t start = 0;

	check_copy(data, size);
	for (size_t i = 0; i <= size; i++) {
		if (i == size || data[i] == '\n') {
			check_copy(data + start, i - start);
			start = i + 1;
		}
	}
	return 0;
}
