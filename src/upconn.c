/* upconn: connect, reconnect, write and read pipelined upstream connections. */
#include "upconn.h"

#include "addr.h"
#include "log.h"
#include "pool.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define BACKOFF_MIN 0.05
#define BACKOFF_MAX 1.0
#define READ_CHUNK 16384
/* Room for a failure's reason: an address name and some words. */
#define ADDR_WHY (sizeof(((struct addr *)0)->name) + 128)

static void conn_connect(struct upconn *c);
static void conn_write(struct upconn *c);
static void probe_schedule(struct upconn_group *g);

/* --- request queues ------------------------------------------------------ */

static int queue_reserve(struct upconn_queue *q, uint32_t n)
{
	struct upconn_item *v;
	uint32_t cap = q->cap ? q->cap : 4;

	if (n <= q->cap)
		return 0;
	while (cap < n)
		cap *= 2;
	v = malloc(cap * sizeof(*v));
	if (!v)
		return -1;
	for (uint32_t i = 0; i < q->n; i++)
		v[i] = q->v[(q->head + i) % q->cap];
	free(q->v);
	q->v = v;
	q->cap = cap;
	q->head = 0;
	return 0;
}

/* Room was reserved beforehand: pushing never fails. */
static void queue_push(struct upconn_queue *q, const struct upconn_item *it)
{
	q->v[(q->head + q->n) % q->cap] = *it;
	q->n++;
}

static struct upconn_item queue_pop(struct upconn_queue *q)
{
	struct upconn_item it = q->v[q->head];

	q->head = (q->head + 1) % q->cap;
	q->n--;
	return it;
}

static uint32_t nreqs(const struct upconn *c)
{
	return c->written.n + c->unwritten.n;
}

/* --- timer --------------------------------------------------------------- */

static void timer_arm(struct upconn *c, double after)
{
	struct ev_loop *loop = c->grp->loop;

	ev_timer_stop(loop, &c->timer);
	ev_timer_set(&c->timer, after > 0 ? after : 0., 0.);
	ev_timer_start(loop, &c->timer);
}

/* When a written request's reply is due: timeout_ms after it went out; an
 * abandoned one (req NULL: its requester was answered, its reply is still to
 * be read past) gets as long again before the connection is given up. */
static double item_deadline(const struct upconn *c, const struct upconn_item *it)
{
	double t = c->grp->set->timeout_ms / 1000.0;

	return it->sent_at + (it->req ? t : 2 * t);
}

/* The written request whose deadline comes first (its index from the
 * head), and that deadline; -1 if none is written. */
static long first_deadline(const struct upconn *c, double *at)
{
	long best = -1;

	for (uint32_t i = 0; i < c->written.n; i++) {
		const struct upconn_item *it =
		    &c->written.v[(c->written.head + i) % c->written.cap];
		double d = item_deadline(c, it);
		if (best < 0 || d < *at) {
			best = (long)i;
			*at = d;
		}
	}
	return best;
}

/* Reply deadline of the written requests; the timer is only moved when it
 * fires early (ev.pod, "be smart about timeouts"). */
static void timer_arm_reply(struct upconn *c)
{
	double at = 0;

	if (!ev_is_active(&c->timer) && first_deadline(c, &at) >= 0)
		timer_arm(c, at - ev_now(c->grp->loop));
}

/* --- connection life ----------------------------------------------------- */

static void conn_reset(struct upconn *c)
{
	struct upconn_group *g = c->grp;

	ev_io_stop(g->loop, &c->rio);
	ev_io_stop(g->loop, &c->wio);
	ev_timer_stop(g->loop, &c->timer);
	if (c->fd >= 0)
		close(c->fd);
	if (c->state == UPCONN_UP)
		pool_conn_down(g->pool, g->server);
	c->fd = -1;
	c->state = UPCONN_DOWN;
	c->probing = false;
	c->write_errno = 0;
	c->wlen = c->woff = 0;
	c->wqueued = c->wdone = 0;
	c->rlen = 0;
	if (g->ops->reset)
		g->ops->reset(c);
	if (c->state_mem)
		memset(c->state_mem, 0, g->ops->state_size);
}

/* text: why, for people: it goes to the log and the server's health
 * record, and (an error reply's words) to clients. */
void upconn_fail(struct upconn *c, enum batch_error why, const char *text)
{
	struct upconn_group *g = c->grp;
	struct upconn_queue w = c->written, u = c->unwritten;
	uint32_t n = w.n + u.n;
	bool probing = c->probing;
	const char *what = why == BATCH_TIMEOUT          ? "timeout"
	                   : why == BATCH_PROTOCOL       ? "protocol error"
	                   : why == BATCH_UPSTREAM_ERROR ? "error reply"
	                                                 : "unavailable";

	pool_error(g->pool, g->server, why == BATCH_UNAVAILABLE || why == BATCH_TIMEOUT,
	           ev_now(g->loop), text ? text : what);
	/* A server failure already failed the probe in the pool; any other
	 * end of the connection fails it too. */
	if (probing && why != BATCH_UNAVAILABLE && why != BATCH_TIMEOUT)
		pool_probe_done(g->pool, g->server, false, ev_now(g->loop));
	/* A server that keeps refusing is logged once, not at every retry. */
	if (n > 0 || c->backoff == 0)
		log_warn(g->log, "upstream %s: %s%s%s; %u batch%s failed", g->addr->name, what,
		         text ? ": " : "", text ? text : "", n, n == 1 ? "" : "es");
	memset(&c->written, 0, sizeof(c->written));
	memset(&c->unwritten, 0, sizeof(c->unwritten));
	conn_reset(c);
	if (g->draining) {
		/* Replaced: let this connection go. */
	} else if (why == BATCH_UNAVAILABLE && !c->was_up) {
		/* Could not connect: back off. */
		c->backoff = c->backoff == 0 ? BACKOFF_MIN : c->backoff * 2;
		if (c->backoff > BACKOFF_MAX)
			c->backoff = BACKOFF_MAX;
		timer_arm(c, c->backoff);
	} else {
		/* A working connection was lost (we closed it over a bad reply,
		 * or the server hung up): try again at once; only a failed
		 * connect backs off. */
		c->was_up = false;
		conn_connect(c);
	}
	/* Last: a retry must find this connection reset, never mid-failure. */
	while (w.n) {
		struct upconn_item it = queue_pop(&w);
		if (it.req) /* else abandoned: its requester has its answer */
			g->ops->fail(c, it.req, true, why, text);
	}
	while (u.n) {
		struct upconn_item it = queue_pop(&u);
		g->ops->fail(c, it.req, false, why, text);
	}
	free(w.v);
	free(u.v);
	probe_schedule(g);
}

static int buf_reserve(char **buf, size_t *cap, size_t need)
{
	size_t n = *cap ? *cap : 4096;
	char *nb;

	if (need <= *cap)
		return 0;
	while (n < need)
		n *= 2;
	nb = realloc(*buf, n);
	if (!nb)
		return -1;
	*buf = nb;
	*cap = n;
	return 0;
}

/* A system call failed with err: fail the connection saying so, e.g.
 * "connect to 127.0.0.1:1: Connection refused". */
static void fail_errno(struct upconn *c, const char *what, int err)
{
	char why[ADDR_WHY];

	snprintf(why, sizeof(why), "%s %s: %s", what, c->grp->addr->name, strerror(err));
	upconn_fail(c, BATCH_UNAVAILABLE, why);
}

/* Requests whose first byte has gone out move to the written queue. */
static void mark_written(struct upconn *c)
{
	bool moved = false, was_idle = c->written.n == 0;

	while (c->unwritten.n && c->unwritten.v[c->unwritten.head].start < c->wdone) {
		struct upconn_item it = queue_pop(&c->unwritten);
		it.sent_at = ev_now(c->grp->loop);
		queue_push(&c->written, &it);
		moved = true;
	}
	if (moved) {
		/* An idle connection's timer may be waiting for a probe, maybe
		 * far off: the reply deadline comes first. */
		if (was_idle && !c->probing)
			ev_timer_stop(c->grp->loop, &c->timer);
		timer_arm_reply(c);
	}
}

/* Writes what it can; errors are left to the write watcher, which runs in a
 * clean context, so that sending never fails requests re-entrantly. */
static void conn_write(struct upconn *c)
{
	struct ev_loop *loop = c->grp->loop;

	while (c->woff < c->wlen) {
		ssize_t n = write(c->fd, c->wbuf + c->woff, c->wlen - c->woff);
		if (n > 0) {
			c->woff += (size_t)n;
			c->wdone += (uint64_t)n;
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK) {
			c->write_errno = errno;
			ev_feed_event(loop, &c->wio, EV_WRITE);
		}
		ev_io_start(loop, &c->wio);
		mark_written(c);
		return;
	}
	c->wlen = c->woff = 0;
	ev_io_stop(loop, &c->wio);
	mark_written(c);
}

char *upconn_wspace(struct upconn *c, size_t n)
{
	if (buf_reserve(&c->wbuf, &c->wcap, c->wlen + n) < 0)
		return NULL;
	return c->wbuf + c->wlen;
}

void upconn_wcommit(struct upconn *c, size_t n)
{
	c->wlen += n;
	c->wqueued += n;
}

int upconn_send(struct upconn *c, void *req)
{
	struct upconn_item it = {.req = req, .start = c->wqueued, .sent_at = 0};
	size_t wlen = c->wlen;

	/* Reserve first, so that moving between queues never fails. */
	if (queue_reserve(&c->unwritten, c->unwritten.n + 1) < 0 ||
	    queue_reserve(&c->written, nreqs(c) + 1) < 0)
		return -1;
	if (c->grp->ops->encode(c, req) < 0) {
		c->wlen = wlen;
		c->wqueued = it.start;
		return -1;
	}
	queue_push(&c->unwritten, &it);
	if (c->state == UPCONN_UP)
		conn_write(c);
	return 0;
}

static void on_connected(struct upconn *c)
{
	struct upconn_group *g = c->grp;
	int err = 0;
	socklen_t len = sizeof(err);

	if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
		err = errno;
	if (err) {
		fail_errno(c, "connect to", err);
		return;
	}
	if (c->backoff > 0)
		log_info(g->log, "upstream %s: connected", g->addr->name);
	c->state = UPCONN_UP;
	pool_conn_up(g->pool, g->server);
	c->was_up = true;
	c->backoff = 0;
	ev_timer_stop(g->loop, &c->timer);
	ev_io_start(g->loop, &c->rio);
	/* Requests queued while connecting go out only now. */
	conn_write(c);
	probe_schedule(g);
}

static void write_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct upconn *c = w->data;

	(void)loop;
	(void)revents;
	if (c->state == UPCONN_CONNECTING) {
		on_connected(c);
		return;
	}
	if (c->write_errno) {
		fail_errno(c, "write to", c->write_errno);
		return;
	}
	conn_write(c);
}

static void conn_connect(struct upconn *c)
{
	struct upconn_group *g = c->grp;
	int one = 1;

	c->fd = addr_socket(g->addr);
	if (c->fd < 0) {
		fail_errno(c, "socket for", errno);
		return;
	}
	if (g->addr->sa.ss_family != AF_UNIX)
		setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	ev_io_set(&c->rio, c->fd, EV_READ);
	ev_io_set(&c->wio, c->fd, EV_WRITE);
	c->state = UPCONN_CONNECTING;
	if (connect(c->fd, (const struct sockaddr *)&g->addr->sa, g->addr->len) < 0 &&
	    errno != EINPROGRESS) {
		fail_errno(c, "connect to", errno);
		return;
	}
	ev_io_start(g->loop, &c->wio);
	timer_arm(c, g->set->connect_timeout_ms / 1000.0);
}

/* The first reply deadline passed (or the timer fired early: re-arm).
 * A late request is abandoned when the codec can read its reply past
 * without it: its requester gets a timeout now, the connection and what is
 * queued behind it stay, so one slow reply costs one request. A request
 * already abandoned, or a codec that cannot, fails the connection. One
 * request per call: the timer comes back at once for the next. */
static void reply_overdue(struct upconn *c)
{
	struct upconn_group *g = c->grp;
	double now = ev_now(g->loop), at = 0;
	long i = first_deadline(c, &at);
	struct upconn_item *it;
	char why[ADDR_WHY];
	void *req;

	if (i < 0)
		return;
	if (at > now) {
		timer_arm(c, at - now);
		return;
	}
	it = &c->written.v[(c->written.head + (uint32_t)i) % c->written.cap];
	if (!it->req || !g->ops->abandon) {
		snprintf(why, sizeof(why), "no reply after %u ms",
		         it->req ? g->set->timeout_ms : 2 * g->set->timeout_ms);
		upconn_fail(c, BATCH_TIMEOUT, why);
		return;
	}
	snprintf(why, sizeof(why), "no reply after %u ms", g->set->timeout_ms);
	req = it->req;
	it->req = NULL;
	pool_error(g->pool, g->server, true, now, why);
	log_warn(g->log, "upstream %s: %s; 1 request failed, its reply will be read past",
	         g->addr->name, why);
	if (first_deadline(c, &at) >= 0)
		timer_arm(c, at - now);
	/* Last: a retry may queue on this very connection. */
	g->ops->abandon(c, req, i == 0, why);
}

static void timer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct upconn *c = w->data;
	struct upconn_group *g = c->grp;
	char why[ADDR_WHY];

	(void)loop;
	(void)revents;
	switch (c->state) {
	case UPCONN_DOWN:
		conn_connect(c);
		return;
	case UPCONN_CONNECTING:
		snprintf(why, sizeof(why), "connect to %s: timeout after %u ms", g->addr->name,
		         g->set->connect_timeout_ms);
		upconn_fail(c, BATCH_UNAVAILABLE, why);
		return;
	default:
		if (c->probing) {
			snprintf(why, sizeof(why), "probe: no reply after %u ms",
			         g->set->timeout_ms);
			upconn_fail(c, BATCH_TIMEOUT, why);
			return;
		}
		if (!c->written.n) {
			probe_schedule(g);
			return;
		}
		reply_overdue(c);
	}
}

/* After replies were consumed: a draining connection with nothing left
 * closes. */
static void after_input(struct upconn *c)
{
	if (c->grp->draining && nreqs(c) == 0)
		conn_reset(c);
}

/* --- probes of an ejected server ----------------------------------------- */

/* The probe's reply line, if it is complete, leaves the read buffer and
 * brings the server back. 0, or -1 once the connection failed. */
static int probe_reply(struct upconn *c)
{
	struct upconn_group *g = c->grp;
	const char *nl = memchr(c->rbuf, '\n', c->rlen);
	size_t used;

	if (!nl) {
		if (c->rlen > 4096) {
			upconn_fail(c, BATCH_PROTOCOL, "probe: reply line too long");
			return -1;
		}
		return 0; /* the rest comes with more */
	}
	used = (size_t)(nl - c->rbuf) + 1;
	memmove(c->rbuf, c->rbuf + used, c->rlen - used);
	c->rlen -= used;
	c->probing = false;
	ev_timer_stop(g->loop, &c->timer);
	timer_arm_reply(c);
	pool_probe_done(g->pool, g->server, true, ev_now(g->loop));
	return 0;
}

/* Start the probe on c if the pool says so now, else arm c's idle timer
 * for when it will. Only an idle connection probes, so that the probe's
 * reply is the first to come. */
static void probe_maybe(struct upconn *c)
{
	struct upconn_group *g = c->grp;
	double at = pool_probe_at(g->pool, g->server), now = ev_now(g->loop);
	char *p;
	size_t len;

	if (at == 0 || c->state != UPCONN_UP || c->probing || nreqs(c) || g->draining)
		return;
	if (now < at) {
		timer_arm(c, at - now);
		return;
	}
	if (!pool_probe_start(g->pool, g->server, now))
		return;
	if (!g->ops->probe) {
		pool_probe_done(g->pool, g->server, true, now);
		return;
	}
	len = strlen(g->ops->probe);
	p = upconn_wspace(c, len);
	if (!p) {
		pool_probe_done(g->pool, g->server, false, now);
		return;
	}
	memcpy(p, g->ops->probe, len);
	upconn_wcommit(c, len);
	c->probing = true;
	timer_arm(c, g->set->timeout_ms / 1000.0);
	conn_write(c);
}

/* After a connection came up or failed: the pool may want a probe. */
static void probe_schedule(struct upconn_group *g)
{
	if (pool_probe_at(g->pool, g->server) == 0)
		return;
	for (uint32_t k = 0; k < g->nconns; k++)
		probe_maybe(&g->conns[k]);
}

static void read_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct upconn *c = w->data;
	struct upconn_group *g = c->grp;
	const struct upconn_ops *ops = g->ops;
	char *dst = NULL;
	size_t room = 0;
	ssize_t n;

	(void)loop;
	(void)revents;
	if (c->rlen == 0 && ops->direct && !c->probing)
		dst = ops->direct(c, &room);
	if (dst && room > READ_CHUNK) {
		/* A large body skips the line buffer and lands in its place. */
		n = read(c->fd, dst, room);
		if (n > 0) {
			if (ops->direct_done(c, (size_t)n) == 0)
				after_input(c);
			return;
		}
	} else {
		if (buf_reserve(&c->rbuf, &c->rcap, c->rlen + READ_CHUNK) < 0) {
			upconn_fail(c, BATCH_UNAVAILABLE, "out of memory");
			return;
		}
		n = read(c->fd, c->rbuf + c->rlen, c->rcap - c->rlen);
		if (n > 0) {
			long used;
			c->rlen += (size_t)n;
			if (c->probing && probe_reply(c) < 0)
				return;
			if (c->rlen == 0)
				return;
			used = ops->input(c, c->rbuf, c->rlen);
			if (used < 0)
				return;
			if (used > 0) {
				memmove(c->rbuf, c->rbuf + used, c->rlen - (size_t)used);
				c->rlen -= (size_t)used;
			}
			after_input(c);
			return;
		}
	}
	if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
		return;
	if (n < 0)
		fail_errno(c, "read from", errno);
	else
		upconn_fail(c, BATCH_UNAVAILABLE,
		            nreqs(c) ? "closed by peer mid-reply" : "closed by peer");
}

/* --- codec side ---------------------------------------------------------- */

void *upconn_ctx(const struct upconn *c)
{
	return c->grp->ctx;
}

void *upconn_state(const struct upconn *c)
{
	return c->state_mem;
}

const char *upconn_name(const struct upconn *c)
{
	return c->grp->addr->name;
}

void *upconn_head(const struct upconn *c)
{
	return c->written.n ? c->written.v[c->written.head].req : NULL;
}

bool upconn_head_abandoned(const struct upconn *c)
{
	return c->written.n && !c->written.v[c->written.head].req;
}

void *upconn_pop(struct upconn *c, ev_tstamp *sent_at)
{
	struct upconn_item it = queue_pop(&c->written);

	pool_success(c->grp->pool, c->grp->server);
	if (sent_at)
		*sent_at = it.sent_at;
	return it.req;
}

/* --- groups -------------------------------------------------------------- */

int upconn_group_init(struct upconn_group *g, struct ev_loop *loop, const struct upconn_ops *ops,
                      void *ctx, const struct upstream_settings *set, const struct log *lg,
                      struct pool *pool, uint32_t server, uint32_t nconns)
{
	memset(g, 0, sizeof(*g));
	g->loop = loop;
	g->ops = ops;
	g->ctx = ctx;
	g->set = set;
	g->log = lg;
	g->pool = pool;
	g->server = server;
	g->addr = pool_server_addr(pool, server);
	g->conns = calloc(nconns, sizeof(*g->conns));
	if (!g->conns)
		return -1;
	g->nconns = nconns;
	for (uint32_t k = 0; k < nconns; k++) {
		struct upconn *c = &g->conns[k];
		c->grp = g;
		c->fd = -1;
		if (ops->state_size) {
			c->state_mem = calloc(1, ops->state_size);
			if (!c->state_mem) {
				upconn_group_destroy(g);
				return -1;
			}
		}
		ev_init(&c->rio, read_cb);
		ev_init(&c->wio, write_cb);
		ev_init(&c->timer, timer_cb);
		c->rio.data = c->wio.data = c->timer.data = c;
	}
	return 0;
}

void upconn_group_start(struct upconn_group *g)
{
	for (uint32_t k = 0; k < g->nconns; k++)
		conn_connect(&g->conns[k]);
}

void upconn_group_destroy(struct upconn_group *g)
{
	for (uint32_t k = 0; k < g->nconns; k++) {
		struct upconn *c = &g->conns[k];
		if (c->grp)
			conn_reset(c);
		while (c->written.n) {
			void *req = queue_pop(&c->written).req;
			if (req)
				g->ops->discard(req);
		}
		while (c->unwritten.n)
			g->ops->discard(queue_pop(&c->unwritten).req);
		free(c->written.v);
		free(c->unwritten.v);
		free(c->wbuf);
		free(c->rbuf);
		free(c->state_mem);
	}
	free(g->conns);
	g->conns = NULL;
	g->nconns = 0;
}

void upconn_group_drain(struct upconn_group *g)
{
	g->draining = true;
	for (uint32_t k = 0; k < g->nconns; k++)
		if (nreqs(&g->conns[k]) == 0)
			conn_reset(&g->conns[k]);
}

uint32_t upconn_group_outstanding(const struct upconn_group *g)
{
	uint32_t n = 0;

	for (uint32_t k = 0; k < g->nconns; k++)
		n += nreqs(&g->conns[k]);
	return n;
}

struct upconn *upconn_pick(struct upconn_group *g, const void *avoid, bool force, bool *busy)
{
	struct upconn *best = NULL;
	uint32_t depth = g->set->pipeline_depth;

	*busy = false;
	for (int pass = 0; pass < 2 && !best; pass++) {
		for (uint32_t k = 0; k < g->nconns; k++) {
			struct upconn *c = &g->conns[(g->rr + k) % g->nconns];
			if (c == avoid || c->state == UPCONN_DOWN)
				continue;
			if (!force && nreqs(c) >= depth) {
				*busy = true;
				continue;
			}
			if (!best || (c->state == UPCONN_UP && best->state != UPCONN_UP) ||
			    (c->state == best->state && nreqs(c) < nreqs(best)))
				best = c;
		}
		avoid = NULL;
	}
	g->rr++;
	if (best)
		*busy = false;
	return best;
}

uint32_t upconn_groups_outstanding(const struct upconn_group *g, uint32_t n)
{
	uint32_t total = 0;

	for (uint32_t i = 0; i < n; i++)
		total += upconn_group_outstanding(&g[i]);
	return total;
}

void upconn_groups_drain(struct upconn_group *g, uint32_t n)
{
	for (uint32_t i = 0; i < n; i++)
		upconn_group_drain(&g[i]);
}

void upconn_groups_destroy(struct upconn_group *g, uint32_t n)
{
	for (uint32_t i = 0; i < n && g; i++)
		upconn_group_destroy(&g[i]);
	free(g);
}
