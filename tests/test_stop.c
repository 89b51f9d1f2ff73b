/*
 * stop: a graceful stop answers every request the client sent before the
 * signal, including those still in the socket buffer, and then closes with
 * FIN (an orderly end of stream), not RST.
 */
#include "testutil.h"

#include <check.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

static struct proc mc, co;

START_TEST(pipelined_requests_in_the_socket_buffer_are_answered_on_sigterm)
{
	enum { N = 200 };
	char servers[64], *buf;
	const char *opts[] = {NULL};
	static char req[N * 8];
	size_t len = 0, got = 0, cap = 1 << 16;
	int fd, st, ends = 0;
	double end;

	tu_memcached_start(&mc, 0);
	tu_mc_set(mc.port, "a", 0, "1", 1);
	snprintf(servers, sizeof(servers), "127.0.0.1:%d", mc.port);
	tu_coalesced_start(&co, servers, opts);
	fd = tu_connect(co.port);
	ck_assert_int_ge(fd, 0);
	/* Let the daemon take the connection, then freeze it so that the
	 * requests wait in its socket buffer when the signal comes. */
	tu_sends(fd, "get a\r\n");
	free(tu_recv_until(fd, "END\r\n", 3000, NULL));
	for (int i = 0; i < N; i++)
		len += (size_t)snprintf(req + len, sizeof(req) - len, "get a\r\n");
	kill(co.pid, SIGSTOP);
	tu_send(fd, req, len);
	tu_sleep_ms(100);
	kill(co.pid, SIGTERM);
	kill(co.pid, SIGCONT);

	buf = malloc(cap);
	ck_assert_ptr_nonnull(buf);
	end = tu_now() + tu_guard_ms(20000) / 1000.0;
	for (;;) {
		ssize_t n = recv(fd, buf + got, cap - got - 1, 0);
		ck_assert_msg(n >= 0, "recv: %s after %zu bytes (RST instead of FIN?)",
		              strerror(errno), got);
		if (n == 0)
			break;
		got += (size_t)n;
		ck_assert_uint_lt(got, cap - 1);
		ck_assert_msg(tu_now() < end, "no end of stream");
	}
	buf[got] = '\0';
	for (char *p = buf; (p = strstr(p, "END\r\n")); p++)
		ends++;
	ck_assert_int_eq(ends, N);
	free(buf);
	close(fd);
	st = tu_wait(co.pid, 10000);
	ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0, "exit status %d", st);
	co.pid = 0;
	tu_stop(&mc);
}
END_TEST

Suite *stop_suite(void)
{
	Suite *s = suite_create("stop");
	TCase *tc = tcase_create("stop");

	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, pipelined_requests_in_the_socket_buffer_are_answered_on_sigterm);
	suite_add_tcase(s, tc);
	return s;
}
