/*
 * workers: the event loops of [server] threads = N (DESIGN 10), and what
 * they share.
 *
 * Worker 0 runs on the daemon's loop in the main thread; workers 1..N-1 each
 * get a loop and a thread of their own. Worker 0 accepts every client and
 * hands it to the worker with the fewest (shard_hand_conn), where it stays
 * for its life: one accept per client, no thundering herd, and clients spread
 * evenly (a shared listening socket watched by every loop left them 60/40
 * in a burst here). Keys are shared out between the workers by the shard
 * module, so coalescing stays global.
 *
 * Each worker's loop holds a lock while it runs callbacks and lets go of it
 * only while it waits for events (libev's loop release hooks). Another thread
 * that holds a worker's lock may therefore read or change that worker's
 * state: that is how `stats` sums every worker, how `stats reset` resets them,
 * and how reload and stop are handed over (as requests the worker takes up in
 * its own loop). A worker never holds two locks: to visit the others it lets
 * go of its own, so two visitors cannot wait on each other.
 *
 * With one thread there is no group: the worker runs alone, without locks or
 * messages, exactly as before.
 *
 * The group owns its workers (and their loops, but loop 0); the daemon owns
 * the group.
 */
#ifndef COALESCED_WORKERS_H
#define COALESCED_WORKERS_H

#include "pool.h"
#include "server.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

struct workers {
	uint32_t n;
	struct server *w;       /* n workers */
	pthread_t *tids;        /* tids[i] runs w[i], i >= 1 */
	pthread_mutex_t *locks; /* locks[i]: held while w[i] runs callbacks */
	uint32_t nstarted;      /* threads running */
	bool running;           /* started, not yet joined; the main thread holds locks[0] */
	/* Shared by every worker; changed and read atomically. */
	uint64_t value_bytes; /* bytes of values in flight ([server] max_memory_mb) */
	uint64_t clients;     /* client connections ([server] max_clients) */
	uint32_t drained;     /* workers whose graceful stop is complete */
};

/* Sets up n workers (w[0] on loop0), each with its own copy of cfg.
 * Returns EXIT_OK or EXIT_START. */
int workers_init(struct workers *g, struct ev_loop *loop0, uint32_t n, const struct config *cfg,
                 const struct log *lg);
/* Starts the threads of workers 1..n-1; worker 0 runs when the caller
 * runs loop0. -1 if a thread cannot be started. */
int workers_start(struct workers *g);
/* After loop0 returned: waits for the other threads to leave theirs. */
void workers_join(struct workers *g);
void workers_destroy(struct workers *g);

/* Reload: every worker takes a copy of nc (worker 0 at once, the others in
 * their loops); nc keeps what worker 0 runs with. */
void workers_configure(struct workers *g, struct config *nc);
/* Graceful stop of every worker (the daemon has closed the listeners). */
void workers_stop(struct workers *g, const char *why);

/* Called by a worker whose graceful stop is complete: once all are, every
 * loop is told to end. */
void workers_drained(struct server *srv);

/* Calls fn for every worker of self's group (self first), each with its
 * loop held; fn may change the worker's statistics but nothing else. */
void workers_visit(struct server *self, void (*fn)(struct server *w, void *arg), void *arg);

/*
 * The figures of `stats`, `INFO` and /metrics: the worker's own, or with
 * threads the sum of every worker's (counters, histograms, per prefix and per
 * route rows added up; per-server figures merged by server name).
 */
struct stats_view {
	const struct stats *st;
	struct stats sum;
	struct pool_server_info *servers;
	uint32_t nservers;
	bool summed;
};
/* -1: out of memory. */
int stats_view_open(struct server *srv, struct stats_view *v);
void stats_view_close(struct stats_view *v);

#endif
