/*
 * server: the context of one event loop (a worker): its copy of the
 * configuration, log level, statistics, client connections, in-flight table,
 * batcher and upstream. Everything that would otherwise be a global lives
 * here and is passed explicitly. Process concerns (signals, reload from the
 * file, listening sockets, privileges, metrics) are the daemon's.
 *
 * server_init() sets modules up in order and server_destroy() undoes them
 * in reverse.
 */
#ifndef COALESCED_SERVER_H
#define COALESCED_SERVER_H

#include "batch.h"
#include "config.h"
#include "inflight.h"
#include "log.h"
#include "shard.h"
#include "stats.h"
#include "version.h"

#include <ev.h>
#include <stdbool.h>
#include <time.h>

struct conn;
struct listener;
struct upstream;
struct workers;

struct server {
	struct ev_loop *loop;
	struct config cfg; /* this loop's own copy */
	struct log log;
	struct stats stats;
	struct inflight inflight;
	struct batcher batcher;
	struct upstream *up;
	struct upstream **retired; /* replaced on reload, draining */
	size_t nretired;
	struct conn *conns;
	struct conn *wpending;
	uint64_t next_client_id;
	ev_prepare prepare;
	ev_idle idle;
	ev_timer stop_timer;
	ev_timer trim_timer;
	bool stopping;
	/* With [server] threads > 1 (see workers.h); group is NULL otherwise. */
	struct workers *group;
	uint32_t id;       /* index in the group */
	uint32_t nthreads; /* in the group (1: none) */
	struct shard shard;
	uint32_t nconns;        /* atomic: clients, counted by whoever hands them over */
	ev_async ctl;           /* wakes the loop for what another thread left */
	struct config *ctl_cfg; /* a reload to take up; under the loop lock */
	char ctl_stop[16];      /* why to stop ("" : no stop); under the loop lock */
	bool ctl_exit;          /* every worker is done: leave the loop */
	bool drained;           /* this worker's graceful stop is complete */
	/* Rate limits for log lines about limits being hit: this worker's own,
	 * or with threads worker 0's, shared by all (log_limited is atomic). */
	struct server_log_limits {
		struct log_limit max_clients, too_many_keys, backpressure, memory, request_timeout,
		    bad_input, accept;
	} ll_own, *ll;
	time_t started;
};

/* Exit statuses of DESIGN section 1. */
enum { EXIT_OK = 0, EXIT_CONFIG = 1, EXIT_USAGE = 2, EXIT_START = 3 };

/* Worker id of nthreads. Takes ownership of cfg's contents; copies lg.
 * Returns EXIT_OK or EXIT_START. */
int server_init(struct server *srv, struct ev_loop *loop, struct config *cfg, const struct log *lg,
                uint32_t id, uint32_t nthreads);
void server_destroy(struct server *srv);

/* A new configuration (reload): takes nc's contents and leaves the old
 * configuration in nc for the caller to free. An upstream it cannot switch
 * to is kept, and the configuration it keeps says so. */
void server_configure(struct server *srv, struct config *nc);
/* Stop accepting, answer what was asked, then leave the loop. */
void server_stop(struct server *srv, const char *why);
/* Called by the client module when a client goes; checks for the end of a
 * graceful stop. */
void server_client_gone(struct server *srv);
/* A client may connect: counts it against max_clients, for the process. */
bool server_client_admit(struct server *srv);
/* An admitted client of srv went, or could not be set up. */
void server_client_release(struct server *srv);

#endif
