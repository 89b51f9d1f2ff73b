/*
 * client: the client side of the pipeline.
 *
 *   read() -> rbuf -> pc_parse -> request (slots) -> inflight_join
 *                                      ...
 *   slot filled -> client_request_ready -> compose head requests -> items
 *   prepare watcher -> client_write_pending -> writev(items)
 *
 * Replies leave strictly in request order: a completed request behind an
 * unfinished one waits in the queue.
 */
#include "client.h"

#include "inflight.h"
#include "log.h"
#include "request.h"
#include "server.h"
#include "stats.h"
#include "value.h"

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

static void client_process(struct client *c);

static void wpending_add(struct client *c)
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

static void wpending_del(struct client *c)
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

static int items_reserve(struct client *c)
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

static int out_bytes(struct client *c, const char *p, size_t len)
{
	struct out_item *last;

	if (items_reserve(c) < 0)
		return -1;
	if (c->alen + len > c->acap) {
		size_t cap = c->acap ? c->acap : ARENA_MIN;
		while (cap < c->alen + len)
			cap *= 2;
		char *na = realloc(c->arena, cap);
		if (!na)
			return -1;
		c->arena = na;
		c->acap = cap;
	}
	memcpy(c->arena + c->alen, p, len);
	last = c->nitems > c->ihead ? &c->items[c->nitems - 1] : NULL;
	if (last && !last->v && last->off + last->len == c->alen)
		last->len += len;
	else
		c->items[c->nitems++] = (struct out_item){NULL, c->alen, len};
	c->alen += len;
	c->out_bytes += len;
	return 0;
}

/* Takes over the caller's reference to v. */
static int out_value(struct client *c, struct value *v)
{
	if (items_reserve(c) < 0) {
		value_unref(v);
		return -1;
	}
	c->items[c->nitems++] = (struct out_item){v, 0, v->len + 2};
	c->out_bytes += v->len + 2;
	return 0;
}

/* Decimal digits of v at p; returns the end. (snprintf showed in profiles.) */
static char *put_u64(char *p, uint64_t v)
{
	char tmp[20];
	int n = 0;

	do {
		tmp[n++] = (char)('0' + v % 10);
		v /= 10;
	} while (v);
	while (n)
		*p++ = tmp[--n];
	return p;
}

/* "VALUE <key> <flags> <bytes>[ <cas>]\r\n" into hdr (at least 320 bytes). */
static size_t value_header(char *hdr, const struct slot *s, const struct value *v, bool cas)
{
	char *p = hdr;

	memcpy(p, "VALUE ", 6);
	p += 6;
	memcpy(p, s->key, s->keylen);
	p += s->keylen;
	*p++ = ' ';
	p = put_u64(p, v->flags);
	*p++ = ' ';
	p = put_u64(p, v->len);
	if (cas) {
		*p++ = ' ';
		p = put_u64(p, v->cas);
	}
	*p++ = '\r';
	*p++ = '\n';
	return (size_t)(p - hdr);
}

static int compose_get(struct client *c, struct request *r)
{
	char hdr[320];

	hist_add(&c->srv->stats.request_seconds, ev_now(c->srv->loop) - r->started);
	for (uint32_t i = 0; i < r->nslots; i++) {
		if (r->slots[i].state == SLOT_ERROR) {
			int n = snprintf(hdr, sizeof(hdr), "SERVER_ERROR %s\r\n",
			                 r->err ? r->err : "upstream unavailable");
			return out_bytes(c, hdr, (size_t)n);
		}
	}
	for (uint32_t i = 0; i < r->nslots; i++) {
		struct slot *s = &r->slots[i];
		struct value *v = s->value;
		if (s->state != SLOT_HIT)
			continue;
		if (out_bytes(c, hdr, value_header(hdr, s, v, r->gets)) < 0)
			return -1;
		s->value = NULL;
		if (out_value(c, v) < 0)
			return -1;
	}
	return out_bytes(c, "END\r\n", 5);
}

static int compose_stats(struct client *c)
{
	struct server *srv = c->srv;
	char buf[4096];
	size_t n = stats_format(&srv->stats, getpid(), (uint64_t)(time(NULL) - srv->started),
	                        COALESCED_VERSION, buf, sizeof(buf));

	return out_bytes(c, buf, n < sizeof(buf) ? n : sizeof(buf));
}

/* Move every completed request at the head of the queue to the output. */
static void drain_ready(struct client *c)
{
	struct request *r;

	while (!c->broken && (r = c->rq_head) && r->npending == 0) {
		int rc;
		c->rq_head = r->next;
		if (!c->rq_head)
			c->rq_tail = NULL;
		c->nreq--;
		if (r->kind == REQ_GET)
			rc = compose_get(c, r);
		else if (r->kind == REQ_STATS)
			rc = compose_stats(c);
		else
			rc = out_bytes(c, r->text, r->textlen);
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

void client_request_ready(struct client *c, struct request *r)
{
	if (r == c->rq_head)
		drain_ready(c);
}

static void stats_detail(struct client *c, const char *arg, size_t len);

static void enqueue(struct client *c, struct request *r)
{
	r->next = NULL;
	if (c->rq_tail)
		c->rq_tail->next = r;
	else
		c->rq_head = r;
	c->rq_tail = r;
	c->nreq++;
}

static void reply_text(struct client *c, const char *text, size_t len)
{
	struct request *r;

	/* Nothing ahead of it: straight to the output. */
	if (!c->rq_head) {
		if (out_bytes(c, text, len) < 0)
			c->broken = true;
		wpending_add(c);
		return;
	}
	r = request_new_text(c, text, len);
	if (!r) {
		c->broken = true;
		wpending_add(c);
		return;
	}
	enqueue(c, r);
}

static void start_get(struct client *c, const struct pc_cmd *cmd)
{
	struct server *srv = c->srv;
	struct request *r;

	srv->stats.cmd_get++;
	srv->stats.get_keys += cmd->nkeys;
	/* Over the value memory budget: refuse new reads until it drains,
	 * rather than let one storm take the machine's memory. */
	if (srv->stats.value_bytes > (uint64_t)srv->cfg.max_memory_mb << 20) {
		static const char oom[] = "SERVER_ERROR out of memory\r\n";
		srv->stats.out_of_memory++;
		log_limited(&srv->log, LVL_WARN, &srv->ll_memory,
		            "max_memory_mb (%ld) reached by values in flight: refusing reads",
		            srv->cfg.max_memory_mb);
		reply_text(c, oom, sizeof(oom) - 1);
		return;
	}
	r = request_new_get(c, cmd->type == PC_GETS, cmd->keys, cmd->nkeys);
	if (!r) {
		static const char oom[] = "SERVER_ERROR out of memory\r\n";
		reply_text(c, oom, sizeof(oom) - 1);
		return;
	}
	r->started = ev_now(srv->loop);
	enqueue(c, r);
	/* One extra pending count while joining, so that slots failing at once
	 * cannot complete (and free) the request under our feet. */
	r->npending++;
	for (uint32_t i = 0; i < r->nslots; i++) {
		if (inflight_join(&srv->inflight, &r->slots[i]) < 0)
			request_slot_error(&r->slots[i], "out of memory");
	}
	if (--r->npending == 0)
		client_request_ready(c, r);
}

static void handle(struct client *c, enum pc_status st, const struct pc_cmd *cmd)
{
	struct server *srv = c->srv;
	char buf[4096];
	size_t n;

	if (cmd->client_error)
		srv->stats.client_errors++;
	if (cmd->unsupported)
		srv->stats.cmd_unsupported++;
	if (cmd->too_many_keys) {
		srv->stats.too_many_keys++;
		log_limited(&srv->log, LVL_INFO, &srv->ll_too_many_keys,
		            "%s: get with more than max_keys_per_request (%ld) keys refused", c->name,
		            srv->cfg.max_keys_per_request);
	}
	if (st == PC_CLOSE) {
		if (cmd->reply)
			reply_text(c, cmd->reply, strlen(cmd->reply));
		log_limited(&srv->log, LVL_INFO, &srv->ll_bad_input, "%s: closing: %s", c->name,
		            cmd->why ? cmd->why : "bad input");
		c->stop_reading = true;
		wpending_add(c);
		return;
	}
	switch (cmd->type) {
	case PC_GET:
	case PC_GETS:
		start_get(c, cmd);
		break;
	case PC_VERSION:
		n = (size_t)snprintf(buf, sizeof(buf), "VERSION %s\r\n", COALESCED_VERSION);
		reply_text(c, buf, n);
		break;
	case PC_QUIT:
		/* Earlier requests are still answered; nothing after quit is read. */
		c->stop_reading = true;
		wpending_add(c);
		break;
	case PC_STATS:
		if (cmd->argslen >= 5 && memcmp(cmd->args, "reset", 5) == 0 &&
		    (cmd->argslen == 5 || cmd->args[5] == ' ')) {
			stats_reset(&srv->stats);
			reply_text(c, "RESET\r\n", 7);
			break;
		}
		if (cmd->argslen >= 6 && memcmp(cmd->args, "detail", 6) == 0 &&
		    (cmd->argslen == 6 || cmd->args[6] == ' ')) {
			stats_detail(c, cmd->args + 6, cmd->argslen - 6);
			break;
		}
		if (cmd->argslen) {
			/* memcached's answer to a sub-command it does not know. */
			reply_text(c, "ERROR\r\n", 7);
			srv->stats.client_errors++;
			break;
		}
		if (!c->rq_head) {
			if (compose_stats(c) < 0)
				c->broken = true;
			wpending_add(c);
		} else {
			struct request *r = request_new_stats(c);
			if (r)
				enqueue(c, r);
			else
				c->broken = true;
		}
		break;
	case PC_REPLY:
		reply_text(c, cmd->reply, strlen(cmd->reply));
		break;
	case PC_SILENT:
		break;
	}
}

/* stats detail on|off|dump, with memcached's replies. */
static void stats_detail(struct client *c, const char *arg, size_t len)
{
	struct stats *st = &c->srv->stats;
	static const char usage[] = "CLIENT_ERROR usage: stats detail on|off|dump\r\n";

	while (len && *arg == ' ') {
		arg++;
		len--;
	}
	while (len && arg[len - 1] == ' ')
		len--;
	if (len == 2 && memcmp(arg, "on", 2) == 0) {
		st->detail.off = false;
		reply_text(c, "OK\r\n", 4);
	} else if (len == 3 && memcmp(arg, "off", 3) == 0) {
		st->detail.off = true;
		reply_text(c, "OK\r\n", 4);
	} else if (len == 4 && memcmp(arg, "dump", 4) == 0) {
		size_t n;
		char *dump = stats_detail_dump(st, &n);
		if (!dump) {
			c->broken = true;
			wpending_add(c);
			return;
		}
		reply_text(c, dump, n);
		free(dump);
	} else {
		st->client_errors++;
		reply_text(c, usage, sizeof(usage) - 1);
	}
}

static bool should_pause(const struct client *c)
{
	const struct config *cfg = &c->srv->cfg;

	return c->nreq >= (uint32_t)cfg->max_pending_requests ||
	       c->out_bytes >= (size_t)cfg->max_output_bytes;
}

static void timer_update(struct client *c);

/* Parse and dispatch what rbuf holds, until it is used up or the client must
 * wait (backpressure, quit, fatal error). */
static void client_process(struct client *c)
{
	size_t off = 0;

	while (off < c->rlen && !c->stop_reading && !c->broken) {
		struct pc_cmd cmd;
		size_t used;
		enum pc_status st;

		if (should_pause(c)) {
			c->paused = true;
			c->srv->stats.backpressure_pauses++;
			log_limited(&c->srv->log, LVL_INFO, &c->srv->ll_backpressure,
			            "%s: not read until it takes its replies (%u unanswered, %zu bytes "
			            "queued)",
			            c->name, c->nreq, c->out_bytes);
			ev_io_stop(c->srv->loop, &c->rio);
			break;
		}
		st = pc_parse(&c->parser, c->rbuf + off, c->rlen - off, &cmd, &used);
		off += used;
		if (st == PC_NEED_MORE)
			break;
		handle(c, st, &cmd);
	}
	if (off) {
		memmove(c->rbuf, c->rbuf + off, c->rlen - off);
		c->rlen -= off;
	}
	/* Bytes left over (or a data block under way) are an unfinished request,
	 * unless parsing merely paused on complete ones. */
	if ((c->rlen > 0 && !c->paused) || c->parser.swallow > 0) {
		if (c->partial_since == 0) {
			c->partial_since = ev_now(c->srv->loop);
			timer_update(c);
		}
	} else {
		c->partial_since = 0;
	}
}

static void read_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct client *c = w->data;
	size_t want = c->srv->cfg.max_line_bytes + READ_CHUNK;
	ssize_t n;

	(void)loop;
	(void)revents;
	/* Start small and double when a read fills the buffer: 10 000 mostly
	 * idle connections must not each pin a 16 KiB buffer, while a busy
	 * pipelining client grows to full size within a few reads. */
	if (c->rlen == c->rcap && c->rcap < want) {
		size_t cap = c->rcap ? c->rcap * 2 : READ_MIN;
		char *nb;
		if (cap > want)
			cap = want;
		nb = realloc(c->rbuf, cap);
		if (!nb) {
			client_close(c, "out of memory");
			return;
		}
		c->rbuf = nb;
		c->rcap = cap;
	}
	n = read(c->fd, c->rbuf + c->rlen, c->rcap - c->rlen);
	if (n < 0) {
		if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
			return;
		client_close(c, strerror(errno));
		return;
	}
	if (n == 0) {
		/* Half-close: still answer everything asked so far. */
		c->eof = true;
		ev_io_stop(c->srv->loop, &c->rio);
		wpending_add(c);
		return;
	}
	c->srv->stats.bytes_read += (uint64_t)n;
	c->rlen += (size_t)n;
	c->last_active = ev_now(c->srv->loop);
	client_process(c);
}

/* Drop arena bytes already sent. Needed because the arena only resets when
 * the queue empties, which a client that reads slowly but steadily may never
 * let happen. */
static void arena_compact(struct client *c)
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
static int client_write(struct client *c)
{
	struct server *srv = c->srv;

	if (c->broken) {
		client_close(c, "reply could not be built");
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
			client_close(c, strerror(errno));
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
		client_close(c, NULL);
		return -1;
	}
	return 0;
}

/* After output drained: take up reading again if backpressure had stopped it. */
static bool client_resume(struct client *c)
{
	if (!c->paused || should_pause(c))
		return false;
	c->paused = false;
	if (!c->eof && !c->stop_reading)
		ev_io_start(c->srv->loop, &c->rio);
	client_process(c);
	if (c->eof)
		wpending_add(c); /* may be finished now */
	return true;
}

static void write_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct client *c = w->data;

	(void)loop;
	(void)revents;
	if (client_write(c) == 0)
		client_resume(c);
}

bool client_write_pending(struct server *srv)
{
	bool parsed = false;
	struct client *c;

	while ((c = srv->wpending)) {
		wpending_del(c);
		if (client_write(c) == 0 && client_resume(c))
			parsed = true;
	}
	return parsed;
}

/* One timer per client for both timeouts; it is moved only when it fires
 * (ev.pod, "be smart about timeouts"), not on every read. */
static double next_deadline(const struct client *c)
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

static void timer_update(struct client *c)
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
	struct client *c = w->data;
	const struct config *cfg = &c->srv->cfg;
	double now = ev_now(loop);

	(void)revents;
	if (cfg->request_timeout_ms > 0 && c->partial_since > 0 &&
	    now >= c->partial_since + cfg->request_timeout_ms / 1000.0) {
		c->srv->stats.request_timeouts++;
		log_limited(&c->srv->log, LVL_INFO, &c->srv->ll_request_timeout,
		            "%s: closing: request not completed within %ld ms", c->name,
		            cfg->request_timeout_ms);
		client_close(c, "request timeout");
		return;
	}
	/* Waiting on our own upstream, or on the client to read, is not idleness. */
	if (cfg->idle_timeout_s > 0 && now >= c->last_active + (double)cfg->idle_timeout_s) {
		if (!c->rq_head && c->ihead == c->nitems) {
			c->srv->stats.idle_timeouts++;
			client_close(c, "idle timeout");
			return;
		}
		c->last_active = now;
	}
	timer_update(c);
}

struct client *client_new(struct server *srv, int fd, const char *peer)
{
	struct client *c = calloc(1, sizeof(*c));

	if (!c) {
		close(fd);
		return NULL;
	}
	c->srv = srv;
	c->fd = fd;
	c->id = ++srv->next_client_id;
	snprintf(c->name, sizeof(c->name), "client %" PRIu64 " (%s)", c->id, peer);
	pc_init(&c->parser, (size_t)srv->cfg.max_line_bytes);
	c->parser.max_keys = (uint32_t)srv->cfg.max_keys_per_request;
	ev_io_init(&c->rio, read_cb, fd, EV_READ);
	ev_io_init(&c->wio, write_cb, fd, EV_WRITE);
	ev_init(&c->timer, timer_cb);
	c->rio.data = c->wio.data = c->timer.data = c;
	c->last_active = ev_now(srv->loop);
	c->next = srv->clients;
	if (srv->clients)
		srv->clients->prev = c;
	srv->clients = c;
	srv->stats.curr_connections++;
	srv->stats.total_connections++;
	ev_io_start(srv->loop, &c->rio);
	timer_update(c);
	log_debug(&srv->log, "%s: connected", c->name);
	return c;
}

void client_trim(struct client *c, ev_tstamp idle_since)
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

void client_finish(struct client *c)
{
	c->eof = true;
	ev_io_stop(c->srv->loop, &c->rio);
	wpending_add(c);
}

void client_close(struct client *c, const char *why)
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
		for (uint32_t i = 0; i < r->nslots; i++)
			if (r->slots[i].state == SLOT_PENDING)
				inflight_leave(&srv->inflight, &r->slots[i]);
		request_free(r);
	}
	for (size_t i = c->ihead; i < c->nitems; i++)
		value_unref(c->items[i].v);
	if (c->prev)
		c->prev->next = c->next;
	else
		srv->clients = c->next;
	if (c->next)
		c->next->prev = c->prev;
	close(c->fd);
	pc_free(&c->parser);
	free(c->rbuf);
	free(c->items);
	free(c->arena);
	free(c);
	srv->stats.curr_connections--;
	server_client_gone(srv);
}
