/* server: module setup and teardown, the per-iteration flush, signals. */
#include "server.h"

#include "addr.h"
#include "conn.h"
#include "listener.h"
#include "metrics.h"
#include "notify.h"
#include "upstream.h"
#include "upstream_memcache.h"

#include <errno.h>
#include <inttypes.h>
#include <grp.h>
#include <pwd.h>
#include <signal.h>
#include <systemd/sd-daemon.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

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

/* Every 5 s: a line for `systemctl status` (who is here, how well collapsing
 * works), and buffers of idle clients go back to the allocator. */
static void status_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct server *srv = w->data;
	const struct stats *st = &srv->stats;
	double rate = (double)(st->get_keys - srv->status_keys) / w->repeat;
	char msg[200];

	(void)revents;
	for (struct conn *c = srv->conns; c; c = c->next)
		conn_trim(c, ev_now(loop) - 1.0);
	srv->status_keys = st->get_keys;
	snprintf(msg, sizeof(msg),
	         "STATUS=%" PRIu64 " clients, %.0f keys/s, %.1f%% coalesced, %" PRIu64
	         " keys in flight",
	         st->curr_connections, rate,
	         st->get_keys ? 100.0 * (double)st->keys_coalesced / (double)st->get_keys : 0.0,
	         st->inflight_keys);
	notify(&srv->log, msg);
}

static void idle_cb(struct ev_loop *loop, ev_idle *w, int revents)
{
	(void)revents;
	ev_idle_stop(loop, w);
}

static void signal_cb(struct ev_loop *loop, ev_signal *w, int revents)
{
	struct server *srv = w->data;

	(void)loop;
	(void)revents;
	if (w->signum == SIGHUP)
		server_reload(srv);
	else
		server_stop(srv, w->signum == SIGINT ? "SIGINT" : "SIGTERM");
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

/* After binding (privileged ports need root): groups, gid, uid, in that order,
 * so that no step runs with privileges it should no longer have. */
static int drop_privileges(struct server *srv)
{
	const char *user = srv->cfg.user;
	struct passwd *pw;

	if (geteuid() != 0) {
		if (user[0])
			log_warn(&srv->log, "[server] user = %s ignored: not started as root",
			         user);
		return 0;
	}
	if (!user[0]) {
		log_warn(&srv->log, "running as root; set [server] user to drop privileges");
		return 0;
	}
	errno = 0;
	pw = getpwnam(user);
	if (!pw) {
		log_error(&srv->log, "[server] user: no user '%s'%s%s", user, errno ? ": " : "",
		          errno ? strerror(errno) : "");
		return -1;
	}
	if (initgroups(pw->pw_name, pw->pw_gid) < 0 || setgid(pw->pw_gid) < 0 ||
	    setuid(pw->pw_uid) < 0) {
		log_error(&srv->log, "cannot become user %s: %s", user, strerror(errno));
		return -1;
	}
	/* Make sure there is no way back. */
	if (pw->pw_uid != 0 && setuid(0) == 0) {
		log_error(&srv->log, "dropping privileges to %s did not stick", user);
		return -1;
	}
	log_info(&srv->log, "running as user %s (uid %ld, gid %ld)", user, (long)pw->pw_uid,
	         (long)pw->pw_gid);
	return 0;
}

int server_init(struct server *srv, struct ev_loop *loop, struct config *cfg)
{
	struct addr_list servers, listen;
	struct upstream_settings us;
	char err[512];
	size_t nlisten;
	int nfds;

	memset(srv, 0, sizeof(*srv));
	srv->loop = loop;
	srv->cfg = *cfg;
	memset(cfg, 0, sizeof(*cfg));
	srv->log.level = (int)srv->cfg.log_level;
	srv->log.journal = log_stderr_is_journal();
	srv->started = time(NULL);
	if (stats_init(&srv->stats) < 0) {
		log_error(&srv->log, "out of memory");
		return EXIT_START;
	}

	if (addr_list_parse(srv->cfg.servers, false, &servers, err, sizeof(err)) < 0 ||
	    addr_list_parse(srv->cfg.listen, true, &listen, err, sizeof(err)) < 0) {
		log_error(&srv->log, "%s", err);
		return EXIT_START;
	}
	if (inflight_init(&srv->inflight, &srv->stats, &srv->batcher) < 0 ||
	    batcher_init(&srv->batcher, loop, (uint32_t)servers.n, &srv->stats, &srv->log,
	                 &srv->inflight, NULL) < 0) {
		log_error(&srv->log, "out of memory");
		return EXIT_START;
	}
	srv->inflight.nservers = (uint32_t)servers.n;
	apply_settings(srv);

	/* Signals first: once a listener accepts, a client (or a supervisor's
	 * SIGTERM) may come at any moment. */
	ev_prepare_init(&srv->prepare, prepare_cb);
	ev_idle_init(&srv->idle, idle_cb);
	ev_signal_init(&srv->sigterm, signal_cb, SIGTERM);
	ev_signal_init(&srv->sigint, signal_cb, SIGINT);
	ev_signal_init(&srv->sighup, signal_cb, SIGHUP);
	ev_init(&srv->stop_timer, stop_timer_cb);
	srv->prepare.data = srv->sigterm.data = srv->sigint.data = srv->sighup.data = srv;
	srv->stop_timer.data = srv;
	ev_prepare_start(loop, &srv->prepare);
	ev_signal_start(loop, &srv->sigterm);
	ev_signal_start(loop, &srv->sigint);
	ev_signal_start(loop, &srv->sighup);

	/* Sockets passed by the service manager (socket activation) replace
	 * [server] listen. */
	nfds = sd_listen_fds(1);
	if (nfds < 0) {
		log_error(&srv->log, "socket activation: %s", strerror(-nfds));
		addr_list_free(&listen);
		addr_list_free(&servers);
		return EXIT_START;
	}
	nlisten = nfds > 0 ? (size_t)nfds : listen.n;
	srv->listeners = calloc(nlisten, sizeof(*srv->listeners));
	if (!srv->listeners) {
		log_error(&srv->log, "out of memory");
		addr_list_free(&listen);
		addr_list_free(&servers);
		return EXIT_START;
	}
	for (size_t i = 0; i < nlisten; i++) {
		int r = nfds > 0 ? listener_adopt(&srv->listeners[i], srv,
		                                  SD_LISTEN_FDS_START + (int)i, err, sizeof(err))
		                 : listener_open(&srv->listeners[i], srv, &listen.v[i], err,
		                                 sizeof(err));
		if (r < 0) {
			log_error(&srv->log, "%s", err);
			addr_list_free(&listen);
			addr_list_free(&servers);
			return EXIT_START;
		}
		srv->nlisteners++;
	}
	if (nfds > 0)
		log_info(&srv->log,
		         "socket activation: %d sockets from the service manager; "
		         "[server] listen not used",
		         nfds);
	if (srv->cfg.metrics_listen[0]) {
		srv->metrics = metrics_open(srv, srv->cfg.metrics_listen, err, sizeof(err));
		if (!srv->metrics) {
			log_error(&srv->log, "%s", err);
			addr_list_free(&listen);
			addr_list_free(&servers);
			return EXIT_START;
		}
	}
	if (drop_privileges(srv) < 0) {
		addr_list_free(&listen);
		addr_list_free(&servers);
		return EXIT_START;
	}

	us.connect_timeout_ms = (uint32_t)srv->cfg.connect_timeout_ms;
	us.timeout_ms = (uint32_t)srv->cfg.timeout_ms;
	us.pipeline_depth = (uint32_t)srv->cfg.pipeline_depth;
	srv->up = upstream_memcache_new(loop, &servers, (uint32_t)srv->cfg.connections, &us,
	                                &srv->batcher, &srv->stats, &srv->log);
	addr_list_free(&servers);
	if (!srv->up) {
		addr_list_free(&listen);
		log_error(&srv->log, "out of memory");
		return EXIT_START;
	}
	srv->batcher.up = srv->up;

	for (size_t i = 0; i < srv->nlisteners; i++)
		log_info(&srv->log, "listening on %s", srv->listeners[i].addr.name);
	ev_init(&srv->status_timer, status_cb);
	srv->status_timer.data = srv;
	srv->status_timer.repeat = 5.;
	ev_timer_again(loop, &srv->status_timer);
	notify(&srv->log, "READY=1\nSTATUS=listening");
	log_info(&srv->log,
	         "coalesced %s: upstream %s (memcache, %ld connections each), leeway %g ms, "
	         "max_keys %ld",
	         COALESCED_VERSION, srv->cfg.servers, srv->cfg.connections, srv->cfg.leeway_ms,
	         srv->cfg.max_keys);
	addr_list_free(&listen);
	return EXIT_OK;
}

void server_run(struct server *srv)
{
	ev_run(srv->loop, 0);
}

void server_destroy(struct server *srv)
{
	while (srv->conns)
		conn_close(srv->conns, NULL);
	for (size_t i = 0; i < srv->nlisteners; i++)
		listener_close(&srv->listeners[i]);
	free(srv->listeners);
	metrics_close(srv->metrics);
	srv->metrics = NULL;
	ev_timer_stop(srv->loop, &srv->status_timer);
	ev_prepare_stop(srv->loop, &srv->prepare);
	ev_idle_stop(srv->loop, &srv->idle);
	ev_signal_stop(srv->loop, &srv->sigterm);
	ev_signal_stop(srv->loop, &srv->sigint);
	ev_signal_stop(srv->loop, &srv->sighup);
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

static bool same(const char *a, const char *b)
{
	return strcmp(a, b) == 0;
}

void server_reload(struct server *srv)
{
	struct config nc;
	char err[512];
	size_t nkeys;
	const struct config_key *keys = config_keys(&nkeys);

	notify(&srv->log, "RELOADING=1");
	config_init(&nc);
	if (srv->config_path && config_load_file(&nc, srv->config_path, err, sizeof(err)) < 0)
		goto bad;
	for (int i = 0; i < srv->noverrides; i++)
		if (config_override(&nc, srv->overrides[i], err, sizeof(err)) < 0)
			goto bad;
	/* Keys that cannot change without a restart keep their running value. */
	for (size_t i = 0; i < nkeys; i++) {
		const struct config_key *k = &keys[i];
		void *oldp = (char *)&srv->cfg + k->offset, *newp = (char *)&nc + k->offset;
		bool changed;
		if (k->reloadable)
			continue;
		if (k->type == CT_STRING || k->type == CT_LISTEN || k->type == CT_SERVERS ||
		    k->type == CT_OPT_LISTEN) {
			changed = !same(*(char **)oldp, *(char **)newp);
			if (changed) {
				char *tmp = *(char **)newp;
				*(char **)newp = *(char **)oldp;
				*(char **)oldp = tmp;
			}
		} else {
			changed = *(long *)oldp != *(long *)newp;
			*(long *)newp = *(long *)oldp;
		}
		if (changed)
			log_warn(&srv->log,
			         "reload: [%s] %s changed; it takes effect after a restart",
			         k->section, k->name);
	}
	if ((strcmp(nc.servers, srv->cfg.servers) != 0 || nc.connections != srv->cfg.connections) &&
	    switch_upstream(srv, &nc) < 0) {
		/* Keep the running upstream, and say so in the configuration. */
		char *tmp = nc.servers;
		nc.servers = srv->cfg.servers;
		srv->cfg.servers = tmp;
		nc.connections = srv->cfg.connections;
	}
	config_free(&srv->cfg);
	srv->cfg = nc;
	apply_settings(srv);
	log_info(&srv->log, "configuration reloaded");
	notify(&srv->log, "READY=1\nSTATUS=configuration reloaded");
	return;
bad:
	log_error(&srv->log, "reload failed, keeping the running configuration: %s", err);
	config_free(&nc);
	notify(&srv->log, "READY=1\nSTATUS=reload failed; running configuration kept");
}

void server_stop(struct server *srv, const char *why)
{
	double limit;

	if (srv->stopping)
		return;
	srv->stopping = true;
	log_info(&srv->log, "%s: stopping; answering %zu in-flight keys first", why,
	         srv->inflight.live);
	notify(&srv->log, "STOPPING=1");
	for (size_t i = 0; i < srv->nlisteners; i++)
		listener_close(&srv->listeners[i]);
	batch_flush_all(&srv->batcher, true);
	for (struct conn *c = srv->conns; c; c = c->next)
		conn_finish(c);
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
