/*
 * upstream: the interface every backend (memcached, later Redis and
 * PostgreSQL) implements. The batcher submits batches; the backend calls
 * batch_value() per hit and batch_complete() or batch_fail() once per batch.
 *
 * The backend owns its connections; a submitted batch belongs to the backend
 * until it reports the batch's outcome.
 */
#ifndef COALESCED_UPSTREAM_H
#define COALESCED_UPSTREAM_H

#include <stdint.h>

struct batch;
struct upstream;

struct upstream_settings {
	uint32_t connect_timeout_ms;
	uint32_t timeout_ms;
};

struct upstream_ops {
	void (*submit)(struct upstream *u, struct batch *bt);
	void (*configure)(struct upstream *u, const struct upstream_settings *s);
	/* Outstanding batches: the daemon waits for 0 before a graceful exit. */
	uint32_t (*busy)(const struct upstream *u);
	void (*destroy)(struct upstream *u);
};

struct upstream {
	const struct upstream_ops *ops;
};

static inline void upstream_submit(struct upstream *u, struct batch *bt)
{
	u->ops->submit(u, bt);
}

#endif
