/*
 * limits: every resource limit holds under abuse and is answered the way
 * memcached answers (or by backpressure), while other clients are served.
 */
#include "testutil.h"

#include <check.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

static struct proc fake, co;

static void start(const char *const *opts)
{
	tu_stack_start(&fake, &co, NULL, opts);
}

static void stop(void)
{
	tu_stack_stop(&fake, &co);
}

START_TEST(too_many_keys_refused_whole)
{
	const char *opts[] = {"server.max_keys_per_request=3", NULL};
	char *r;

	start(opts);
	r = tu_roundtrip(co.port, "get a b c d\r\n", 3000);
	ck_assert_str_eq(r, "CLIENT_ERROR too many keys\r\n");
	free(r);
	r = tu_roundtrip(co.port, "get a b c\r\n", 3000);
	ck_assert_str_eq(
	    r, "VALUE a 0 3\r\nv:a\r\nVALUE b 0 3\r\nv:b\r\nVALUE c 0 3\r\nv:c\r\nEND\r\n");
	free(r);
	ck_assert_int_eq(tu_fake_stat(fake.port, "keys"), 3);
	ck_assert_int_eq(tu_stat(co.port, "too_many_keys"), 1);
	stop();
}
END_TEST

/* A client that pipelines without reading is stopped from sending; memory
 * stays bounded, and everybody else is served meanwhile. */
START_TEST(client_that_never_reads_is_throttled)
{
	const char *opts[] = {"server.max_output_bytes=65536", "server.max_pending_requests=64",
	                      NULL};
	int flood, fl;
	char req[64 * 1024];
	size_t sent = 0;
	long rss0, rss1;
	char *r;

	tu_judging_rss();
	start(opts);
	rss0 = tu_rss_kib(co.pid);
	flood = tu_connect(co.port);
	fl = fcntl(flood, F_GETFL);
	fcntl(flood, F_SETFL, fl | O_NONBLOCK);
	/* 32-byte requests for two 4 KiB values each. */
	for (size_t i = 0; i + 32 <= sizeof(req); i += 32)
		memcpy(req + i, "get big4096_x big4096_yy      \r\n", 32);
	/* Push until coalesced stops reading, or far more than the limits
	 * allow has gone out. A slow daemon only makes this take longer. */
	sent = tu_push_until_stall(flood, req, sizeof(req), 64u << 20);
	ck_assert_msg(sent < (64u << 20), "coalesced read %zu bytes from a client that never reads",
	              sent);
	/* Others are served normally. */
	r = tu_roundtrip(co.port, "get other\r\n", 3000);
	ck_assert_str_eq(r, "VALUE other 0 7\r\nv:other\r\nEND\r\n");
	free(r);
	rss1 = tu_rss_kib(co.pid);
	ck_assert_msg(rss1 - rss0 < 64 * 1024, "RSS grew from %ld to %ld KiB", rss0, rss1);
	ck_assert_int_ge(tu_stat(co.port, "backpressure_pauses"), 1);
	close(flood);
	stop();
}
END_TEST

START_TEST(slowloris_partial_line_closed)
{
	const char *opts[] = {"server.request_timeout_ms=300", NULL};
	int slow, fine;
	char *r;

	start(opts);
	slow = tu_connect(co.port);
	fine = tu_connect(co.port);
	tu_sends(slow, "get never_fin");
	tu_sleep_ms(100);
	tu_sends(fine, "get a\r\n");
	r = tu_recv_until(fine, "END\r\n", 3000, NULL);
	ck_assert_str_eq(r, "VALUE a 0 3\r\nv:a\r\nEND\r\n");
	free(r);
	ck_assert(tu_closed(slow, 10000));
	ck_assert_int_eq(tu_stat(co.port, "request_timeouts"), 1);
	/* A connection that is merely quiet between requests is left alone. */
	tu_sleep_ms(500);
	tu_sends(fine, "get b\r\n");
	r = tu_recv_until(fine, "END\r\n", 3000, NULL);
	ck_assert_str_eq(r, "VALUE b 0 3\r\nv:b\r\nEND\r\n");
	free(r);
	close(slow);
	close(fine);
	stop();
}
END_TEST

START_TEST(unfinished_data_block_times_out)
{
	const char *opts[] = {"server.request_timeout_ms=300", NULL};
	int fd;

	start(opts);
	fd = tu_connect(co.port);
	tu_sends(fd, "set k 0 0 100\r\nonly part of it");
	ck_assert(tu_closed(fd, 10000));
	close(fd);
	stop();
}
END_TEST

/* Values in flight count against the budget: 24 MiB of values asked for at
 * once under a 1 MiB budget get "SERVER_ERROR out of memory" for those that
 * find no room, the budget is never exceeded, and others are served. */
START_TEST(memory_budget_refuses_new_reads)
{
	const char *opts[] = {"server.max_memory_mb=1", "server.max_output_bytes=65536", NULL};
	int hog, oom = 0, replies = 0;
	char req[1024], *all, *r;
	size_t n = 0, len;

	start(opts);
	hog = tu_connect(co.port);
	for (int i = 0; i < 24; i++)
		n += (size_t)snprintf(req + n, sizeof(req) - n, "get big1048576_%d\r\n", i);
	tu_sends(hog, req);
	all = tu_recv_all(hog, 3000, 60000, &len);
	for (char *p = all; p < all + len;) {
		char *nl = memchr(p, '\n', (size_t)(all + len - p));
		if (!nl)
			break;
		if (strncmp(p, "SERVER_ERROR out of memory\r", 27) == 0) {
			oom++;
			replies++;
		} else if (strncmp(p, "VALUE ", 6) == 0) {
			/* skip the value's data */
			nl = memchr(nl + 1 + 1048576, '\n',
			            (size_t)(all + len - (nl + 1 + 1048576)));
			if (!nl)
				break;
		} else if (strncmp(p, "END\r", 4) == 0) {
			replies++;
		}
		p = nl + 1;
	}
	free(all);
	ck_assert_int_eq(replies, 24);
	ck_assert_int_ge(oom, 1);
	ck_assert_int_ge(tu_stat(co.port, "out_of_memory"), 1);
	close(hog);
	r = tu_roundtrip(co.port, "get a\r\n", 3000);
	ck_assert_str_eq(r, "VALUE a 0 3\r\nv:a\r\nEND\r\n");
	free(r);
	ck_assert_int_eq(tu_stat(co.port, "value_bytes"), 0);
	stop();
}
END_TEST

/* The stop waits shutdown_timeout_ms for the request in flight, not the
 * upstream's ten minutes: any exit well inside those shows the bound held,
 * however slow the machine. */
START_TEST(shutdown_is_bounded_by_shutdown_timeout)
{
	const char *opts[] = {"server.shutdown_timeout_ms=300", "upstream.timeout_ms=600000", NULL};
	int fd;
	double t0;
	int st;

	start(opts);
	tu_fake_ctl(fake.port, "fake_mode hang");
	fd = tu_connect(co.port);
	tu_sends(fd, "get stuck\r\n");
	/* In flight before the signal, however slow the daemon. */
	t0 = tu_now() + tu_guard_ms(10000) / 1000.0;
	while (tu_stat(co.port, "upstream_batches") < 1 && tu_now() < t0)
		tu_sleep_ms(10);
	t0 = tu_now();
	kill(co.pid, SIGTERM);
	st = tu_wait(co.pid, 30000);
	ck_assert_msg(st != -1, "still running %.0f s after SIGTERM", tu_now() - t0);
	ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0, "status %d", st);
	/* It did wait for the request (a lower bound holds at any speed). */
	ck_assert_msg(tu_now() - t0 >= 0.25, "exited after %.2f s", tu_now() - t0);
	co.pid = 0;
	close(fd);
	tu_stop(&fake);
}
END_TEST

/* With the upstream busy (depth 1, a request outstanding), keys of many
 * requests collect into one large batch instead of many small ones. The
 * upstream is held by SIGSTOP until every key has arrived, so the count
 * does not depend on how fast the clients are. */
START_TEST(busy_upstream_grows_batches)
{
	enum { N = 40 };
	const char *opts[] = {"upstream.pipeline_depth=1", "upstream.connections=1",
	                      "upstream.timeout_ms=600000", NULL};
	int fd[N];
	char req[64];
	long requests;
	double end;

	start(opts);
	kill(fake.pid, SIGSTOP);
	for (int i = 0; i < N; i++) {
		fd[i] = tu_connect(co.port);
		snprintf(req, sizeof(req), "get key%d\r\n", i);
		tu_sends(fd[i], req);
		/* The first key's batch keeps the only pipeline slot busy. */
		end = tu_now() + tu_guard_ms(10000) / 1000.0;
		while (i == 0 && tu_stat(co.port, "upstream_batches") < 1 && tu_now() < end)
			tu_sleep_ms(10);
	}
	end = tu_now() + tu_guard_ms(10000) / 1000.0;
	while (tu_stat(co.port, "get_keys") < N && tu_now() < end)
		tu_sleep_ms(10);
	ck_assert_int_eq(tu_stat(co.port, "upstream_batches"), 1);
	ck_assert_int_eq(tu_stat(co.port, "get_keys"), N);
	kill(fake.pid, SIGCONT);
	for (int i = 0; i < N; i++) {
		char want[64];
		char *r = tu_recv_until(fd[i], "END\r\n", 5000, NULL);
		snprintf(want, sizeof(want), "VALUE key%d 0 %zu\r\nv:key%d\r\nEND\r\n", i,
		         strlen("key") + (i < 10 ? 1 : 2) + 2, i);
		ck_assert_str_eq(r, want);
		free(r);
		close(fd[i]);
	}
	requests = tu_fake_stat(fake.port, "requests");
	ck_assert_int_eq(tu_fake_stat(fake.port, "keys"), N);
	/* The first key alone, then all the others together. */
	ck_assert_msg(requests == 2, "%ld upstream requests for %d keys", requests, N);
	stop();
}
END_TEST

/* A client that reads steadily but slower than it asks keeps coalesced's
 * output queue from ever emptying; memory must still not grow with the
 * bytes sent (reply text already written is reclaimed). */
struct slow_reader {
	int fd;
	const char *req; /* one request, sent again and again */
	size_t len, off; /* off: how much of the current copy has gone out */
	uint64_t got;    /* reply bytes read */
	double end;      /* a bound that only catches a stalled daemon */
};

/* Keep asking and reading until got reaches target. How long it takes
 * says nothing about the verdict. */
static void slow_reader_drive(struct slow_reader *sr, uint64_t target)
{
	char buf[16384];

	while (sr->got < target && tu_now() < sr->end) {
		struct pollfd pf = {sr->fd, POLLIN | POLLOUT, 0};

		if (poll(&pf, 1, 100) <= 0)
			continue;
		/* Requests go out whenever there is room, so coalesced always has
		 * more to answer than this client has read. */
		for (int i = 0; i < 4 && (pf.revents & POLLOUT); i++) {
			ssize_t n =
			    send(sr->fd, sr->req + sr->off, sr->len - sr->off, MSG_NOSIGNAL);
			if (n <= 0)
				break;
			sr->off = (sr->off + (size_t)n) % sr->len;
		}
		/* One read a millisecond: slower than coalesced answers (on a
		 * plain build), so its output queue stays full. This shapes the
		 * load only; nothing is judged on time. */
		if (pf.revents & (POLLIN | POLLHUP | POLLERR)) {
			ssize_t r = recv(sr->fd, buf, sizeof(buf), 0);
			ck_assert_msg(r != 0, "coalesced closed the connection after %llu bytes",
			              (unsigned long long)sr->got);
			if (r > 0)
				sr->got += (uint64_t)r;
			tu_sleep_ms(1);
		}
	}
	ck_assert_msg(sr->got >= target, "coalesced stalled: %llu of %llu bytes read",
	              (unsigned long long)sr->got, (unsigned long long)target);
}

START_TEST(steady_slow_reader_does_not_grow_memory)
{
	const char *opts[] = {"server.max_output_bytes=262144", NULL};
	char req[2048];
	struct slow_reader sr = {.req = req, .end = tu_now() + tu_guard_ms(120000) / 1000.0};
	size_t n = 0;
	long rss0, rss1;
	uint64_t warm;

	tu_judging_rss();
	start(opts);
	/* One request: 150 keys whose replies are mostly header text. */
	n += (size_t)snprintf(req, sizeof(req), "get");
	for (int i = 0; i < 150; i++)
		n += (size_t)snprintf(req + n, sizeof(req) - n, " k%d", i % 10);
	n += (size_t)snprintf(req + n, sizeof(req) - n, "\r\n");
	sr.len = n;
	/* A bounded receive buffer keeps the kernel from absorbing the
	 * replies, so coalesced's writes go partial and its queue never
	 * empties. Not below a few segments: with a window smaller than the
	 * loopback MSS (64 KiB), Linux can fall back to one segment per
	 * zero-window probe, 200 ms apart, and the test would crawl. */
	{
		struct sockaddr_in sa = {.sin_family = AF_INET};
		int rcvbuf = 256 * 1024;
		sr.fd = socket(AF_INET, SOCK_STREAM, 0);
		setsockopt(sr.fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf));
		sa.sin_port = htons((uint16_t)co.port);
		sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		ck_assert_int_eq(connect(sr.fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	}
	fcntl(sr.fd, F_SETFL, fcntl(sr.fd, F_GETFL) | O_NONBLOCK);
	/* Warm up (the kernel's send buffer, up to 4 MiB, fills and the
	 * daemon's buffers reach their working size), then measure over a
	 * fixed amount of traffic, whatever time it takes. */
	slow_reader_drive(&sr, 8u << 20);
	warm = sr.got;
	rss0 = tu_rss_kib(co.pid);
	slow_reader_drive(&sr, warm + (32u << 20));
	rss1 = tu_rss_kib(co.pid);
	ck_assert_msg(rss1 - rss0 < 16 * 1024, "RSS grew from %ld to %ld KiB over %llu bytes", rss0,
	              rss1, (unsigned long long)(sr.got - warm));
	close(sr.fd);
	stop();
}
END_TEST

/* Limit hits are logged, but a flood of them is not a flood of log lines:
 * at most one a second, so the lines are counted against the seconds the
 * refusals took, however many those were. */
START_TEST(limit_hits_logged_rate_limited)
{
	const char *opts[] = {"server.max_clients=1", NULL};
	int keep = -1, fd[30];
	char *log, *p, *r = NULL;
	int lines = 0;
	long long rejected = -1;
	double t0, end;

	start(opts);
	t0 = tu_now();
	/* Take the one slot: refused while the start-up probe's connection is
	 * still counted, so ask until a reply shows this one is served. */
	end = tu_now() + tu_guard_ms(10000) / 1000.0;
	while (tu_now() < end) {
		keep = tu_connect(co.port);
		tu_sends(keep, "version\r\n");
		r = tu_recv_until(keep, "\r\n", 3000, NULL);
		if (strncmp(r, "VERSION ", 8) == 0)
			break;
		free(r);
		r = NULL;
		close(keep);
		tu_sleep_ms(20);
	}
	ck_assert_msg(r, "never got the one client slot");
	free(r);
	for (int i = 0; i < 30; i++)
		fd[i] = tu_connect(co.port);
	for (int i = 0; i < 30; i++) {
		ck_assert(tu_closed(fd[i], 10000));
		close(fd[i]);
	}
	close(keep);
	/* The stats connection is refused until keep's close is seen. */
	end = tu_now() + tu_guard_ms(10000) / 1000.0;
	while ((rejected = tu_stat(co.port, "rejected_connections")) < 30 && tu_now() < end)
		tu_sleep_ms(20);
	ck_assert_msg(rejected >= 30, "%lld rejected_connections", rejected);
	log = tu_read_file(co.log, NULL);
	for (p = log; (p = strstr(p, "max_clients (1) reached")); p++)
		lines++;
	/* One line per started second, and the first second may be cut. */
	ck_assert_msg(lines >= 1 && lines <= (int)(tu_now() - t0) + 2,
	              "%d log lines for 30 refusals in %.1f s:\n%s", lines, tu_now() - t0, log);
	free(log);
	stop();
}
END_TEST

Suite *limits_suite(void)
{
	Suite *s = suite_create("limits");
	TCase *tc = tcase_create("limits");

	/* Above the slow reader's own 120 s bound: only hangs come near either. */
	tcase_set_timeout(tc, 180);
	tcase_add_test(tc, too_many_keys_refused_whole);
	tcase_add_test(tc, client_that_never_reads_is_throttled);
	tcase_add_test(tc, slowloris_partial_line_closed);
	tcase_add_test(tc, unfinished_data_block_times_out);
	tcase_add_test(tc, memory_budget_refuses_new_reads);
	tcase_add_test(tc, shutdown_is_bounded_by_shutdown_timeout);
	tcase_add_test(tc, busy_upstream_grows_batches);
	tcase_add_test(tc, steady_slow_reader_does_not_grow_memory);
	tcase_add_test(tc, limit_hits_logged_rate_limited);
	suite_add_tcase(s, tc);
	return s;
}
