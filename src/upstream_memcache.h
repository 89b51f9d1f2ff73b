/*
 * upstream_memcache: the memcached backend. Keeps `connections` connections
 * to each server, pipelines `gets` lines on them, parses replies in order,
 * fails a connection's batches on error, timeout or close, and reconnects
 * with backoff.
 *
 * It owns its connections and buffers; values it reads are handed to the
 * batcher with one reference each.
 */
#ifndef COALESCED_UPSTREAM_MEMCACHE_H
#define COALESCED_UPSTREAM_MEMCACHE_H

#include "upstream.h"

#include <ev.h>

struct addr_list;
struct batcher;
struct log;
struct stats;

/* Largest value accepted from upstream; a bigger announced length is a
 * protocol error rather than an allocation the upstream controls. */
#define MC_MAX_VALUE_BYTES (256u << 20)

struct upstream *upstream_memcache_new(struct ev_loop *loop, const struct addr_list *servers,
                                       uint32_t connections, const struct upstream_settings *set,
                                       struct batcher *b, struct stats *st, const struct log *lg);

#endif
