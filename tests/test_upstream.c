/*
 * upstream: the pool (key placement, server health) and the backends, in
 * process. Its test cases join the coalesce suite (upstream_tcases()).
 */
#include "addr.h"
#include "backend.h"
#include "backend_memcache.h"
#include "batch.h"
#include "config.h"
#include "conn.h"
#include "inflight.h"
#include "ketama.h"
#include "log.h"
#include "pool.h"
#include "request.h"
#include "stats.h"
#include "testutil.h"
#include "upstream.h"

#include <check.h>
#include <ev.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static struct pool *pool_of(const char *servers)
{
	static const struct log quiet = {.level = LVL_ERROR};
	static const struct pool_options ketama = {.distribution = POOL_KETAMA};
	char err[256];
	struct addr_list l;
	struct pool *p;

	ck_assert_int_eq(addr_list_parse(servers, false, &l, err, sizeof(err)), 0);
	p = pool_new(&l, &ketama, &quiet);
	addr_list_free(&l);
	ck_assert_ptr_nonnull(p);
	return p;
}

/* The placement as pool.h documents it: the ketama ring of servers
 * 127.0.0.1:1..n, weight 1 (test_pool.c checks it against libmemcached). */
static uint32_t documented_server(const char *key, size_t len, uint32_t n)
{
	struct ketama_server s[3] = {{"127.0.0.1", 1, 1}, {"127.0.0.1", 2, 1}, {"127.0.0.1", 3, 1}};
	struct ketama_ring *r = ketama_new(s, n, NULL);
	size_t i;

	ck_assert_ptr_nonnull(r);
	i = ketama_server(r, key, len);
	ketama_free(r);
	return (uint32_t)i;
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
	struct backend_env env = {loop, NULL, &st, &lg, 0, 1};
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
	u = backend_new(&c, &env, err, sizeof(err));
	ck_assert_msg(u != NULL, "%s", err);
	ck_assert_uint_eq(pool_server_count(u->pool), 2);
	u->ops->destroy(u);
	/* postgres without [queries] (the loader refuses it too). */
	c.protocol = PROTO_POSTGRES;
	ck_assert_ptr_null(backend_new(&c, &env, err, sizeof(err)));
	ck_assert_str_eq(err, "[queries] has no route");
	config_free(&c);
	ev_loop_destroy(loop);
}
END_TEST

/*
 * The daemon's pipeline from the in-flight table down, in process, with a
 * real backend talking to the fake upstream (recording every line it gets).
 * The client parser is not involved: keys go in as any session would put
 * them.
 */
static struct {
	struct ev_loop *loop;
	struct stats st;
	struct log lg;
	struct inflight t;
	struct batcher b;
	struct upstream *up;
	struct conn c; /* zeroed: requests are read by the test */
	struct proc fake;
	char record[300];
} w;

static void world_start(void)
{
	struct backend_env env;
	struct config cfg;
	char servers[64], err[256];

	memset(&w, 0, sizeof(w));
	w.loop = ev_loop_new(0);
	w.lg.level = LVL_ERROR;
	ck_assert_int_eq(stats_init(&w.st), 0);
	snprintf(w.record, sizeof(w.record), "%s/record", tu_tmpdir());
	tu_fake_start(&w.fake, w.record);
	ck_assert_int_eq(inflight_init(&w.t, &w.st, &w.b), 0);
	ck_assert_int_eq(batcher_init(&w.b, w.loop, &w.st, &w.lg, &w.t), 0);
	config_init(&cfg);
	snprintf(servers, sizeof(servers), "127.0.0.1:%d", w.fake.port);
	ck_assert_int_eq(config_set(&cfg, "upstream", "servers", servers, err, sizeof(err)), 0);
	env = (struct backend_env){w.loop, &w.b, &w.st, &w.lg, 0, 1};
	w.up = backend_new(&cfg, &env, err, sizeof(err));
	ck_assert_msg(w.up != NULL, "%s", err);
	ck_assert_int_eq(batcher_set_upstream(&w.b, w.up), 0);
	config_free(&cfg);
}

static void world_stop(void)
{
	w.up->ops->destroy(w.up);
	batcher_destroy(&w.b);
	inflight_destroy(&w.t);
	stats_free(&w.st);
	ev_loop_destroy(w.loop);
	tu_stop(&w.fake);
}

static void guard_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
	(void)revents;
	*(bool *)t->data = true;
	ev_break(loop, EVBREAK_ONE);
}

/* A get for n keys (bytes as given, lengths from len), joined and sent;
 * returns once every key has its outcome (or fails the test after 5 s). */
static struct request *world_get(const char *const *keys, const size_t *len, uint32_t n)
{
	size_t bytes = 0;
	struct request *r;
	ev_timer guard;
	bool expired = false;

	for (uint32_t i = 0; i < n; i++)
		bytes += len[i];
	r = request_new_read(&w.c, 0, n, bytes);
	ck_assert_ptr_nonnull(r);
	for (uint32_t i = 0; i < n; i++)
		request_set_key(r, i, keys[i], len[i]);
	for (uint32_t i = 0; i < n; i++)
		ck_assert_int_eq(inflight_join(&w.t, &r->slots[i]), 0);
	batch_flush_all(&w.b, false);
	ev_timer_init(&guard, guard_cb, 5., 0.);
	guard.data = &expired;
	ev_timer_start(w.loop, &guard);
	while (r->npending > 0 && !expired)
		ev_run(w.loop, EVRUN_ONCE);
	ev_timer_stop(w.loop, &guard);
	ck_assert_msg(r->npending == 0, "%u keys still pending", r->npending);
	return r;
}

/* Issue 8: injection safety does not rest on the client parser alone. The
 * memcached backend refuses every key a `gets` line cannot carry: its
 * waiters get an error, the other keys are answered, and not one byte of
 * the bad keys reaches the server. */
START_TEST(memcache_backend_refuses_keys_it_cannot_carry)
{
	static char long_key[MC_MAX_KEY_BYTES + 2]; /* 251 bytes and a NUL */
	const char *keys[] = {"ok1",    "a\r\nflush_all", "b c", "",   "x\x7f", "tab\there",
	                      long_key, "nul\0flush_all", "\n",  "ok2"};
	size_t len[10];
	struct request *r;
	char *rec;

	memset(long_key, 'k', MC_MAX_KEY_BYTES + 1);
	for (int i = 0; i < 10; i++)
		len[i] = strlen(keys[i]);
	len[7] = 14;
	world_start();

	r = world_get(keys, len, 10);
	for (int i = 0; i < 10; i++) {
		bool good = i == 0 || i == 9;
		ck_assert_msg(r->slots[i].state == (good ? SLOT_HIT : SLOT_ERROR),
		              "key %d: state %d", i, r->slots[i].state);
	}
	ck_assert_str_eq(r->err, MC_BAD_KEY);
	request_free(r);

	/* A batch of bad keys only: nothing is sent at all. */
	r = world_get(keys + 1, len + 1, 2);
	ck_assert_int_eq(r->slots[0].state, SLOT_ERROR);
	ck_assert_int_eq(r->slots[1].state, SLOT_ERROR);
	request_free(r);

	ck_assert_uint_eq(w.t.live, 0);
	ck_assert_uint_eq(w.st.inflight_keys, 0);
	ck_assert_uint_eq(w.st.upstream_keys, 2);
	ck_assert_uint_eq(w.st.upstream_batches, 1);
	ck_assert_int_eq(tu_fake_stat(w.fake.port, "requests"), 1);
	rec = tu_read_file(w.record, NULL);
	ck_assert_ptr_nonnull(rec);
	ck_assert_msg(strcmp(rec, "gets ok1 ok2\r\n") == 0 || strcmp(rec, "gets ok2 ok1\r\n") == 0,
	              "the server got '%s'", rec);
	free(rec);
	world_stop();
}
END_TEST

/* The backend keeps its pool's health records: connections up, and why
 * the last failure happened. */
START_TEST(backend_reports_server_health)
{
	struct pool_server_info in;
	const char *keys[] = {"a"};
	size_t len[] = {1};
	char want[128];
	int port = tu_free_port();
	struct request *r;

	world_start();
	request_free(world_get(keys, len, 1));
	pool_server_info(w.up->pool, 0, &in);
	ck_assert(in.up);
	ck_assert_uint_eq(in.connections_up, 2);
	ck_assert_uint_eq(in.failures, 0);
	ck_assert_uint_eq(in.errors, 0);
	world_stop();

	/* Nothing listens: the key fails, and the record says why. */
	world_start();
	{
		struct backend_env env = {w.loop, &w.b, &w.st, &w.lg, 0, 1};
		struct config cfg;
		char servers[64], err[256];

		config_init(&cfg);
		snprintf(servers, sizeof(servers), "127.0.0.1:%d", port);
		ck_assert_int_eq(config_set(&cfg, "upstream", "servers", servers, err, sizeof(err)),
		                 0);
		w.up->ops->destroy(w.up);
		w.up = backend_new(&cfg, &env, err, sizeof(err));
		ck_assert_ptr_nonnull(w.up);
		ck_assert_int_eq(batcher_set_upstream(&w.b, w.up), 0);
		config_free(&cfg);
	}
	r = world_get(keys, len, 1);
	ck_assert_int_eq(r->slots[0].state, SLOT_ERROR);
	request_free(r);
	pool_server_info(w.up->pool, 0, &in);
	ck_assert(!in.up);
	ck_assert_uint_ge(in.failures, 2);
	ck_assert(in.last_error_at > 0);
	snprintf(want, sizeof(want), "connect to 127.0.0.1:%d: Connection refused", port);
	ck_assert_str_eq(in.last_error, want);
	world_stop();
}
END_TEST

/* A key longer than 255 bytes is refused whole by the memcached backend,
 * never cut to its length modulo 256 ("kkk") and sent. */
START_TEST(memcache_backend_refuses_long_keys_whole)
{
	enum { LEN = 256 + 3 };
	static char key[LEN + 1];
	const char *keys[] = {key};
	size_t len[] = {LEN};
	struct request *r;

	memset(key, 'k', LEN);
	world_start();
	r = world_get(keys, len, 1);
	ck_assert_int_eq(r->slots[0].state, SLOT_ERROR);
	ck_assert_str_eq(r->err, MC_BAD_KEY);
	request_free(r);
	ck_assert_int_eq(tu_fake_stat(w.fake.port, "requests"), 0);
	world_stop();
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
	tcase_add_test(tb, memcache_backend_refuses_keys_it_cannot_carry);
	tcase_add_test(tb, backend_reports_server_health);
	tcase_add_test(tb, memcache_backend_refuses_long_keys_whole);
	suite_add_tcase(s, tb);
}
