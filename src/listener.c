/* listener: bind, listen and accept, with the max_clients rule. */
#include "listener.h"

#include "conn.h"
#include "session_mc.h"
#include "log.h"
#include "server.h"
#include "shard.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <string.h>
#include <sys/un.h>
#include <unistd.h>

#define ACCEPTS_PER_WAKEUP 64

static void peer_name(const struct sockaddr_storage *ss, char *buf, size_t len)
{
	char host[INET6_ADDRSTRLEN] = "?";

	if (ss->ss_family == AF_INET) {
		const struct sockaddr_in *in = (const struct sockaddr_in *)ss;
		inet_ntop(AF_INET, &in->sin_addr, host, sizeof(host));
		snprintf(buf, len, "%s:%u", host, ntohs(in->sin_port));
	} else if (ss->ss_family == AF_INET6) {
		const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)ss;
		inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof(host));
		snprintf(buf, len, "[%s]:%u", host, ntohs(in6->sin6_port));
	} else {
		snprintf(buf, len, "unix");
	}
}

static void pause_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct listener *l = w->data;

	(void)revents;
	ev_io_start(loop, &l->io);
}

static void accept_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct listener *l = w->data;
	struct server *srv = l->srv;

	(void)revents;
	for (int i = 0; i < ACCEPTS_PER_WAKEUP; i++) {
		struct sockaddr_storage ss;
		socklen_t sl = sizeof(ss);
		char peer[80];
		int one = 1;
		int fd = accept4(l->fd, (struct sockaddr *)&ss, &sl, SOCK_NONBLOCK | SOCK_CLOEXEC);

		if (fd < 0) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS ||
			    errno == ENOMEM) {
				/* Pending connections stay in the backlog until
				 * descriptors free up. */
				log_limited(&srv->log, LVL_WARN, &srv->ll->accept,
				            "accept on %s: %s; pausing 100 ms", l->addr.name,
				            strerror(errno));
				ev_io_stop(loop, &l->io);
				ev_timer_set(&l->pause, 0.1, 0.);
				ev_timer_start(loop, &l->pause);
			}
			return;
		}
		if (!server_client_admit(srv)) {
			static const char msg[] = "ERROR Too many open connections\r\n";
			srv->stats.rejected_connections++;
			log_limited(&srv->log, LVL_WARN, &srv->ll->max_clients,
			            "max_clients (%ld) reached: refusing connections",
			            srv->cfg.max_clients);
			if (write(fd, msg, sizeof(msg) - 1) < 0) {
				/* the client is told if it can be; it is closed either way */
			}
			close(fd);
			continue;
		}
		if (ss.ss_family != AF_UNIX)
			setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		peer_name(&ss, peer, sizeof(peer));
		if (srv->group)
			shard_hand_conn(srv, fd, peer, l->ops ? l->ops : &session_mc_ops);
		else if (!conn_new(srv, fd, peer, l->ops ? l->ops : &session_mc_ops))
			server_client_release(srv);
	}
}

int listener_open(struct listener *l, struct server *srv, const struct addr *a, char *err,
                  size_t errlen)
{
	memset(l, 0, sizeof(*l));
	l->srv = srv;
	l->addr = *a;
	l->fd = addr_socket(a);
	if (l->fd < 0) {
		snprintf(err, errlen, "%s: socket: %s", a->name, strerror(errno));
		return -1;
	}
	if (addr_listen(l->fd, a, 1024, &l->file, err, errlen) < 0) {
		close(l->fd);
		l->fd = -1;
		return -1;
	}
	ev_io_init(&l->io, accept_cb, l->fd, EV_READ);
	ev_init(&l->pause, pause_cb);
	l->io.data = l->pause.data = l;
	ev_io_start(srv->loop, &l->io);
	return 0;
}

int listener_adopt(struct listener *l, struct server *srv, int fd, char *err, size_t errlen)
{
	int flags = fcntl(fd, F_GETFL);

	memset(l, 0, sizeof(*l));
	l->srv = srv;
	l->fd = fd;
	l->adopted = true;
	l->addr.len = sizeof(l->addr.sa);
	if (flags < 0 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0 ||
	    fcntl(fd, F_SETFD, FD_CLOEXEC) < 0 ||
	    getsockname(fd, (struct sockaddr *)&l->addr.sa, &l->addr.len) < 0) {
		snprintf(err, errlen, "socket %d from the service manager: %s", fd,
		         strerror(errno));
		return -1;
	}
	if (l->addr.sa.ss_family == AF_UNIX)
		snprintf(l->addr.name, sizeof(l->addr.name), "unix:%s",
		         ((struct sockaddr_un *)&l->addr.sa)->sun_path);
	else
		peer_name(&l->addr.sa, l->addr.name, sizeof(l->addr.name));
	ev_io_init(&l->io, accept_cb, l->fd, EV_READ);
	ev_init(&l->pause, pause_cb);
	l->io.data = l->pause.data = l;
	ev_io_start(srv->loop, &l->io);
	return 0;
}

void listener_close(struct listener *l)
{
	if (l->fd < 0)
		return;
	ev_io_stop(l->srv->loop, &l->io);
	ev_timer_stop(l->srv->loop, &l->pause);
	close(l->fd);
	l->fd = -1;
	if (!l->adopted)
		addr_unlink(&l->addr, &l->file);
}
