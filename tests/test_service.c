/*
 * service: what an operator and a service manager see: sd_notify messages,
 * journal-style log lines, per-prefix stats (metrics: test_metrics.c).
 */
#include "testutil.h"

#include <check.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
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

START_TEST(stats_detail_per_prefix)
{
	const char *opts[] = {NULL};
	char *r;
	int fd;

	start(opts);
	tu_fake_ctl(fake.port, "fake_mode delay 100");
	fd = tu_connect(co.port);
	tu_sends(fd, "get user:1 user:2 user:1 plain session:9 missing:x\r\n");
	r = tu_recv_until(fd, "END\r\n", 3000, NULL);
	free(r);
	tu_sends(fd, "stats detail dump\r\n");
	r = tu_recv_until(fd, "END\r\n", 3000, NULL);
	ck_assert_msg(strstr(r, "PREFIX user get 3 coalesced 1 upstream 2 hit 3 miss 0\r\n"), "%s",
	              r);
	ck_assert_ptr_nonnull(
	    strstr(r, "PREFIX (none) get 1 coalesced 0 upstream 1 hit 1 miss 0\r\n"));
	ck_assert_ptr_nonnull(
	    strstr(r, "PREFIX session get 1 coalesced 0 upstream 1 hit 1 miss 0\r\n"));
	ck_assert_ptr_nonnull(
	    strstr(r, "PREFIX missing get 1 coalesced 0 upstream 1 hit 0 miss 1\r\n"));
	free(r);
	tu_sends(fd, "stats detail\r\n");
	r = tu_recv_until(fd, "\r\n", 3000, NULL);
	ck_assert_str_eq(r, "CLIENT_ERROR usage: stats detail on|off|dump\r\n");
	free(r);
	tu_sends(fd, "stats detail off\r\nget user:5\r\nstats detail dump\r\n");
	r = tu_recv_until(fd, "END\r\nEND\r\n", 3000, NULL);
	ck_assert_msg(strstr(r, "OK\r\n") == r, "%s", r);
	ck_assert_ptr_nonnull(strstr(r, "PREFIX user get 3 "));
	free(r);
	close(fd);
	stop();
}
END_TEST

/* A datagram socket standing in for systemd's notification socket. */
static int notify_socket(char *path, size_t len)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);

	ck_assert_int_ge(fd, 0);
	snprintf(path, len, "%s/notify.sock", tu_tmpdir());
	unlink(path);
	ck_assert_uint_lt(strlen(path), sizeof(sa.sun_path));
	memcpy(sa.sun_path, path, strlen(path) + 1);
	ck_assert_int_eq(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	return fd;
}

/* Collect notifications until one contains want (bounded). */
static bool await_notify(int fd, const char *want, char *all, size_t cap)
{
	double end = tu_now() + tu_guard_ms(10000) / 1000.0;

	while (tu_now() < end) {
		struct pollfd pf = {fd, POLLIN, 0};
		char msg[512];
		ssize_t n;
		if (poll(&pf, 1, 100) <= 0)
			continue;
		n = recv(fd, msg, sizeof(msg) - 1, 0);
		if (n <= 0)
			continue;
		msg[n] = '\0';
		strncat(all, msg, cap - strlen(all) - 2);
		strcat(all, "|");
		if (strstr(msg, want))
			return true;
	}
	return false;
}

START_TEST(sd_notify_lifecycle)
{
	char path[256], seen[4096] = "";
	int fd = notify_socket(path, sizeof(path));
	const char *opts[] = {NULL};

	setenv("NOTIFY_SOCKET", path, 1);
	start(opts);
	unsetenv("NOTIFY_SOCKET");
	ck_assert_msg(await_notify(fd, "READY=1", seen, sizeof(seen)), "got: %s", seen);
	kill(co.pid, SIGHUP);
	ck_assert_msg(await_notify(fd, "RELOADING=1", seen, sizeof(seen)), "got: %s", seen);
	ck_assert_msg(await_notify(fd, "READY=1", seen, sizeof(seen)), "got: %s", seen);
	kill(co.pid, SIGTERM);
	ck_assert_msg(await_notify(fd, "STOPPING=1", seen, sizeof(seen)), "got: %s", seen);
	/* Already stopping: wait for the exit rather than signal again. */
	{
		int st = tu_wait(co.pid, 10000);
		ck_assert_msg(st != -1 && WIFEXITED(st) && WEXITSTATUS(st) == 0, "status %d", st);
		co.pid = 0;
	}
	tu_stop(&fake);
	close(fd);
	unlink(path);
}
END_TEST

/* Under systemd (JOURNAL_STREAM naming stderr), lines carry a syslog
 * priority and no timestamp; elsewhere, a timestamp and a level word. */
START_TEST(journal_log_format)
{
	char log[256], js[64], servers[64];
	struct stat st;
	const char *args[] = {"-o", NULL, "-o", "upstream.servers=127.0.0.1:1", NULL};
	char listen[64];
	pid_t pid;
	char *text = NULL;
	double end;
	int port = tu_free_port();
	FILE *f;

	(void)servers;
	snprintf(log, sizeof(log), "%s/journal.log", tu_tmpdir());
	f = fopen(log, "w");
	ck_assert_ptr_nonnull(f);
	fclose(f);
	ck_assert_int_eq(stat(log, &st), 0);
	snprintf(js, sizeof(js), "%llu:%llu", (unsigned long long)st.st_dev,
	         (unsigned long long)st.st_ino);
	snprintf(listen, sizeof(listen), "server.listen=127.0.0.1:%d", port);
	args[1] = listen;
	setenv("JOURNAL_STREAM", js, 1);
	pid = tu_coalesced_spawn(args, log);
	unsetenv("JOURNAL_STREAM");
	end = tu_now() + tu_guard_ms(10000) / 1000.0;
	while (tu_now() < end) {
		free(text);
		text = tu_read_file(log, NULL);
		if (strstr(text, "listening on"))
			break;
		tu_sleep_ms(20);
	}
	ck_assert_msg(strstr(text, "<6>listening on 127.0.0.1:"), "%s", text);
	ck_assert_msg(strstr(text, "\n<4>") || strncmp(text, "<4>", 3) == 0, "%s", text);
	free(text);
	co.pid = pid;
	tu_stop_clean(&co);
}
END_TEST

/* Socket activation: a listening socket passed as LISTEN_FDS is used, and
 * [server] listen is not bound. */
START_TEST(socket_activation)
{
	struct sockaddr_in sa = {.sin_family = AF_INET};
	int lfd = socket(AF_INET, SOCK_STREAM, 0), one = 1, fd, unused = tu_free_port();
	char servers[64], listen_opt[64], *r;
	double end;

	tu_fake_start(&fake, NULL);
	memset(&co, 0, sizeof(co));
	co.port = tu_free_port();
	setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	sa.sin_port = htons((uint16_t)co.port);
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	ck_assert_int_eq(bind(lfd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	ck_assert_int_eq(listen(lfd, 16), 0);
	snprintf(servers, sizeof(servers), "upstream.servers=127.0.0.1:%d", fake.port);
	snprintf(listen_opt, sizeof(listen_opt), "server.listen=127.0.0.1:%d", unused);
	snprintf(co.log, sizeof(co.log), "%s/activation.log", tu_tmpdir());
	{
		const char *args[] = {"-o", servers, "-o", listen_opt, NULL};
		co.pid = tu_coalesced_spawn_fd(args, co.log, lfd);
	}
	close(lfd);
	/* The passed socket already listens: wait for the daemon to answer. */
	fd = tu_connect(co.port);
	ck_assert_int_ge(fd, 0);
	tu_sends(fd, "get act\r\n");
	r = tu_recv_until(fd, "END\r\n", 10000, NULL);
	ck_assert_str_eq(r, "VALUE act 0 5\r\nv:act\r\nEND\r\n");
	free(r);
	close(fd);
	end = tu_now() + 1;
	while (tu_now() < end)
		tu_sleep_ms(50);
	ck_assert_int_lt(tu_connect(unused), 0);
	tu_stop_clean(&co);
	tu_stop(&fake);
}
END_TEST

Suite *service_suite(void)
{
	Suite *s = suite_create("service");
	TCase *tc = tcase_create("service");

	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, stats_detail_per_prefix);
	tcase_add_test(tc, sd_notify_lifecycle);
	tcase_add_test(tc, journal_log_format);
	tcase_add_test(tc, socket_activation);
	suite_add_tcase(s, tc);
	return s;
}
