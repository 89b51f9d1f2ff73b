/* pool: server list, key placement and per-server health records. */
#include "pool.h"

#include "addr.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct pool_server {
	struct addr addr;
	uint32_t conns_up;
	uint32_t failures;
	uint64_t errors;
	double last_error_at;
	char last_error[256];
};

struct pool {
	struct pool_server *v;
	uint32_t n;
};

struct pool *pool_new(const struct addr_list *servers)
{
	struct pool *p;

	if (servers->n == 0 || servers->n > UINT32_MAX)
		return NULL;
	p = calloc(1, sizeof(*p));
	if (!p)
		return NULL;
	p->v = calloc(servers->n, sizeof(*p->v));
	if (!p->v) {
		free(p);
		return NULL;
	}
	p->n = (uint32_t)servers->n;
	for (uint32_t i = 0; i < p->n; i++)
		p->v[i].addr = servers->v[i];
	return p;
}

void pool_free(struct pool *p)
{
	if (p) {
		free(p->v);
		free(p);
	}
}

uint32_t pool_server_count(const struct pool *p)
{
	return p->n;
}

const struct addr *pool_server_addr(const struct pool *p, uint32_t i)
{
	return &p->v[i].addr;
}

static uint64_t fnv1a64(const char *key, size_t len)
{
	uint64_t h = 0xcbf29ce484222325ULL;

	for (size_t i = 0; i < len; i++) {
		h ^= (unsigned char)key[i];
		h *= 0x100000001b3ULL;
	}
	return h;
}

static uint64_t fmix64(uint64_t h)
{
	h ^= h >> 33;
	h *= 0xff51afd7ed558ccdULL;
	h ^= h >> 33;
	h *= 0xc4ceb9fe1a85ec53ULL;
	h ^= h >> 33;
	return h;
}

uint32_t pool_locate(const struct pool *p, const char *key, size_t len)
{
	if (p->n == 1)
		return 0;
	return (uint32_t)(fmix64(fnv1a64(key, len)) % p->n);
}

void pool_server_info(const struct pool *p, uint32_t i, struct pool_server_info *out)
{
	const struct pool_server *s = &p->v[i];

	out->name = s->addr.name;
	out->up = s->conns_up > 0;
	out->connections_up = s->conns_up;
	out->failures = s->failures;
	out->errors = s->errors;
	out->last_error_at = s->last_error_at;
	out->last_error = s->last_error;
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
}
