/*
 * addr: parse address lists ("host:port", "[v6]:port", "unix:/path",
 * comma-separated) into socket addresses, and make sockets from them.
 *
 * An addr_list owns its array; addr_list_free() releases it. A unix socket
 * file is created by addr_listen() and removed only by addr_unlink(), and
 * only while it is still the file that addr_listen() created.
 */
#ifndef COALESCED_ADDR_H
#define COALESCED_ADDR_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>
#include <sys/types.h>

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

/* The socket file a unix listener made, told apart from any that replaces it. */
struct addr_file {
	dev_t dev;
	ino_t ino;
	bool made;
};

/*
 * Bind fd (from addr_socket) to a and listen. At a unix path, a socket file
 * that nothing answers on (left by a run that did not stop cleanly) is
 * removed first; a socket that answers (another instance) and a file that is
 * not a socket are left alone, and this fails. Returns 0, or -1 with
 * "<name>: cannot listen: <why>" in err. f may be NULL for an inet address.
 */
int addr_listen(int fd, const struct addr *a, int backlog, struct addr_file *f, char *err,
                size_t errlen);
/* Remove the socket file addr_listen made at a, unless another replaced it. */
void addr_unlink(const struct addr *a, const struct addr_file *f);

#endif
