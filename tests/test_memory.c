/*
 * memory: what one client can make coalesced hold, whatever it sends. A
 * client that pipelines huge multi-gets while the upstream does not answer
 * must be stopped from sending (backpressure) long before the requests it
 * queued take hundreds of megabytes.
 */
#include "testutil.h"

#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static struct proc fake, co;

/* Send as much of buf as the socket takes within ms; returns bytes sent. */
static size_t send_some(int fd, const char *buf, size_t len, int ms)
{
	double end = tu_now() + ms / 1000.0;
	size_t off = 0;

	while (off < len && tu_now() < end) {
		ssize_t n = send(fd, buf + off, len - off, MSG_DONTWAIT | MSG_NOSIGNAL);
		if (n > 0) {
			off += (size_t)n;
			continue;
		}
		if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
			break;
		tu_sleep_ms(5);
	}
	return off;
}

/* Each client pipelines 1024 gets of 4096 distinct keys into an upstream
 * that never answers. Before requests counted toward the connection's
 * limit, each such client grew the daemon by about 237 MB. */
START_TEST(pipelined_huge_gets_to_a_hung_upstream_stay_bounded)
{
	enum { CLIENTS = 2, GETS = 1024, KEYS = 4096 };
	const char *opts[] = {"upstream.timeout_ms=20000", "server.shutdown_timeout_ms=1000", NULL};
	size_t cap = (size_t)KEYS * 12 + 16, sent[CLIENTS] = {0};
	char *line = malloc(cap);
	int fds[CLIENTS];
	long rss0, rss1;

	ck_assert_ptr_nonnull(line);
	tu_judging_rss();
	tu_stack_start(&fake, &co, NULL, opts);
	tu_fake_ctl(fake.port, "fake_mode hang");
	rss0 = tu_rss_kib(co.pid);
	for (int c = 0; c < CLIENTS; c++) {
		fds[c] = tu_connect(co.port);
		ck_assert_int_ge(fds[c], 0);
	}
	/* Bounded in time: the daemon stops reading long before all is sent. */
	double end = tu_now() + 120;
	for (int g = 0; g < GETS && tu_now() < end; g++) {
		size_t n = (size_t)snprintf(line, cap, "get");
		bool stuck = true;
		for (int k = 0; k < KEYS; k++)
			n += (size_t)snprintf(line + n, cap - n, " %x_%x", g, k);
		n += (size_t)snprintf(line + n, cap - n, "\r\n");
		for (int c = 0; c < CLIENTS; c++) {
			size_t s = send_some(fds[c], line, n, 200);
			sent[c] += s;
			if (s == n)
				stuck = false;
		}
		if (stuck)
			break; /* every client is held back: backpressure works */
	}
	rss1 = tu_rss_kib(co.pid);
	ck_assert_msg(rss0 > 0 && rss1 > 0, "no RSS: %ld %ld (pid %d)", rss0, rss1, (int)co.pid);
	/* 64 MiB for two clients leaves room for buffers and allocator slack;
	 * unbounded, this was about 470 MB. */
	ck_assert_msg(rss1 - rss0 < 64 * 1024,
	              "RSS grew from %ld to %ld KiB after %zu + %zu bytes of gets", rss0, rss1,
	              sent[0], sent[1]);
	for (int c = 0; c < CLIENTS; c++)
		close(fds[c]);
	free(line);
	tu_fake_ctl(fake.port, "fake_mode normal");
	tu_stack_stop(&fake, &co);
}
END_TEST

/* Values in flight stay within max_memory_mb, however many arrive for
 * requests admitted while there was room: three 20-key gets of 1 MB values
 * used to reach 51 MiB under an 8 MiB budget. */
START_TEST(values_in_flight_stay_within_max_memory_mb)
{
	enum { KEYS = 20, VLEN = 1000000 };
	const char *opts[] = {"server.max_memory_mb=8", NULL};
	struct proc mc;
	char servers[64], line[512];
	char *val = malloc(VLEN);
	long long peak = 0;
	size_t n = 0;
	int fd;
	double end;

	ck_assert_ptr_nonnull(val);
	memset(val, 'v', VLEN);
	tu_memcached_start(&mc, 0);
	for (int k = 0; k < KEYS; k++) {
		char key[16];
		snprintf(key, sizeof(key), "big%d", k);
		tu_mc_set(mc.port, key, 0, val, VLEN);
	}
	free(val);
	snprintf(servers, sizeof(servers), "127.0.0.1:%d", mc.port);
	tu_coalesced_start(&co, servers, opts);
	n += (size_t)snprintf(line, sizeof(line), "get");
	for (int k = 0; k < KEYS; k++)
		n += (size_t)snprintf(line + n, sizeof(line) - n, " big%d", k);
	n += (size_t)snprintf(line + n, sizeof(line) - n, "\r\n");
	fd = tu_connect(co.port);
	for (int i = 0; i < 3; i++)
		tu_send(fd, line, n);
	/* The client reads nothing for a while; values pile up at most to
	 * the budget. */
	end = tu_now() + 2;
	while (tu_now() < end) {
		long long v = tu_stat(co.port, "value_bytes");
		if (v > peak)
			peak = v;
		tu_sleep_ms(20);
	}
	ck_assert_msg(peak <= 8ll << 20, "values in flight reached %lld bytes", peak);
	ck_assert_int_gt(tu_stat(co.port, "out_of_memory"), 0);
	close(fd);
	tu_stop_clean(&co);
	tu_stop(&mc);
}
END_TEST

Suite *memory_suite(void)
{
	Suite *s = suite_create("memory");
	TCase *tc = tcase_create("memory");

	tcase_set_timeout(tc, 600);
	tcase_add_test(tc, pipelined_huge_gets_to_a_hung_upstream_stay_bounded);
	tcase_add_test(tc, values_in_flight_stay_within_max_memory_mb);
	suite_add_tcase(s, tc);
	return s;
}
