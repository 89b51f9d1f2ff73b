/*
 * backend_postgres: batches as prepared statements on libpq connections in
 * pipeline mode.
 *
 *   batch ─pg_codec→ one binary text[] ─PQsendQueryPrepared + PQpipelineSync→
 *   results ─pgc_value_decode→ batch_value() → batch_complete()
 *
 * Each route is one prepared statement. Every connection (pg_pipeline)
 * keeps a queue of what it sent, in order: a PREPARE the first time a route
 * is used on it, an EXEC per batch, a SYNC after each batch. A query error
 * aborts only its own pipeline segment (up to its sync), so one batch's
 * error never touches another's; the batch is split to find the keys that
 * cause it. This module owns the connections' events, timers and backoff,
 * and what their results mean for batches, pools and statistics.
 *
 * Timeouts drop the connection: PQcancel blocks, and a dropped connection
 * makes the server abandon the statement at its next check anyway.
 */
#include "backend_postgres.h"

#include "batch.h"
#include "inflight.h"
#include "log.h"
#include "pg_codec.h"
#include "pg_pipeline.h"
#include "pool.h"
#include "routes.h"
#include "stats.h"
#include "value.h"

#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum pc_state { PC_DOWN, PC_CONNECTING, PC_READY };

struct pg_backend;

struct pgconn {
	struct pg_backend *u;
	struct pgp p; /* statements: the routes; an EXEC's payload: its batch */
	enum pc_state state;
	uint32_t gen; /* bumped when the connection is dropped */
	ev_io io;
	ev_timer timer; /* connect timeout, backoff, or the oldest statement's timeout */
	double backoff;
};

struct pg_backend {
	struct upstream base;
	struct ev_loop *loop;
	struct upstream_settings set;
	struct batcher *batcher;
	struct stats *stats;
	const struct log *log;
	struct routes routes;
	char *conninfo;
	struct pgconn *c;
	uint32_t nc;
	bool draining;
	struct pgc_buf buf;      /* the array being encoded */
	struct pgc_buf keybuf;   /* a row's key with its route's prefix */
	char **prep_error;       /* per route: the last prepare failure's message */
	struct route_stats **rs; /* per route: its row in stats, or NULL (no room) */
	/* Batches that had to be taken (force) while no connection was ready
	 * but one was connecting: sent when one is up, failed if none comes. */
	struct batch **held;
	uint32_t nheld, heldcap;
	char last_connect_error[512];
};

static void pc_connect(struct pgconn *c);
static void pc_results(struct pgconn *c);
static bool pc_send(struct pgconn *c, struct batch *bt);
static int pc_flush(struct pgconn *c);

/* Per-route figures; a route that found no room in stats is not counted. */
#define ROUTE_ADD(u, route, field, n)                                                              \
	do {                                                                                       \
		if ((u)->rs[route])                                                                \
			(u)->rs[route]->field += (uint64_t)(n);                                    \
	} while (0)

static bool any_connecting(const struct pg_backend *u)
{
	for (uint32_t i = 0; i < u->nc; i++)
		if (u->c[i].state == PC_CONNECTING)
			return true;
	return false;
}

/* No connection came up: the held batches fail (and may be retried). */
static void fail_held(struct pg_backend *u)
{
	while (u->nheld > 0 && !any_connecting(u)) {
		struct batch *bt = u->held[--u->nheld];
		batch_fail(u->batcher, bt, BATCH_UNAVAILABLE, NULL, NULL);
	}
}

static void stmt_name(char *out, size_t cap, uint32_t route)
{
	snprintf(out, cap, "coalesced_r%u", route);
}

static void lanes_conn(struct pg_backend *u, bool up)
{
	for (uint32_t i = 0; i <= u->routes.n; i++) {
		if (up)
			pool_conn_up(u->base.pool, i);
		else
			pool_conn_down(u->base.pool, i);
	}
}

static void watch(struct pgconn *c, int events)
{
	int fd = pgp_socket(&c->p);

	/* The socket can change at every step of a connection attempt. */
	if (fd == c->io.fd && events == (c->io.events & (EV_READ | EV_WRITE)) &&
	    ev_is_active(&c->io))
		return;
	ev_io_stop(c->u->loop, &c->io);
	if (fd < 0)
		return;
	ev_io_set(&c->io, fd, events);
	ev_io_start(c->u->loop, &c->io);
}

static void notice_cb(void *arg, const PGresult *r)
{
	struct pgconn *c = arg;
	char line[512];

	pgc_error_line(PQresultErrorMessage(r), line, sizeof(line));
	log_info(c->u->log, "postgres: %s", line);
}

/* Take the connection down: what it had in flight fails with why (and is
 * retried elsewhere by the batcher); a new attempt follows a backoff. */
static void pc_drop(struct pgconn *c, enum batch_error why, const char *text)
{
	struct pg_backend *u = c->u;
	uint32_t n = 0, cap = c->p.execs;
	struct batch **failed = cap ? malloc(cap * sizeof(*failed)) : NULL;
	struct batch *bt;

	while ((bt = pgp_take_exec(&c->p))) {
		if (failed && n < cap)
			failed[n++] = bt;
		else
			free(bt); /* no memory: lost, as at shutdown */
	}
	ev_io_stop(u->loop, &c->io);
	ev_timer_stop(u->loop, &c->timer);
	if (c->state == PC_READY)
		lanes_conn(u, false);
	pgp_close(&c->p);
	c->state = PC_DOWN;
	c->gen++;
	if (!u->draining) {
		c->backoff = c->backoff ? c->backoff * 2 : 0.05;
		if (c->backoff > 2.0)
			c->backoff = 2.0;
		ev_timer_set(&c->timer, c->backoff, 0.);
		ev_timer_start(u->loop, &c->timer);
	}
	for (uint32_t i = 0; i < n; i++) {
		pool_error(u->base.pool, failed[i]->server, true, ev_now(u->loop), text);
		batch_fail(u->batcher, failed[i], why, text, c);
	}
	free(failed);
}

static void connect_failed(struct pgconn *c, const char *why)
{
	struct pg_backend *u = c->u;
	char line[400];

	pgc_error_line(why, line, sizeof(line));
	for (size_t n = strlen(line); n > 0 && line[n - 1] == ' ';)
		line[--n] = '\0'; /* libpq's message ends with a newline */
	/* conninfo may hold a password: name only where and as whom. */
	if (strcmp(line, u->last_connect_error) != 0) {
		log_warn(u->log, "postgres: cannot connect (host=%s dbname=%s user=%s): %s",
		         c->p.pg && PQhost(c->p.pg) ? PQhost(c->p.pg) : "?",
		         c->p.pg && PQdb(c->p.pg) ? PQdb(c->p.pg) : "?",
		         c->p.pg && PQuser(c->p.pg) ? PQuser(c->p.pg) : "?", line);
		snprintf(u->last_connect_error, sizeof(u->last_connect_error), "%s", line);
	}
	for (uint32_t i = 0; i <= u->routes.n; i++)
		pool_error(u->base.pool, i, true, ev_now(u->loop), line);
	pc_drop(c, BATCH_UNAVAILABLE, NULL);
	fail_held(u);
}

static void pc_ready(struct pgconn *c)
{
	struct pg_backend *u = c->u;

	ev_timer_stop(u->loop, &c->timer);
	c->state = PC_READY;
	c->backoff = 0;
	if (u->last_connect_error[0]) {
		log_info(u->log, "postgres: connected (host=%s dbname=%s user=%s)", PQhost(c->p.pg),
		         PQdb(c->p.pg), PQuser(c->p.pg));
		u->last_connect_error[0] = '\0';
	}
	lanes_conn(u, true);
	watch(c, EV_READ);
	while (u->nheld > 0 && c->state == PC_READY) {
		struct batch *bt = u->held[--u->nheld];
		if (!pc_send(c, bt)) {
			pc_drop(c, BATCH_UNAVAILABLE, NULL);
			batch_fail(u->batcher, bt, BATCH_UNAVAILABLE, NULL, NULL);
		}
	}
	if (c->state == PC_READY)
		pc_flush(c);
}

static void connect_step(struct pgconn *c)
{
	switch (pgp_poll(&c->p)) {
	case PGP_WANT_READ:
		watch(c, EV_READ);
		return;
	case PGP_WANT_WRITE:
		watch(c, EV_WRITE);
		return;
	case PGP_UP:
		pc_ready(c);
		return;
	case PGP_FAILED:
	default:
		connect_failed(c, pgp_error(&c->p));
		return;
	}
}

static void pc_connect(struct pgconn *c)
{
	struct pg_backend *u = c->u;

	if (!pgp_connect(&c->p, u->conninfo, notice_cb, c)) {
		connect_failed(c, pgp_error(&c->p));
		return;
	}
	c->state = PC_CONNECTING;
	ev_timer_set(&c->timer, u->set.connect_timeout_ms / 1000.0, 0.);
	ev_timer_start(u->loop, &c->timer);
	watch(c, EV_WRITE);
}

/* The oldest statement in flight bounds the connection's timer. */
static void arm_stmt_timer(struct pgconn *c)
{
	struct pg_backend *u = c->u;
	double sent_at = pgp_oldest_exec(&c->p);

	ev_timer_stop(u->loop, &c->timer);
	if (sent_at >= 0) {
		double left = sent_at + u->set.timeout_ms / 1000.0 - ev_now(u->loop);
		ev_timer_set(&c->timer, left > 0.001 ? left : 0.001, 0.);
		ev_timer_start(u->loop, &c->timer);
	}
}

static void timer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct pgconn *c = w->data;

	(void)loop;
	(void)revents;
	switch (c->state) {
	case PC_DOWN:
		if (!c->u->draining)
			pc_connect(c);
		return;
	case PC_CONNECTING:
		connect_failed(c, "connection timed out");
		return;
	case PC_READY:
		log_warn(c->u->log,
		         "postgres: a statement ran past timeout_ms; dropping its connection");
		pc_drop(c, BATCH_TIMEOUT, NULL);
		return;
	}
}

static int pc_flush(struct pgconn *c)
{
	int r = pgp_flush(&c->p);

	if (r < 0) {
		pc_drop(c, BATCH_UNAVAILABLE, NULL);
		return -1;
	}
	watch(c, r ? EV_READ | EV_WRITE : EV_READ);
	return 0;
}

static void io_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct pgconn *c = w->data;

	(void)loop;
	if (c->state == PC_CONNECTING) {
		connect_step(c);
		return;
	}
	if (c->state != PC_READY)
		return;
	if (revents & EV_READ) {
		if (!pgp_consume(&c->p)) {
			char line[300];
			pgc_error_line(pgp_error(&c->p), line, sizeof(line));
			log_warn(c->u->log, "postgres: connection lost: %s", line);
			pc_drop(c, BATCH_UNAVAILABLE, NULL);
			return;
		}
		uint32_t gen = c->gen;
		pc_results(c);
		if (c->gen != gen || c->state != PC_READY)
			return;
	}
	/* PQflush may wait for the server to read; it is retried on either event. */
	if (c->io.events & EV_WRITE || revents & EV_WRITE)
		pc_flush(c);
}

/* Every key of bt gets reason and nothing is retried (the same statement
 * would fail the same way). */
static void refuse_all(struct pg_backend *u, struct batch *bt, const char *reason)
{
	while (bt->n > 0)
		batch_refuse(u->batcher, bt, 0, reason);
	batch_complete(u->batcher, bt);
}

static void refuse_error(struct pg_backend *u, struct batch *bt, const char *text)
{
	char reason[400];

	snprintf(reason, sizeof(reason), "upstream error: %s", text);
	u->stats->upstream_errors++;
	if (bt->server < u->routes.n)
		ROUTE_ADD(u, bt->server, errors, bt->n);
	pool_error(u->base.pool, bt->server, false, ev_now(u->loop), text);
	refuse_all(u, bt, reason);
}

static size_t arg_off(const struct pg_backend *u, uint32_t route)
{
	return (int32_t)route == u->routes.star ? 0 : u->routes.v[route].plen + 1;
}

/* Rows → values. */
static void exec_rows(struct pgconn *c, struct batch *bt, uint32_t route, const PGresult *r)
{
	struct pg_backend *u = c->u;
	int nf = PQnfields(r), nrows = PQntuples(r);
	uint32_t types[3];
	size_t off = arg_off(u, route);
	char why[200];

	for (int i = 0; i < nf && i < 3; i++)
		types[i] = (uint32_t)PQftype(r, i);
	if (pgc_columns_check(types, nf, why, sizeof(why)) < 0) {
		log_error(u->log, "postgres: route %s: %s", u->routes.v[route].prefix, why);
		refuse_error(u, bt, why);
		return;
	}
	u->stats->pg_rows += (uint64_t)nrows;
	ROUTE_ADD(u, route, rows, nrows);
	for (int i = 0; i < nrows; i++) {
		struct pgc_text kt, vt;
		uint32_t flags = 0;
		struct value *v;
		int pos;

		if (PQgetisnull(r, i, 0) ||
		    pgc_value_decode(types[0], PQgetvalue(r, i, 0), (size_t)PQgetlength(r, i, 0),
		                     &kt) != PGC_OK) {
			u->stats->pg_rows_ignored++;
			continue;
		}
		if (u->keybuf.cap < off + kt.len + 1) {
			char *nb = realloc(u->keybuf.data, off + kt.len + 1);
			if (!nb) {
				u->stats->out_of_memory++;
				continue;
			}
			u->keybuf.data = nb;
			u->keybuf.cap = off + kt.len + 1;
		}
		if (off) {
			memcpy(u->keybuf.data, u->routes.v[route].prefix, off - 1);
			u->keybuf.data[off - 1] = ':';
		}
		memcpy(u->keybuf.data + off, kt.data, kt.len);
		pos = batch_match(bt, u->keybuf.data, off + kt.len);
		if (pos < 0) {
			u->stats->pg_rows_ignored++;
			continue;
		}
		if (PQgetisnull(r, i, 1)) {
			batch_value(bt, (uint32_t)pos, NULL); /* a miss, and it counts as the row */
			continue;
		}
		if (pgc_value_decode(types[1], PQgetvalue(r, i, 1), (size_t)PQgetlength(r, i, 1),
		                     &vt) != PGC_OK ||
		    (nf == 3 && !PQgetisnull(r, i, 2) &&
		     pgc_flags_decode(types[2], PQgetvalue(r, i, 2), (size_t)PQgetlength(r, i, 2),
		                      &flags) != PGC_OK)) {
			u->stats->pg_rows_ignored++;
			continue;
		}
		v = value_new(vt.len, u->stats->vb);
		if (!v) {
			u->stats->out_of_memory++;
			continue;
		}
		memcpy(v->data, vt.data, vt.len);
		v->data[vt.len] = '\r';
		v->data[vt.len + 1] = '\n';
		v->flags = flags;
		batch_value(bt, (uint32_t)pos, v);
	}
	for (uint32_t i = 0; i < bt->n; i++)
		if (!bt->e[i]->value)
			ROUTE_ADD(u, route, misses, 1);
	pool_success(u->base.pool, bt->server);
	batch_complete(u->batcher, bt);
}

static bool conn_error(const char *sqlstate)
{
	/* Class 08 (connection exception), 57P (operator intervention: shutdown,
	 * crash of another backend), 53 (insufficient resources). */
	return sqlstate && (strncmp(sqlstate, "08", 2) == 0 || strncmp(sqlstate, "57P", 3) == 0 ||
	                    strncmp(sqlstate, "53", 2) == 0);
}

/* One result, for job j (a copy: handling it may send a split, which moves
 * the queue); an EXEC's batch is now ours. */
static void handle(struct pgconn *c, struct pgp_job j, const PGresult *r)
{
	struct pg_backend *u = c->u;
	ExecStatusType st = PQresultStatus(r);
	const char *msg = PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY);
	const char *sqlstate = PQresultErrorField(r, PG_DIAG_SQLSTATE);
	const uint32_t rt = j.stmt;
	const char *route = u->routes.v[rt].prefix;
	struct batch *bt = j.payload;
	char line[300];

	pgc_error_line(msg ? msg : PQresultErrorMessage(r), line, sizeof(line));
	if (j.kind == PGP_PREPARE) {
		if (st == PGRES_COMMAND_OK)
			return;
		if (PQstatus(c->p.pg) == CONNECTION_BAD || conn_error(sqlstate)) {
			/* The connection is going (a server shutting down fails the
			 * PREPARE first): not the query's fault, and nothing to keep. */
			log_warn(u->log, "postgres: %s", line);
			pc_drop(c, BATCH_UNAVAILABLE, NULL);
			return;
		}
		u->stats->pg_prepare_errors++;
		if (!u->prep_error[rt] || strcmp(u->prep_error[rt], line) != 0) {
			log_error(u->log, "postgres: route %s: the query does not prepare: %s",
			          route, line);
			free(u->prep_error[rt]);
			u->prep_error[rt] = strdup(line);
		}
		return;
	}
	hist_add(&u->stats->batch_seconds, ev_now(u->loop) - j.sent_at);
	if (st == PGRES_TUPLES_OK || (st == PGRES_FATAL_ERROR && !conn_error(sqlstate) &&
	                              PQstatus(c->p.pg) != CONNECTION_BAD)) {
		ROUTE_ADD(u, rt, statements, 1);
		if (u->rs[rt])
			hist_add(&u->rs[rt]->seconds, ev_now(u->loop) - j.sent_at);
	}
	switch (st) {
	case PGRES_TUPLES_OK:
		u->stats->pg_statements++;
		exec_rows(c, bt, rt, r);
		return;
	case PGRES_PIPELINE_ABORTED:
		/* Only the PREPARE before it in its segment can have failed. */
		refuse_error(u, bt, u->prep_error[rt] ? u->prep_error[rt] : "query not prepared");
		return;
	case PGRES_FATAL_ERROR:
		if (PQstatus(c->p.pg) == CONNECTION_BAD || conn_error(sqlstate)) {
			/* Back in the queue so that the drop fails (and retries) it. */
			pgp_put_back(&c->p, bt);
			log_warn(u->log, "postgres: %s", line);
			pc_drop(c, BATCH_UNAVAILABLE, NULL);
			return;
		}
		if (sqlstate && strcmp(sqlstate, "26000") == 0) {
			/* Prepared in an earlier segment that failed. */
			refuse_error(u, bt, u->prep_error[rt] ? u->prep_error[rt] : line);
			return;
		}
		u->stats->pg_statements++;
		u->stats->pg_query_errors++;
		pool_error(u->base.pool, bt->server, false, ev_now(u->loop), line);
		log_debug(u->log, "postgres: route %s: %u keys: %s", route, bt->n, line);
		if (bt->n > 1)
			ROUTE_ADD(u, rt, splits, 1);
		else
			ROUTE_ADD(u, rt, errors, bt->n);
		batch_split_retry(u->batcher, bt, line);
		return;
	default:
		pgp_put_back(&c->p, bt);
		log_warn(u->log, "postgres: unexpected result %s", PQresStatus(st));
		pc_drop(c, BATCH_PROTOCOL, "unexpected result");
		return;
	}
}

static void pc_results(struct pgconn *c)
{
	uint32_t gen = c->gen;

	while (c->gen == gen) {
		struct pgp_job j;
		PGresult *r;
		enum pgp_next n = pgp_next(&c->p, &j, &r);

		if (n == PGP_NONE)
			break;
		if (n == PGP_OUT_OF_STEP) {
			pc_drop(c, BATCH_PROTOCOL, "pipeline out of step");
			return;
		}
		handle(c, j, r);
		PQclear(r);
	}
	if (c->gen == gen)
		arm_stmt_timer(c);
}

/* Sends bt on c; false if the connection failed (bt is then still the
 * caller's). */
static bool pc_send(struct pgconn *c, struct batch *bt)
{
	struct pg_backend *u = c->u;
	uint32_t route = bt->server;
	size_t off = arg_off(u, route);
	struct pgc_array a;
	char name[32];

	pgc_buf_reset(&u->buf);
	pgc_array_begin(&a, &u->buf);
	for (uint32_t i = 0; i < bt->n; i++)
		pgc_array_add(&a, bt->e[i]->key + off, bt->e[i]->keylen - off);
	if (pgc_array_end(&a) != PGC_OK || a.n != bt->n)
		return false;
	stmt_name(name, sizeof(name), route);
	if (!pgp_send(&c->p, route, name, u->routes.v[route].sql, PGC_OID_TEXT_ARRAY,
	              u->buf.data + a.start, (int)(u->buf.len - a.start), bt, ev_now(u->loop)))
		return false;
	ROUTE_ADD(u, route, keys, bt->n);
	if (c->p.execs == 1)
		arm_stmt_timer(c);
	return true;
}

static bool pg_submit(struct upstream *base, struct batch *bt, bool force)
{
	struct pg_backend *u = (struct pg_backend *)base;
	struct pgconn *best = NULL;
	bool connecting = false;
	uint32_t route = bt->server;
	size_t off;

	if (route >= u->routes.n) {
		refuse_all(u, bt, PG_NO_ROUTE);
		return true;
	}
	for (uint32_t i = 0; i < u->nc; i++) {
		struct pgconn *c = &u->c[i];
		if (c->state == PC_CONNECTING)
			connecting = true;
		if (c->state != PC_READY)
			continue;
		/* A retry avoids the connection it failed on, when there is another. */
		if (!best || (best == bt->avoid && c != bt->avoid) ||
		    (c != bt->avoid && c->p.execs < best->p.execs))
			best = c;
	}
	if (!force && ((best && best->p.execs >= u->set.pipeline_depth) || (!best && connecting)))
		return false;
	off = arg_off(u, route);
	for (uint32_t i = 0; i < bt->n;) {
		enum pgc_status s = pgc_key_check(bt->e[i]->key + off, bt->e[i]->keylen - off);
		if (s == PGC_OK) {
			i++;
		} else {
			char reason[200];
			snprintf(reason, sizeof(reason), "key not valid for postgres: %s",
			         pgc_strerror(s));
			batch_refuse(u->batcher, bt, i, reason);
		}
	}
	if (bt->n == 0) {
		batch_complete(u->batcher, bt);
		return true;
	}
	bt->cursor = 0;
	if (!best && connecting) {
		if (u->nheld == u->heldcap) {
			uint32_t cap = u->heldcap ? u->heldcap * 2 : 8;
			struct batch **h = realloc(u->held, cap * sizeof(*h));
			if (!h) {
				batch_fail(u->batcher, bt, BATCH_UNAVAILABLE, "out of memory",
				           NULL);
				return true;
			}
			u->held = h;
			u->heldcap = cap;
		}
		u->held[u->nheld++] = bt;
		return true;
	}
	if (!best) {
		batch_fail(u->batcher, bt, BATCH_UNAVAILABLE, NULL, NULL);
		return true;
	}
	if (!pc_send(best, bt)) {
		char line[300];
		pgc_error_line(pgp_error(&best->p), line, sizeof(line));
		log_warn(u->log, "postgres: cannot send: %s", line);
		pc_drop(best, BATCH_UNAVAILABLE, NULL);
		batch_fail(u->batcher, bt, BATCH_UNAVAILABLE, NULL, best);
		return true;
	}
	pc_flush(best);
	return true;
}

static void pg_configure(struct upstream *base, const struct upstream_settings *s)
{
	((struct pg_backend *)base)->set = *s;
}

static uint32_t pg_outstanding(const struct upstream *base)
{
	const struct pg_backend *u = (const struct pg_backend *)base;
	uint32_t n = u->nheld;

	for (uint32_t i = 0; i < u->nc; i++)
		n += u->c[i].p.execs;
	return n;
}

static void pg_drain(struct upstream *base)
{
	struct pg_backend *u = (struct pg_backend *)base;

	u->draining = true;
	for (uint32_t i = 0; i < u->nc; i++) {
		struct pgconn *c = &u->c[i];
		if (c->state == PC_DOWN) {
			ev_timer_stop(u->loop, &c->timer);
		} else if (c->state == PC_CONNECTING) {
			ev_timer_stop(u->loop, &c->timer);
			ev_io_stop(u->loop, &c->io);
			pgp_close(&c->p);
			c->state = PC_DOWN;
		}
	}
	fail_held(u);
}

static void pg_destroy(struct upstream *base)
{
	struct pg_backend *u = (struct pg_backend *)base;

	for (uint32_t i = 0; u->c && i < u->nc; i++) {
		struct pgconn *c = &u->c[i];
		struct batch *bt;
		ev_io_stop(u->loop, &c->io);
		ev_timer_stop(u->loop, &c->timer);
		while ((bt = pgp_take_exec(&c->p)))
			free(bt);
		pgp_free(&c->p);
	}
	free(u->c);
	for (uint32_t i = 0; i < u->nheld; i++)
		free(u->held[i]);
	free(u->held);
	for (uint32_t i = 0; u->prep_error && i < u->routes.n; i++)
		free(u->prep_error[i]);
	free(u->prep_error);
	free(u->rs);
	pool_free(u->base.pool);
	routes_free(&u->routes);
	pgc_buf_free(&u->buf);
	free(u->keybuf.data);
	free(u->conninfo);
	free(u);
}

static const struct upstream_ops pg_ops = {
    .submit = pg_submit,
    .configure = pg_configure,
    .drain = pg_drain,
    .outstanding = pg_outstanding,
    .destroy = pg_destroy,
};

static uint32_t pg_locate(const void *ctx, const char *key, size_t len)
{
	size_t off;

	return routes_locate(ctx, key, len, &off);
}

struct upstream *backend_postgres_new(struct ev_loop *loop, const char *conninfo,
                                      const char *queries, uint32_t connections, uint32_t thread,
                                      uint32_t nthreads, const struct upstream_settings *set,
                                      struct batcher *b, struct stats *st, const struct log *lg,
                                      char *err, size_t errlen)
{
	struct pg_backend *u = calloc(1, sizeof(*u));
	const char **names = NULL;

	if (!u) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	u->base.ops = &pg_ops;
	u->loop = loop;
	u->set = *set;
	u->batcher = b;
	u->stats = st;
	u->log = lg;
	u->routes.star = -1;
	if (routes_parse(queries, &u->routes, err, errlen) < 0) {
		pg_destroy(&u->base);
		return NULL;
	}
	u->conninfo = strdup(conninfo ? conninfo : "");
	u->prep_error = calloc(u->routes.n, sizeof(*u->prep_error));
	u->rs = calloc(u->routes.n, sizeof(*u->rs));
	names = calloc(u->routes.n + 1, sizeof(*names));
	/* Worker 0 fetches every key (shard.h): the other worker threads send
	 * no statement and open no connection, so that threads do not multiply
	 * the database's connections. */
	if (nthreads > 1 && thread != 0)
		connections = 0;
	u->c = calloc(connections ? connections : 1, sizeof(*u->c));
	if (!u->conninfo || !u->prep_error || !u->rs || !names || !u->c)
		goto nomem;
	for (uint32_t i = 0; i < u->routes.n; i++) {
		names[i] = u->routes.v[i].prefix;
		u->rs[i] = stats_route(st, u->routes.v[i].prefix);
	}
	names[u->routes.n] = "(no route)";
	u->base.pool = pool_new_lanes(names, u->routes.n + 1, pg_locate, &u->routes);
	if (!u->base.pool)
		goto nomem;
	free(names);
	names = NULL;
	for (uint32_t i = 0; i < connections; i++) {
		struct pgconn *c = &u->c[i];
		c->u = u;
		u->nc = i + 1;
		if (pgp_init(&c->p, u->routes.n) < 0)
			goto nomem;
		ev_init(&c->io, io_cb);
		ev_init(&c->timer, timer_cb);
		c->io.data = c->timer.data = c;
		c->io.fd = -1;
	}
	for (uint32_t i = 0; i < u->nc; i++)
		pc_connect(&u->c[i]);
	return &u->base;
nomem:
	free(names);
	snprintf(err, errlen, "out of memory");
	pg_destroy(&u->base);
	return NULL;
}
