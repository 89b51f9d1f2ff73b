/*
 * shard: which worker thread fetches a key, and the messages that carry
 * keys between worker threads ([server] threads, DESIGN 10).
 *
 * Every key has one owner thread: the one numbered after the key's home
 * server, modulo the thread count (with PostgreSQL, worker 0), so that keys
 * that may share an upstream batch share an owner and batches stay as large
 * as with one thread. Only the owner's in-flight table and upstream fetch a
 * key, so it is fetched once however many threads' clients ask for it. A slot whose key
 * another thread owns waits on a ticket: a JOIN goes to the owner, whose
 * in-flight table holds a proxy slot in its place, and a RESULT (hit with a
 * value reference, miss, or error) comes back. A completed write tells the
 * key's owner at once, before its reply can be seen, so that later reads do
 * not join a fetch that may have read the old value (read-your-writes).
 *
 * Joins and results are queued per destination during a loop iteration and
 * handed over at its end, one lock and one wake-up per destination; the
 * owner takes them in its own loop (ev_async).
 *
 * Ownership: a queued message belongs to its queue, then to the thread that
 * takes it; a RESULT's value reference passes with it. Proxy slots belong to
 * their owner thread until their entry resolves (shard_destroy frees the rest
 * at shutdown). A ticket whose slot went away (its client closed) drops the
 * result that comes for it, and a LEAVE tells the owner, which drops the key
 * if nobody else waits and it has not been sent.
 */
#ifndef COALESCED_SHARD_H
#define COALESCED_SHARD_H

#include <ev.h>
#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct server;
struct slot;
struct value;
struct shard_msg;
struct shard_proxy;
struct session_ops;

struct shard {
	pthread_mutex_t lock; /* guards in_head/in_tail and notices */
	struct shard_msg *in_head, *in_tail;
	/* Writes completed on other threads (read-your-writes): taken before
	 * any key joins this thread's table, whatever the loop does first. */
	struct shard_msg *notices;
	uint32_t nnotices; /* atomic: notices waiting */
	uint32_t pending;  /* atomic: the inbox holds messages */
	uint32_t waiting;  /* atomic: the loop waits for events (not running) */
	ev_async wake;
	struct shard_msg **out_head, **out_tail; /* per destination, not yet handed over */
	struct shard_proxy *proxies;             /* waiting for their entries */
	struct shard_proxy **buckets;            /* proxies by (thread, ticket) */
	size_t nbuckets, nproxies;
	/* Tickets: index -> local slot waiting on another thread. */
	struct slot **waits;
	uint32_t *gen;
	uint32_t *free;
	uint32_t cap, nfree, used;
	uint32_t turn; /* the next worker to offer a client to, among equals */
	bool up;
};

/* Set up for a worker that is one of nthreads. -1: out of memory. */
int shard_init(struct server *srv, uint32_t nthreads);
void shard_destroy(struct server *srv);

/* Put a client slot on the way to its value: into this thread's in-flight
 * table, or to the key's owner. -1: out of memory. */
int shard_join(struct server *srv, struct slot *s);
/* A pending slot's client is gone. */
void shard_leave(struct server *srv, struct slot *s);
/* A write of key completed: tell the key's in-flight table. */
void shard_write_done(struct server *srv, const char *key, size_t len);
/* End of an iteration: hand queued messages to their threads. */
void shard_flush(struct server *srv);
/* Take this thread's messages now; false if there were none. A running
 * loop is not woken for messages: it takes them at the end of each
 * iteration (and when woken). */
bool shard_take(struct server *srv);
/* The loop is about to wait for events (true), or has stopped waiting:
 * from then on senders wake it. */
void shard_waiting(struct server *srv, bool waiting);

/* A client accepted by srv (worker 0): to the worker with the fewest
 * clients, which takes fd over. */
void shard_hand_conn(struct server *srv, int fd, const char *peer, const struct session_ops *ops);

/* A proxy slot's entry resolved (called by the request module). */
void shard_proxy_done(struct slot *s, int state, struct value *v, const char *reason);

#endif
