/*
 * conformance: the bytes a client receives through coalesced equal what a
 * real memcached sends for the same input and data (DESIGN section 3). The
 * same memcached is both the oracle and the upstream, so cas values match.
 */
#include "testutil.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static struct proc mc, co;

static void setup(void)
{
	char servers[64], big[300];
	char *mb = malloc(1048576);

	tu_memcached_start(&mc, 0);
	snprintf(servers, sizeof(servers), "127.0.0.1:%d", mc.port);
	tu_coalesced_start(&co, servers, NULL);
	tu_mc_set(mc.port, "a", 5, "abc", 3);
	tu_mc_set(mc.port, "b", 0, "", 0);
	tu_mc_set(mc.port, "crlf", 42, "x\r\nEND\r\ny", 9);
	tu_mc_set(mc.port, "flags", 4294967295u, "max", 3);
	tu_mc_set(mc.port, "utf8-\xc3\xa9t\xc3\xa9", 1, "summer", 6);
	memset(big, 'k', 250);
	big[250] = '\0';
	tu_mc_set(mc.port, big, 7, "long key", 8);
	for (size_t i = 0; i < 1048576; i++)
		mb[i] = (char)('a' + i % 26);
	tu_mc_set(mc.port, "mega", 9, mb, 1048576);
	free(mb);
}

static void teardown(void)
{
	tu_stop_clean(&co);
	tu_stop(&mc);
}

struct outcome {
	char *bytes;
	size_t len;
	bool closed;
};

/*
 * Send input on a fresh connection; read until closed or quiet. With want
 * (memcached's outcome), first wait as long as a hang guard allows for as
 * many bytes and, if memcached closed, for the close: a slow coalesced
 * (valgrind, a loaded machine) must not look like one that answers less.
 */
static struct outcome exchange(int port, const char *in, size_t len, const struct outcome *want)
{
	struct outcome o;
	int fd = tu_connect(port);

	ck_assert_int_ge(fd, 0);
	tu_send(fd, in, len);
	o.bytes = tu_recv_reply(fd, want ? want->len : 0, 250, 8000, &o.len);
	o.closed = tu_closed(fd, want && want->closed ? 8000 : 50);
	close(fd);
	return o;
}

static void printable(const char *b, size_t len, char *out, size_t cap)
{
	size_t n = 0;
	for (size_t i = 0; i < len && n + 5 < cap; i++) {
		unsigned char c = (unsigned char)b[i];
		if (c >= 0x20 && c < 0x7f && c != '\\')
			out[n++] = (char)c;
		else
			n += (size_t)snprintf(out + n, cap - n, "\\x%02x", c);
	}
	out[n] = '\0';
}

static void same(const char *in, size_t len)
{
	struct outcome want = exchange(mc.port, in, len, NULL);
	struct outcome got = exchange(co.port, in, len, &want);
	char a[600], b[600], i[300];

	printable(in, len < 100 ? len : 100, i, sizeof(i));
	/* Guard against a vacuous pass: the oracle always says something or hangs up. */
	ck_assert_msg(want.len > 0 || want.closed,
	              "input '%s': memcached neither answered nor closed", i);
	printable(want.bytes, want.len < 120 ? want.len : 120, a, sizeof(a));
	printable(got.bytes, got.len < 120 ? got.len : 120, b, sizeof(b));
	ck_assert_msg(want.len == got.len && memcmp(want.bytes, got.bytes, want.len) == 0,
	              "input '%s': memcached sent %zu bytes '%s', coalesced %zu bytes '%s'", i,
	              want.len, a, got.len, b);
	ck_assert_msg(want.closed == got.closed, "input '%s': memcached %s, coalesced %s", i,
	              want.closed ? "closed" : "kept open", got.closed ? "closed" : "kept open");
	free(want.bytes);
	free(got.bytes);
}

#define SAME(lit) same(lit, sizeof(lit) - 1)

START_TEST(get_basics)
{
	SAME("get a\r\n");
	SAME("get a\n");
	SAME("gets a\r\n");
	SAME("get nosuch\r\n");
	SAME("get a b a nosuch\r\n");
	SAME("gets a b a nosuch\r\n");
	SAME("get  a   b\r\n");
	SAME("get a \r\n");
	SAME(" get a\r\n");
	SAME("bget a\r\n");
	SAME("get flags\r\n");
	SAME("get utf8-\xc3\xa9t\xc3\xa9\r\n");
}
END_TEST

START_TEST(values_with_crlf_empty_and_large)
{
	SAME("get b\r\n");
	SAME("gets b\r\n");
	SAME("get crlf\r\n");
	SAME("get crlf b crlf\r\n");
	SAME("get mega\r\n");
	SAME("gets mega a mega\r\n");
}
END_TEST

START_TEST(key_lengths)
{
	char line[800];
	char k250[251], k251[252];

	memset(k250, 'k', 250);
	k250[250] = '\0';
	memset(k251, 'k', 251);
	k251[251] = '\0';
	snprintf(line, sizeof(line), "get %s\r\n", k250);
	same(line, strlen(line));
	snprintf(line, sizeof(line), "gets %s a\r\n", k250);
	same(line, strlen(line));
	snprintf(line, sizeof(line), "get %s\r\n", k251);
	same(line, strlen(line));
	snprintf(line, sizeof(line), "get a %s b\r\n", k251);
	same(line, strlen(line));
	/* memcached keeps the first reply here too (gets flush at once). */
	snprintf(line, sizeof(line), "get a\r\nget %s\r\nget b\r\n", k251);
	same(line, strlen(line));
}
END_TEST

START_TEST(errors_and_unknown_commands)
{
	SAME("get\r\n");
	SAME("gets\r\n");
	SAME("get \r\n");
	SAME("\r\n");
	SAME("\n");
	SAME("   \r\n");
	SAME("GET a\r\n");
	SAME("get\ta\r\n");
	SAME("foo\r\n");
	SAME("foo bar baz\r\n");
	SAME("x\r\n");
	SAME("ver\0sion\r\n");
	SAME("get\0 a\r\n");
	SAME("stats nosuch\r\n");
	SAME("mz\r\n");
	SAME("foo HTTP\r\n");
	SAME("GET a HTTP/1.0 b\r\n");
}
END_TEST

START_TEST(pipelining_keeps_order)
{
	SAME("get a\r\nget b\r\nget nosuch\r\ngets a\r\n");
	SAME("get a\r\nfoo\r\nget b\r\n");
	SAME("\r\nget a\r\n");
	SAME("get a\r\n\r\n");
	SAME("get a\r\nget b\r\nget crlf\r\nget mega\r\nget a\r\n");
}
END_TEST

START_TEST(closing_rules)
{
	char buf[4000];

	SAME("quit\r\n");
	SAME("quit x\r\n");
	SAME("get a\r\nquit\r\nget b\r\n");
	SAME("GET / HTTP/1.1\r\n");
	SAME("foo HTTP/\r\n");
	SAME("get a\r\nGET / HTTP/1.1\r\n");
	/* More than 2048 bytes without a newline: closed. */
	memset(buf, 'x', 3000);
	same(buf, 3000);
	/* ...unless the newline is there. */
	memcpy(buf + 3000, "\r\n", 2);
	same(buf, 3002);
	/* ...or it is a multi-get. */
	memcpy(buf, "get ", 4);
	for (int i = 4; i < 3000; i += 2)
		memcpy(buf + i, "a ", 2);
	memcpy(buf + 3000, "\r\n", 2);
	same(buf, 3002);
}
END_TEST

START_TEST(long_multiget)
{
	size_t n = 0, cap = 30000;
	char *line = malloc(cap);

	n += (size_t)snprintf(line, cap, "get");
	for (int i = 0; i < 2000; i++)
		n += (size_t)snprintf(line + n, cap - n, " %s",
		                      i % 3 == 0   ? "a"
		                      : i % 3 == 1 ? "nosuch"
		                                   : "crlf");
	n += (size_t)snprintf(line + n, cap - n, "\r\n");
	same(line, n);
	free(line);
}
END_TEST

Suite *conformance_suite(void)
{
	Suite *s = suite_create("conformance");
	TCase *tc = tcase_create("against memcached");

	tcase_set_timeout(tc, 120);
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, get_basics);
	tcase_add_test(tc, values_with_crlf_empty_and_large);
	tcase_add_test(tc, key_lengths);
	tcase_add_test(tc, errors_and_unknown_commands);
	tcase_add_test(tc, pipelining_keeps_order);
	tcase_add_test(tc, closing_rules);
	tcase_add_test(tc, long_multiget);
	suite_add_tcase(s, tc);
	return s;
}
