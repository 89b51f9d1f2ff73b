/*
 * threads: [server] threads = N. A key is fetched once however many threads'
 * clients ask for it; stats sum every thread; max_clients holds for the
 * process; reload and SIGTERM reach every thread. Each new client goes to
 * the thread with the fewest (`stats conns` names each client's thread), so
 * every test checks that its clients are spread before relying on it.
 */
#include "testutil.h"

#include <check.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

static struct proc up, co;

/* The clients of every thread (1..nthreads) are as many, give or take one
 * (`stats conns`, its own client included). */
static void assert_spread(int port, int nthreads)
{
	char *r = tu_roundtrip(port, "stats conns\r\n", 5000);
	int count[65] = {0}, lo = 1 << 30, hi = 0;

	ck_assert_int_le(nthreads, 64);
	for (char *p = r; (p = strstr(p, ":thread ")); p++) {
		int t = atoi(p + 8);
		ck_assert_int_ge(t, 1);
		ck_assert_int_le(t, nthreads);
		count[t]++;
	}
	for (int t = 1; t <= nthreads; t++) {
		lo = count[t] < lo ? count[t] : lo;
		hi = count[t] > hi ? count[t] : hi;
	}
	ck_assert_msg(hi - lo <= 1, "clients per thread from %d to %d:\n%s", lo, hi, r);
	free(r);
}

/* count clients, each known to be taken (it answered version). */
static void open_clients(int port, int *fds, int count)
{
	for (int n = 0; n < count; n++) {
		char *r;
		fds[n] = tu_connect(port);
		ck_assert_int_ge(fds[n], 0);
		tu_sends(fds[n], "version\r\n");
		r = tu_recv_until(fds[n], "\r\n", 5000, NULL);
		ck_assert_ptr_nonnull(strstr(r, "VERSION"));
		free(r);
	}
}

/* The thread serving the client on fd: `stats conns` names each client by
 * its address, which for this one is fd's own. */
static int thread_of(int fd)
{
	struct sockaddr_in me;
	socklen_t ml = sizeof(me);
	char *r, *p, id[32], want[48];
	int t = -1;

	ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&me, &ml), 0);
	snprintf(want, sizeof(want), "(127.0.0.1:%d)\r\n", ntohs(me.sin_port));
	tu_sends(fd, "stats conns\r\n");
	r = tu_recv_until(fd, "END\r\n", 5000, NULL);
	p = strstr(r, want);
	ck_assert_msg(p != NULL, "%s not in %s", want, r);
	while (p > r && p[-1] != '\n')
		p--;
	p += 5; /* "STAT " */
	ck_assert_uint_lt((size_t)(strchr(p, ':') - p), sizeof(id));
	snprintf(id, sizeof(id), "%.*s", (int)(strchr(p, ':') - p), p);
	snprintf(want, sizeof(want), "STAT %s:thread ", id);
	p = strstr(r, want);
	ck_assert_ptr_nonnull(p);
	t = atoi(p + strlen(want));
	free(r);
	return t;
}

/* A client served by thread t (bounded tries). */
static int connect_on(int port, int t)
{
	for (int i = 0; i < 200; i++) {
		int fd = tu_connect(port);
		ck_assert_int_ge(fd, 0);
		if (thread_of(fd) == t)
			return fd;
		close(fd);
	}
	ck_abort_msg("no client landed on thread %d", t);
	return -1;
}

/* A client of thread *(int *)arg (for tu_ryw_try). */
static int reader_on(void *arg)
{
	return connect_on(co.port, *(const int *)arg);
}

static const int hot_threads[] = {2, 4};

/* 100 clients on one slow hot key, spread over the threads: the upstream
 * sees the key once and every client gets the value. */
START_TEST(hot_key_is_fetched_once_across_threads)
{
	enum { N = 100 };
	char threads[32];
	const char *opts[] = {threads, "upstream.timeout_ms=10000", NULL};
	int fds[N];

	snprintf(threads, sizeof(threads), "server.threads=%d", hot_threads[_i]);
	tu_stack_start(&up, &co, NULL, opts);
	open_clients(co.port, fds, N);
	assert_spread(co.port, hot_threads[_i]);
	tu_fake_ctl(up.port, "fake_mode delay 300");
	for (int i = 0; i < N; i++)
		tu_sends(fds[i], "get hot\r\n");
	for (int i = 0; i < N; i++) {
		char *r = tu_recv_until(fds[i], "END\r\n", 10000, NULL);
		ck_assert_str_eq(r, "VALUE hot 0 5\r\nv:hot\r\nEND\r\n");
		free(r);
		close(fds[i]);
	}
	ck_assert_int_eq(tu_fake_stat(up.port, "keys"), 1);
	ck_assert_int_eq(tu_stat(co.port, "get_keys"), N);
	ck_assert_int_eq(tu_stat(co.port, "keys_coalesced"), N - 1);
	ck_assert_int_eq(tu_stat(co.port, "upstream_keys"), 1);
	ck_assert_int_eq(tu_stat(co.port, "get_hits"), N);
	tu_stack_stop(&up, &co);
}
END_TEST

/* Keys whose owners are other threads, from clients on every thread: each
 * distinct key goes upstream once, every reply is right, and `stats` (asked
 * on any client) counts every thread's work. */
START_TEST(stats_sum_every_thread)
{
	enum { N = 24 };
	const char *opts[] = {"server.threads=2", NULL};
	int fds[N];
	char req[64], want[128], *r;

	tu_memcached_start(&up, 0);
	for (int k = 0; k < 8; k++) {
		char key[16];
		snprintf(key, sizeof(key), "k%d", k);
		tu_mc_set(up.port, key, 0, key, strlen(key));
	}
	snprintf(req, sizeof(req), "127.0.0.1:%d", up.port);
	tu_coalesced_start(&co, req, opts);
	open_clients(co.port, fds, N);
	assert_spread(co.port, 2);
	for (int i = 0; i < N; i++) {
		int k = i % 8;
		snprintf(req, sizeof(req), "get k%d nokey%d\r\n", k, i);
		tu_sends(fds[i], req);
		snprintf(want, sizeof(want), "VALUE k%d 0 %d\r\nk%d\r\nEND\r\n", k, k >= 10 ? 3 : 2,
		         k);
		r = tu_recv_until(fds[i], "END\r\n", 5000, NULL);
		ck_assert_str_eq(r, want);
		free(r);
	}
	/* N + the one asking */
	ck_assert_int_eq(tu_stat(co.port, "curr_connections"), N + 1);
	ck_assert_int_eq(tu_stat(co.port, "cmd_get"), N);
	ck_assert_int_eq(tu_stat(co.port, "get_keys"), 2 * N);
	ck_assert_int_eq(tu_stat(co.port, "get_hits"), N);
	ck_assert_int_eq(tu_stat(co.port, "get_misses"), N);
	ck_assert_int_eq(tu_stat(co.port, "inflight_keys"), 0);
	/* Reset holds for every thread. */
	r = tu_roundtrip(co.port, "stats reset\r\n", 5000);
	ck_assert_str_eq(r, "RESET\r\n");
	free(r);
	ck_assert_int_eq(tu_stat(co.port, "cmd_get"), 0);
	ck_assert_int_eq(tu_stat(co.port, "get_keys"), 0);
	for (int i = 0; i < N; i++)
		close(fds[i]);
	tu_stop_clean(&co);
	tu_stop(&up);
}
END_TEST

/* max_clients counts the clients of every thread together. */
START_TEST(max_clients_holds_for_the_process)
{
	enum { MAX = 12 };
	const char *opts[] = {"server.threads=4", "server.max_clients=12", NULL};
	int fds[MAX + 1], extra;
	char *r;

	char servers[64];
	double end;

	tu_memcached_start(&up, 0);
	snprintf(servers, sizeof(servers), "127.0.0.1:%d", up.port);
	tu_coalesced_start(&co, servers, opts);
	/* Once the start-up probe is seen gone (the asking client is the one
	 * left), MAX clients fit. */
	end = tu_now() + tu_guard_ms(10000) / 1000.0;
	while (tu_stat(co.port, "curr_connections") != 1 && tu_now() < end)
		tu_sleep_ms(10);
	open_clients(co.port, fds, MAX);
	extra = tu_connect(co.port);
	ck_assert_int_ge(extra, 0);
	r = tu_recv_until(extra, "\r\n", 5000, NULL);
	ck_assert_str_eq(r, "ERROR Too many open connections\r\n");
	free(r);
	close(extra);
	close(fds[0]);
	/* One left: one more fits, wherever it lands. */
	{
		bool in = false;
		end = tu_now() + tu_guard_ms(10000) / 1000.0;
		while (!in && tu_now() < end) {
			extra = tu_connect(co.port);
			tu_sends(extra, "version\r\n");
			r = tu_recv_until(extra, "\r\n", 5000, NULL);
			in = strstr(r, "VERSION") != NULL;
			free(r);
			if (!in) {
				close(extra);
				tu_sleep_ms(20);
			}
		}
		ck_assert(in);
		fds[0] = extra;
	}
	for (int i = 0; i < MAX; i++)
		close(fds[i]);
	tu_stop_clean(&co);
	tu_stop(&up);
}
END_TEST

/*
 * Read-your-writes across threads. With one upstream server, thread 1 owns
 * every key. A fetch of k is held up upstream; a write of k completes on
 * thread 2's own upstream connection; a read of k sent by a client of thread
 * 1 once the write's reply is seen must start a fetch of its own, even though
 * thread 1 may see the read before the write's notice (looped: the reader on
 * thread 1 and on thread 2).
 */
START_TEST(read_after_write_across_threads)
{
	struct proc fake;
	const char *opts[] = {"server.threads=2", "upstream.connections=2", NULL};
	bool tried = false;

	int reader_thread = 1 + _i;

	tu_stack_start(&fake, &co, NULL, opts);
	for (int attempt = 0; attempt < 6 && !tried; attempt++)
		tried = tu_ryw_try(fake.port, connect_on(co.port, 1), connect_on(co.port, 2),
		                   reader_on, &reader_thread);
	ck_assert_msg(tried, "no write landed beside the held fetch");
	ck_assert_int_ge(tu_stat(co.port, "reads_after_write"), 1);
	tu_stack_stop(&fake, &co);
}
END_TEST

static char conf_path[256];

static void write_conf(int upport, int coport, const char *extra)
{
	FILE *f = fopen(conf_path, "w");

	ck_assert_ptr_nonnull(f);
	fprintf(f,
	        "[server]\nlisten = 127.0.0.1:%d\nthreads = 2\n%s\n[upstream]\nservers = "
	        "127.0.0.1:%d\n",
	        coport, extra, upport);
	fclose(f);
}

/* A reload applies to the clients of every thread, including ones already
 * connected; SIGTERM then answers what every thread was asked. */
START_TEST(reload_and_stop_reach_every_thread)
{
	enum { N = 16 };
	const char *args[] = {"-c", conf_path, NULL};
	int fds[N], seen = 0, st;
	double end;
	char *r;

	tu_fake_start(&up, NULL);
	co.port = tu_free_port();
	snprintf(conf_path, sizeof(conf_path), "%s/threads-%d.ini", tu_tmpdir(), getpid());
	snprintf(co.log, sizeof(co.log), "%s/threads-%d.log", tu_tmpdir(), getpid());
	write_conf(up.port, co.port, "");
	co.pid = tu_coalesced_spawn(args, co.log);
	end = tu_now() + tu_guard_ms(10000) / 1000.0;
	while ((fds[0] = tu_connect(co.port)) < 0 && tu_now() < end)
		tu_sleep_ms(20);
	ck_assert_int_ge(fds[0], 0);
	close(fds[0]);
	open_clients(co.port, fds, N);
	assert_spread(co.port, 2);
	/* Two keys a request, from now on, on every client. */
	write_conf(up.port, co.port, "max_keys_per_request = 2");
	kill(co.pid, SIGHUP);
	end = tu_now() + tu_guard_ms(10000) / 1000.0;
	while (!seen && tu_now() < end) {
		char *log = tu_read_file(co.log, NULL);
		seen = log && strstr(log, "configuration reloaded") != NULL;
		free(log);
		if (!seen)
			tu_sleep_ms(20);
	}
	ck_assert(seen);
	for (int i = 0; i < N; i++) {
		tu_sends(fds[i], "get a b c\r\n");
		r = tu_recv_until(fds[i], "\r\n", 5000, NULL);
		ck_assert_msg(strncmp(r, "CLIENT_ERROR", 12) == 0, "client %d: %s", i, r);
		free(r);
	}
	/* Slow answers in flight on every thread, then SIGTERM. */
	tu_fake_ctl(up.port, "fake_mode delay 400");
	for (int i = 0; i < N; i++) {
		char req[32];
		snprintf(req, sizeof(req), "get s%d\r\n", i);
		tu_sends(fds[i], req);
	}
	end = tu_now() + tu_guard_ms(10000) / 1000.0;
	while (tu_fake_stat(up.port, "keys") < N && tu_now() < end)
		tu_sleep_ms(10);
	kill(co.pid, SIGTERM);
	for (int i = 0; i < N; i++) {
		char want[64];
		snprintf(want, sizeof(want), "VALUE s%d 0 %d\r\nv:s%d\r\nEND\r\n", i,
		         i < 10 ? 4 : 5, i);
		r = tu_recv_until(fds[i], "END\r\n", 10000, NULL);
		ck_assert_str_eq(r, want);
		free(r);
		ck_assert(tu_closed(fds[i], 10000));
		close(fds[i]);
	}
	st = tu_wait(co.pid, 10000);
	ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0, "exit status %d", st);
	co.pid = 0;
	tu_stop(&up);
}
END_TEST

/* Whether co's log tells that its threads outnumber its CPUs: the warning
 * follows the start-up line; its absence is judged a while after that line. */
static bool warned_about_cpus(bool expect)
{
	double end = tu_now() + tu_guard_ms(5000) / 1000.0;
	bool started = false, warned = false;

	while (!warned && tu_now() < end) {
		char *log = tu_read_file(co.log, NULL);
		started = started || (log && strstr(log, "max_keys") != NULL);
		warned = log && strstr(log, "take turns") != NULL;
		free(log);
		if (started && !expect) {
			tu_sleep_ms(tu_guard_ms(200));
			log = tu_read_file(co.log, NULL);
			warned = log && strstr(log, "take turns") != NULL;
			free(log);
			break;
		}
		if (!warned)
			tu_sleep_ms(20);
	}
	ck_assert_msg(started, "no start-up line in %s", co.log);
	return warned;
}

/* co, on the first CPU this process may use only (taskset before any
 * wrapper such as valgrind, so that only the daemon is pinned). */
static void start_on_one_cpu(const char *servers, const char *threads)
{
	const char *opts[] = {threads, NULL};
	const char *old = getenv("COALESCED_WRAPPER");
	char *saved = old ? strdup(old) : NULL;
	char wrap[512];
	cpu_set_t set;
	int cpu = 0;

	ck_assert_int_eq(sched_getaffinity(0, sizeof(set), &set), 0);
	while (cpu < CPU_SETSIZE && !CPU_ISSET(cpu, &set))
		cpu++;
	ck_assert_int_lt(cpu, CPU_SETSIZE);
	snprintf(wrap, sizeof(wrap), "taskset -c %d %s", cpu, saved ? saved : "");
	setenv("COALESCED_WRAPPER", wrap, 1);
	tu_coalesced_start(&co, servers, opts);
	if (saved)
		setenv("COALESCED_WRAPPER", saved, 1);
	else
		unsetenv("COALESCED_WRAPPER");
	free(saved);
}

/* Two threads that may only run on one CPU take turns on it, slower than
 * one thread: the operator is told, and one thread is not warned about. */
START_TEST(warns_when_threads_outnumber_cpus)
{
	char servers[64];

	tu_fake_start(&up, NULL);
	snprintf(servers, sizeof(servers), "127.0.0.1:%d", up.port);
	start_on_one_cpu(servers, "server.threads=2");
	ck_assert_msg(warned_about_cpus(true), "no warning in %s", co.log);
	tu_stop_clean(&co);
	unlink(co.log); /* the next daemon may get the same port, so the same log */

	start_on_one_cpu(servers, "server.threads=1");
	ck_assert_msg(!warned_about_cpus(false), "warned with one thread: %s", co.log);
	tu_stop_clean(&co);
	tu_stop(&up);
}
END_TEST

Suite *threads_suite(void)
{
	Suite *s = suite_create("threads");
	TCase *tc = tcase_create("threads");

	tcase_set_timeout(tc, 60);
	tcase_add_loop_test(tc, hot_key_is_fetched_once_across_threads, 0, 2);
	tcase_add_loop_test(tc, read_after_write_across_threads, 0, 2);
	tcase_add_test(tc, stats_sum_every_thread);
	tcase_add_test(tc, max_clients_holds_for_the_process);
	tcase_add_test(tc, warns_when_threads_outnumber_cpus);
	tcase_add_test(tc, reload_and_stop_reach_every_thread);
	suite_add_tcase(s, tc);
	return s;
}
