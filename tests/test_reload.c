/*
 * reload: keys marked "reload: yes" apply to connections that were already
 * open when SIGHUP came, not only to new ones.
 */
#include "testutil.h"

#include <check.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static struct proc mc, co;
static char conf_path[256], listen_addr[64], servers[64];

static void write_conf(const char *server_extra)
{
	FILE *f = fopen(conf_path, "w");

	ck_assert_ptr_nonnull(f);
	fprintf(f, "[server]\nlisten = %s\n%s\n[upstream]\nservers = %s\n", listen_addr,
	        server_extra, servers);
	fclose(f);
}

static void start(const char *server_extra)
{
	const char *args[] = {"-c", conf_path, NULL};
	double end;
	int fd;

	tu_memcached_start(&mc, 0);
	tu_mc_set(mc.port, "a", 0, "1", 1);
	snprintf(servers, sizeof(servers), "127.0.0.1:%d", mc.port);
	co.port = tu_free_port();
	snprintf(listen_addr, sizeof(listen_addr), "127.0.0.1:%d", co.port);
	snprintf(conf_path, sizeof(conf_path), "%s/reload-%d.ini", tu_tmpdir(), getpid());
	snprintf(co.log, sizeof(co.log), "%s/reload-%d.log", tu_tmpdir(), getpid());
	write_conf(server_extra);
	co.pid = tu_coalesced_spawn(args, co.log);
	end = tu_now() + tu_guard_ms(10000) / 1000.0;
	while ((fd = tu_connect(co.port)) < 0 && tu_now() < end)
		tu_sleep_ms(20);
	ck_assert_int_ge(fd, 0);
	close(fd);
}

/* Rewrite the file and wait for the daemon to say it reloaded (the n-th time). */
static void reload(const char *server_extra, int n)
{
	double end = tu_now() + tu_guard_ms(10000) / 1000.0;
	int seen = 0;

	write_conf(server_extra);
	kill(co.pid, SIGHUP);
	while (seen < n && tu_now() < end) {
		char *log = tu_read_file(co.log, NULL);
		seen = 0;
		for (char *p = log; p && (p = strstr(p, "configuration reloaded")); p++)
			seen++;
		free(log);
		if (seen < n)
			tu_sleep_ms(20);
	}
	ck_assert_msg(seen >= n, "no reload seen in the log");
}

static void stop(void)
{
	tu_stop_clean(&co);
	tu_stop(&mc);
}

/* A lowered max_line_bytes: an old client's long line is refused with the
 * usual error, not taken for end of file and dropped without a word. */
START_TEST(lowered_max_line_bytes_applies_to_open_connections)
{
	enum { LINE = 30000 };
	static char line[LINE + 16];
	int fd, fd2;
	char *r;
	size_t n = 0;

	start("max_line_bytes = 65536");
	fd = tu_connect(co.port);
	fd2 = tu_connect(co.port);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_ge(fd2, 0);
	reload("max_line_bytes = 4096", 1);
	n += (size_t)snprintf(line, sizeof(line), "get");
	while (n < LINE)
		n += (size_t)snprintf(line + n, sizeof(line) - n, " k%05zu", n);
	memcpy(line + n, "\r\n", 3);
	tu_send(fd, line, n + 2);
	r = tu_recv_reply(fd, strlen("CLIENT_ERROR line too long\r\n"), 500, 5000, NULL);
	ck_assert_str_eq(r, "CLIENT_ERROR line too long\r\n");
	free(r);
	close(fd);
	/* Other old connections are unaffected. */
	tu_sends(fd2, "get a\r\n");
	r = tu_recv_until(fd2, "END\r\n", 3000, NULL);
	ck_assert_str_eq(r, "VALUE a 0 1\r\n1\r\nEND\r\n");
	free(r);
	close(fd2);
	stop();
}
END_TEST

START_TEST(lowered_max_keys_per_request_applies_to_open_connections)
{
	int fd;
	char *r;

	start("max_keys_per_request = 100");
	fd = tu_connect(co.port);
	ck_assert_int_ge(fd, 0);
	reload("max_keys_per_request = 2", 1);
	tu_sends(fd, "get a a a\r\n");
	r = tu_recv_until(fd, "\r\n", 3000, NULL);
	ck_assert_str_eq(r, "CLIENT_ERROR too many keys\r\n");
	free(r);
	tu_sends(fd, "get a a\r\n");
	r = tu_recv_until(fd, "END\r\n", 3000, NULL);
	ck_assert_str_eq(r, "VALUE a 0 1\r\n1\r\nVALUE a 0 1\r\n1\r\nEND\r\n");
	free(r);
	close(fd);
	stop();
}
END_TEST

START_TEST(idle_timeout_set_by_reload_closes_open_connections)
{
	int fd;

	start("idle_timeout_s = 0");
	fd = tu_connect(co.port);
	ck_assert_int_ge(fd, 0);
	tu_sends(fd, "get a\r\n");
	free(tu_recv_until(fd, "END\r\n", 3000, NULL));
	reload("idle_timeout_s = 1", 1);
	/* Generous: only a connection that is never closed fails. */
	ck_assert_msg(tu_closed(fd, 15000), "the idle connection was not closed");
	close(fd);
	stop();
}
END_TEST

Suite *reload_suite(void)
{
	Suite *s = suite_create("reload");
	TCase *tc = tcase_create("reload");

	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, lowered_max_line_bytes_applies_to_open_connections);
	tcase_add_test(tc, lowered_max_keys_per_request_applies_to_open_connections);
	tcase_add_test(tc, idle_timeout_set_by_reload_closes_open_connections);
	suite_add_tcase(s, tc);
	return s;
}
