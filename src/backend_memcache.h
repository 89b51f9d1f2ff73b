/*
 * backend_memcache: the memcached codec on pipelined upstream connections
 * (upconn). A batch goes out as one `gets k1 … kN` line on a connection of
 * its server; the reply is parsed with proto_mcreply, each VALUE handed to
 * the batcher and END completing the batch.
 *
 * It owns its connection groups; values it reads are handed to the batcher
 * with one reference each. A submitted batch is the backend's until it
 * calls batch_complete() or batch_fail().
 */
#ifndef COALESCED_BACKEND_MEMCACHE_H
#define COALESCED_BACKEND_MEMCACHE_H

#include "upstream.h"

#include <ev.h>

struct batcher;
struct log;
struct pool;
struct stats;

/* Largest value accepted from upstream; a bigger announced length is a
 * protocol error rather than an allocation the upstream controls. */
#define MC_MAX_VALUE_BYTES (256u << 20)
/* memcached's key length limit. */
#define MC_MAX_KEY_BYTES 250
/* What the waiters of a key memcached cannot carry get. */
#define MC_BAD_KEY "key not valid for memcached"

/* `connections` connections to each server of pool, which the backend
 * owns from now on (freed on failure too). */
struct upstream *backend_memcache_new(struct ev_loop *loop, struct pool *pool, uint32_t connections,
                                      const struct upstream_settings *set, struct batcher *b,
                                      struct stats *st, const struct log *lg);

#endif
