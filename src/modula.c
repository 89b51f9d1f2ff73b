/*
 * modula: placement by hash modulo the server count, bit for bit as
 * libmemcached does it, so a client using libmemcached's default
 * distribution and coalesced pick the same server for every key.
 */
#include "modula.h"

uint32_t modula_hash(const void *key, size_t len)
{
	const char *p = key;
	uint32_t h = 0;

	for (size_t i = 0; i < len; i++) {
		/* Through char, not unsigned char: libmemcached widens a char,
		 * which sign-extends where char is signed. */
		h += (uint32_t)p[i];
		h += h << 10;
		h ^= h >> 6;
	}
	h += h << 3;
	h ^= h >> 11;
	h += h << 15;
	return h;
}

size_t modula_server(size_t n, const void *key, size_t len)
{
	/* libmemcached skips the hash with one server; the answer is the same. */
	if (n <= 1)
		return 0;
	return modula_hash(key, len) % n;
}
