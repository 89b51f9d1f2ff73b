/* inflight: chained hash table of entries with intrusive waiter lists. */
#include "inflight.h"

#include "batch.h"
#include "request.h"
#include "stats.h"
#include "value.h"

#include <stdlib.h>
#include <string.h>

int inflight_init(struct inflight *t, struct stats *st, struct batcher *b)
{
	memset(t, 0, sizeof(*t));
	t->nbuckets = 1024;
	t->buckets = calloc(t->nbuckets, sizeof(*t->buckets));
	t->stats = st;
	t->batcher = b;
	t->coalesce = true;
	return t->buckets ? 0 : -1;
}

void inflight_destroy(struct inflight *t)
{
	struct entry *e, *next;

	for (e = t->all; e; e = next) {
		next = e->lnext;
		value_unref(e->value);
		free(e);
	}
	t->all = NULL;
	free(t->buckets);
	t->buckets = NULL;
}

/* FNV-1a: keys are short; good spread for the table. */
uint64_t inflight_hash(const char *key, size_t len)
{
	uint64_t h = 0xcbf29ce484222325ULL;
	for (size_t i = 0; i < len; i++) {
		h ^= (unsigned char)key[i];
		h *= 0x100000001b3ULL;
	}
	return h;
}

static void grow(struct inflight *t)
{
	size_t n = t->nbuckets * 2;
	struct entry **nb = calloc(n, sizeof(*nb));

	if (!nb)
		return; /* keep working with longer chains */
	for (size_t i = 0; i < t->nbuckets; i++) {
		struct entry *e = t->buckets[i], *next;
		for (; e; e = next) {
			next = e->hnext;
			e->hnext = nb[e->hash & (n - 1)];
			nb[e->hash & (n - 1)] = e;
		}
	}
	free(t->buckets);
	t->buckets = nb;
	t->nbuckets = n;
}

/* The joinable entry for key; *stale set if a stale one was passed over. */
static struct entry *lookup(struct inflight *t, const char *key, size_t len, uint64_t h,
                            bool *stale)
{
	struct entry *e = t->buckets[h & (t->nbuckets - 1)];

	for (; e; e = e->hnext) {
		if (e->hash != h || e->keylen != len || memcmp(e->key, key, len) != 0)
			continue;
		if (!e->stale)
			return e;
		*stale = true;
	}
	return NULL;
}

void inflight_write_done(struct inflight *t, const char *key, size_t len)
{
	uint64_t h = inflight_hash(key, len);
	bool stale = false;
	struct entry *e = t->coalesce ? lookup(t, key, len, h, &stale) : NULL;

	if (e && !(e->batch && e->batch->open))
		e->stale = true;
}

static void unlink_entry(struct inflight *t, struct entry *e)
{
	struct entry **pp;

	if (!e->in_table)
		return;
	for (pp = &t->buckets[e->hash & (t->nbuckets - 1)]; *pp; pp = &(*pp)->hnext) {
		if (*pp == e) {
			*pp = e->hnext;
			break;
		}
	}
	e->in_table = false;
	t->count--;
}

static void attach(struct entry *e, struct slot *s)
{
	s->entry = e;
	s->wprev = NULL;
	s->wnext = e->waiters;
	if (e->waiters)
		e->waiters->wprev = s;
	e->waiters = s;
	e->nwaiters++;
}

int inflight_join(struct inflight *t, struct slot *s)
{
	uint64_t h = inflight_hash(s->key, s->keylen);
	bool stale = false;
	struct entry *e = t->coalesce ? lookup(t, s->key, s->keylen, h, &stale) : NULL;
	uint32_t prefix = e ? e->prefix : detail_index(&t->stats->detail, s->key, s->keylen);
	struct detail_prefix *row = detail_row(&t->stats->detail, prefix);

	if (row)
		row->keys++;
	if (e) {
		attach(e, s);
		t->stats->keys_coalesced++;
		if (row)
			row->coalesced++;
		return 0;
	}
	if (stale)
		t->stats->reads_after_write++;
	e = calloc(1, sizeof(*e) + s->keylen + 1);
	if (!e)
		return -1;
	e->hash = h;
	e->prefix = prefix;
	e->keylen = s->keylen;
	memcpy(e->key, s->key, s->keylen);
	if (t->coalesce) {
		if (t->count >= t->nbuckets)
			grow(t);
		e->hnext = t->buckets[h & (t->nbuckets - 1)];
		t->buckets[h & (t->nbuckets - 1)] = e;
		e->in_table = true;
		t->count++;
	}
	e->lnext = t->all;
	if (t->all)
		t->all->lprev = e;
	t->all = e;
	t->live++;
	t->stats->inflight_keys = t->live;
	attach(e, s);
	if (batch_add(t->batcher, e) < 0) {
		/* The batcher could not take it: the key fails now, not never. */
		inflight_fail(t, e, "upstream unavailable");
	}
	return 0;
}

void inflight_drop(struct inflight *t, struct entry *e)
{
	unlink_entry(t, e);
	if (e->lprev)
		e->lprev->lnext = e->lnext;
	else
		t->all = e->lnext;
	if (e->lnext)
		e->lnext->lprev = e->lprev;
	value_unref(e->value);
	t->live--;
	t->stats->inflight_keys = t->live;
	free(e);
}

void inflight_leave(struct inflight *t, struct slot *s)
{
	struct entry *e = s->entry;

	if (!e)
		return;
	if (s->wprev)
		s->wprev->wnext = s->wnext;
	else
		e->waiters = s->wnext;
	if (s->wnext)
		s->wnext->wprev = s->wprev;
	s->wprev = s->wnext = NULL;
	s->entry = NULL;
	e->nwaiters--;
	/* A sent entry stays until its reply so that the reply stays matched;
	 * an unsent one is simply taken out of its batch. */
	if (e->nwaiters == 0 && batch_cancel(t->batcher, e))
		inflight_drop(t, e);
}

void inflight_resolve(struct inflight *t, struct entry *e, struct value *v)
{
	struct slot *s, *next;
	struct detail_prefix *row = detail_row(&t->stats->detail, e->prefix);

	/* Unlink first: from here on a request for this key must fetch again. */
	unlink_entry(t, e);
	if (row) {
		if (v)
			row->hits += e->nwaiters;
		else
			row->misses += e->nwaiters;
	}
	for (s = e->waiters; s; s = next) {
		next = s->wnext;
		if (v) {
			t->stats->get_hits++;
			request_slot_hit(s, v);
		} else {
			t->stats->get_misses++;
			request_slot_miss(s);
		}
	}
	e->waiters = NULL;
	e->nwaiters = 0;
	inflight_drop(t, e);
}

void inflight_fail(struct inflight *t, struct entry *e, const char *reason)
{
	struct slot *s, *next;

	unlink_entry(t, e);
	for (s = e->waiters; s; s = next) {
		next = s->wnext;
		request_slot_error(s, reason);
	}
	e->waiters = NULL;
	e->nwaiters = 0;
	inflight_drop(t, e);
}
