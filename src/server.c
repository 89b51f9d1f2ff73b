/* server: one event loop's modules, the per-iteration flush, reconfiguration
 * and graceful stop; see server.h. */
#include "server.h"

#include "backend.h"
#include "conn.h"
#include "upstream.h"

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
	struct backend_env env = {srv->loop, &srv->batcher, &srv->stats, &srv->log};
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
	log_info(&srv->log, "upstream now %s (%ld connections each); the old one drains",
	         nc->servers, nc->connections);
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
	struct backend_env env = {loop, &srv->batcher, &srv->stats, &srv->log};
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
	if (inflight_init(&srv->inflight, &srv->stats, &srv->batcher) < 0 ||
	    batcher_init(&srv->batcher, loop, &srv->stats, &srv->log, &srv->inflight) < 0) {
		log_error(&srv->log, "out of memory");
		return EXIT_START;
	}
	apply_settings(srv);

	ev_prepare_init(&srv->prepare, prepare_cb);
	ev_idle_init(&srv->idle, idle_cb);
	ev_init(&srv->stop_timer, stop_timer_cb);
	srv->prepare.data = srv->stop_timer.data = srv;
	ev_prepare_start(loop, &srv->prepare);

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
