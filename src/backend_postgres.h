/*
 * backend_postgres: reads as prepared statements on PostgreSQL (DESIGN
 * 7.2), driven through libpq from the event loop.
 *
 * The backend owns its routes, its pool (one lane per route plus a last
 * lane for keys no route takes, which are refused without sending
 * anything) and `connections` libpq connections, each in pipeline mode with
 * up to pipeline_depth batches in flight. Takes no writes.
 */
#ifndef COALESCED_BACKEND_POSTGRES_H
#define COALESCED_BACKEND_POSTGRES_H

#include "upstream.h"

#include <ev.h>
#include <stddef.h>

struct batcher;
struct log;
struct stats;

#define PG_NO_ROUTE "no query for key"

/* queries: the route table's text form (routes.h). NULL with err on a bad
 * table or no memory. Connects at once. */
struct upstream *backend_postgres_new(struct ev_loop *loop, const char *conninfo,
                                      const char *queries, uint32_t connections, uint32_t thread,
                                      uint32_t nthreads, const struct upstream_settings *set,
                                      struct batcher *b, struct stats *st, const struct log *lg,
                                      char *err, size_t errlen);

#endif
