/* workers: threads, loop locks, hand-over of reload and stop, summed
 * statistics; see workers.h. */
#include "workers.h"

#include "conn.h"
#include "listener.h"
#include "upstream.h"
#include "value.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static pthread_mutex_t *lock_of(const struct server *srv)
{
	return &srv->group->locks[srv->id];
}

/* libev calls these around its wait for events. */
static void loop_release(struct ev_loop *loop)
{
	struct server *srv = ev_userdata(loop);

	shard_waiting(srv, true);
	pthread_mutex_unlock(lock_of(srv));
}

static void loop_acquire(struct ev_loop *loop)
{
	struct server *srv = ev_userdata(loop);

	pthread_mutex_lock(lock_of(srv));
	shard_waiting(srv, false);
}

/* What another thread left for this worker (under this loop's lock, which
 * the callback holds). */
static void ctl_cb(struct ev_loop *loop, ev_async *w, int revents)
{
	struct server *srv = w->data;

	(void)revents;
	if (srv->ctl_cfg) {
		struct config *c = srv->ctl_cfg;
		srv->ctl_cfg = NULL;
		server_configure(srv, c);
		config_free(c);
		free(c);
	}
	if (srv->ctl_stop[0]) {
		char why[sizeof(srv->ctl_stop)];
		memcpy(why, srv->ctl_stop, sizeof(why));
		srv->ctl_stop[0] = '\0';
		server_stop(srv, why);
	}
	if (__atomic_load_n(&srv->ctl_exit, __ATOMIC_ACQUIRE))
		ev_break(loop, EVBREAK_ALL);
}

int workers_init(struct workers *g, struct ev_loop *loop0, uint32_t n, const struct config *cfg,
                 const struct log *lg)
{
	memset(g, 0, sizeof(*g));
	g->w = calloc(n, sizeof(*g->w));
	g->locks = calloc(n, sizeof(*g->locks));
	g->tids = calloc(n, sizeof(*g->tids));
	if (!g->w || !g->locks || !g->tids) {
		log_error(lg, "out of memory");
		return EXIT_START;
	}
	for (uint32_t i = 0; i < n; i++) {
		struct server *srv = &g->w[i];
		struct ev_loop *loop = i == 0 ? loop0 : ev_loop_new(EVFLAG_AUTO);
		struct config wcfg;

		if (!loop) {
			log_error(lg, "cannot start the event loop of thread %u", i + 1);
			return EXIT_START;
		}
		if (config_copy(&wcfg, cfg) < 0) {
			log_error(lg, "out of memory");
			if (i)
				ev_loop_destroy(loop);
			return EXIT_START;
		}
		if (server_init(srv, loop, &wcfg, lg, i, n) != EXIT_OK) {
			config_free(&wcfg);
			if (i)
				ev_loop_destroy(loop);
			return EXIT_START;
		}
		g->n++;
		if (n == 1)
			break;
		srv->group = g;
		srv->ll = &g->w[0].ll_own;
		srv->stats.vb = &g->value_bytes;
		pthread_mutex_init(&g->locks[i], NULL);
		if (shard_init(srv, n) < 0) {
			log_error(lg, "out of memory");
			return EXIT_START;
		}
		ev_async_init(&srv->ctl, ctl_cb);
		srv->ctl.data = srv;
		ev_async_start(loop, &srv->ctl);
		ev_set_userdata(loop, srv);
		ev_set_loop_release_cb(loop, loop_release, loop_acquire);
	}
	return EXIT_OK;
}

static void *run(void *arg)
{
	struct server *srv = arg;

	pthread_mutex_lock(lock_of(srv));
	ev_run(srv->loop, 0);
	pthread_mutex_unlock(lock_of(srv));
	return NULL;
}

int workers_start(struct workers *g)
{
	sigset_t all, old;
	int rc = 0;

	if (g->n == 1)
		return 0;
	/* The main thread, running worker 0, handles the signals. */
	pthread_mutex_lock(&g->locks[0]);
	g->running = true;
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, &old);
	for (uint32_t i = 1; i < g->n; i++) {
		if (pthread_create(&g->tids[i], NULL, run, &g->w[i]) != 0) {
			rc = -1;
			break;
		}
		g->nstarted++;
	}
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	return rc;
}

void workers_join(struct workers *g)
{
	if (!g->running)
		return;
	g->running = false;
	/* Worker 0 is done; make sure the others know it even if their stop
	 * came another way. */
	for (uint32_t i = 1; i <= g->nstarted; i++) {
		__atomic_store_n(&g->w[i].ctl_exit, true, __ATOMIC_RELEASE);
		ev_async_send(g->w[i].loop, &g->w[i].ctl);
	}
	pthread_mutex_unlock(&g->locks[0]);
	for (uint32_t i = 1; i <= g->nstarted; i++)
		pthread_join(g->tids[i], NULL);
	g->nstarted = 0;
}

void workers_destroy(struct workers *g)
{
	if (!g->w)
		return;
	for (uint32_t i = 0; i < g->n; i++) {
		struct server *srv = &g->w[i];
		if (srv->ctl_cfg) {
			config_free(srv->ctl_cfg);
			free(srv->ctl_cfg);
		}
		if (srv->group)
			ev_async_stop(srv->loop, &srv->ctl);
	}
	/* Every worker's in-flight table goes before any loop: values and
	 * messages cross threads, their memory does not depend on a loop. */
	for (uint32_t i = 0; i < g->n; i++) {
		struct ev_loop *loop = g->w[i].loop;
		server_destroy(&g->w[i]);
		if (i)
			ev_loop_destroy(loop);
		if (g->w[i].group)
			pthread_mutex_destroy(&g->locks[i]);
	}
	free(g->w);
	free(g->locks);
	free(g->tids);
	memset(g, 0, sizeof(*g));
}

/* fn on every other worker, each with its loop held; self lets go of its own
 * meanwhile, so that no thread ever waits holding a lock. */
static void each_other(struct server *self, void (*fn)(struct server *w, void *arg), void *arg)
{
	struct workers *g = self->group;

	pthread_mutex_unlock(lock_of(self));
	for (uint32_t i = 0; i < g->n; i++) {
		if (i == self->id)
			continue;
		pthread_mutex_lock(&g->locks[i]);
		fn(&g->w[i], arg);
		pthread_mutex_unlock(&g->locks[i]);
	}
	pthread_mutex_lock(lock_of(self));
}

void workers_visit(struct server *self, void (*fn)(struct server *w, void *arg), void *arg)
{
	fn(self, arg);
	if (self->group)
		each_other(self, fn, arg);
}

static void hand_config(struct server *w, void *arg)
{
	struct config *c = malloc(sizeof(*c));

	if (!c || config_copy(c, arg) < 0) {
		free(c);
		log_error(&w->log, "reload: out of memory; thread %u keeps its configuration",
		          w->id + 1);
		return;
	}
	if (w->ctl_cfg) {
		config_free(w->ctl_cfg);
		free(w->ctl_cfg);
	}
	w->ctl_cfg = c;
	ev_async_send(w->loop, &w->ctl);
}

/* Until w has taken up its new configuration (its loop does so at once,
 * unless it is busy), for at most a second: when the reload is reported,
 * every worker runs with it. */
static void await_config(struct server *w, void *arg)
{
	struct workers *g = arg;
	const struct timespec ms = {0, 1000000};

	for (int i = 0; i < 1000 && w->ctl_cfg; i++) {
		pthread_mutex_unlock(&g->locks[w->id]);
		nanosleep(&ms, NULL);
		pthread_mutex_lock(&g->locks[w->id]);
	}
}

void workers_configure(struct workers *g, struct config *nc)
{
	struct server *w0 = &g->w[0];

	server_configure(w0, nc);
	/* The others take what worker 0 runs with, so that all agree. */
	if (w0->group) {
		each_other(w0, hand_config, &w0->cfg);
		each_other(w0, await_config, g);
	}
}

static void hand_stop(struct server *w, void *arg)
{
	snprintf(w->ctl_stop, sizeof(w->ctl_stop), "%s", (const char *)arg);
	ev_async_send(w->loop, &w->ctl);
}

void workers_stop(struct workers *g, const char *why)
{
	struct server *w0 = &g->w[0];

	if (w0->group)
		each_other(w0, hand_stop, (void *)why);
	server_stop(w0, why);
}

void workers_drained(struct server *srv)
{
	struct workers *g = srv->group;

	if (__atomic_add_fetch(&g->drained, 1, __ATOMIC_ACQ_REL) < g->n)
		return;
	/* The last one: every worker leaves its loop. */
	for (uint32_t i = 0; i < g->n; i++) {
		__atomic_store_n(&g->w[i].ctl_exit, true, __ATOMIC_RELEASE);
		ev_async_send(g->w[i].loop, &g->w[i].ctl);
	}
}

/* Summed statistics. */

static void merge_servers(struct stats_view *v, const struct server *w)
{
	const struct pool *p = w->up ? w->up->pool : NULL;
	uint32_t n = p ? pool_server_count(p) : 0;

	for (uint32_t i = 0; i < n; i++) {
		struct pool_server_info si;
		struct pool_server_info *d = NULL;

		pool_server_info(p, i, &si);
		for (uint32_t j = 0; j < v->nservers && !d; j++)
			if (strcmp(v->servers[j].name, si.name) == 0)
				d = &v->servers[j];
		if (!d)
			continue; /* not in the list of the worker asking (a reload under way) */
		d->up = d->up || si.up;
		d->ejected = d->ejected || si.ejected;
		d->connections_up += si.connections_up;
		if (si.failures > d->failures)
			d->failures = si.failures;
		d->errors += si.errors;
		/* Each thread ejects by itself, on what it saw: how often the
		 * server was ejected is the most any thread did it. */
		if (si.ejections > d->ejections)
			d->ejections = si.ejections;
		if (si.last_error_at > d->last_error_at)
			d->last_error_at = si.last_error_at;
	}
}

static void add_worker(struct server *w, void *arg)
{
	struct stats_view *v = arg;

	stats_add(&v->sum, &w->stats);
	merge_servers(v, w);
}

static size_t view_servers_format(const void *ctx, char *buf, size_t cap)
{
	const struct stats_view *v = ctx;

	return pool_info_format(v->servers, v->nservers, buf, cap);
}

int stats_view_open(struct server *srv, struct stats_view *v)
{
	const struct pool *p = srv->up ? srv->up->pool : NULL;
	uint32_t n = p ? pool_server_count(p) : 0;

	memset(v, 0, sizeof(*v));
	if (n) {
		v->servers = calloc(n, sizeof(*v->servers));
		if (!v->servers)
			return -1;
		v->nservers = n;
		/* The asking worker's list; with threads, figures are summed below. */
		for (uint32_t i = 0; i < n; i++) {
			pool_server_info(p, i, &v->servers[i]);
			if (srv->group) {
				struct pool_server_info *d = &v->servers[i];
				d->up = d->ejected = false;
				d->connections_up = d->failures = 0;
				d->errors = d->ejections = 0;
				d->last_error_at = 0;
				d->last_error = "";
			}
		}
	}
	if (!srv->group) {
		v->st = &srv->stats;
		return 0;
	}
	if (stats_init(&v->sum) < 0) {
		free(v->servers);
		v->servers = NULL;
		return -1;
	}
	v->summed = true;
	v->sum.detail.off = srv->stats.detail.off;
	workers_visit(srv, add_worker, v);
	v->sum.value_bytes = value_bytes_now(&srv->group->value_bytes);
	v->sum.servers_format = view_servers_format;
	v->sum.servers_ctx = v;
	v->st = &v->sum;
	return 0;
}

void stats_view_close(struct stats_view *v)
{
	if (v->summed)
		stats_free(&v->sum);
	free(v->servers);
	memset(v, 0, sizeof(*v));
}
