/*
 * test_proto_mcreply: unit tests for the parser of memcached's reply lines
 * (the upstream side). It is strict on purpose: whatever it accepts is
 * trusted to frame a value shared by many clients, so every malformed VALUE
 * header must come back MCR_INVALID. Each line is handed over in a buffer of
 * exactly its length, so a sanitizer catches any read past it.
 */
#include <check.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proto_mcreply.h"

Suite *mcreply_suite(void);

struct rcase {
	const char *line;
	size_t len;
	enum mcr_kind kind;
	const char *key; /* MCR_VALUE */
	uint32_t flags;
	uint64_t bytes;
	uint64_t cas;
	const char *text; /* error and version lines; NULL: not checked */
};

/* A line literal (NULs included) without its terminator. */
#define LN(lit) (lit), sizeof(lit) - 1

#define K10 "kkkkkkkkkk"
#define K50 K10 K10 K10 K10 K10
#define K250 K50 K50 K50 K50 K50

#define NCASES(a) ((int)(sizeof(a) / sizeof((a)[0])))

/* Parse a private copy of exactly len bytes; the caller frees *copy after
 * looking at out, whose pointers lead into it. */
static enum mcr_kind parse_copy(const struct rcase *c, struct mcr_line *out, char **copy)
{
	*copy = malloc(c->len ? c->len : 1);
	ck_assert(*copy != NULL);
	memcpy(*copy, c->line, c->len);
	memset(out, 0xa5, sizeof(*out)); /* stale fields must not survive */
	return mcr_parse_line(*copy, c->len, out);
}

static void check_rcase(const struct rcase *c)
{
	struct mcr_line out;
	char *copy;
	enum mcr_kind k = parse_copy(c, &out, &copy);

	ck_assert_msg(k == c->kind, "\"%.40s\": kind %d, expected %d", c->line, k, c->kind);
	ck_assert_msg(out.kind == k, "\"%.40s\": out.kind %d differs from the result %d", c->line,
	              out.kind, k);
	if (c->kind == MCR_VALUE) {
		size_t kl = strlen(c->key);
		ck_assert_msg(out.keylen == kl && memcmp(out.key, c->key, kl) == 0,
		              "\"%.40s\": wrong key", c->line);
		ck_assert_msg(out.key >= copy && out.key + out.keylen <= copy + c->len,
		              "\"%.40s\": key outside the line", c->line);
		ck_assert_uint_eq(out.flags, c->flags);
		ck_assert_uint_eq(out.bytes, c->bytes);
		ck_assert_uint_eq(out.cas, c->cas);
	}
	if (c->text) {
		size_t tl = strlen(c->text);
		ck_assert_msg(out.textlen == tl && memcmp(out.text, c->text, tl) == 0,
		              "\"%.40s\": text is \"%.*s\", expected \"%s\"", c->line,
		              (int)out.textlen, out.text ? out.text : "", c->text);
	}
	free(copy);
}

/* ------------------------------------------------------------------------ */

static const struct rcase value_ok[] = {
    {LN("VALUE a 5 3 42"), MCR_VALUE, "a", 5, 3, 42, NULL},
    {LN("VALUE a 5 3 42\r"), MCR_VALUE, "a", 5, 3, 42, NULL}, /* the CR of CRLF */
    {LN("VALUE b 0 0 1"), MCR_VALUE, "b", 0, 0, 1, NULL},
    {LN("VALUE " K250 " 0 1 2"), MCR_VALUE, K250, 0, 1, 2, NULL},
    {LN("VALUE a 4294967295 1 2"), MCR_VALUE, "a", UINT32_MAX, 1, 2, NULL},
    {LN("VALUE a 0 18446744073709551615 2"), MCR_VALUE, "a", 0, UINT64_MAX, 2, NULL},
    {LN("VALUE a 0 1 18446744073709551615"), MCR_VALUE, "a", 0, 1, UINT64_MAX, NULL},
    {LN("VALUE a 007 010 0"), MCR_VALUE, "a", 7, 10, 0, NULL},
    /* UTF-8 keys travel as they are. */
    {LN("VALUE \xc3\xa9t\xc3\xa9 1 2 3"), MCR_VALUE, "\xc3\xa9t\xc3\xa9", 1, 2, 3, NULL},
    {LN("VALUE HTTP/1.1 1 2 3"), MCR_VALUE, "HTTP/1.1", 1, 2, 3, NULL},
};

START_TEST(test_value_line_fields)
{
	check_rcase(&value_ok[_i]);
}
END_TEST

static const struct rcase value_bad[] = {
    /* coalesced sends only gets: a VALUE without cas is not an answer to it */
    {LN("VALUE a 5 3"), MCR_INVALID, NULL, 0, 0, 0, NULL},
    {LN("VALUE a 5 3\r"), MCR_INVALID, NULL, 0, 0, 0, NULL},
    {LN("VALUE a 4294967296 1 2"), MCR_INVALID, NULL, 0, 0, 0, NULL},
    {LN("VALUE a 99999999999 1 2"), MCR_INVALID, NULL, 0, 0, 0, NULL},
    {LN("VALUE a 0 18446744073709551616 2"), MCR_INVALID, NULL, 0, 0, 0, NULL},
    {LN("VALUE a 0 99999999999999999999 2"), MCR_INVALID, NULL, 0, 0, 0, NULL},
    {LN("VALUE a 0 1 18446744073709551616"), MCR_INVALID, NULL, 0, 0, 0, NULL},
    {LN("VALUE " K250 "k 0 1 2"), MCR_INVALID, NULL, 0, 0, 0, NULL},
    {LN("VALUE a\x01"
        "b 0 1 2"),
     MCR_INVALID, NULL, 0, 0, 0, NULL},
    {LN("VALUE a\tb 0 1 2"), MCR_INVALID, NULL, 0, 0, 0, NULL},
    {LN("VALUE a\x7f 0 1 2"), MCR_INVALID, NULL, 0, 0, 0, NULL},
    {LN("VALUE a\0b 0 1 2"), MCR_INVALID, NULL, 0, 0, 0, NULL},
    {LN("VALUE a\rb 0 1 2"), MCR_INVALID, NULL, 0, 0, 0, NULL},
    {LN("VALUE a 0 1 2 3"), MCR_INVALID, NULL, 0, 0, 0, NULL},
    {LN("VALUE a 0 1 2 "), MCR_INVALID, NULL, 0, 0, 0, NULL},
    {LN("VALUE a 0 1 2x"), MCR_INVALID, NULL, 0, 0, 0, NULL},
    {LN("VALUE a 0 1 2\r\r"), MCR_INVALID, NULL, 0, 0, 0, NULL},
    {LN("VALUE  a 0 1 2"), MCR_INVALID, NULL, 0, 0, 0, NULL},
    {LN("VALUE a  0 1 2"), MCR_INVALID, NULL, 0, 0, 0, NULL},
    {LN("VALUE a 0  1 2"), MCR_INVALID, NULL, 0, 0, 0, NULL},
    {LN("VALUE a 0 1  2"), MCR_INVALID, NULL, 0, 0, 0, NULL},
    {LN("VALUE a -1 1 2"), MCR_INVALID, NULL, 0, 0, 0, NULL},
    {LN("VALUE a +1 1 2"), MCR_INVALID, NULL, 0, 0, 0, NULL},
    {LN("VALUE a 0 -1 2"), MCR_INVALID, NULL, 0, 0, 0, NULL},
    {LN("VALUE a 0 x 2"), MCR_INVALID, NULL, 0, 0, 0, NULL},
    {LN("VALUE a 0 1 x"), MCR_INVALID, NULL, 0, 0, 0, NULL},
    {LN("VALUE a 0\t1 2"), MCR_INVALID, NULL, 0, 0, 0, NULL},
    {LN("VALUE"), MCR_INVALID, NULL, 0, 0, 0, NULL},
    {LN("VALUE "), MCR_INVALID, NULL, 0, 0, 0, NULL},
    {LN("VALUE a"), MCR_INVALID, NULL, 0, 0, 0, NULL},
    {LN("VALUE a "), MCR_INVALID, NULL, 0, 0, 0, NULL},
    {LN("VALUE a 0"), MCR_INVALID, NULL, 0, 0, 0, NULL},
    {LN("VALUEa 0 1 2"), MCR_INVALID, NULL, 0, 0, 0, NULL},
    {LN("value a 0 1 2"), MCR_INVALID, NULL, 0, 0, 0, NULL},
    {LN(" VALUE a 0 1 2"), MCR_INVALID, NULL, 0, 0, 0, NULL},
};

START_TEST(test_value_line_malformed)
{
	check_rcase(&value_bad[_i]);
}
END_TEST

/* The parser reads only the bytes it is given: a VALUE header cut short is
 * invalid even though the full line in memory would be fine. */
START_TEST(test_value_line_respects_length)
{
	static const char line[] = "VALUE a 5 3 42";
	struct mcr_line out;

	ck_assert_int_eq(mcr_parse_line(line, sizeof(line) - 1, &out), MCR_VALUE);
	ck_assert_uint_eq(out.cas, 42);
	ck_assert_int_eq(mcr_parse_line(line, sizeof(line) - 2, &out), MCR_VALUE);
	ck_assert_uint_eq(out.cas, 4);
	ck_assert_int_eq(mcr_parse_line(line, sizeof(line) - 4, &out), MCR_INVALID);
}
END_TEST

static const struct rcase end_lines[] = {
    {LN("END"), MCR_END, NULL, 0, 0, 0, NULL},
    {LN("END\r"), MCR_END, NULL, 0, 0, 0, NULL},
    {LN("END "), MCR_INVALID, NULL, 0, 0, 0, NULL},
    {LN("ENDX"), MCR_INVALID, NULL, 0, 0, 0, NULL},
    {LN("END\r\r"), MCR_INVALID, NULL, 0, 0, 0, NULL},
    {LN("END\0"), MCR_INVALID, NULL, 0, 0, 0, NULL},
    {LN("end"), MCR_INVALID, NULL, 0, 0, 0, NULL},
    {LN("EN"), MCR_INVALID, NULL, 0, 0, 0, NULL},
};

START_TEST(test_end_line)
{
	check_rcase(&end_lines[_i]);
}
END_TEST

static const struct rcase error_lines[] = {
    {LN("ERROR"), MCR_ERROR, NULL, 0, 0, 0, NULL},
    {LN("ERROR\r"), MCR_ERROR, NULL, 0, 0, 0, NULL},
    {LN("ERROR unknown command"), MCR_ERROR, NULL, 0, 0, 0, "unknown command"},
    {LN("ERROR unknown command\r"), MCR_ERROR, NULL, 0, 0, 0, "unknown command"},
    {LN("CLIENT_ERROR bad command line format"), MCR_CLIENT_ERROR, NULL, 0, 0, 0,
     "bad command line format"},
    {LN("CLIENT_ERROR bad data chunk\r"), MCR_CLIENT_ERROR, NULL, 0, 0, 0, "bad data chunk"},
    {LN("SERVER_ERROR out of memory storing object"), MCR_SERVER_ERROR, NULL, 0, 0, 0,
     "out of memory storing object"},
    {LN("SERVER_ERROR object too large for cache\r"), MCR_SERVER_ERROR, NULL, 0, 0, 0,
     "object too large for cache"},
    {LN("ERRORS"), MCR_INVALID, NULL, 0, 0, 0, NULL},
    {LN("error"), MCR_INVALID, NULL, 0, 0, 0, NULL},
    {LN("CLIENT_ERRO"), MCR_INVALID, NULL, 0, 0, 0, NULL},
    {LN("SERVER_ERRO"), MCR_INVALID, NULL, 0, 0, 0, NULL},
};

START_TEST(test_error_lines)
{
	check_rcase(&error_lines[_i]);
}
END_TEST

static const struct rcase version_lines[] = {
    {LN("VERSION 1.6.18"), MCR_VERSION, NULL, 0, 0, 0, "1.6.18"},
    {LN("VERSION 1.6.18\r"), MCR_VERSION, NULL, 0, 0, 0, "1.6.18"},
    {LN("version 1.6.18"), MCR_INVALID, NULL, 0, 0, 0, NULL},
    {LN("VERSIONS 1"), MCR_INVALID, NULL, 0, 0, 0, NULL},
};

START_TEST(test_version_line)
{
	check_rcase(&version_lines[_i]);
}
END_TEST

/* Anything else a gets can never be answered with. */
static const struct rcase garbage[] = {
    {LN(""), MCR_INVALID, NULL, 0, 0, 0, NULL},
    {LN("\r"), MCR_INVALID, NULL, 0, 0, 0, NULL},
    {LN(" "), MCR_INVALID, NULL, 0, 0, 0, NULL},
    {LN("STORED"), MCR_INVALID, NULL, 0, 0, 0, NULL},
    {LN("NOT_FOUND"), MCR_INVALID, NULL, 0, 0, 0, NULL},
    {LN("STAT pid 1"), MCR_INVALID, NULL, 0, 0, 0, NULL},
    {LN("VA 3"), MCR_INVALID, NULL, 0, 0, 0, NULL},
    {LN("HTTP/1.1 400 Bad Request"), MCR_INVALID, NULL, 0, 0, 0, NULL},
    {LN("\x81\0\0\0"), MCR_INVALID, NULL, 0, 0, 0, NULL},
    {LN("abc"), MCR_INVALID, NULL, 0, 0, 0, NULL},
};

START_TEST(test_garbage_lines)
{
	check_rcase(&garbage[_i]);
}
END_TEST

Suite *mcreply_suite(void)
{
	Suite *s = suite_create("mcreply");
	TCase *tc = tcase_create("lines");

	tcase_add_loop_test(tc, test_value_line_fields, 0, NCASES(value_ok));
	tcase_add_loop_test(tc, test_value_line_malformed, 0, NCASES(value_bad));
	tcase_add_test(tc, test_value_line_respects_length);
	tcase_add_loop_test(tc, test_end_line, 0, NCASES(end_lines));
	tcase_add_loop_test(tc, test_error_lines, 0, NCASES(error_lines));
	tcase_add_loop_test(tc, test_version_line, 0, NCASES(version_lines));
	tcase_add_loop_test(tc, test_garbage_lines, 0, NCASES(garbage));
	suite_add_tcase(s, tc);
	return s;
}
