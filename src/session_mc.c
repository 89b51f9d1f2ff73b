/*
 * session_mc: memcached text commands in, memcached reply bytes out.
 *
 *   conn bytes -> pc_parse -> handle: get/gets -> request -> inflight_join
 *                                     others   -> conn_reply / local request
 *   request complete -> compose -> conn output (VALUE headers, shared values)
 */
#include "session_mc.h"

#include "config.h"
#include "inflight.h"
#include "log.h"
#include "mc_write.h"
#include "proto_client.h"
#include "request.h"
#include "server.h"
#include "stats.h"
#include "value.h"
#include "version.h"
#include "workers.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static struct pc_parser *parser_of(const struct conn *c)
{
	return c->session;
}

static void configure(struct conn *c)
{
	struct pc_parser *p = parser_of(c);
	const struct config *cfg = &c->srv->cfg;

	p->max_line = (size_t)cfg->max_line_bytes;
	p->max_keys = (uint32_t)cfg->max_keys_per_request;
	p->max_value = (size_t)cfg->max_value_bytes;
}

static int init(struct conn *c)
{
	struct pc_parser *p = malloc(sizeof(*p));

	if (!p)
		return -1;
	pc_init(p, (size_t)c->srv->cfg.max_line_bytes);
	c->session = p;
	configure(c);
	return 0;
}

static void destroy(struct conn *c)
{
	struct pc_parser *p = parser_of(c);

	if (p) {
		pc_free(p);
		free(p);
	}
	c->session = NULL;
}

static bool partial(const struct conn *c)
{
	return parser_of(c)->swallow > 0;
}

/* A storage command's data block must be buffered whole. */
static size_t max_line(const struct conn *c)
{
	const struct pc_parser *p = parser_of(c);

	return p->need > p->max_line ? p->need : p->max_line;
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

/* "VALUE <key> <flags> <bytes>[ <cas>]\r\n", written in place. */
static int value_header(struct conn *c, const struct slot *s, const struct value *v, bool cas)
{
	char *start = conn_out_reserve(c, s->keylen + 3 * 20 + 16), *p = start;

	if (!p)
		return -1;
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
	conn_out_commit(c, (size_t)(p - start));
	return 0;
}

static int compose_get(struct conn *c, struct request *r)
{
	hist_add(&c->srv->stats.request_seconds, ev_now(c->srv->loop) - r->since);
	for (uint32_t i = 0; i < r->nslots; i++) {
		if (r->slots[i].state == SLOT_ERROR) {
			const char *why = r->err ? r->err : "upstream unavailable";
			if (conn_out_bytes(c, "SERVER_ERROR ", 13) < 0 ||
			    conn_out_bytes(c, why, strlen(why)) < 0)
				return -1;
			return conn_out_bytes(c, "\r\n", 2);
		}
	}
	for (uint32_t i = 0; i < r->nslots; i++) {
		struct slot *s = &r->slots[i];
		struct value *v = s->value;
		if (s->state != SLOT_HIT)
			continue;
		if (value_header(c, s, v, r->op == MC_GETS) < 0)
			return -1;
		s->value = NULL;
		if (conn_out_value(c, v) < 0)
			return -1;
	}
	return conn_out_bytes(c, "END\r\n", 5);
}

static int compose_stats(struct conn *c)
{
	struct server *srv = c->srv;
	uint64_t uptime = (uint64_t)(time(NULL) - srv->started);
	struct stats_view view;
	size_t n;
	char *p;

	if (stats_view_open(srv, &view) < 0)
		return -1;
	n = stats_format(view.st, getpid(), uptime, COALESCED_VERSION, NULL, 0);
	p = conn_out_reserve(c, n + 1);
	if (p)
		conn_out_commit(
		    c, stats_format(view.st, getpid(), uptime, COALESCED_VERSION, p, n + 1));
	stats_view_close(&view);
	return p ? 0 : -1;
}

/* stats reset and stats detail on|off hold for every worker thread. */
static void reset_worker(struct server *w, void *arg)
{
	(void)arg;
	stats_reset(&w->stats);
}

static void detail_worker(struct server *w, void *arg)
{
	w->stats.detail.off = *(const bool *)arg;
}

/* One STAT line, formatted into the output. */
static int stat_line(struct conn *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int stat_line(struct conn *c, const char *fmt, ...)
{
	va_list ap;
	int n;
	char *p;

	va_start(ap, fmt);
	n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0 || !(p = conn_out_reserve(c, (size_t)n + 1)))
		return -1;
	va_start(ap, fmt);
	vsnprintf(p, (size_t)n + 1, fmt, ap);
	va_end(ap);
	conn_out_commit(c, (size_t)n);
	return 0;
}

/* `stats settings`: the effective configuration, one STAT line a key named
 * section.key, after the few names monitoring tools look for in memcached's. */
static int compose_settings(struct conn *c)
{
	const struct config *cfg = &c->srv->cfg;
	size_t nkeys;
	const struct config_key *keys = config_keys(&nkeys);
	int rc = 0;

	rc |= stat_line(c, "STAT maxconns %ld\r\n", cfg->max_clients);
	rc |= stat_line(c, "STAT item_size_max %d\r\n", 1024 * 1024);
	rc |= stat_line(c, "STAT evictions off\r\n");
	for (size_t i = 0; i < nkeys && rc == 0; i++) {
		const struct config_key *k = &keys[i];
		const void *v = (const char *)cfg + k->offset;
		switch (k->type) {
		case CT_INT:
			rc |= stat_line(c, "STAT %s.%s %ld\r\n", k->section, k->name,
			                *(const long *)v);
			break;
		case CT_DOUBLE:
			rc |= stat_line(c, "STAT %s.%s %g\r\n", k->section, k->name,
			                *(const double *)v);
			break;
		case CT_BOOL:
			rc |= stat_line(c, "STAT %s.%s %s\r\n", k->section, k->name,
			                *(const bool *)v ? "yes" : "no");
			break;
		case CT_ENUM:
			rc |= stat_line(c, "STAT %s.%s %s\r\n", k->section, k->name,
			                k->enum_names[*(const long *)v]);
			break;
		default: {
			/* Strings (addresses, a user name) hold no CR or LF: the loader
			 * takes one line per value. Empty shows as "-". */
			const char *s = *(char *const *)v;
			/* A secret is never shown, only whether there is one. */
			if (s && s[0] && strcmp(k->name, "password") == 0)
				s = "(set)";
			rc |= stat_line(c, "STAT %s.%s %s\r\n", k->section, k->name,
			                s && s[0] ? s : "-");
			break;
		}
		}
	}
	return rc ? -1 : conn_out_bytes(c, "END\r\n", 5);
}

/* `stats conns`: one group of lines per client connection, as memcached
 * names them (the number is the connection's id, not its descriptor). */
struct conns_arg {
	struct conn *c;
	int rc;
};

/* One worker's clients (any worker's: their lines go into c's output). */
static void conns_of(struct server *w, void *arg)
{
	struct conns_arg *a = arg;
	struct conn *c = a->c;
	double now = ev_now(w->loop);

	for (struct conn *o = w->conns; o && a->rc == 0; o = o->next) {
		const char *state = o->paused    ? "conn_paused"
		                    : o->rq_head ? "conn_waiting"
		                                 : "conn_read";
		a->rc |= stat_line(c, "STAT %" PRIu64 ":addr %s\r\n", o->id, o->name);
		a->rc |= stat_line(c, "STAT %" PRIu64 ":state %s\r\n", o->id, state);
		a->rc |= stat_line(c, "STAT %" PRIu64 ":secs_since_last_cmd %.0f\r\n", o->id,
		                   now - o->last_active);
		a->rc |= stat_line(c, "STAT %" PRIu64 ":pending_requests %u\r\n", o->id, o->nreq);
		a->rc |= stat_line(c, "STAT %" PRIu64 ":thread %" PRIu32 "\r\n", o->id, w->id + 1);
	}
}

static int compose_conns(struct conn *c)
{
	struct conns_arg a = {c, 0};

	workers_visit(c->srv, conns_of, &a);
	return a.rc ? -1 : conn_out_bytes(c, "END\r\n", 5);
}

static int compose(struct conn *c, struct request *r)
{
	switch (r->op) {
	case MC_GET:
	case MC_GETS:
		return compose_get(c, r);
	case MC_STATS:
		return compose_stats(c);
	case MC_STATS_SETTINGS:
		return compose_settings(c);
	case MC_STATS_CONNS:
		return compose_conns(c);
	case MC_WRITE:
	case MC_MG:
		return mc_write_compose(c, r);
	}
	return -1;
}

static void start_get(struct conn *c, const struct pc_cmd *cmd)
{
	static const char oom[] = "SERVER_ERROR out of memory\r\n";
	struct server *srv = c->srv;
	struct request *r;
	size_t keybytes = 0;

	srv->stats.cmd_get++;
	srv->stats.get_keys += cmd->nkeys;
	/* Over the value memory budget: refuse new reads until it drains,
	 * rather than let one storm take the machine's memory. */
	if (value_bytes_now(srv->stats.vb) >= (uint64_t)srv->cfg.max_memory_mb << 20) {
		srv->stats.out_of_memory++;
		log_limited(&srv->log, LVL_WARN, &srv->ll->memory,
		            "max_memory_mb (%ld) reached by values in flight: refusing reads",
		            srv->cfg.max_memory_mb);
		conn_reply(c, oom, sizeof(oom) - 1);
		return;
	}
	for (uint32_t i = 0; i < cmd->nkeys; i++)
		keybytes += cmd->keys[i].len;
	r = request_new_read(c, cmd->type == PC_GETS ? MC_GETS : MC_GET, cmd->nkeys, keybytes);
	if (!r) {
		conn_reply(c, oom, sizeof(oom) - 1);
		return;
	}
	for (uint32_t i = 0; i < cmd->nkeys; i++)
		request_set_key(r, i, cmd->keys[i].p, cmd->keys[i].len);
	r->since = ev_now(srv->loop);
	conn_enqueue(c, r);
}

static bool word_is(const char *args, size_t len, const char *w, size_t *rest)
{
	size_t n = strlen(w);

	if (len < n || memcmp(args, w, n) != 0 || (len > n && args[n] != ' '))
		return false;
	*rest = n;
	return true;
}

/* stats detail on|off|dump, with memcached's replies. */
static void stats_detail(struct conn *c, const char *arg, size_t len)
{
	struct stats *st = &c->srv->stats;
	bool off;
	static const char usage[] = "CLIENT_ERROR usage: stats detail on|off|dump\r\n";

	while (len && *arg == ' ') {
		arg++;
		len--;
	}
	while (len && arg[len - 1] == ' ')
		len--;
	if ((len == 2 && memcmp(arg, "on", 2) == 0) || (len == 3 && memcmp(arg, "off", 3) == 0)) {
		off = len == 3;
		workers_visit(c->srv, detail_worker, &off);
		conn_reply(c, "OK\r\n", 4);
	} else if (len == 4 && memcmp(arg, "dump", 4) == 0) {
		size_t n;
		struct stats_view view;
		char *dump = NULL;
		if (stats_view_open(c->srv, &view) == 0) {
			dump = stats_detail_dump(view.st, &n);
			stats_view_close(&view);
		}
		if (!dump) {
			conn_break(c);
			return;
		}
		conn_reply(c, dump, n);
		free(dump);
	} else {
		st->client_errors++;
		conn_reply(c, usage, sizeof(usage) - 1);
	}
}

static void stats_cmd(struct conn *c, const char *args, size_t len)
{
	struct server *srv = c->srv;
	size_t rest;

	if (len == 0)
		conn_local(c, MC_STATS);
	else if (word_is(args, len, "reset", &rest)) {
		workers_visit(srv, reset_worker, NULL);
		conn_reply(c, "RESET\r\n", 7);
	} else if (word_is(args, len, "detail", &rest))
		stats_detail(c, args + rest, len - rest);
	else if (word_is(args, len, "settings", &rest))
		conn_local(c, MC_STATS_SETTINGS);
	else if (word_is(args, len, "conns", &rest))
		conn_local(c, MC_STATS_CONNS);
	else if (word_is(args, len, "items", &rest) || word_is(args, len, "sizes", &rest))
		/* Nothing is stored here: no items, as an empty memcached says. */
		conn_reply(c, "END\r\n", 5);
	else if (word_is(args, len, "slabs", &rest)) {
		static const char slabs[] =
		    "STAT active_slabs 0\r\nSTAT total_malloced 0\r\nEND\r\n";
		conn_reply(c, slabs, sizeof(slabs) - 1);
	} else {
		/* memcached's answer to a sub-command it does not know. */
		conn_reply(c, "ERROR\r\n", 7);
		srv->stats.client_errors++;
	}
}

static void handle(struct conn *c, enum pc_status st, const struct pc_cmd *cmd)
{
	struct server *srv = c->srv;

	if (cmd->client_error)
		srv->stats.client_errors++;
	if (cmd->unsupported)
		srv->stats.cmd_unsupported++;
	if (cmd->too_many_keys) {
		srv->stats.too_many_keys++;
		log_limited(&srv->log, LVL_INFO, &srv->ll->too_many_keys,
		            "%s: get with more than max_keys_per_request (%ld) keys refused",
		            c->name, srv->cfg.max_keys_per_request);
	}
	if (st == PC_CLOSE) {
		if (cmd->reply)
			conn_reply(c, cmd->reply, strlen(cmd->reply));
		log_limited(&srv->log, LVL_INFO, &srv->ll->bad_input, "%s: closing: %s", c->name,
		            cmd->why ? cmd->why : "bad input");
		conn_stop_reading(c);
		return;
	}
	switch (cmd->type) {
	case PC_GET:
	case PC_GETS:
		start_get(c, cmd);
		break;
	case PC_VERSION: {
		static const char v[] = "VERSION " COALESCED_MC_VERSION "\r\n";
		conn_reply(c, v, sizeof(v) - 1);
		break;
	}
	case PC_QUIT:
		/* Earlier requests are still answered; nothing after quit is read. */
		conn_stop_reading(c);
		break;
	case PC_STATS:
		stats_cmd(c, cmd->args, cmd->argslen);
		break;
	case PC_REPLY:
		conn_reply(c, cmd->reply, strlen(cmd->reply));
		if (cmd->too_large && cmd->nkeys == 1)
			mc_write_drop(c, cmd);
		break;
	case PC_SILENT:
		if (cmd->too_large && cmd->nkeys == 1)
			mc_write_drop(c, cmd);
		break;
	default:
		mc_write_handle(c, cmd);
		break;
	}
}

static bool feed(struct conn *c, const char *buf, size_t len, size_t *used)
{
	struct pc_cmd cmd;
	enum pc_status st = pc_parse(parser_of(c), buf, len, &cmd, used);

	if (st == PC_NEED_MORE)
		return false;
	handle(c, st, &cmd);
	return true;
}

const struct session_ops session_mc_ops = {
    .init = init,
    .feed = feed,
    .compose = compose,
    .partial = partial,
    .configure = configure,
    .destroy = destroy,
    .max_line = max_line,
};
