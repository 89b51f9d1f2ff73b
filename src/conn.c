/*
 * conn: the client side of the pipeline.
 *
 *   read() -> rbuf -> session feed -> request (slots) -> inflight_join
 *                                      ...
 *   slot filled -> conn_request_ready -> session compose -> items
 *   prepare watcher -> conn_write_pending -> writev(items)
 *
 * Replies leave strictly in request order: a completed request behind an
 * unfinished one waits in the queue.
 */
#include "conn.h"

#include "inflight.h"
#include "log.h"
#include "request.h"
#include "server.h"
#include "stats.h"
#include "upstream.h"
#include "value.h"
#include "workers.h"
#include "write.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

#define READ_CHUNK 16384
#define READ_MIN 1024
#define ARENA_MIN 256
#define ITEMS_MIN 4
#define IOV_BATCH 64

static void conn_process(struct conn *c);

static void wpending_add(struct conn *c)
{
	struct server *srv = c->srv;

	if (c->wpending)
		return;
	c->wpending = true;
	c->wprev = NULL;
	c->wnext = srv->wpending;
	if (srv->wpending)
		srv->wpending->wprev = c;
	srv->wpending = c;
}

static void wpending_del(struct conn *c)
{
	if (!c->wpending)
		return;
	if (c->wprev)
		c->wprev->wnext = c->wnext;
	else
		c->srv->wpending = c->wnext;
	if (c->wnext)
		c->wnext->wprev = c->wprev;
	c->wpending = false;
	c->wprev = c->wnext = NULL;
}

/* ---- output queue ---- */

static int items_reserve(struct conn *c)
{
	if (c->ihead > 0 && c->ihead == c->nitems) {
		c->ihead = c->nitems = 0;
		c->alen = 0;
	}
	if (c->nitems < c->icap)
		return 0;
	if (c->ihead > c->icap / 2) {
		memmove(c->items, c->items + c->ihead, (c->nitems - c->ihead) * sizeof(*c->items));
		c->nitems -= c->ihead;
		c->ihead = 0;
		return 0;
	}
	size_t cap = c->icap ? c->icap * 2 : ITEMS_MIN;
	struct out_item *ni = realloc(c->items, cap * sizeof(*ni));
	if (!ni)
		return -1;
	c->items = ni;
	c->icap = cap;
	return 0;
}

char *conn_out_reserve(struct conn *c, size_t n)
{
	if (items_reserve(c) < 0)
		return NULL;
	if (c->alen + n > c->acap) {
		size_t cap = c->acap ? c->acap : ARENA_MIN;
		char *na;
		while (cap < c->alen + n)
			cap *= 2;
		na = realloc(c->arena, cap);
		if (!na)
			return NULL;
		c->arena = na;
		c->acap = cap;
	}
	return c->arena + c->alen;
}

void conn_out_commit(struct conn *c, size_t len)
{
	struct out_item *last = c->nitems > c->ihead ? &c->items[c->nitems - 1] : NULL;

	if (last && !last->v && last->off + last->len == c->alen)
		last->len += len;
	else
		c->items[c->nitems++] = (struct out_item){NULL, c->alen, len};
	c->alen += len;
	c->out_bytes += len;
}

int conn_out_bytes(struct conn *c, const char *p, size_t len)
{
	char *dst = conn_out_reserve(c, len);

	if (!dst)
		return -1;
	memcpy(dst, p, len);
	conn_out_commit(c, len);
	return 0;
}

/* Takes over the caller's reference to v. */
int conn_out_value(struct conn *c, struct value *v)
{
	if (items_reserve(c) < 0) {
		value_unref(v);
		return -1;
	}
	c->items[c->nitems++] = (struct out_item){v, 0, v->len + 2};
	c->out_bytes += v->len + 2;
	return 0;
}

/* Move every completed request at the head of the queue to the output. */
static void drain_ready(struct conn *c)
{
	struct request *r;

	while (!c->broken && (r = c->rq_head) && r->npending == 0) {
		int rc;
		c->rq_head = r->next;
		if (!c->rq_head)
			c->rq_tail = NULL;
		c->nreq--;
		c->req_bytes -= r->pinned;
		if (r->kind == REQ_TEXT)
			rc = conn_out_bytes(c, r->text, r->textlen);
		else
			rc = c->ops->compose(c, r);
		request_free(r);
		if (rc < 0) {
			/* A missing reply would shift every later one: give up on the
			 * connection. Closing here could disturb the caller's walk of
			 * an entry's waiters, so it happens at the next write. */
			c->broken = true;
			log_error(&c->srv->log, "%s: out of memory composing a reply", c->name);
		}
	}
	wpending_add(c);
}

static bool is_io(const struct request *r)
{
	return r->kind == REQ_READ || r->kind == REQ_WRITE;
}

/* A read joins the in-flight table key by key; a write goes to the backend,
 * whose outcome completes it (perhaps before this returns). */
static void start(struct conn *c, struct request *r)
{
	struct server *srv = c->srv;
	struct upstream *up = srv->up;

	if (r->kind == REQ_WRITE) {
		struct upwrite *w = r->w;
		w->srv = srv;
		w->stats = &srv->stats;
		if (up->ops->write && up->ops->write(up, w)) {
			srv->stats.writes_forwarded++;
			return;
		}
		/* A backend that takes no writes (of this protocol). */
		srv->stats.cmd_unsupported++;
		w->error = strdup("not supported");
		r->npending = 0;
		conn_request_ready(c, r);
		return;
	}
	/* One extra pending count while joining, so that slots failing at once
	 * cannot complete (and free) the request under our feet. */
	r->npending++;
	for (uint32_t i = 0; i < r->nslots; i++) {
		if (shard_join(srv, &r->slots[i]) < 0)
			request_slot_error(&r->slots[i], "out of memory");
	}
	if (--r->npending == 0)
		conn_request_ready(c, r);
}

/* Start queued reads and writes whose turn has come (see conn_enqueue). */
static void start_ready(struct conn *c)
{
	struct request *r;

	if (c->starting)
		return; /* the outer walk picks up whatever changed */
	c->starting = true;
	while ((r = c->rq_unstarted)) {
		if ((r->kind == REQ_READ && c->writes_active) ||
		    (r->kind == REQ_WRITE && c->reads_active))
			break;
		/* Move on first: starting may complete (and free) r. */
		c->rq_unstarted = r->next;
		while (c->rq_unstarted && !is_io(c->rq_unstarted))
			c->rq_unstarted = c->rq_unstarted->next;
		r->started = true;
		if (r->kind == REQ_READ)
			c->reads_active++;
		else
			c->writes_active++;
		start(c, r);
	}
	c->starting = false;
}

void conn_request_ready(struct conn *c, struct request *r)
{
	if (r->started && r->kind == REQ_READ)
		c->reads_active--;
	else if (r->started && r->kind == REQ_WRITE)
		c->writes_active--;
	start_ready(c);
	if (c->rq_head && c->rq_head->npending == 0)
		drain_ready(c);
}

void conn_enqueue(struct conn *c, struct request *r)
{
	r->next = NULL;
	if (c->rq_tail)
		c->rq_tail->next = r;
	else
		c->rq_head = r;
	c->rq_tail = r;
	c->nreq++;
	c->req_bytes += r->pinned;
	if (is_io(r)) {
		if (!c->rq_unstarted)
			c->rq_unstarted = r;
		start_ready(c);
	} else if (r == c->rq_head) {
		drain_ready(c);
	}
}

void conn_reply(struct conn *c, const char *text, size_t len)
{
	struct request *r;

	/* Nothing ahead of it: straight to the output. */
	if (!c->rq_head) {
		if (conn_out_bytes(c, text, len) < 0)
			c->broken = true;
		wpending_add(c);
		return;
	}
	r = request_new_text(c, text, len);
	if (!r) {
		conn_break(c);
		return;
	}
	conn_enqueue(c, r);
}

void conn_local(struct conn *c, uint8_t op)
{
	struct request *r = request_new_local(c, op);

	if (!r)
		conn_break(c);
	else
		conn_enqueue(c, r);
}

void conn_stop_reading(struct conn *c)
{
	c->stop_reading = true;
	wpending_add(c);
}

void conn_break(struct conn *c)
{
	c->broken = true;
	wpending_add(c);
}

static bool should_pause(const struct conn *c)
{
	const struct config *cfg = &c->srv->cfg;

	/* Requests waiting and replies unsent both pin memory: together they
	 * are bounded by max_output_bytes, whatever the client sends. */
	return c->nreq >= (uint32_t)cfg->max_pending_requests ||
	       c->out_bytes + c->req_bytes >= (size_t)cfg->max_output_bytes;
}

static void timer_update(struct conn *c);

/* Parse and dispatch what rbuf holds, until it is used up or the client must
 * wait (backpressure, quit, fatal error). */
static void conn_process(struct conn *c)
{
	size_t off = 0;

	while (off < c->rlen && !c->stop_reading && !c->broken) {
		size_t used = 0;

		if (should_pause(c)) {
			c->paused = true;
			c->srv->stats.backpressure_pauses++;
			log_limited(
			    &c->srv->log, LVL_INFO, &c->srv->ll->backpressure,
			    "%s: not read until it takes its replies (%u unanswered, %zu bytes "
			    "queued)",
			    c->name, c->nreq, c->out_bytes);
			ev_io_stop(c->srv->loop, &c->rio);
			break;
		}
		bool done = c->ops->feed(c, c->rbuf + off, c->rlen - off, &used);
		off += used;
		if (!done)
			break;
	}
	if (off) {
		memmove(c->rbuf, c->rbuf + off, c->rlen - off);
		c->rlen -= off;
	}
	/* Bytes left over (or a data block under way) are an unfinished request,
	 * unless parsing merely paused on complete ones. */
	if ((c->rlen > 0 && !c->paused) || c->ops->partial(c)) {
		if (c->partial_since == 0) {
			c->partial_since = ev_now(c->srv->loop);
			timer_update(c);
		}
	} else {
		c->partial_since = 0;
	}
}

/* One read and what it brings. Returns 1 if bytes came, 0 if none are
 * there now or the client half-closed, -1 if the connection was closed. */
static int conn_read(struct conn *c)
{
	size_t want = c->ops->max_line(c) + READ_CHUNK;
	ssize_t n;

	/* Start small and double when a read fills the buffer: 10 000 mostly
	 * idle connections must not each pin a 16 KiB buffer, while a busy
	 * pipelining client grows to full size within a few reads. */
	if (c->rlen == c->rcap) {
		size_t cap = c->rcap ? c->rcap * 2 : READ_MIN;
		char *nb;
		if (cap > want)
			cap = want;
		/* A reload may have lowered the line limit below what is
		 * buffered: a full buffer must never read as end of file. The
		 * parser refuses the overlong line on the next pass. */
		if (cap <= c->rlen)
			cap = c->rlen + READ_CHUNK;
		nb = realloc(c->rbuf, cap);
		if (!nb) {
			conn_close(c, "out of memory");
			return -1;
		}
		c->rbuf = nb;
		c->rcap = cap;
	}
	n = read(c->fd, c->rbuf + c->rlen, c->rcap - c->rlen);
	if (n < 0) {
		if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
			return 0;
		conn_close(c, strerror(errno));
		return -1;
	}
	if (n == 0) {
		/* Half-close: still answer everything asked so far. */
		c->eof = true;
		ev_io_stop(c->srv->loop, &c->rio);
		wpending_add(c);
		return 0;
	}
	c->srv->stats.bytes_read += (uint64_t)n;
	c->rlen += (size_t)n;
	c->last_active = ev_now(c->srv->loop);
	conn_process(c);
	return 1;
}

static void read_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	(void)loop;
	(void)revents;
	conn_read(w->data);
}

/* Drop arena bytes already sent. Needed because the arena only resets when
 * the queue empties, which a client that reads slowly but steadily may never
 * let happen. */
static void arena_compact(struct conn *c)
{
	size_t base = c->alen;

	for (size_t i = c->ihead; i < c->nitems; i++)
		if (!c->items[i].v) {
			base = c->items[i].off; /* arena items are in offset order */
			break;
		}
	if (base < 65536 || base < c->alen / 2)
		return;
	memmove(c->arena, c->arena + base, c->alen - base);
	c->alen -= base;
	for (size_t i = c->ihead; i < c->nitems; i++)
		if (!c->items[i].v)
			c->items[i].off -= base;
}

/* Returns -1 if the client was closed. */
static int conn_write(struct conn *c)
{
	struct server *srv = c->srv;

	if (c->broken) {
		conn_close(c, "reply could not be built");
		return -1;
	}
	while (c->ihead < c->nitems) {
		struct iovec iov[IOV_BATCH];
		int cnt = 0;
		ssize_t n;

		for (size_t i = c->ihead; i < c->nitems && cnt < IOV_BATCH; i++, cnt++) {
			struct out_item *it = &c->items[i];
			iov[cnt].iov_base = it->v ? it->v->data + it->off : c->arena + it->off;
			iov[cnt].iov_len = it->len;
		}
		n = writev(c->fd, iov, cnt);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK) {
				arena_compact(c);
				ev_io_start(srv->loop, &c->wio);
				return 0;
			}
			conn_close(c, strerror(errno));
			return -1;
		}
		srv->stats.bytes_written += (uint64_t)n;
		c->out_bytes -= (size_t)n;
		while (n > 0) {
			struct out_item *it = &c->items[c->ihead];
			if ((size_t)n < it->len) {
				it->off += (size_t)n;
				it->len -= (size_t)n;
				break;
			}
			n -= (ssize_t)it->len;
			value_unref(it->v);
			c->ihead++;
		}
	}
	c->ihead = c->nitems = 0;
	c->alen = 0;
	ev_io_stop(srv->loop, &c->wio);
	/* All answered: a client that said quit, sent a fatal line or half-closed
	 * is done. (Bytes left after a FIN are an unfinished line, unless reading
	 * was paused with complete lines still buffered.) */
	if (!c->rq_head && (c->stop_reading || (c->eof && !c->paused))) {
		conn_close(c, NULL);
		return -1;
	}
	return 0;
}

/* After output drained: take up reading again if backpressure had stopped it. */
static bool conn_resume(struct conn *c)
{
	if (!c->paused || should_pause(c))
		return false;
	c->paused = false;
	if (!c->eof && !c->stop_reading)
		ev_io_start(c->srv->loop, &c->rio);
	conn_process(c);
	if (c->eof)
		wpending_add(c); /* may be finished now */
	return true;
}

static void write_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct conn *c = w->data;

	(void)loop;
	(void)revents;
	if (conn_write(c) == 0)
		conn_resume(c);
}

bool conn_write_pending(struct server *srv)
{
	bool parsed = false;
	struct conn *c;

	while ((c = srv->wpending)) {
		wpending_del(c);
		if (conn_write(c) == 0 && conn_resume(c))
			parsed = true;
	}
	return parsed;
}

/* One timer per client for both timeouts; it is moved only when it fires
 * (ev.pod, "be smart about timeouts"), not on every read. */
static double next_deadline(const struct conn *c)
{
	const struct config *cfg = &c->srv->cfg;
	double d = 0;

	if (cfg->idle_timeout_s > 0)
		d = c->last_active + (double)cfg->idle_timeout_s;
	if (cfg->request_timeout_ms > 0 && c->partial_since > 0) {
		double p = c->partial_since + cfg->request_timeout_ms / 1000.0;
		if (d == 0 || p < d)
			d = p;
	}
	return d;
}

static void timer_update(struct conn *c)
{
	struct ev_loop *loop = c->srv->loop;
	double d = next_deadline(c), after;

	if (d == 0)
		return;
	after = d - ev_now(loop);
	if (ev_is_active(&c->timer)) {
		if (ev_timer_remaining(loop, &c->timer) <= after)
			return;
		ev_timer_stop(loop, &c->timer);
	}
	ev_timer_set(&c->timer, after > 0 ? after : 0., 0.);
	ev_timer_start(loop, &c->timer);
}

static void timer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct conn *c = w->data;
	const struct config *cfg = &c->srv->cfg;
	double now = ev_now(loop);

	(void)revents;
	if (cfg->request_timeout_ms > 0 && c->partial_since > 0 &&
	    now >= c->partial_since + cfg->request_timeout_ms / 1000.0) {
		c->srv->stats.request_timeouts++;
		log_limited(&c->srv->log, LVL_INFO, &c->srv->ll->request_timeout,
		            "%s: closing: request not completed within %ld ms", c->name,
		            cfg->request_timeout_ms);
		conn_close(c, "request timeout");
		return;
	}
	/* Waiting on our own upstream, or on the client to read, is not idleness. */
	if (cfg->idle_timeout_s > 0 && now >= c->last_active + (double)cfg->idle_timeout_s) {
		if (!c->rq_head && c->ihead == c->nitems) {
			c->srv->stats.idle_timeouts++;
			conn_close(c, "idle timeout");
			return;
		}
		c->last_active = now;
	}
	timer_update(c);
}

struct conn *conn_new(struct server *srv, int fd, const char *peer, const struct session_ops *ops)
{
	struct conn *c = calloc(1, sizeof(*c));

	if (!c) {
		close(fd);
		return NULL;
	}
	c->srv = srv;
	c->fd = fd;
	c->ops = ops;
	if (ops->init(c) < 0) {
		free(c);
		close(fd);
		return NULL;
	}
	/* Unique in the process: each worker numbers 1 + id, 1 + id + n, ... */
	c->id = srv->next_client_id++ * srv->nthreads + srv->id + 1;
	snprintf(c->name, sizeof(c->name), "client %" PRIu64 " (%s)", c->id, peer);
	ev_io_init(&c->rio, read_cb, fd, EV_READ);
	ev_io_init(&c->wio, write_cb, fd, EV_WRITE);
	ev_init(&c->timer, timer_cb);
	c->rio.data = c->wio.data = c->timer.data = c;
	c->last_active = ev_now(srv->loop);
	c->next = srv->conns;
	if (srv->conns)
		srv->conns->prev = c;
	srv->conns = c;
	srv->stats.curr_connections++;
	srv->stats.total_connections++;
	ev_io_start(srv->loop, &c->rio);
	timer_update(c);
	log_debug(&srv->log, "%s: connected", c->name);
	return c;
}

void conn_trim(struct conn *c, ev_tstamp idle_since)
{
	if (c->last_active > idle_since)
		return;
	if (c->rlen == 0 && c->rbuf) {
		free(c->rbuf);
		c->rbuf = NULL;
		c->rcap = 0;
	}
	if (c->ihead == c->nitems && (c->items || c->arena)) {
		free(c->items);
		free(c->arena);
		c->items = NULL;
		c->arena = NULL;
		c->ihead = c->nitems = c->icap = 0;
		c->alen = c->acap = 0;
	}
}

void conn_configure(struct conn *c)
{
	c->ops->configure(c);
	/* A new idle timeout may end sooner than the armed timer. */
	timer_update(c);
}

void conn_finish(struct conn *c)
{
	/* What the client sent before the stop may still sit in the socket
	 * buffer: read and answer it too (bounded, and not past backpressure),
	 * so that nothing received is dropped and the close sends FIN, not RST. */
	for (int i = 0; i < 64 && !c->eof && !c->stop_reading && !c->paused; i++) {
		int r = conn_read(c);
		if (r < 0)
			return;
		if (r == 0)
			break;
	}
	c->eof = true;
	ev_io_stop(c->srv->loop, &c->rio);
	wpending_add(c);
}

void conn_close(struct conn *c, const char *why)
{
	struct server *srv = c->srv;
	struct request *r, *next;

	log_debug(&srv->log, "%s: closed%s%s", c->name, why ? ": " : "", why ? why : "");
	ev_io_stop(srv->loop, &c->rio);
	ev_io_stop(srv->loop, &c->wio);
	ev_timer_stop(srv->loop, &c->timer);
	wpending_del(c);
	for (r = c->rq_head; r; r = next) {
		next = r->next;
		if (r->kind == REQ_WRITE && r->started && r->npending) {
			/* The backend holds it: its outcome frees it. */
			r->conn = NULL;
			continue;
		}
		for (uint32_t i = 0; r->started && i < r->nslots; i++)
			if (r->slots[i].state == SLOT_PENDING)
				shard_leave(srv, &r->slots[i]);
		request_free(r);
	}
	for (size_t i = c->ihead; i < c->nitems; i++)
		value_unref(c->items[i].v);
	if (c->prev)
		c->prev->next = c->next;
	else
		srv->conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	close(c->fd);
	c->ops->destroy(c);
	free(c->rbuf);
	free(c->items);
	free(c->arena);
	free(c);
	srv->stats.curr_connections--;
	server_client_release(srv);
	server_client_gone(srv);
}
