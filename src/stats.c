/* stats: formatting of the `stats` reply. */
#include "stats.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define U(name)                                                                                    \
	{                                                                                          \
#name, offsetof(struct stats, name), false                                         \
	}
/* Gauges are current values; everything else only grows. */
#define G(name)                                                                                    \
	{                                                                                          \
#name, offsetof(struct stats, name), true                                          \
	}

static const struct stat_counter counters[] = {
    G(curr_connections),
    U(total_connections),
    U(rejected_connections),
    U(cmd_get),
    U(get_keys),
    U(get_hits),
    U(get_misses),
    U(keys_coalesced),
    U(upstream_batches),
    U(upstream_keys),
    U(upstream_errors),
    U(upstream_timeouts),
    U(upstream_retries),
    U(client_errors),
    U(cmd_unsupported),
    U(bytes_read),
    U(bytes_written),
    G(inflight_keys),
    U(too_many_keys),
    U(out_of_memory),
    U(request_timeouts),
    U(idle_timeouts),
    U(backpressure_pauses),
    G(value_bytes),
    U(cmd_set),
    U(cmd_touch),
    U(cmd_delete),
    U(cmd_incr),
    U(cmd_decr),
    U(cmd_flush),
    U(cmd_meta),
    U(writes_forwarded),
    U(write_errors),
    U(reads_after_write),
    U(pg_statements),
    U(pg_rows),
    U(pg_rows_ignored),
    U(pg_query_errors),
    U(pg_prepare_errors),
    U(batch_splits),
};

static const double latency_bounds[] = {0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
                                        0.05,   0.1,     0.25,   0.5,   1,      2.5,   5,    10};
static const double size_bounds[] = {1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 4096, 10000};

void hist_init_latency(struct histogram *h)
{
	memset(h, 0, sizeof(*h));
	h->bounds = latency_bounds;
	h->nbounds = sizeof(latency_bounds) / sizeof(latency_bounds[0]);
}

void hist_init_size(struct histogram *h)
{
	memset(h, 0, sizeof(*h));
	h->bounds = size_bounds;
	h->nbounds = sizeof(size_bounds) / sizeof(size_bounds[0]);
}

/* Counts are per bucket here; the exposition makes them cumulative. */
void hist_add(struct histogram *h, double v)
{
	uint32_t i = 0;

	while (i < h->nbounds && v > h->bounds[i])
		i++;
	h->counts[i]++;
	h->sum += v;
	h->count++;
}

#define DETAIL_SLOTS (DETAIL_MAX * 2)

int stats_init(struct stats *st)
{
	memset(st, 0, sizeof(*st));
	hist_init_latency(&st->request_seconds);
	hist_init_latency(&st->batch_seconds);
	hist_init_size(&st->batch_keys);
	st->vb = &st->value_bytes;
	st->detail.v = calloc(DETAIL_MAX + 2, sizeof(*st->detail.v));
	st->detail.slots = calloc(DETAIL_SLOTS, sizeof(*st->detail.slots));
	st->routes = calloc(ROUTE_STATS_MAX, sizeof(*st->routes));
	if (!st->detail.v || !st->detail.slots || !st->routes) {
		stats_free(st);
		return -1;
	}
	return 0;
}

void stats_free(struct stats *st)
{
	free(st->detail.v);
	free(st->detail.slots);
	st->detail.v = NULL;
	st->detail.slots = NULL;
	free(st->routes);
	st->routes = NULL;
}

struct route_stats *stats_route(struct stats *st, const char *name)
{
	struct route_stats *r;

	for (uint32_t i = 0; i < st->nroutes; i++)
		if (strncmp(st->routes[i].name, name, ROUTE_NAME_MAX) == 0)
			return &st->routes[i];
	if (!st->routes || st->nroutes == ROUTE_STATS_MAX)
		return NULL;
	r = &st->routes[st->nroutes++];
	memset(r, 0, sizeof(*r));
	snprintf(r->name, sizeof(r->name), "%s", name);
	hist_init_latency(&r->seconds);
	return r;
}

static void hist_merge(struct histogram *dst, const struct histogram *src)
{
	for (uint32_t i = 0; i <= src->nbounds && i <= HIST_MAX_BUCKETS; i++)
		dst->counts[i] += src->counts[i];
	dst->sum += src->sum;
	dst->count += src->count;
}

void stats_add(struct stats *dst, const struct stats *src)
{
	bool off = dst->detail.off;

	for (size_t i = 0; i < sizeof(counters) / sizeof(counters[0]); i++) {
		size_t o = counters[i].off;
		if (o == offsetof(struct stats, value_bytes))
			continue; /* one counter for the process, not a sum */
		*(uint64_t *)((char *)dst + o) += *(const uint64_t *)((const char *)src + o);
	}
	hist_merge(&dst->request_seconds, &src->request_seconds);
	hist_merge(&dst->batch_seconds, &src->batch_seconds);
	hist_merge(&dst->batch_keys, &src->batch_keys);
	dst->detail.off = false;
	for (uint32_t i = 0; i < src->detail.n; i++) {
		const struct detail_prefix *p = &src->detail.v[i];
		char key[DETAIL_PREFIX_MAX + 1];
		uint32_t j;
		struct detail_prefix *q;
		/* Rows 0 and 1 are the fixed ones; the rest are found by name, as
		 * the prefix of a key "name:". */
		if (i < 2) {
			detail_index(&dst->detail, "", 0);
			j = i;
		} else {
			memcpy(key, p->name, p->len);
			key[p->len] = ':';
			j = detail_index(&dst->detail, key, (size_t)p->len + 1);
		}
		if (!dst->detail.v || j >= dst->detail.n)
			continue;
		q = &dst->detail.v[j];
		q->keys += p->keys;
		q->coalesced += p->coalesced;
		q->upstream += p->upstream;
		q->hits += p->hits;
		q->misses += p->misses;
	}
	dst->detail.off = off;
	for (uint32_t i = 0; i < src->nroutes; i++) {
		const struct route_stats *a = &src->routes[i];
		struct route_stats *b = stats_route(dst, a->name);
		if (!b)
			continue;
		b->keys += a->keys;
		b->statements += a->statements;
		b->rows += a->rows;
		b->misses += a->misses;
		b->errors += a->errors;
		b->splits += a->splits;
		hist_merge(&b->seconds, &a->seconds);
	}
}

void stats_reset(struct stats *st)
{
	uint64_t curr = st->curr_connections, inflight = st->inflight_keys;
	uint64_t vb = __atomic_load_n(&st->value_bytes, __ATOMIC_RELAXED);
	struct detail d = st->detail;
	size_t (*sf)(const void *, char *, size_t) = st->servers_format;
	const void *sfctx = st->servers_ctx;
	uint64_t *vbp = st->vb == &st->value_bytes ? NULL : st->vb;

	/* Prefix indexes stay valid for entries in flight: zero the figures only. */
	for (uint32_t i = 0; i < d.n; i++)
		d.v[i].keys = d.v[i].coalesced = d.v[i].upstream = d.v[i].hits = d.v[i].misses = 0;
	struct route_stats *routes = st->routes;
	uint32_t nroutes = st->nroutes;

	/* Route rows stay where the backends point: zero the figures only. */
	for (uint32_t i = 0; i < nroutes; i++) {
		routes[i].keys = routes[i].statements = routes[i].rows = 0;
		routes[i].misses = routes[i].errors = routes[i].splits = 0;
		hist_init_latency(&routes[i].seconds);
	}
	memset(st, 0, sizeof(*st));
	hist_init_latency(&st->request_seconds);
	hist_init_latency(&st->batch_seconds);
	hist_init_size(&st->batch_keys);
	st->routes = routes;
	st->nroutes = nroutes;
	st->detail = d;
	st->servers_format = sf;
	st->servers_ctx = sfctx;
	st->curr_connections = curr;
	st->inflight_keys = inflight;
	__atomic_store_n(&st->value_bytes, vb, __ATOMIC_RELAXED);
	st->vb = vbp ? vbp : &st->value_bytes;
}

static uint32_t detail_new(struct detail *d, const char *name, size_t len)
{
	struct detail_prefix *p = &d->v[d->n];
	size_t o = 0;

	memcpy(p->name, name, len);
	p->len = (uint8_t)len;
	/* Keys may hold any byte >= 0x21: keep labels printable and quotable. */
	for (size_t i = 0; i < len; i++) {
		unsigned char ch = (unsigned char)name[i];
		if (ch < 0x7f && ch != '"' && ch != '\\')
			p->label[o++] = (char)ch;
		else
			o += (size_t)snprintf(p->label + o, sizeof(p->label) - o, "\\x%02x", ch);
	}
	p->label[o] = '\0';
	return d->n++;
}

uint32_t detail_index(struct detail *d, const char *key, size_t len)
{
	const char *colon = memchr(key, ':', len);
	size_t plen = colon ? (size_t)(colon - key) : 0;
	uint32_t h = 2166136261u, slot;

	if (!d->v || d->off)
		return 0;
	if (d->n == 0) {
		/* Two fixed rows first: 0 for keys without a prefix, 1 for overflow. */
		detail_new(d, "(none)", 6);
		detail_new(d, "(other)", 7);
	}
	if (!colon)
		return 0;
	if (plen > DETAIL_PREFIX_MAX)
		return 1;
	for (size_t i = 0; i < plen; i++)
		h = (h ^ (unsigned char)key[i]) * 16777619u;
	for (slot = h % DETAIL_SLOTS;; slot = (slot + 1) % DETAIL_SLOTS) {
		uint32_t idx = d->slots[slot];
		if (idx == 0)
			break;
		if (d->v[idx - 1].len == plen && memcmp(d->v[idx - 1].name, key, plen) == 0)
			return idx - 1;
	}
	if (d->n >= DETAIL_MAX + 2)
		return 1;
	d->slots[slot] = detail_new(d, key, plen) + 1;
	return d->slots[slot] - 1;
}

char *stats_detail_dump(const struct stats *st, size_t *len)
{
	const struct detail *d = &st->detail;
	size_t cap = 64 + (size_t)d->n * (sizeof(d->v[0].label) + 160), n = 0;
	char *buf = malloc(cap);

	if (!buf)
		return NULL;
	for (uint32_t i = 0; i < d->n; i++) {
		const struct detail_prefix *p = &d->v[i];
		if (!p->keys && !p->upstream)
			continue;
		n += (size_t)snprintf(buf + n, cap - n,
		                      "PREFIX %s get %" PRIu64 " coalesced %" PRIu64
		                      " upstream %" PRIu64 " hit %" PRIu64 " miss %" PRIu64 "\r\n",
		                      p->label, p->keys, p->coalesced, p->upstream, p->hits,
		                      p->misses);
	}
	n += (size_t)snprintf(buf + n, cap - n, "END\r\n");
	*len = n;
	return buf;
}

size_t stats_counters(const struct stat_counter **out)
{
	*out = counters;
	return sizeof(counters) / sizeof(counters[0]);
}

/* The name, with what a STAT line cannot carry as %XX. */
void stats_name(const char *name, char *out, size_t cap)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t n = 0;

	for (const unsigned char *c = (const unsigned char *)name; *c && n + 4 < cap; c++) {
		if (*c <= 0x20 || *c == 0x7f || *c == '%') {
			out[n++] = '%';
			out[n++] = hex[*c >> 4];
			out[n++] = hex[*c & 15];
		} else {
			out[n++] = (char)*c;
		}
	}
	out[n] = '\0';
}

size_t stats_format(const struct stats *st, pid_t pid, uint64_t uptime, const char *version,
                    char *buf, size_t cap)
{
	size_t n = 0;
	int r;

#define ADD(...)                                                                                   \
	do {                                                                                       \
		r = snprintf(n < cap ? buf + n : NULL, n < cap ? cap - n : 0, __VA_ARGS__);        \
		n += (size_t)(r > 0 ? r : 0);                                                      \
	} while (0)

	ADD("STAT pid %ld\r\n", (long)pid);
	ADD("STAT uptime %" PRIu64 "\r\n", uptime);
	ADD("STAT version %s\r\n", version);
	for (size_t i = 0; i < sizeof(counters) / sizeof(counters[0]); i++)
		ADD("STAT %s %" PRIu64 "\r\n", counters[i].name,
		    *(const uint64_t *)((const char *)st + counters[i].off));
	if (st->servers_format)
		n += st->servers_format(st->servers_ctx, n < cap ? buf + n : NULL,
		                        n < cap ? cap - n : 0);
	for (uint32_t i = 0; i < st->nroutes; i++) {
		static const char *const fig[] = {"keys",   "statements", "rows",
		                                  "misses", "errors",     "splits"};
		const struct route_stats *rs = &st->routes[i];
		const struct histogram *h = &rs->seconds;
		char name[3 * ROUTE_NAME_MAX + 1];
		uint64_t cum = 0;

		stats_name(rs->name, name, sizeof(name));
		for (size_t f = 0; f < 6; f++)
			ADD("STAT route:%s:%s %" PRIu64 "\r\n", name, fig[f], (&rs->keys)[f]);
		/* The statement latency histogram, cumulative as in /metrics. */
		for (uint32_t b = 0; b <= h->nbounds; b++) {
			cum += h->counts[b];
			if (b < h->nbounds)
				ADD("STAT route:%s:statement_seconds_le_%g %" PRIu64 "\r\n", name,
				    h->bounds[b], cum);
			else
				ADD("STAT route:%s:statement_seconds_le_inf %" PRIu64 "\r\n", name,
				    cum);
		}
		ADD("STAT route:%s:statement_seconds_sum %.6f\r\n", name, h->sum);
		ADD("STAT route:%s:statement_seconds_count %" PRIu64 "\r\n", name, h->count);
	}
	ADD("END\r\n");
#undef ADD
	return n;
}
