/*
 * backend_memcache: `gets` lines out, VALUE/END replies in.
 *
 *   batch ─encode→ "gets k1 … kN\r\n" ─upconn→ memcached
 *   memcached ─upconn→ input: VALUE header → value body → batch_value()
 *                             END → upconn_pop() → batch_complete()
 *                             error line / garbage → upconn_fail()
 */
#include "backend_memcache.h"

#include "batch.h"
#include "inflight.h"
#include "log.h"
#include "pool.h"
#include "proto_mcreply.h"
#include "stats.h"
#include "upconn.h"
#include "value.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Per connection: where the reply being read stands. */
struct mc_state {
	struct value *cur; /* value whose body is being read */
	uint32_t cur_pos;  /* its entry in the head batch */
	size_t cur_got;    /* bytes of body and CRLF read so far */
	size_t rscan;      /* bytes already known to hold no '\n' */
};

struct mc_backend {
	struct upstream base;
	struct ev_loop *loop;
	struct upstream_settings set;
	struct batcher *batcher;
	struct stats *stats;
	const struct log *log;
	struct upconn_group *servers;
	uint32_t nservers;
};

static int mc_encode(struct upconn *c, void *req)
{
	struct batch *bt = req;
	size_t need = 6, len = 0;
	char *p;

	for (uint32_t i = 0; i < bt->n; i++)
		need += 1 + bt->e[i]->keylen;
	p = upconn_wspace(c, need);
	if (!p)
		return -1;
	/* Only keys that passed the client parser's checks get here. */
	memcpy(p, "gets", 4);
	len += 4;
	for (uint32_t i = 0; i < bt->n; i++) {
		p[len++] = ' ';
		memcpy(p + len, bt->e[i]->key, bt->e[i]->keylen);
		len += bt->e[i]->keylen;
	}
	p[len++] = '\r';
	p[len++] = '\n';
	upconn_wcommit(c, len);
	return 0;
}

/* Returns 0 to go on, -1 if the connection failed. */
static int handle_line(struct upconn *c, const char *line, size_t len)
{
	struct mc_backend *u = upconn_ctx(c);
	struct mc_state *st = upconn_state(c);
	struct batch *bt = upconn_head(c);
	struct mcr_line r;
	ev_tstamp sent_at;
	char text[200];
	int pos;

	if (!bt) {
		upconn_fail(c, BATCH_PROTOCOL, "reply without a request");
		return -1;
	}
	switch (mcr_parse_line(line, len, &r)) {
	case MCR_VALUE:
		pos = batch_match(bt, r.key, r.keylen);
		if (pos < 0) {
			upconn_fail(c, BATCH_PROTOCOL, "VALUE for a key not asked for");
			return -1;
		}
		if (r.bytes > MC_MAX_VALUE_BYTES) {
			upconn_fail(c, BATCH_PROTOCOL, "value too large");
			return -1;
		}
		st->cur = value_new((size_t)r.bytes, &u->stats->value_bytes);
		if (!st->cur) {
			upconn_fail(c, BATCH_UNAVAILABLE, "out of memory");
			return -1;
		}
		st->cur->flags = r.flags;
		st->cur->cas = r.cas;
		st->cur_pos = (uint32_t)pos;
		st->cur_got = 0;
		return 0;
	case MCR_END:
		bt = upconn_pop(c, &sent_at);
		hist_add(&u->stats->batch_seconds, ev_now(u->loop) - sent_at);
		log_debug(u->log, "batch: server %s, %u keys, %.3f ms", upconn_name(c), bt->n,
		          (ev_now(u->loop) - sent_at) * 1000.0);
		batch_complete(u->batcher, bt);
		return 0;
	case MCR_ERROR:
	case MCR_CLIENT_ERROR:
	case MCR_SERVER_ERROR: {
		size_t n = 0;
		/* The text reaches clients: keep it one printable line. */
		for (size_t i = 0; i < r.textlen && n < sizeof(text) - 1; i++) {
			unsigned char ch = (unsigned char)r.text[i];
			text[n++] = (ch < 0x20 || ch == 0x7f) ? '?' : (char)ch;
		}
		text[n] = '\0';
		if (n == 0)
			snprintf(text, sizeof(text), "%s",
			         r.kind == MCR_ERROR ? "ERROR" : "(no text)");
		upconn_fail(c, BATCH_UPSTREAM_ERROR, text);
		return -1;
	}
	default:
		upconn_fail(c, BATCH_PROTOCOL, "unparsable reply line");
		return -1;
	}
}

/* Consume what buf holds; returns the bytes used, or -1 if the connection
 * failed. */
static long mc_input(struct upconn *c, const char *buf, size_t len)
{
	struct mc_state *st = upconn_state(c);
	size_t off = 0;

	for (;;) {
		if (st->cur) {
			size_t need = st->cur->len + 2 - st->cur_got;
			size_t take = len - off < need ? len - off : need;
			if (take)
				memcpy(st->cur->data + st->cur_got, buf + off, take);
			st->cur_got += take;
			off += take;
			if (st->cur_got < st->cur->len + 2)
				break;
			if (st->cur->data[st->cur->len] != '\r' ||
			    st->cur->data[st->cur->len + 1] != '\n') {
				upconn_fail(c, BATCH_PROTOCOL, "value data not followed by CRLF");
				return -1;
			}
			batch_value(upconn_head(c), st->cur_pos, st->cur);
			st->cur = NULL;
			continue;
		}
		const char *nl = off + st->rscan < len
		                     ? memchr(buf + off + st->rscan, '\n', len - off - st->rscan)
		                     : NULL;
		if (!nl) {
			st->rscan = len - off;
			if (st->rscan > MCR_MAX_LINE) {
				upconn_fail(c, BATCH_PROTOCOL, "reply line too long");
				return -1;
			}
			break;
		}
		st->rscan = 0;
		size_t linelen = (size_t)(nl - (buf + off));
		if (handle_line(c, buf + off, linelen) < 0)
			return -1;
		off += linelen + 1;
	}
	return (long)off;
}

static char *mc_direct(struct upconn *c, size_t *room)
{
	struct mc_state *st = upconn_state(c);

	if (!st->cur)
		return NULL;
	*room = st->cur->len + 2 - st->cur_got;
	return st->cur->data + st->cur_got;
}

static int mc_direct_done(struct upconn *c, size_t n)
{
	struct mc_state *st = upconn_state(c);

	st->cur_got += n;
	/* A complete body: check its CRLF and hand the value over. */
	if (st->cur_got == st->cur->len + 2)
		return mc_input(c, NULL, 0) < 0 ? -1 : 0;
	return 0;
}

static void mc_reset(struct upconn *c)
{
	struct mc_state *st = upconn_state(c);

	value_unref(st->cur);
	st->cur = NULL;
}

static void mc_fail(struct upconn *c, void *req, bool written, enum batch_error why,
                    const char *text)
{
	struct mc_backend *u = upconn_ctx(c);

	/* A `gets` changes nothing: written or not, it may be retried. */
	(void)written;
	batch_fail(u->batcher, req, why, text, c);
}

static const struct upconn_ops mc_conn_ops = {
    .state_size = sizeof(struct mc_state),
    .encode = mc_encode,
    .input = mc_input,
    .direct = mc_direct,
    .direct_done = mc_direct_done,
    .reset = mc_reset,
    .fail = mc_fail,
    .discard = free,
};

/* What a `gets` line can carry as a key, whatever the client protocol let
 * through: 1-250 bytes, none of them a control byte, space or DEL (a CR, LF
 * or space would end the key or the line and start a command of its own). */
static bool mc_key_ok(const char *key, uint32_t len)
{
	if (len == 0 || len > MC_MAX_KEY_BYTES)
		return false;
	for (uint32_t i = 0; i < len; i++) {
		unsigned char ch = (unsigned char)key[i];
		if (ch <= 0x20 || ch == 0x7f)
			return false;
	}
	return true;
}

static bool mc_submit(struct upstream *base, struct batch *bt, bool force)
{
	struct mc_backend *u = (struct mc_backend *)base;
	bool busy;
	struct upconn *c = upconn_pick(&u->servers[bt->server], bt->avoid, force, &busy);

	if (!c && busy)
		return false;
	for (uint32_t i = 0; i < bt->n;) {
		if (mc_key_ok(bt->e[i]->key, bt->e[i]->keylen))
			i++;
		else
			batch_refuse(u->batcher, bt, i, MC_BAD_KEY);
	}
	if (bt->n == 0) {
		batch_complete(u->batcher, bt);
		return true;
	}
	bt->cursor = 0;
	/* No connection: every one is waiting out its backoff. Fail fast
	 * rather than queue behind a server that is down. */
	if (!c || upconn_send(c, bt) < 0)
		batch_fail(u->batcher, bt, BATCH_UNAVAILABLE, NULL, NULL);
	return true;
}

static void mc_configure(struct upstream *base, const struct upstream_settings *s)
{
	((struct mc_backend *)base)->set = *s;
}

static uint32_t mc_outstanding(const struct upstream *base)
{
	const struct mc_backend *u = (const struct mc_backend *)base;
	uint32_t n = 0;

	for (uint32_t i = 0; i < u->nservers; i++)
		n += upconn_group_outstanding(&u->servers[i]);
	return n;
}

static void mc_drain(struct upstream *base)
{
	struct mc_backend *u = (struct mc_backend *)base;

	for (uint32_t i = 0; i < u->nservers; i++)
		upconn_group_drain(&u->servers[i]);
}

static void mc_destroy(struct upstream *base)
{
	struct mc_backend *u = (struct mc_backend *)base;

	for (uint32_t i = 0; i < u->nservers; i++)
		upconn_group_destroy(&u->servers[i]);
	free(u->servers);
	pool_free(u->base.pool);
	free(u);
}

static const struct upstream_ops mc_ops = {
    .submit = mc_submit,
    .configure = mc_configure,
    .drain = mc_drain,
    .outstanding = mc_outstanding,
    .destroy = mc_destroy,
};

struct upstream *backend_memcache_new(struct ev_loop *loop, struct pool *pool, uint32_t connections,
                                      const struct upstream_settings *set, struct batcher *b,
                                      struct stats *st, const struct log *lg)
{
	struct mc_backend *u = pool ? calloc(1, sizeof(*u)) : NULL;
	uint32_t n;

	if (!u) {
		pool_free(pool);
		return NULL;
	}
	n = pool_server_count(pool);
	u->base.ops = &mc_ops;
	u->base.pool = pool;
	u->loop = loop;
	u->set = *set;
	u->batcher = b;
	u->stats = st;
	u->log = lg;
	u->servers = calloc(n, sizeof(*u->servers));
	if (!u->servers) {
		mc_destroy(&u->base);
		return NULL;
	}
	for (uint32_t i = 0; i < n; i++) {
		if (upconn_group_init(&u->servers[i], loop, &mc_conn_ops, u, &u->set, lg, pool, i,
		                      connections) < 0) {
			mc_destroy(&u->base);
			return NULL;
		}
		u->nservers = i + 1;
	}
	for (uint32_t i = 0; i < u->nservers; i++)
		upconn_group_start(&u->servers[i]);
	return &u->base;
}
