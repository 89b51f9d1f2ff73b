/*
 * backend_redis: the Redis codec on pipelined upstream connections (upconn).
 * A batch goes out as one `MGET k1 … kN` (a one-key batch as `GET k`), a
 * RESP2 array of bulk strings, so any key bytes are carried as they are. The
 * reply is parsed with proto_respreply: a nil is a miss, a bulk string a hit
 * with flags 0 and cas 0. An error reply fails that batch only, with Redis'
 * words; the connection stays, its stream being still in step.
 *
 * A RESP write (write.h) goes to its key's server as its own array, always
 * on the same connection for one key so that Redis applies a key's writes
 * in order; its reply's bytes come back verbatim. A write is never re-sent:
 * a connection lost under it fails it.
 *
 * On every (re)connect the first bytes are `AUTH` ([redis] username and
 * password) and `SELECT` ([redis] database) when configured; a refusal
 * fails the connection with Redis' text.
 *
 * It owns its connection groups and a copy of the credentials; values it
 * reads are handed to the batcher with one reference each. A submitted batch
 * is the backend's until it calls batch_complete() or batch_fail().
 */
#ifndef COALESCED_BACKEND_REDIS_H
#define COALESCED_BACKEND_REDIS_H

#include "upstream.h"

#include <ev.h>

struct batcher;
struct log;
struct pool;
struct stats;

/* Largest value accepted from upstream (Redis' own proto-max-bulk-len). */
#define REDIS_MAX_VALUE_BYTES (512u << 20)

struct redis_auth {
	const char *username; /* empty: the default user */
	const char *password; /* empty: no AUTH */
	long database;        /* 0: no SELECT */
};

/* `connections` connections to each server of pool, which the backend
 * owns from now on (freed on failure too). auth is copied. */
struct upstream *backend_redis_new(struct ev_loop *loop, struct pool *pool, uint32_t connections,
                                   const struct upstream_settings *set,
                                   const struct redis_auth *auth, struct batcher *b,
                                   struct stats *st, const struct log *lg);

#endif
