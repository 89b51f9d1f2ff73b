/*
 * listener: listening sockets and accept. A listener owns its socket (and
 * removes the unix socket file it made when closed, not one that replaced
 * it); accepted sockets go straight to conn_new(), or with worker threads to
 * the worker with the fewest clients (shard_hand_conn).
 */
#ifndef COALESCED_LISTENER_H
#define COALESCED_LISTENER_H

#include "addr.h"

#include <ev.h>

struct server;
struct session_ops;

struct listener {
	struct server *srv;
	struct addr addr;
	struct addr_file file; /* the unix socket file we made */
	int fd;
	ev_io io;
	ev_timer pause; /* out of file descriptors: retry accept later */
	bool adopted;   /* handed over by the service manager: not ours to unlink */
	/* The protocol its clients speak; NULL: memcached text. Set after open. */
	const struct session_ops *ops;
};

/* Returns 0, or -1 with a message in err. */
int listener_open(struct listener *l, struct server *srv, const struct addr *a, char *err,
                  size_t errlen);
/* Take over a socket that already listens (socket activation). */
int listener_adopt(struct listener *l, struct server *srv, int fd, char *err, size_t errlen);
void listener_close(struct listener *l);

#endif
