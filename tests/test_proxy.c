/*
 * proxy: collapsing, batching, ordering, injection and concurrency, against
 * the scriptable fake upstream, which counts and records what reaches it.
 */
#include "testutil.h"
#include "version.h"

#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static struct proc fake, co;
static char record[256];

static void start(const char *const *opts)
{
	snprintf(record, sizeof(record), "%s/record-%d.txt", tu_tmpdir(), getpid());
	tu_stack_start(&fake, &co, record, opts);
}

static void stop(void)
{
	tu_stack_stop(&fake, &co);
}

/* The upstream's record, lines as received with their "\r" dropped. */
static char *read_record(size_t *len)
{
	char *rec = tu_read_file(record, len), *w = rec;

	ck_assert_ptr_nonnull(rec);
	for (char *p = rec; p < rec + *len; p++)
		if (!(*p == '\r' && p + 1 < rec + *len && p[1] == '\n'))
			*w++ = *p;
	*w = '\0';
	*len = (size_t)(w - rec);
	return rec;
}

/* Wait (bounded) until coalesced's stat name reaches at least want. */
static void await_stat(const char *name, long long want)
{
	double end = tu_now() + tu_guard_ms(10000) / 1000.0;
	long long v;

	while ((v = tu_stat(co.port, name)) < want && tu_now() < end)
		tu_sleep_ms(10);
	ck_assert_msg(v >= want, "stat %s is %lld, want %lld", name, v, want);
}

static char *expect_value(const char *key)
{
	static char buf[600];
	snprintf(buf, sizeof(buf), "VALUE %s 0 %zu\r\nv:%s\r\nEND\r\n", key, strlen(key) + 2, key);
	return buf;
}

/* The upstream is held by SIGSTOP (with a timeout that cannot fire) while
 * all the clients ask, so the counts do not depend on the clients' speed. */
START_TEST(identical_keys_collapse_into_one_fetch)
{
	enum { N = 20 };
	int fd[N];
	const char *opts[] = {"upstream.timeout_ms=600000", NULL};

	start(opts);
	kill(fake.pid, SIGSTOP);
	for (int i = 0; i < N; i++) {
		fd[i] = tu_connect(co.port);
		ck_assert_int_ge(fd[i], 0);
		tu_sends(fd[i], "get hot\r\n");
	}
	await_stat("get_keys", N);
	kill(fake.pid, SIGCONT);
	for (int i = 0; i < N; i++) {
		char *r = tu_recv_until(fd[i], "END\r\n", 5000, NULL);
		ck_assert_str_eq(r, expect_value("hot"));
		free(r);
		close(fd[i]);
	}
	ck_assert_int_eq(tu_fake_stat(fake.port, "requests"), 1);
	ck_assert_int_eq(tu_fake_stat(fake.port, "keys"), 1);
	ck_assert_int_eq(tu_stat(co.port, "keys_coalesced"), N - 1);
	ck_assert_int_eq(tu_stat(co.port, "get_keys"), N);
	ck_assert_int_eq(tu_stat(co.port, "upstream_keys"), 1);
	stop();
}
END_TEST

START_TEST(no_caching_after_reply)
{
	const char *opts[] = {NULL};
	char *r;

	start(opts);
	r = tu_roundtrip(co.port, "get k\r\n", 3000);
	ck_assert_str_eq(r, expect_value("k"));
	free(r);
	r = tu_roundtrip(co.port, "get k\r\n", 3000);
	ck_assert_str_eq(r, expect_value("k"));
	free(r);
	ck_assert_int_eq(tu_fake_stat(fake.port, "requests"), 2);
	stop();
}
END_TEST

START_TEST(coalesce_off_fetches_every_key)
{
	const char *opts[] = {"batch.coalesce=no", NULL};
	char *r;

	start(opts);
	r = tu_roundtrip(co.port, "get k k k\r\n", 3000);
	ck_assert_str_eq(
	    r, "VALUE k 0 3\r\nv:k\r\nVALUE k 0 3\r\nv:k\r\nVALUE k 0 3\r\nv:k\r\nEND\r\n");
	free(r);
	ck_assert_int_eq(tu_fake_stat(fake.port, "keys"), 3);
	ck_assert_int_eq(tu_stat(co.port, "keys_coalesced"), 0);
	stop();
}
END_TEST

/* coalesced is stopped (SIGSTOP) while the clients connect and ask: it
 * then reads them all in one go, well within the leeway, however slow the
 * clients were. */
START_TEST(leeway_batches_distinct_keys_of_many_clients)
{
	enum { N = 5 };
	const char *opts[] = {"batch.leeway_ms=200", NULL};
	int fd[N];
	char key[16];

	start(opts);
	kill(co.pid, SIGSTOP);
	for (int i = 0; i < N; i++) {
		fd[i] = tu_connect(co.port);
		snprintf(key, sizeof(key), "get k%d\r\n", i);
		tu_sends(fd[i], key);
	}
	kill(co.pid, SIGCONT);
	for (int i = 0; i < N; i++) {
		char *r = tu_recv_until(fd[i], "END\r\n", 3000, NULL);
		snprintf(key, sizeof(key), "k%d", i);
		ck_assert_str_eq(r, expect_value(key));
		free(r);
		close(fd[i]);
	}
	ck_assert_int_eq(tu_fake_stat(fake.port, "requests"), 1);
	ck_assert_int_eq(tu_fake_stat(fake.port, "keys"), N);
	stop();
}
END_TEST

START_TEST(zero_leeway_batches_one_read)
{
	const char *opts[] = {NULL};
	int fd;
	char *r, *rec;
	size_t len;

	start(opts);
	fd = tu_connect(co.port);
	/* Three commands in one read: one loop iteration, one upstream line. */
	tu_sends(fd, "get a\r\nget b\r\ngets c\r\n");
	r = tu_recv_until(fd, "VALUE c 0 3 ", 3000, NULL);
	free(r);
	r = tu_recv_until(fd, "END\r\n", 3000, NULL);
	free(r);
	close(fd);
	ck_assert_int_eq(tu_fake_stat(fake.port, "requests"), 1);
	rec = read_record(&len);
	ck_assert_str_eq(rec, "gets a b c\n");
	free(rec);
	stop();
}
END_TEST

START_TEST(max_keys_splits_batches)
{
	const char *opts[] = {"batch.max_keys=3", NULL};
	char *r, *rec;
	size_t len;

	start(opts);
	r = tu_roundtrip(co.port, "get k1 k2 k3 k4 k5 k6 k7\r\n", 3000);
	ck_assert_ptr_nonnull(strstr(r, "VALUE k7 0 4\r\nv:k7\r\nEND\r\n"));
	free(r);
	rec = read_record(&len);
	/* Batches go out on two connections: any order, but exactly these. */
	ck_assert_uint_eq(len, strlen("gets k1 k2 k3\ngets k4 k5 k6\ngets k7\n"));
	ck_assert_ptr_nonnull(strstr(rec, "gets k1 k2 k3\n"));
	ck_assert_ptr_nonnull(strstr(rec, "gets k4 k5 k6\n"));
	ck_assert_ptr_nonnull(strstr(rec, "gets k7\n"));
	free(rec);
	ck_assert_int_eq(tu_stat(co.port, "upstream_batches"), 3);
	stop();
}
END_TEST

START_TEST(gets_carries_cas_and_get_strips_it)
{
	const char *opts[] = {"upstream.timeout_ms=600000", NULL};
	char *r;

	start(opts);
	kill(fake.pid, SIGSTOP); /* holds the fetch while f2 joins it */
	int f1 = tu_connect(co.port), f2 = tu_connect(co.port);
	/* A gets joining a get's fetch still gets its cas. */
	tu_sends(f1, "get x\r\n");
	await_stat("upstream_batches", 1);
	tu_sends(f2, "gets x\r\n");
	await_stat("keys_coalesced", 1);
	kill(fake.pid, SIGCONT);
	r = tu_recv_until(f1, "END\r\n", 3000, NULL);
	ck_assert_str_eq(r, "VALUE x 0 3\r\nv:x\r\nEND\r\n");
	free(r);
	r = tu_recv_until(f2, "END\r\n", 3000, NULL);
	/* FNV-1a 64 of "x", as the fake computes it. */
	ck_assert_str_eq(r, "VALUE x 0 3 12638214688346347271\r\nv:x\r\nEND\r\n");
	free(r);
	close(f1);
	close(f2);
	ck_assert_int_eq(tu_fake_stat(fake.port, "keys"), 1);
	stop();
}
END_TEST

START_TEST(values_containing_protocol_text_and_large_values)
{
	const char *opts[] = {NULL};
	char *r;
	size_t len;
	int fd;

	start(opts);
	r = tu_roundtrip(co.port, "get crlf_1\r\n", 3000);
	ck_assert_str_eq(r, "VALUE crlf_1 0 9\r\na\r\nEND\r\nb\r\nEND\r\n");
	free(r);
	fd = tu_connect(co.port);
	tu_sends(fd, "get big1048576_a big5_b\r\n");
	r = tu_recv_until(fd, "VALUE big5_b 0 5\r\nabcde\r\nEND\r\n", 5000, &len);
	ck_assert_uint_eq(len, strlen("VALUE big1048576_a 0 1048576\r\n") + 1048576 + 2 +
	                           strlen("VALUE big5_b 0 5\r\nabcde\r\nEND\r\n"));
	ck_assert(memcmp(r, "VALUE big1048576_a 0 1048576\r\nabcdefghijklmnopqrstuvwxyzabc", 59) ==
	          0);
	free(r);
	close(fd);
	stop();
}
END_TEST

/* Every line the upstream received is a gets of clean keys. */
static void assert_record_clean(const char *const *allowed)
{
	size_t len;
	char *rec = read_record(&len), *line, *save = NULL;

	ck_assert_uint_eq(strlen(rec), len); /* no NUL reached the upstream */
	for (line = strtok_r(rec, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		char *key, *ksave = NULL;
		ck_assert_msg(strncmp(line, "gets ", 5) == 0, "upstream got '%s'", line);
		for (key = strtok_r(line + 5, " ", &ksave); key;
		     key = strtok_r(NULL, " ", &ksave)) {
			bool ok = false;
			for (int i = 0; allowed[i]; i++)
				ok = ok || strcmp(key, allowed[i]) == 0;
			ck_assert_msg(ok, "upstream got key '%s'", key);
			for (char *p = key; *p; p++)
				ck_assert((unsigned char)*p > 0x20 && *p != 0x7f);
		}
	}
	free(rec);
}

START_TEST(injection_never_reaches_upstream)
{
	static const struct {
		const char *in;
		size_t len;
		const char *reply;
	} cases[] = {
#define C(in, reply) {in, sizeof(in) - 1, reply}
	    C("get a\0\r\nflush_all\r\n",
	      "CLIENT_ERROR bad command line format\r\nSERVER_ERROR not supported\r\n"),
	    C("get a\0flush_all\r\n", "CLIENT_ERROR bad command line format\r\n"),
	    C("get a\tflush_all\r\n", "CLIENT_ERROR bad command line format\r\n"),
	    C("get a\rflush_all\r\n", "CLIENT_ERROR bad command line format\r\n"),
	    C("get a\r\rflush_all\r\n", "CLIENT_ERROR bad command line format\r\n"),
	    C("get a\x0b\r\n", "CLIENT_ERROR bad command line format\r\n"),
	    C("get a\x7f\r\n", "CLIENT_ERROR bad command line format\r\n"),
	    C("get a\x01\r\n", "CLIENT_ERROR bad command line format\r\n"),
	    C("get \x1b[2J\r\n", "CLIENT_ERROR bad command line format\r\n"),
	    C("get a\r\r\n", "CLIENT_ERROR bad command line format\r\n"),
	    C("flush_all noreply\r\nversion\r\n", "VERSION " COALESCED_MC_VERSION "\r\n"),
	    /* A meta get with these flags is a read: a clean gets upstream. */
	    C("mg a v\r\n", "VA 3\r\nv:a\r\n"),
	    C("get a\nflush_all\n", "VALUE a 0 3\r\nv:a\r\nEND\r\nSERVER_ERROR not supported\r\n"),
#undef C
	};
	const char *opts[] = {NULL};
	const char *allowed[] = {"a", "ok", NULL};

	start(opts);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		int fd = tu_connect(co.port);
		size_t len;
		char *r;
		tu_send(fd, cases[i].in, cases[i].len);
		r = tu_recv_reply(fd, strlen(cases[i].reply), 200, 3000, &len);
		ck_assert_msg(strcmp(r, cases[i].reply) == 0, "case %zu: got '%s'", i, r);
		free(r);
		close(fd);
	}
	free(tu_roundtrip(co.port, "get ok\r\n", 3000));
	assert_record_clean(allowed);
	ck_assert_int_ge(tu_stat(co.port, "client_errors"), 10);
	stop();
}
END_TEST

START_TEST(replies_keep_request_order)
{
	const char *opts[] = {NULL};
	int fd;
	char *r;

	start(opts);
	tu_fake_ctl(fake.port, "fake_mode delay 150");
	fd = tu_connect(co.port);
	tu_sends(fd, "get a\r\nversion\r\nfoo\r\nget b\r\nstats reset\r\nget missing1\r\n");
	r = tu_recv_until(fd, "RESET\r\nEND\r\n", 5000, NULL);
	ck_assert_str_eq(r, "VALUE a 0 3\r\nv:a\r\nEND\r\nVERSION " COALESCED_MC_VERSION "\r\nERROR\r\n"
	                    "VALUE b 0 3\r\nv:b\r\nEND\r\nRESET\r\nEND\r\n");
	free(r);
	close(fd);
	stop();
}
END_TEST

START_TEST(client_leaving_does_not_disturb_others)
{
	const char *opts[] = {"upstream.timeout_ms=600000", NULL};
	int a, b;
	char *r;
	double end;

	start(opts);
	kill(fake.pid, SIGSTOP); /* a leaves while the fetch is in flight */
	a = tu_connect(co.port);
	b = tu_connect(co.port);
	tu_sends(a, "get shared solo_a\r\n");
	tu_sends(b, "get shared\r\n");
	await_stat("get_keys", 3);
	close(a);
	/* Seen gone: b and the stats connection remain. */
	end = tu_now() + tu_guard_ms(10000) / 1000.0;
	while (tu_stat(co.port, "curr_connections") != 2 && tu_now() < end)
		tu_sleep_ms(10);
	kill(fake.pid, SIGCONT);
	r = tu_recv_until(b, "END\r\n", 3000, NULL);
	ck_assert_str_eq(r, expect_value("shared"));
	free(r);
	close(b);
	/* The daemon is fine and the entries are gone once b's close is seen. */
	end = tu_now() + tu_guard_ms(10000) / 1000.0;
	while (tu_stat(co.port, "curr_connections") != 1 && tu_now() < end)
		tu_sleep_ms(10);
	ck_assert_int_eq(tu_stat(co.port, "inflight_keys"), 0);
	ck_assert_int_eq(tu_stat(co.port, "curr_connections"), 1);
	stop();
}
END_TEST

/* A connection reset is a client that left: its unsent keys are dropped.
 * The keys stay unsent for as long as the test needs: the one pipeline
 * slot is taken by a request the upstream, stopped by SIGSTOP, holds. */
START_TEST(leaving_client_drops_unsent_keys)
{
	const char *opts[] = {"upstream.pipeline_depth=1", "upstream.connections=1",
	                      "upstream.timeout_ms=600000", NULL};
	struct linger lg = {1, 0};
	int a, b, first;
	char *r;
	double end;

	start(opts);
	kill(fake.pid, SIGSTOP);
	first = tu_connect(co.port);
	tu_sends(first, "get first\r\n");
	await_stat("upstream_batches", 1);
	a = tu_connect(co.port);
	b = tu_connect(co.port);
	tu_sends(a, "get gone\r\n");
	tu_sends(b, "get kept\r\n");
	await_stat("get_keys", 3);
	setsockopt(a, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
	close(a);
	/* Seen gone: first, b and the stats connection remain. */
	end = tu_now() + tu_guard_ms(10000) / 1000.0;
	while (tu_stat(co.port, "curr_connections") != 3 && tu_now() < end)
		tu_sleep_ms(10);
	kill(fake.pid, SIGCONT);
	r = tu_recv_until(first, "END\r\n", 3000, NULL);
	ck_assert_str_eq(r, expect_value("first"));
	free(r);
	r = tu_recv_until(b, "END\r\n", 3000, NULL);
	ck_assert_str_eq(r, expect_value("kept"));
	free(r);
	close(first);
	close(b);
	ck_assert_int_eq(tu_fake_stat(fake.port, "keys"), 2);
	ck_assert_int_eq(tu_stat(co.port, "inflight_keys"), 0);
	stop();
}
END_TEST

/* A FIN is a half-close (as memcached and twemproxy treat it): what was
 * asked before it is still fetched and answered. */
START_TEST(half_closed_client_keeps_unsent_keys)
{
	const char *opts[] = {"batch.leeway_ms=200", NULL};
	int a;
	char *r;

	start(opts);
	a = tu_connect(co.port);
	tu_sends(a, "get late\r\n");
	shutdown(a, SHUT_WR);
	r = tu_recv_reply(a, strlen(expect_value("late")), 1000, 3000, NULL);
	ck_assert_str_eq(r, expect_value("late"));
	free(r);
	close(a);
	stop();
}
END_TEST

START_TEST(half_closed_client_still_answered)
{
	const char *opts[] = {NULL};
	int fd;
	char *r;

	start(opts);
	tu_fake_ctl(fake.port, "fake_mode delay 200");
	fd = tu_connect(co.port);
	tu_sends(fd, "get a\r\nget b\r\n");
	shutdown(fd, SHUT_WR);
	r = tu_recv_reply(fd, 2 * strlen(expect_value("a")), 1000, 5000, NULL);
	ck_assert_str_eq(r, "VALUE a 0 3\r\nv:a\r\nEND\r\nVALUE b 0 3\r\nv:b\r\nEND\r\n");
	free(r);
	ck_assert(tu_closed(fd, 10000));
	close(fd);
	stop();
}
END_TEST

START_TEST(quit_after_pending_get)
{
	const char *opts[] = {NULL};
	int fd;
	char *r;

	start(opts);
	tu_fake_ctl(fake.port, "fake_mode delay 200");
	fd = tu_connect(co.port);
	tu_sends(fd, "get a\r\nquit\r\nget b\r\n");
	r = tu_recv_reply(fd, strlen(expect_value("a")), 1000, 5000, NULL);
	ck_assert_str_eq(r, "VALUE a 0 3\r\nv:a\r\nEND\r\n");
	free(r);
	ck_assert(tu_closed(fd, 10000));
	close(fd);
	stop();
}
END_TEST

/* 300 clients, each running a few random multi-gets concurrently; every
 * reply is checked against the fake's deterministic values. */
START_TEST(many_concurrent_clients_get_correct_values)
{
	enum { N = 300, ROUNDS = 5 };
	const char *opts[] = {"batch.leeway_ms=1", NULL};
	struct cl {
		int fd;
		int round;
		char want[2048];
		size_t wlen;
		char got[4096];
		size_t glen;
	} *c = calloc(N, sizeof(*c));
	struct pollfd pf[N];
	uint32_t seed = 12345;
	int done = 0;
	double end;

	start(opts);
	for (int i = 0; i < N; i++) {
		c[i].fd = tu_connect(co.port);
		ck_assert_int_ge(c[i].fd, 0);
		c[i].round = -1;
	}
	end = tu_now() + tu_guard_ms(60000) / 1000.0;
	while (done < N && tu_now() < end) {
		for (int i = 0; i < N; i++) {
			if (c[i].round >= ROUNDS)
				continue;
			if (c[i].round == -1 || (c[i].glen == c[i].wlen &&
			                         memcmp(c[i].got, c[i].want, c[i].wlen) == 0)) {
				/* Send the next request: 1..4 keys from a space of 50. */
				char req[256];
				size_t n = (size_t)snprintf(req, sizeof(req), "get");
				int nk;
				c[i].round++;
				if (c[i].round == ROUNDS) {
					done++;
					continue;
				}
				seed = seed * 1103515245u + 12345u;
				nk = 1 + (int)((seed >> 16) % 4);
				c[i].wlen = 0;
				for (int k = 0; k < nk; k++) {
					char key[16];
					seed = seed * 1103515245u + 12345u;
					snprintf(key, sizeof(key), "r%u", (seed >> 16) % 50);
					n += (size_t)snprintf(req + n, sizeof(req) - n, " %s", key);
					c[i].wlen += (size_t)snprintf(c[i].want + c[i].wlen,
					                              sizeof(c[i].want) - c[i].wlen,
					                              "VALUE %s 0 %zu\r\nv:%s\r\n",
					                              key, strlen(key) + 2, key);
				}
				n += (size_t)snprintf(req + n, sizeof(req) - n, "\r\n");
				c[i].wlen +=
				    (size_t)snprintf(c[i].want + c[i].wlen,
				                     sizeof(c[i].want) - c[i].wlen, "END\r\n");
				c[i].glen = 0;
				tu_send(c[i].fd, req, n);
			} else if (c[i].glen >= c[i].wlen) {
				ck_abort_msg("client %d round %d: wrong reply '%.*s' want '%.*s'",
				             i, c[i].round, (int)c[i].glen, c[i].got,
				             (int)c[i].wlen, c[i].want);
			}
		}
		for (int i = 0; i < N; i++) {
			pf[i].fd = c[i].round < ROUNDS ? c[i].fd : -1;
			pf[i].events = POLLIN;
		}
		if (poll(pf, N, 100) <= 0)
			continue;
		for (int i = 0; i < N; i++) {
			if (pf[i].revents & (POLLIN | POLLHUP | POLLERR)) {
				ssize_t r = recv(c[i].fd, c[i].got + c[i].glen,
				                 sizeof(c[i].got) - c[i].glen, 0);
				ck_assert_msg(r > 0, "client %d: connection lost", i);
				c[i].glen += (size_t)r;
			}
		}
	}
	ck_assert_int_eq(done, N);
	for (int i = 0; i < N; i++)
		close(c[i].fd);
	free(c);
	/* The counters add up: every key asked was coalesced or sent once. */
	long long keys = tu_stat(co.port, "get_keys"), coal = tu_stat(co.port, "keys_coalesced"),
	          up = tu_stat(co.port, "upstream_keys");
	ck_assert_int_eq(keys, coal + up);
	ck_assert_int_eq(tu_stat(co.port, "get_hits"), keys);
	ck_assert_int_eq(tu_stat(co.port, "inflight_keys"), 0);
	stop();
}
END_TEST

/* A connection that holds a client slot: asked until one is served, since
 * the start-up probe's connection may still be counted. */
static int take_slot(void)
{
	double end = tu_now() + tu_guard_ms(10000) / 1000.0;

	while (tu_now() < end) {
		int fd = tu_connect(co.port);
		char *r;
		bool ok;

		ck_assert_int_ge(fd, 0);
		tu_sends(fd, "version\r\n");
		r = tu_recv_until(fd, "\r\n", 3000, NULL);
		ok = strncmp(r, "VERSION ", 8) == 0;
		free(r);
		if (ok)
			return fd;
		close(fd);
		tu_sleep_ms(20);
	}
	ck_abort_msg("never got a client slot");
	return -1;
}

START_TEST(max_clients_refuses_extra_connections)
{
	const char *opts[] = {"server.max_clients=2", NULL};
	int a, b, c;
	char *r;
	double end;

	start(opts);
	a = take_slot();
	b = take_slot();
	c = tu_connect(co.port);
	r = tu_recv_until(c, "\r\n", 3000, NULL);
	ck_assert_str_eq(r, "ERROR Too many open connections\r\n");
	free(r);
	ck_assert(tu_closed(c, 10000));
	close(c);
	close(b);
	/* Served again once b's close is seen. */
	end = tu_now() + tu_guard_ms(10000) / 1000.0;
	for (;;) {
		r = tu_roundtrip(co.port, "get a\r\n", 3000);
		if (strcmp(r, expect_value("a")) == 0 || tu_now() >= end)
			break;
		free(r);
		tu_sleep_ms(20);
	}
	ck_assert_str_eq(r, expect_value("a"));
	free(r);
	close(a);
	stop();
}
END_TEST

START_TEST(idle_timeout_closes_idle_clients_only)
{
	const char *opts[] = {"server.idle_timeout_s=1", "upstream.timeout_ms=5000", NULL};
	int idle, busy;
	char *r;

	start(opts);
	tu_fake_ctl(fake.port, "fake_mode delay 1500");
	idle = tu_connect(co.port);
	busy = tu_connect(co.port);
	tu_sends(busy, "get slow\r\n");
	ck_assert(tu_closed(idle, 10000));
	/* Waiting on the upstream is not idleness. */
	r = tu_recv_until(busy, "END\r\n", 3000, NULL);
	ck_assert_str_eq(r, expect_value("slow"));
	free(r);
	close(idle);
	close(busy);
	stop();
}
END_TEST

Suite *proxy_suite(void)
{
	Suite *s = suite_create("proxy");
	TCase *tc = tcase_create("fake upstream");

	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, identical_keys_collapse_into_one_fetch);
	tcase_add_test(tc, no_caching_after_reply);
	tcase_add_test(tc, coalesce_off_fetches_every_key);
	tcase_add_test(tc, leeway_batches_distinct_keys_of_many_clients);
	tcase_add_test(tc, zero_leeway_batches_one_read);
	tcase_add_test(tc, max_keys_splits_batches);
	tcase_add_test(tc, gets_carries_cas_and_get_strips_it);
	tcase_add_test(tc, values_containing_protocol_text_and_large_values);
	tcase_add_test(tc, injection_never_reaches_upstream);
	tcase_add_test(tc, replies_keep_request_order);
	tcase_add_test(tc, client_leaving_does_not_disturb_others);
	tcase_add_test(tc, leaving_client_drops_unsent_keys);
	tcase_add_test(tc, half_closed_client_still_answered);
	tcase_add_test(tc, half_closed_client_keeps_unsent_keys);
	tcase_add_test(tc, quit_after_pending_get);
	tcase_add_test(tc, many_concurrent_clients_get_correct_values);
	tcase_add_test(tc, max_clients_refuses_extra_connections);
	tcase_add_test(tc, idle_timeout_closes_idle_clients_only);
	suite_add_tcase(s, tc);
	return s;
}
