/*
 * upstream_memcache: pipelined memcached connections.
 *
 * Each connection has one write buffer of encoded `gets` lines and one queue
 * of batches in the order their lines were encoded; replies are matched to
 * the head of that queue. A single timer per connection serves as connect
 * timeout, reply deadline of the oldest batch, or reconnect backoff,
 * according to the connection's state.
 */
#include "upstream_memcache.h"

#include "addr.h"
#include "batch.h"
#include "inflight.h"
#include "log.h"
#include "proto_mcreply.h"
#include "stats.h"
#include "value.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

enum { MC_DOWN = 0, MC_CONNECTING, MC_UP };

#define BACKOFF_MIN 0.05
#define BACKOFF_MAX 1.0
#define READ_CHUNK 16384

struct mc_server;

struct mc_conn {
	struct mc_server *srv;
	int fd;
	int state;
	int write_errno; /* a write error seen where failing at once is unsafe */
	ev_io rio, wio;
	ev_timer timer;
	double backoff;
	bool was_up;		   /* connected since the last failure */
	struct batch *head, *tail; /* encoded batches, oldest first */
	uint32_t nbatches;
	char *wbuf;
	size_t wlen, woff, wcap;
	char *rbuf;
	size_t rlen, rcap, rscan;
	struct value *cur; /* value whose data is being read */
	uint32_t cur_pos;
	size_t cur_got;
};

struct mc_server {
	struct mc_upstream *up;
	struct addr addr;
	struct mc_conn *conns;
	uint32_t nconns;
	uint32_t rr;
};

struct mc_upstream {
	struct upstream base;
	struct ev_loop *loop;
	struct upstream_settings set;
	struct batcher *batcher;
	struct stats *stats;
	const struct log *log;
	struct mc_server *servers;
	uint32_t nservers;
	bool draining; /* replaced by a newer backend on reload */
};

static void conn_connect(struct mc_conn *c);
static void conn_has_room(struct mc_conn *c);
static void conn_fail(struct mc_conn *c, enum batch_error why, const char *text);
static void conn_write(struct mc_conn *c);

static struct mc_upstream *up_of(struct mc_conn *c)
{
	return c->srv->up;
}

static void timer_arm(struct mc_conn *c, double after)
{
	struct ev_loop *loop = up_of(c)->loop;

	ev_timer_stop(loop, &c->timer);
	ev_timer_set(&c->timer, after > 0 ? after : 0., 0.);
	ev_timer_start(loop, &c->timer);
}

/* Reply deadline of the oldest batch; the timer is only moved when it fires
 * early (ev.pod, "be smart about timeouts"). */
static void timer_arm_reply(struct mc_conn *c)
{
	struct mc_upstream *u = up_of(c);

	if (c->head && !ev_is_active(&c->timer))
		timer_arm(c, c->head->sent_at + u->set.timeout_ms / 1000.0 - ev_now(u->loop));
}

static void conn_reset(struct mc_conn *c)
{
	struct ev_loop *loop = up_of(c)->loop;

	ev_io_stop(loop, &c->rio);
	ev_io_stop(loop, &c->wio);
	ev_timer_stop(loop, &c->timer);
	if (c->fd >= 0)
		close(c->fd);
	c->fd = -1;
	c->state = MC_DOWN;
	c->write_errno = 0;
	c->wlen = c->woff = 0;
	c->rlen = c->rscan = 0;
	value_unref(c->cur);
	c->cur = NULL;
}

static void conn_fail(struct mc_conn *c, enum batch_error why, const char *text)
{
	struct mc_upstream *u = up_of(c);
	struct batch *bt = c->head, *next;
	uint32_t n = c->nbatches;
	const char *what = why == BATCH_TIMEOUT          ? "timeout"
	                   : why == BATCH_PROTOCOL       ? "protocol error"
	                   : why == BATCH_UPSTREAM_ERROR ? "error reply"
	                                                 : "unavailable";

	/* A server that keeps refusing is logged once, not at every retry. */
	if (n > 0 || c->backoff == 0)
		log_warn(u->log, "upstream %s: %s%s%s; %u batches failed", c->srv->addr.name, what,
		         text ? ": " : "", text ? text : "", n);
	c->head = c->tail = NULL;
	c->nbatches = 0;
	conn_reset(c);
	if (u->draining) {
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
	for (; bt; bt = next) {
		next = bt->next;
		bt->next = NULL;
		batch_fail(u->batcher, bt, why, text, c);
	}
	/* Its queue is empty now; if it is reconnecting, it can take batches. */
	if (c->state != MC_DOWN)
		conn_has_room(c);
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

static int encode(struct mc_conn *c, struct batch *bt)
{
	size_t need = 6;

	for (uint32_t i = 0; i < bt->n; i++)
		need += 1 + bt->e[i]->keylen;
	if (buf_reserve(&c->wbuf, &c->wcap, c->wlen + need) < 0)
		return -1;
	/* Only keys that passed the client parser's checks get here. */
	memcpy(c->wbuf + c->wlen, "gets", 4);
	c->wlen += 4;
	for (uint32_t i = 0; i < bt->n; i++) {
		c->wbuf[c->wlen++] = ' ';
		memcpy(c->wbuf + c->wlen, bt->e[i]->key, bt->e[i]->keylen);
		c->wlen += bt->e[i]->keylen;
	}
	c->wbuf[c->wlen++] = '\r';
	c->wbuf[c->wlen++] = '\n';
	return 0;
}

/*
 * The least loaded connection that is up, round-robin among equals; else one
 * still connecting. The connection a retry comes from is the last choice.
 * Unless forced, a connection already at pipeline_depth is not chosen, and
 * *busy tells that one was skipped for that reason only.
 */
static struct mc_conn *pick(struct mc_server *s, const void *avoid, uint32_t depth, bool force,
                            bool *busy)
{
	struct mc_conn *best = NULL;

	*busy = false;
	for (int pass = 0; pass < 2 && !best; pass++) {
		for (uint32_t k = 0; k < s->nconns; k++) {
			struct mc_conn *c = &s->conns[(s->rr + k) % s->nconns];
			if (c == avoid || c->state == MC_DOWN)
				continue;
			if (!force && c->nbatches >= depth) {
				*busy = true;
				continue;
			}
			if (!best || (c->state == MC_UP && best->state != MC_UP) ||
			    (c->state == best->state && c->nbatches < best->nbatches))
				best = c;
		}
		avoid = NULL;
	}
	s->rr++;
	if (best)
		*busy = false;
	return best;
}

static bool mc_submit(struct upstream *base, struct batch *bt, bool force)
{
	struct mc_upstream *u = (struct mc_upstream *)base;
	struct mc_server *s = &u->servers[bt->server];
	bool busy;
	struct mc_conn *c = pick(s, bt->avoid, u->set.pipeline_depth, force, &busy);

	if (!c && busy)
		return false;
	if (!c) {
		/* Every connection is waiting out its backoff: fail fast rather
		 * than queue behind a server that is down. */
		batch_fail(u->batcher, bt, BATCH_UNAVAILABLE, NULL, NULL);
		return true;
	}
	if (encode(c, bt) < 0) {
		batch_fail(u->batcher, bt, BATCH_UNAVAILABLE, NULL, NULL);
		return true;
	}
	bt->sent_at = ev_now(u->loop);
	bt->next = NULL;
	bt->cursor = 0;
	if (c->tail)
		c->tail->next = bt;
	else
		c->head = bt;
	c->tail = bt;
	c->nbatches++;
	if (c->state == MC_UP) {
		conn_write(c);
		timer_arm_reply(c);
	}
	return true;
}

/* This connection has room again: let a waiting batch of its server go. */
static void conn_has_room(struct mc_conn *c)
{
	struct mc_upstream *u = up_of(c);

	if (!u->draining && c->nbatches < u->set.pipeline_depth)
		batch_ready(u->batcher, (uint32_t)(c->srv - u->servers));
}

/* Writes what it can; errors are left to the write watcher, which runs in a
 * clean context, so that submit never fails batches re-entrantly. */
static void conn_write(struct mc_conn *c)
{
	struct ev_loop *loop = up_of(c)->loop;

	while (c->woff < c->wlen) {
		ssize_t n = write(c->fd, c->wbuf + c->woff, c->wlen - c->woff);
		if (n > 0) {
			c->woff += (size_t)n;
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK) {
			c->write_errno = errno;
			ev_feed_event(loop, &c->wio, EV_WRITE);
		}
		ev_io_start(loop, &c->wio);
		return;
	}
	c->wlen = c->woff = 0;
	ev_io_stop(loop, &c->wio);
}

static void on_connected(struct mc_conn *c)
{
	struct mc_upstream *u = up_of(c);
	int err = 0;
	socklen_t len = sizeof(err);

	if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
		err = errno;
	if (err) {
		log_debug(u->log, "upstream %s: connect: %s", c->srv->addr.name, strerror(err));
		conn_fail(c, BATCH_UNAVAILABLE, NULL);
		return;
	}
	if (c->backoff > 0)
		log_info(u->log, "upstream %s: connected", c->srv->addr.name);
	c->state = MC_UP;
	c->was_up = true;
	c->backoff = 0;
	ev_timer_stop(u->loop, &c->timer);
	ev_io_start(u->loop, &c->rio);
	/* Batches queued while connecting are only now sent. */
	for (struct batch *bt = c->head; bt; bt = bt->next)
		bt->sent_at = ev_now(u->loop);
	conn_write(c);
	timer_arm_reply(c);
}

static void write_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct mc_conn *c = w->data;

	(void)loop;
	(void)revents;
	if (c->state == MC_CONNECTING) {
		on_connected(c);
		return;
	}
	if (c->write_errno) {
		char msg[128];
		snprintf(msg, sizeof(msg), "write: %s", strerror(c->write_errno));
		conn_fail(c, BATCH_UNAVAILABLE, msg);
		return;
	}
	conn_write(c);
}

static void conn_connect(struct mc_conn *c)
{
	struct mc_upstream *u = up_of(c);
	int one = 1;

	c->fd = addr_socket(&c->srv->addr);
	if (c->fd < 0) {
		log_error(u->log, "upstream %s: socket: %s", c->srv->addr.name, strerror(errno));
		conn_fail(c, BATCH_UNAVAILABLE, NULL);
		return;
	}
	if (c->srv->addr.sa.ss_family != AF_UNIX)
		setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	ev_io_set(&c->rio, c->fd, EV_READ);
	ev_io_set(&c->wio, c->fd, EV_WRITE);
	c->state = MC_CONNECTING;
	if (connect(c->fd, (struct sockaddr *)&c->srv->addr.sa, c->srv->addr.len) < 0 &&
	    errno != EINPROGRESS) {
		log_debug(u->log, "upstream %s: connect: %s", c->srv->addr.name, strerror(errno));
		conn_fail(c, BATCH_UNAVAILABLE, NULL);
		return;
	}
	ev_io_start(u->loop, &c->wio);
	timer_arm(c, u->set.connect_timeout_ms / 1000.0);
}

static void timer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct mc_conn *c = w->data;
	struct mc_upstream *u = up_of(c);
	double left;

	(void)loop;
	(void)revents;
	switch (c->state) {
	case MC_DOWN:
		conn_connect(c);
		return;
	case MC_CONNECTING:
		conn_fail(c, BATCH_UNAVAILABLE, "connect timeout");
		return;
	default:
		if (!c->head)
			return;
		left = c->head->sent_at + u->set.timeout_ms / 1000.0 - ev_now(u->loop);
		if (left > 0)
			timer_arm(c, left);
		else
			conn_fail(c, BATCH_TIMEOUT, NULL);
	}
}

/* Returns 0 to go on, -1 if the connection failed. */
static int handle_line(struct mc_conn *c, const char *line, size_t len)
{
	struct mc_upstream *u = up_of(c);
	struct batch *bt = c->head;
	struct mcr_line r;
	char text[200];
	int pos;

	if (!bt) {
		conn_fail(c, BATCH_PROTOCOL, "reply without a request");
		return -1;
	}
	switch (mcr_parse_line(line, len, &r)) {
	case MCR_VALUE:
		pos = batch_match(bt, r.key, r.keylen);
		if (pos < 0) {
			conn_fail(c, BATCH_PROTOCOL, "VALUE for a key not asked for");
			return -1;
		}
		if (r.bytes > MC_MAX_VALUE_BYTES) {
			conn_fail(c, BATCH_PROTOCOL, "value too large");
			return -1;
		}
		c->cur = value_new((size_t)r.bytes, &u->stats->value_bytes);
		if (!c->cur) {
			conn_fail(c, BATCH_UNAVAILABLE, "out of memory");
			return -1;
		}
		c->cur->flags = r.flags;
		c->cur->cas = r.cas;
		c->cur_pos = (uint32_t)pos;
		c->cur_got = 0;
		return 0;
	case MCR_END:
		c->head = bt->next;
		if (!c->head)
			c->tail = NULL;
		c->nbatches--;
		hist_add(&u->stats->batch_seconds, ev_now(u->loop) - bt->sent_at);
		log_debug(u->log, "batch: server %s, %u keys, %.3f ms", c->srv->addr.name, bt->n,
		          (ev_now(u->loop) - bt->sent_at) * 1000.0);
		batch_complete(u->batcher, bt);
		if (u->draining && c->nbatches == 0) {
			conn_reset(c);
			return -1; /* stop reading: the connection is gone */
		}
		conn_has_room(c);
		return 0;
	case MCR_ERROR:
	case MCR_CLIENT_ERROR:
	case MCR_SERVER_ERROR: {
		size_t n = 0;
		/* The text reaches clients: keep it one printable line. */
		for (size_t i = 0; i < r.textlen && n < sizeof(text) - 1; i++) {
			unsigned char ch = (unsigned char)r.text[i];
			text[n++] = (ch < 0x20 || ch == 0x7f) ? '?' : (char)ch;
		}
		text[n] = '\0';
		if (n == 0)
			snprintf(text, sizeof(text), "%s",
			         r.kind == MCR_ERROR ? "ERROR" : "(no text)");
		conn_fail(c, BATCH_UPSTREAM_ERROR, text);
		return -1;
	}
	default:
		conn_fail(c, BATCH_PROTOCOL, "unparsable reply line");
		return -1;
	}
}

/* Consume what rbuf holds. Returns -1 if the connection failed. */
static int process(struct mc_conn *c)
{
	size_t off = 0;

	for (;;) {
		if (c->cur) {
			size_t need = c->cur->len + 2 - c->cur_got;
			size_t take = c->rlen - off < need ? c->rlen - off : need;
			memcpy(c->cur->data + c->cur_got, c->rbuf + off, take);
			c->cur_got += take;
			off += take;
			if (c->cur_got < c->cur->len + 2)
				break;
			if (c->cur->data[c->cur->len] != '\r' ||
			    c->cur->data[c->cur->len + 1] != '\n') {
				conn_fail(c, BATCH_PROTOCOL, "value data not followed by CRLF");
				return -1;
			}
			batch_value(c->head, c->cur_pos, c->cur);
			c->cur = NULL;
			continue;
		}
		char *nl = memchr(c->rbuf + off + c->rscan, '\n', c->rlen - off - c->rscan);
		if (!nl) {
			c->rscan = c->rlen - off;
			if (c->rscan > MCR_MAX_LINE) {
				conn_fail(c, BATCH_PROTOCOL, "reply line too long");
				return -1;
			}
			break;
		}
		c->rscan = 0;
		size_t len = (size_t)(nl - (c->rbuf + off));
		if (handle_line(c, c->rbuf + off, len) < 0)
			return -1;
		off += len + 1;
	}
	if (off) {
		memmove(c->rbuf, c->rbuf + off, c->rlen - off);
		c->rlen -= off;
	}
	return 0;
}

static void read_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct mc_conn *c = w->data;
	struct mc_upstream *u = up_of(c);
	ssize_t n;

	(void)loop;
	(void)revents;
	/* Large values skip the line buffer and land in their final place. */
	if (c->cur && c->rlen == 0 && c->cur->len + 2 - c->cur_got > READ_CHUNK) {
		n = read(c->fd, c->cur->data + c->cur_got, c->cur->len + 2 - c->cur_got);
		if (n > 0) {
			c->cur_got += (size_t)n;
			if (c->cur_got == c->cur->len + 2)
				process(c); /* checks the CRLF and hands the value over */
			return;
		}
	} else {
		if (buf_reserve(&c->rbuf, &c->rcap, c->rlen + READ_CHUNK) < 0) {
			conn_fail(c, BATCH_UNAVAILABLE, "out of memory");
			return;
		}
		n = read(c->fd, c->rbuf + c->rlen, c->rcap - c->rlen);
		if (n > 0) {
			c->rlen += (size_t)n;
			process(c);
			return;
		}
	}
	if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
		return;
	if (n == 0 && !c->head && !c->cur) {
		log_info(u->log, "upstream %s: connection closed by server", c->srv->addr.name);
		conn_fail(c, BATCH_UNAVAILABLE, NULL);
		return;
	}
	conn_fail(c, BATCH_UNAVAILABLE, n == 0 ? "connection closed mid-reply" : strerror(errno));
}

static void mc_configure(struct upstream *base, const struct upstream_settings *s)
{
	((struct mc_upstream *)base)->set = *s;
}

static uint32_t mc_outstanding(const struct upstream *base)
{
	const struct mc_upstream *u = (const struct mc_upstream *)base;
	uint32_t n = 0;

	for (uint32_t i = 0; i < u->nservers; i++)
		for (uint32_t k = 0; k < u->servers[i].nconns; k++)
			n += u->servers[i].conns[k].nbatches;
	return n;
}

static void mc_drain(struct upstream *base)
{
	struct mc_upstream *u = (struct mc_upstream *)base;

	u->draining = true;
	/* Idle connections go now; busy ones when their last reply is in. */
	for (uint32_t i = 0; i < u->nservers; i++)
		for (uint32_t k = 0; k < u->servers[i].nconns; k++)
			if (u->servers[i].conns[k].nbatches == 0)
				conn_reset(&u->servers[i].conns[k]);
}

static void mc_destroy(struct upstream *base)
{
	struct mc_upstream *u = (struct mc_upstream *)base;

	for (uint32_t i = 0; i < u->nservers; i++) {
		for (uint32_t k = 0; k < u->servers[i].nconns; k++) {
			struct mc_conn *c = &u->servers[i].conns[k];
			struct batch *bt, *next;
			conn_reset(c);
			for (bt = c->head; bt; bt = next) {
				next = bt->next;
				free(bt);
			}
			free(c->wbuf);
			free(c->rbuf);
		}
		free(u->servers[i].conns);
	}
	free(u->servers);
	free(u);
}

static const struct upstream_ops mc_ops = {
    .submit = mc_submit,
    .configure = mc_configure,
    .drain = mc_drain,
    .outstanding = mc_outstanding,
    .destroy = mc_destroy,
};

struct upstream *upstream_memcache_new(struct ev_loop *loop, const struct addr_list *servers,
                                       uint32_t connections, const struct upstream_settings *set,
                                       struct batcher *b, struct stats *st, const struct log *lg)
{
	struct mc_upstream *u = calloc(1, sizeof(*u));

	if (!u)
		return NULL;
	u->base.ops = &mc_ops;
	u->loop = loop;
	u->set = *set;
	u->batcher = b;
	u->stats = st;
	u->log = lg;
	u->nservers = (uint32_t)servers->n;
	u->servers = calloc(servers->n, sizeof(*u->servers));
	if (!u->servers) {
		free(u);
		return NULL;
	}
	for (uint32_t i = 0; i < u->nservers; i++) {
		struct mc_server *s = &u->servers[i];
		s->up = u;
		s->addr = servers->v[i];
		s->nconns = connections;
		s->conns = calloc(connections, sizeof(*s->conns));
		if (!s->conns) {
			u->nservers = i;
			mc_destroy(&u->base);
			return NULL;
		}
		for (uint32_t k = 0; k < connections; k++) {
			struct mc_conn *c = &s->conns[k];
			c->srv = s;
			c->fd = -1;
			ev_init(&c->rio, read_cb);
			ev_init(&c->wio, write_cb);
			ev_init(&c->timer, timer_cb);
			c->rio.data = c->wio.data = c->timer.data = c;
		}
	}
	/* Connect eagerly so the first request does not pay for it. */
	for (uint32_t i = 0; i < u->nservers; i++)
		for (uint32_t k = 0; k < u->servers[i].nconns; k++)
			conn_connect(&u->servers[i].conns[k]);
	return &u->base;
}
