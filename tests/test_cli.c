/* cli: command line, exit statuses, -t, and signals (DESIGN section 1). */
#include "testutil.h"
#include "version.h"

#include <check.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

struct run {
	int status; /* exit code, or -1 */
	char *out, *err;
};

static void run_free(struct run *r)
{
	free(r->out);
	free(r->err);
}

/* Run coalesced with args to completion (bounded), capturing both streams. */
static struct run run_args(const char *const *args)
{
	static int n;
	char outp[256], errp[256], cmd[4096];
	struct run r = {0};
	const char *bin = getenv("COALESCED_BIN") ? getenv("COALESCED_BIN") : "./coalesced";
	size_t len;
	FILE *f;

	snprintf(outp, sizeof(outp), "%s/out.%d", tu_tmpdir(), ++n);
	snprintf(errp, sizeof(errp), "%s/err.%d", tu_tmpdir(), n);
	len = (size_t)snprintf(cmd, sizeof(cmd), "timeout 10 %s %s",
	                       getenv("COALESCED_WRAPPER") ? getenv("COALESCED_WRAPPER") : "", bin);
	for (int i = 0; args[i]; i++)
		len += (size_t)snprintf(cmd + len, sizeof(cmd) - len, " '%s'", args[i]);
	snprintf(cmd + len, sizeof(cmd) - len, " >%s 2>%s </dev/null", outp, errp);
	f = popen(cmd, "r");
	ck_assert_ptr_nonnull(f);
	r.status = pclose(f);
	r.status = WIFEXITED(r.status) ? WEXITSTATUS(r.status) : -1;
	r.out = tu_read_file(outp, NULL);
	r.err = tu_read_file(errp, NULL);
	return r;
}

static const char *write_conf(const char *name, const char *text)
{
	static char path[256];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", tu_tmpdir(), name);
	f = fopen(path, "w");
	ck_assert_ptr_nonnull(f);
	fputs(text, f);
	fclose(f);
	return path;
}

START_TEST(version_flag)
{
	const char *args[] = {"-V", NULL};
	struct run r = run_args(args);
	ck_assert_int_eq(r.status, 0);
	ck_assert_str_eq(r.out, "coalesced " COALESCED_VERSION "\n");
	run_free(&r);
}
END_TEST

START_TEST(help_flag)
{
	const char *args[] = {"-h", NULL};
	struct run r = run_args(args);
	ck_assert_int_eq(r.status, 0);
	ck_assert_ptr_nonnull(strstr(r.out, "usage: coalesced"));
	ck_assert_str_eq(r.err, "");
	run_free(&r);
}
END_TEST

START_TEST(bad_usage_exits_2)
{
	const char *a1[] = {"-x", NULL}, *a2[] = {"extra", NULL}, *a3[] = {"-c", NULL};
	struct run r = run_args(a1);
	ck_assert_int_eq(r.status, 2);
	ck_assert_ptr_nonnull(strstr(r.err, "usage:"));
	run_free(&r);
	r = run_args(a2);
	ck_assert_int_eq(r.status, 2);
	run_free(&r);
	r = run_args(a3);
	ck_assert_int_eq(r.status, 2);
	run_free(&r);
}
END_TEST

/* A malformed -o is bad usage (2), said before any file is read, not a bad
 * configuration (1) (issue 8, item 12). */
START_TEST(malformed_override_exits_2)
{
	static const char *const bad[] = {"nodot=1", "batch.leeway_ms", "batch.=1", ".x=1", "=1"};

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		const char *args[] = {"-t", "-c", "/nonexistent/coalesced.ini", "-o", bad[i], NULL};
		char want[128];
		struct run r = run_args(args);

		ck_assert_msg(r.status == 2, "-o %s: exit %d", bad[i], r.status);
		snprintf(want, sizeof(want), "coalesced: -o %s: expected SECTION.KEY=VALUE\n",
		         bad[i]);
		ck_assert_msg(strncmp(r.err, want, strlen(want)) == 0, "stderr: %s", r.err);
		ck_assert_ptr_nonnull(strstr(r.err, "usage:"));
		run_free(&r);
	}
}
END_TEST

START_TEST(check_good_config)
{
	const char *path =
	    write_conf("good.ini", "[server]\nlisten = 127.0.0.1:1\n[batch]\nleeway_ms = 0.5\n");
	const char *args[] = {"-t", "-c", path, NULL};
	struct run r = run_args(args);
	ck_assert_int_eq(r.status, 0);
	ck_assert_str_eq(r.err, "configuration ok\n");
	ck_assert_str_eq(r.out, "");
	run_free(&r);
}
END_TEST

START_TEST(check_bad_config_names_file_line_key)
{
	const char *path =
	    write_conf("bad.ini", "[server]\nmax_clients = 10\n\n[batch]\nmax_keys = 0\n");
	const char *args[] = {"-t", "-c", path, NULL};
	char want[512];
	struct run r = run_args(args);

	ck_assert_int_eq(r.status, 1);
	snprintf(want, sizeof(want), "%s:5: [batch] max_keys:", path);
	ck_assert_msg(strstr(r.err, want), "stderr: %s", r.err);
	run_free(&r);
}
END_TEST

/* -t reports every error of the file and of each -o in one run, each
 * naming the file, line and key (issue 8, item 5). */
START_TEST(check_reports_every_error)
{
	const char *path = write_conf("many.ini", "[server]\n"
	                                          "max_clients = 0\n"
	                                          "idle_timeout_s = soon\n"
	                                          "no equals sign\n"
	                                          "[upstream]\n"
	                                          "nosuchkey = 1\n"
	                                          "[batch]\n"
	                                          "max_keys = 5\n");
	const char *args[] = {"-t",
	                      "-c",
	                      path,
	                      "-o",
	                      "batch.max_keys=0",
	                      "-o",
	                      "batch.coalesce=yes",
	                      "-o",
	                      "batch.leeway_ms=x",
	                      NULL};
	static const char *const want[] = {
	    "%s:2: [server] max_clients: 0 is out of range (1 to 1000000)\n",
	    "%s:3: [server] idle_timeout_s: 'soon' is not an integer\n",
	    "%s:4: syntax error: expected 'key = value' or '[section]'\n",
	    "%s:6: [upstream] nosuchkey: unknown key\n",
	    "-o batch.max_keys=0: [batch] max_keys: 0 is out of range (1 to 10000)\n",
	    "-o batch.leeway_ms=x: [batch] leeway_ms: 'x' is not a number\n"};
	struct run r = run_args(args);
	char line[512], expect[4096] = "";

	ck_assert_int_eq(r.status, 1);
	for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
		size_t n = strlen(expect);
		snprintf(line, sizeof(line), want[i], path);
		snprintf(expect + n, sizeof(expect) - n, "coalesced: %s", line);
	}
	ck_assert_str_eq(r.err, expect);
	run_free(&r);
}
END_TEST

/* A user that does not exist fails -t as it fails the start, with the same
 * message (issue 8, item 5). */
START_TEST(check_refuses_unknown_user)
{
	char conf[256], want[512];
	const char *path;

	snprintf(conf, sizeof(conf),
	         "[server]\nlisten = 127.0.0.1:%d\nuser = no-such-user-coalesced\n"
	         "[upstream]\nservers = 127.0.0.1:1\n",
	         tu_free_port());
	path = write_conf("user.ini", conf);
	snprintf(want, sizeof(want),
	         "coalesced: %s:3: [server] user: no user 'no-such-user-coalesced'\n", path);
	{
		const char *args[] = {"-t", "-c", path, NULL};
		struct run r = run_args(args);
		ck_assert_int_eq(r.status, 1);
		ck_assert_str_eq(r.err, want);
		run_free(&r);
	}
	{
		const char *args[] = {"-c", path, NULL};
		struct run r = run_args(args);
		ck_assert_int_eq(r.status, 1);
		ck_assert_str_eq(r.err, want);
		run_free(&r);
	}
	{
		const char *args[] = {"-t", "-o", "server.user=root", NULL};
		struct run r = run_args(args);
		ck_assert_int_eq(r.status, 0);
		ck_assert_str_eq(r.err, "configuration ok\n");
		run_free(&r);
	}
}
END_TEST

/* -c naming a directory is an error, not an empty file (issue 8, item 12). */
START_TEST(config_directory_refused)
{
	const char *a1[] = {"-t", "-c", tu_tmpdir(), NULL};
	const char *a2[] = {"-c", tu_tmpdir(), "-o", "upstream.servers=127.0.0.1:1", NULL};
	char want[512];
	struct run r = run_args(a1);

	snprintf(want, sizeof(want), "coalesced: %s: cannot read: Is a directory\n", tu_tmpdir());
	ck_assert_int_eq(r.status, 1);
	ck_assert_str_eq(r.err, want);
	run_free(&r);
	r = run_args(a2);
	ck_assert_int_eq(r.status, 1);
	ck_assert_str_eq(r.err, want);
	run_free(&r);
}
END_TEST

START_TEST(bad_config_refuses_to_start)
{
	const char *path = write_conf("bad2.ini", "[upstream]\nnosuchkey = 1\n");
	const char *a1[] = {"-c", path, NULL};
	const char *a2[] = {"-c", "/nonexistent/coalesced.ini", NULL};
	const char *a3[] = {"-o", "batch.leeway_ms=-1", NULL};
	struct run r = run_args(a1);

	ck_assert_int_eq(r.status, 1);
	ck_assert_ptr_nonnull(strstr(r.err, "nosuchkey"));
	run_free(&r);
	r = run_args(a2);
	ck_assert_int_eq(r.status, 1);
	ck_assert_ptr_nonnull(strstr(r.err, "/nonexistent/coalesced.ini"));
	run_free(&r);
	r = run_args(a3);
	ck_assert_int_eq(r.status, 1);
	ck_assert_ptr_nonnull(strstr(r.err, "leeway_ms"));
	run_free(&r);
}
END_TEST

START_TEST(cannot_bind_exits_3)
{
	struct proc mc;
	char listen[64];
	tu_memcached_start(&mc, 0);
	snprintf(listen, sizeof(listen), "server.listen=127.0.0.1:%d", mc.port);
	const char *args[] = {"-o", listen, NULL};
	struct run r = run_args(args);
	ck_assert_int_eq(r.status, 3);
	ck_assert_ptr_nonnull(strstr(r.err, "cannot listen"));
	run_free(&r);
	tu_stop(&mc);
}
END_TEST

START_TEST(sigterm_idle_exits_0)
{
	struct proc co;
	tu_coalesced_start(&co, "127.0.0.1:1", NULL);
	tu_stop_clean(&co);
}
END_TEST

START_TEST(listens_on_several_addresses_and_unix)
{
	struct proc co;
	char opt[256], sock[200];
	int p2 = tu_free_port();
	snprintf(sock, sizeof(sock), "%s/c.sock", tu_tmpdir());
	snprintf(opt, sizeof(opt), "server.listen=127.0.0.1:%d, unix:%s", p2, sock);
	memset(&co, 0, sizeof(co));
	{
		const char *args[] = {"-o", opt, "-o", "upstream.servers=127.0.0.1:1", NULL};
		co.pid = tu_coalesced_spawn(args, NULL);
	}
	double end = tu_now() + tu_guard_ms(10000) / 1000.0;
	int fd = -1;
	while (fd < 0 && tu_now() < end) {
		fd = tu_connect(p2);
		if (fd < 0)
			tu_sleep_ms(20);
	}
	ck_assert_int_ge(fd, 0);
	tu_sends(fd, "version\r\n");
	char *r = tu_recv_until(fd, "\r\n", 3000, NULL);
	ck_assert_str_eq(r, "VERSION " COALESCED_MC_VERSION "\r\n");
	free(r);
	close(fd);
	ck_assert_int_eq(access(sock, F_OK), 0);
	tu_stop_clean(&co);
	/* The socket file goes with the daemon. */
	ck_assert_int_ne(access(sock, F_OK), 0);
}
END_TEST

static int unix_connect(const char *path)
{
	struct sockaddr_un un;
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	ck_assert_int_ge(fd, 0);
	memset(&un, 0, sizeof(un));
	un.sun_family = AF_UNIX;
	ck_assert_uint_lt(strlen(path), sizeof(un.sun_path));
	memcpy(un.sun_path, path, strlen(path) + 1);
	if (connect(fd, (struct sockaddr *)&un, sizeof(un)) < 0) {
		close(fd);
		return -1;
	}
	return fd;
}

/* Start coalesced on a unix path and a free TCP port; returns once both
 * accept. */
static void start_with_unix(struct proc *co, const char *sock)
{
	char opt[300];
	double end;
	int fd = -1;

	memset(co, 0, sizeof(*co));
	co->port = tu_free_port();
	/* Bound in this order: once the TCP port answers, the unix path does. */
	snprintf(opt, sizeof(opt), "server.listen=unix:%s, 127.0.0.1:%d", sock, co->port);
	snprintf(co->log, sizeof(co->log), "%s/unix-%d.log", tu_tmpdir(), co->port);
	{
		const char *args[] = {"-o", opt, "-o", "upstream.servers=127.0.0.1:1", NULL};
		co->pid = tu_coalesced_spawn(args, co->log);
	}
	end = tu_now() + tu_guard_ms(10000) / 1000.0;
	while (fd < 0 && tu_now() < end) {
		fd = tu_connect(co->port);
		if (fd < 0)
			tu_sleep_ms(20);
	}
	ck_assert_int_ge(fd, 0);
	close(fd);
}

static void version_over_unix(const char *sock)
{
	int fd = unix_connect(sock);
	char *r;

	ck_assert_int_ge(fd, 0);
	tu_sends(fd, "version\r\n");
	r = tu_recv_until(fd, "\r\n", 3000, NULL);
	/* Any version: what matters is who answers. */
	ck_assert_msg(strncmp(r, "VERSION ", 8) == 0 && strstr(r, "\r\n"), "%s", r);
	free(r);
	close(fd);
}

/* A second instance on the same unix path must fail (exit 3) and leave the
 * first one's socket alone, not take it over and delete it at its stop
 * (issue 8, item 12). */
START_TEST(second_instance_on_unix_socket_exits_3)
{
	struct proc co;
	char sock[200], opt[256];
	struct run r;

	snprintf(sock, sizeof(sock), "%s/c.sock", tu_tmpdir());
	start_with_unix(&co, sock);
	snprintf(opt, sizeof(opt), "server.listen=unix:%s", sock);
	{
		const char *args[] = {"-o", opt, "-o", "upstream.servers=127.0.0.1:1", NULL};
		r = run_args(args);
	}
	ck_assert_int_eq(r.status, 3);
	ck_assert_msg(strstr(r.err, "another process is listening on this socket"), "%s", r.err);
	run_free(&r);
	/* The first instance still owns and serves the socket. */
	version_over_unix(sock);
	tu_stop_clean(&co);
	ck_assert_int_ne(access(sock, F_OK), 0);
}
END_TEST

/* A file that is not a socket is never unlinked: binding fails (exit 3). */
START_TEST(unix_path_not_a_socket_left_alone)
{
	char sock[200], opt[256], *content;
	const char *path;
	struct run r;

	path = write_conf("notasock", "precious\n");
	snprintf(sock, sizeof(sock), "%s", path);
	snprintf(opt, sizeof(opt), "server.listen=unix:%s", sock);
	{
		const char *args[] = {"-o", opt, "-o", "upstream.servers=127.0.0.1:1", NULL};
		r = run_args(args);
	}
	ck_assert_int_eq(r.status, 3);
	ck_assert_msg(strstr(r.err, "exists and is not a socket"), "%s", r.err);
	run_free(&r);
	content = tu_read_file(sock, NULL);
	ck_assert_ptr_nonnull(content);
	ck_assert_str_eq(content, "precious\n");
	free(content);
}
END_TEST

/* A socket file left by a run that did not stop cleanly (nobody listens on
 * it) is replaced. */
START_TEST(stale_unix_socket_replaced)
{
	struct proc co;
	struct sockaddr_un un;
	char sock[200];
	int fd = socket(AF_UNIX, SOCK_STREAM, 0);

	snprintf(sock, sizeof(sock), "%s/stale.sock", tu_tmpdir());
	memset(&un, 0, sizeof(un));
	un.sun_family = AF_UNIX;
	ck_assert_uint_lt(strlen(sock), sizeof(un.sun_path));
	memcpy(un.sun_path, sock, strlen(sock) + 1);
	ck_assert_int_eq(bind(fd, (struct sockaddr *)&un, sizeof(un)), 0);
	close(fd);
	ck_assert_int_eq(access(sock, F_OK), 0);
	start_with_unix(&co, sock);
	version_over_unix(sock);
	tu_stop_clean(&co);
	ck_assert_int_ne(access(sock, F_OK), 0);
}
END_TEST

static int count_lines_with(const char *text, const char *what)
{
	int n = 0;

	for (const char *p = text; (p = strstr(p, what)); p++)
		n++;
	return n;
}

/* Out of file descriptors, accept is retried every 100 ms: its warning must
 * be rate-limited like the other limit warnings (issue 8, item 12). */
START_TEST(accept_emfile_warning_rate_limited)
{
	struct proc co;
	int fds[100], nfds = 0, n;
	double start, held, end;
	char listen[64], wrap[512], *log, *saved;

	memset(&co, 0, sizeof(co));
	co.port = tu_free_port();
	snprintf(listen, sizeof(listen), "server.listen=127.0.0.1:%d", co.port);
	snprintf(co.log, sizeof(co.log), "%s/emfile.log", tu_tmpdir());
	/* The daemon starts with a low limit on open files, set by prlimit(1)
	 * in the child: under make valgrind, this process's own setrlimit
	 * only changes valgrind's emulated limit, which no child inherits. */
	saved = getenv("COALESCED_WRAPPER") ? strdup(getenv("COALESCED_WRAPPER")) : NULL;
	snprintf(wrap, sizeof(wrap), "prlimit --nofile=64: %s", saved ? saved : "");
	setenv("COALESCED_WRAPPER", wrap, 1);
	{
		const char *args[] = {"-o", listen, "-o", "upstream.servers=127.0.0.1:1", NULL};
		co.pid = tu_coalesced_spawn(args, co.log);
	}
	if (saved)
		setenv("COALESCED_WRAPPER", saved, 1);
	else
		unsetenv("COALESCED_WRAPPER");
	free(saved);
	start = tu_now();
	while (nfds == 0 && tu_now() < start + tu_guard_ms(10000) / 1000.0) {
		fds[0] = tu_connect(co.port);
		if (fds[0] >= 0)
			nfds = 1;
		else
			tu_sleep_ms(20);
	}
	ck_assert_int_eq(nfds, 1);
	/* Before any accept can fail: the lines are counted against the time
	 * since, however long the daemon takes to write the first. */
	start = tu_now();
	/* More connections than it has descriptors: the rest wait in the backlog. */
	while (nfds < 100) {
		fds[nfds] = tu_connect(co.port);
		ck_assert_int_ge(fds[nfds], 0);
		nfds++;
	}
	tu_sleep_ms(1500);
	end = tu_now() + tu_guard_ms(10000) / 1000.0;
	for (;;) {
		log = tu_read_file(co.log, NULL);
		held = tu_now() - start;
		ck_assert_ptr_nonnull(log);
		n = count_lines_with(log, "accept on ");
		if (n >= 1 || tu_now() >= end)
			break;
		free(log);
		tu_sleep_ms(50);
	}
	/* About 15 lines unlimited; at most one a second, plus the one that
	 * starts it, limited. */
	ck_assert_msg(n >= 1 && n <= (int)held + 2, "%d lines in %.1f s:\n%s", n, held, log);
	free(log);
	for (int i = 0; i < nfds; i++)
		close(fds[i]);
	tu_stop_clean(&co);
}
END_TEST

START_TEST(sighup_reload_and_bad_reload)
{
	struct proc fake, co;
	char servers[64], listen[64];
	const char *path;
	char conf[512];
	int fd;
	char *r, *log;

	tu_fake_start(&fake, NULL);
	snprintf(servers, sizeof(servers), "127.0.0.1:%d", fake.port);
	co.port = tu_free_port();
	snprintf(listen, sizeof(listen), "127.0.0.1:%d", co.port);
	snprintf(conf, sizeof(conf),
	         "[server]\nlisten = %s\n[upstream]\nservers = %s\n[batch]\nmax_keys = 100\n",
	         listen, servers);
	path = write_conf("reload.ini", conf);
	snprintf(co.log, sizeof(co.log), "%s/reload.log", tu_tmpdir());
	{
		const char *args[] = {"-c", path, NULL};
		co.pid = tu_coalesced_spawn(args, co.log);
	}
	double end = tu_now() + tu_guard_ms(10000) / 1000.0;
	while ((fd = tu_connect(co.port)) < 0 && tu_now() < end)
		tu_sleep_ms(20);
	ck_assert_int_ge(fd, 0);

	/* Reload with max_keys = 2 while this connection stays open. */
	snprintf(conf, sizeof(conf),
	         "[server]\nlisten = %s\n[upstream]\nservers = %s\n[batch]\nmax_keys = 2\n", listen,
	         servers);
	write_conf("reload.ini", conf);
	kill(co.pid, SIGHUP);
	end = tu_now() + tu_guard_ms(10000) / 1000.0;
	do {
		tu_sleep_ms(50);
		log = tu_read_file(co.log, NULL);
		if (strstr(log, "configuration reloaded"))
			break;
		free(log);
		log = NULL;
	} while (tu_now() < end);
	ck_assert_ptr_nonnull(log);
	free(log);
	tu_fake_ctl(fake.port, "fake_reset");
	tu_sends(fd, "get a b c d\r\n");
	r = tu_recv_until(fd, "END\r\n", 3000, NULL);
	ck_assert_ptr_nonnull(strstr(r, "VALUE d 0 3\r\nv:d\r\nEND\r\n"));
	free(r);
	/* 4 keys at max_keys 2: two upstream requests. */
	r = tu_roundtrip(fake.port, "fake_stats\r\n", 3000);
	ck_assert_msg(strstr(r, "STAT requests 2\r\n"), "%s", r);
	free(r);

	/* A broken file is reported and the running configuration kept. */
	write_conf("reload.ini", "[batch]\nmax_keys = banana\n");
	kill(co.pid, SIGHUP);
	end = tu_now() + tu_guard_ms(10000) / 1000.0;
	do {
		tu_sleep_ms(50);
		log = tu_read_file(co.log, NULL);
		if (strstr(log, "reload failed"))
			break;
		free(log);
		log = NULL;
	} while (tu_now() < end);
	ck_assert_ptr_nonnull(log);
	ck_assert_ptr_nonnull(strstr(log, "max_keys"));
	free(log);
	tu_sends(fd, "get e\r\n");
	r = tu_recv_until(fd, "END\r\n", 3000, NULL);
	ck_assert_str_eq(r, "VALUE e 0 3\r\nv:e\r\nEND\r\n");
	free(r);
	close(fd);
	tu_stop_clean(&co);
	tu_stop(&fake);
}
END_TEST

/* Upstream servers switched by SIGHUP: the request in flight on the old
 * server is answered there, the client stays connected, new keys go to the
 * new server. */
START_TEST(sighup_switches_upstream_servers)
{
	struct proc a, b, co;
	char conf[512], listen[64], *r, *log = NULL;
	const char *path;
	int fd;
	double end;

	tu_fake_start(&a, NULL);
	tu_fake_start(&b, NULL);
	memset(&co, 0, sizeof(co));
	co.port = tu_free_port();
	snprintf(listen, sizeof(listen), "127.0.0.1:%d", co.port);
	snprintf(conf, sizeof(conf), "[server]\nlisten = %s\n[upstream]\nservers = 127.0.0.1:%d\n",
	         listen, a.port);
	path = write_conf("switch.ini", conf);
	snprintf(co.log, sizeof(co.log), "%s/switch.log", tu_tmpdir());
	{
		const char *args[] = {"-c", path, NULL};
		co.pid = tu_coalesced_spawn(args, co.log);
	}
	end = tu_now() + tu_guard_ms(10000) / 1000.0;
	while ((fd = tu_connect(co.port)) < 0 && tu_now() < end)
		tu_sleep_ms(20);
	ck_assert_int_ge(fd, 0);
	tu_fake_ctl(a.port, "fake_mode delay 500");
	tu_sends(fd, "get inflight\r\n");
	/* On its way to the old server before the reload, however slow. */
	end = tu_now() + tu_guard_ms(10000) / 1000.0;
	while (tu_fake_stat(a.port, "requests") < 1 && tu_now() < end)
		tu_sleep_ms(10);
	snprintf(conf, sizeof(conf),
	         "[server]\nlisten = %s\n[upstream]\nservers = 127.0.0.1:%d\nconnections = 3\n",
	         listen, b.port);
	write_conf("switch.ini", conf);
	kill(co.pid, SIGHUP);
	end = tu_now() + tu_guard_ms(10000) / 1000.0;
	while (tu_now() < end) {
		free(log);
		log = tu_read_file(co.log, NULL);
		if (strstr(log, "configuration reloaded"))
			break;
		tu_sleep_ms(20);
	}
	ck_assert_msg(strstr(log, "configuration reloaded"), "%s", log);
	free(log);
	r = tu_recv_until(fd, "END\r\n", 3000, NULL);
	ck_assert_str_eq(r, "VALUE inflight 0 10\r\nv:inflight\r\nEND\r\n");
	free(r);
	/* Same connection, new server. */
	tu_sends(fd, "get after\r\n");
	r = tu_recv_until(fd, "END\r\n", 3000, NULL);
	ck_assert_str_eq(r, "VALUE after 0 7\r\nv:after\r\nEND\r\n");
	free(r);
	ck_assert_int_eq(tu_fake_stat(a.port, "keys"), 1);
	ck_assert_int_eq(tu_fake_stat(b.port, "keys"), 1);
	close(fd);
	tu_stop_clean(&co);
	tu_stop(&a);
	tu_stop(&b);
}
END_TEST

START_TEST(sigterm_answers_inflight_requests)
{
	struct proc fake, co;
	const char *opts[] = {"upstream.timeout_ms=600000", NULL};
	char servers[64];
	int fd, other;
	char *r;
	double end;

	tu_fake_start(&fake, NULL);
	snprintf(servers, sizeof(servers), "127.0.0.1:%d", fake.port);
	tu_coalesced_start(&co, servers, opts);
	/* The upstream is held (SIGSTOP) so that the request stays in flight
	 * for as long as the checks below take. */
	kill(fake.pid, SIGSTOP);
	fd = tu_connect(co.port);
	tu_sends(fd, "get slow\r\n");
	end = tu_now() + tu_guard_ms(10000) / 1000.0;
	while (tu_stat(co.port, "upstream_batches") < 1 && tu_now() < end)
		tu_sleep_ms(10);
	kill(co.pid, SIGTERM);
	/* Stops accepting while the request is still in flight... */
	end = tu_now() + tu_guard_ms(10000) / 1000.0;
	while ((other = tu_connect(co.port)) >= 0 && tu_now() < end) {
		close(other);
		tu_sleep_ms(10);
	}
	ck_assert_int_lt(other, 0);
	kill(fake.pid, SIGCONT);
	/* ...but the request already received is answered, then the exit is clean. */
	r = tu_recv_until(fd, "END\r\n", 5000, NULL);
	ck_assert_str_eq(r, "VALUE slow 0 6\r\nv:slow\r\nEND\r\n");
	free(r);
	ck_assert(tu_closed(fd, 3000));
	close(fd);
	int st = tu_wait(co.pid, 10000);
	ck_assert_msg(st != -1 && WIFEXITED(st) && WEXITSTATUS(st) == 0, "status %d", st);
	co.pid = 0;
	tu_stop(&fake);
}
END_TEST

Suite *cli_suite(void)
{
	Suite *s = suite_create("cli");
	TCase *tc = tcase_create("cli");

	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, version_flag);
	tcase_add_test(tc, help_flag);
	tcase_add_test(tc, bad_usage_exits_2);
	tcase_add_test(tc, malformed_override_exits_2);
	tcase_add_test(tc, check_reports_every_error);
	tcase_add_test(tc, check_refuses_unknown_user);
	tcase_add_test(tc, config_directory_refused);
	tcase_add_test(tc, check_good_config);
	tcase_add_test(tc, check_bad_config_names_file_line_key);
	tcase_add_test(tc, bad_config_refuses_to_start);
	tcase_add_test(tc, cannot_bind_exits_3);
	tcase_add_test(tc, sigterm_idle_exits_0);
	tcase_add_test(tc, listens_on_several_addresses_and_unix);
	tcase_add_test(tc, second_instance_on_unix_socket_exits_3);
	tcase_add_test(tc, unix_path_not_a_socket_left_alone);
	tcase_add_test(tc, stale_unix_socket_replaced);
	tcase_add_test(tc, accept_emfile_warning_rate_limited);
	tcase_add_test(tc, sighup_reload_and_bad_reload);
	tcase_add_test(tc, sighup_switches_upstream_servers);
	tcase_add_test(tc, sigterm_answers_inflight_requests);
	suite_add_tcase(s, tc);
	return s;
}
