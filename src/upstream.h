/*
 * upstream: the interface every backend (memcached, later Redis and
 * PostgreSQL) implements. The batcher submits batches; the backend calls
 * batch_value() per hit and batch_complete() or batch_fail() once per batch.
 * Sessions submit writes; the backend calls write_complete() or write_fail()
 * once per write.
 *
 * The backend owns its connections and its pool (the server list: which
 * server owns a key, and each server's health); a submitted batch belongs to
 * the backend until it reports the batch's outcome. bt->server indexes the
 * backend's pool.
 */
#ifndef COALESCED_UPSTREAM_H
#define COALESCED_UPSTREAM_H

#include <stdbool.h>
#include <stdint.h>

struct batch;
struct pool;
struct upstream;
struct upwrite;

/* Why a batch failed; each has its client-visible reason (DESIGN 3). */
enum batch_error { BATCH_UNAVAILABLE = 0, BATCH_TIMEOUT, BATCH_UPSTREAM_ERROR, BATCH_PROTOCOL };

struct upstream_settings {
	uint32_t connect_timeout_ms;
	uint32_t timeout_ms;
	uint32_t pipeline_depth; /* batches outstanding per connection */
};

struct upstream_ops {
	/* Returns false, keeping nothing, when the batch's server is busy:
	 * every connection that could take it already has pipeline_depth
	 * batches outstanding. Busy only while some batch of that server is
	 * outstanding, so that its outcome (an event of the loop) comes; the
	 * batcher offers the batch again after every loop iteration, and the
	 * backend never has to say when it has room. With force it always
	 * takes the batch (a full batch, a retry, a shutdown). */
	bool (*submit)(struct upstream *u, struct batch *bt, bool force);
	void (*configure)(struct upstream *u, const struct upstream_settings *s);
	/* Replaced by a new backend (reload): take no new batches and do not
	 * reconnect; what is outstanding still completes or fails as usual. */
	void (*drain)(struct upstream *u);
	/* A write (write.h) to send as itself on its key's server (every
	 * server for w->all_servers); the backend reports its outcome with
	 * write_complete() or write_fail(), never twice and never by sending it
	 * again once it may have reached the server. Returns false, keeping
	 * nothing, if this backend takes no writes of w->proto. NULL: none. */
	bool (*write)(struct upstream *u, struct upwrite *w);
	/* Batches and writes submitted and not yet completed or failed. */
	uint32_t (*outstanding)(const struct upstream *u);
	/* Frees the backend and its pool. */
	void (*destroy)(struct upstream *u);
};

struct upstream {
	const struct upstream_ops *ops;
	struct pool *pool; /* owned */
};

static inline bool upstream_submit(struct upstream *u, struct batch *bt, bool force)
{
	return u->ops->submit(u, bt, force);
}

#endif
