/*
 * inflight: the table of keys being fetched, key -> entry, and each entry's
 * waiting slots (singleflight).
 *
 * The table owns its entries. An entry lives from the first request for its
 * key until its reply is delivered or it fails for good; then every waiting
 * slot is filled and the entry freed. With coalescing off, entries are
 * created outside the table so that nothing can join them.
 *
 * inflight_join() is where a client key enters the pipeline: it attaches to
 * an existing entry or creates one and hands it to the batcher.
 * inflight_leave() is the way back out for a client that goes away.
 */
#ifndef COALESCED_INFLIGHT_H
#define COALESCED_INFLIGHT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct batch;
struct batcher;
struct slot;
struct stats;
struct value;

struct entry {
	struct entry *hnext;
	struct entry *lprev, *lnext; /* every live entry, in the table or not */
	uint64_t hash;
	struct slot *waiters; /* doubly linked through slot->wprev/wnext */
	uint32_t nwaiters;
	uint32_t attempts;   /* times sent upstream */
	struct batch *batch; /* the batch holding it: open, queued or sent */
	uint32_t batch_pos;  /* index in batch->e */
	struct value *value; /* hit seen in the reply being read; owned */
	bool replied;        /* the reply being read named this key */
	bool in_table;
	bool stale;      /* a write completed while it was fetched: joins no reader */
	uint32_t server; /* the batcher's choice, from the pool */
	uint32_t prefix; /* row in the per-prefix statistics */
	uint32_t keylen;
	char key[];
};

struct inflight {
	struct entry **buckets;
	size_t nbuckets; /* power of two */
	size_t count;    /* entries in the table */
	size_t live;     /* all entries, in the table or not */
	struct entry *all;
	bool coalesce;
	struct stats *stats;
	struct batcher *batcher;
};

int inflight_init(struct inflight *t, struct stats *st, struct batcher *b);
/* Frees every remaining entry without touching waiters (shutdown only). */
void inflight_destroy(struct inflight *t);

uint64_t inflight_hash(const char *key, size_t len);

/* Put s (whose key is s->key) on the way to its value. -1: out of memory. */
int inflight_join(struct inflight *t, struct slot *s);
/* A pending slot's client is gone: detach it; an entry nobody waits for any
 * more is dropped if it has not been sent yet. */
void inflight_leave(struct inflight *t, struct slot *s);

/* Deliver v (NULL: a miss) to every waiter, then free the entry. */
void inflight_resolve(struct inflight *t, struct entry *e, struct value *v);
/* Fail every waiter with reason, then free the entry. */
void inflight_fail(struct inflight *t, struct entry *e, const char *reason);
/* Free an entry nobody waits for. */
void inflight_drop(struct inflight *t, struct entry *e);

/* A write of key completed (read-your-writes, DESIGN 9): a fetch of key that
 * is already under way may have read the old value, so readers arriving from
 * now on start a new one; its current waiters still get its value. A fetch
 * still collecting in an open batch begins after the write and stays
 * joinable. */
void inflight_write_done(struct inflight *t, const char *key, size_t len);

#endif
