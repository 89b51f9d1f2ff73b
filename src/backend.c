/* backend: [upstream] protocol → backend. */
#include "backend.h"

#include "addr.h"
#include "backend_memcache.h"
#include "config.h"
#include "pool.h"

#include <stdio.h>

void backend_settings(const struct config *cfg, struct upstream_settings *out)
{
	out->connect_timeout_ms = (uint32_t)cfg->connect_timeout_ms;
	out->timeout_ms = (uint32_t)cfg->timeout_ms;
	out->pipeline_depth = (uint32_t)cfg->pipeline_depth;
}

const char *backend_protocol_name(long protocol)
{
	switch (protocol) {
	case PROTO_MEMCACHE:
		return "memcache";
	case PROTO_REDIS:
		return "redis";
	case PROTO_POSTGRES:
		return "postgres";
	default:
		return "unknown";
	}
}

/* The servers of [upstream] servers, as a pool. */
static struct pool *servers_pool(const struct config *cfg, char *err, size_t errlen)
{
	struct addr_list servers;
	struct pool *p;

	if (addr_list_parse(cfg->servers, false, &servers, err, errlen) < 0)
		return NULL;
	p = pool_new(&servers);
	addr_list_free(&servers);
	if (!p)
		snprintf(err, errlen, "out of memory");
	return p;
}

struct upstream *backend_new(const struct config *cfg, const struct backend_env *env, char *err,
                             size_t errlen)
{
	struct upstream_settings us;
	struct upstream *u = NULL;
	struct pool *p;

	backend_settings(cfg, &us);
	switch (cfg->protocol) {
	case PROTO_MEMCACHE:
		p = servers_pool(cfg, err, errlen);
		if (!p)
			return NULL;
		u = backend_memcache_new(env->loop, p, (uint32_t)cfg->connections, &us,
		                         env->batcher, env->stats, env->log);
		if (!u)
			snprintf(err, errlen, "out of memory");
		return u;
	default:
		snprintf(err, errlen, "[upstream] protocol %s: not built in",
		         backend_protocol_name(cfg->protocol));
		return NULL;
	}
}
