/*
 * batch: collects new entries into one open batch per upstream server and
 * decides when it goes: at max_keys, when the leeway timer fires, or (leeway
 * 0) at the end of the loop iteration. A batch whose time came while its
 * server was busy stays open, due, and keeps collecting keys; the batcher
 * itself offers it again at the end of every loop iteration until the
 * backend takes it. It also owns the outcome of a sent batch: completion
 * resolves its entries, failure retries the keys that still have waiters or
 * fails them for good.
 *
 * A batch owns its array of entry pointers, not the entries (the in-flight
 * table does). The backend owns a batch from upstream_submit() until it calls
 * batch_complete() or batch_fail(), which free it.
 */
#ifndef COALESCED_BATCH_H
#define COALESCED_BATCH_H

#include "upstream.h"

#include <ev.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct entry;
struct inflight;
struct log;
struct stats;
struct upstream;
struct value;

struct batch {
	uint32_t server;     /* index in the backend's pool */
	uint32_t generation; /* the batcher's backend when it was made */
	uint32_t n, cap;
	uint32_t cursor;   /* where the reply is expected to continue */
	bool open;         /* the batcher's, collecting keys: not submitted */
	bool due;          /* its time came but the upstream was busy */
	const void *avoid; /* retry: a connection not to use */
	struct entry *e[];
};

struct batcher_settings {
	double leeway_ms;
	uint32_t max_keys;
	uint32_t retries;
};

struct batcher {
	struct ev_loop *loop;
	struct batcher_settings set;
	struct stats *stats;
	const struct log *log;
	struct inflight *inflight;
	struct upstream *up;
	uint32_t nservers;   /* in up's pool */
	uint32_t generation; /* bumped when the backend changes */
	struct batch **open; /* per server */
	ev_timer *timers;    /* per server leeway timers */
	ev_prepare due;      /* active while some open batch is due */
};

/* Settings, at start and on reload: open batches follow a new leeway. */
void batcher_configure(struct batcher *b, const struct batcher_settings *set);

/* No backend yet: batcher_set_upstream() gives it one. */
int batcher_init(struct batcher *b, struct ev_loop *loop, struct stats *st, const struct log *lg,
                 struct inflight *t);
void batcher_destroy(struct batcher *b);

/* The backend to send to, at start and when a reload replaces it (open
 * batches must have been flushed to the old one). Returns -1 on allocation
 * failure, leaving the batcher as it was. */
int batcher_set_upstream(struct batcher *b, struct upstream *up);

/* Add a new entry to the open batch of the server that owns its key (asked
 * of the backend's pool). -1: out of memory. */
int batch_add(struct batcher *b, struct entry *e);
/* Take e out of an unsent batch. false if it was already sent. */
bool batch_cancel(struct batcher *b, struct entry *e);
/* Send every open batch now (end of loop iteration with leeway 0; with force
 * at shutdown, even to a busy upstream). */
void batch_flush_all(struct batcher *b, bool force);

/* Backend side. Find the entry for a VALUE line: the next key expected, or
 * any entry not yet answered (a reply out of order). -1 if none. */
int batch_match(struct batch *bt, const char *key, size_t len);
/* A hit for entry pos; takes the reference. */
void batch_value(struct batch *bt, uint32_t pos, struct value *v);
void batch_complete(struct batcher *b, struct batch *bt);
/* Before sending: the backend cannot carry the key at pos. It leaves the
 * batch (the last entry takes its place) and its waiters get reason, with no
 * retry. A batch left empty is to be completed without sending anything. */
void batch_refuse(struct batcher *b, struct batch *bt, uint32_t pos, const char *reason);
/* text: the upstream's own words for BATCH_UPSTREAM_ERROR, else NULL. */
void batch_fail(struct batcher *b, struct batch *bt, enum batch_error why, const char *text,
                const void *conn);

#endif
