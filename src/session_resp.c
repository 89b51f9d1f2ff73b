/*
 * session_resp: RESP2 commands in, RESP2 reply bytes out.
 *
 *   conn bytes -> rp_parse -> dispatch: GET/MGET -> request -> inflight_join
 *                                       INFO     -> local request
 *                                       others   -> conn_reply
 *   request complete -> compose -> conn output ($len headers, shared values)
 *
 * Replies and error texts follow Redis 7.0, so that a client sees the bytes
 * Redis itself would send.
 */
#include "session_resp.h"

#include "backend_memcache.h"
#include "config.h"
#include "inflight.h"
#include "log.h"
#include "proto_resp.h"
#include "proto_respreply.h"
#include "request.h"
#include "server.h"
#include "stats.h"
#include "value.h"
#include "version.h"
#include "workers.h"
#include "write.h"

#include <ctype.h>
#include <stdarg.h>
#include <inttypes.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

/* Request ops (request->op). */
enum { RS_GET = 0, RS_MGET, RS_INFO, RS_WRITE };

struct resp_session {
	struct rp_parser p;
	size_t limit; /* bytes one command may take in the input buffer */
	uint32_t max_keys;
	char *name; /* CLIENT SETNAME; NULL: none */
};

/* The single-key string commands of DESIGN 9 that pass through to a Redis
 * backend, with Redis' arity (negative: at least that many arguments). The
 * key is argv[1]; one_key: the multi-key form is refused. stat: the
 * memcached-named counter it adds to (cmd_set, cmd_delete, ...), if any. */
struct passthru {
	const char *name;
	int arity;
	bool one_key;
	size_t stat;
};
#define NOSTAT SIZE_MAX
#define ST(f) offsetof(struct stats, f)
static const struct passthru passthru[] = {
    {"set", -3, false, ST(cmd_set)},      {"setnx", 3, false, ST(cmd_set)},
    {"setex", 4, false, ST(cmd_set)},     {"psetex", 4, false, ST(cmd_set)},
    {"getset", 3, false, ST(cmd_set)},    {"getdel", 2, false, ST(cmd_delete)},
    {"del", -2, true, ST(cmd_delete)},    {"unlink", -2, true, ST(cmd_delete)},
    {"expire", -3, false, ST(cmd_touch)}, {"pexpire", -3, false, ST(cmd_touch)},
    {"persist", 2, false, ST(cmd_touch)}, {"ttl", 2, false, NOSTAT},
    {"pttl", 2, false, NOSTAT},           {"exists", -2, true, NOSTAT},
    {"incr", 2, false, ST(cmd_incr)},     {"incrby", 3, false, ST(cmd_incr)},
    {"decr", 2, false, ST(cmd_decr)},     {"decrby", 3, false, ST(cmd_decr)},
    {"append", 3, false, ST(cmd_set)},    {"strlen", 2, false, NOSTAT},
};

/* Other commands that write or need the whole keyspace: refused. */
static const char *const refused[] = {
    "mset",      "msetnx",    "getex",      "setrange", "incrbyfloat", "flushdb", "flushall",
    "rename",    "renamenx",  "copy",       "move",     "keys",        "scan",    "expireat",
    "pexpireat", "setbit",    "getrange",   "substr",   "lcs",         "type",    "dbsize",
    "randomkey", "multi",     "exec",       "discard",  "watch",       "unwatch", "eval",
    "evalsha",   "subscribe", "psubscribe", "publish",  NULL};

/* What COMMAND COUNT counts, with the writes passed on. */
static const char *const known[] = {"get",   "mget",   "ping",    "echo", "quit", "select",
                                    "hello", "client", "command", "info", NULL};

static struct resp_session *sess(const struct conn *c)
{
	return c->session;
}

static void configure(struct conn *c)
{
	struct resp_session *s = sess(c);
	const struct config *cfg = &c->srv->cfg;

	/* A key is a bulk: max_line_bytes bounds it as it bounds an inline
	 * command. A whole command may hold max_keys_per_request such keys,
	 * but no more than 64 lines' worth sits in the buffer at once. */
	s->p.max_bulk = (uint64_t)cfg->max_line_bytes;
	s->p.max_inline = (size_t)cfg->max_line_bytes;
	s->max_keys = (uint32_t)cfg->max_keys_per_request;
	s->limit = (size_t)cfg->max_line_bytes * 64;
}

static int init(struct conn *c)
{
	struct resp_session *s = calloc(1, sizeof(*s));

	if (!s)
		return -1;
	rp_init(&s->p);
	c->session = s;
	configure(c);
	return 0;
}

static void destroy(struct conn *c)
{
	struct resp_session *s = sess(c);

	if (s) {
		rp_free(&s->p);
		free(s->name);
		free(s);
	}
	c->session = NULL;
}

static bool partial(const struct conn *c)
{
	(void)c;
	return false;
}

static size_t max_line(const struct conn *c)
{
	const struct resp_session *s = sess(c);
	size_t want = s->p.want > s->limit ? s->limit : s->p.want;

	return want > s->p.max_inline ? want : s->p.max_inline;
}

/* ---- replies ---- */

static void reply_line(struct conn *c, char type, const char *text, size_t len)
{
	size_t n = rr_put_line(NULL, 0, type, text, len);
	char *buf = malloc(n);

	if (!buf) {
		conn_break(c);
		return;
	}
	rr_put_line(buf, n, type, text, len);
	conn_reply(c, buf, n);
	free(buf);
}

static void reply_err(struct conn *c, const char *text)
{
	reply_line(c, '-', text, strlen(text));
}

static void reply_errf(struct conn *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void reply_errf(struct conn *c, const char *fmt, ...)
{
	char buf[600];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	if (n < 0)
		n = 0;
	if ((size_t)n >= sizeof(buf))
		n = sizeof(buf) - 1;
	reply_line(c, '-', buf, (size_t)n);
}

static void reply_bulk(struct conn *c, const char *p, size_t len)
{
	size_t n = rr_put_bulk(NULL, 0, p, len);
	char *buf = malloc(n);

	if (!buf) {
		conn_break(c);
		return;
	}
	rr_put_bulk(buf, n, p, len);
	conn_reply(c, buf, n);
	free(buf);
}

static void reply_int(struct conn *c, int64_t v)
{
	char buf[RR_HDR_MAX];

	conn_reply(c, buf, rr_put_hdr(buf, sizeof(buf), ':', v));
}

#define REPLY_LIT(c, s) conn_reply((c), (s), sizeof(s) - 1)

/* A command argument as Redis' %s shows it: up to its first NUL. */
static int shown(const struct rp_arg *a, int max)
{
	const char *nul = memchr(a->p, '\0', a->len);
	size_t n = nul ? (size_t)(nul - a->p) : a->len;

	return n > (size_t)max ? max : (int)n;
}

static bool is(const struct rp_arg *a, const char *name)
{
	size_t n = strlen(name);

	return a->len == n && strncasecmp(a->p, name, n) == 0;
}

static void arity(struct conn *c, const char *fullname)
{
	reply_errf(c, "ERR wrong number of arguments for '%s' command", fullname);
}

static void unknown_command(struct conn *c, const struct rp_cmd *cmd)
{
	char args[300];
	size_t n = 0;

	args[0] = '\0';
	/* Redis quotes arguments until their text reaches 128 bytes. */
	for (uint32_t i = 1; i < cmd->argc && n < 128; i++) {
		int w = snprintf(args + n, sizeof(args) - n, "'%.*s' ",
		                 shown(&cmd->argv[i], (int)(128 - n)), cmd->argv[i].p);
		if (w < 0)
			break;
		n += (size_t)w;
	}
	reply_errf(c, "ERR unknown command '%.*s', with args beginning with: %s",
	           shown(&cmd->argv[0], 128), cmd->argv[0].p, args);
}

static void unknown_subcommand(struct conn *c, const struct rp_cmd *cmd, const char *upper)
{
	reply_errf(c, "ERR unknown subcommand '%.*s'. Try %s HELP.", shown(&cmd->argv[1], 128),
	           cmd->argv[1].p, upper);
}

/* ---- reads ---- */

static void start_read(struct conn *c, const struct rp_cmd *cmd, uint8_t op)
{
	static const char oom[] = "-ERR out of memory\r\n";
	struct server *srv = c->srv;
	uint32_t nkeys = cmd->argc - 1;
	size_t keybytes = 0;
	struct request *r;

	srv->stats.cmd_get++;
	srv->stats.get_keys += nkeys;
	if (nkeys > sess(c)->max_keys) {
		srv->stats.too_many_keys++;
		log_limited(&srv->log, LVL_INFO, &srv->ll->too_many_keys,
		            "%s: MGET with more than max_keys_per_request (%ld) keys refused",
		            c->name, srv->cfg.max_keys_per_request);
		REPLY_LIT(c, "-ERR too many keys\r\n");
		return;
	}
	if (value_bytes_now(srv->stats.vb) >= (uint64_t)srv->cfg.max_memory_mb << 20) {
		srv->stats.out_of_memory++;
		log_limited(&srv->log, LVL_WARN, &srv->ll->memory,
		            "max_memory_mb (%ld) reached by values in flight: refusing reads",
		            srv->cfg.max_memory_mb);
		REPLY_LIT(c, oom);
		return;
	}
	for (uint32_t i = 0; i < nkeys; i++)
		keybytes += cmd->argv[i + 1].len;
	r = request_new_read(c, op, nkeys, keybytes);
	if (!r) {
		REPLY_LIT(c, oom);
		return;
	}
	for (uint32_t i = 0; i < nkeys; i++)
		request_set_key(r, i, cmd->argv[i + 1].p, cmd->argv[i + 1].len);
	r->since = ev_now(srv->loop);
	conn_enqueue(c, r);
}

/* One bulk header (or nil) in place, then the value by reference. */
static int out_slot(struct conn *c, struct slot *s)
{
	char hdr[RR_HDR_MAX];

	if (s->state != SLOT_HIT)
		return conn_out_bytes(c, RR_NULL_BULK, sizeof(RR_NULL_BULK) - 1);
	if (conn_out_bytes(c, hdr, rr_put_hdr(hdr, sizeof(hdr), '$', (int64_t)s->value->len)) < 0)
		return -1;
	struct value *v = s->value;
	s->value = NULL;
	return conn_out_value(c, v);
}

static int compose_read(struct conn *c, struct request *r)
{
	char hdr[RR_HDR_MAX];

	hist_add(&c->srv->stats.request_seconds, ev_now(c->srv->loop) - r->since);
	for (uint32_t i = 0; i < r->nslots; i++) {
		if (r->slots[i].state == SLOT_ERROR) {
			const char *why = r->err ? r->err : "upstream unavailable";
			char line[400];
			int n;
			/* The memcached backend's refusal of a key it cannot carry. */
			if (strcmp(why, MC_BAD_KEY) == 0)
				why = "invalid key";
			n = snprintf(line, sizeof(line), "ERR %s", why);
			if (n < 0)
				return -1;
			if ((size_t)n >= sizeof(line))
				n = sizeof(line) - 1;
			size_t len = rr_put_line(NULL, 0, '-', line, (size_t)n);
			char *p = conn_out_reserve(c, len);
			if (!p)
				return -1;
			conn_out_commit(c, rr_put_line(p, len, '-', line, (size_t)n));
			return 0;
		}
	}
	if (r->op == RS_MGET &&
	    conn_out_bytes(c, hdr, rr_put_hdr(hdr, sizeof(hdr), '*', r->nslots)) < 0)
		return -1;
	for (uint32_t i = 0; i < r->nslots; i++) {
		if (out_slot(c, &r->slots[i]) < 0)
			return -1;
	}
	return 0;
}

/* ---- INFO ---- */

struct sbuf {
	char *p;
	size_t len, cap;
	bool oom;
};

static void sb_printf(struct sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sb_printf(struct sbuf *b, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (b->oom)
		return;
	va_start(ap, fmt);
	n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0) {
		b->oom = true;
		return;
	}
	if (b->len + (size_t)n + 1 > b->cap) {
		size_t cap = (b->cap ? b->cap * 2 : 2048) + (size_t)n;
		char *np = realloc(b->p, cap);
		if (!np) {
			b->oom = true;
			return;
		}
		b->p = np;
		b->cap = cap;
	}
	va_start(ap, fmt);
	vsnprintf(b->p + b->len, (size_t)n + 1, fmt, ap);
	va_end(ap);
	b->len += (size_t)n;
}

/* Redis' INFO layout ("# Section", "name:value" lines, CRLF, a blank line
 * between sections), filled from the counters `stats` shows. */
static int compose_info(struct conn *c)
{
	struct server *srv = c->srv;
	struct stats_view view;
	const struct stats *st;
	uint64_t uptime = (uint64_t)(time(NULL) - srv->started);
	const struct stat_counter *ctr;
	size_t nctr = stats_counters(&ctr);
	struct sbuf b = {0};
	char hdr[RR_HDR_MAX];
	int rc;

	if (stats_view_open(srv, &view) < 0)
		return -1;
	st = view.st;
	sb_printf(&b,
	          "# Server\r\nredis_version:%s\r\nredis_mode:standalone\r\n"
	          "coalesced_version:%s\r\nprocess_id:%ld\r\nuptime_in_seconds:%" PRIu64
	          "\r\nuptime_in_days:%" PRIu64 "\r\n\r\n",
	          SESSION_RESP_REDIS_VERSION, COALESCED_VERSION, (long)getpid(), uptime,
	          uptime / 86400);
	sb_printf(&b, "# Clients\r\nconnected_clients:%" PRIu64 "\r\nmaxclients:%ld\r\n\r\n",
	          st->curr_connections, srv->cfg.max_clients);
	sb_printf(&b,
	          "# Stats\r\ntotal_connections_received:%" PRIu64
	          "\r\nrejected_connections:%" PRIu64 "\r\ntotal_net_input_bytes:%" PRIu64
	          "\r\ntotal_net_output_bytes:%" PRIu64 "\r\nkeyspace_hits:%" PRIu64
	          "\r\nkeyspace_misses:%" PRIu64 "\r\n\r\n",
	          st->total_connections, st->rejected_connections, st->bytes_read,
	          st->bytes_written, st->get_hits, st->get_misses);
	sb_printf(&b, "# Coalesced\r\n");
	for (size_t i = 0; i < nctr; i++)
		sb_printf(&b, "%s:%" PRIu64 "\r\n", ctr[i].name,
		          *(const uint64_t *)((const char *)st + ctr[i].off));
	sb_printf(&b, "\r\n# Keyspace\r\n");
	stats_view_close(&view);
	if (b.oom) {
		free(b.p);
		return -1;
	}
	rc = conn_out_bytes(c, hdr, rr_put_hdr(hdr, sizeof(hdr), '$', (int64_t)b.len));
	if (rc == 0)
		rc = conn_out_bytes(c, b.p, b.len);
	if (rc == 0)
		rc = conn_out_bytes(c, "\r\n", 2);
	free(b.p);
	return rc;
}

/* The upstream's reply as it came, or -ERR with why there is none. */
static int compose_write(struct conn *c, struct request *r)
{
	struct upwrite *w = r->w;
	int rc = 0;

	if (w->reply && !w->error) {
		rc = conn_out_bytes(c, w->reply, w->replylen);
	} else {
		const char *why = w->error ? w->error : "out of memory";
		char line[400];
		int n = snprintf(line, sizeof(line), "ERR %s", why);
		size_t len;
		char *p;
		if (n < 0)
			n = 0;
		if ((size_t)n >= sizeof(line))
			n = sizeof(line) - 1;
		len = rr_put_line(NULL, 0, '-', line, (size_t)n);
		p = conn_out_reserve(c, len);
		if (!p)
			rc = -1;
		else
			conn_out_commit(c, rr_put_line(p, len, '-', line, (size_t)n));
	}
	return rc;
}

static int compose(struct conn *c, struct request *r)
{
	switch (r->op) {
	case RS_WRITE:
		return compose_write(c, r);
	case RS_GET:
	case RS_MGET:
		return compose_read(c, r);
	case RS_INFO:
		return compose_info(c);
	}
	return -1;
}

/* ---- local commands ---- */

static void hello(struct conn *c, const struct rp_cmd *cmd)
{
	struct resp_session *s = sess(c);
	const struct rp_arg *setname = NULL;
	char buf[512];
	int n;

	if (cmd->argc >= 2) {
		int64_t ver;
		if (!rp_strtoll(cmd->argv[1].p, cmd->argv[1].len, &ver)) {
			reply_err(c, "ERR Protocol version is not an integer or out of range");
			return;
		}
		/* RESP3 is not spoken: clients fall back to RESP2 on NOPROTO. */
		if (ver != 2) {
			reply_err(c, "NOPROTO unsupported protocol version");
			return;
		}
	}
	for (uint32_t j = 2; j < cmd->argc; j++) {
		uint32_t more = cmd->argc - 1 - j;
		if (is(&cmd->argv[j], "AUTH") && more >= 2) {
			/* No users here: the upstream's credentials are coalesced's. */
			j += 2;
		} else if (is(&cmd->argv[j], "SETNAME") && more >= 1) {
			setname = &cmd->argv[++j];
		} else {
			reply_errf(c, "ERR Syntax error in HELLO option '%.*s'",
			           shown(&cmd->argv[j], 128), cmd->argv[j].p);
			return;
		}
	}
	if (setname) {
		char *nm = strndup(setname->p, setname->len);
		if (!nm) {
			conn_break(c);
			return;
		}
		free(s->name);
		s->name = nm;
	}
	n = snprintf(buf, sizeof(buf),
	             "*14\r\n$6\r\nserver\r\n$5\r\nredis\r\n$7\r\nversion\r\n$%zu\r\n%s\r\n"
	             "$5\r\nproto\r\n:2\r\n$2\r\nid\r\n:%" PRIu64 "\r\n$4\r\nmode\r\n"
	             "$10\r\nstandalone\r\n$4\r\nrole\r\n$6\r\nmaster\r\n$7\r\nmodules\r\n*0\r\n",
	             strlen(SESSION_RESP_REDIS_VERSION), SESSION_RESP_REDIS_VERSION, c->id);
	conn_reply(c, buf, (size_t)n);
}

static bool name_ok(const struct rp_arg *a)
{
	for (size_t i = 0; i < a->len; i++) {
		if (a->p[i] < '!' || a->p[i] > '~')
			return false;
	}
	return true;
}

static void client(struct conn *c, const struct rp_cmd *cmd)
{
	struct resp_session *s = sess(c);
	const struct rp_arg *sub = &cmd->argv[1];

	if (cmd->argc < 2) {
		arity(c, "client");
	} else if (is(sub, "SETNAME")) {
		if (cmd->argc != 3) {
			arity(c, "client|setname");
		} else if (!name_ok(&cmd->argv[2])) {
			reply_err(c, "ERR Client names cannot contain spaces, newlines or special "
			             "characters.");
		} else {
			char *nm =
			    cmd->argv[2].len ? strndup(cmd->argv[2].p, cmd->argv[2].len) : NULL;
			if (cmd->argv[2].len && !nm) {
				conn_break(c);
				return;
			}
			free(s->name);
			s->name = nm;
			REPLY_LIT(c, "+OK\r\n");
		}
	} else if (is(sub, "GETNAME")) {
		if (cmd->argc != 2)
			arity(c, "client|getname");
		else if (s->name)
			reply_bulk(c, s->name, strlen(s->name));
		else
			REPLY_LIT(c, RR_NULL_BULK);
	} else if (is(sub, "SETINFO")) {
		if (cmd->argc != 4)
			arity(c, "client|setinfo");
		else if (is(&cmd->argv[2], "lib-name") || is(&cmd->argv[2], "lib-ver"))
			REPLY_LIT(c, "+OK\r\n");
		else
			reply_errf(c, "ERR Unrecognized option '%.*s'", shown(&cmd->argv[2], 128),
			           cmd->argv[2].p);
	} else if (is(sub, "ID")) {
		if (cmd->argc != 2)
			arity(c, "client|id");
		else
			reply_int(c, (int64_t)c->id);
	} else {
		unknown_subcommand(c, cmd, "CLIENT");
	}
}

/* Commands answered here or passed on. */
static int64_t command_count(void)
{
	int64_t n = (int64_t)(sizeof(passthru) / sizeof(passthru[0]));

	for (size_t i = 0; known[i]; i++)
		n++;
	return n;
}

static void command(struct conn *c, const struct rp_cmd *cmd)
{
	const struct rp_arg *sub = &cmd->argv[1];

	if (cmd->argc == 1) {
		/* The command table is Redis' business, not a proxy's. */
		REPLY_LIT(c, "*0\r\n");
	} else if (is(sub, "COUNT")) {
		if (cmd->argc != 2)
			arity(c, "command|count");
		else
			reply_int(c, command_count());
	} else if (is(sub, "DOCS")) {
		REPLY_LIT(c, "*0\r\n");
	} else {
		unknown_subcommand(c, cmd, "COMMAND");
	}
}

/* A pass-through write, started in its turn: the request holds its upwrite
 * and a copy of the command's words. */
static void start_write(struct conn *c, const struct rp_cmd *cmd)
{
	struct server *srv = c->srv;
	size_t bytes = 0;
	struct request *r;
	struct upwrite *w;
	char *p;

	for (uint32_t i = 0; i < cmd->argc; i++)
		bytes += cmd->argv[i].len;
	r = request_new_write(c, RS_WRITE, cmd->argc, bytes, 0, NULL);
	if (!r) {
		REPLY_LIT(c, "-ERR out of memory\r\n");
		return;
	}
	r->since = ev_now(srv->loop);
	w = r->w;
	w->proto = WRITE_RESP;
	w->reply_shape = WREPLY_ANY;
	w->has_key = true;
	w->key_index = 1;
	w->data = NULL;
	w->lane = c->id;
	w->srv = srv;
	w->stats = &srv->stats;
	p = request_write_bytes(r);
	for (uint32_t i = 0; i < cmd->argc; i++) {
		memcpy(p, cmd->argv[i].p, cmd->argv[i].len);
		w->argv[i] = (struct write_arg){p, cmd->argv[i].len};
		p += cmd->argv[i].len;
	}
	conn_enqueue(c, r);
}

/* A write command: passed through to a Redis backend, else refused.
 * Returns false if the command is not one. */
static bool write_cmd(struct conn *c, const struct rp_cmd *cmd)
{
	struct server *srv = c->srv;

	for (size_t i = 0; i < sizeof(passthru) / sizeof(passthru[0]); i++) {
		const struct passthru *pt = &passthru[i];
		if (!is(&cmd->argv[0], pt->name))
			continue;
		if ((pt->arity > 0 && cmd->argc != (uint32_t)pt->arity) ||
		    (pt->arity < 0 && cmd->argc < (uint32_t)-pt->arity)) {
			arity(c, pt->name);
		} else if ((pt->one_key && cmd->argc > 2) || srv->cfg.protocol != PROTO_REDIS) {
			srv->stats.cmd_unsupported++;
			REPLY_LIT(c, "-ERR not supported\r\n");
		} else {
			if (pt->stat != NOSTAT)
				(*(uint64_t *)((char *)&srv->stats + pt->stat))++;
			start_write(c, cmd);
		}
		return true;
	}
	for (size_t i = 0; refused[i]; i++) {
		if (is(&cmd->argv[0], refused[i])) {
			srv->stats.cmd_unsupported++;
			REPLY_LIT(c, "-ERR not supported\r\n");
			return true;
		}
	}
	return false;
}

static void dispatch(struct conn *c, const struct rp_cmd *cmd)
{
	const struct rp_arg *a = cmd->argv;
	uint32_t argc = cmd->argc;

	if (is(a, "GET")) {
		if (argc != 2)
			arity(c, "get");
		else
			start_read(c, cmd, RS_GET);
	} else if (is(a, "MGET")) {
		if (argc < 2)
			arity(c, "mget");
		else
			start_read(c, cmd, RS_MGET);
	} else if (is(a, "PING")) {
		if (argc > 2)
			arity(c, "ping");
		else if (argc == 2)
			reply_bulk(c, cmd->argv[1].p, cmd->argv[1].len);
		else
			REPLY_LIT(c, "+PONG\r\n");
	} else if (is(a, "ECHO")) {
		if (argc != 2)
			arity(c, "echo");
		else
			reply_bulk(c, cmd->argv[1].p, cmd->argv[1].len);
	} else if (is(a, "QUIT")) {
		REPLY_LIT(c, "+OK\r\n");
		conn_stop_reading(c);
	} else if (is(a, "SELECT")) {
		int64_t db;
		if (argc != 2)
			arity(c, "select");
		else if (!rp_strtoll(cmd->argv[1].p, cmd->argv[1].len, &db) || db < INT32_MIN ||
		         db > INT32_MAX)
			reply_err(c, "ERR value is not an integer or out of range");
		else if (db != 0)
			/* The upstream's database is [redis] database, for everyone. */
			reply_err(c, "ERR DB index is out of range");
		else
			REPLY_LIT(c, "+OK\r\n");
	} else if (is(a, "HELLO")) {
		hello(c, cmd);
	} else if (is(a, "CLIENT")) {
		client(c, cmd);
	} else if (is(a, "COMMAND")) {
		command(c, cmd);
	} else if (is(a, "INFO")) {
		conn_local(c, RS_INFO);
	} else if (is(a, "AUTH")) {
		if (argc < 2 || argc > 3)
			arity(c, "auth");
		else
			reply_err(c,
			          "ERR AUTH <password> called without any password configured for "
			          "the default user. Are you sure your configuration is correct?");
	} else if (!write_cmd(c, cmd)) {
		c->srv->stats.client_errors++;
		unknown_command(c, cmd);
	}
}

static bool feed(struct conn *c, const char *buf, size_t len, size_t *used)
{
	struct resp_session *s = sess(c);
	struct server *srv = c->srv;
	struct rp_cmd cmd;
	enum rp_status st = rp_parse(&s->p, buf, len, &cmd, used);

	if (st == RP_NEED_MORE) {
		/* Redis' query buffer limit: the client is closed, unanswered. */
		if (len - *used > s->limit || s->p.want > s->limit) {
			log_limited(&srv->log, LVL_INFO, &srv->ll->bad_input,
			            "%s: closing: command over %zu bytes", c->name, s->limit);
			conn_stop_reading(c);
			*used = len;
			return true;
		}
		return false;
	}
	if (st == RP_ERROR) {
		srv->stats.client_errors++;
		conn_reply(c, cmd.reply, cmd.replylen);
		log_limited(&srv->log, LVL_INFO, &srv->ll->bad_input, "%s: closing: %s", c->name,
		            cmd.why ? cmd.why : "protocol error");
		conn_stop_reading(c);
		return true;
	}
	/* Redis closes on what looks like HTTP sent to its port (a browser, or
	 * a cross-protocol attack), without a reply. */
	if (is(&cmd.argv[0], "POST") || is(&cmd.argv[0], "Host:")) {
		log_limited(&srv->log, LVL_WARN, &srv->ll->bad_input,
		            "%s: closing: looks like HTTP, not RESP", c->name);
		conn_stop_reading(c);
		return true;
	}
	dispatch(c, &cmd);
	return true;
}

const struct session_ops session_resp_ops = {
    .init = init,
    .feed = feed,
    .compose = compose,
    .partial = partial,
    .configure = configure,
    .destroy = destroy,
    .max_line = max_line,
};
