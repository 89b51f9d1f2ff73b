/* pool: server list, key placement (ketama or modula), ejection and
 * per-server health records. */
#include "pool.h"

#include "addr.h"
#include "ketama.h"
#include "log.h"
#include "modula.h"
#include "stats.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct pool_server {
	struct addr addr;
	uint32_t conns_up;
	uint32_t failures;
	uint64_t errors;
	uint64_t ejections;
	double last_error_at;
	char last_error[256];
	bool ejected;
	bool probing;
	double probe_at; /* ejected: when a probe may start */
};

struct pool {
	struct pool_server *v;
	uint32_t n;
	struct pool_options opt;
	const struct log *log;
	struct ketama_server *ks; /* names for the rings (point into v[].addr) */
	struct ketama_ring *full; /* every server */
	struct ketama_ring *ring; /* the servers not ejected; NULL: same as full */
	bool *live;               /* per server: not ejected */
	uint32_t *live_idx;       /* modula: the servers not ejected, in order */
	uint32_t nlive;
	uint32_t (*locate)(const void *ctx, const char *key, size_t len);
	const void *ctx;
};

struct pool *pool_new(const struct addr_list *servers, const struct pool_options *o,
                      const struct log *lg)
{
	struct pool *p;

	if (servers->n == 0 || servers->n > UINT32_MAX)
		return NULL;
	p = calloc(1, sizeof(*p));
	if (!p)
		return NULL;
	p->n = (uint32_t)servers->n;
	p->opt = *o;
	p->log = lg;
	p->v = calloc(p->n, sizeof(*p->v));
	p->ks = calloc(p->n, sizeof(*p->ks));
	p->live = calloc(p->n, sizeof(*p->live));
	p->live_idx = calloc(p->n, sizeof(*p->live_idx));
	if (!p->v || !p->ks || !p->live || !p->live_idx) {
		pool_free(p);
		return NULL;
	}
	for (uint32_t i = 0; i < p->n; i++) {
		p->v[i].addr = servers->v[i];
		p->ks[i].host = p->v[i].addr.host;
		/* libmemcached names a unix socket by its path and port 0. */
		p->ks[i].port = p->v[i].addr.port;
		p->ks[i].weight = p->v[i].addr.weight;
		p->live[i] = true;
		p->live_idx[i] = i;
	}
	p->nlive = p->n;
	if (o->distribution == POOL_KETAMA) {
		p->full = ketama_new(p->ks, p->n, NULL);
		if (!p->full) {
			pool_free(p);
			return NULL;
		}
	}
	return p;
}

struct pool *pool_new_lanes(const char *const *names, uint32_t n,
                            uint32_t (*locate)(const void *ctx, const char *key, size_t len),
                            const void *ctx)
{
	struct pool *p;

	if (n == 0)
		return NULL;
	p = calloc(1, sizeof(*p));
	if (!p)
		return NULL;
	p->v = calloc(n, sizeof(*p->v));
	if (!p->v) {
		free(p);
		return NULL;
	}
	p->n = n;
	p->locate = locate;
	p->ctx = ctx;
	for (uint32_t i = 0; i < n; i++)
		snprintf(p->v[i].addr.name, sizeof(p->v[i].addr.name), "%s", names[i]);
	return p;
}

void pool_free(struct pool *p)
{
	if (!p)
		return;
	ketama_free(p->ring);
	ketama_free(p->full);
	free(p->live_idx);
	free(p->live);
	free(p->ks);
	free(p->v);
	free(p);
}

void pool_configure(struct pool *p, const struct pool_options *o)
{
	if (p->locate)
		return; /* lanes are routes, not servers: none is ever ejected */
	p->opt.eject_after = o->eject_after;
	p->opt.retry_after = o->retry_after;
}

uint32_t pool_server_count(const struct pool *p)
{
	return p->n;
}

const struct addr *pool_server_addr(const struct pool *p, uint32_t i)
{
	return &p->v[i].addr;
}

bool pool_ejected(const struct pool *p, uint32_t i)
{
	return p->v[i].ejected;
}

uint32_t pool_locate(const struct pool *p, const char *key, size_t len)
{
	if (p->locate)
		return p->locate(p->ctx, key, len);
	if (p->n == 1)
		return 0;
	if (p->opt.distribution == POOL_MODULA) {
		if (p->nlive == 0 || p->nlive == p->n)
			return (uint32_t)modula_server(p->n, key, len);
		return p->live_idx[modula_server(p->nlive, key, len)];
	}
	return (uint32_t)ketama_server(p->ring ? p->ring : p->full, key, len);
}

bool pool_has_lanes(const struct pool *p)
{
	return p->locate != NULL;
}

uint32_t pool_home(const struct pool *p, const char *key, size_t len)
{
	if (p->locate)
		return p->locate(p->ctx, key, len);
	if (p->n == 1)
		return 0;
	if (p->opt.distribution == POOL_MODULA)
		return (uint32_t)modula_server(p->n, key, len);
	return (uint32_t)ketama_server(p->full, key, len);
}

/*
 * Placement after a server left or came back. Out of memory, the old ring
 * stays: keys keep going to the server that left and fail there, which is
 * what they would do without ejection.
 */
static void rebuild(struct pool *p)
{
	struct ketama_ring *r = NULL;
	uint32_t nlive = 0;

	for (uint32_t i = 0; i < p->n; i++)
		if (p->live[i])
			p->live_idx[nlive++] = i;
	p->nlive = nlive;
	if (p->opt.distribution != POOL_KETAMA)
		return;
	if (nlive > 0 && nlive < p->n) {
		r = ketama_new(p->ks, p->n, p->live);
		if (!r) {
			log_error(p->log, "upstream: out of memory rebuilding the ring");
			return;
		}
	}
	ketama_free(p->ring);
	p->ring = r;
}

static void eject(struct pool *p, uint32_t i, double now)
{
	struct pool_server *s = &p->v[i];

	s->ejected = true;
	s->probing = false;
	s->ejections++;
	s->probe_at = now + p->opt.retry_after;
	p->live[i] = false;
	rebuild(p);
	if (p->nlive == 0)
		log_warn(p->log,
		         "upstream %s: ejected after %u consecutive failures; no server is left, "
		         "so keys go where they would with every server in",
		         s->addr.name, s->failures);
	else
		log_warn(p->log,
		         "upstream %s: ejected after %u consecutive failures; its keys go to the "
		         "other servers, probe in %.0f ms",
		         s->addr.name, s->failures, p->opt.retry_after * 1000.0);
}

static void readmit(struct pool *p, uint32_t i)
{
	struct pool_server *s = &p->v[i];

	s->ejected = false;
	s->probing = false;
	s->failures = 0;
	p->live[i] = true;
	rebuild(p);
	log_info(p->log, "upstream %s: probe answered; back in placement", s->addr.name);
}

double pool_probe_at(const struct pool *p, uint32_t i)
{
	return p->v[i].ejected ? p->v[i].probe_at : 0;
}

bool pool_probe_start(struct pool *p, uint32_t i, double now)
{
	struct pool_server *s = &p->v[i];

	if (!s->ejected || s->probing || now < s->probe_at)
		return false;
	s->probing = true;
	return true;
}

void pool_probe_done(struct pool *p, uint32_t i, bool ok, double now)
{
	struct pool_server *s = &p->v[i];

	if (!s->ejected)
		return;
	if (ok) {
		readmit(p, i);
		return;
	}
	s->probing = false;
	s->probe_at = now + p->opt.retry_after;
	log_info(p->log, "upstream %s: probe failed; out for another %.0f ms", s->addr.name,
	         p->opt.retry_after * 1000.0);
}

void pool_server_info(const struct pool *p, uint32_t i, struct pool_server_info *out)
{
	const struct pool_server *s = &p->v[i];

	out->name = s->addr.name;
	out->weight = s->addr.weight;
	out->up = s->conns_up > 0;
	out->ejected = s->ejected;
	out->connections_up = s->conns_up;
	out->failures = s->failures;
	out->errors = s->errors;
	out->ejections = s->ejections;
	out->last_error_at = s->last_error_at;
	out->last_error = s->last_error;
}

size_t pool_info_format(const struct pool_server_info *v, uint32_t nv, char *buf, size_t cap)
{
	size_t n = 0;
	int r;

	for (uint32_t i = 0; i < nv; i++) {
		const struct pool_server_info *si = &v[i];
		char name[3 * sizeof(((struct addr *)0)->name) + 1];

		stats_name(si->name, name, sizeof(name));
#define ADD(...)                                                                                   \
	do {                                                                                       \
		r = snprintf(n < cap ? buf + n : NULL, n < cap ? cap - n : 0, __VA_ARGS__);        \
		n += (size_t)(r > 0 ? r : 0);                                                      \
	} while (0)
		ADD("STAT server:%s:up %d\r\n", name, si->up ? 1 : 0);
		ADD("STAT server:%s:ejected %d\r\n", name, si->ejected ? 1 : 0);
		ADD("STAT server:%s:weight %" PRIu32 "\r\n", name, si->weight);
		ADD("STAT server:%s:connections %" PRIu32 "\r\n", name, si->connections_up);
		ADD("STAT server:%s:failures %" PRIu32 "\r\n", name, si->failures);
		ADD("STAT server:%s:errors %" PRIu64 "\r\n", name, si->errors);
		ADD("STAT server:%s:ejections %" PRIu64 "\r\n", name, si->ejections);
		ADD("STAT server:%s:last_error_time %.0f\r\n", name, si->last_error_at);
#undef ADD
	}
	return n;
}

size_t pool_stats_format(const struct pool *p, char *buf, size_t cap)
{
	struct pool_server_info one;
	size_t n = 0;

	for (uint32_t i = 0; i < p->n; i++) {
		pool_server_info(p, i, &one);
		n += pool_info_format(&one, 1, n < cap ? buf + n : NULL, n < cap ? cap - n : 0);
	}
	return n;
}

void pool_conn_up(struct pool *p, uint32_t i)
{
	p->v[i].conns_up++;
}

void pool_conn_down(struct pool *p, uint32_t i)
{
	if (p->v[i].conns_up > 0)
		p->v[i].conns_up--;
}

void pool_success(struct pool *p, uint32_t i)
{
	p->v[i].failures = 0;
}

void pool_error(struct pool *p, uint32_t i, bool server_failure, double now, const char *text)
{
	struct pool_server *s = &p->v[i];

	if (server_failure)
		s->failures++;
	s->errors++;
	s->last_error_at = now;
	snprintf(s->last_error, sizeof(s->last_error), "%s", text ? text : "");
	if (!server_failure)
		return;
	if (s->ejected) {
		/* Out already: a failure once its time is up is the probe's. */
		if (s->probing || now >= s->probe_at)
			pool_probe_done(p, i, false, now);
		return;
	}
	if (p->opt.eject_after > 0 && s->failures >= p->opt.eject_after && p->n > 1)
		eject(p, i, now);
}
