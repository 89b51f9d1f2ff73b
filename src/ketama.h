/*
 * ketama: the weighted consistent-hash ring of libmemcached
 * (MEMCACHED_DISTRIBUTION_CONSISTENT_KETAMA with
 * MEMCACHED_BEHAVIOR_KETAMA_WEIGHTED), so that clients using it, pylibmc's
 * ketama_weighted and coalesced agree on every key's server.
 *
 * The ring is built from the server list and is then read-only: lookups are
 * pure and may run from several threads at once. ketama_new() copies what it
 * needs (the caller keeps its server array and host strings); ketama_free()
 * frees the ring. Servers are named by their index in the caller's array.
 */
#ifndef COALESCED_KETAMA_H
#define COALESCED_KETAMA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* libmemcached's limit on a host name (NI_MAXHOST - 1). */
#define KETAMA_HOST_MAX 1024
/* ketama_server() on a ring with no live server. */
#define KETAMA_NONE SIZE_MAX

struct ketama_server {
	/* Exactly as the clients spell it: the ring hashes this text, so
	 * "localhost" and "127.0.0.1" are different servers to it. */
	const char *host;
	uint16_t port;   /* 11211 is left out of the point names, as libmemcached does */
	uint32_t weight; /* 0 means 1, as in libmemcached */
};

struct ketama_ring;

/*
 * Builds the ring of servers[0..n). live: NULL for all, else one flag per
 * server; a server not live gets no points and the weights of the others are
 * shared out as if it were absent (libmemcached's auto-eject rebuild does the
 * same). NULL when memory runs out or a server is invalid (host NULL, empty
 * or longer than KETAMA_HOST_MAX, port 0).
 */
struct ketama_ring *ketama_new(const struct ketama_server *servers, size_t n, const bool *live);
void ketama_free(struct ketama_ring *ring);

/* The index of key's server, or KETAMA_NONE when no server is live. */
size_t ketama_server(const struct ketama_ring *ring, const void *key, size_t len);

/* The key's position on the ring (the first four bytes of its MD5 read as a
 * little-endian number). */
uint32_t ketama_hash(const void *key, size_t len);

/* How many points a server has on the ring (0 for one not live); for tests
 * and stats. */
size_t ketama_points(const struct ketama_ring *ring, size_t server);

#endif
