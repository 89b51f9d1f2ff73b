/* shard: key owners and the messages between worker threads; see shard.h. */
#include "shard.h"

#include "conn.h"
#include "inflight.h"
#include "pool.h"
#include "request.h"
#include "server.h"
#include "upstream.h"
#include "value.h"
#include "workers.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

enum { MSG_JOIN = 1, MSG_RESULT, MSG_LEAVE, MSG_WRITE_DONE, MSG_CONN };

struct shard_msg {
	struct shard_msg *next;
	uint8_t type;
	uint8_t state;       /* RESULT: SLOT_HIT, SLOT_MISS or SLOT_ERROR */
	uint32_t from;       /* JOIN, LEAVE: the thread waiting */
	uint64_t ticket;     /* JOIN, RESULT, LEAVE: the waiting slot, as the waiter knows it */
	struct value *value; /* RESULT hit: one reference */
	char *err;           /* RESULT error: owned */
	int fd;              /* CONN: the client's socket, owned */
	const struct session_ops *ops; /* CONN: its protocol */
	uint32_t keylen;
	char key[]; /* then a NUL (CONN: the peer's name) */
};

/* The owner's stand-in for a slot on another thread. */
struct shard_proxy {
	struct slot s;
	struct shard_proxy *prev, *next;
	struct shard_proxy *hnext; /* in the table by (from, ticket) */
	struct server *srv;
	uint32_t from;
	uint64_t ticket;
	char key[];
};

/* Keys that may share an upstream batch (one server's) share an owner, so
 * that threads never split a batch: a key's owner is its home server's index
 * (ejections aside, so that every thread agrees) modulo the number of
 * threads. A backend with lanes (PostgreSQL's routes) has every key fetched
 * by worker 0, so that threads do not multiply its database connections. */
static uint32_t owner(const struct server *srv, const char *key, size_t len)
{
	const struct pool *p = srv->up ? srv->up->pool : NULL;

	if (!p || pool_has_lanes(p))
		return 0;
	return pool_home(p, key, len) % srv->nthreads;
}

static size_t proxy_bucket(const struct shard *sh, uint32_t from, uint64_t ticket)
{
	uint64_t h = (ticket ^ ((uint64_t)from << 56)) * 0x9e3779b97f4a7c15ULL;

	return (size_t)(h >> 32) & (sh->nbuckets - 1);
}

static void proxy_unhash(struct shard *sh, struct shard_proxy *p)
{
	struct shard_proxy **pp = &sh->buckets[proxy_bucket(sh, p->from, p->ticket)];

	for (; *pp; pp = &(*pp)->hnext)
		if (*pp == p) {
			*pp = p->hnext;
			sh->nproxies--;
			return;
		}
}

static void proxy_hash(struct shard *sh, struct shard_proxy *p)
{
	if (sh->nproxies >= sh->nbuckets) {
		size_t n = sh->nbuckets * 2;
		struct shard_proxy **nb = calloc(n, sizeof(*nb));
		if (nb) {
			struct shard_proxy **old = sh->buckets;
			size_t on = sh->nbuckets;
			sh->buckets = nb;
			sh->nbuckets = n;
			for (size_t i = 0; i < on; i++)
				for (struct shard_proxy *q = old[i], *next; q; q = next) {
					size_t b = proxy_bucket(sh, q->from, q->ticket);
					next = q->hnext;
					q->hnext = nb[b];
					nb[b] = q;
				}
			free(old);
		}
	}
	size_t b = proxy_bucket(sh, p->from, p->ticket);
	p->hnext = sh->buckets[b];
	sh->buckets[b] = p;
	sh->nproxies++;
}

/* Out of the list and the table; the caller frees it. */
static void proxy_forget(struct shard *sh, struct shard_proxy *p)
{
	if (p->prev)
		p->prev->next = p->next;
	else
		sh->proxies = p->next;
	if (p->next)
		p->next->prev = p->prev;
	proxy_unhash(sh, p);
}

static struct shard_proxy *proxy_find(struct shard *sh, uint32_t from, uint64_t ticket)
{
	struct shard_proxy *p = sh->buckets[proxy_bucket(sh, from, ticket)];

	while (p && !(p->from == from && p->ticket == ticket))
		p = p->hnext;
	return p;
}

static struct shard_msg *msg_new(uint8_t type, const char *key, size_t len)
{
	struct shard_msg *m = calloc(1, sizeof(*m) + len + 1);

	if (m) {
		m->type = type;
		m->keylen = (uint32_t)len;
		if (len)
			memcpy(m->key, key, len);
	}
	return m;
}

static void msg_free(struct shard_msg *m)
{
	if (m->type == MSG_CONN && m->fd >= 0)
		close(m->fd);
	value_unref(m->value);
	free(m->err);
	free(m);
}

static void box_put(struct server *to, struct shard_msg *head, struct shard_msg *tail)
{
	struct shard *sh = &to->shard;
	bool was_empty;

	pthread_mutex_lock(&sh->lock);
	was_empty = sh->in_head == NULL;
	if (sh->in_tail)
		sh->in_tail->next = head;
	else
		sh->in_head = head;
	sh->in_tail = tail;
	__atomic_store_n(&sh->pending, 1, __ATOMIC_SEQ_CST);
	pthread_mutex_unlock(&sh->lock);
	/* A loop that is running takes its messages at the end of its
	 * iteration; only one waiting for events needs waking (see
	 * shard_waiting for the other half of this handshake). */
	if (was_empty && __atomic_load_n(&sh->waiting, __ATOMIC_SEQ_CST))
		ev_async_send(to->loop, &sh->wake);
}

void shard_waiting(struct server *srv, bool waiting)
{
	struct shard *sh = &srv->shard;

	__atomic_store_n(&sh->waiting, waiting, __ATOMIC_SEQ_CST);
	/* A message put after the last look at the inbox but before we said
	 * we wait would otherwise wait with us. */
	if (waiting && __atomic_load_n(&sh->pending, __ATOMIC_SEQ_CST))
		ev_async_send(srv->loop, &sh->wake);
}

/* Queued until the end of the iteration. */
static void post(struct server *srv, uint32_t to, struct shard_msg *m)
{
	struct shard *sh = &srv->shard;

	m->next = NULL;
	if (sh->out_tail[to])
		sh->out_tail[to]->next = m;
	else
		sh->out_head[to] = m;
	sh->out_tail[to] = m;
}

void shard_flush(struct server *srv)
{
	struct shard *sh = &srv->shard;

	for (uint32_t i = 0; sh->up && i < srv->nthreads; i++) {
		if (!sh->out_head[i])
			continue;
		box_put(&srv->group->w[i], sh->out_head[i], sh->out_tail[i]);
		sh->out_head[i] = sh->out_tail[i] = NULL;
	}
}

/* Tickets: an index into waits, and a generation so that a result for a
 * slot that went away cannot reach the slot that took its index. */
static int ticket_new(struct shard *sh, struct slot *s, uint64_t *ticket)
{
	uint32_t i;

	if (sh->nfree == 0) {
		uint32_t ncap = sh->cap ? sh->cap * 2 : 256;
		struct slot **w = realloc(sh->waits, ncap * sizeof(*w));
		uint32_t *g, *f;
		if (!w)
			return -1;
		sh->waits = w;
		g = realloc(sh->gen, ncap * sizeof(*g));
		if (!g)
			return -1;
		sh->gen = g;
		f = realloc(sh->free, ncap * sizeof(*f));
		if (!f)
			return -1;
		sh->free = f;
		for (i = ncap; i > sh->cap; i--) {
			sh->waits[i - 1] = NULL;
			sh->gen[i - 1] = 0;
			sh->free[sh->nfree++] = i - 1;
		}
		sh->cap = ncap;
	}
	i = sh->free[--sh->nfree];
	sh->waits[i] = s;
	sh->used++;
	s->ticket = i + 1;
	*ticket = (uint64_t)sh->gen[i] << 32 | i;
	return 0;
}

static void ticket_drop(struct shard *sh, uint32_t i)
{
	sh->waits[i] = NULL;
	sh->gen[i]++;
	sh->free[sh->nfree++] = i;
	sh->used--;
}

static struct slot *ticket_take(struct shard *sh, uint64_t ticket)
{
	uint32_t i = (uint32_t)ticket;
	struct slot *s;

	if (i >= sh->cap || sh->gen[i] != (uint32_t)(ticket >> 32) || !sh->waits[i])
		return NULL;
	s = sh->waits[i];
	s->ticket = 0;
	ticket_drop(sh, i);
	return s;
}

/* Writes other threads completed before this moment: a read that reached
 * us after its client saw a write's reply must not join a fetch begun before
 * the write, even if the read's event comes before the notice's. */
static void take_notices(struct server *srv)
{
	struct shard *sh = &srv->shard;
	struct shard_msg *m, *next;

	if (!__atomic_load_n(&sh->nnotices, __ATOMIC_ACQUIRE))
		return;
	pthread_mutex_lock(&sh->lock);
	m = sh->notices;
	sh->notices = NULL;
	__atomic_store_n(&sh->nnotices, 0, __ATOMIC_RELAXED);
	pthread_mutex_unlock(&sh->lock);
	for (; m; m = next) {
		next = m->next;
		inflight_write_done(&srv->inflight, m->key, m->keylen);
		free(m);
	}
}

/* Into this thread's table, after the writes other threads told of. */
static int join_here(struct server *srv, struct slot *s)
{
	if (srv->shard.up)
		take_notices(srv);
	return inflight_join(&srv->inflight, s);
}

int shard_join(struct server *srv, struct slot *s)
{
	uint32_t to;
	uint64_t ticket;
	struct shard_msg *m;

	if (srv->nthreads <= 1 || (to = owner(srv, s->key, s->keylen)) == srv->id)
		return join_here(srv, s);
	m = msg_new(MSG_JOIN, s->key, s->keylen);
	if (!m || ticket_new(&srv->shard, s, &ticket) < 0) {
		free(m);
		return -1;
	}
	m->from = srv->id;
	m->ticket = ticket;
	post(srv, to, m);
	return 0;
}

void shard_leave(struct server *srv, struct slot *s)
{
	if (s->ticket) {
		struct shard *sh = &srv->shard;
		uint32_t i = s->ticket - 1;
		struct shard_msg *m = msg_new(MSG_LEAVE, NULL, 0);
		/* The owner drops the key if nobody else waits and it is not sent
		 * yet; without memory for the notice it is fetched for nobody. */
		if (m) {
			m->from = srv->id;
			m->ticket = (uint64_t)sh->gen[i] << 32 | i;
			post(srv, owner(srv, s->key, s->keylen), m);
		}
		ticket_drop(sh, i);
		s->ticket = 0;
		return;
	}
	inflight_leave(&srv->inflight, s);
}

void shard_write_done(struct server *srv, const char *key, size_t len)
{
	uint32_t to;
	struct shard_msg *m;

	if (srv->nthreads <= 1 || (to = owner(srv, key, len)) == srv->id) {
		inflight_write_done(&srv->inflight, key, len);
		return;
	}
	/* At once: the client may read the key as soon as it sees the reply,
	 * through any thread, and the owner takes notices before any join. */
	m = msg_new(MSG_WRITE_DONE, key, len);
	if (!m)
		return; /* at worst a read joins a fetch begun before the write */
	{
		struct server *w = &srv->group->w[to];
		struct shard *sh = &w->shard;
		pthread_mutex_lock(&sh->lock);
		m->next = sh->notices;
		sh->notices = m;
		__atomic_store_n(&sh->nnotices, 1, __ATOMIC_RELEASE);
		pthread_mutex_unlock(&sh->lock);
		ev_async_send(w->loop, &sh->wake);
	}
}

void shard_proxy_done(struct slot *s, int state, struct value *v, const char *reason)
{
	struct shard_proxy *p = (struct shard_proxy *)s;
	struct server *srv = p->srv;
	struct shard_msg *m = msg_new(MSG_RESULT, NULL, 0);

	proxy_forget(&srv->shard, p);
	if (m) {
		m->state = (uint8_t)state;
		m->ticket = p->ticket;
		if (state == SLOT_HIT)
			m->value = value_ref(v);
		else if (state == SLOT_ERROR && !(m->err = strdup(reason))) {
			msg_free(m);
			m = NULL;
		}
	}
	/* Without memory for the answer the waiter is left to its request
	 * timeout; nothing else can be done from here. */
	if (m)
		post(srv, p->from, m);
	free(p);
}

/* Takes m: freed, or sent back as the error. */
static void take_join(struct server *srv, struct shard_msg *m)
{
	struct shard_proxy *p = calloc(1, sizeof(*p) + m->keylen);

	if (p) {
		memcpy(p->key, m->key, m->keylen);
		p->s.key = p->key;
		p->s.keylen = m->keylen;
		p->s.proxy = true;
		p->srv = srv;
		p->from = m->from;
		p->ticket = m->ticket;
		p->next = srv->shard.proxies;
		if (p->next)
			p->next->prev = p;
		srv->shard.proxies = p;
		proxy_hash(&srv->shard, p);
		if (join_here(srv, &p->s) < 0)
			shard_proxy_done(&p->s, SLOT_ERROR, NULL, "out of memory");
		free(m);
		return;
	}
	/* No proxy: answer the error directly, reusing the message. */
	m->type = MSG_RESULT;
	m->state = SLOT_ERROR;
	m->err = strdup("out of memory");
	if (m->err) {
		uint32_t to = m->from;
		post(srv, to, m);
	} else {
		msg_free(m);
	}
}

static void take_result(struct server *srv, struct shard_msg *m)
{
	struct slot *s = ticket_take(&srv->shard, m->ticket);

	if (s) {
		if (m->state == SLOT_HIT)
			request_slot_hit(s, m->value);
		else if (m->state == SLOT_MISS)
			request_slot_miss(s);
		else
			request_slot_error(s, m->err ? m->err : "error");
	}
	msg_free(m);
}

/* The waiter left: its proxy leaves the entry (which is dropped if nobody
 * else waits and it was not sent). A result already on its way is dropped by
 * the waiter's thread. */
static void take_leave(struct server *srv, const struct shard_msg *m)
{
	struct shard *sh = &srv->shard;
	struct shard_proxy *p = proxy_find(sh, m->from, m->ticket);

	if (!p)
		return;
	proxy_forget(sh, p);
	inflight_leave(&srv->inflight, &p->s);
	free(p);
}

void shard_hand_conn(struct server *srv, int fd, const char *peer, const struct session_ops *ops)
{
	struct workers *g = srv->group;
	struct server *to = NULL;
	struct shard_msg *m;
	uint32_t least = UINT32_MAX;

	/* The worker with the fewest clients; among equals, the next in turn. */
	for (uint32_t k = 0; k < g->n; k++) {
		struct server *w = &g->w[(srv->shard.turn + k) % g->n];
		uint32_t n = __atomic_load_n(&w->nconns, __ATOMIC_RELAXED);
		if (n < least) {
			least = n;
			to = w;
		}
	}
	srv->shard.turn = (to->id + 1) % g->n;
	__atomic_fetch_add(&to->nconns, 1, __ATOMIC_RELAXED);
	if (to == srv) {
		if (!conn_new(srv, fd, peer, ops))
			server_client_release(srv);
		return;
	}
	m = msg_new(MSG_CONN, peer, strlen(peer));
	if (!m) {
		close(fd);
		server_client_release(to);
		return;
	}
	m->fd = fd;
	m->ops = ops;
	/* At once: a client waits for its first reply. */
	box_put(to, m, m);
}

static void take_conn(struct server *srv, struct shard_msg *m)
{
	if (srv->stopping) {
		close(m->fd); /* accepted just before the stop */
		server_client_release(srv);
	} else if (!conn_new(srv, m->fd, m->key, m->ops)) {
		server_client_release(srv);
	}
	m->fd = -1;
}

bool shard_take(struct server *srv)
{
	struct shard *sh = &srv->shard;
	struct shard_msg *m, *next;

	if (!sh->up)
		return false;
	take_notices(srv);
	if (!__atomic_load_n(&sh->pending, __ATOMIC_SEQ_CST))
		return false;
	pthread_mutex_lock(&sh->lock);
	m = sh->in_head;
	sh->in_head = sh->in_tail = NULL;
	__atomic_store_n(&sh->pending, 0, __ATOMIC_SEQ_CST);
	pthread_mutex_unlock(&sh->lock);
	if (!m)
		return false;
	for (; m; m = next) {
		next = m->next;
		m->next = NULL;
		switch (m->type) {
		case MSG_JOIN:
			take_join(srv, m); /* takes m */
			break;
		case MSG_RESULT:
			take_result(srv, m);
			break;
		case MSG_LEAVE:
			take_leave(srv, m);
			free(m);
			break;
		case MSG_CONN:
			take_conn(srv, m);
			free(m);
			break;
		default:
			free(m);
			break;
		}
	}
	return true;
}

static void wake_cb(struct ev_loop *loop, ev_async *w, int revents)
{
	(void)loop;
	(void)revents;
	shard_take(w->data);
}

int shard_init(struct server *srv, uint32_t n)
{
	struct shard *sh = &srv->shard;

	memset(sh, 0, sizeof(*sh));
	if (n <= 1)
		return 0;
	sh->out_head = calloc(n, sizeof(*sh->out_head));
	sh->out_tail = calloc(n, sizeof(*sh->out_tail));
	sh->nbuckets = 256;
	sh->buckets = calloc(sh->nbuckets, sizeof(*sh->buckets));
	if (!sh->out_head || !sh->out_tail || !sh->buckets ||
	    pthread_mutex_init(&sh->lock, NULL) != 0) {
		free(sh->out_head);
		free(sh->out_tail);
		free(sh->buckets);
		return -1;
	}
	ev_async_init(&sh->wake, wake_cb);
	sh->wake.data = srv;
	ev_async_start(srv->loop, &sh->wake);
	sh->up = true;
	return 0;
}

static void free_list(struct shard_msg *m)
{
	for (struct shard_msg *next; m; m = next) {
		next = m->next;
		msg_free(m);
	}
}

void shard_destroy(struct server *srv)
{
	struct shard *sh = &srv->shard;

	if (!sh->up)
		return;
	ev_async_stop(srv->loop, &sh->wake);
	free_list(sh->in_head);
	free_list(sh->notices);
	for (uint32_t i = 0; i < srv->nthreads; i++)
		free_list(sh->out_head[i]);
	/* Proxies still attached to entries: the entries are freed next,
	 * without touching their waiters. */
	for (struct shard_proxy *p = sh->proxies, *next; p; p = next) {
		next = p->next;
		free(p);
	}
	pthread_mutex_destroy(&sh->lock);
	free(sh->out_head);
	free(sh->out_tail);
	free(sh->buckets);
	free(sh->waits);
	free(sh->gen);
	free(sh->free);
	memset(sh, 0, sizeof(*sh));
}
