/*
 * ketama: libmemcached's weighted ring, rule for rule (its update_continuum
 * and dispatch_host):
 *
 *  - Each live server gets floor(w / W * 40 * live + 1e-10) * 4 points,
 *    w its weight, W the sum over live servers, computed in float: the float
 *    rounding decides whether a server gets 156 points or 160, so it is
 *    reproduced step by step.
 *  - The points come from "host-i" (or "host:port-i" unless the port is
 *    11211) for i = 0, 1, ...: each MD5 gives four points, its four
 *    little-endian 32-bit words.
 *  - Points are sorted by value, ties by server index. A key's MD5 (first
 *    word) goes to the first point at or after it, wrapping to the first.
 *
 * The ring owns its point array; nothing else is kept.
 */
#include "ketama.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "md5.h"

#define KETAMA_DEFAULT_PORT 11211
/* Points a server would have if all weights were equal. */
#define KETAMA_POINTS_PER_SERVER 160
/* Points per MD5 digest. */
#define KETAMA_POINTS_PER_HASH 4

struct ketama_point {
	uint32_t value;
	uint32_t server;
};

struct ketama_ring {
	struct ketama_point *points; /* sorted by value, then server */
	size_t npoints;
	size_t nservers;
	size_t *per_server; /* points of each server */
};

static uint32_t le32_at(const uint8_t *d, unsigned word)
{
	const uint8_t *p = d + 4 * word;

	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

uint32_t ketama_hash(const void *key, size_t len)
{
	uint8_t d[MD5_DIGEST_LEN];

	md5(key, len, d);
	return le32_at(d, 0);
}

/*
 * libmemcached evaluates
 *   floor((float)(pct * 160 / 4 * (float)live + 0.0000000001F)) * 4
 * with pct = (float)weight / (float)total. Each step is rounded to float
 * here as it is there (C11 requires assignment to drop excess precision), so
 * the same weights get the same point counts on every platform where
 * libmemcached computes in float.
 */
static uint32_t server_points(uint32_t weight, uint64_t total, size_t live)
{
	float pct = (float)weight / (float)total;
	float x = pct * (float)KETAMA_POINTS_PER_SERVER;

	x = x / (float)KETAMA_POINTS_PER_HASH;
	x = x * (float)live;
	x = x + 0.0000000001F;
	/* x >= 0, so truncation is floor. */
	return (uint32_t)x * KETAMA_POINTS_PER_HASH;
}

static int point_cmp(const void *a, const void *b)
{
	const struct ketama_point *p = a, *q = b;

	if (p->value != q->value)
		return p->value < q->value ? -1 : 1;
	if (p->server != q->server)
		return p->server < q->server ? -1 : 1;
	return 0;
}

static bool server_valid(const struct ketama_server *s)
{
	return s->host != NULL && s->host[0] != '\0' && strlen(s->host) <= KETAMA_HOST_MAX &&
	       s->port != 0;
}

/* Appends the points of one server; name is scratch space big enough for
 * the host, a port and an index. */
static void add_points(struct ketama_ring *r, const struct ketama_server *s, uint32_t server,
                       uint32_t count, char *name, size_t name_size)
{
	for (uint32_t i = 0; i < count / KETAMA_POINTS_PER_HASH; i++) {
		uint8_t d[MD5_DIGEST_LEN];
		int len;

		if (s->port == KETAMA_DEFAULT_PORT)
			len = snprintf(name, name_size, "%s-%u", s->host, (unsigned)i);
		else
			len = snprintf(name, name_size, "%s:%u-%u", s->host, (unsigned)s->port,
			               (unsigned)i);
		md5(name, (size_t)len, d);
		for (unsigned w = 0; w < KETAMA_POINTS_PER_HASH; w++) {
			r->points[r->npoints].value = le32_at(d, w);
			r->points[r->npoints].server = server;
			r->npoints++;
		}
	}
	r->per_server[server] = count;
}

struct ketama_ring *ketama_new(const struct ketama_server *servers, size_t n, const bool *live)
{
	struct ketama_ring *r;
	uint64_t total = 0;
	size_t nlive = 0, npoints = 0;
	char name[KETAMA_HOST_MAX + sizeof(":65535-4294967295")];

	if (n > UINT32_MAX)
		return NULL;
	for (size_t i = 0; i < n; i++) {
		if (!server_valid(&servers[i]))
			return NULL;
		if (live && !live[i])
			continue;
		nlive++;
		total += servers[i].weight ? servers[i].weight : 1;
	}
	for (size_t i = 0; i < n; i++) {
		if (!live || live[i])
			npoints +=
			    server_points(servers[i].weight ? servers[i].weight : 1, total, nlive);
	}

	r = calloc(1, sizeof(*r));
	if (!r)
		return NULL;
	r->nservers = n;
	r->per_server = calloc(n ? n : 1, sizeof(*r->per_server));
	r->points = malloc((npoints ? npoints : 1) * sizeof(*r->points));
	if (!r->per_server || !r->points) {
		ketama_free(r);
		return NULL;
	}
	for (size_t i = 0; i < n; i++) {
		if (live && !live[i])
			continue;
		add_points(r, &servers[i], (uint32_t)i,
		           server_points(servers[i].weight ? servers[i].weight : 1, total, nlive),
		           name, sizeof(name));
	}
	qsort(r->points, r->npoints, sizeof(*r->points), point_cmp);
	return r;
}

void ketama_free(struct ketama_ring *ring)
{
	if (!ring)
		return;
	free(ring->points);
	free(ring->per_server);
	free(ring);
}

size_t ketama_server(const struct ketama_ring *ring, const void *key, size_t len)
{
	size_t lo = 0, hi = ring->npoints;
	uint32_t h;

	if (ring->npoints == 0)
		return KETAMA_NONE;
	h = ketama_hash(key, len);
	/* The first point whose value is >= h; past the last, the first. */
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (ring->points[mid].value < h)
			lo = mid + 1;
		else
			hi = mid;
	}
	return ring->points[lo == ring->npoints ? 0 : lo].server;
}

size_t ketama_points(const struct ketama_ring *ring, size_t server)
{
	return server < ring->nservers ? ring->per_server[server] : 0;
}
