/*
 * test_pool: server lists with weights, placement through the pool against
 * libmemcached itself (in process, and end to end: keys written by
 * libmemcached to real memcached servers, read back through coalesced),
 * ejection (unit, and with servers killed, restarted or hung under load),
 * and per-server health in `stats` and /metrics.
 */
#include <arpa/inet.h>
#include <check.h>
#include <libmemcached/memcached.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "addr.h"
#include "log.h"
#include "pool.h"
#include "testutil.h"

Suite *pool_suite(void);

#define NKEYS 2000

static const struct log quiet = {.level = LVL_ERROR};

static struct pool *pool_of(const char *servers, int distribution, uint32_t eject_after)
{
	struct pool_options o = {
	    .distribution = distribution, .eject_after = eject_after, .retry_after = 10};
	char err[256];
	struct addr_list l;
	struct pool *p;

	ck_assert_msg(addr_list_parse(servers, false, &l, err, sizeof(err)) == 0, "%s", err);
	p = pool_new(&l, &o, &quiet);
	addr_list_free(&l);
	ck_assert_ptr_nonnull(p);
	return p;
}

/* --- server lists --------------------------------------------------------- */

START_TEST(weights_parse)
{
	struct addr_list l;
	char err[256];

	ck_assert_int_eq(addr_list_parse("10.0.0.1:11211:3, [::1]:11212:2, unix:/run/mc.sock:5, "
	                                 "unix:/run/a:2:1, localhost:1",
	                                 false, &l, err, sizeof(err)),
	                 0);
	ck_assert_uint_eq(l.n, 5);
	ck_assert_str_eq(l.v[0].name, "10.0.0.1:11211");
	ck_assert_str_eq(l.v[0].host, "10.0.0.1");
	ck_assert_uint_eq(l.v[0].port, 11211);
	ck_assert_uint_eq(l.v[0].weight, 3);
	ck_assert_str_eq(l.v[1].name, "[::1]:11212");
	ck_assert_str_eq(l.v[1].host, "::1");
	ck_assert_uint_eq(l.v[1].port, 11212);
	ck_assert_uint_eq(l.v[1].weight, 2);
	ck_assert_str_eq(l.v[2].name, "unix:/run/mc.sock");
	ck_assert_str_eq(l.v[2].host, "/run/mc.sock");
	ck_assert_uint_eq(l.v[2].port, 0);
	ck_assert_uint_eq(l.v[2].weight, 5);
	/* A path ending in ":digits" takes an explicit weight. */
	ck_assert_str_eq(l.v[3].host, "/run/a:2");
	ck_assert_uint_eq(l.v[3].weight, 1);
	ck_assert_str_eq(l.v[4].host, "localhost");
	ck_assert_uint_eq(l.v[4].weight, 1);
	addr_list_free(&l);

	ck_assert_int_eq(addr_list_parse("127.0.0.1:1:0", false, &l, err, sizeof(err)), -1);
	ck_assert_ptr_nonnull(strstr(err, "weight"));
	ck_assert_int_eq(addr_list_parse("127.0.0.1:1:10001", false, &l, err, sizeof(err)), -1);
	ck_assert_int_eq(addr_list_parse("127.0.0.1:1:x", false, &l, err, sizeof(err)), -1);
	ck_assert_int_eq(addr_list_parse("[::1]:1:0", false, &l, err, sizeof(err)), -1);
	/* Listen addresses take no weight. */
	ck_assert_int_eq(addr_list_parse("127.0.0.1:1:2", true, &l, err, sizeof(err)), -1);
}
END_TEST

/* --- placement against libmemcached, in process ----------------------------- */

struct srv {
	const char *host; /* a unix path when port is 0 */
	uint16_t port;
	uint32_t weight;
};

static memcached_st *lmc(const struct srv *s, size_t n, bool ketama)
{
	memcached_st *mc = memcached_create(NULL);

	ck_assert_ptr_nonnull(mc);
	if (ketama)
		ck_assert_int_eq(memcached_behavior_set(mc, MEMCACHED_BEHAVIOR_KETAMA_WEIGHTED, 1),
		                 MEMCACHED_SUCCESS);
	for (size_t i = 0; i < n; i++) {
		memcached_return_t rc =
		    s[i].port
		        ? memcached_server_add_with_weight(mc, s[i].host, s[i].port, s[i].weight)
		        : memcached_server_add_unix_socket_with_weight(mc, s[i].host, s[i].weight);
		ck_assert_int_eq(rc, MEMCACHED_SUCCESS);
	}
	return mc;
}

static void servers_text(const struct srv *s, size_t n, char *out, size_t cap)
{
	size_t len = 0;

	out[0] = '\0';
	for (size_t i = 0; i < n; i++) {
		if (s[i].port && strchr(s[i].host, ':'))
			len += (size_t)snprintf(out + len, cap - len, "%s[%s]:%u:%u", i ? ", " : "",
			                        s[i].host, s[i].port, s[i].weight);
		else if (s[i].port)
			len += (size_t)snprintf(out + len, cap - len, "%s%s:%u:%u", i ? ", " : "",
			                        s[i].host, s[i].port, s[i].weight);
		else
			len += (size_t)snprintf(out + len, cap - len, "%sunix:%s:%u", i ? ", " : "",
			                        s[i].host, s[i].weight);
	}
}

static void check_agreement(const struct srv *s, size_t n)
{
	char text[1024];

	servers_text(s, n, text, sizeof(text));
	for (int dist = POOL_KETAMA; dist <= POOL_MODULA; dist++) {
		struct pool *p = pool_of(text, dist, 0);
		memcached_st *mc = lmc(s, n, dist == POOL_KETAMA);

		for (int i = 0; i < 5000; i++) {
			char key[64];
			int len =
			    snprintf(key, sizeof(key), i % 2 ? "user:%d" : "obj/%x-%d", i, i * 7);
			uint32_t want = memcached_generate_hash(mc, key, (size_t)len);
			ck_assert_msg(pool_locate(p, key, (size_t)len) == want,
			              "%s (%s): key %s: coalesced %u, libmemcached %u", text,
			              dist == POOL_KETAMA ? "ketama" : "modula", key,
			              pool_locate(p, key, (size_t)len), want);
		}
		memcached_free(mc);
		pool_free(p);
	}
}

START_TEST(placement_agrees_with_libmemcached)
{
	static const struct srv a[] = {{"127.0.0.1", 11211, 1}, {"127.0.0.1", 11212, 3}};
	static const struct srv b[] = {
	    {"10.0.0.1", 11211, 2}, {"10.0.0.2", 11211, 1}, {"localhost", 21211, 5}};
	static const struct srv c[] = {
	    {"/run/memcached/a.sock", 0, 1}, {"/run/memcached/b.sock", 0, 2}, {"::1", 11213, 1}};

	check_agreement(a, 2);
	check_agreement(b, 3);
	check_agreement(c, 3);
}
END_TEST

/* --- ejection, in process --------------------------------------------------- */

START_TEST(ejection_moves_only_the_ejected_servers_keys)
{
	/* Equal weights: the others keep their points when one leaves (with
	 * unequal ones, libmemcached shares the points out afresh). */
	struct pool *p = pool_of("127.0.0.1:1, 127.0.0.1:2, 127.0.0.1:3", POOL_KETAMA, 3);
	uint32_t before[1000], moved = 0;
	struct pool_server_info si;
	char key[32];

	for (int i = 0; i < 1000; i++)
		before[i] = pool_locate(p, key, (size_t)snprintf(key, sizeof(key), "k:%d", i));
	/* Two failures, a reply (the streak ends), two more: still in. */
	pool_error(p, 1, true, 100, "x");
	pool_error(p, 1, true, 100, "x");
	pool_success(p, 1);
	pool_error(p, 1, true, 100, "x");
	pool_error(p, 1, true, 100, "x");
	/* An error reply is no failure of the server. */
	pool_error(p, 1, false, 100, "SERVER_ERROR busy");
	ck_assert(!pool_ejected(p, 1));
	ck_assert_double_eq(pool_probe_at(p, 1), 0);
	pool_error(p, 1, true, 101, "x");
	ck_assert(pool_ejected(p, 1));
	pool_server_info(p, 1, &si);
	ck_assert(si.ejected);
	ck_assert_uint_eq(si.ejections, 1);
	ck_assert_uint_eq(si.failures, 3);
	for (int i = 0; i < 1000; i++) {
		uint32_t now = pool_locate(p, key, (size_t)snprintf(key, sizeof(key), "k:%d", i));
		ck_assert_uint_ne(now, 1);
		/* Consistent hashing: only server 1's keys move. */
		if (before[i] != 1)
			ck_assert_uint_eq(now, before[i]);
		else
			moved++;
	}
	ck_assert_uint_gt(moved, 0);

	/* Probes: not before retry_after, one at a time; a failure waits again. */
	ck_assert_double_eq(pool_probe_at(p, 1), 111);
	ck_assert(!pool_probe_start(p, 1, 110));
	ck_assert(pool_probe_start(p, 1, 111));
	ck_assert(!pool_probe_start(p, 1, 111));
	pool_probe_done(p, 1, false, 112);
	ck_assert(pool_ejected(p, 1));
	ck_assert(!pool_probe_start(p, 1, 113));
	/* A failed connection once the time is up is a failed probe, too. */
	pool_error(p, 1, true, 122.5, "connect: refused");
	ck_assert_double_eq(pool_probe_at(p, 1), 132.5);
	ck_assert(pool_probe_start(p, 1, 133));
	pool_probe_done(p, 1, true, 133);
	ck_assert(!pool_ejected(p, 1));
	pool_server_info(p, 1, &si);
	ck_assert_uint_eq(si.failures, 0);
	for (int i = 0; i < 1000; i++)
		ck_assert_uint_eq(
		    pool_locate(p, key, (size_t)snprintf(key, sizeof(key), "k:%d", i)), before[i]);
	pool_free(p);
}
END_TEST

START_TEST(ejection_modula_and_edges)
{
	struct pool *p = pool_of("127.0.0.1:1, 127.0.0.1:2, 127.0.0.1:3", POOL_MODULA, 1);
	struct pool *off = pool_of("127.0.0.1:1, 127.0.0.1:2", POOL_KETAMA, 0);
	struct pool *one = pool_of("127.0.0.1:1", POOL_KETAMA, 1);
	uint32_t before[300];
	char key[32];

	for (int i = 0; i < 300; i++)
		before[i] = pool_locate(p, key, (size_t)snprintf(key, sizeof(key), "m%d", i));
	pool_error(p, 2, true, 1, "x");
	ck_assert(pool_ejected(p, 2));
	for (int i = 0; i < 300; i++)
		ck_assert_uint_ne(pool_locate(p, key, (size_t)snprintf(key, sizeof(key), "m%d", i)),
		                  2);
	/* Every server out: keys go where they would with every server in. */
	pool_error(p, 0, true, 1, "x");
	pool_error(p, 1, true, 1, "x");
	for (int i = 0; i < 300; i++)
		ck_assert_uint_eq(pool_locate(p, key, (size_t)snprintf(key, sizeof(key), "m%d", i)),
		                  before[i]);
	/* eject_after 0: never; one server: never (nowhere else to go). */
	for (int i = 0; i < 100; i++) {
		pool_error(off, 0, true, 1, "x");
		pool_error(one, 0, true, 1, "x");
	}
	ck_assert(!pool_ejected(off, 0));
	ck_assert(!pool_ejected(one, 0));
	pool_free(p);
	pool_free(off);
	pool_free(one);
}
END_TEST

START_TEST(stats_lines_escape_names)
{
	struct pool *p = pool_of("127.0.0.1:1:4, unix:/tmp/a b%.sock", POOL_KETAMA, 0);
	size_t n = pool_stats_format(p, NULL, 0);
	char *buf = malloc(n + 1);

	ck_assert_ptr_nonnull(buf);
	ck_assert_uint_eq(pool_stats_format(p, buf, n + 1), n);
	ck_assert_ptr_nonnull(strstr(buf, "STAT server:127.0.0.1:1:up 0\r\n"));
	ck_assert_ptr_nonnull(strstr(buf, "STAT server:127.0.0.1:1:weight 4\r\n"));
	ck_assert_ptr_nonnull(strstr(buf, "STAT server:unix:/tmp/a%20b%25.sock:ejected 0\r\n"));
	ck_assert_ptr_nonnull(
	    strstr(buf, "STAT server:unix:/tmp/a%20b%25.sock:last_error_time 0\r\n"));
	/* A short buffer gets what fits, and the length it needs. */
	ck_assert_uint_eq(pool_stats_format(p, buf, 10), n);
	ck_assert_uint_eq(strlen(buf), 9);
	free(buf);
	pool_free(p);
}
END_TEST

/* --- end to end --------------------------------------------------------------- */

static char *keyname(char *buf, size_t cap, int i)
{
	snprintf(buf, cap, "pl:%d:%x", i, (unsigned)(i * 2654435761u));
	return buf;
}

/* Write NKEYS keys (value "v<i>") through libmemcached to the servers. */
static void write_keys(const struct srv *s, size_t n, bool ketama, int nkeys)
{
	memcached_st *mc = lmc(s, n, ketama);

	for (int i = 0; i < nkeys; i++) {
		char key[64], val[32];
		int vl = snprintf(val, sizeof(val), "v%d", i);
		keyname(key, sizeof(key), i);
		memcached_return_t rc = memcached_set(mc, key, strlen(key), val, (size_t)vl, 0, 0);
		ck_assert_msg(rc == MEMCACHED_SUCCESS, "set %s: %s", key,
		              memcached_strerror(mc, rc));
	}
	memcached_free(mc);
}

/* Get keys [0, nkeys) through coalesced, 100 a request. Returns the hits,
 * checking each value; *errors counts SERVER_ERROR replies. */
static int read_keys(int port, int nkeys, int *errors)
{
	int fd = tu_connect(port), hits = 0;

	ck_assert_int_ge(fd, 0);
	for (int i = 0; i < nkeys; i += 100) {
		char req[100 * 40] = "get", key[64];
		size_t len;
		char *r;

		for (int j = i; j < i + 100 && j < nkeys; j++) {
			strcat(req, " ");
			strcat(req, keyname(key, sizeof(key), j));
		}
		strcat(req, "\r\n");
		tu_sends(fd, req);
		r = tu_recv_until(fd, "END\r\n", 10000, &len);
		if (strstr(r, "SERVER_ERROR")) {
			if (errors)
				(*errors)++;
		} else {
			ck_assert_msg(len >= 5 && !strcmp(r + len - 5, "END\r\n"), "reply: %.200s",
			              r);
		}
		for (char *p = r; (p = strstr(p, "VALUE ")); p++) {
			char k[64], want[32];
			int n = 0, num;
			if (sscanf(p, "VALUE %63s %*u %*u", k) != 1 ||
			    sscanf(k, "pl:%d:", &num) != 1)
				ck_abort_msg("bad VALUE line: %.80s", p);
			n = snprintf(want, sizeof(want), "v%d\r\n", num);
			ck_assert_msg(strstr(p, "\r\n") &&
			                  !strncmp(strstr(p, "\r\n") + 2, want, (size_t)n),
			              "wrong value for %s", k);
			hits++;
		}
		free(r);
	}
	close(fd);
	return hits;
}

static void e2e_placement(size_t n, bool ketama)
{
	static const uint32_t weights[] = {2, 1, 5};
	struct proc mc[3], co;
	struct srv s[3];
	char text[256];
	const char *opts[] = {
	    ketama ? "upstream.distribution=ketama" : "upstream.distribution=modula", NULL};

	for (size_t i = 0; i < n; i++) {
		tu_memcached_start(&mc[i], 0);
		s[i] = (struct srv){"127.0.0.1", (uint16_t)mc[i].port, weights[i]};
	}
	write_keys(s, n, ketama, NKEYS);
	servers_text(s, n, text, sizeof(text));
	tu_coalesced_start(&co, text, opts);
	ck_assert_int_eq(read_keys(co.port, NKEYS, NULL), NKEYS);
	/* Every server holds some: the test would prove nothing otherwise. */
	for (size_t i = 0; i < n; i++) {
		char name[64];
		snprintf(name, sizeof(name), "curr_items");
		ck_assert_int_gt(tu_stat(mc[i].port, name), 0);
	}
	tu_stop_clean(&co);
	for (size_t i = 0; i < n; i++)
		tu_stop(&mc[i]);
}

START_TEST(e2e_ketama_two_servers)
{
	e2e_placement(2, true);
}
END_TEST

START_TEST(e2e_ketama_three_servers)
{
	e2e_placement(3, true);
}
END_TEST

START_TEST(e2e_modula_two_servers)
{
	e2e_placement(2, false);
}
END_TEST

START_TEST(e2e_modula_three_servers)
{
	e2e_placement(3, false);
}
END_TEST

static long long server_stat(int port, int upstream_port, const char *figure)
{
	char name[128];

	snprintf(name, sizeof(name), "server:127.0.0.1:%d:%s", upstream_port, figure);
	return tu_stat(port, name);
}

static bool log_has(const struct proc *p, const char *text)
{
	size_t len;
	char *l = tu_read_file(p->log, &len);
	bool found = l && strstr(l, text);

	free(l);
	return found;
}

/*
 * Three servers; one is killed under load. Once it is ejected, no client
 * gets an error (its keys are misses on the others); probes that fail while
 * it is down cost no client an error; restarted, it comes back by itself
 * and every key is found again.
 */
START_TEST(e2e_eject_killed_server_and_return)
{
	enum { N = 600 };
	struct proc mc[3], co;
	struct srv s[3];
	char text[256];
	const char *opts[] = {"upstream.eject_after=2", "upstream.retry_after_ms=700",
	                      "upstream.timeout_ms=500", "upstream.connect_timeout_ms=300", NULL};
	int errors = 0, hits;
	double end;
	long long ejected = 0;

	for (int i = 0; i < 3; i++) {
		tu_memcached_start(&mc[i], 0);
		s[i] = (struct srv){"127.0.0.1", (uint16_t)mc[i].port, 1};
	}
	write_keys(s, 3, true, N);
	servers_text(s, 3, text, sizeof(text));
	tu_coalesced_start(&co, text, opts);
	ck_assert_int_eq(read_keys(co.port, N, NULL), N);
	ck_assert_int_eq(server_stat(co.port, mc[1].port, "up"), 1);

	tu_stop(&mc[1]);
	/* Under load until it is ejected: errors are allowed here (in flight). */
	for (end = tu_now() + 10; tu_now() < end && ejected != 1;) {
		read_keys(co.port, N, &errors);
		ejected = server_stat(co.port, mc[1].port, "ejected");
	}
	ck_assert_int_eq(ejected, 1);
	ck_assert(log_has(&co, "ejected after 2 consecutive failures"));
	ck_assert_int_eq(server_stat(co.port, mc[1].port, "up"), 0);
	ck_assert_int_eq(server_stat(co.port, mc[1].port, "ejections"), 1);

	/* Ejected, through several failed probes (2 s, retry_after 0.7 s). */
	errors = 0;
	hits = 0;
	for (end = tu_now() + 2; tu_now() < end;)
		hits = read_keys(co.port, N, &errors);
	ck_assert_int_eq(errors, 0);
	ck_assert_int_gt(hits, N / 3);
	ck_assert_int_lt(hits, N);
	ck_assert(log_has(&co, "probe failed"));
	ck_assert_int_eq(server_stat(co.port, mc[1].port, "ejected"), 1);

	/* Back: its keys are rewritten, and it returns by itself. */
	tu_memcached_start(&mc[1], mc[1].port);
	write_keys(s, 3, true, N);
	for (end = tu_now() + 10; tu_now() < end && ejected != 0;) {
		read_keys(co.port, N, &errors);
		ejected = server_stat(co.port, mc[1].port, "ejected");
	}
	ck_assert_int_eq(ejected, 0);
	ck_assert_int_eq(errors, 0);
	ck_assert(log_has(&co, "back in placement"));
	ck_assert_int_eq(read_keys(co.port, N, &errors), N);
	ck_assert_int_eq(errors, 0);
	tu_stop_clean(&co);
	for (int i = 0; i < 3; i++)
		tu_stop(&mc[i]);
}
END_TEST

/* A server that accepts connections and never answers: its probes time out,
 * and no client notices once it is ejected. */
START_TEST(e2e_hung_server_probe_fails_quietly)
{
	enum { N = 300 };
	struct proc mc, co;
	struct sockaddr_in sin = {.sin_family = AF_INET};
	socklen_t sl = sizeof(sin);
	int hung = socket(AF_INET, SOCK_STREAM, 0), errors = 0;
	char text[256];
	const char *opts[] = {"upstream.eject_after=2", "upstream.retry_after_ms=400",
	                      "upstream.timeout_ms=200", "upstream.retries=1", NULL};
	long long ejected = 0;
	double end;

	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	ck_assert_int_ge(hung, 0);
	ck_assert_int_eq(bind(hung, (struct sockaddr *)&sin, sizeof(sin)), 0);
	ck_assert_int_eq(listen(hung, 512), 0);
	ck_assert_int_eq(getsockname(hung, (struct sockaddr *)&sin, &sl), 0);
	tu_memcached_start(&mc, 0);
	snprintf(text, sizeof(text), "127.0.0.1:%d, 127.0.0.1:%d", mc.port, ntohs(sin.sin_port));
	tu_coalesced_start(&co, text, opts);
	for (end = tu_now() + 10; tu_now() < end && ejected != 1;) {
		read_keys(co.port, N, &errors);
		ejected = server_stat(co.port, ntohs(sin.sin_port), "ejected");
	}
	ck_assert_int_eq(ejected, 1);
	errors = 0;
	for (end = tu_now() + 1.5; tu_now() < end;)
		ck_assert_int_eq(read_keys(co.port, N, &errors), 0);
	ck_assert_int_eq(errors, 0);
	ck_assert(log_has(&co, "probe: no reply"));
	ck_assert(log_has(&co, "probe failed"));
	ck_assert_int_eq(server_stat(co.port, ntohs(sin.sin_port), "ejected"), 1);
	tu_stop_clean(&co);
	tu_stop(&mc);
	close(hung);
}
END_TEST

static char *metrics_page(int port)
{
	int fd = tu_connect(port);
	size_t len;
	char *r;

	ck_assert_int_ge(fd, 0);
	tu_sends(fd, "GET /metrics HTTP/1.0\r\n\r\n");
	r = tu_recv_all(fd, 2000, 5000, &len);
	close(fd);
	return r;
}

START_TEST(e2e_health_in_stats_and_metrics)
{
	struct proc mc, co;
	char text[512], metrics[64], want[256], *page;
	int mport = tu_free_port(), dead = tu_free_port();
	const char *opts[] = {metrics, NULL};

	snprintf(metrics, sizeof(metrics), "metrics.listen=127.0.0.1:%d", mport);
	tu_memcached_start(&mc, 0);
	snprintf(text, sizeof(text), "127.0.0.1:%d:3, 127.0.0.1:%d, unix:%s/x\"y z.sock", mc.port,
	         dead, tu_tmpdir());
	tu_coalesced_start(&co, text, opts);
	for (double end = tu_now() + 5; tu_now() < end; tu_sleep_ms(20))
		if (server_stat(co.port, mc.port, "connections") == 2 &&
		    server_stat(co.port, dead, "errors") > 0)
			break;
	ck_assert_int_eq(server_stat(co.port, mc.port, "up"), 1);
	ck_assert_int_eq(server_stat(co.port, mc.port, "weight"), 3);
	ck_assert_int_eq(server_stat(co.port, mc.port, "ejected"), 0);
	ck_assert_int_eq(server_stat(co.port, mc.port, "last_error_time"), 0);
	ck_assert_int_eq(server_stat(co.port, dead, "up"), 0);
	ck_assert_int_gt(server_stat(co.port, dead, "failures"), 0);
	ck_assert_int_gt(server_stat(co.port, dead, "last_error_time"), 1000000000);

	page = metrics_page(mport);
	snprintf(want, sizeof(want), "coalesced_server_up{server=\"127.0.0.1:%d\"} 1\n", mc.port);
	ck_assert_msg(strstr(page, want), "%s", page);
	snprintf(want, sizeof(want), "coalesced_server_weight{server=\"127.0.0.1:%d\"} 3\n",
	         mc.port);
	ck_assert_ptr_nonnull(strstr(page, want));
	snprintf(want, sizeof(want), "coalesced_server_up{server=\"127.0.0.1:%d\"} 0\n", dead);
	ck_assert_ptr_nonnull(strstr(page, want));
	snprintf(want, sizeof(want),
	         "coalesced_server_ejected{server=\"unix:%s/x\\\"y z.sock\"} 0\n", tu_tmpdir());
	ck_assert_msg(strstr(page, want), "want %s in %s", want, page);
	ck_assert_ptr_nonnull(strstr(page, "# TYPE coalesced_server_errors_total counter\n"));
	ck_assert_ptr_nonnull(
	    strstr(page, "# TYPE coalesced_server_last_error_timestamp_seconds gauge\n"));
	free(page);
	tu_stop_clean(&co);
	tu_stop(&mc);
}
END_TEST

static void write_conf(const char *path, int port, const char *servers, const char *dist)
{
	FILE *f = fopen(path, "w");

	ck_assert_ptr_nonnull(f);
	fprintf(f, "[server]\nlisten = 127.0.0.1:%d\n[upstream]\nservers = %s\ndistribution = %s\n",
	        port, servers, dist);
	fclose(f);
}

static int count_in_file(const char *path, const char *text)
{
	char *l = tu_read_file(path, NULL);
	int n = 0;

	for (char *p = l; p && (p = strstr(p, text)); p++)
		n++;
	free(l);
	return n;
}

/* distribution reloads: keys written with the new placement are all found
 * once the daemon has reloaded. */
START_TEST(e2e_distribution_reloads)
{
	enum { N = 600 };
	struct proc mc[2], co;
	struct srv s[2];
	char text[256], conf[256];
	const char *args[] = {"-c", conf, NULL};
	double end;
	int fd;

	for (int i = 0; i < 2; i++) {
		tu_memcached_start(&mc[i], 0);
		s[i] = (struct srv){"127.0.0.1", (uint16_t)mc[i].port, (uint32_t)(i + 1)};
	}
	servers_text(s, 2, text, sizeof(text));
	memset(&co, 0, sizeof(co));
	co.port = tu_free_port();
	snprintf(conf, sizeof(conf), "%s/pool-%d.ini", tu_tmpdir(), getpid());
	snprintf(co.log, sizeof(co.log), "%s/pool-%d.log", tu_tmpdir(), getpid());
	write_conf(conf, co.port, text, "modula");
	co.pid = tu_coalesced_spawn(args, co.log);
	for (end = tu_now() + 10; (fd = tu_connect(co.port)) < 0 && tu_now() < end;)
		tu_sleep_ms(20);
	ck_assert_int_ge(fd, 0);
	close(fd);
	write_keys(s, 2, false, N);
	ck_assert_int_eq(read_keys(co.port, N, NULL), N);

	for (int i = 0; i < 2; i++)
		free(tu_roundtrip(mc[i].port, "flush_all\r\n", 3000));
	write_keys(s, 2, true, N);
	write_conf(conf, co.port, text, "ketama");
	kill(co.pid, SIGHUP);
	for (end = tu_now() + 10;
	     count_in_file(co.log, "configuration reloaded") < 1 && tu_now() < end;)
		tu_sleep_ms(20);
	ck_assert_int_eq(count_in_file(co.log, "configuration reloaded"), 1);
	ck_assert_int_eq(read_keys(co.port, N, NULL), N);
	tu_stop_clean(&co);
	for (int i = 0; i < 2; i++)
		tu_stop(&mc[i]);
}
END_TEST

Suite *pool_suite(void)
{
	Suite *s = suite_create("pool");
	TCase *u = tcase_create("unit");
	TCase *e = tcase_create("e2e");

	tcase_add_test(u, weights_parse);
	tcase_add_test(u, placement_agrees_with_libmemcached);
	tcase_add_test(u, ejection_moves_only_the_ejected_servers_keys);
	tcase_add_test(u, ejection_modula_and_edges);
	tcase_add_test(u, stats_lines_escape_names);
	tcase_set_timeout(e, 120);
	tcase_add_test(e, e2e_ketama_two_servers);
	tcase_add_test(e, e2e_ketama_three_servers);
	tcase_add_test(e, e2e_modula_two_servers);
	tcase_add_test(e, e2e_modula_three_servers);
	tcase_add_test(e, e2e_eject_killed_server_and_return);
	tcase_add_test(e, e2e_hung_server_probe_fails_quietly);
	tcase_add_test(e, e2e_health_in_stats_and_metrics);
	tcase_add_test(e, e2e_distribution_reloads);
	suite_add_tcase(s, u);
	suite_add_tcase(s, e);
	return s;
}
