/*
 * md5: the MD5 message digest of RFC 1321, used by ketama placement (not for
 * security: libmemcached's ring is defined by it). Incremental (init, update,
 * final) and one-shot. The caller owns the context; nothing is allocated.
 */
#ifndef COALESCED_MD5_H
#define COALESCED_MD5_H

#include <stddef.h>
#include <stdint.h>

#define MD5_DIGEST_LEN 16

struct md5_ctx {
	uint32_t state[4]; /* A, B, C, D */
	uint64_t nbytes;   /* message length so far */
	uint8_t block[64]; /* a partial block, nbytes % 64 of it used */
};

void md5_init(struct md5_ctx *ctx);
void md5_update(struct md5_ctx *ctx, const void *data, size_t len);
/* Writes the digest; the context must be initialised again before reuse. */
void md5_final(struct md5_ctx *ctx, uint8_t digest[MD5_DIGEST_LEN]);
void md5(const void *data, size_t len, uint8_t digest[MD5_DIGEST_LEN]);

#endif
