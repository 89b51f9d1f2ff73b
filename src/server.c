/* server: one event loop's modules, the per-iteration flush, reconfiguration
 * and graceful stop; see server.h. */
#include "server.h"

#include "backend.h"
#include "conn.h"
#include "pool.h"
#include "upstream.h"
#include "workers.h"

#include <stdlib.h>
#include <string.h>

static void apply_settings(struct server *srv)
{
	const struct config *c = &srv->cfg;
	struct upstream_settings us;
	struct batcher_settings bs = {
	    .leeway_ms = c->leeway_ms,
	    .max_keys = (uint32_t)c->max_keys,
	    .retries = (uint32_t)c->retries,
	};

	backend_settings(c, &us);
	srv->log.level = (int)c->log_level;
	batcher_configure(&srv->batcher, &bs);
	srv->inflight.coalesce = c->coalesce;
	if (srv->up) {
		struct pool_options po;
		srv->up->ops->configure(srv->up, &us);
		backend_pool_options(c, &po);
		pool_configure(srv->up->pool, &po);
	}
	/* "reload: yes" holds for connections already open, too. */
	for (struct conn *cn = srv->conns; cn; cn = cn->next)
		conn_configure(cn);
}

/* Backends replaced on reload go once their last batch is answered. */
static void reap_retired(struct server *srv)
{
	for (size_t i = 0; i < srv->nretired;) {
		struct upstream *u = srv->retired[i];
		if (u->ops->outstanding(u) == 0) {
			u->ops->destroy(u);
			srv->retired[i] = srv->retired[--srv->nretired];
			continue;
		}
		i++;
	}
}

/* [upstream] servers or connections changed: open batches go to the old
 * backend, which drains; new keys go to a new one. No client notices. */
static int switch_upstream(struct server *srv, const struct config *nc)
{
	struct backend_env env = {.loop = srv->loop,
	                          .batcher = &srv->batcher,
	                          .stats = &srv->stats,
	                          .log = &srv->log,
	                          .thread = srv->id,
	                          .nthreads = srv->nthreads};
	struct upstream *nu, **r;
	char err[512];

	r = realloc(srv->retired, (srv->nretired + 1) * sizeof(*r));
	if (r)
		srv->retired = r;
	nu = r ? backend_new(nc, &env, err, sizeof(err)) : NULL;
	if (!nu) {
		log_error(&srv->log, "reload: %s; upstream unchanged", r ? err : "out of memory");
		return -1;
	}
	batch_flush_all(&srv->batcher, true);
	if (batcher_set_upstream(&srv->batcher, nu) < 0) {
		nu->ops->destroy(nu);
		log_error(&srv->log, "reload: out of memory; upstream unchanged");
		return -1;
	}
	srv->up->ops->drain(srv->up);
	srv->retired[srv->nretired++] = srv->up;
	srv->up = nu;
	log_msg(&srv->log, srv->id == 0 ? LVL_INFO : LVL_DEBUG,
	        "upstream now %s (%ld connections%s); the old one drains",
	        nc->protocol == PROTO_POSTGRES ? "postgres" : nc->servers, nc->connections,
	        nc->protocol == PROTO_POSTGRES ? "" : " each");
	return 0;
}

/*
 * End of every loop iteration (ev_prepare runs after all of the iteration's
 * callbacks): write the clients that have output, then, with leeway 0, send
 * the open batches. Writing may resume a paused client whose parsing opens
 * new batches, and sending may fail batches at once and produce output, so
 * repeat until neither has work; the loop must not sleep on an open batch.
 */
static void prepare_cb(struct ev_loop *loop, ev_prepare *w, int revents)
{
	struct server *srv = w->data;

	(void)revents;
	reap_retired(srv);
	for (int i = 0; i < 16; i++) {
		/* Other threads' messages first: results become output, joins
		 * join the batches sent below. */
		bool took = shard_take(srv);
		conn_write_pending(srv);
		if (srv->cfg.leeway_ms <= 0 || srv->stopping)
			batch_flush_all(&srv->batcher, srv->stopping);
		if (!srv->wpending && !took) {
			shard_flush(srv);
			return;
		}
	}
	shard_flush(srv);
	ev_idle_start(loop, &srv->idle); /* keeps the next poll from blocking */
}

/* Buffers of idle clients go back to the allocator. */
static void trim_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct server *srv = w->data;

	(void)revents;
	for (struct conn *c = srv->conns; c; c = c->next)
		conn_trim(c, ev_now(loop) - 1.0);
}

/* This worker has nobody left to answer. Alone, it leaves its loop; in a
 * group it goes on serving other workers' keys until every worker is done. */
static void drained(struct server *srv)
{
	if (srv->drained)
		return;
	srv->drained = true;
	if (!srv->group) {
		ev_break(srv->loop, EVBREAK_ALL);
		return;
	}
	workers_drained(srv);
}

static void idle_cb(struct ev_loop *loop, ev_idle *w, int revents)
{
	(void)revents;
	ev_idle_stop(loop, w);
}

static void stop_timer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct server *srv = w->data;

	(void)revents;
	log_warn(&srv->log, "stop: requests still unanswered after the time limit; closing");
	(void)loop;
	while (srv->conns)
		conn_close(srv->conns, "shutdown time limit");
	drained(srv);
}

/* The per-server lines of `stats`, from the current backend's pool. */
static size_t pool_stats(const void *ctx, char *buf, size_t cap)
{
	const struct server *srv = ctx;

	return srv->up ? pool_stats_format(srv->up->pool, buf, cap) : 0;
}

int server_init(struct server *srv, struct ev_loop *loop, struct config *cfg, const struct log *lg,
                uint32_t id, uint32_t nthreads)
{
	struct backend_env env = {loop, &srv->batcher, &srv->stats, &srv->log, id, nthreads};
	char err[512];

	memset(srv, 0, sizeof(*srv));
	srv->loop = loop;
	srv->cfg = *cfg;
	memset(cfg, 0, sizeof(*cfg));
	srv->log = *lg;
	srv->started = time(NULL);
	srv->id = id;
	srv->nthreads = nthreads;
	srv->ll = &srv->ll_own;
	if (stats_init(&srv->stats) < 0) {
		log_error(&srv->log, "out of memory");
		return EXIT_START;
	}
	srv->stats.servers_format = pool_stats;
	srv->stats.servers_ctx = srv;
	if (inflight_init(&srv->inflight, &srv->stats, &srv->batcher) < 0 ||
	    batcher_init(&srv->batcher, loop, &srv->stats, &srv->log, &srv->inflight) < 0) {
		log_error(&srv->log, "out of memory");
		return EXIT_START;
	}
	apply_settings(srv);

	ev_prepare_init(&srv->prepare, prepare_cb);
	ev_idle_init(&srv->idle, idle_cb);
	ev_init(&srv->stop_timer, stop_timer_cb);
	ev_init(&srv->trim_timer, trim_cb);
	srv->prepare.data = srv->stop_timer.data = srv->trim_timer.data = srv;
	ev_prepare_start(loop, &srv->prepare);
	srv->trim_timer.repeat = 5.;
	ev_timer_again(loop, &srv->trim_timer);

	srv->up = backend_new(&srv->cfg, &env, err, sizeof(err));
	if (!srv->up || batcher_set_upstream(&srv->batcher, srv->up) < 0) {
		log_error(&srv->log, "%s", srv->up ? "out of memory" : err);
		return EXIT_START;
	}
	return EXIT_OK;
}

void server_destroy(struct server *srv)
{
	while (srv->conns)
		conn_close(srv->conns, NULL);
	ev_prepare_stop(srv->loop, &srv->prepare);
	ev_idle_stop(srv->loop, &srv->idle);
	ev_timer_stop(srv->loop, &srv->stop_timer);
	ev_timer_stop(srv->loop, &srv->trim_timer);
	shard_destroy(srv);
	if (srv->up)
		srv->up->ops->destroy(srv->up);
	for (size_t i = 0; i < srv->nretired; i++)
		srv->retired[i]->ops->destroy(srv->retired[i]);
	free(srv->retired);
	batcher_destroy(&srv->batcher);
	inflight_destroy(&srv->inflight);
	stats_free(&srv->stats);
	config_free(&srv->cfg);
}

/* [postgres] conninfo or [queries] changed (PostgreSQL backend only). */
static bool upstream_pg_changed(const struct config *a, const struct config *b)
{
	if (a->protocol != PROTO_POSTGRES)
		return false;
	return strcmp(a->conninfo, b->conninfo) != 0 ||
	       strcmp(a->queries ? a->queries : "", b->queries ? b->queries : "") != 0;
}

void server_configure(struct server *srv, struct config *nc)
{
	struct config old;

	if ((strcmp(nc->servers, srv->cfg.servers) != 0 ||
	     nc->connections != srv->cfg.connections || nc->distribution != srv->cfg.distribution ||
	     upstream_pg_changed(nc, &srv->cfg)) &&
	    switch_upstream(srv, nc) < 0) {
		/* Keep the running upstream, and say so in the configuration. */
		char *tmp = nc->servers;
		nc->servers = srv->cfg.servers;
		srv->cfg.servers = tmp;
		nc->connections = srv->cfg.connections;
		nc->distribution = srv->cfg.distribution;
		tmp = nc->conninfo;
		nc->conninfo = srv->cfg.conninfo;
		srv->cfg.conninfo = tmp;
		tmp = nc->queries;
		nc->queries = srv->cfg.queries;
		srv->cfg.queries = tmp;
	}
	old = srv->cfg;
	srv->cfg = *nc;
	*nc = old;
	apply_settings(srv);
}

void server_stop(struct server *srv, const char *why)
{
	double limit;

	if (srv->stopping)
		return;
	srv->stopping = true;
	/* One line for the process; the other workers' only when debugging. */
	log_msg(&srv->log, srv->id == 0 ? LVL_INFO : LVL_DEBUG,
	        "%s: stopping; answering %zu in-flight keys first", why, srv->inflight.live);
	batch_flush_all(&srv->batcher, true);
	for (struct conn *c = srv->conns, *next; c; c = next) {
		next = c->next;
		conn_finish(c);
	}
	limit = srv->cfg.shutdown_timeout_ms / 1000.0;
	ev_timer_set(&srv->stop_timer, limit, 0.);
	ev_timer_start(srv->loop, &srv->stop_timer);
	server_client_gone(srv);
}

void server_client_gone(struct server *srv)
{
	if (srv->stopping && !srv->conns)
		drained(srv);
}

bool server_client_admit(struct server *srv)
{
	uint64_t max = (uint64_t)srv->cfg.max_clients;

	if (!srv->group)
		return srv->stats.curr_connections < max;
	if (__atomic_fetch_add(&srv->group->clients, 1, __ATOMIC_RELAXED) < max)
		return true;
	__atomic_fetch_sub(&srv->group->clients, 1, __ATOMIC_RELAXED);
	return false;
}

void server_client_release(struct server *srv)
{
	if (srv->group) {
		__atomic_fetch_sub(&srv->group->clients, 1, __ATOMIC_RELAXED);
		__atomic_fetch_sub(&srv->nconns, 1, __ATOMIC_RELAXED);
	}
}
