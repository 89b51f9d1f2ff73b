/*
 * upstream: the pool (key placement, server health) and the backends, in
 * process. Its test cases join the coalesce suite (upstream_tcases()).
 */
#include "addr.h"
#include "backend.h"
#include "config.h"
#include "log.h"
#include "pool.h"
#include "stats.h"

#include <check.h>
#include <ev.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static struct pool *pool_of(const char *servers)
{
	char err[256];
	struct addr_list l;
	struct pool *p;

	ck_assert_int_eq(addr_list_parse(servers, false, &l, err, sizeof(err)), 0);
	p = pool_new(&l);
	addr_list_free(&l);
	ck_assert_ptr_nonnull(p);
	return p;
}

/* The placement as pool.h documents it, written from that text. */
static uint32_t documented_server(const char *key, size_t len, uint32_t n)
{
	uint64_t h = 0xcbf29ce484222325ULL;

	for (size_t i = 0; i < len; i++) {
		h ^= (unsigned char)key[i];
		h *= 0x100000001b3ULL;
	}
	h ^= h >> 33;
	h *= 0xff51afd7ed558ccdULL;
	h ^= h >> 33;
	h *= 0xc4ceb9fe1a85ec53ULL;
	h ^= h >> 33;
	return (uint32_t)(h % n);
}

START_TEST(pool_places_keys_as_documented)
{
	static const char *const lists[] = {"127.0.0.1:1", "127.0.0.1:1,127.0.0.1:2",
	                                    "127.0.0.1:1,127.0.0.1:2,127.0.0.1:3"};

	for (uint32_t n = 1; n <= 3; n++) {
		struct pool *p = pool_of(lists[n - 1]);
		uint32_t seen[3] = {0};
		ck_assert_uint_eq(pool_server_count(p), n);
		for (int i = 0; i < 1000; i++) {
			char key[32];
			int len = snprintf(key, sizeof(key), "user:%d", i);
			uint32_t s = pool_locate(p, key, (size_t)len);
			ck_assert_uint_eq(s, documented_server(key, (size_t)len, n));
			seen[s]++;
		}
		for (uint32_t s = 0; s < n; s++)
			ck_assert_msg(seen[s] > 0, "%u servers: none on %u", n, s);
		pool_free(p);
	}
}
END_TEST

/* Keys far longer than memcached's 250 bytes (RESP keys) are placed whole. */
START_TEST(pool_places_long_keys)
{
	enum { LEN = 70000 };
	struct pool *p = pool_of("127.0.0.1:1,127.0.0.1:2,127.0.0.1:3");
	char *key = malloc(LEN);

	ck_assert_ptr_nonnull(key);
	memset(key, 'k', LEN);
	key[LEN - 1] = 'z';
	ck_assert_uint_eq(pool_locate(p, key, LEN), documented_server(key, LEN, 3));
	free(key);
	pool_free(p);
}
END_TEST

START_TEST(pool_health_records)
{
	struct pool *p = pool_of("127.0.0.1:1,unix:/tmp/x.sock");
	struct pool_server_info in;

	pool_server_info(p, 1, &in);
	ck_assert_str_eq(in.name, "unix:/tmp/x.sock");
	ck_assert(!in.up);
	ck_assert_uint_eq(in.failures, 0);
	ck_assert_str_eq(in.last_error, "");
	ck_assert(in.last_error_at == 0);

	pool_conn_up(p, 0);
	pool_conn_up(p, 0);
	pool_server_info(p, 0, &in);
	ck_assert(in.up);
	ck_assert_uint_eq(in.connections_up, 2);
	pool_conn_down(p, 0);
	pool_conn_down(p, 0);
	pool_server_info(p, 0, &in);
	ck_assert(!in.up);

	pool_error(p, 0, true, 1000.5, "connect to 127.0.0.1:1: Connection refused");
	pool_error(p, 0, true, 1001.5, "timeout after 200 ms");
	pool_server_info(p, 0, &in);
	ck_assert_uint_eq(in.failures, 2);
	ck_assert_uint_eq(in.errors, 2);
	ck_assert(in.last_error_at == 1001.5);
	ck_assert_str_eq(in.last_error, "timeout after 200 ms");
	/* An error reply is an error, not a failure of the server. */
	pool_error(p, 0, false, 1002.0, "SERVER_ERROR out of memory");
	pool_server_info(p, 0, &in);
	ck_assert_uint_eq(in.failures, 2);
	ck_assert_uint_eq(in.errors, 3);
	pool_success(p, 0);
	pool_server_info(p, 0, &in);
	ck_assert_uint_eq(in.failures, 0);
	ck_assert_str_eq(in.last_error, "SERVER_ERROR out of memory");
	/* The other server is untouched. */
	pool_server_info(p, 1, &in);
	ck_assert_uint_eq(in.errors, 0);
	pool_free(p);
}
END_TEST

/* [upstream] protocol picks the backend; its servers become its pool. */
START_TEST(factory_builds_the_configured_backend)
{
	struct ev_loop *loop = ev_loop_new(0);
	struct stats st;
	struct log lg = {.level = LVL_ERROR};
	struct backend_env env = {loop, NULL, &st, &lg};
	struct config c;
	struct upstream *u;
	char err[256];

	memset(&st, 0, sizeof(st));
	config_init(&c);
	ck_assert_int_eq(
	    config_set(&c, "upstream", "servers", "127.0.0.1:1, 127.0.0.1:2", err, sizeof(err)), 0);
	u = backend_new(&c, &env, err, sizeof(err));
	ck_assert_msg(u != NULL, "%s", err);
	ck_assert_uint_eq(pool_server_count(u->pool), 2);
	ck_assert_uint_eq(u->ops->outstanding(u), 0);
	u->ops->destroy(u);

	/* The configuration layer refuses protocols not built in; the factory
	 * does not rely on it. */
	c.protocol = PROTO_REDIS;
	ck_assert_ptr_null(backend_new(&c, &env, err, sizeof(err)));
	ck_assert_str_eq(err, "[upstream] protocol redis: not built in");
	config_free(&c);
	ev_loop_destroy(loop);
}
END_TEST

void upstream_tcases(Suite *s)
{
	TCase *tp = tcase_create("pool");
	TCase *tb = tcase_create("backend");

	tcase_add_test(tp, pool_places_keys_as_documented);
	tcase_add_test(tp, pool_places_long_keys);
	tcase_add_test(tp, pool_health_records);
	suite_add_tcase(s, tp);
	tcase_add_test(tb, factory_builds_the_configured_backend);
	suite_add_tcase(s, tb);
}
