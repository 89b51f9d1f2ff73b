/* metrics: Prometheus exposition over a tiny HTTP/1.0 server. */
#include "metrics.h"

#include "addr.h"
#include "log.h"
#include "pool.h"
#include "server.h"
#include "stats.h"
#include "workers.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#define HTTP_MAX_REQUEST 8192
#define HTTP_TIMEOUT 5.0
#define HTTP_MAX_CONNS 64

struct http_conn {
	struct metrics *m;
	struct http_conn *next;
	int fd;
	ev_io rio, wio;
	ev_timer timer;
	char req[HTTP_MAX_REQUEST];
	size_t rlen;
	char *out;
	size_t olen, ooff;
};

struct metrics_listener {
	struct metrics *m;
	struct addr addr;
	int fd;
	ev_io io;
	/* The socket file this listener made, so that closing removes that
	 * file only, never one another process put there since. */
	bool made_file;
	dev_t dev;
	ino_t ino;
};

struct metrics {
	struct server *srv;
	struct metrics_listener *l;
	size_t nl;
	struct http_conn *conns;
	unsigned nconns;
};

/* A growable text buffer; on allocation failure it stops growing and the
 * render reports failure. */
struct text {
	char *p;
	size_t len, cap;
	bool failed;
};

/* Room for need more bytes and a NUL; false once allocation has failed. */
static bool reserve(struct text *t, size_t need)
{
	size_t cap = t->cap ? t->cap : 8192;

	if (t->failed)
		return false;
	if (t->p && t->cap - t->len > need)
		return true;
	while (cap - t->len <= need)
		cap *= 2;
	char *np = realloc(t->p, cap);
	if (!np) {
		t->failed = true;
		return false;
	}
	t->p = np;
	t->cap = cap;
	return true;
}

static void add_bytes(struct text *t, const void *s, size_t n)
{
	if (!reserve(t, n))
		return;
	memcpy(t->p + t->len, s, n);
	t->len += n;
	t->p[t->len] = '\0';
}

static void add(struct text *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void add(struct text *t, const char *fmt, ...)
{
	va_list ap;
	int n;

	/* vsnprintf into NULL + 0 would be undefined: allocate first. */
	if (!reserve(t, 0))
		return;
	va_start(ap, fmt);
	n = vsnprintf(t->p + t->len, t->cap - t->len, fmt, ap);
	va_end(ap);
	if (n < 0) {
		t->failed = true;
		return;
	}
	if ((size_t)n >= t->cap - t->len) {
		if (!reserve(t, (size_t)n))
			return;
		va_start(ap, fmt);
		vsnprintf(t->p + t->len, t->cap - t->len, fmt, ap);
		va_end(ap);
	}
	t->len += (size_t)n;
}

/* Length of the well-formed UTF-8 sequence at b (RFC 3629: no overlong
 * forms, no surrogates, nothing above U+10FFFF); 0 if there is none. */
static size_t utf8_len(const unsigned char *b, size_t avail)
{
	unsigned char lo = 0x80, hi = 0xbf;
	size_t n;

	if (b[0] < 0x80)
		return 1;
	if (b[0] >= 0xc2 && b[0] <= 0xdf)
		n = 2;
	else if (b[0] >= 0xe0 && b[0] <= 0xef)
		n = 3;
	else if (b[0] >= 0xf0 && b[0] <= 0xf4)
		n = 4;
	else
		return 0;
	if (b[0] == 0xe0)
		lo = 0xa0;
	else if (b[0] == 0xed)
		hi = 0x9f;
	else if (b[0] == 0xf0)
		lo = 0x90;
	else if (b[0] == 0xf4)
		hi = 0x8f;
	if (avail < n || b[1] < lo || b[1] > hi)
		return 0;
	for (size_t i = 2; i < n; i++)
		if (b[i] < 0x80 || b[i] > 0xbf)
			return 0;
	return n;
}

/*
 * Append `name="value"` for the raw bytes s. The exposition format wants
 * valid UTF-8 with only \\, \" and \n escaped (a \x escape makes strict
 * parsers reject the whole page). Each byte that does not begin a valid
 * UTF-8 sequence, and each control character but newline, becomes U+FFFD;
 * the result is false then, as the value no longer spells the bytes.
 */
static bool label(struct text *t, const char *name, const char *s, size_t len)
{
	static const char replacement[] = "\xef\xbf\xbd";
	const unsigned char *b = (const unsigned char *)s;
	bool exact = true;

	add(t, "%s=\"", name);
	for (size_t i = 0, n; i < len; i += n) {
		n = utf8_len(b + i, len - i);
		if (n == 0 || (b[i] < 0x20 && b[i] != '\n') || b[i] == 0x7f) {
			add_bytes(t, replacement, 3);
			exact = false;
			n = 1;
		} else if (b[i] == '\n') {
			add_bytes(t, "\\n", 2);
		} else if (b[i] == '"' || b[i] == '\\') {
			add_bytes(t, "\\", 1);
			add_bytes(t, b + i, 1);
		} else {
			add_bytes(t, b + i, n);
		}
	}
	add_bytes(t, "\"", 1);
	return exact;
}

/* `name="<two lowercase hex digits per byte>"`. */
static void label_hex(struct text *t, const char *name, const char *s, size_t len)
{
	add(t, "%s=\"", name);
	for (size_t i = 0; i < len; i++)
		add(t, "%02x", (unsigned char)s[i]);
	add_bytes(t, "\"", 1);
}

static void process_info(struct text *t, const struct server *srv)
{
	add(t,
	    "# HELP coalesced_uptime_seconds Seconds since the daemon started.\n"
	    "# TYPE coalesced_uptime_seconds gauge\ncoalesced_uptime_seconds %ld\n",
	    (long)(time(NULL) - srv->started));
	add(t, "# HELP coalesced_build_info The version of coalesced, as a label; always 1.\n"
	       "# TYPE coalesced_build_info gauge\ncoalesced_build_info{");
	label(t, "version", COALESCED_VERSION, strlen(COALESCED_VERSION));
	add(t, "} 1\n");
}

static void counters(struct text *t, const struct stats *st)
{
	const struct stat_counter *sc;
	size_t n = stats_counters(&sc);

	for (size_t i = 0; i < n; i++) {
		uint64_t v = *(const uint64_t *)((const char *)st + sc[i].off);
		const char *suffix = sc[i].gauge ? "" : "_total";
		/* total_connections reads better as connections_total. */
		const char *name =
		    strncmp(sc[i].name, "total_", 6) == 0 ? sc[i].name + 6 : sc[i].name;
		add(t, "# HELP coalesced_%s%s The %s figure of the stats command.\n", name, suffix,
		    sc[i].name);
		add(t, "# TYPE coalesced_%s%s %s\ncoalesced_%s%s %" PRIu64 "\n", name, suffix,
		    sc[i].gauge ? "gauge" : "counter", name, suffix, v);
	}
}

static void histogram(struct text *t, const char *name, const char *help, const struct histogram *h)
{
	uint64_t cum = 0;

	add(t, "# HELP coalesced_%s %s\n# TYPE coalesced_%s histogram\n", name, help, name);
	for (uint32_t i = 0; i < h->nbounds; i++) {
		cum += h->counts[i];
		add(t, "coalesced_%s_bucket{le=\"%g\"} %" PRIu64 "\n", name, h->bounds[i], cum);
	}
	cum += h->counts[h->nbounds];
	add(t, "coalesced_%s_bucket{le=\"+Inf\"} %" PRIu64 "\n", name, cum);
	add(t, "coalesced_%s_sum %.9g\ncoalesced_%s_count %" PRIu64 "\n", name, h->sum, name,
	    h->count);
}

/*
 * Per-prefix rows. Rows 0 and 1 are the catch-alls "(none)" and "(other)";
 * every other row is a prefix as the client sent it. Its label set is
 * prefix="<the bytes>", plus prefix_hex="<the bytes in hex>" whenever the
 * prefix label cannot spell them (see label()) or reads like a catch-all,
 * so that no two rows share a label set and every prefix can be recovered.
 */
static void prefixes(struct text *t, const struct detail *d)
{
	static const char *const fig[] = {"keys", "coalesced", "upstream", "hits", "misses"};
	struct text labels = {0};
	size_t *at = calloc((size_t)d->n + 1, sizeof(*at));

	if (!at) {
		t->failed = true;
		return;
	}
	/* The label sets once, for the five figures. */
	for (uint32_t i = 0; i < d->n; i++) {
		const struct detail_prefix *p = &d->v[i];
		bool exact = label(&labels, "prefix", p->name, p->len);
		if (i >= 2 && ((p->len == d->v[0].len && !memcmp(p->name, d->v[0].name, p->len)) ||
		               (p->len == d->v[1].len && !memcmp(p->name, d->v[1].name, p->len))))
			exact = false;
		if (!exact) {
			add_bytes(&labels, ",", 1);
			label_hex(&labels, "prefix_hex", p->name, p->len);
		}
		at[i + 1] = labels.len;
	}
	if (labels.failed)
		t->failed = true;
	for (size_t f = 0; f < 5 && !t->failed; f++) {
		add(t,
		    "# HELP coalesced_prefix_%s_total Per key prefix (up to ':'): %s.\n"
		    "# TYPE coalesced_prefix_%s_total counter\n",
		    fig[f], fig[f], fig[f]);
		for (uint32_t i = 0; i < d->n; i++) {
			const uint64_t *c = &d->v[i].keys;
			add(t, "coalesced_prefix_%s_total{%.*s} %" PRIu64 "\n", fig[f],
			    (int)(at[i + 1] - at[i]), labels.p + at[i], c[f]);
		}
	}
	free(labels.p);
	free(at);
}

/* One family per health figure of the upstream servers, each row labelled
 * server="<name as configured>", escaped by label(). */
static void servers(struct text *t, const struct pool_server_info *v, uint32_t n)
{
	static const struct {
		const char *name, *type, *help;
	} fam[] = {
	    {"server_up", "gauge", "1 while a connection to the upstream server is established."},
	    {"server_ejected", "gauge", "1 while the server is ejected from key placement."},
	    {"server_weight", "gauge", "The server's weight in key placement, as configured."},
	    {"server_connections", "gauge", "Connections to the server established now."},
	    {"server_consecutive_failures", "gauge",
	     "Failures of the server (no connection, timeout) since its last reply."},
	    {"server_errors_total", "counter", "Errors of the server, error replies included."},
	    {"server_ejections_total", "counter", "Times the server was ejected."},
	    {"server_last_error_timestamp_seconds", "gauge",
	     "Time of the server's last error (0: none yet)."},
	};
	for (size_t f = 0; f < sizeof(fam) / sizeof(fam[0]); f++) {
		add(t, "# HELP coalesced_%s %s\n# TYPE coalesced_%s %s\n", fam[f].name, fam[f].help,
		    fam[f].name, fam[f].type);
		for (uint32_t i = 0; i < n; i++) {
			struct pool_server_info si = v[i];
			double x;

			x = f == 0   ? (si.up ? 1 : 0)
			    : f == 1 ? (si.ejected ? 1 : 0)
			    : f == 2 ? si.weight
			    : f == 3 ? si.connections_up
			    : f == 4 ? si.failures
			    : f == 5 ? (double)si.errors
			    : f == 6 ? (double)si.ejections
			             : si.last_error_at;
			add(t, "coalesced_%s{", fam[f].name);
			label(t, "server", si.name, strlen(si.name));
			add(t, "} %.17g\n", x);
		}
	}
}

/* Per route of the PostgreSQL backend, labelled route="<prefix>". */
static void routes(struct text *t, const struct stats *st)
{
	static const char *const fig[] = {"keys",   "statements", "rows",
	                                  "misses", "errors",     "splits"};
	static const char *const help[] = {"keys sent to the database",
	                                   "statements executed",
	                                   "rows received",
	                                   "keys without a row or with a NULL value",
	                                   "keys failed with an upstream error",
	                                   "failed batches split to isolate a query error"};

	if (st->nroutes == 0)
		return;
	for (size_t f = 0; f < 6; f++) {
		add(t,
		    "# HELP coalesced_pg_route_%s_total Per [queries] route: %s.\n"
		    "# TYPE coalesced_pg_route_%s_total counter\n",
		    fig[f], help[f], fig[f]);
		for (uint32_t i = 0; i < st->nroutes; i++) {
			const uint64_t *c = &st->routes[i].keys;
			add(t, "coalesced_pg_route_%s_total{", fig[f]);
			label(t, "route", st->routes[i].name, strlen(st->routes[i].name));
			add(t, "} %" PRIu64 "\n", c[f]);
		}
	}
	add(t, "# HELP coalesced_pg_route_statement_duration_seconds Per [queries] route: "
	       "statements, from sending to the result.\n"
	       "# TYPE coalesced_pg_route_statement_duration_seconds histogram\n");
	for (uint32_t i = 0; i < st->nroutes; i++) {
		const struct histogram *h = &st->routes[i].seconds;
		uint64_t cum = 0;
		for (uint32_t b = 0; b <= h->nbounds; b++) {
			cum += h->counts[b];
			add(t, "coalesced_pg_route_statement_duration_seconds_bucket{");
			label(t, "route", st->routes[i].name, strlen(st->routes[i].name));
			if (b < h->nbounds)
				add(t, ",le=\"%g\"} %" PRIu64 "\n", h->bounds[b], cum);
			else
				add(t, ",le=\"+Inf\"} %" PRIu64 "\n", cum);
		}
		add(t, "coalesced_pg_route_statement_duration_seconds_sum{");
		label(t, "route", st->routes[i].name, strlen(st->routes[i].name));
		add(t, "} %.9g\ncoalesced_pg_route_statement_duration_seconds_count{", h->sum);
		label(t, "route", st->routes[i].name, strlen(st->routes[i].name));
		add(t, "} %" PRIu64 "\n", h->count);
	}
}

char *metrics_render(struct server *srv, size_t *len)
{
	struct text t = {0};
	struct stats_view view;
	const struct stats *st;

	if (stats_view_open(srv, &view) < 0)
		return NULL;
	st = view.st;
	process_info(&t, srv);
	counters(&t, st);
	histogram(&t, "request_duration_seconds",
	          "Client get/gets requests, from parsing to the reply being queued.",
	          &st->request_seconds);
	histogram(&t, "upstream_batch_duration_seconds",
	          "Upstream batches, from sending to the end of the reply.", &st->batch_seconds);
	histogram(&t, "upstream_batch_keys", "Keys per upstream batch.", &st->batch_keys);
	if (view.nservers)
		servers(&t, view.servers, view.nservers);
	prefixes(&t, &st->detail);
	routes(&t, st);
	stats_view_close(&view);
	if (t.failed) {
		free(t.p);
		return NULL;
	}
	*len = t.len;
	return t.p;
}

static void http_close(struct http_conn *h)
{
	struct metrics *m = h->m;
	struct ev_loop *loop = m->srv->loop;
	struct http_conn **pp;

	ev_io_stop(loop, &h->rio);
	ev_io_stop(loop, &h->wio);
	ev_timer_stop(loop, &h->timer);
	close(h->fd);
	for (pp = &m->conns; *pp; pp = &(*pp)->next)
		if (*pp == h) {
			*pp = h->next;
			break;
		}
	m->nconns--;
	free(h->out);
	free(h);
}

static void http_write(struct http_conn *h)
{
	while (h->ooff < h->olen) {
		ssize_t n = write(h->fd, h->out + h->ooff, h->olen - h->ooff);
		if (n > 0) {
			h->ooff += (size_t)n;
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			ev_io_start(h->m->srv->loop, &h->wio);
			return;
		}
		break;
	}
	http_close(h);
}

static void http_respond(struct http_conn *h, int code, const char *reason, const char *type,
                         const char *body, size_t blen)
{
	char hdr[256];
	int n = snprintf(hdr, sizeof(hdr),
	                 "HTTP/1.0 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
	                 "Connection: close\r\n\r\n",
	                 code, reason, type, blen);

	h->out = malloc((size_t)n + blen);
	if (!h->out) {
		http_close(h);
		return;
	}
	memcpy(h->out, hdr, (size_t)n);
	memcpy(h->out + n, body, blen);
	h->olen = (size_t)n + blen;
	ev_io_stop(h->m->srv->loop, &h->rio);
	http_write(h);
}

static void http_request(struct http_conn *h)
{
	static const char nf[] = "not found: try /metrics\n";
	char method[8], path[128];

	if (sscanf(h->req, "%7s %127s", method, path) != 2) {
		http_respond(h, 400, "Bad Request", "text/plain", "bad request\n", 12);
		return;
	}
	if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0) {
		http_respond(h, 405, "Method Not Allowed", "text/plain", "GET only\n", 9);
		return;
	}
	if (strcmp(path, "/metrics") != 0) {
		http_respond(h, 404, "Not Found", "text/plain", nf, sizeof(nf) - 1);
		return;
	}
	size_t len;
	char *body = metrics_render(h->m->srv, &len);
	if (!body) {
		http_respond(h, 500, "Internal Server Error", "text/plain", "out of memory\n", 14);
		return;
	}
	http_respond(h, 200, "OK", "text/plain; version=0.0.4; charset=utf-8", body,
	             strcmp(method, "HEAD") == 0 ? 0 : len);
	free(body);
}

static void http_read_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct http_conn *h = w->data;
	ssize_t n;

	(void)loop;
	(void)revents;
	n = read(h->fd, h->req + h->rlen, sizeof(h->req) - 1 - h->rlen);
	if (n <= 0) {
		if (n < 0 && (errno == EAGAIN || errno == EINTR))
			return;
		http_close(h);
		return;
	}
	h->rlen += (size_t)n;
	h->req[h->rlen] = '\0';
	/* The request line and headers end with an empty line; nothing else is
	 * needed, bodies are not expected. */
	if (strstr(h->req, "\r\n\r\n") || strstr(h->req, "\n\n")) {
		http_request(h);
		return;
	}
	if (h->rlen >= sizeof(h->req) - 1)
		http_respond(h, 431, "Request Header Fields Too Large", "text/plain", "too large\n",
		             10);
}

static void http_write_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	(void)loop;
	(void)revents;
	http_write(w->data);
}

static void http_timer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	(void)loop;
	(void)revents;
	http_close(w->data);
}

static void accept_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct metrics_listener *l = w->data;
	struct metrics *m = l->m;

	(void)revents;
	for (int i = 0; i < 16; i++) {
		int fd = accept4(l->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		struct http_conn *h;

		if (fd < 0)
			return;
		/* A scraper needs one or two; more is somebody misbehaving. */
		if (m->nconns >= HTTP_MAX_CONNS || !(h = calloc(1, sizeof(*h)))) {
			close(fd);
			continue;
		}
		h->m = m;
		h->fd = fd;
		ev_io_init(&h->rio, http_read_cb, fd, EV_READ);
		ev_io_init(&h->wio, http_write_cb, fd, EV_WRITE);
		ev_timer_init(&h->timer, http_timer_cb, HTTP_TIMEOUT, 0.);
		h->rio.data = h->wio.data = h->timer.data = h;
		h->next = m->conns;
		m->conns = h;
		m->nconns++;
		ev_io_start(loop, &h->rio);
		ev_timer_start(loop, &h->timer);
	}
}

/*
 * Make way for a unix socket at path: remove a socket file that nobody
 * listens on any more (left by an earlier run), but never a file of another
 * kind, nor the socket of a live listener (a second instance, say).
 */
static int unix_path_clear(const struct addr *a, char *err, size_t errlen)
{
	const char *path = ((const struct sockaddr_un *)&a->sa)->sun_path;
	struct stat st;
	int fd, r;

	if (lstat(path, &st) < 0) {
		if (errno == ENOENT)
			return 0;
		snprintf(err, errlen, "metrics %s: %s", a->name, strerror(errno));
		return -1;
	}
	if (!S_ISSOCK(st.st_mode)) {
		snprintf(err, errlen, "metrics %s: the file there is not a socket; not removing it",
		         a->name);
		return -1;
	}
	/* Non-blocking, so a listener with a full backlog answers EAGAIN
	 * instead of stalling the start. */
	fd = addr_socket(a);
	if (fd < 0) {
		snprintf(err, errlen, "metrics %s: socket: %s", a->name, strerror(errno));
		return -1;
	}
	r = connect(fd, (const struct sockaddr *)&a->sa, a->len);
	if (r < 0 && errno == ECONNREFUSED) {
		close(fd);
		if (unlink(path) < 0 && errno != ENOENT) {
			snprintf(err, errlen, "metrics %s: cannot remove the stale socket: %s",
			         a->name, strerror(errno));
			return -1;
		}
		return 0;
	}
	if (r == 0 || errno == EAGAIN || errno == EINPROGRESS)
		snprintf(err, errlen,
		         "metrics %s: another process is listening there (a second instance?)",
		         a->name);
	else
		snprintf(err, errlen,
		         "metrics %s: cannot tell whether the socket there is in use: %s", a->name,
		         strerror(errno));
	close(fd);
	return -1;
}

/* Bind and listen; for a unix socket, remember the file made. */
static int listener_bind(struct metrics_listener *l, char *err, size_t errlen)
{
	int one = 1;

	if (l->addr.sa.ss_family == AF_UNIX) {
		if (unix_path_clear(&l->addr, err, errlen) < 0)
			return -1;
	} else {
		setsockopt(l->fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	}
	if (bind(l->fd, (struct sockaddr *)&l->addr.sa, l->addr.len) < 0) {
		snprintf(err, errlen, "metrics %s: cannot listen: %s", l->addr.name,
		         strerror(errno));
		return -1;
	}
	if (l->addr.sa.ss_family == AF_UNIX) {
		struct stat st;
		if (lstat(((struct sockaddr_un *)&l->addr.sa)->sun_path, &st) == 0) {
			l->made_file = true;
			l->dev = st.st_dev;
			l->ino = st.st_ino;
		}
	}
	if (listen(l->fd, 64) < 0) {
		snprintf(err, errlen, "metrics %s: cannot listen: %s", l->addr.name,
		         strerror(errno));
		return -1;
	}
	return 0;
}

struct metrics *metrics_open(struct server *srv, const char *where, char *err, size_t errlen)
{
	struct metrics *m = calloc(1, sizeof(*m));
	struct addr_list al;

	if (!m) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	m->srv = srv;
	if (addr_list_parse(where, true, &al, err, errlen) < 0) {
		free(m);
		return NULL;
	}
	m->l = calloc(al.n, sizeof(*m->l));
	if (!m->l) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	for (size_t i = 0; i < al.n; i++) {
		struct metrics_listener *l = &m->l[i];
		l->m = m;
		l->addr = al.v[i];
		l->fd = addr_socket(&l->addr);
		if (l->fd < 0) {
			snprintf(err, errlen, "metrics %s: socket: %s", l->addr.name,
			         strerror(errno));
			goto fail;
		}
		m->nl++;
		if (listener_bind(l, err, errlen) < 0)
			goto fail;
		ev_io_init(&l->io, accept_cb, l->fd, EV_READ);
		l->io.data = l;
		ev_io_start(srv->loop, &l->io);
		log_info(&srv->log, "metrics on http://%s/metrics", l->addr.name);
	}
	addr_list_free(&al);
	return m;
fail:
	addr_list_free(&al);
	metrics_close(m);
	return NULL;
}

void metrics_close(struct metrics *m)
{
	if (!m)
		return;
	while (m->conns)
		http_close(m->conns);
	for (size_t i = 0; i < m->nl; i++) {
		struct metrics_listener *l = &m->l[i];
		const char *path = ((struct sockaddr_un *)&l->addr.sa)->sun_path;
		struct stat st;

		ev_io_stop(m->srv->loop, &l->io);
		if (l->fd >= 0)
			close(l->fd);
		if (l->made_file && lstat(path, &st) == 0 && st.st_dev == l->dev &&
		    st.st_ino == l->ino)
			unlink(path);
	}
	free(m->l);
	free(m);
}
