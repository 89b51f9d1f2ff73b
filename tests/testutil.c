/* testutil: process and socket helpers for the integration tests. */
#include "testutil.h"

#include <check.h>
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

double tu_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

void tu_sleep_ms(int ms)
{
	struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

double tu_slowdown(void)
{
	const char *s = getenv("CK_TIMEOUT_MULTIPLIER");
	char *end;
	double f = s ? strtod(s, &end) : 1;

	return s && (end == s || *end || f < 1) ? 1 : f;
}

int tu_guard_ms(int ms)
{
	return (int)(ms * tu_slowdown());
}

int tu_free_port(void)
{
	struct sockaddr_in sa = {.sin_family = AF_INET};
	socklen_t len = sizeof(sa);
	int fd = socket(AF_INET, SOCK_STREAM, 0), port;

	ck_assert_int_ge(fd, 0);
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	ck_assert_int_eq(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&sa, &len), 0);
	port = ntohs(sa.sin_port);
	close(fd);
	return port;
}

void tu_judging_rss(void)
{
	const char *old = getenv("ASAN_OPTIONS");
	char opts[512];

	snprintf(opts, sizeof(opts), "%s%squarantine_size_mb=0", old ? old : "",
	         old && *old ? ":" : "");
	setenv("ASAN_OPTIONS", opts, 1);
}

long tu_rss_kib(pid_t pid)
{
	char path[64], *s, *p;
	long kib = -1;

	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	s = tu_read_file(path, NULL);
	if (s && (p = strstr(s, "VmRSS:")))
		kib = strtol(p + 6, NULL, 10);
	free(s);
	return kib;
}

size_t tu_push_until_stall(int fd, const char *buf, size_t len, size_t limit)
{
	double end = tu_now() + tu_guard_ms(60000) / 1000.0, last = tu_now();
	size_t sent = 0;

	while (sent < limit && tu_now() - last < tu_guard_ms(1000) / 1000.0) {
		size_t off = sent % len, n = len - off;
		ssize_t w = send(fd, buf + off, n < limit - sent ? n : limit - sent, MSG_NOSIGNAL);
		ck_assert_msg(tu_now() < end, "peer still reading after %zu bytes", sent);
		if (w > 0) {
			sent += (size_t)w;
			last = tu_now();
		} else {
			tu_sleep_ms(5);
		}
	}
	return sent;
}

const char *tu_tmpdir(void)
{
	static char dir[128];
	if (!dir[0]) {
		snprintf(dir, sizeof(dir), "/tmp/coalesced-test.XXXXXX");
		ck_assert_ptr_nonnull(mkdtemp(dir));
	}
	return dir;
}

/* The child dies with the test process, even when an assertion ends it.
 * pass_fd >= 0 is handed over as fd 3, the way systemd passes a socket. */
static pid_t spawn_fd(const char *const *argv, const char *errlog, int out_pipe[2], int pass_fd)
{
	pid_t pid = fork();

	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		int fd;
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (pass_fd >= 0) {
			char num[32];
			if (pass_fd != 3) {
				dup2(pass_fd, 3);
				close(pass_fd);
			}
			snprintf(num, sizeof(num), "%d", (int)getpid());
			setenv("LISTEN_PID", num, 1);
			setenv("LISTEN_FDS", "1", 1);
		}
		fd = open("/dev/null", O_RDONLY);
		dup2(fd, 0);
		if (out_pipe) {
			dup2(out_pipe[1], 1);
			close(out_pipe[0]);
			close(out_pipe[1]);
		}
		if (errlog) {
			fd = open(errlog, O_WRONLY | O_CREAT | O_APPEND, 0644);
			if (fd >= 0)
				dup2(fd, 2);
		}
		execvp(argv[0], (char *const *)argv);
		_exit(127);
	}
	return pid;
}

static pid_t spawn(const char *const *argv, const char *errlog, int out_pipe[2])
{
	return spawn_fd(argv, errlog, out_pipe, -1);
}

int tu_connect(int port)
{
	struct sockaddr_in sa = {.sin_family = AF_INET};
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), one = 1;

	if (fd < 0)
		return -1;
	sa.sin_port = htons((uint16_t)port);
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		close(fd);
		return -1;
	}
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	return fd;
}

static void wait_listening(struct proc *p, int ms)
{
	double end = tu_now() + tu_guard_ms(ms) / 1000.0;
	while (tu_now() < end) {
		int fd = tu_connect(p->port);
		if (fd >= 0) {
			close(fd);
			return;
		}
		if (waitpid(p->pid, NULL, WNOHANG) == p->pid)
			ck_abort_msg("process exited before listening (log %s)", p->log);
		tu_sleep_ms(10);
	}
	ck_abort_msg("nothing listening on port %d after %d ms (log %s)", p->port, ms, p->log);
}

void tu_memcached_start(struct proc *p, int port)
{
	char portbuf[16];
	const char *argv[] = {"memcached", "-U", "0",   "-l", "127.0.0.1", "-p", portbuf, "-I",
	                      "2m",        "-m", "256", "-t", "1",         "-u", "root",  NULL};

	memset(p, 0, sizeof(*p));
	p->port = port > 0 ? port : tu_free_port();
	snprintf(portbuf, sizeof(portbuf), "%d", p->port);
	snprintf(p->log, sizeof(p->log), "%s/memcached-%d.log", tu_tmpdir(), p->port);
	p->pid = spawn(argv, p->log, NULL);
	wait_listening(p, 5000);
}

void tu_redis_start(struct proc *p)
{
	char portbuf[16];
	const char *argv[] = {"redis-server", "--port",    portbuf,        "--bind", "127.0.0.1",
	                      "--save",       "",          "--appendonly", "no",     "--dir",
	                      tu_tmpdir(),    "--logfile", p->log,         NULL};

	memset(p, 0, sizeof(*p));
	p->port = tu_free_port();
	snprintf(portbuf, sizeof(portbuf), "%d", p->port);
	snprintf(p->log, sizeof(p->log), "%s/redis-%d.log", tu_tmpdir(), p->port);
	p->pid = spawn(argv, p->log, NULL);
	wait_listening(p, 5000);
}

void tu_fake_start(struct proc *p, const char *record)
{
	const char *bin = getenv("FAKE_UPSTREAM") ? getenv("FAKE_UPSTREAM") : "build/fake_upstream";
	const char *argv[6] = {bin, "-p", "0", NULL, NULL, NULL};
	int pipefd[2];
	char line[64] = {0};
	size_t n = 0;
	double end;

	memset(p, 0, sizeof(*p));
	if (record) {
		argv[3] = "-r";
		argv[4] = record;
	}
	snprintf(p->log, sizeof(p->log), "%s/fake.log", tu_tmpdir());
	ck_assert_int_eq(pipe(pipefd), 0);
	p->pid = spawn(argv, p->log, pipefd);
	close(pipefd[1]);
	/* It prints "PORT <n>" once it listens. */
	end = tu_now() + tu_guard_ms(5000) / 1000.0;
	while (n < sizeof(line) - 1 && !strchr(line, '\n') && tu_now() < end) {
		struct pollfd pf = {pipefd[0], POLLIN, 0};
		if (poll(&pf, 1, 100) > 0) {
			ssize_t r = read(pipefd[0], line + n, 1);
			if (r <= 0)
				break;
			n += (size_t)r;
		}
	}
	close(pipefd[0]);
	ck_assert_msg(sscanf(line, "PORT %d", &p->port) == 1, "fake upstream did not start: '%s'",
	              line);
}

pid_t tu_coalesced_spawn(const char *const *args, const char *errlog)
{
	return tu_coalesced_spawn_fd(args, errlog, -1);
}

pid_t tu_coalesced_spawn_fd(const char *const *args, const char *errlog, int listen_fd)
{
	const char *argv[64];
	int n = 0;
	char *wrap = getenv("COALESCED_WRAPPER") ? strdup(getenv("COALESCED_WRAPPER")) : NULL;
	const char *bin = getenv("COALESCED_BIN") ? getenv("COALESCED_BIN") : "./coalesced";
	pid_t pid;

	if (wrap)
		for (char *tok = strtok(wrap, " "); tok && n < 16; tok = strtok(NULL, " "))
			argv[n++] = tok;
	argv[n++] = bin;
	for (int i = 0; args[i] && n < 62; i++)
		argv[n++] = args[i];
	argv[n] = NULL;
	pid = spawn_fd(argv, errlog, NULL, listen_fd);
	free(wrap); /* the child has its own copy */
	return pid;
}

void tu_coalesced_start(struct proc *p, const char *servers, const char *const *opts)
{
	const char *args[64];
	char listen[64], up[256];
	int n = 0;

	memset(p, 0, sizeof(*p));
	p->port = tu_free_port();
	snprintf(listen, sizeof(listen), "server.listen=127.0.0.1:%d", p->port);
	snprintf(up, sizeof(up), "upstream.servers=%s", servers);
	snprintf(p->log, sizeof(p->log), "%s/coalesced-%d.log", tu_tmpdir(), p->port);
	args[n++] = "-o";
	args[n++] = listen;
	args[n++] = "-o";
	args[n++] = up;
	for (int i = 0; opts && opts[i] && n < 60; i++) {
		args[n++] = "-o";
		args[n++] = opts[i];
	}
	args[n] = NULL;
	p->pid = tu_coalesced_spawn(args, p->log);
	wait_listening(p, 5000);
}

void tu_stack_start(struct proc *fake, struct proc *co, const char *record, const char *const *opts)
{
	char servers[64];

	tu_fake_start(fake, record);
	snprintf(servers, sizeof(servers), "127.0.0.1:%d", fake->port);
	tu_coalesced_start(co, servers, opts);
}

void tu_stack_stop(struct proc *fake, struct proc *co)
{
	tu_stop_clean(co);
	tu_stop(fake);
}

long tu_fake_stat(int port, const char *name)
{
	char *r = tu_roundtrip(port, "fake_stats\r\n", 3000), pat[64], *p;
	long v = -1;

	snprintf(pat, sizeof(pat), "STAT %s ", name);
	p = strstr(r, pat);
	if (p)
		v = strtol(p + strlen(pat), NULL, 10);
	free(r);
	return v;
}

int tu_wait(pid_t pid, int ms)
{
	double end = tu_now() + tu_guard_ms(ms) / 1000.0;
	int status;

	while (tu_now() < end) {
		pid_t r = waitpid(pid, &status, WNOHANG);
		if (r == pid)
			return status;
		if (r < 0)
			return -1;
		tu_sleep_ms(5);
	}
	return -1;
}

int tu_stop(struct proc *p)
{
	int status;

	if (p->pid <= 0)
		return -1;
	kill(p->pid, SIGTERM);
	status = tu_wait(p->pid, 10000);
	if (status == -1) {
		kill(p->pid, SIGKILL);
		waitpid(p->pid, NULL, 0);
	}
	p->pid = 0;
	return status;
}

void tu_stop_clean(struct proc *p)
{
	int st = tu_stop(p);
	ck_assert_msg(st != -1, "process did not stop on SIGTERM (log %s)", p->log);
	ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0,
	              "unclean exit: status %d (99 = valgrind errors; log %s)",
	              WIFEXITED(st) ? WEXITSTATUS(st) : -WTERMSIG(st), p->log);
}

void tu_send(int fd, const void *buf, size_t len)
{
	const char *p = buf;
	while (len) {
		ssize_t n = send(fd, p, len, MSG_NOSIGNAL);
		if (n < 0 && errno == EINTR)
			continue;
		ck_assert_msg(n > 0, "send: %s", strerror(errno));
		p += n;
		len -= (size_t)n;
	}
}

void tu_sends(int fd, const char *s)
{
	tu_send(fd, s, strlen(s));
}

static bool ends_with(const char *buf, size_t len, const char *stop)
{
	size_t n = strlen(stop);
	return len >= n && memcmp(buf + len - n, stop, n) == 0;
}

/* A reply is complete when it ends with a final line: END, ERROR, STORED... */
static bool complete(const char *buf, size_t len, const char *stop)
{
	static const char *const finals[] = {"END\r\n", "ERROR\r\n", NULL};
	if (stop)
		return ends_with(buf, len, stop);
	for (int i = 0; finals[i]; i++)
		if (ends_with(buf, len, finals[i]))
			return true;
	/* Any single error or version line. */
	if (len >= 2 && ends_with(buf, len, "\r\n")) {
		if (!strncmp(buf, "SERVER_ERROR", 12) || !strncmp(buf, "CLIENT_ERROR", 12) ||
		    !strncmp(buf, "VERSION", 7))
			return true;
	}
	return false;
}

static char *recv_loop(int fd, const char *stop, size_t want, int quiet_ms, int ms, size_t *lenp)
{
	size_t cap = 65536, len = 0;
	char *buf = malloc(cap + 1);
	double end = tu_now() + tu_guard_ms(ms) / 1000.0;

	ck_assert_ptr_nonnull(buf);
	for (;;) {
		double left = end - tu_now();
		struct pollfd pf = {fd, POLLIN, 0};
		int wait = (int)(left * 1000);
		ssize_t n;

		if (want && len >= want)
			break;
		if (!want && quiet_ms < 0 && len && complete(buf, len, stop))
			break;
		if (left <= 0)
			break;
		if (quiet_ms >= 0 && wait > quiet_ms)
			wait = quiet_ms;
		if (poll(&pf, 1, wait) <= 0) {
			if (quiet_ms >= 0)
				break;
			continue;
		}
		if (len == cap) {
			cap *= 2;
			buf = realloc(buf, cap + 1);
			ck_assert_ptr_nonnull(buf);
		}
		n = recv(fd, buf + len,
		         want ? (want - len < cap - len ? want - len : cap - len) : cap - len, 0);
		if (n <= 0)
			break;
		len += (size_t)n;
	}
	buf[len] = '\0';
	if (lenp)
		*lenp = len;
	return buf;
}

char *tu_recv_until(int fd, const char *stop, int ms, size_t *len)
{
	return recv_loop(fd, stop, 0, -1, ms, len);
}

char *tu_recv_n(int fd, size_t want, int ms, size_t *len)
{
	return recv_loop(fd, NULL, want, -1, ms, len);
}

char *tu_recv_all(int fd, int quiet_ms, int max_ms, size_t *len)
{
	return recv_loop(fd, NULL, 0, quiet_ms, max_ms, len);
}

char *tu_recv_reply(int fd, size_t want, int quiet_ms, int ms, size_t *lenp)
{
	size_t len, more;
	char *buf, *rest;

	if (!want)
		return recv_loop(fd, NULL, 0, quiet_ms, ms, lenp);
	buf = recv_loop(fd, NULL, want, -1, ms, &len);
	if (len == want) {
		rest = recv_loop(fd, NULL, 0, quiet_ms, ms, &more);
		buf = realloc(buf, len + more + 1);
		ck_assert_ptr_nonnull(buf);
		memcpy(buf + len, rest, more + 1);
		len += more;
		free(rest);
	}
	if (lenp)
		*lenp = len;
	return buf;
}

bool tu_closed(int fd, int ms)
{
	double end = tu_now() + tu_guard_ms(ms) / 1000.0;
	char buf[4096];

	while (tu_now() < end) {
		struct pollfd pf = {fd, POLLIN, 0};
		if (poll(&pf, 1, 20) > 0) {
			ssize_t n = recv(fd, buf, sizeof(buf), 0);
			if (n == 0 || (n < 0 && errno == ECONNRESET))
				return true;
		}
	}
	return false;
}

char *tu_roundtrip(int port, const char *req, int ms)
{
	int fd = tu_connect(port);
	char *r;

	ck_assert_msg(fd >= 0, "connect to %d failed", port);
	tu_sends(fd, req);
	r = tu_recv_until(fd, NULL, ms, NULL);
	close(fd);
	return r;
}

long long tu_stat(int port, const char *name)
{
	char *r = tu_roundtrip(port, "stats\r\n", 3000), *p;
	char pat[128];
	long long v = -1;

	snprintf(pat, sizeof(pat), "STAT %s ", name);
	p = strstr(r, pat);
	if (p)
		v = strtoll(p + strlen(pat), NULL, 10);
	free(r);
	return v;
}

void tu_mc_set(int port, const char *key, unsigned flags, const void *data, size_t len)
{
	int fd = tu_connect(port);
	char hdr[400], *r;

	ck_assert_int_ge(fd, 0);
	snprintf(hdr, sizeof(hdr), "set %s %u 0 %zu\r\n", key, flags, len);
	tu_sends(fd, hdr);
	tu_send(fd, data, len);
	tu_sends(fd, "\r\n");
	r = tu_recv_until(fd, "\r\n", 3000, NULL);
	ck_assert_msg(strcmp(r, "STORED\r\n") == 0, "set %s: %s", key, r);
	free(r);
	close(fd);
}

void tu_fake_ctl(int port, const char *line)
{
	int fd = tu_connect(port);
	char *r;

	ck_assert_int_ge(fd, 0);
	tu_sends(fd, line);
	tu_sends(fd, "\r\n");
	r = tu_recv_until(fd, "\r\n", 3000, NULL);
	ck_assert_msg(strcmp(r, "OK\r\n") == 0, "fake control '%s': %s", line, r);
	free(r);
	close(fd);
}

int tu_run(char *out, size_t cap, int secs, const char *fmt, ...)
{
	char cmd[4096], full[4200];
	va_list ap;
	FILE *f;
	size_t n = 0;
	int st;

	va_start(ap, fmt);
	vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	snprintf(full, sizeof(full), "timeout %d %s 2>&1", secs, cmd);
	f = popen(full, "r");
	ck_assert_ptr_nonnull(f);
	while (n + 1 < cap) {
		size_t r = fread(out + n, 1, cap - 1 - n, f);
		if (r == 0)
			break;
		n += r;
	}
	out[n] = '\0';
	st = pclose(f);
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

char *tu_read_file(const char *path, size_t *len)
{
	/* Read until end of file rather than trusting the size: files under
	 * /proc report a size of 0. */
	FILE *f = fopen(path, "rb");
	size_t n = 0, cap = 4096;
	char *buf;

	if (!f)
		return NULL;
	buf = malloc(cap);
	ck_assert_ptr_nonnull(buf);
	for (;;) {
		size_t r = fread(buf + n, 1, cap - 1 - n, f);
		n += r;
		if (r == 0)
			break;
		if (n + 1 == cap) {
			cap *= 2;
			buf = realloc(buf, cap);
			ck_assert_ptr_nonnull(buf);
		}
	}
	buf[n] = '\0';
	fclose(f);
	if (len)
		*len = n;
	return buf;
}

bool tu_ryw_try(int fake_port, int a, int b, int (*reader)(void *), void *arg)
{
	bool tried = false;
	double t0;
	char *r;

	tu_fake_ctl(fake_port, "fake_mode delay 600");
	tu_fake_ctl(fake_port, "fake_reset");
	tu_sends(a, "get k\r\n");
	tu_sleep_ms(50);
	t0 = tu_now();
	tu_sends(b, "delete k\r\n"); /* the fake answers ERROR at once */
	r = tu_recv_until(b, "\r\n", 3000, NULL);
	ck_assert_str_eq(r, "ERROR\r\n");
	free(r);
	/* Only if the write was not queued behind the held fetch. */
	if (tu_now() - t0 < 0.3) {
		int c = reader(arg);
		tried = true;
		tu_sends(c, "get k\r\n");
		free(tu_recv_until(c, "END\r\n", 3000, NULL));
		ck_assert_int_eq(tu_fake_stat(fake_port, "requests"), 2);
		close(c);
	}
	free(tu_recv_until(a, "END\r\n", 3000, NULL));
	close(a);
	close(b);
	tu_fake_ctl(fake_port, "fake_mode normal");
	return tried;
}
