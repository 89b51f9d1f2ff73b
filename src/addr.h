/*
 * addr: parse address lists ("host:port", "[v6]:port", "unix:/path",
 * comma-separated) into socket addresses, and make sockets from them.
 *
 * An addr_list owns its array; addr_list_free() releases it.
 */
#ifndef COALESCED_ADDR_H
#define COALESCED_ADDR_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

struct addr {
	struct sockaddr_storage sa;
	socklen_t len;
	char name[300]; /* as written, for logs */
};

struct addr_list {
	struct addr *v;
	size_t n;
};

/* Every entry needs a host (name or address) and a port, or a unix path. */
int addr_list_parse(const char *text, bool listen, struct addr_list *out, char *err, size_t errlen);
void addr_list_free(struct addr_list *l);

/* Non-blocking, close-on-exec socket for a; -1 with errno on failure. */
int addr_socket(const struct addr *a);

#endif
