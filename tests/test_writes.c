/*
 * writes: memcached writes pass through coalesced (DESIGN 9) — byte for byte
 * as memcached answers them even when the input arrives in pieces, with
 * read-your-writes under concurrent load, never sent twice, bounded, and
 * usable unchanged by the real clients (pymemcache, pylibmc, libmemcached's
 * tools and its conformance checker memccapable).
 */
#include "testutil.h"

#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#define PYTHON "/usr/bin/python3"

static struct proc mc, co;

static void start(const char *const *opts)
{
	char servers[64];

	tu_memcached_start(&mc, 0);
	snprintf(servers, sizeof(servers), "127.0.0.1:%d", mc.port);
	tu_coalesced_start(&co, servers, opts);
}

static void stop(void)
{
	tu_stop_clean(&co);
	tu_stop(&mc);
}

/* SIGSTOP takes effect asynchronously: wait until the process is stopped. */
static void freeze(pid_t pid)
{
	char path[64];
	double end = tu_now() + 5;

	kill(pid, SIGSTOP);
	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	while (tu_now() < end) {
		char *st = tu_read_file(path, NULL);
		char *p = st ? strrchr(st, ')') : NULL;
		bool stopped = p && (p[2] == 'T' || p[2] == 't');
		free(st);
		if (stopped)
			return;
		tu_sleep_ms(5);
	}
	ck_abort_msg("process %d did not stop", (int)pid);
}

/* Send in pieces of 1 to 7 bytes, pausing now and then, so that lines and
 * data blocks are split everywhere across reads. */
static void send_in_pieces(int fd, const char *p, size_t len, unsigned seed)
{
	size_t off = 0;

	while (off < len) {
		size_t n = 1 + (size_t)(rand_r(&seed) % 7);
		if (n > len - off)
			n = len - off;
		tu_send(fd, p + off, n);
		off += n;
		if (rand_r(&seed) % 8 == 0)
			tu_sleep_ms(1);
	}
}

/* The script's replies from a memcached and through coalesced (in front of
 * another memcached), the script fed in pieces: the same bytes. */
START_TEST(writes_split_across_reads_match_memcached)
{
	static const char script[] = "set a 5 0 3\r\nabc\r\n"
	                             "set b 0 0 0\r\n\r\n"
	                             "add a 0 0 1\r\nx\r\n"
	                             "add c 7 0 5 noreply\r\nhello\r\n"
	                             "replace c 8 0 2\r\nhi\r\n"
	                             "append a 0 0 2\r\nde\r\n"
	                             "prepend a 0 0 2\r\nzz\r\n"
	                             "gets a b c\r\n"
	                             "cas a 0 0 1 999\r\nq\r\n"
	                             "set n 0 0 2\r\n10\r\n"
	                             "incr n 5\r\ndecr n 100\r\nincr a 1\r\nincr nope 1\r\n"
	                             "touch a 0\r\ntouch nope 0\r\n"
	                             "gat 0 a n nope\r\n"
	                             "delete b\r\ndelete b\r\ndelete c noreply\r\n"
	                             "set crlf 0 0 9\r\nx\r\nEND\r\ny\r\n"
	                             "get crlf a b c n\r\n"
	                             "set bad 0 0 3\r\nabcde\r\n"
	                             "ms m 3 T0 F4\r\nxyz\r\n"
	                             "mg m v f s k Ox\r\n"
	                             "mg m v t\r\n"
	                             "mg nope v q\r\nmg nope k Oy\r\n"
	                             "md m q\r\nmd m\r\n"
	                             "ma n\r\nma n v D10\r\n"
	                             "mn\r\n"
	                             "verbosity 1\r\nverbosity 1 noreply\r\n"
	                             "get n\r\n";
	struct proc mc2;
	char *want, *got;
	size_t wl, gl;
	int fd;

	start(NULL);
	tu_memcached_start(&mc2, 0);
	fd = tu_connect(mc2.port);
	send_in_pieces(fd, script, sizeof(script) - 1, 1);
	want = tu_recv_all(fd, 300, 10000, &wl);
	close(fd);
	fd = tu_connect(co.port);
	send_in_pieces(fd, script, sizeof(script) - 1, 2);
	got = tu_recv_all(fd, 300, 10000, &gl);
	close(fd);
	ck_assert_uint_gt(wl, 100);
	ck_assert_msg(wl == gl && memcmp(want, got, wl) == 0, "memcached:\n%s\ncoalesced:\n%s",
	              want, got);
	free(want);
	free(got);
	tu_stop(&mc2);
	stop();
}
END_TEST

/*
 * Read-your-writes, randomized: clients read and write a few hot keys at
 * once. Each key has at most one write in flight, its values increasing, so
 * the last write acknowledged before a get was sent is known exactly; the
 * get must return that value or a later one, never an older one. Gets of a
 * 1 MiB value share batches with the hot keys and keep those fetches in
 * flight for a while: the window a write must not slip through.
 */
enum { RYW_CLIENTS = 24, RYW_KEYS = 2, RYW_BIG = 1 << 20 };

struct ryw_client {
	int fd;
	bool busy, is_set, is_big;
	int key;
	long seq;   /* set: the value written */
	long floor; /* get: the last value acknowledged when it was sent */
	char *buf;
	size_t len;
};

START_TEST(read_your_writes_randomized)
{
	const char *opts[] = {"batch.leeway_ms=1", "upstream.connections=2", NULL};
	struct ryw_client cl[RYW_CLIENTS];
	long acked[RYW_KEYS] = {0}, seq = 0, gets = 0, sets = 0;
	bool writing[RYW_KEYS] = {false};
	unsigned seed = 12345;
	char *big = malloc(RYW_BIG);
	double end;

	ck_assert_ptr_nonnull(big);
	memset(big, 'b', RYW_BIG);
	start(opts);
	tu_mc_set(mc.port, "big", 0, big, RYW_BIG);
	free(big);
	for (int k = 0; k < RYW_KEYS; k++) {
		char key[16];
		snprintf(key, sizeof(key), "hot%d", k);
		tu_mc_set(mc.port, key, 0, "0", 1);
	}
	for (int i = 0; i < RYW_CLIENTS; i++) {
		memset(&cl[i], 0, sizeof(cl[i]));
		cl[i].fd = tu_connect(co.port);
		ck_assert_int_ge(cl[i].fd, 0);
		cl[i].buf = malloc(RYW_BIG + 256);
		ck_assert_ptr_nonnull(cl[i].buf);
	}
	end = tu_now() + 4;
	while (tu_now() < end && gets < 200000) {
		struct pollfd pfd[RYW_CLIENTS];
		for (int i = 0; i < RYW_CLIENTS; i++) {
			struct ryw_client *c = &cl[i];
			char req[96];
			if (!c->busy) {
				unsigned r = rand_r(&seed) % 20;
				c->key = (int)(rand_r(&seed) % RYW_KEYS);
				c->is_set = r < 3 && !writing[c->key];
				c->is_big = !c->is_set && r >= 15;
				if (c->is_set) {
					char val[24];
					int n = snprintf(val, sizeof(val), "%ld", ++seq);
					c->seq = seq;
					writing[c->key] = true;
					snprintf(req, sizeof(req), "set hot%d 0 0 %d\r\n%s\r\n",
					         c->key, n, val);
				} else if (c->is_big) {
					snprintf(req, sizeof(req), "get big\r\n");
				} else {
					c->floor = acked[c->key];
					snprintf(req, sizeof(req), "get hot%d\r\n", c->key);
				}
				tu_sends(c->fd, req);
				c->busy = true;
				c->len = 0;
			}
			pfd[i].fd = c->fd;
			pfd[i].events = POLLIN;
		}
		if (poll(pfd, RYW_CLIENTS, 1000) <= 0)
			continue;
		for (int i = 0; i < RYW_CLIENTS; i++) {
			struct ryw_client *c = &cl[i];
			ssize_t n;
			if (!(pfd[i].revents & POLLIN))
				continue;
			ck_assert_uint_lt(c->len, RYW_BIG + 255);
			n = recv(c->fd, c->buf + c->len, RYW_BIG + 255 - c->len, 0);
			ck_assert_msg(n > 0, "connection lost");
			c->len += (size_t)n;
			c->buf[c->len] = '\0';
			if (c->is_set) {
				if (strcmp(c->buf, "STORED\r\n") != 0)
					continue;
				acked[c->key] = c->seq;
				writing[c->key] = false;
				sets++;
			} else {
				long v;
				if (c->len < 5 || strcmp(c->buf + c->len - 5, "END\r\n") != 0)
					continue;
				if (!c->is_big) {
					ck_assert_msg(
					    sscanf(c->buf, "VALUE hot%*d 0 %*d\r\n%ld", &v) == 1,
					    "get reply: %.100s", c->buf);
					ck_assert_msg(
					    v >= c->floor,
					    "get of hot%d sent after the write of %ld was "
					    "acknowledged returned %ld",
					    c->key, c->floor, v);
					gets++;
				}
			}
			c->busy = false;
		}
	}
	ck_assert_msg(gets > 1000 && sets > 100, "too little traffic: %ld gets, %ld sets", gets,
	              sets);
	/* The situation the guarantee is about did occur. */
	ck_assert_int_gt(tu_stat(co.port, "keys_coalesced"), 0);
	for (int i = 0; i < RYW_CLIENTS; i++) {
		close(cl[i].fd);
		free(cl[i].buf);
	}
	stop();
}
END_TEST

/*
 * Read-your-writes, deterministic: a fetch of k is held up upstream (the
 * fake delays every get); a write of k completes meanwhile on another
 * upstream connection; a read of k sent after that must start a fetch of its
 * own, not join the one that began before the write.
 */
/* A new client of coalesced (for tu_ryw_try). */
static int new_client(void *arg)
{
	(void)arg;
	return tu_connect(co.port);
}

START_TEST(read_after_acknowledged_write_does_not_join_an_older_fetch)
{
	struct proc fake;
	const char *opts[] = {"upstream.connections=2", NULL};
	bool tried = false;

	tu_stack_start(&fake, &co, NULL, opts);
	/* A write goes on the upstream connection of its client's lane: try
	 * writers until one lands beside the held fetch, not behind it. */
	for (int attempt = 0; attempt < 6 && !tried; attempt++)
		tried = tu_ryw_try(fake.port, tu_connect(co.port), tu_connect(co.port), new_client,
		                   NULL);
	ck_assert_msg(tried, "no write landed beside the held fetch");
	ck_assert_int_ge(tu_stat(co.port, "reads_after_write"), 1);
	tu_stack_stop(&fake, &co);
}
END_TEST

/* A read pipelined after a write on the same connection sees the write. */
START_TEST(read_after_write_on_one_connection)
{
	const char *opts[] = {"batch.leeway_ms=5", NULL};
	int fd;
	char *r;

	start(opts);
	tu_mc_set(mc.port, "k", 0, "old", 3);
	fd = tu_connect(co.port);
	for (int i = 0; i < 50; i++) {
		char req[128], want[128];
		snprintf(req, sizeof(req), "get k\r\nset k 0 0 4\r\nv%03d\r\nget k\r\n", i);
		tu_sends(fd, req);
		/* The first get may see the old value; the second must not. */
		snprintf(want, sizeof(want), "STORED\r\nVALUE k 0 4\r\nv%03d\r\nEND\r\n", i);
		r = tu_recv_until(fd, want, 5000, NULL);
		ck_assert_msg(strstr(r, want) != NULL, "%s", r);
		free(r);
	}
	close(fd);
	stop();
}
END_TEST

START_TEST(memccapable_passes_every_ascii_test)
{
	static char out[16384];
	const char *opts[] = {"server.allow_flush=yes", NULL};
	int rc;

	start(opts);
	rc = tu_run(out, sizeof(out), 60, "memccapable -h 127.0.0.1 -p %d -a", co.port);
	ck_assert_msg(rc == 0 && strstr(out, "All tests passed"), "memccapable (%d):\n%s", rc, out);
	ck_assert_msg(strstr(out, "[fail]") == NULL, "%s", out);
	stop();
}
END_TEST

/* The cache-aside pattern with pymemcache's defaults: set is noreply. */
START_TEST(pymemcache_cache_aside)
{
	static char out[8192];
	int rc;

	start(NULL);
	rc = tu_run(out, sizeof(out), 60,
	            PYTHON " -c \"from pymemcache.client.base import Client\n"
	                   "c = Client(('127.0.0.1', %d))\n"
	                   "db = 0\n"
	                   "for i in range(5):\n"
	                   "    v = c.get('user:1')\n"
	                   "    if v is None:\n"
	                   "        db += 1\n"
	                   "        c.set('user:1', b'ada')\n"
	                   "print('db', db)\n"
	                   "print(c.get_many(['user:1', 'nope']))\n"
	                   "c.set('n', 1, noreply=False)\n"
	                   "print('incr', c.incr('n', 4))\n"
	                   "print('add', c.add('n', 9, noreply=False))\n"
	                   "print('delete', c.delete('n', noreply=False))\n"
	                   "print('gets', c.gets('user:1')[0])\n"
	                   "print('touch', c.touch('user:1', 100, noreply=False))\"",
	            co.port);
	ck_assert_msg(rc == 0, "pymemcache (%d): %s", rc, out);
	ck_assert_msg(strstr(out, "db 1\n"), "five reads made more than one database query: %s",
	              out);
	ck_assert_msg(strstr(out, "{'user:1': b'ada'}"), "%s", out);
	ck_assert_msg(strstr(out, "incr 5\nadd False\ndelete True\ngets b'ada'\ntouch True\n"),
	              "%s", out);
	stop();
}
END_TEST

START_TEST(pylibmc_and_libmemcached_tools)
{
	static char out[8192];
	char dir[256];
	int rc;

	start(NULL);
	rc = tu_run(out, sizeof(out), 60,
	            PYTHON " -c \"import pylibmc\n"
	                   "c = pylibmc.Client(['127.0.0.1:%d'])\n"
	                   "c.set('a', 'one'); c.set('b', 2)\n"
	                   "print(c.get('a'), c.get('b'), c.get_multi(['a', 'b', 'x']))\n"
	                   "print(c.incr('b', 3), c.delete('a'), c.get('a'))\"",
	            co.port);
	ck_assert_msg(rc == 0 && strstr(out, "one 2 {'a': 'one', 'b': 2}\n5 True None\n"),
	              "pylibmc (%d): %s", rc, out);

	snprintf(dir, sizeof(dir), "%s/memccp", tu_tmpdir());
	rc = tu_run(out, sizeof(out), 60,
	            "sh -c 'mkdir -p %s && cd %s && printf hello > file1 && "
	            "memccp --servers=127.0.0.1:%d file1 && "
	            "memccat --servers=127.0.0.1:%d file1 && "
	            "memcexist --servers=127.0.0.1:%d file1 && echo exists && "
	            "memctouch --servers=127.0.0.1:%d --expire=100 file1 && echo touched && "
	            "memcrm --servers=127.0.0.1:%d file1 && echo removed && "
	            "! memcexist --servers=127.0.0.1:%d file1 && echo gone && "
	            "memcstat --servers=127.0.0.1:%d | grep -c cmd_set'",
	            dir, dir, co.port, co.port, co.port, co.port, co.port, co.port, co.port);
	ck_assert_msg(rc == 0 && strstr(out, "hello\nexists\ntouched\nremoved\ngone\n1\n"),
	              "libmemcached tools (%d): %s", rc, out);
	stop();
}
END_TEST

/* flush_all: refused by default; allowed, sent to every server. */
START_TEST(flush_all_goes_to_every_server_when_allowed)
{
	struct proc mc2;
	char servers[128];
	const char *on[] = {"server.allow_flush=yes", NULL};
	char *r;

	tu_memcached_start(&mc, 0);
	tu_memcached_start(&mc2, 0);
	snprintf(servers, sizeof(servers), "127.0.0.1:%d,127.0.0.1:%d", mc.port, mc2.port);
	tu_coalesced_start(&co, servers, NULL);
	r = tu_roundtrip(co.port, "flush_all\r\n", 3000);
	ck_assert_str_eq(r, "SERVER_ERROR not supported\r\n");
	free(r);
	tu_stop_clean(&co);

	tu_coalesced_start(&co, servers, on);
	tu_mc_set(mc.port, "x", 0, "1", 1);
	tu_mc_set(mc2.port, "y", 0, "2", 1);
	r = tu_roundtrip(co.port, "flush_all\r\n", 3000);
	ck_assert_str_eq(r, "OK\r\n");
	free(r);
	/* memcached forgets flushed items lazily: ask for them. */
	r = tu_roundtrip(mc.port, "get x\r\n", 3000);
	ck_assert_str_eq(r, "END\r\n");
	free(r);
	r = tu_roundtrip(mc2.port, "get y\r\n", 3000);
	ck_assert_str_eq(r, "END\r\n");
	free(r);
	ck_assert_int_eq(tu_stat(co.port, "cmd_flush"), 1);
	/* One server gone: not OK, and which trouble it was. */
	tu_stop(&mc2);
	r = tu_roundtrip(co.port, "flush_all\r\n", 5000);
	ck_assert_msg(strncmp(r, "SERVER_ERROR upstream ", 22) == 0, "%s", r);
	free(r);
	stop();
}
END_TEST

/* max_value_bytes: memcached's error, the stream in sync, the old value gone. */
START_TEST(values_over_max_value_bytes_are_refused_in_sync)
{
	const char *opts[] = {"server.max_value_bytes=10", NULL};
	int fd;
	char *r;

	start(opts);
	tu_mc_set(mc.port, "k", 0, "old", 3);
	fd = tu_connect(co.port);
	tu_sends(fd, "set k 0 0 11\r\nhello world\r\nget k\r\nset k 0 0 10\r\n0123456789\r\n"
	             "get k\r\n");
	r = tu_recv_until(fd, "0123456789\r\nEND\r\n", 5000, NULL);
	ck_assert_str_eq(r, "SERVER_ERROR object too large for cache\r\nEND\r\nSTORED\r\n"
	                    "VALUE k 0 10\r\n0123456789\r\nEND\r\n");
	free(r);
	close(fd);
	stop();
}
END_TEST

/* The upstream dies between receiving a write and answering it: one clear
 * error, and the write is not sent again, not even to the server that
 * comes back on the same port. */
START_TEST(write_lost_with_its_connection_is_not_resent)
{
	const char *opts[] = {"upstream.retries=2", "upstream.timeout_ms=5000", NULL};
	int fd, port;
	char *r;

	start(opts);
	port = mc.port;
	fd = tu_connect(co.port);
	tu_sends(fd, "get warm\r\n");
	free(tu_recv_until(fd, "END\r\n", 3000, NULL));
	freeze(mc.pid);
	tu_sends(fd, "set k 0 0 1\r\nx\r\n");
	tu_sleep_ms(300);
	kill(mc.pid, SIGKILL);
	tu_wait(mc.pid, 5000);
	r = tu_recv_until(fd, "\r\n", 5000, NULL);
	ck_assert_str_eq(r, "SERVER_ERROR upstream unavailable\r\n");
	free(r);
	tu_memcached_start(&mc, port);
	tu_sleep_ms(1500); /* room for a reconnect that would resend */
	ck_assert_int_eq(tu_stat(mc.port, "cmd_set"), 0);
	tu_sends(fd, "set k 0 0 1\r\ny\r\n");
	r = tu_recv_until(fd, "\r\n", 5000, NULL);
	ck_assert_str_eq(r, "STORED\r\n");
	free(r);
	close(fd);
	ck_assert_int_ge(tu_stat(co.port, "write_errors"), 1);
	stop();
}
END_TEST

/* A write to a frozen server times out; once the server thaws it applies
 * the write exactly once. */
START_TEST(write_to_stopped_server_times_out_and_applies_once)
{
	const char *opts[] = {"upstream.timeout_ms=300", NULL};
	char *r;

	start(opts);
	freeze(mc.pid);
	r = tu_roundtrip(co.port, "incr n 1\r\n", 5000);
	kill(mc.pid, SIGCONT);
	ck_assert_str_eq(r, "SERVER_ERROR upstream timeout\r\n");
	free(r);
	tu_sleep_ms(200);
	ck_assert_int_eq(tu_stat(mc.port, "cmd_touch") + tu_stat(mc.port, "incr_misses"), 1);
	/* The daemon carries on. */
	r = tu_roundtrip(co.port, "set n 0 0 1\r\n7\r\n", 3000);
	ck_assert_str_eq(r, "STORED\r\n");
	free(r);
	stop();
}
END_TEST

/* A client leaving in the middle of a data block: nothing of it is sent,
 * and other clients do not notice. */
START_TEST(client_leaving_mid_data_block_sends_nothing)
{
	int a, b;
	char *r;

	start(NULL);
	a = tu_connect(co.port);
	b = tu_connect(co.port);
	tu_sends(a, "set k 0 0 100\r\nonly part of it");
	tu_sleep_ms(100);
	close(a);
	tu_sends(b, "set j 0 0 1\r\ny\r\nget k j\r\n");
	r = tu_recv_until(b, "END\r\n", 3000, NULL);
	ck_assert_str_eq(r, "STORED\r\nVALUE j 0 1\r\ny\r\nEND\r\n");
	free(r);
	close(b);
	ck_assert_int_eq(tu_stat(mc.port, "cmd_set"), 1);
	stop();
}
END_TEST

/* A client writing faster than the upstream takes (here: not at all, the
 * server is frozen) is slowed by backpressure: coalesced stops reading it
 * instead of buffering the values. Once the server thaws every set is
 * applied exactly once and answered in order. */
START_TEST(writes_faster_than_upstream_are_held_back)
{
	enum { SETS = 2000, VLEN = 65536 };
	char tmo[64];
	const char *opts[] = {tmo, NULL};
	const size_t total = (size_t)SETS * (VLEN + 32);
	char *buf = malloc(total), want[] = "STORED\r\n", in[65536];
	size_t len = 0, sent = 0, got = 0;
	long rss0, rss1;
	double end;
	int fd;

	ck_assert_ptr_nonnull(buf);
	/* Hang guard only: no write may time out while the server is frozen. */
	snprintf(tmo, sizeof(tmo), "upstream.timeout_ms=%d", tu_guard_ms(60000));
	for (int i = 0; i < SETS; i++) {
		len += (size_t)snprintf(buf + len, total - len, "set wk%d 0 0 %d\r\n", i, VLEN);
		memset(buf + len, 'a' + i % 26, VLEN);
		len += VLEN;
		memcpy(buf + len, "\r\n", 2);
		len += 2;
	}
	tu_judging_rss();
	start(opts);
	rss0 = tu_rss_kib(co.pid);
	freeze(mc.pid);
	fd = tu_connect(co.port);
	fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
	/* A slow daemon only makes this take longer. */
	sent = tu_push_until_stall(fd, buf, len, len);
	ck_assert_msg(sent < len, "coalesced took all %zu bytes of sets for a frozen server", len);
	rss1 = tu_rss_kib(co.pid);
	ck_assert_msg(rss1 - rss0 < 64 * 1024, "RSS grew from %ld to %ld KiB with %zu bytes sent",
	              rss0, rss1, sent);
	kill(mc.pid, SIGCONT);
	/* The rest goes through; every reply is STORED, in order. */
	end = tu_now() + tu_guard_ms(120000) / 1000.0;
	while (got < (size_t)SETS * 8) {
		struct pollfd pf = {fd, POLLIN | (sent < len ? POLLOUT : 0), 0};
		ck_assert_msg(tu_now() < end, "%zu of %d replies after the thaw", got / 8, SETS);
		if (poll(&pf, 1, 100) <= 0)
			continue;
		if (pf.revents & POLLOUT) {
			ssize_t n = send(fd, buf + sent, len - sent, MSG_NOSIGNAL);
			if (n > 0)
				sent += (size_t)n;
		}
		if (pf.revents & (POLLIN | POLLHUP | POLLERR)) {
			ssize_t n = recv(fd, in, sizeof(in), 0);
			ck_assert_msg(n > 0, "connection closed after %zu replies", got / 8);
			for (ssize_t k = 0; k < n; k++, got++)
				ck_assert_msg(in[k] == want[got % 8], "reply %zu is not STORED",
				              got / 8);
		}
	}
	close(fd);
	ck_assert_int_eq(tu_stat(mc.port, "cmd_set"), SETS);
	ck_assert_int_eq(tu_stat(mc.port, "curr_items"), SETS);
	free(buf);
	stop();
}
END_TEST

START_TEST(write_counters)
{
	char *r;

	start(NULL);
	r = tu_roundtrip(co.port,
	                 "set a 0 0 1\r\n1\r\ntouch a 0\r\nincr a 1\r\ndecr a 1\r\ndelete a\r\n"
	                 "mn\r\nget a\r\n",
	                 3000);
	free(r);
	ck_assert_int_eq(tu_stat(co.port, "cmd_set"), 1);
	ck_assert_int_eq(tu_stat(co.port, "cmd_touch"), 1);
	ck_assert_int_eq(tu_stat(co.port, "cmd_incr"), 1);
	ck_assert_int_eq(tu_stat(co.port, "cmd_decr"), 1);
	ck_assert_int_eq(tu_stat(co.port, "cmd_delete"), 1);
	ck_assert_int_eq(tu_stat(co.port, "cmd_meta"), 1);
	ck_assert_int_eq(tu_stat(co.port, "writes_forwarded"), 5);
	stop();
}
END_TEST

Suite *writes_suite(void)
{
	Suite *s = suite_create("writes");
	TCase *tc = tcase_create("writes");

	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, writes_split_across_reads_match_memcached);
	tcase_add_test(tc, read_your_writes_randomized);
	tcase_add_test(tc, read_after_acknowledged_write_does_not_join_an_older_fetch);
	tcase_add_test(tc, read_after_write_on_one_connection);
	tcase_add_test(tc, memccapable_passes_every_ascii_test);
	tcase_add_test(tc, pymemcache_cache_aside);
	tcase_add_test(tc, pylibmc_and_libmemcached_tools);
	tcase_add_test(tc, flush_all_goes_to_every_server_when_allowed);
	tcase_add_test(tc, values_over_max_value_bytes_are_refused_in_sync);
	tcase_add_test(tc, write_lost_with_its_connection_is_not_resent);
	tcase_add_test(tc, write_to_stopped_server_times_out_and_applies_once);
	tcase_add_test(tc, client_leaving_mid_data_block_sends_nothing);
	tcase_add_test(tc, write_counters);
	tcase_add_test(tc, writes_faster_than_upstream_are_held_back);
	suite_add_tcase(s, tc);
	return s;
}
