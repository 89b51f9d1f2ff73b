/* daemon: process-wide setup, signals, reload and stop; see daemon.h. */
#include "daemon.h"

#include "addr.h"
#include "conn.h"
#include "backend.h"
#include "listener.h"
#include "session_resp.h"
#include "metrics.h"
#include "notify.h"

#include <errno.h>
#include <grp.h>
#include <inttypes.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <systemd/sd-daemon.h>
#include <unistd.h>

/* Every 5 s: a line for `systemctl status` (who is here, how well collapsing
 * works), and buffers of idle clients go back to the allocator. */
static void status_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct daemon *d = w->data;
	struct stats_view view;
	const struct stats *st;
	double rate;
	char msg[200];

	(void)loop;
	(void)revents;
	if (stats_view_open(d->workers.w, &view) < 0)
		return;
	st = view.st;
	rate = (double)(st->get_keys - d->status_keys) / w->repeat;
	d->status_keys = st->get_keys;
	snprintf(msg, sizeof(msg),
	         "STATUS=%" PRIu64 " clients, %.0f keys/s, %.1f%% coalesced, %" PRIu64
	         " keys in flight",
	         st->curr_connections, rate,
	         st->get_keys ? 100.0 * (double)st->keys_coalesced / (double)st->get_keys : 0.0,
	         st->inflight_keys);
	stats_view_close(&view);
	notify(&d->log, msg);
}

static void signal_cb(struct ev_loop *loop, ev_signal *w, int revents)
{
	struct daemon *d = w->data;

	(void)loop;
	(void)revents;
	if (w->signum == SIGHUP)
		daemon_reload(d);
	else
		daemon_stop(d, w->signum == SIGINT ? "SIGINT" : "SIGTERM");
}

/* After binding (privileged ports need root): groups, gid, uid, in that order,
 * so that no step runs with privileges it should no longer have. */
static int drop_privileges(struct daemon *d)
{
	const char *user = d->cfg.user;
	struct passwd *pw;

	if (geteuid() != 0) {
		if (user[0])
			log_warn(&d->log, "[server] user = %s ignored: not started as root", user);
		return 0;
	}
	if (!user[0]) {
		log_warn(&d->log, "running as root; set [server] user to drop privileges");
		return 0;
	}
	errno = 0;
	pw = getpwnam(user);
	if (!pw) {
		log_error(&d->log, "[server] user: no user '%s'%s%s", user, errno ? ": " : "",
		          errno ? strerror(errno) : "");
		return -1;
	}
	if (initgroups(pw->pw_name, pw->pw_gid) < 0 || setgid(pw->pw_gid) < 0 ||
	    setuid(pw->pw_uid) < 0) {
		log_error(&d->log, "cannot become user %s: %s", user, strerror(errno));
		return -1;
	}
	/* Make sure there is no way back. */
	if (pw->pw_uid != 0 && setuid(0) == 0) {
		log_error(&d->log, "dropping privileges to %s did not stick", user);
		return -1;
	}
	log_info(&d->log, "running as user %s (uid %ld, gid %ld)", user, (long)pw->pw_uid,
	         (long)pw->pw_gid);
	return 0;
}

/* Sockets passed by the service manager (socket activation) replace
 * [server] listen. */
static int open_listeners(struct daemon *d)
{
	struct addr_list listen, rlisten = {0};
	char err[512];
	size_t n;
	int nfds = sd_listen_fds(1);

	if (nfds < 0) {
		log_error(&d->log, "socket activation: %s", strerror(-nfds));
		return -1;
	}
	if (addr_list_parse(d->cfg.listen, true, &listen, err, sizeof(err)) < 0) {
		log_error(&d->log, "%s", err);
		return -1;
	}
	n = nfds > 0 ? (size_t)nfds : listen.n;
	/* RESP2 clients: [server] redis_listen, also with socket activation. */
	if (d->cfg.redis_listen[0] &&
	    addr_list_parse(d->cfg.redis_listen, true, &rlisten, err, sizeof(err)) < 0) {
		log_error(&d->log, "[server] redis_listen: %s", err);
		addr_list_free(&listen);
		return -1;
	}
	d->listeners = calloc(n + rlisten.n, sizeof(*d->listeners));
	if (!d->listeners) {
		log_error(&d->log, "out of memory");
		addr_list_free(&listen);
		addr_list_free(&rlisten);
		return -1;
	}
	for (size_t i = 0; i < n; i++) {
		int r = nfds > 0 ? listener_adopt(&d->listeners[i], d->workers.w,
		                                  SD_LISTEN_FDS_START + (int)i, err, sizeof(err))
		                 : listener_open(&d->listeners[i], d->workers.w, &listen.v[i], err,
		                                 sizeof(err));
		if (r < 0) {
			log_error(&d->log, "%s", err);
			addr_list_free(&listen);
			addr_list_free(&rlisten);
			return -1;
		}
		d->nlisteners++;
	}
	for (size_t i = 0; i < rlisten.n; i++) {
		struct listener *l = &d->listeners[n + i];
		if (listener_open(l, d->workers.w, &rlisten.v[i], err, sizeof(err)) < 0) {
			log_error(&d->log, "%s", err);
			addr_list_free(&listen);
			addr_list_free(&rlisten);
			return -1;
		}
		l->ops = &session_resp_ops;
		d->nlisteners++;
	}
	addr_list_free(&rlisten);
	if (nfds > 0)
		log_info(&d->log,
		         "socket activation: %d sockets from the service manager; "
		         "[server] listen not used",
		         nfds);
	addr_list_free(&listen);
	return 0;
}

/* More loops than CPUs to run them on makes the loops take turns on a core:
 * each loop's round of events, and so each upstream batch, gets smaller.
 * Measured with two loops on one core: 1 % (200 clients) to 27 % (10
 * clients) less throughput than one loop. */
static void warn_cpus(const struct daemon *d)
{
	cpu_set_t set;
	int ncpu;

	if (d->workers.n <= 1 || sched_getaffinity(0, sizeof(set), &set) != 0)
		return;
	ncpu = CPU_COUNT(&set);
	if (ncpu > 0 && (uint32_t)ncpu < d->workers.n)
		log_warn(&d->log,
		         "threads = %u, but this process may run on %d CPU%s only: threads will "
		         "take turns, which costs throughput; set threads to at most %d",
		         d->workers.n, ncpu, ncpu == 1 ? "" : "s", ncpu);
}

int daemon_init(struct daemon *d, struct ev_loop *loop, struct config *cfg, const char *path,
                char **overrides, int noverrides)
{
	char err[512];

	memset(d, 0, sizeof(*d));
	d->loop = loop;
	d->cfg = *cfg;
	memset(cfg, 0, sizeof(*cfg));
	d->config_path = path;
	d->overrides = overrides;
	d->noverrides = noverrides;
	d->log.level = (int)d->cfg.log_level;
	d->log.journal = log_stderr_is_journal();

	/* Signals first: once a listener accepts, a client (or a supervisor's
	 * SIGTERM) may come at any moment. */
	ev_signal_init(&d->sigterm, signal_cb, SIGTERM);
	ev_signal_init(&d->sigint, signal_cb, SIGINT);
	ev_signal_init(&d->sighup, signal_cb, SIGHUP);
	d->sigterm.data = d->sigint.data = d->sighup.data = d;
	ev_signal_start(loop, &d->sigterm);
	ev_signal_start(loop, &d->sigint);
	ev_signal_start(loop, &d->sighup);

	d->workers_up = true;
	if (workers_init(&d->workers, loop, (uint32_t)d->cfg.threads, &d->cfg, &d->log) != EXIT_OK)
		return EXIT_START;
	if (open_listeners(d) < 0)
		return EXIT_START;
	if (d->cfg.metrics_listen[0]) {
		d->metrics = metrics_open(d->workers.w, d->cfg.metrics_listen, err, sizeof(err));
		if (!d->metrics) {
			log_error(&d->log, "%s", err);
			return EXIT_START;
		}
	}
	if (drop_privileges(d) < 0)
		return EXIT_START;
	if (workers_start(&d->workers) < 0) {
		log_error(&d->log, "cannot start %ld threads", d->cfg.threads);
		return EXIT_START;
	}

	for (size_t i = 0; i < d->nlisteners; i++)
		log_info(&d->log, "listening on %s", d->listeners[i].addr.name);
	ev_init(&d->status_timer, status_cb);
	d->status_timer.data = d;
	d->status_timer.repeat = 5.;
	ev_timer_again(loop, &d->status_timer);
	notify(&d->log, "READY=1\nSTATUS=listening");
	if (d->cfg.protocol == PROTO_POSTGRES)
		log_info(&d->log,
		         "coalesced %s: upstream postgres (%ld connections), leeway %g ms, "
		         "max_keys %ld",
		         COALESCED_VERSION, d->cfg.connections, d->cfg.leeway_ms, d->cfg.max_keys);
	else
		log_info(&d->log,
		         "coalesced %s: upstream %s (%s, %ld connections each), leeway %g ms, "
		         "max_keys %ld",
		         COALESCED_VERSION, d->cfg.servers, backend_protocol_name(d->cfg.protocol),
		         d->cfg.connections, d->cfg.leeway_ms, d->cfg.max_keys);
	if (d->workers.n > 1 && d->cfg.protocol == PROTO_POSTGRES)
		log_info(&d->log,
		         "%u threads; the first fetches every key, the only one connected to "
		         "PostgreSQL",
		         d->workers.n);
	else if (d->workers.n > 1)
		log_info(&d->log,
		         "%u threads, each with its own upstream connections; every key has one "
		         "owner thread",
		         d->workers.n);
	warn_cpus(d);
	return EXIT_OK;
}

void daemon_run(struct daemon *d)
{
	ev_run(d->loop, 0);
	workers_join(&d->workers);
}

void daemon_destroy(struct daemon *d)
{
	for (size_t i = 0; i < d->nlisteners; i++)
		listener_close(&d->listeners[i]);
	free(d->listeners);
	d->listeners = NULL;
	d->nlisteners = 0;
	metrics_close(d->metrics);
	d->metrics = NULL;
	ev_timer_stop(d->loop, &d->status_timer);
	ev_signal_stop(d->loop, &d->sigterm);
	ev_signal_stop(d->loop, &d->sigint);
	ev_signal_stop(d->loop, &d->sighup);
	/* Threads that started are joined before anything is freed. */
	workers_join(&d->workers);
	if (d->workers_up)
		workers_destroy(&d->workers);
	d->workers_up = false;
	config_free(&d->cfg);
}

static bool same(const char *a, const char *b)
{
	return strcmp(a, b) == 0;
}

/* Keys that cannot change without a restart keep their running value in nc,
 * with a warning. */
static void keep_restart_keys(struct daemon *d, struct config *nc)
{
	size_t nkeys;
	const struct config_key *keys = config_keys(&nkeys);

	for (size_t i = 0; i < nkeys; i++) {
		const struct config_key *k = &keys[i];
		void *oldp = (char *)&d->cfg + k->offset, *newp = (char *)nc + k->offset;
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
			log_warn(&d->log,
			         "reload: [%s] %s changed; it takes effect after a restart",
			         k->section, k->name);
	}
}

void daemon_reload(struct daemon *d)
{
	struct config nc, wcfg;
	char err[16384];
	const char *e;

	notify(&d->log, "RELOADING=1");
	config_init(&nc);
	if (d->config_path && config_load_file(&nc, d->config_path, err, sizeof(err)) < 0)
		goto bad;
	for (int i = 0; i < d->noverrides; i++)
		if (config_override(&nc, d->overrides[i], err, sizeof(err)) < 0)
			goto bad;
	keep_restart_keys(d, &nc);
	if (config_copy(&wcfg, &nc) < 0) {
		snprintf(err, sizeof(err), "out of memory");
		goto bad;
	}
	/* The worker may keep part of its old configuration (an upstream it
	 * could not switch to); what it runs with is what we keep. */
	workers_configure(&d->workers, &wcfg);
	config_free(&wcfg);
	if (config_copy(&wcfg, &d->workers.w[0].cfg) == 0) {
		config_free(&nc);
		nc = wcfg;
	}
	config_free(&d->cfg);
	d->cfg = nc;
	d->log.level = (int)d->cfg.log_level;
	log_info(&d->log, "configuration reloaded");
	notify(&d->log, "READY=1\nSTATUS=configuration reloaded");
	return;
bad:
	/* One error a line, as the loader reports them. */
	log_error(&d->log, "reload failed, keeping the running configuration:");
	for (e = err; *e;) {
		size_t n = strcspn(e, "\n");
		log_error(&d->log, "  %.*s", (int)n, e);
		e += n + (e[n] == '\n');
	}
	config_free(&nc);
	notify(&d->log, "READY=1\nSTATUS=reload failed; running configuration kept");
}

void daemon_stop(struct daemon *d, const char *why)
{
	if (d->workers.w[0].stopping)
		return;
	notify(&d->log, "STOPPING=1");
	for (size_t i = 0; i < d->nlisteners; i++)
		listener_close(&d->listeners[i]);
	workers_stop(&d->workers, why);
}
