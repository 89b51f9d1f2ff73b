/*
 * daemon: the process around the event loop(s): the configuration as loaded
 * and reloaded, signals, listening sockets (bound or handed over by the
 * service manager), privilege drop, the metrics endpoint and the service
 * manager's status. It owns the configuration it loaded and the workers that
 * serve clients ([server] threads); each worker owns its own copy of the
 * configuration, so that loops in other threads never read what a reload
 * changes. Signals, the metrics endpoint and the status line run on worker
 * 0's loop, in the main thread.
 *
 * daemon_init() sets up in order and daemon_destroy() undoes in reverse.
 */
#ifndef COALESCED_DAEMON_H
#define COALESCED_DAEMON_H

#include "config.h"
#include "log.h"
#include "server.h"
#include "workers.h"

#include <ev.h>
#include <stdbool.h>

struct listener;
struct metrics;

struct daemon {
	struct ev_loop *loop;
	struct config cfg;       /* as loaded: the source of every reload */
	const char *config_path; /* NULL: built-in defaults */
	char **overrides;        /* -o arguments, re-applied on reload */
	int noverrides;
	struct log log;
	struct workers workers; /* the event loops that serve clients */
	bool workers_up;
	struct listener *listeners;
	size_t nlisteners;
	struct metrics *metrics;
	ev_timer status_timer; /* STATUS= for the service manager */
	uint64_t status_keys;  /* get_keys at the last status */
	ev_signal sigterm, sigint, sighup;
};

/* Takes ownership of cfg's contents. Returns EXIT_OK or EXIT_START. */
int daemon_init(struct daemon *d, struct ev_loop *loop, struct config *cfg, const char *path,
                char **overrides, int noverrides);
/* Runs until a graceful stop completes. */
void daemon_run(struct daemon *d);
void daemon_destroy(struct daemon *d);

/* Re-read the configuration (SIGHUP). */
void daemon_reload(struct daemon *d);
/* Stop accepting, answer what was asked, then leave the loop. */
void daemon_stop(struct daemon *d, const char *why);

#endif
