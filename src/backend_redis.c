/*
 * backend_redis: MGET arrays out, RESP2 replies in.
 *
 *   (re)connect ─ first request ─→ [AUTH …] [SELECT n] then the request
 *   batch ─encode→ *N+1 $4 MGET $k1 … (or GET k) ─upconn→ Redis
 *   Redis ─upconn→ rr_parse tokens: +OK of the handshake, or
 *                  array header → elements: bulk → batch_value(), nil → miss
 *                  the reply's last token → upconn_pop() → batch_complete()
 *                  -error → upconn_pop() → batch_fail() (connection kept)
 *                  garbage → upconn_fail()
 *   write (write.h) ─encode→ its argv as an array ─upconn→ Redis
 *   Redis ─upconn→ the reply's bytes, kept verbatim → write_complete()
 *
 * Batches and writes share the connections' queues; a write's queue entry is
 * its upwrite pointer with the low bit set.
 */
#include "backend_redis.h"

#include "batch.h"
#include "inflight.h"
#include "log.h"
#include "pool.h"
#include "proto_respreply.h"
#include "request.h"
#include "stats.h"
#include "upconn.h"
#include "value.h"
#include "write.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A bulk longer than this is copied into its value as it arrives rather
 * than held whole in the input buffer first. */
#define RD_STREAM_OVER (64u * 1024)

/* Per connection, zeroed on every (re)connect. */
struct rd_state {
	bool ready;          /* rp initialised */
	bool hello_sent;     /* AUTH/SELECT queued on this connection */
	uint32_t hello_left; /* their replies still due */
	struct rr_parser rp;
	uint32_t pos;      /* next element of the head batch's reply */
	struct value *cur; /* streamed value being filled */
	bool skip;         /* streaming past a value over the budget */
	uint32_t cur_pos;
	size_t cur_got;
	char *wreply; /* bytes of the head write's reply so far */
	size_t wlen, wcap;
};

static void *write_tag(struct upwrite *w)
{
	return (void *)((uintptr_t)w | 1u);
}

/* The write a queue entry is, or NULL for a batch. */
static struct upwrite *as_write(void *req)
{
	return ((uintptr_t)req & 1u) ? (struct upwrite *)((uintptr_t)req & ~(uintptr_t)1u) : NULL;
}

struct rd_backend {
	struct upstream base;
	struct ev_loop *loop;
	struct upstream_settings set;
	struct batcher *batcher;
	struct stats *stats;
	const struct log *log;
	struct upconn_group *servers;
	uint32_t nservers;
	char *username, *password;
	long database;
};

static struct rd_state *state_of(struct upconn *c)
{
	struct rd_state *st = upconn_state(c);

	if (!st->ready) {
		rr_init(&st->rp);
		st->rp.max_bulk = REDIS_MAX_VALUE_BYTES;
		st->rp.stream_over = RD_STREAM_OVER;
		st->ready = true;
	}
	return st;
}

/* Bytes of a command of argc arguments (each one bulk). */
static size_t cmd_size(uint32_t argc, const char *const *argv, const size_t *lens)
{
	size_t n = rr_put_hdr(NULL, 0, '*', argc);

	for (uint32_t i = 0; i < argc; i++)
		n += rr_put_bulk(NULL, 0, argv[i], lens[i]);
	return n;
}

static size_t cmd_put(char *p, size_t cap, uint32_t argc, const char *const *argv,
                      const size_t *lens)
{
	size_t n = rr_put_hdr(p, cap, '*', argc);

	for (uint32_t i = 0; i < argc; i++)
		n += rr_put_bulk(p + n, cap - n, argv[i], lens[i]);
	return n;
}

/* AUTH and SELECT, ahead of the first request of a connection. */
static int encode_hello(struct upconn *c, struct rd_backend *u, struct rd_state *st)
{
	const char *argv[3];
	size_t lens[3];
	char db[24];
	uint32_t argc = 0;
	char *p;

	st->hello_sent = true;
	if (u->password[0]) {
		argv[argc] = "AUTH";
		lens[argc++] = 4;
		if (u->username[0]) {
			argv[argc] = u->username;
			lens[argc++] = strlen(u->username);
		}
		argv[argc] = u->password;
		lens[argc++] = strlen(u->password);
		size_t n = cmd_size(argc, argv, lens);
		if (!(p = upconn_wspace(c, n)))
			return -1;
		upconn_wcommit(c, cmd_put(p, n, argc, argv, lens));
		st->hello_left++;
	}
	if (u->database != 0) {
		int dl = snprintf(db, sizeof(db), "%ld", u->database);
		argv[0] = "SELECT";
		lens[0] = 6;
		argv[1] = db;
		lens[1] = (size_t)dl;
		size_t n = cmd_size(2, argv, lens);
		if (!(p = upconn_wspace(c, n)))
			return -1;
		upconn_wcommit(c, cmd_put(p, n, 2, argv, lens));
		st->hello_left++;
	}
	return 0;
}

/* A write's command, re-encoded from its tokens. */
static int encode_write(struct upconn *c, const struct upwrite *w)
{
	size_t need = rr_put_hdr(NULL, 0, '*', w->argc), len;
	char *p;

	for (uint32_t i = 0; i < w->argc; i++)
		need += rr_put_bulk(NULL, 0, w->argv[i].p, w->argv[i].len);
	p = upconn_wspace(c, need);
	if (!p)
		return -1;
	len = rr_put_hdr(p, need, '*', w->argc);
	for (uint32_t i = 0; i < w->argc; i++)
		len += rr_put_bulk(p + len, need - len, w->argv[i].p, w->argv[i].len);
	upconn_wcommit(c, len);
	return 0;
}

static int rd_encode(struct upconn *c, void *req)
{
	struct rd_backend *u = upconn_ctx(c);
	struct rd_state *st = state_of(c);
	struct batch *bt = req;
	size_t need, len;
	char *p;

	if (!st->hello_sent && encode_hello(c, u, st) < 0) {
		/* upconn drops what was committed: start over next time. */
		st->hello_sent = false;
		st->hello_left = 0;
		return -1;
	}
	if (as_write(req))
		return encode_write(c, as_write(req));
	need = RR_HDR_MAX + (bt->n == 1 ? 9 : 10);
	for (uint32_t i = 0; i < bt->n; i++)
		need += rr_put_bulk(NULL, 0, bt->e[i]->key, bt->e[i]->keylen);
	p = upconn_wspace(c, need);
	if (!p)
		return -1;
	len = rr_put_hdr(p, need, '*', (int64_t)bt->n + 1);
	len += bt->n == 1 ? rr_put_bulk(p + len, need - len, "GET", 3)
	                  : rr_put_bulk(p + len, need - len, "MGET", 4);
	for (uint32_t i = 0; i < bt->n; i++)
		len += rr_put_bulk(p + len, need - len, bt->e[i]->key, bt->e[i]->keylen);
	upconn_wcommit(c, len);
	return 0;
}

/* Redis' words reach clients: keep them one printable line. */
static void error_text(const struct rr_token *t, char *out, size_t cap)
{
	size_t n = 0;

	for (size_t i = 0; i < t->len && n < cap - 1; i++) {
		unsigned char ch = (unsigned char)t->p[i];
		out[n++] = (ch < 0x20 || ch == 0x7f) ? '?' : (char)ch;
	}
	out[n] = '\0';
	if (n == 0)
		snprintf(out, cap, "(no text)");
}

/* The head batch's reply is whole. */
static void finish(struct upconn *c, struct rd_backend *u, struct rd_state *st)
{
	ev_tstamp sent_at;
	struct batch *bt = upconn_pop(c, &sent_at);

	st->pos = 0;
	hist_add(&u->stats->batch_seconds, ev_now(u->loop) - sent_at);
	log_debug(u->log, "batch: server %s, %u keys, %.3f ms", upconn_name(c), bt->n,
	          (ev_now(u->loop) - sent_at) * 1000.0);
	batch_complete(u->batcher, bt);
}

/* A bulk (or nil) for element pos of bt. 0, or -1 once failed. */
static int element(struct upconn *c, struct rd_backend *u, struct rd_state *st, struct batch *bt,
                   const struct rr_token *t)
{
	uint32_t pos = st->pos++;
	struct value *v;

	if (pos >= bt->n) {
		upconn_fail(c, BATCH_PROTOCOL, "more values than keys");
		return -1;
	}
	if (t->type == RR_NIL)
		return 0;
	if (t->type != RR_BULK) {
		upconn_fail(c, BATCH_PROTOCOL, "MGET element neither bulk string nor nil");
		return -1;
	}
	/* Over the budget for values in flight: read it past, keep nothing,
	 * fail only this key (as the memcached backend does). */
	if (u->set.value_budget && value_bytes_now(u->stats->vb) + t->len > u->set.value_budget) {
		batch_value_refused(bt, pos);
		st->skip = !t->whole;
		return 0;
	}
	v = value_new(t->len, u->stats->vb);
	if (!v) {
		upconn_fail(c, BATCH_UNAVAILABLE, "out of memory");
		return -1;
	}
	if (t->whole) {
		memcpy(v->data, t->p, t->len);
		v->data[t->len] = '\r';
		v->data[t->len + 1] = '\n';
		batch_value(bt, pos, v);
	} else {
		st->cur = v;
		st->cur_pos = pos;
		st->cur_got = 0;
	}
	return 0;
}

static void write_done(struct upwrite *w, const char *reply, size_t len)
{
	write_complete(w, reply, len);
}

static void write_failed(struct upwrite *w, const char *reason)
{
	write_fail(w, reason);
}

/* One token; 0, or -1 once the connection failed. */
static int token(struct upconn *c, struct rd_backend *u, struct rd_state *st,
                 const struct rr_token *t)
{
	struct batch *bt;
	char text[200];

	if (st->hello_left > 0) {
		if (t->type == RR_ERROR) {
			/* A refused AUTH or SELECT: Redis' own words, in the log and
			 * to every waiter. */
			error_text(t, text, sizeof(text));
			upconn_fail(c, BATCH_UPSTREAM_ERROR, text);
			return -1;
		}
		if (t->type != RR_SIMPLE || t->depth != 0) {
			upconn_fail(c, BATCH_PROTOCOL, "unexpected reply to AUTH or SELECT");
			return -1;
		}
		st->hello_left--;
		return 0;
	}
	if (upconn_head_abandoned(c)) {
		/* Its requester was answered (rd_abandon): read the reply past. */
		if (t->done)
			upconn_pop(c, NULL);
		return 0;
	}
	bt = upconn_head(c);
	if (!bt) {
		upconn_fail(c, BATCH_PROTOCOL, "reply without a request");
		return -1;
	}
	if (as_write(upconn_head(c))) {
		/* Its bytes were kept as they came (rd_input); pass them on. */
		if (t->done) {
			struct upwrite *w = as_write(upconn_pop(c, NULL));
			size_t n = st->wlen;
			st->wlen = 0;
			write_done(w, st->wreply, n);
		}
		return 0;
	}
	if (t->type == RR_CHUNK && st->skip) {
		if (t->end)
			st->skip = false;
	} else if (t->type == RR_CHUNK) {
		if (!st->cur || st->cur_got + t->len > st->cur->len) {
			upconn_fail(c, BATCH_PROTOCOL, "bulk data out of place");
			return -1;
		}
		memcpy(st->cur->data + st->cur_got, t->p, t->len);
		st->cur_got += t->len;
		if (t->end) {
			st->cur->data[st->cur->len] = '\r';
			st->cur->data[st->cur->len + 1] = '\n';
			batch_value(bt, st->cur_pos, st->cur);
			st->cur = NULL;
		}
	} else if (t->depth == 0 && t->type == RR_ERROR) {
		/* The stream is still in step: only this batch fails. */
		ev_tstamp sent_at;
		error_text(t, text, sizeof(text));
		st->pos = 0;
		upconn_pop(c, &sent_at);
		log_warn(u->log, "upstream %s: error reply: %s; %u keys failed", upconn_name(c),
		         text, bt->n);
		batch_fail(u->batcher, bt, BATCH_UPSTREAM_ERROR, text, c);
		return 0;
	} else if (t->depth == 0 && bt->n > 1) {
		if (t->type != RR_ARRAY || t->n != (int64_t)bt->n) {
			upconn_fail(c, BATCH_PROTOCOL, "MGET reply not an array of its keys");
			return -1;
		}
	} else if (t->depth == 0 || (t->depth == 1 && bt->n > 1)) {
		if (element(c, u, st, bt, t) < 0)
			return -1;
	} else {
		upconn_fail(c, BATCH_PROTOCOL, "unexpected nesting");
		return -1;
	}
	if (t->done) {
		if (st->pos != bt->n) {
			upconn_fail(c, BATCH_PROTOCOL, "fewer values than keys");
			return -1;
		}
		finish(c, u, st);
	}
	return 0;
}

static long rd_input(struct upconn *c, const char *buf, size_t len)
{
	struct rd_backend *u = upconn_ctx(c);
	struct rd_state *st = state_of(c);
	size_t off = 0;

	while (off < len) {
		struct rr_token t;
		size_t used = 0;
		enum rr_status s = rr_parse(&st->rp, buf + off, len - off, &t, &used);

		if (s == RR_INVALID) {
			upconn_fail(c, BATCH_PROTOCOL, st->rp.why ? st->rp.why : "not RESP2");
			return -1;
		}
		/* A write's reply goes back verbatim: keep every byte of it. */
		if (used && st->hello_left == 0 && as_write(upconn_head(c))) {
			if (st->wlen + used > st->wcap) {
				size_t cap = (st->wlen + used) * 2;
				char *nb = realloc(st->wreply, cap);
				if (!nb) {
					upconn_fail(c, BATCH_UNAVAILABLE, "out of memory");
					return -1;
				}
				st->wreply = nb;
				st->wcap = cap;
			}
			memcpy(st->wreply + st->wlen, buf + off, used);
			st->wlen += used;
		}
		if (s == RR_NEED_MORE) {
			off += used;
			break;
		}
		/* The token's bytes stay valid: they are in buf until we return. */
		if (token(c, u, st, &t) < 0)
			return -1;
		off += used;
	}
	return (long)off;
}

static void rd_reset(struct upconn *c)
{
	struct rd_state *st = upconn_state(c);

	value_unref(st->cur);
	st->cur = NULL;
	st->skip = false;
	free(st->wreply);
	st->wreply = NULL;
	st->wlen = st->wcap = 0;
}

static const char *const fail_reasons[] = {
    [BATCH_UNAVAILABLE] = "upstream unavailable",
    [BATCH_TIMEOUT] = "upstream timeout",
    [BATCH_UPSTREAM_ERROR] = "upstream error",
    [BATCH_PROTOCOL] = "upstream protocol error",
};

static void rd_fail(struct upconn *c, void *req, bool written, enum batch_error why,
                    const char *text)
{
	struct rd_backend *u = upconn_ctx(c);

	struct upwrite *w = as_write(req);

	/* A GET or MGET changes nothing: written or not, it may be retried. A
	 * write is never sent twice: it may have taken effect. */
	(void)written;
	if (w) {
		char reason[300];
		if (why == BATCH_UPSTREAM_ERROR && text)
			snprintf(reason, sizeof(reason), "%s: %s", fail_reasons[why], text);
		else
			snprintf(reason, sizeof(reason), "%s", fail_reasons[why]);
		write_failed(w, reason);
		return;
	}
	batch_fail(u->batcher, req, why, text, c);
}

/* RESP replies delimit themselves: a late one can be read past, so one slow
 * reply fails its request alone, not the connection (upconn.h). */
static void rd_abandon(struct upconn *c, void *req, bool head, const char *text)
{
	struct rd_state *st = state_of(c);

	if (head) {
		/* The part of its reply already read belonged to it. */
		st->pos = 0;
		value_unref(st->cur);
		st->cur = NULL;
		st->skip = false;
		st->wlen = 0;
	}
	rd_fail(c, req, true, BATCH_TIMEOUT, text);
}

static void rd_discard(void *req)
{
	struct upwrite *w = as_write(req);

	/* Shutdown: the write's request still waits (its client is gone). */
	if (w)
		write_failed(w, "upstream unavailable");
	else
		free(req);
}

static const struct upconn_ops rd_conn_ops = {
    .state_size = sizeof(struct rd_state),
    .encode = rd_encode,
    .input = rd_input,
    .reset = rd_reset,
    .fail = rd_fail,
    .discard = rd_discard,
    .abandon = rd_abandon,
    /* Inline PING: its one-line reply (+PONG, or an error such as -NOAUTH
     * before AUTH) shows the server answers. */
    .probe = "PING\r\n",
};

static bool rd_submit(struct upstream *base, struct batch *bt, bool force)
{
	struct rd_backend *u = (struct rd_backend *)base;
	bool busy;
	struct upconn *c = upconn_pick(&u->servers[bt->server], bt->avoid, force, &busy);

	if (!c && busy)
		return false;
	/* Every key is carried: RESP bulks are binary safe. */
	bt->cursor = 0;
	if (!c || upconn_send(c, bt) < 0)
		batch_fail(u->batcher, bt, BATCH_UNAVAILABLE, NULL, NULL);
	return true;
}

/* RESP writes only, one key's server; see write.h. */
static bool rd_write(struct upstream *base, struct upwrite *w)
{
	struct rd_backend *u = (struct rd_backend *)base;
	const struct write_arg *key;
	struct upconn_group *g;
	struct upconn *c;
	bool busy;

	if (w->proto != WRITE_RESP || !w->has_key || w->all_servers || w->argc < 2 ||
	    w->key_index == 0 || w->key_index >= w->argc)
		return false;
	key = &w->argv[w->key_index];
	g = &u->servers[pool_locate(u->base.pool, key->p, key->len)];
	/* One client's writes keep one connection, so that Redis applies them
	 * in the order they were sent (a connection that is down holds none). */
	c = &g->conns[w->lane % g->nconns];
	if (c->state == UPCONN_DOWN)
		c = upconn_pick(g, NULL, true, &busy);
	if (!c || upconn_send(c, write_tag(w)) < 0)
		write_failed(w, "upstream unavailable");
	return true;
}

static void rd_configure(struct upstream *base, const struct upstream_settings *s)
{
	((struct rd_backend *)base)->set = *s;
}

static uint32_t rd_outstanding(const struct upstream *base)
{
	const struct rd_backend *u = (const struct rd_backend *)base;

	return upconn_groups_outstanding(u->servers, u->nservers);
}

static void rd_drain(struct upstream *base)
{
	struct rd_backend *u = (struct rd_backend *)base;

	upconn_groups_drain(u->servers, u->nservers);
}

static void rd_destroy(struct upstream *base)
{
	struct rd_backend *u = (struct rd_backend *)base;

	upconn_groups_destroy(u->servers, u->nservers);
	free(u->username);
	free(u->password);
	pool_free(u->base.pool);
	free(u);
}

static const struct upstream_ops rd_ops = {
    .submit = rd_submit,
    .configure = rd_configure,
    .write = rd_write,
    .drain = rd_drain,
    .outstanding = rd_outstanding,
    .destroy = rd_destroy,
};

struct upstream *backend_redis_new(struct ev_loop *loop, struct pool *pool, uint32_t connections,
                                   const struct upstream_settings *set,
                                   const struct redis_auth *auth, struct batcher *b,
                                   struct stats *st, const struct log *lg)
{
	struct rd_backend *u = pool ? calloc(1, sizeof(*u)) : NULL;
	uint32_t n;

	if (!u) {
		pool_free(pool);
		return NULL;
	}
	n = pool_server_count(pool);
	u->base.ops = &rd_ops;
	u->base.pool = pool;
	u->loop = loop;
	u->set = *set;
	u->batcher = b;
	u->stats = st;
	u->log = lg;
	u->database = auth->database;
	u->username = strdup(auth->username ? auth->username : "");
	u->password = strdup(auth->password ? auth->password : "");
	u->servers = calloc(n, sizeof(*u->servers));
	if (!u->servers || !u->username || !u->password) {
		rd_destroy(&u->base);
		return NULL;
	}
	for (uint32_t i = 0; i < n; i++) {
		if (upconn_group_init(&u->servers[i], loop, &rd_conn_ops, u, &u->set, lg, pool, i,
		                      connections) < 0) {
			rd_destroy(&u->base);
			return NULL;
		}
		u->nservers = i + 1;
	}
	for (uint32_t i = 0; i < u->nservers; i++)
		upconn_group_start(&u->servers[i]);
	return &u->base;
}
