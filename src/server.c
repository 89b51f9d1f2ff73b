/* server: one event loop's modules, the per-iteration flush, reconfiguration
 * and graceful stop; see server.h. */
#include "server.h"

#include "addr.h"
#include "conn.h"
#include "upstream.h"
#include "upstream_memcache.h"

#include <stdlib.h>
#include <string.h>

static void apply_settings(struct server *srv)
{
	const struct config *c = &srv->cfg;
	struct upstream_settings us = {
	    .connect_timeout_ms = (uint32_t)c->connect_timeout_ms,
	    .timeout_ms = (uint32_t)c->timeout_ms,
	    .pipeline_depth = (uint32_t)c->pipeline_depth,
	};

	srv->log.level = (int)c->log_level;
	srv->batcher.set.leeway_ms = c->leeway_ms;
	srv->batcher.set.max_keys = (uint32_t)c->max_keys;
	srv->batcher.set.retries = (uint32_t)c->retries;
	srv->inflight.coalesce = c->coalesce;
	if (srv->up)
		srv->up->ops->configure(srv->up, &us);
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
	struct addr_list servers;
	struct upstream_settings us = {
	    .connect_timeout_ms = (uint32_t)nc->connect_timeout_ms,
	    .timeout_ms = (uint32_t)nc->timeout_ms,
	    .pipeline_depth = (uint32_t)nc->pipeline_depth,
	};
	struct upstream *nu, **r;
	char err[512];

	if (addr_list_parse(nc->servers, false, &servers, err, sizeof(err)) < 0) {
		log_error(&srv->log, "reload: %s", err);
		return -1;
	}
	r = realloc(srv->retired, (srv->nretired + 1) * sizeof(*r));
	if (r)
		srv->retired = r;
	nu = r ? upstream_memcache_new(srv->loop, &servers, (uint32_t)nc->connections, &us,
	                               &srv->batcher, &srv->stats, &srv->log)
	       : NULL;
	if (!nu) {
		addr_list_free(&servers);
		log_error(&srv->log, "reload: out of memory; upstream unchanged");
		return -1;
	}
	batch_flush_all(&srv->batcher, true);
	if (batcher_set_servers(&srv->batcher, (uint32_t)servers.n, nu) < 0) {
		nu->ops->destroy(nu);
		addr_list_free(&servers);
		log_error(&srv->log, "reload: out of memory; upstream unchanged");
		return -1;
	}
	srv->up->ops->drain(srv->up);
	srv->retired[srv->nretired++] = srv->up;
	srv->up = nu;
	log_info(&srv->log, "upstream now %s (%ld connections each); the old one drains",
	         nc->servers, nc->connections);
	addr_list_free(&servers);
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
		conn_write_pending(srv);
		if (srv->cfg.leeway_ms <= 0 || srv->stopping)
			batch_flush_all(&srv->batcher, srv->stopping);
		if (!srv->wpending)
			return;
	}
	ev_idle_start(loop, &srv->idle); /* keeps the next poll from blocking */
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
	while (srv->conns)
		conn_close(srv->conns, "shutdown time limit");
	ev_break(loop, EVBREAK_ALL);
}

int server_init(struct server *srv, struct ev_loop *loop, struct config *cfg, const struct log *lg)
{
	struct addr_list servers;
	struct upstream_settings us;
	char err[512];

	memset(srv, 0, sizeof(*srv));
	srv->loop = loop;
	srv->cfg = *cfg;
	memset(cfg, 0, sizeof(*cfg));
	srv->log = *lg;
	srv->started = time(NULL);
	if (stats_init(&srv->stats) < 0) {
		log_error(&srv->log, "out of memory");
		return EXIT_START;
	}
	if (addr_list_parse(srv->cfg.servers, false, &servers, err, sizeof(err)) < 0) {
		log_error(&srv->log, "%s", err);
		return EXIT_START;
	}
	if (inflight_init(&srv->inflight, &srv->stats, &srv->batcher) < 0 ||
	    batcher_init(&srv->batcher, loop, (uint32_t)servers.n, &srv->stats, &srv->log,
	                 &srv->inflight, NULL) < 0) {
		addr_list_free(&servers);
		log_error(&srv->log, "out of memory");
		return EXIT_START;
	}
	srv->inflight.nservers = (uint32_t)servers.n;
	apply_settings(srv);

	ev_prepare_init(&srv->prepare, prepare_cb);
	ev_idle_init(&srv->idle, idle_cb);
	ev_init(&srv->stop_timer, stop_timer_cb);
	srv->prepare.data = srv->stop_timer.data = srv;
	ev_prepare_start(loop, &srv->prepare);

	us.connect_timeout_ms = (uint32_t)srv->cfg.connect_timeout_ms;
	us.timeout_ms = (uint32_t)srv->cfg.timeout_ms;
	us.pipeline_depth = (uint32_t)srv->cfg.pipeline_depth;
	srv->up = upstream_memcache_new(loop, &servers, (uint32_t)srv->cfg.connections, &us,
	                                &srv->batcher, &srv->stats, &srv->log);
	addr_list_free(&servers);
	if (!srv->up) {
		log_error(&srv->log, "out of memory");
		return EXIT_START;
	}
	srv->batcher.up = srv->up;
	return EXIT_OK;
}

void server_destroy(struct server *srv)
{
	while (srv->conns)
		conn_close(srv->conns, NULL);
	ev_prepare_stop(srv->loop, &srv->prepare);
	ev_idle_stop(srv->loop, &srv->idle);
	ev_timer_stop(srv->loop, &srv->stop_timer);
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

void server_configure(struct server *srv, struct config *nc)
{
	struct config old;

	if ((strcmp(nc->servers, srv->cfg.servers) != 0 ||
	     nc->connections != srv->cfg.connections) &&
	    switch_upstream(srv, nc) < 0) {
		/* Keep the running upstream, and say so in the configuration. */
		char *tmp = nc->servers;
		nc->servers = srv->cfg.servers;
		srv->cfg.servers = tmp;
		nc->connections = srv->cfg.connections;
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
	log_info(&srv->log, "%s: stopping; answering %zu in-flight keys first", why,
	         srv->inflight.live);
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
		ev_break(srv->loop, EVBREAK_ALL);
}
