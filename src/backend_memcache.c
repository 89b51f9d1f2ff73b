/*
 * backend_memcache: `gets` lines out, VALUE/END replies in.
 *
 *   batch ─encode→ "gets k1 … kN\r\n" ─upconn→ memcached
 *   memcached ─upconn→ input: VALUE header → value body → batch_value()
 *                             END → upconn_pop() → batch_complete()
 *                             error line / garbage → upconn_fail()
 *
 *   write ─check, encode→ "<tokens>\r\n[<data>\r\n]" on the key's server,
 *         one client's writes on one connection (so that they keep their
 *         order)
 *   memcached → input: the whole reply, framed as the command's kind says
 *                      → write_complete(); a lost connection → write_fail()
 *                      for a write that was written (never sent twice)
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
#include "write.h"

#include <stdint.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Per connection: where the reply being read stands. */
struct mc_state {
	struct value *cur; /* value whose body is being read */
	uint32_t cur_pos;  /* its entry in the head batch */
	size_t cur_got;    /* bytes of body and CRLF read so far */
	size_t rscan;      /* bytes already known to hold no '\n' */
	size_t skip;       /* body bytes (and CRLF) of a value being dropped */
	/* A write's reply, gathered whole. */
	char *wbuf;
	size_t wlen, wcap;
	size_t body_left; /* data block bytes (and CRLF) still to come */
	bool body_ends;   /* the reply ends with that block (meta VA) */
};

/*
 * The connection queues carry batches and writes. A write is marked in the
 * low bits of its pointer (both are malloc'd: those bits are free): TAG_WRITE
 * for a write, TAG_PART for one server's share of a write to all servers.
 */
#define TAG_WRITE ((uintptr_t)1)
#define TAG_PART ((uintptr_t)2)
#define TAG_MASK ((uintptr_t)3)

/* flush_all: sent to every server; OK only if every server says OK. */
struct mc_fanout {
	struct upwrite *w;
	uint32_t pending;
	char *bad; /* the first reply that was not OK, or why a part failed */
};

static uintptr_t tag_of(const void *req)
{
	return (uintptr_t)req & TAG_MASK;
}

static void *untag(void *req)
{
	return (void *)((uintptr_t)req & ~TAG_MASK);
}

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

static struct upwrite *write_of(void *req)
{
	return tag_of(req) == TAG_PART ? ((struct mc_fanout *)untag(req))->w
	                               : (struct upwrite *)untag(req);
}

static int encode_write(struct upconn *c, const struct upwrite *w)
{
	size_t need = 4 + (w->data ? w->datalen + 2 : 0), len = 0;
	char *p;

	for (uint32_t i = 0; i < w->argc; i++)
		need += w->argv[i].len + 1;
	p = upconn_wspace(c, need);
	if (!p)
		return -1;
	for (uint32_t i = 0; i < w->argc; i++) {
		if (i)
			p[len++] = ' ';
		memcpy(p + len, w->argv[i].p, w->argv[i].len);
		len += w->argv[i].len;
	}
	p[len++] = '\r';
	p[len++] = '\n';
	if (w->data) {
		memcpy(p + len, w->data, w->datalen);
		len += w->datalen;
		p[len++] = '\r';
		p[len++] = '\n';
	}
	upconn_wcommit(c, len);
	return 0;
}

static int mc_encode(struct upconn *c, void *req)
{
	struct batch *bt = req;

	if (tag_of(req))
		return encode_write(c, write_of(req));
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
		/* Over the budget for values in flight: read it past, keep
		 * nothing, fail only this key. */
		if (u->set.value_budget &&
		    value_bytes_now(u->stats->vb) + r.bytes > u->set.value_budget) {
			batch_value_refused(bt, (uint32_t)pos);
			st->skip = (size_t)r.bytes + 2;
			return 0;
		}
		st->cur = value_new((size_t)r.bytes, u->stats->vb);
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

static int wbuf_add(struct mc_state *st, const char *p, size_t n)
{
	if (st->wlen + n > st->wcap) {
		size_t cap = st->wcap ? st->wcap : 256;
		char *nb;
		while (cap < st->wlen + n)
			cap *= 2;
		nb = realloc(st->wbuf, cap);
		if (!nb)
			return -1;
		st->wbuf = nb;
		st->wcap = cap;
	}
	memcpy(st->wbuf + st->wlen, p, n);
	st->wlen += n;
	return 0;
}

static const char *reason_of(enum batch_error why, const char *text, char *buf, size_t cap)
{
	switch (why) {
	case BATCH_TIMEOUT:
		return "upstream timeout";
	case BATCH_UPSTREAM_ERROR:
		snprintf(buf, cap, "upstream error: %s", text ? text : "");
		return buf;
	case BATCH_PROTOCOL:
		return "upstream protocol error";
	default:
		return "upstream unavailable";
	}
}

/* One server's answer to its share of a write to every server. */
static void fanout_part_done(struct mc_fanout *f, const char *reply, size_t len, const char *why)
{
	if (!f->bad && (why || len != 4 || memcmp(reply, "OK\r\n", 4) != 0)) {
		if (why) {
			f->bad = strdup(why);
		} else {
			size_t n = strcspn(reply, "\r\n");
			f->bad = malloc(n + 32);
			if (f->bad)
				snprintf(f->bad, n + 32, "upstream error: %.*s", (int)n, reply);
		}
		if (!f->bad)
			f->bad = strdup("out of memory");
	}
	if (--f->pending)
		return;
	if (f->bad)
		write_fail(f->w, f->bad ? f->bad : "out of memory");
	else
		write_complete(f->w, "OK\r\n", 4);
	free(f->bad);
	free(f);
}

/* The <bytes> of "VALUE <key> <flags> <bytes>[ <cas>]\r\n". */
static int value_bytes(const char *line, size_t len, unsigned long long *out)
{
	const char *p = line, *e = line + len;
	int field = 0;

	while (p < e && field < 3) {
		p = memchr(p, ' ', (size_t)(e - p));
		if (!p)
			return -1;
		p++;
		field++;
	}
	if (field < 3 || p >= e || *p < '0' || *p > '9')
		return -1;
	*out = 0;
	for (; p < e && *p >= '0' && *p <= '9'; p++) {
		if (*out > MC_MAX_VALUE_BYTES)
			return -1;
		*out = *out * 10 + (unsigned)(*p - '0');
	}
	return p < e && (*p == ' ' || *p == '\r' || *p == '\n') ? 0 : -1;
}

/* The head write's reply is whole: pass it on. */
static void write_done(struct upconn *c)
{
	struct mc_state *st = upconn_state(c);
	ev_tstamp sent_at;
	void *req = upconn_pop(c, &sent_at);

	if (tag_of(req) == TAG_PART)
		fanout_part_done(untag(req), st->wbuf, st->wlen, NULL);
	else
		write_complete(untag(req), st->wbuf, st->wlen);
	st->wlen = 0;
}

/*
 * Bytes of the head write's reply, kept whole: one line, VALUE blocks up to
 * END (gat), or a meta reply with its data block. Error lines are the
 * upstream's answer to the write and reach the client as memcached sent
 * them. Returns the bytes used (*done once the reply is complete), or -1 if
 * the connection failed.
 */
static long write_input(struct upconn *c, const char *buf, size_t len, bool *done)
{
	struct mc_state *st = upconn_state(c);
	const struct upwrite *w = write_of(upconn_head(c));
	size_t off = 0;

	*done = false;
	while (off < len) {
		const char *nl;
		size_t linelen;

		if (st->body_left) {
			size_t take = len - off < st->body_left ? len - off : st->body_left;
			if (wbuf_add(st, buf + off, take) < 0) {
				upconn_fail(c, BATCH_UNAVAILABLE, "out of memory");
				return -1;
			}
			off += take;
			st->body_left -= take;
			if (st->body_left == 0 && st->body_ends) {
				st->body_ends = false;
				write_done(c);
				*done = true;
				return (long)off;
			}
			continue;
		}
		nl = memchr(buf + off, '\n', len - off);
		if (!nl) {
			if (len - off > MCR_MAX_LINE) {
				upconn_fail(c, BATCH_PROTOCOL, "reply line too long");
				return -1;
			}
			break;
		}
		linelen = (size_t)(nl - (buf + off)) + 1;
		if (wbuf_add(st, buf + off, linelen) < 0) {
			upconn_fail(c, BATCH_UNAVAILABLE, "out of memory");
			return -1;
		}
		off += linelen;
		const char *line = st->wbuf + st->wlen - linelen;
		if (w->reply_shape == WREPLY_VALUES) {
			/* gat answers VALUE <key> <flags> <bytes>, gats adds <cas>. */
			if (linelen > 6 && memcmp(line, "VALUE ", 6) == 0) {
				unsigned long long n = 0;
				if (value_bytes(line, linelen, &n) < 0 || n > MC_MAX_VALUE_BYTES) {
					upconn_fail(c, BATCH_PROTOCOL, "unparsable reply line");
					return -1;
				}
				st->body_left = (size_t)n + 2;
				continue;
			}
		} else if (w->reply_shape == WREPLY_META && linelen > 3 &&
		           memcmp(line, "VA ", 3) == 0) {
			char *end;
			unsigned long long n = strtoull(line + 3, &end, 10);
			if (end == line + 3 || n > MC_MAX_VALUE_BYTES) {
				upconn_fail(c, BATCH_PROTOCOL, "unparsable reply line");
				return -1;
			}
			st->body_left = (size_t)n + 2;
			st->body_ends = true;
			continue;
		}
		write_done(c);
		*done = true;
		return (long)off;
	}
	return (long)off;
}

/* Consume what buf holds; returns the bytes used, or -1 if the connection
 * failed. */
static long mc_input(struct upconn *c, const char *buf, size_t len)
{
	struct mc_state *st = upconn_state(c);
	size_t off = 0;

	for (;;) {
		if (st->skip) {
			size_t take = len - off < st->skip ? len - off : st->skip;
			off += take;
			st->skip -= take;
			if (st->skip)
				break;
			continue;
		}
		if (!st->cur && tag_of(upconn_head(c))) {
			bool done;
			long n = write_input(c, buf + off, len - off, &done);
			if (n < 0)
				return -1;
			off += (size_t)n;
			if (!done)
				break;
			continue;
		}
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
	st->skip = 0;
	free(st->wbuf);
	st->wbuf = NULL;
	st->wlen = st->wcap = st->body_left = 0;
	st->body_ends = false;
}

static void mc_fail(struct upconn *c, void *req, bool written, enum batch_error why,
                    const char *text)
{
	struct mc_backend *u = upconn_ctx(c);
	char buf[256];

	if (!tag_of(req)) {
		/* A `gets` changes nothing: written or not, it may be retried. */
		batch_fail(u->batcher, req, why, text, c);
		return;
	}
	/* A write that never left may try another connection, once; one that
	 * may have reached the server is never sent again. */
	if (!written && tag_of(req) == TAG_WRITE && !write_of(req)->backend_data) {
		bool busy;
		struct upconn *o = upconn_pick(c->grp, c, true, &busy);
		write_of(req)->backend_data = o;
		if (o && o != c && upconn_send(o, req) == 0)
			return;
	}
	if (tag_of(req) == TAG_PART)
		fanout_part_done(untag(req), NULL, 0, reason_of(why, text, buf, sizeof(buf)));
	else
		write_fail(untag(req), reason_of(why, text, buf, sizeof(buf)));
}

static void mc_discard(void *req)
{
	if (!tag_of(req)) {
		free(req);
		return;
	}
	if (tag_of(req) == TAG_PART)
		fanout_part_done(untag(req), NULL, 0, "upstream unavailable");
	else
		write_fail(untag(req), "upstream unavailable");
}

static const struct upconn_ops mc_conn_ops = {
    .state_size = sizeof(struct mc_state),
    .encode = mc_encode,
    .input = mc_input,
    .direct = mc_direct,
    .direct_done = mc_direct_done,
    .reset = mc_reset,
    .fail = mc_fail,
    .discard = mc_discard,
    .probe = "version\r\n",
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

/* Every token a clean word, the key one a gets line could carry: whatever
 * the session let through, nothing but a well-formed command goes out. */
static bool write_ok(const struct upwrite *w)
{
	for (uint32_t i = 0; i < w->argc; i++) {
		if (w->argv[i].len == 0)
			return false;
		for (size_t j = 0; j < w->argv[i].len; j++) {
			unsigned char ch = (unsigned char)w->argv[i].p[j];
			if (ch <= 0x20 || ch == 0x7f)
				return false;
		}
	}
	if (w->has_key && !w->key_b64 &&
	    !mc_key_ok(w->argv[w->key_index].p, (uint32_t)w->argv[w->key_index].len))
		return false;
	return true;
}

/* One client's writes to a server go on one connection while it is up, so
 * that memcached applies them in the order sent. */
static struct upconn *pick_for(struct upconn_group *g, const struct upwrite *w)
{
	bool busy;

	if (g->nconns) {
		struct upconn *c = &g->conns[w->lane % g->nconns];
		if (c->state == UPCONN_UP)
			return c;
	}
	return upconn_pick(g, NULL, true, &busy);
}

static bool mc_write(struct upstream *base, struct upwrite *w)
{
	struct mc_backend *u = (struct mc_backend *)base;
	struct upconn *c;

	if (w->proto != WRITE_MEMCACHE)
		return false;
	if (!write_ok(w)) {
		write_fail(w, MC_BAD_KEY);
		return true;
	}
	if (w->all_servers) {
		struct mc_fanout *f = calloc(1, sizeof(*f));
		if (!f) {
			write_fail(w, "out of memory");
			return true;
		}
		f->w = w;
		f->pending = u->nservers + 1; /* one more until all are sent */
		for (uint32_t i = 0; i < u->nservers; i++) {
			c = pick_for(&u->servers[i], w);
			if (!c || upconn_send(c, (void *)((uintptr_t)f | TAG_PART)) < 0)
				fanout_part_done(f, NULL, 0, "upstream unavailable");
		}
		fanout_part_done(f, "OK\r\n", 4, NULL);
		return true;
	}
	c = pick_for(&u->servers[w->has_key ? pool_locate(base->pool, w->key, w->keylen) : 0], w);
	if (!c || upconn_send(c, (void *)((uintptr_t)w | TAG_WRITE)) < 0)
		write_fail(w, "upstream unavailable");
	return true;
}

static void mc_configure(struct upstream *base, const struct upstream_settings *s)
{
	((struct mc_backend *)base)->set = *s;
}

static uint32_t mc_outstanding(const struct upstream *base)
{
	const struct mc_backend *u = (const struct mc_backend *)base;

	return upconn_groups_outstanding(u->servers, u->nservers);
}

static void mc_drain(struct upstream *base)
{
	struct mc_backend *u = (struct mc_backend *)base;

	upconn_groups_drain(u->servers, u->nservers);
}

static void mc_destroy(struct upstream *base)
{
	struct mc_backend *u = (struct mc_backend *)base;

	upconn_groups_destroy(u->servers, u->nservers);
	pool_free(u->base.pool);
	free(u);
}

static const struct upstream_ops mc_ops = {
    .submit = mc_submit,
    .write = mc_write,
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
