/*
 * server: the context of one event loop: configuration, log, statistics,
 * listeners, clients, in-flight table, batcher and upstream. Everything that
 * would otherwise be a global lives here and is passed explicitly.
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
#include "stats.h"

#include <ev.h>
#include <stdbool.h>
#include <time.h>

#define COALESCED_VERSION "0.1.0"

struct client;
struct listener;
struct metrics;
struct upstream;

struct server {
	struct ev_loop *loop;
	struct config cfg;
	const char *config_path; /* NULL: built-in defaults */
	char **overrides;        /* -o arguments, re-applied on reload */
	int noverrides;
	struct log log;
	struct stats stats;
	struct inflight inflight;
	struct batcher batcher;
	struct upstream *up;
	struct upstream **retired; /* replaced on reload, draining */
	size_t nretired;
	struct listener *listeners;
	size_t nlisteners;
	struct metrics *metrics;
	ev_timer status_timer; /* STATUS= for the service manager */
	uint64_t status_keys;  /* get_keys at the last status */
	struct client *clients;
	struct client *wpending;
	uint64_t next_client_id;
	ev_prepare prepare;
	ev_idle idle;
	ev_signal sigterm, sigint, sighup;
	ev_timer stop_timer;
	bool stopping;
	/* Rate limits for log lines about limits being hit. */
	struct log_limit ll_max_clients, ll_too_many_keys, ll_backpressure, ll_memory,
	    ll_request_timeout, ll_bad_input, ll_accept;
	time_t started;
};

/* Exit statuses of DESIGN section 1. */
enum { EXIT_OK = 0, EXIT_CONFIG = 1, EXIT_USAGE = 2, EXIT_START = 3 };

/* Takes ownership of cfg's contents. Returns EXIT_OK or EXIT_START. */
int server_init(struct server *srv, struct ev_loop *loop, struct config *cfg);
/* Runs until a graceful stop completes. */
void server_run(struct server *srv);
void server_destroy(struct server *srv);

/* Re-read the configuration (SIGHUP). */
void server_reload(struct server *srv);
/* Stop accepting, answer what was asked, then leave the loop. */
void server_stop(struct server *srv, const char *why);
/* Called by the client module when a client goes; checks for the end of a
 * graceful stop. */
void server_client_gone(struct server *srv);

#endif
