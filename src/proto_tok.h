/*
 * proto_tok: the pieces of a memcached text command line, read as memcached
 * 1.6 reads them: tokens split on spaces only, a line cut at its first NUL,
 * numbers through libc strto* as memcached's safe_strto* take them, and the
 * strict key check that decides what may be forwarded (DESIGN §3). Shared by
 * proto_client (classic commands) and proto_meta (meta commands), so that
 * both halves agree byte for byte on what a token, a number and a key are.
 *
 * Pure: tokens point into the caller's line and own nothing. The number
 * readers may allocate a scratch copy of a very long token and free it
 * before they return.
 */
#ifndef COALESCED_PROTO_TOK_H
#define COALESCED_PROTO_TOK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* memcached cuts at most 23 tokens from a line before the command sees it;
 * the last of them decides the HTTP rule in proto_client. */
#define PT_MAX_TOKENS 23

struct pt_tok {
	const char *p;
	size_t len;
};

/* A command line, cut into tokens as memcached cuts it: up to its first NUL,
 * for memcached sees the line as a C string. */
struct pt_line {
	const char *p; /* without its line end */
	size_t len;
	const char *nul; /* the first NUL, or NULL */
	struct pt_tok t[PT_MAX_TOKENS];
	size_t nt;
};

/* The next token of [*s, e), split on runs of spaces; false at the end. */
bool pt_next(const char **s, const char *e, struct pt_tok *t);
/* Up to max tokens of [s, e); returns the count. */
size_t pt_tokenize(const char *s, const char *e, struct pt_tok *t, size_t max);
bool pt_is(const struct pt_tok *t, const char *word);

/* safe_strtol into an int32 (stored as is, as memcached does). */
bool pt_int32(const struct pt_tok *t, int32_t *out);
/* safe_strtoul (wide false) or safe_strtoull (wide true). */
bool pt_unsigned(const struct pt_tok *t, bool wide, uint64_t *out);
bool pt_uint32(const struct pt_tok *t, uint32_t *out);
bool pt_uint64(const struct pt_tok *t, uint64_t *out);

/* 1..PC_KEY_MAX bytes, none of them <= 0x20 or 0x7f. */
bool pt_key_ok(const char *k, size_t len);
/* The key token k as a key that may be forwarded: clean, and not cut short
 * by a NUL (memcached would take the bytes before the NUL as the key). */
bool pt_line_key_ok(const struct pt_line *l, const struct pt_tok *k);

#endif
