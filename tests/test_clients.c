/*
 * clients: the memcached client libraries and tools people use, unchanged,
 * against coalesced in front of a real memcached: libmemcached's tools
 * (memcping, memcstat, memccat) and pymemcache. What they do on connect and
 * how they parse `version` and `stats` replies is what decides whether an
 * operator can put coalesced in front of memcached at all.
 */
#include "testutil.h"
#include "version.h"

#include <check.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

/* Debian's python, where python3-pymemcache installs. */
#define PYTHON "/usr/bin/python3"

static struct proc mc, co;

static void start(void)
{
	char servers[64];
	const char *opts[] = {NULL};

	tu_memcached_start(&mc, 0);
	snprintf(servers, sizeof(servers), "127.0.0.1:%d", mc.port);
	tu_coalesced_start(&co, servers, opts);
	tu_mc_set(mc.port, "greeting", 7, "hello", 5);
}

static void stop(void)
{
	tu_stop_clean(&co);
	tu_stop(&mc);
}

/* Run a shell command (bounded by timeout(1)); its exit status, and its
 * output (stdout and stderr) in out. */
static int run(char *out, size_t cap, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int run(char *out, size_t cap, const char *fmt, ...)
{
	char cmd[2048], full[2200];
	va_list ap;
	FILE *f;
	size_t n = 0;
	int st;

	va_start(ap, fmt);
	vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	snprintf(full, sizeof(full), "timeout 30 %s 2>&1", cmd);
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

START_TEST(libmemcached_tools_accept_version_and_stats)
{
	static char out[65536];
	int rc;

	start();
	rc = run(out, sizeof(out), "memcping --servers=127.0.0.1:%d", co.port);
	ck_assert_msg(rc == 0, "memcping failed (%d): %s", rc, out);
	rc = run(out, sizeof(out), "memcstat --servers=127.0.0.1:%d", co.port);
	ck_assert_msg(rc == 0, "memcstat failed (%d): %s", rc, out);
	ck_assert_msg(strstr(out, "get_keys") != NULL, "memcstat printed no stats: %s", out);
	rc = run(out, sizeof(out), "memccat --servers=127.0.0.1:%d greeting", co.port);
	ck_assert_msg(rc == 0, "memccat failed (%d): %s", rc, out);
	ck_assert_msg(strstr(out, "hello") != NULL, "memccat: %s", out);
	stop();
}
END_TEST

START_TEST(pymemcache_reads_version_and_stats)
{
	static char out[8192];
	int rc;

	start();
	rc = run(out, sizeof(out),
	         PYTHON " -c \"from pymemcache.client.base import Client; "
	                "c = Client(('127.0.0.1', %d)); "
	                "print(c.version().decode()); "
	                "print(c.get('greeting').decode()); "
	                "print(c.get_many(['greeting', 'nosuch'])); "
	                "s = c.stats(); print('keys', s[b'get_keys']); "
	                "print('settings', len(c.stats('settings'))); "
	                "print('items', c.stats('items')); print('slabs', c.stats('slabs'))\"",
	         co.port);
	ck_assert_msg(rc == 0, "pymemcache failed (%d): %s", rc, out);
	ck_assert_msg(strstr(out, COALESCED_MC_VERSION "\n") != NULL, "%s", out);
	ck_assert_msg(strstr(out, "hello\n") != NULL, "%s", out);
	ck_assert_msg(strstr(out, "{'greeting': b'hello'}") != NULL, "%s", out);
	ck_assert_msg(strstr(out, "items {}") != NULL, "%s", out);
	stop();
}
END_TEST

/* Exporters poll `stats settings`, `items`, `slabs` and `conns` and expect
 * an END-terminated reply, not ERROR. */
START_TEST(stats_subcommands_end_with_end)
{
	static const char *const sub[] = {"settings", "items", "slabs", "conns", "sizes"};

	start();
	for (size_t i = 0; i < sizeof(sub) / sizeof(sub[0]); i++) {
		char req[64];
		char *r;
		snprintf(req, sizeof(req), "stats %s\r\n", sub[i]);
		r = tu_roundtrip(co.port, req, 3000);
		ck_assert_ptr_nonnull(r);
		ck_assert_msg(strlen(r) >= 5 && strcmp(r + strlen(r) - 5, "END\r\n") == 0,
		              "stats %s: %s", sub[i], r);
		ck_assert_msg(strstr(r, "ERROR") == NULL, "stats %s: %s", sub[i], r);
		if (strcmp(sub[i], "settings") == 0) {
			ck_assert_msg(strstr(r, "STAT maxconns 4096\r\n") != NULL, "%s", r);
			ck_assert_msg(strstr(r, "STAT batch.leeway_ms 0\r\n") != NULL, "%s", r);
			ck_assert_msg(strstr(r, "STAT upstream.protocol memcache\r\n") != NULL,
			              "%s", r);
		}
		if (strcmp(sub[i], "conns") == 0)
			ck_assert_msg(strstr(r, ":state conn_") != NULL, "%s", r);
		free(r);
	}
	/* A sub-command memcached does not know still gets its ERROR. */
	{
		char *r = tu_roundtrip(co.port, "stats nosuch\r\n", 3000);
		ck_assert_str_eq(r, "ERROR\r\n");
		free(r);
	}
	stop();
}
END_TEST

/* A stats reply of any length: many connections make `stats conns` long. */
START_TEST(long_stats_replies_are_whole)
{
	enum { N = 200 };
	int fds[N];
	char *r;
	size_t lines = 0;

	start();
	for (int i = 0; i < N; i++) {
		fds[i] = tu_connect(co.port);
		ck_assert_int_ge(fds[i], 0);
	}
	r = tu_roundtrip(co.port, "stats conns\r\n", 5000);
	ck_assert_ptr_nonnull(r);
	for (char *p = r; (p = strstr(p, ":state ")); p++)
		lines++;
	ck_assert_uint_ge(lines, N);
	ck_assert_msg(strcmp(r + strlen(r) - 5, "END\r\n") == 0, "no END");
	free(r);
	for (int i = 0; i < N; i++)
		close(fds[i]);
	stop();
}
END_TEST

Suite *clients_suite(void)
{
	Suite *s = suite_create("clients");
	TCase *tc = tcase_create("clients");

	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, libmemcached_tools_accept_version_and_stats);
	tcase_add_test(tc, pymemcache_reads_version_and_stats);
	tcase_add_test(tc, stats_subcommands_end_with_end);
	tcase_add_test(tc, long_stats_replies_are_whole);
	suite_add_tcase(s, tc);
	return s;
}
