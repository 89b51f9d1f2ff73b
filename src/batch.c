/* batch: open batches, flush rules, and per-key outcome of sent batches. */
#include "batch.h"

#include "inflight.h"
#include "log.h"
#include "pool.h"
#include "stats.h"
#include "upstream.h"
#include "value.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void flush(struct batcher *b, uint32_t s, bool force);

/*
 * A due batch waits for its server to have room. Whatever gives it room (a
 * reply, a failure, a connection made or lost, a reload) happens in a
 * callback of this loop, so offering every due batch again once the
 * iteration's callbacks are done covers them all, and no backend has to
 * remember to ask for it. Highest priority: this runs before the daemon's
 * own prepare watcher writes client output, so an error it causes (a server
 * found down) goes out at once.
 */
static void due_cb(struct ev_loop *loop, ev_prepare *w, int revents)
{
	struct batcher *b = w->data;
	bool waiting = false;

	(void)revents;
	for (uint32_t s = 0; s < b->nservers; s++) {
		if (b->open[s] && b->open[s]->due)
			flush(b, s, false);
		if (b->open[s] && b->open[s]->due)
			waiting = true;
	}
	if (!waiting)
		ev_prepare_stop(loop, w);
}

static void leeway_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct batcher *b = w->data;

	(void)loop;
	(void)revents;
	flush(b, (uint32_t)(w - b->timers), false);
}

int batcher_init(struct batcher *b, struct ev_loop *loop, struct stats *st, const struct log *lg,
                 struct inflight *t)
{
	memset(b, 0, sizeof(*b));
	b->loop = loop;
	b->stats = st;
	b->log = lg;
	b->inflight = t;
	b->set.max_keys = 100;
	b->set.retries = 1;
	ev_prepare_init(&b->due, due_cb);
	ev_set_priority(&b->due, EV_MAXPRI);
	b->due.data = b;
	return 0;
}

void batcher_configure(struct batcher *b, const struct batcher_settings *set)
{
	b->set = *set;
	/* A batch opened under leeway 0 has no timer and counted on the
	 * end-of-iteration flush, which a leeway turns off: give it its window. */
	if (set->leeway_ms <= 0)
		return;
	for (uint32_t s = 0; s < b->nservers; s++) {
		if (b->open[s] && !b->open[s]->due && !ev_is_active(&b->timers[s])) {
			ev_timer_set(&b->timers[s], set->leeway_ms / 1000.0, 0.);
			ev_timer_start(b->loop, &b->timers[s]);
		}
	}
}

void batcher_destroy(struct batcher *b)
{
	ev_prepare_stop(b->loop, &b->due);
	for (uint32_t i = 0; i < b->nservers; i++) {
		ev_timer_stop(b->loop, &b->timers[i]);
		free(b->open[i]);
	}
	free(b->open);
	free(b->timers);
}

static struct batch *batch_new(struct batcher *b, uint32_t cap, uint32_t server)
{
	struct batch *bt = malloc(sizeof(*bt) + cap * sizeof(bt->e[0]));

	if (bt) {
		memset(bt, 0, sizeof(*bt));
		bt->cap = cap;
		bt->server = server;
		bt->generation = b->generation;
	}
	return bt;
}

int batcher_set_upstream(struct batcher *b, struct upstream *up)
{
	uint32_t nservers = pool_server_count(up->pool);
	struct batch **open = calloc(nservers, sizeof(*open));
	ev_timer *timers = calloc(nservers, sizeof(*timers));

	if (!open || !timers) {
		free(open);
		free(timers);
		return -1;
	}
	for (uint32_t i = 0; i < b->nservers; i++) {
		ev_timer_stop(b->loop, &b->timers[i]);
		free(b->open[i]); /* flushed: empty if any */
	}
	free(b->open);
	free(b->timers);
	for (uint32_t i = 0; i < nservers; i++) {
		ev_init(&timers[i], leeway_cb);
		timers[i].data = b;
	}
	b->open = open;
	b->timers = timers;
	b->nservers = nservers;
	b->up = up;
	b->generation++;
	return 0;
}

/* One entry going upstream (+1), or not after all (-1). */
static void count_key(struct batcher *b, struct entry *e, int d)
{
	struct detail_prefix *row = detail_row(&b->stats->detail, e->prefix);

	if (row)
		row->upstream += (uint64_t)(int64_t)d;
	b->stats->upstream_keys += (uint64_t)(int64_t)d;
	e->attempts += (uint32_t)d;
}

/* Hand bt to the backend; false if it is busy and bt stays with the caller. */
static bool submit(struct batcher *b, struct batch *bt, bool force)
{
	uint32_t n = bt->n;

	/* Counted before: the backend may fail and free the batch at once, and
	 * takes back what it does not send (batch_refuse). Undone if busy. */
	for (uint32_t i = 0; i < n; i++) {
		bt->e[i]->batch = bt;
		bt->e[i]->batch_pos = i;
		count_key(b, bt->e[i], 1);
	}
	b->stats->upstream_batches++;
	if (!upstream_submit(b->up, bt, force)) {
		for (uint32_t i = 0; i < bt->n; i++)
			count_key(b, bt->e[i], -1);
		b->stats->upstream_batches--;
		return false;
	}
	hist_add(&b->stats->batch_keys, (double)n);
	return true;
}

int batch_add(struct batcher *b, struct entry *e)
{
	struct batch *bt;

	e->server = pool_locate(b->up->pool, e->key, e->keylen);
	bt = b->open[e->server];

	if (!bt) {
		bt = batch_new(b, b->set.max_keys, e->server);
		if (!bt)
			return -1;
		bt->open = true;
		b->open[e->server] = bt;
		if (b->set.leeway_ms > 0) {
			ev_timer_set(&b->timers[e->server], b->set.leeway_ms / 1000.0, 0.);
			ev_timer_start(b->loop, &b->timers[e->server]);
		}
	}
	e->batch = bt;
	e->batch_pos = bt->n;
	bt->e[bt->n++] = e;
	/* A full batch goes even to a busy upstream: it is as good as batches get. */
	if (bt->n >= bt->cap)
		flush(b, e->server, true);
	return 0;
}

bool batch_cancel(struct batcher *b, struct entry *e)
{
	struct batch *bt = e->batch;

	/* Asked of the batch, not of b->open[e->server]: after a reload that
	 * shrank the servers, e->server may lie beyond that array. */
	if (!bt || !bt->open || b->open[bt->server] != bt)
		return false;
	/* Swap-remove: the place is free for another key, and the order of keys
	 * in an upstream request carries no meaning. */
	bt->e[e->batch_pos] = bt->e[--bt->n];
	bt->e[e->batch_pos]->batch_pos = e->batch_pos;
	e->batch = NULL;
	return true;
}

static void flush(struct batcher *b, uint32_t s, bool force)
{
	struct batch *bt = b->open[s];

	if (!bt)
		return;
	ev_timer_stop(b->loop, &b->timers[s]);
	if (bt->n == 0) {
		b->open[s] = NULL;
		free(bt);
		return;
	}
	/* Busy upstream: the batch stays open and keeps collecting keys until
	 * the backend takes it (natural batching: the busier, the bigger). */
	b->open[s] = NULL;
	bt->open = false;
	if (!submit(b, bt, force)) {
		b->open[s] = bt;
		bt->open = true;
		bt->due = true;
		ev_prepare_start(b->loop, &b->due);
	}
}

void batch_flush_all(struct batcher *b, bool force)
{
	for (uint32_t s = 0; s < b->nservers; s++)
		if (b->open[s])
			flush(b, s, force);
}

static bool key_eq(const struct entry *e, const char *key, size_t len)
{
	return e->keylen == len && memcmp(e->key, key, len) == 0;
}

int batch_match(struct batch *bt, const char *key, size_t len)
{
	/* memcached answers in request order: look forward first. The backward
	 * scan accepts a server that reorders, without ever pairing a key twice. */
	for (uint32_t i = bt->cursor; i < bt->n; i++) {
		if (!bt->e[i]->replied && key_eq(bt->e[i], key, len)) {
			bt->cursor = i + 1;
			return (int)i;
		}
	}
	for (uint32_t i = 0; i < bt->cursor && i < bt->n; i++)
		if (!bt->e[i]->replied && key_eq(bt->e[i], key, len))
			return (int)i;
	return -1;
}

void batch_value(struct batch *bt, uint32_t pos, struct value *v)
{
	struct entry *e = bt->e[pos];

	e->replied = true;
	value_unref(e->value);
	e->value = v;
}

void batch_refuse(struct batcher *b, struct batch *bt, uint32_t pos, const char *reason)
{
	struct entry *e = bt->e[pos];

	count_key(b, e, -1);
	bt->e[pos] = bt->e[--bt->n];
	bt->e[pos]->batch_pos = pos;
	if (bt->n == 0)
		b->stats->upstream_batches--;
	e->batch = NULL;
	value_unref(e->value);
	e->value = NULL;
	/* Retrying cannot help: the same backend would refuse it again. */
	inflight_fail(b->inflight, e, reason);
}

void batch_complete(struct batcher *b, struct batch *bt)
{
	/* Values are delivered only once END arrives: a reply cut short is
	 * retried whole and never half-delivered. */
	for (uint32_t i = 0; i < bt->n; i++) {
		struct entry *e = bt->e[i];
		e->batch = NULL;
		inflight_resolve(b->inflight, e, e->value);
	}
	free(bt);
}

static const char *const reasons[] = {
    [BATCH_UNAVAILABLE] = "upstream unavailable",
    [BATCH_TIMEOUT] = "upstream timeout",
    [BATCH_UPSTREAM_ERROR] = "upstream error",
    [BATCH_PROTOCOL] = "upstream protocol error",
};

void batch_fail(struct batcher *b, struct batch *bt, enum batch_error why, const char *text,
                const void *conn)
{
	struct batch *retry = NULL;
	char reason[300];

	b->stats->upstream_errors++;
	if (why == BATCH_TIMEOUT)
		b->stats->upstream_timeouts++;
	if (why == BATCH_UPSTREAM_ERROR && text)
		snprintf(reason, sizeof(reason), "%s: %s", reasons[why], text);
	else
		snprintf(reason, sizeof(reason), "%s", reasons[why]);

	for (uint32_t i = 0; i < bt->n; i++) {
		struct entry *e = bt->e[i];
		value_unref(e->value);
		e->value = NULL;
		e->replied = false;
		e->batch = NULL;
		if (e->nwaiters == 0) {
			inflight_drop(b->inflight, e);
			continue;
		}
		if (e->attempts <= b->set.retries) {
			/* The servers changed since: the key may belong elsewhere now,
			 * so it goes back through an open batch. */
			if (bt->generation != b->generation) {
				if (batch_add(b, e) == 0)
					continue;
			} else {
				if (!retry)
					retry = batch_new(b, bt->n, bt->server);
				if (retry) {
					retry->e[retry->n++] = e;
					continue;
				}
			}
		}
		inflight_fail(b->inflight, e, reason);
	}
	free(bt);
	if (retry) {
		retry->avoid = conn;
		b->stats->upstream_retries++;
		log_debug(b->log, "retrying %u keys after %s", retry->n, reason);
		submit(b, retry, true);
	}
}
