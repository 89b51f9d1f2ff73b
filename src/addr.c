/* addr: address parsing with getaddrinfo (numeric or resolvable names). */
#include "addr.h"

#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

static int parse_one(const char *s, size_t len, bool listen, struct addr *a, char *err,
                     size_t errlen)
{
	char buf[sizeof(a->name)], host[256], port[16];
	const char *colon;
	struct addrinfo hints, *res;
	int r;

	(void)listen;
	if (len == 0 || len >= sizeof(buf)) {
		snprintf(err, errlen, "'%.*s' is not an address", (int)(len < 64 ? len : 64), s);
		return -1;
	}
	memcpy(buf, s, len);
	buf[len] = '\0';
	memset(a, 0, sizeof(*a));
	snprintf(a->name, sizeof(a->name), "%s", buf);

	if (strncmp(buf, "unix:", 5) == 0) {
		struct sockaddr_un *un = (struct sockaddr_un *)&a->sa;
		const char *path = buf + 5;
		if (path[0] != '/' || strlen(path) >= sizeof(un->sun_path)) {
			snprintf(err, errlen,
			         "'%s': a unix socket needs an absolute path of at most %zu bytes",
			         buf, sizeof(un->sun_path) - 1);
			return -1;
		}
		un->sun_family = AF_UNIX;
		strcpy(un->sun_path, path);
		a->len = (socklen_t)sizeof(*un);
		return 0;
	}

	if (buf[0] == '[') {
		const char *close = strchr(buf, ']');
		if (!close || close[1] != ':') {
			snprintf(err, errlen, "'%s': expected [v6-address]:port", buf);
			return -1;
		}
		snprintf(host, sizeof(host), "%.*s", (int)(close - buf - 1), buf + 1);
		colon = close + 1;
	} else {
		colon = strrchr(buf, ':');
		if (!colon || colon == buf) {
			snprintf(err, errlen, "'%s': expected host:port", buf);
			return -1;
		}
		if (memchr(buf, ':', (size_t)(colon - buf))) {
			snprintf(err, errlen, "'%s': write an IPv6 address as [address]:port", buf);
			return -1;
		}
		snprintf(host, sizeof(host), "%.*s", (int)(colon - buf), buf);
	}
	snprintf(port, sizeof(port), "%s", colon + 1);
	{
		char *end;
		long p = strtol(port, &end, 10);
		if (port[0] == '\0' || *end != '\0' || p < 1 || p > 65535) {
			snprintf(err, errlen, "'%s': port must be 1 to 65535", buf);
			return -1;
		}
	}
	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_NUMERICSERV;
	r = getaddrinfo(host, port, &hints, &res);
	if (r != 0) {
		snprintf(err, errlen, "'%s': %s", buf, gai_strerror(r));
		return -1;
	}
	memcpy(&a->sa, res->ai_addr, res->ai_addrlen);
	a->len = res->ai_addrlen;
	freeaddrinfo(res);
	return 0;
}

int addr_list_parse(const char *text, bool listen, struct addr_list *out, char *err, size_t errlen)
{
	const char *p = text;

	out->v = NULL;
	out->n = 0;
	for (;;) {
		const char *comma = strchr(p, ',');
		size_t len = comma ? (size_t)(comma - p) : strlen(p);
		struct addr *nv;

		while (len && (*p == ' ' || *p == '\t')) {
			p++;
			len--;
		}
		while (len && (p[len - 1] == ' ' || p[len - 1] == '\t'))
			len--;
		nv = realloc(out->v, (out->n + 1) * sizeof(*nv));
		if (!nv) {
			snprintf(err, errlen, "out of memory");
			addr_list_free(out);
			return -1;
		}
		out->v = nv;
		if (parse_one(p, len, listen, &out->v[out->n], err, errlen) < 0) {
			addr_list_free(out);
			return -1;
		}
		out->n++;
		if (!comma)
			break;
		p = comma + 1;
	}
	return 0;
}

void addr_list_free(struct addr_list *l)
{
	free(l->v);
	l->v = NULL;
	l->n = 0;
}

int addr_socket(const struct addr *a)
{
	return socket(a->sa.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
}

/* Make room at a unix path: only a socket file nobody listens on may go. */
static int unix_reclaim(const struct addr *a, char *err, size_t errlen)
{
	const char *path = ((const struct sockaddr_un *)&a->sa)->sun_path;
	struct stat st;
	int s, r, e;

	if (lstat(path, &st) < 0)
		return 0; /* nothing there, or bind will say why */
	if (!S_ISSOCK(st.st_mode)) {
		snprintf(err, errlen, "%s: cannot listen: %s exists and is not a socket", a->name,
		         path);
		return -1;
	}
	s = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (s < 0) {
		snprintf(err, errlen, "%s: cannot listen: socket: %s", a->name, strerror(errno));
		return -1;
	}
	r = connect(s, (const struct sockaddr *)&a->sa, a->len);
	e = errno;
	close(s);
	/* EAGAIN: it listens, with a full backlog. */
	if (r == 0 || e == EAGAIN || e == EINPROGRESS) {
		snprintf(err, errlen,
		         "%s: cannot listen: another process is listening on this socket "
		         "(is coalesced already running?)",
		         a->name);
		return -1;
	}
	if (e != ECONNREFUSED) {
		snprintf(err, errlen,
		         "%s: cannot listen: cannot tell whether the socket file is in use: %s",
		         a->name, strerror(e));
		return -1;
	}
	if (unlink(path) < 0 && errno != ENOENT) {
		snprintf(err, errlen, "%s: cannot listen: cannot remove the stale socket file: %s",
		         a->name, strerror(errno));
		return -1;
	}
	return 0;
}

int addr_listen(int fd, const struct addr *a, int backlog, struct addr_file *f, char *err,
                size_t errlen)
{
	int one = 1;

	if (f)
		memset(f, 0, sizeof(*f));
	if (a->sa.ss_family == AF_UNIX) {
		if (unix_reclaim(a, err, errlen) < 0)
			return -1;
	} else {
		setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
		if (a->sa.ss_family == AF_INET6)
			setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
	}
	if (bind(fd, (const struct sockaddr *)&a->sa, a->len) < 0) {
		snprintf(err, errlen, "%s: cannot listen: %s", a->name, strerror(errno));
		return -1;
	}
	if (a->sa.ss_family == AF_UNIX && f) {
		struct stat st;
		if (lstat(((const struct sockaddr_un *)&a->sa)->sun_path, &st) == 0) {
			f->dev = st.st_dev;
			f->ino = st.st_ino;
			f->made = true;
		}
	}
	if (listen(fd, backlog) < 0) {
		snprintf(err, errlen, "%s: cannot listen: %s", a->name, strerror(errno));
		addr_unlink(a, f);
		return -1;
	}
	return 0;
}

void addr_unlink(const struct addr *a, const struct addr_file *f)
{
	const char *path = ((const struct sockaddr_un *)&a->sa)->sun_path;
	struct stat st;

	if (a->sa.ss_family != AF_UNIX || !f || !f->made)
		return;
	if (lstat(path, &st) == 0 && S_ISSOCK(st.st_mode) && st.st_dev == f->dev &&
	    st.st_ino == f->ino)
		unlink(path);
}
