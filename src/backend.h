/*
 * backend: the factory that turns `[upstream] protocol` and the rest of the
 * configuration into a backend (struct upstream). It is the one place that
 * knows every backend; Redis and PostgreSQL plug in here.
 *
 * The caller owns the backend it returns (ops->destroy frees it with its
 * pool); nothing of cfg is kept.
 */
#ifndef COALESCED_BACKEND_H
#define COALESCED_BACKEND_H

#include "upstream.h"

#include <ev.h>
#include <stddef.h>

struct batcher;
struct config;
struct log;
struct pool_options;
struct stats;

/* What a backend reports to and runs on. */
struct backend_env {
	struct ev_loop *loop;
	struct batcher *batcher;
	struct stats *stats;
	const struct log *log;
	/* With worker threads: this worker's index and the count. A key's
	 * batches are sent by the worker numbered after its server modulo
	 * nthreads, PostgreSQL's by worker 0 (shard.h), whose backend alone
	 * opens database connections. 0 and 1 alone. */
	uint32_t thread, nthreads;
};

/* The settings every backend takes from [upstream]. */
void backend_settings(const struct config *cfg, struct upstream_settings *out);

/* The placement and ejection settings of [upstream]; the distribution is
 * fixed for a pool's life, the rest may be applied with pool_configure(). */
void backend_pool_options(const struct config *cfg, struct pool_options *out);

/* The backend cfg asks for, connecting eagerly. NULL with a message in err
 * (bad server list, protocol not built in, out of memory). */
struct upstream *backend_new(const struct config *cfg, const struct backend_env *env, char *err,
                             size_t errlen);

/* Name of a protocol, for logs. */
const char *backend_protocol_name(long protocol);

#endif
