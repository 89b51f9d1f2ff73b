/* backend: [upstream] protocol → backend. */
#include "backend.h"

#include "addr.h"
#include "backend_memcache.h"
#include "backend_redis.h"
#include "backend_postgres.h"
#include "config.h"
#include "pool.h"

#include <stdio.h>

void backend_settings(const struct config *cfg, struct upstream_settings *out)
{
	out->connect_timeout_ms = (uint32_t)cfg->connect_timeout_ms;
	out->timeout_ms = (uint32_t)cfg->timeout_ms;
	out->pipeline_depth = (uint32_t)cfg->pipeline_depth;
	out->value_budget = (uint64_t)cfg->max_memory_mb << 20;
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

void backend_pool_options(const struct config *cfg, struct pool_options *out)
{
	out->distribution = cfg->distribution == 1 ? POOL_MODULA : POOL_KETAMA;
	out->eject_after = (uint32_t)cfg->eject_after;
	out->retry_after = (double)cfg->retry_after_ms / 1000.0;
}

/* The servers of [upstream] servers, as a pool. */
static struct pool *servers_pool(const struct config *cfg, const struct log *lg, char *err,
                                 size_t errlen)
{
	struct addr_list servers;
	struct pool_options o;
	struct pool *p;

	if (addr_list_parse(cfg->servers, false, &servers, err, errlen) < 0)
		return NULL;
	backend_pool_options(cfg, &o);
	p = pool_new(&servers, &o, lg);
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
		p = servers_pool(cfg, env->log, err, errlen);
		if (!p)
			return NULL;
		u = backend_memcache_new(env->loop, p, (uint32_t)cfg->connections, &us,
		                         env->batcher, env->stats, env->log);
		if (!u)
			snprintf(err, errlen, "out of memory");
		return u;
	case PROTO_REDIS: {
		struct redis_auth auth = {cfg->redis_username, cfg->redis_password,
		                          cfg->redis_database};
		p = servers_pool(cfg, env->log, err, errlen);
		if (!p)
			return NULL;
		u = backend_redis_new(env->loop, p, (uint32_t)cfg->connections, &us, &auth,
		                      env->batcher, env->stats, env->log);
		if (!u)
			snprintf(err, errlen, "out of memory");
		return u;
	}
	case PROTO_POSTGRES:
		/* Its pool's lanes are the routes: one open batch per route. */
		return backend_postgres_new(env->loop, cfg->conninfo, cfg->queries,
		                            (uint32_t)cfg->connections, env->thread,
		                            env->nthreads ? env->nthreads : 1, &us, env->batcher,
		                            env->stats, env->log, err, errlen);
	default:
		snprintf(err, errlen, "[upstream] protocol %s: not built in",
		         backend_protocol_name(cfg->protocol));
		return NULL;
	}
}
