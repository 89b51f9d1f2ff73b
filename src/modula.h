/*
 * modula: libmemcached's MEMCACHED_DISTRIBUTION_MODULA with its default key
 * hash (one-at-a-time): a key goes to server hash % n, weights ignored.
 * Pure functions, nothing allocated.
 */
#ifndef COALESCED_MODULA_H
#define COALESCED_MODULA_H

#include <stddef.h>
#include <stdint.h>

/* libmemcached's one-at-a-time hash. It reads key bytes as plain char, so a
 * byte >= 0x80 hashes differently where char is signed (x86) and where it is
 * unsigned (ARM); this does what libmemcached built for the same target does. */
uint32_t modula_hash(const void *key, size_t len);

/* The index in [0, n) of the server for key; n must be at least 1. */
size_t modula_server(size_t n, const void *key, size_t len);

#endif
