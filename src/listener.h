/*
 * listener: listening sockets and accept. A listener owns its socket (and
 * removes the unix socket file it made when closed, not one that replaced
 * it); accepted sockets go straight to client_new().
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
	bool borrowed;  /* another listener's socket, watched by another loop */
	/* The protocol its clients speak; NULL: memcached text. Set after open. */
	const struct session_ops *ops;
};

/* Returns 0, or -1 with a message in err. */
int listener_open(struct listener *l, struct server *srv, const struct addr *a, char *err,
                  size_t errlen);
/* Take over a socket that already listens (socket activation). */
int listener_adopt(struct listener *l, struct server *srv, int fd, char *err, size_t errlen);
/* Watch from's socket in srv's loop too (worker threads); from keeps it. */
void listener_borrow(struct listener *l, struct server *srv, const struct listener *from);
/* Stop accepting; a borrowed socket is left open for its owner to close. */
void listener_close(struct listener *l);

#endif
