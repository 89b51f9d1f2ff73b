/*
 * pool: the servers of one backend, which server owns a key, and each
 * server's health.
 *
 * Placement (`modulo` of the memcached pool, until ketama lands here): a
 * key's server is
 *
 *     fmix64(fnv1a64(key)) mod nservers
 *
 * fnv1a64 is 64-bit FNV-1a over the key bytes (offset basis
 * 0xcbf29ce484222325, prime 0x100000001b3); fmix64 is MurmurHash3's 64-bit
 * finaliser (h ^= h >> 33; h *= 0xff51afd7ed558ccd; h ^= h >> 33;
 * h *= 0xc4ceb9fe1a85ec53; h ^= h >> 33). The finaliser is there because
 * FNV's high bits barely depend on a key's last byte: without it, k1, k2, …
 * would all land on one server. This is not libmemcached's placement:
 * clients that also talk to the servers directly do not agree with it.
 *
 * Health is reported by the backend (connections up and down, failures,
 * successes) and read by whoever prints it (stats, /metrics). A failure of
 * the server is no connection or a timeout; an error reply is recorded as
 * the last error but is not a failure of the server (DESIGN 10).
 *
 * A pool owns its server list and health records; the backend it is given
 * to owns the pool.
 */
#ifndef COALESCED_POOL_H
#define COALESCED_POOL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct addr;
struct addr_list;
struct pool;

/* Copies the addresses; NULL: out of memory or no server. */
struct pool *pool_new(const struct addr_list *servers);
void pool_free(struct pool *p);

uint32_t pool_server_count(const struct pool *p);
const struct addr *pool_server_addr(const struct pool *p, uint32_t i);
/* The server that owns key (see above). */
uint32_t pool_locate(const struct pool *p, const char *key, size_t len);

struct pool_server_info {
	const char *name;        /* as configured */
	bool up;                 /* at least one connection established */
	uint32_t connections_up; /* established connections */
	uint32_t failures;       /* consecutive failures of the server */
	uint64_t errors;         /* every error ever, error replies included */
	double last_error_at;    /* wall clock (s since the epoch); 0: none yet */
	const char *last_error;  /* why, in words; "" if none */
};

/* i < pool_server_count(p). The strings live as long as the pool. */
void pool_server_info(const struct pool *p, uint32_t i, struct pool_server_info *out);

/* Backend side. */
void pool_conn_up(struct pool *p, uint32_t i);
void pool_conn_down(struct pool *p, uint32_t i);
/* A reply arrived: the server works; its failure streak ends. */
void pool_success(struct pool *p, uint32_t i);
/* Something went wrong at time now; server_failure: no connection or a
 * timeout (counts toward the streak). text: why, for people. */
void pool_error(struct pool *p, uint32_t i, bool server_failure, double now, const char *text);

#endif
