/*
 * test_pg_codec: the PostgreSQL codec, alone and against a real server.
 *
 * The unit cases pin the bytes down; the server cases make PostgreSQL the
 * oracle: the arrays it receives hold exactly our keys, it refuses exactly
 * the keys the codec refuses, every binary value decodes to what its text
 * output says, and the SQL check agrees with the number of parameters the
 * server finds. A last case checks the cluster helpers themselves (testpg).
 */
#include <check.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "pg_codec.h"
#include "testpg.h"
#include "testutil.h"

Suite *pg_codec_suite(void);

#define NELEMS(a) (sizeof(a) / sizeof((a)[0]))
#define S(lit) (lit), sizeof(lit) - 1

static uint32_t get32(const char *p)
{
	const unsigned char *u = (const unsigned char *)p;
	return (uint32_t)u[0] << 24 | (uint32_t)u[1] << 16 | (uint32_t)u[2] << 8 | u[3];
}

/* A reference reader of the array layout: checks the header and that the
 * elements are keys[0..n-1], and that nothing follows. */
static void check_array(const char *data, size_t len, const struct pgc_key *keys, size_t n)
{
	size_t at;

	if (n == 0) {
		ck_assert_uint_eq(len, 12);
		ck_assert_uint_eq(get32(data), 0);
		ck_assert_uint_eq(get32(data + 4), 0);
		ck_assert_uint_eq(get32(data + 8), PGC_OID_TEXT);
		return;
	}
	ck_assert_uint_ge(len, 20);
	ck_assert_uint_eq(get32(data), 1);
	ck_assert_uint_eq(get32(data + 4), 0);
	ck_assert_uint_eq(get32(data + 8), PGC_OID_TEXT);
	ck_assert_uint_eq(get32(data + 12), n);
	ck_assert_uint_eq(get32(data + 16), 1);
	at = 20;
	for (size_t i = 0; i < n; i++) {
		ck_assert_uint_le(at + 4, len);
		ck_assert_uint_eq(get32(data + at), keys[i].len);
		at += 4;
		ck_assert_uint_le(at + keys[i].len, len);
		ck_assert(memcmp(data + at, keys[i].data, keys[i].len) == 0);
		at += keys[i].len;
	}
	ck_assert_uint_eq(at, len);
}

/* ---- keys ---- */

struct kcase {
	const char *bytes;
	size_t len;
	enum pgc_status want;
};

/* Shared with the server case, which checks that PostgreSQL agrees. */
static const struct kcase kcases[] = {
    {S(""), PGC_OK},
    {S("user:42"), PGC_OK},
    {S("quote' dq\" bs\\ semi; comma, {brace} sp ace"), PGC_OK},
    {S("\x7f\x01\x1f control"), PGC_OK},
    {S("caf\xc3\xa9"), PGC_OK},      /* é */
    {S("\xe2\x82\xac"), PGC_OK},     /* € */
    {S("\xef\xbf\xbf"), PGC_OK},     /* U+FFFF */
    {S("\xf0\x9f\x98\x80"), PGC_OK}, /* U+1F600 */
    {S("\xf4\x8f\xbf\xbf"), PGC_OK}, /* U+10FFFF */
    {S("\xed\x9f\xbf"), PGC_OK},     /* U+D7FF, below the surrogates */
    {S("\xee\x80\x80"), PGC_OK},     /* U+E000, above them */
    {S("a\0b"), PGC_NUL},
    {S("\0"), PGC_NUL},
    {S("\xff\0"), PGC_NUL}, /* NUL wins over bad UTF-8 */
    {S("\x80"), PGC_UTF8},  /* lone continuation */
    {S("\xc3"), PGC_UTF8},  /* cut short */
    {S("\xe2\x82"), PGC_UTF8},
    {S("\xf0\x9f\x98"), PGC_UTF8},
    {S("\xc3("), PGC_UTF8},        /* bad continuation */
    {S("\xc0\x80"), PGC_UTF8},     /* overlong NUL */
    {S("\xc1\xbf"), PGC_UTF8},     /* overlong */
    {S("\xe0\x80\xaf"), PGC_UTF8}, /* overlong '/' */
    {S("\xe0\x9f\xbf"), PGC_UTF8},
    {S("\xf0\x8f\xbf\xbf"), PGC_UTF8}, /* overlong U+FFFF */
    {S("\xed\xa0\x80"), PGC_UTF8},     /* surrogate U+D800 */
    {S("\xed\xbf\xbf"), PGC_UTF8},     /* surrogate U+DFFF */
    {S("\xf4\x90\x80\x80"), PGC_UTF8}, /* U+110000 */
    {S("\xf5\x80\x80\x80"), PGC_UTF8},
    {S("\xf8\x88\x80\x80\x80"), PGC_UTF8}, /* five bytes */
    {S("\xfe"), PGC_UTF8},
    {S("\xff"), PGC_UTF8},
    {S("ok\xe2\x82\xacthen\xe2\x28\xa1"), PGC_UTF8},
};

START_TEST(key_check_table)
{
	for (size_t i = 0; i < NELEMS(kcases); i++) {
		const struct kcase *c = &kcases[i];
		/* An exact-size copy: a read past the key shows under ASan. */
		char *copy = malloc(c->len ? c->len : 1);
		memcpy(copy, c->bytes, c->len);
		ck_assert_msg(pgc_key_check(copy, c->len) == c->want, "case %zu: got %d, want %d",
		              i, pgc_key_check(copy, c->len), c->want);
		free(copy);
	}
}
END_TEST

START_TEST(strerror_names_each_status)
{
	for (int s = PGC_OK; s <= PGC_RANGE; s++)
		ck_assert_str_ne(pgc_strerror((enum pgc_status)s), "unknown error");
	ck_assert(strstr(pgc_strerror(PGC_NUL), "NUL") != NULL);
	ck_assert(strstr(pgc_strerror(PGC_UTF8), "UTF-8") != NULL);
}
END_TEST

/* ---- arrays ---- */

START_TEST(array_bytes_exact)
{
	static const char want[] = "\0\0\0\1"   /* ndim */
	                           "\0\0\0\0"   /* no NULLs */
	                           "\0\0\0\x19" /* text */
	                           "\0\0\0\3"   /* three elements */
	                           "\0\0\0\1"   /* from index 1 */
	                           "\0\0\0\1a"
	                           "\0\0\0\0"
	                           "\0\0\0\3b\xc3\xa9";
	static const char bad[] = "b\xc3";
	struct pgc_buf b = {0};
	struct pgc_array a;

	pgc_array_begin(&a, &b);
	ck_assert_int_eq(pgc_array_add(&a, "a", 1), PGC_OK);
	ck_assert_int_eq(pgc_array_add(&a, "", 0), PGC_OK);
	ck_assert_int_eq(pgc_array_add(&a, bad, 2), PGC_UTF8);
	ck_assert_int_eq(pgc_array_add(&a, "b\xc3\xa9", 2), PGC_UTF8);
	ck_assert_int_eq(pgc_array_add(&a, "b\xc3\xa9", 3), PGC_OK);
	ck_assert_int_eq(pgc_array_end(&a), PGC_OK);
	/* The refused keys left nothing behind. */
	ck_assert_uint_eq(b.len, sizeof(want) - 1);
	ck_assert(memcmp(b.data, want, sizeof(want) - 1) == 0);
	ck_assert_uint_eq(a.n, 3);
	pgc_buf_free(&b);
	ck_assert_ptr_null(b.data);
}
END_TEST

START_TEST(array_empty_is_dimensionless)
{
	static const char want[] = "\0\0\0\0\0\0\0\0\0\0\0\x19";
	struct pgc_buf b = {0};
	struct pgc_array a;

	pgc_array_begin(&a, &b);
	ck_assert_int_eq(pgc_array_add(&a, "x\0", 2), PGC_NUL);
	ck_assert_int_eq(pgc_array_end(&a), PGC_OK);
	ck_assert_uint_eq(b.len, 12);
	ck_assert(memcmp(b.data, want, 12) == 0);
	ck_assert_int_eq(pgc_array_encode(&b, NULL, 0, NULL), PGC_OK);
	ck_assert_uint_eq(b.len, 24);
	ck_assert(memcmp(b.data + 12, want, 12) == 0);
	pgc_buf_free(&b);
}
END_TEST

START_TEST(array_appends_after_existing_bytes)
{
	struct pgc_buf b = {0};
	struct pgc_array a;
	struct pgc_key k[] = {{"one", 3}, {"two", 3}};

	ck_assert_int_eq(pgc_array_encode(&b, k, 1, NULL), PGC_OK);
	pgc_array_begin(&a, &b);
	ck_assert_uint_eq(a.start, 20 + 4 + 3);
	for (size_t i = 0; i < 2; i++)
		ck_assert_int_eq(pgc_array_add(&a, k[i].data, k[i].len), PGC_OK);
	ck_assert_int_eq(pgc_array_end(&a), PGC_OK);
	check_array(b.data, a.start, k, 1);
	check_array(b.data + a.start, b.len - a.start, k, 2);
	pgc_buf_reset(&b);
	ck_assert_uint_eq(b.len, 0);
	ck_assert_int_eq(pgc_array_encode(&b, k + 1, 1, NULL), PGC_OK);
	check_array(b.data, b.len, k + 1, 1);
	pgc_buf_free(&b);
}
END_TEST

START_TEST(array_encode_reports_the_bad_key)
{
	struct pgc_buf b = {0};
	struct pgc_key k[] = {{"good", 4}, {"also", 4}, {"n\0l", 3}, {"\xff", 1}};
	size_t bad = 99;

	ck_assert_int_eq(pgc_array_encode(&b, k, 2, NULL), PGC_OK);
	ck_assert_int_eq(pgc_array_encode(&b, k, 4, &bad), PGC_NUL);
	ck_assert_uint_eq(bad, 2);
	ck_assert_int_eq(pgc_array_encode(&b, k + 3, 1, &bad), PGC_UTF8);
	ck_assert_uint_eq(bad, 0);
	/* Only the first, whole array is there. */
	check_array(b.data, b.len, k, 2);
	pgc_buf_free(&b);
}
END_TEST

START_TEST(array_refuses_past_the_limit)
{
	struct pgc_buf b = {0};
	struct pgc_array a;
	/* Never read: the size is refused before the bytes are looked at. */
	const char *huge = "x";

	pgc_array_begin(&a, &b);
	ck_assert_int_eq(pgc_array_add(&a, huge, PGC_ARRAY_MAX), PGC_TOO_BIG);
	ck_assert_int_eq(pgc_array_add(&a, huge, SIZE_MAX), PGC_TOO_BIG);
	ck_assert_int_eq(pgc_array_add(&a, huge, 1), PGC_OK);
	ck_assert_int_eq(pgc_array_add(&a, huge, PGC_ARRAY_MAX - 20 - 5 - 4 + 1), PGC_TOO_BIG);
	ck_assert_int_eq(pgc_array_end(&a), PGC_OK);
	ck_assert_uint_eq(b.len, 25);
	pgc_buf_free(&b);
}
END_TEST

/* Many keys of many sizes, read back with the reference reader. */
START_TEST(array_many_keys_roundtrip)
{
	enum { N = 10000 };
	struct pgc_key *k = calloc(N, sizeof(*k));
	char *pool = malloc((size_t)N * 40);
	struct pgc_buf b = {0};

	for (size_t i = 0; i < N; i++) {
		char *p = pool + i * 40;
		int n =
		    snprintf(p, 40, "key:%zu:%.*s", i, (int)(i % 20), "xxxxxxxxxxxxxxxxxxxxxxxx");
		k[i].data = p;
		k[i].len = (size_t)n;
	}
	ck_assert_int_eq(pgc_array_encode(&b, k, N, NULL), PGC_OK);
	check_array(b.data, b.len, k, N);
	pgc_buf_free(&b);
	free(pool);
	free(k);
}
END_TEST

/* ---- values and flags ---- */

struct vcase {
	uint32_t type;
	const char *bin;
	size_t len;
	enum pgc_status want;
	const char *text; /* expected output when PGC_OK */
};

static const struct vcase vcases[] = {
    {PGC_OID_TEXT, S("hello"), PGC_OK, "hello"},
    {PGC_OID_VARCHAR, S("v"), PGC_OK, "v"},
    {PGC_OID_BPCHAR, S("ab   "), PGC_OK, "ab   "},
    {PGC_OID_NAME, S("nm"), PGC_OK, "nm"},
    {PGC_OID_JSON, S("{\"a\": 1}"), PGC_OK, "{\"a\": 1}"},
    {PGC_OID_UNKNOWN, S("u"), PGC_OK, "u"},
    {PGC_OID_TEXT, S(""), PGC_OK, ""},
    {PGC_OID_JSONB, S("\1{\"a\": 1}"), PGC_OK, "{\"a\": 1}"},
    {PGC_OID_JSONB, S("\2{}"), PGC_FORMAT, NULL},
    {PGC_OID_JSONB, S(""), PGC_FORMAT, NULL},
    {PGC_OID_INT2, S("\xff\xff"), PGC_OK, "-1"},
    {PGC_OID_INT2, S("\x80\x00"), PGC_OK, "-32768"},
    {PGC_OID_INT2, S("\x7f\xff"), PGC_OK, "32767"},
    {PGC_OID_INT4, S("\0\0\0\x2a"), PGC_OK, "42"},
    {PGC_OID_INT4, S("\x80\0\0\0"), PGC_OK, "-2147483648"},
    {PGC_OID_INT8, S("\x80\0\0\0\0\0\0\0"), PGC_OK, "-9223372036854775808"},
    {PGC_OID_INT8, S("\x7f\xff\xff\xff\xff\xff\xff\xff"), PGC_OK, "9223372036854775807"},
    {PGC_OID_OID, S("\xff\xff\xff\xff"), PGC_OK, "4294967295"},
    {PGC_OID_INT4, S("\0\0\0"), PGC_FORMAT, NULL},
    {PGC_OID_INT8, S("\0\0\0\0"), PGC_FORMAT, NULL},
    {PGC_OID_INT2, S(""), PGC_FORMAT, NULL},
    {PGC_OID_BOOL, S("\1"), PGC_OK, "t"},
    {PGC_OID_BOOL, S("\0"), PGC_OK, "f"},
    {PGC_OID_BOOL, S("\0\0"), PGC_FORMAT, NULL},
    {PGC_OID_UUID, S("\xa0\xee\xbc\x99\x9c\x0b\x4e\xf8\xbb\x6d\x6b\xb9\xbd\x38\x0a\x11"), PGC_OK,
     "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"},
    {PGC_OID_UUID, S("\xa0\xee"), PGC_FORMAT, NULL},
    {701, S("\0\0\0\0\0\0\0\0"), PGC_TYPE, NULL},  /* float8 */
    {1700, S("\0\0\0\0\0\0\0\0"), PGC_TYPE, NULL}, /* numeric */
    {PGC_OID_TEXT_ARRAY, S(""), PGC_TYPE, NULL},
};

START_TEST(value_decode_table)
{
	for (size_t i = 0; i < NELEMS(vcases); i++) {
		const struct vcase *c = &vcases[i];
		char *copy = malloc(c->len ? c->len : 1);
		struct pgc_text t;
		enum pgc_status s;

		memcpy(copy, c->bin, c->len);
		s = pgc_value_decode(c->type, copy, c->len, &t);
		ck_assert_msg(s == c->want, "case %zu: got %d, want %d", i, s, c->want);
		if (s == PGC_OK) {
			ck_assert_msg(
			    t.len == strlen(c->text) && memcmp(t.data, c->text, t.len) == 0,
			    "case %zu: '%.*s', want '%s'", i, (int)t.len, t.data, c->text);
		}
		free(copy);
	}
}
END_TEST

START_TEST(bytea_is_raw_bytes)
{
	static const char raw[] = "\0a\r\n\0\xff\\x00";
	struct pgc_text t;

	ck_assert_int_eq(pgc_value_decode(PGC_OID_BYTEA, raw, sizeof(raw) - 1, &t), PGC_OK);
	ck_assert_ptr_eq(t.data, raw);
	ck_assert_uint_eq(t.len, sizeof(raw) - 1);
}
END_TEST

START_TEST(flags_decode_ranges)
{
	static const struct {
		uint32_t type;
		const char *bin;
		size_t len;
		enum pgc_status want;
		uint32_t flags;
	} c[] = {
	    {PGC_OID_INT2, S("\0\x07"), PGC_OK, 7},
	    {PGC_OID_INT2, S("\xff\xff"), PGC_RANGE, 0},
	    {PGC_OID_INT4, S("\x7f\xff\xff\xff"), PGC_OK, 0x7fffffff},
	    {PGC_OID_INT4, S("\xff\xff\xff\xff"), PGC_RANGE, 0},
	    {PGC_OID_INT4, S("\0\0\0\0"), PGC_OK, 0},
	    {PGC_OID_INT8, S("\0\0\0\0\xff\xff\xff\xff"), PGC_OK, 0xffffffff},
	    {PGC_OID_INT8, S("\0\0\0\1\0\0\0\0"), PGC_RANGE, 0},
	    {PGC_OID_INT8, S("\xff\xff\xff\xff\xff\xff\xff\xff"), PGC_RANGE, 0},
	    {PGC_OID_INT8, S("\x80\0\0\0\0\0\0\0"), PGC_RANGE, 0},
	    {PGC_OID_OID, S("\xff\xff\xff\xfe"), PGC_OK, 0xfffffffe},
	    {PGC_OID_INT4, S("\0\0\0\0\0"), PGC_FORMAT, 0},
	    {PGC_OID_INT8, S("\0\0\0\1"), PGC_FORMAT, 0},
	    {PGC_OID_TEXT, S("1"), PGC_TYPE, 0},
	    {PGC_OID_BOOL, S("\1"), PGC_TYPE, 0},
	};

	for (size_t i = 0; i < NELEMS(c); i++) {
		uint32_t f = 12345;
		enum pgc_status s = pgc_flags_decode(c[i].type, c[i].bin, c[i].len, &f);
		ck_assert_msg(s == c[i].want, "case %zu: got %d, want %d", i, s, c[i].want);
		ck_assert_uint_eq(f, s == PGC_OK ? c[i].flags : 12345);
	}
}
END_TEST

START_TEST(columns_check_cases)
{
	char err[200];
	uint32_t ok2[] = {PGC_OID_TEXT, PGC_OID_BYTEA};
	uint32_t ok3[] = {PGC_OID_INT8, PGC_OID_JSONB, PGC_OID_INT4};
	uint32_t bad_value[] = {PGC_OID_TEXT, 1700};
	uint32_t bad_key[] = {701, PGC_OID_TEXT};
	uint32_t bad_flags[] = {PGC_OID_TEXT, PGC_OID_TEXT, PGC_OID_TEXT};
	uint32_t four[] = {PGC_OID_TEXT, PGC_OID_TEXT, PGC_OID_INT4, PGC_OID_INT4};

	ck_assert_int_eq(pgc_columns_check(ok2, 2, err, sizeof(err)), 0);
	ck_assert_int_eq(pgc_columns_check(ok3, 3, err, sizeof(err)), 0);
	ck_assert_int_eq(pgc_columns_check(ok2, 1, err, sizeof(err)), -1);
	ck_assert_str_eq(err, "returns 1 column; a query returns the key, the value and "
	                      "optionally the flags");
	ck_assert_int_eq(pgc_columns_check(four, 4, err, sizeof(err)), -1);
	ck_assert(strstr(err, "returns 4 columns") != NULL);
	ck_assert_int_eq(pgc_columns_check(bad_value, 2, err, sizeof(err)), -1);
	ck_assert_str_eq(err, "column 2 (the value) has type oid 1700, which is not converted; "
	                      "cast it to text or bytea");
	ck_assert_int_eq(pgc_columns_check(bad_key, 2, err, sizeof(err)), -1);
	ck_assert(strstr(err, "column 1 (the key)") != NULL);
	ck_assert_int_eq(pgc_columns_check(bad_flags, 3, err, sizeof(err)), -1);
	ck_assert_str_eq(err, "column 3 (the flags) has type oid 25; flags must be int2, int4, "
	                      "int8 or oid");
}
END_TEST

/* ---- SQL ---- */

struct scase {
	const char *sql;
	const char *err; /* NULL: accepted; else a part of the message */
};

/* Shared with the server case: accepted exactly when the server finds one
 * parameter. Every query has two columns, so it also prepares. */
static const struct scase scases[] = {
    {"SELECT k, k FROM unnest($1::text[]) AS k", NULL},
    {"SELECT k, k FROM unnest($1::text[]) AS k;", NULL},
    {"SELECT k, k FROM unnest($1::text[]) AS k ; ; -- done\n", NULL},
    {"SELECT k, k FROM unnest($01::text[]) AS k", NULL},
    {"SELECT k, '$2' FROM unnest($1::text[]) AS k", NULL},
    {"SELECT k, 'it''s $2' FROM unnest($1::text[]) AS k", NULL},
    {"SELECT k AS \"$2\", k AS \"a\"\"$3\" FROM unnest($1::text[]) AS k", NULL},
    {"SELECT k, $$ $2 '\" $$ FROM unnest($1::text[]) AS k", NULL},
    {"SELECT k, $t$ $2 $x$ $tt$ $t$ FROM unnest($1::text[]) AS k", NULL},
    {"SELECT k, $_a1$ $2 $_a1$ FROM unnest($1::text[]) AS k", NULL},
    {"SELECT k, E'\\' $2' FROM unnest($1::text[]) AS k", NULL},
    {"SELECT k, e'\\\\', '$1' FROM unnest($1::text[]) AS k", NULL},
    {"SELECT k, U&'\\0041 $2' FROM unnest($1::text[]) AS k", NULL},
    {"SELECT k AS U&\"$2\", k FROM unnest($1::text[]) AS k", NULL},
    {"SELECT k, b'101', x'1f', n'$2' FROM unnest($1::text[]) AS k", NULL},
    {"SELECT k, k /* $2 /* $3 */ $4 */ FROM unnest($1::text[]) AS k -- $5", NULL},
    {"SELECT k, 1.5e3, .5, 2E-3 FROM unnest($1::text[]) AS k", NULL},
    {"SELECT k, k FROM unnest($1::text[]) AS k WHERE k <> ALL($1::text[])", NULL},
    {"SELECT k AS a$2, k AS \xc3\xa9$3 FROM unnest($1::text[]) AS k", NULL},
    {"SELECT k, k FROM unnest($2::text[]) AS k", "uses $2 at byte 24"},
    {"SELECT k, $2::text FROM unnest($1::text[]) AS k", "uses $2"},
    {"SELECT k, k FROM unnest($10::text[]) AS k", "uses $10"},
    {"SELECT k, 'a\\', $2 FROM unnest($1::text[]) AS k", "uses $2"},
    {"SELECT k, $0 FROM unnest($1::text[]) AS k", "uses $0"},
    {"SELECT 'x', '$1'", "does not use $1"},
    {"SELECT a$1, a$1 FROM (SELECT 1 AS a$1) AS t", "does not use $1"},
    {"SELECT $$ $1 $$, 2", "does not use $1"},
    {"SELECT k, k FROM unnest($1::text[]) AS k; SELECT 1", "more than one statement"},
    {"SELECT k, '$1 FROM unnest($1::text[]) AS k", "unterminated quoted string"},
    {"SELECT k AS \"k, k FROM unnest($1::text[]) AS k", "unterminated quoted identifier"},
    {"SELECT k, $a$ k FROM unnest($1::text[]) AS k", "unterminated dollar-quoted"},
    {"SELECT k, k FROM unnest($1::text[]) AS k /* /* */", "unterminated /* comment"},
    {"SELECT k, E'\\' FROM unnest($1::text[]) AS k", "unterminated quoted string"},
    {"SELECT k, k FROM unnest($1abc::text[]) AS k", "trailing junk after parameter"},
    {"", "empty query"},
    {" -- nothing\n /* at all */ ;", "empty query"},
};

START_TEST(sql_check_table)
{
	for (size_t i = 0; i < NELEMS(scases); i++) {
		const struct scase *c = &scases[i];
		size_t len = strlen(c->sql);
		char *copy = malloc(len ? len : 1), err[200] = "";
		int r;

		memcpy(copy, c->sql, len);
		r = pgc_sql_check(copy, len, err, sizeof(err));
		if (c->err)
			ck_assert_msg(r == -1 && strstr(err, c->err), "case %zu (%s): %d '%s'", i,
			              c->sql, r, err);
		else
			ck_assert_msg(r == 0, "case %zu (%s): %s", i, c->sql, err);
		free(copy);
	}
}
END_TEST

START_TEST(sql_check_messages)
{
	char err[200], small[16];
	static const char nul[] = "SELECT $1\0, 2";

	ck_assert_int_eq(pgc_sql_check(S(nul), err, sizeof(err)), -1);
	ck_assert_str_eq(err, "NUL byte at byte 9");
	ck_assert_int_eq(pgc_sql_check(S("SELECT $2, $1"), err, sizeof(err)), -1);
	ck_assert_str_eq(err, "uses $2 at byte 7; the only parameter is $1, the batch's keys "
	                      "(text[])");
	ck_assert_int_eq(pgc_sql_check(S("SELECT 1"), err, sizeof(err)), -1);
	ck_assert_str_eq(err, "does not use $1, the batch's keys (text[])");
	ck_assert_int_eq(pgc_sql_check(S("SELECT $1; SELECT 2"), err, sizeof(err)), -1);
	ck_assert_str_eq(err, "more than one statement (';' at byte 9)");
	/* A short buffer gets a cut message, still terminated. */
	ck_assert_int_eq(pgc_sql_check(S("SELECT 1"), small, sizeof(small)), -1);
	ck_assert_uint_eq(strlen(small), sizeof(small) - 1);
	/* Only the given length is read. */
	ck_assert_int_eq(pgc_sql_check("SELECT $1$2", 9, err, sizeof(err)), 0);
}
END_TEST

/* Every prefix of an accepted query either passes or fails cleanly; run
 * under ASan this shows any read past the end. */
START_TEST(sql_check_every_prefix)
{
	for (size_t i = 0; i < NELEMS(scases); i++) {
		size_t len = strlen(scases[i].sql);
		for (size_t n = 0; n <= len; n++) {
			char *copy = malloc(n ? n : 1), err[200];
			memcpy(copy, scases[i].sql, n);
			(void)pgc_sql_check(copy, n, err, sizeof(err));
			free(copy);
		}
	}
}
END_TEST

START_TEST(error_line_is_one_line)
{
	char out[64];

	ck_assert_uint_eq(pgc_error_line("invalid input\r\nEND\r\n", out, sizeof(out)), 20);
	ck_assert_str_eq(out, "invalid input  END  ");
	ck_assert_uint_eq(pgc_error_line("a\tb\x7f"
	                                 "c",
	                                 out, sizeof(out)),
	                  5);
	ck_assert_str_eq(out, "a b c");
	/* Cut at a character boundary: "é" is two bytes, and only one fits. */
	ck_assert_uint_eq(pgc_error_line("ab\xc3\xa9", out, 4), 2);
	ck_assert_str_eq(out, "ab");
	ck_assert_uint_eq(pgc_error_line("ab\xc3\xa9", out, 5), 4);
	ck_assert_str_eq(out, "ab\xc3\xa9");
	ck_assert_uint_eq(pgc_error_line("\xe2\x82\xac\xe2\x82\xac", out, 6), 3);
	ck_assert_uint_eq(pgc_error_line("abc", out, 1), 0);
	ck_assert_str_eq(out, "");
	ck_assert_uint_eq(pgc_error_line("abc", out, 0), 0);
	ck_assert_uint_eq(pgc_error_line(NULL, out, sizeof(out)), 0);
	ck_assert_str_eq(out, "");
}
END_TEST

/* ---- against PostgreSQL ---- */

/* One cluster for the whole TCase, started in the runner. */
static struct pgproc pg;

static void pg_up(void)
{
	tu_pg_start(&pg);
}

static void pg_down(void)
{
	tu_pg_stop(&pg);
}

static PGresult *query_array(PGconn *c, const char *sql, const char *arr, size_t len)
{
	const Oid types[1] = {PGC_OID_TEXT_ARRAY};
	const char *values[1] = {arr};
	const int lengths[1] = {(int)len};
	const int formats[1] = {1};

	return PQexecParams(c, sql, 1, types, values, lengths, formats, 1);
}

/* The server unnests exactly our keys, in order, twice per row. */
static void server_roundtrip(PGconn *c, const struct pgc_key *k, size_t n)
{
	struct pgc_buf b = {0};
	PGresult *r;

	ck_assert_int_eq(pgc_array_encode(&b, k, n, NULL), PGC_OK);
	r = query_array(c,
	                "SELECT u.k, u.k FROM unnest($1::text[]) WITH ORDINALITY AS u(k, i) "
	                "ORDER BY u.i",
	                b.data, b.len);
	ck_assert_msg(PQresultStatus(r) == PGRES_TUPLES_OK, "%s", PQresultErrorMessage(r));
	ck_assert_int_eq(PQntuples(r), (int)n);
	ck_assert_uint_eq(PQftype(r, 0), PGC_OID_TEXT);
	for (size_t i = 0; i < n; i++)
		for (int col = 0; col < 2; col++) {
			struct pgc_text t;
			ck_assert_int_eq(pgc_value_decode(PQftype(r, col),
			                                  PQgetvalue(r, (int)i, col),
			                                  (size_t)PQgetlength(r, (int)i, col), &t),
			                 PGC_OK);
			ck_assert_msg(t.len == k[i].len && memcmp(t.data, k[i].data, t.len) == 0,
			              "key %zu came back as '%.*s'", i,
			              (int)(t.len > 60 ? 60 : t.len), t.data);
		}
	PQclear(r);
	pgc_buf_free(&b);
}

START_TEST(server_unnests_awkward_keys)
{
	static const char pattern[] = "\\'\",{} ;\xc3\xa9\\n";
	PGconn *c = tu_pg_connect(pg.conninfo);
	size_t big = 64 * 1024;
	char *huge = malloc(big);
	struct pgc_key k[] = {
	    {S("plain")},
	    {S("")},
	    {S("'; DROP TABLE x; --")},
	    {S("\"quoted\" ''twice''")},
	    {S("back\\slash\\\\ \\x41 \\000")},
	    {S("a,b,c {x,y} {\"\"} NULL")},
	    {S("NULL")},
	    {S("  spaces  \t tab")},
	    {S("$1 $$ $a$")},
	    {S("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80 \xf4\x8f\xbf\xbf")},
	    {S("\x01\x02\x1f\x7f")},
	    {huge, big},
	};

	/* Quotes, braces, separators and a two-byte character, repeated;
	 * the tail that cannot hold a whole pattern is padded. */
	for (size_t i = 0; i < big; i += sizeof(pattern) - 1)
		memcpy(huge + i, pattern,
		       big - i >= sizeof(pattern) - 1 ? sizeof(pattern) - 1 : big - i);
	memset(huge + big - big % (sizeof(pattern) - 1), 'x', big % (sizeof(pattern) - 1));
	ck_assert_int_eq(pgc_key_check(huge, big), PGC_OK);
	server_roundtrip(c, k, NELEMS(k));
	for (size_t i = 0; i < NELEMS(k); i++)
		server_roundtrip(c, k + i, 1);
	free(huge);
	PQfinish(c);
}
END_TEST

START_TEST(server_takes_ten_thousand_keys)
{
	enum { N = 10000 };
	PGconn *c = tu_pg_connect(pg.conninfo_unix);
	struct pgc_key *k = calloc(N, sizeof(*k));
	char *pool = malloc((size_t)N * 32);
	struct pgc_buf b = {0};
	PGresult *r;

	for (size_t i = 0; i < N; i++) {
		int n = snprintf(pool + i * 32, 32, "item:%zu'\"", i * 7919);
		k[i].data = pool + i * 32;
		k[i].len = (size_t)n;
	}
	server_roundtrip(c, k, N);
	/* The same array as a plain parameter of = ANY, as routes use it. */
	ck_assert_int_eq(pgc_array_encode(&b, k, N, NULL), PGC_OK);
	r = query_array(c,
	                "SELECT count(*)::int8 FROM generate_series(0, 20000) AS g "
	                "WHERE 'item:' || (g * 7919) || '''\"' = ANY($1)",
	                b.data, b.len);
	ck_assert_msg(PQresultStatus(r) == PGRES_TUPLES_OK, "%s", PQresultErrorMessage(r));
	ck_assert_int_eq(PQgetlength(r, 0, 0), 8);
	{
		uint32_t f;
		ck_assert_int_eq(pgc_flags_decode(PQftype(r, 0), PQgetvalue(r, 0, 0), 8, &f),
		                 PGC_OK);
		ck_assert_uint_eq(f, N);
	}
	PQclear(r);
	pgc_buf_free(&b);
	free(pool);
	free(k);
	PQfinish(c);
}
END_TEST

START_TEST(server_takes_the_empty_array)
{
	PGconn *c = tu_pg_connect(pg.conninfo);
	struct pgc_buf b = {0};
	PGresult *r;

	ck_assert_int_eq(pgc_array_encode(&b, NULL, 0, NULL), PGC_OK);
	r = query_array(c,
	                "SELECT count(*)::text, coalesce(array_ndims($1::text[]), 0)::text "
	                "FROM unnest($1::text[])",
	                b.data, b.len);
	ck_assert_msg(PQresultStatus(r) == PGRES_TUPLES_OK, "%s", PQresultErrorMessage(r));
	ck_assert_str_eq(PQgetvalue(r, 0, 0), "0");
	ck_assert_str_eq(PQgetvalue(r, 0, 1), "0");
	PQclear(r);
	pgc_buf_free(&b);
	PQfinish(c);
}
END_TEST

/* A one-element array written by hand (no check), to see what the server
 * itself accepts. */
static void raw_array(struct pgc_buf *b, const char *key, size_t len)
{
	static const char head[] = "\0\0\0\1\0\0\0\0\0\0\0\x19\0\0\0\1\0\0\0\1";
	unsigned char l[4] = {(unsigned char)(len >> 24), (unsigned char)(len >> 16),
	                      (unsigned char)(len >> 8), (unsigned char)len};

	b->len = 0;
	b->data = realloc(b->data, 24 + len);
	memcpy(b->data, head, 20);
	memcpy(b->data + 20, l, 4);
	memcpy(b->data + 24, key, len);
	b->len = 24 + len;
}

START_TEST(server_refuses_what_the_codec_refuses)
{
	PGconn *c = tu_pg_connect(pg.conninfo);
	struct pgc_buf b = {0};
	PGresult *r = PQexec(c, "SET client_encoding = 'UTF8'");

	PQclear(r);
	for (size_t i = 0; i < NELEMS(kcases); i++) {
		bool server_ok;
		raw_array(&b, kcases[i].bytes, kcases[i].len);
		r = query_array(c, "SELECT octet_length(k)::text FROM unnest($1::text[]) AS k",
		                b.data, b.len);
		server_ok = PQresultStatus(r) == PGRES_TUPLES_OK;
		ck_assert_msg(server_ok ==
		                  (pgc_key_check(kcases[i].bytes, kcases[i].len) == PGC_OK),
		              "case %zu: server %s (%s), codec %s", i,
		              server_ok ? "takes" : "refuses", PQresultErrorMessage(r),
		              pgc_strerror(pgc_key_check(kcases[i].bytes, kcases[i].len)));
		if (!server_ok)
			ck_assert(strstr(PQresultErrorMessage(r), "invalid byte sequence"));
		PQclear(r);
	}
	pgc_buf_free(&b);
	PQfinish(c);
}
END_TEST

START_TEST(server_binary_values_decode_to_their_text)
{
	static const char *const exprs[] = {
	    "'hello'::text",
	    "'caf\xc3\xa9 \xf0\x9f\x98\x80'::text",
	    "'v'::varchar(5)",
	    "'ab'::char(5)",
	    "'nm'::name",
	    "'{\"a\": [1, 2], \"b\": null}'::json",
	    "'{\"b\": 1, \"a\": [1, \"x\"]}'::jsonb",
	    "'\"just a string\"'::jsonb",
	    "(-32768)::int2",
	    "(-1)::int4",
	    "2147483647::int4",
	    "(-9223372036854775807 - 1)::int8",
	    "9223372036854775807::int8",
	    "4294967295::oid",
	    "'A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11'::uuid",
	    "true",
	    "false",
	    "''::text",
	};
	PGconn *c = tu_pg_connect(pg.conninfo);

	for (size_t i = 0; i < NELEMS(exprs); i++) {
		char sql[200];
		PGresult *text, *bin;
		struct pgc_text t;

		snprintf(sql, sizeof(sql), "SELECT %s", exprs[i]);
		text = PQexecParams(c, sql, 0, NULL, NULL, NULL, NULL, 0);
		bin = PQexecParams(c, sql, 0, NULL, NULL, NULL, NULL, 1);
		ck_assert_msg(PQresultStatus(text) == PGRES_TUPLES_OK, "%s: %s", sql,
		              PQresultErrorMessage(text));
		ck_assert_int_eq(PQresultStatus(bin), PGRES_TUPLES_OK);
		ck_assert_msg(pgc_value_decode(PQftype(bin, 0), PQgetvalue(bin, 0, 0),
		                               (size_t)PQgetlength(bin, 0, 0), &t) == PGC_OK,
		              "%s: type %u", sql, PQftype(bin, 0));
		ck_assert_msg(t.len == (size_t)PQgetlength(text, 0, 0) &&
		                  memcmp(t.data, PQgetvalue(text, 0, 0), t.len) == 0,
		              "%s: '%.*s', text format '%s'", sql, (int)t.len, t.data,
		              PQgetvalue(text, 0, 0));
		PQclear(text);
		PQclear(bin);
	}
	PQfinish(c);
}
END_TEST

START_TEST(server_bytea_is_exact)
{
	PGconn *c = tu_pg_connect(pg.conninfo);
	char all[256];
	const Oid types[1] = {PGC_OID_BYTEA};
	const char *values[1] = {all};
	const int lengths[1] = {256}, formats[1] = {1};
	struct pgc_text t;
	PGresult *r;

	for (int i = 0; i < 256; i++)
		all[i] = (char)i;
	/* Every byte value, through a bytea column and back. */
	r = PQexecParams(c, "SELECT $1::bytea || '\\x0d0a00'::bytea", 1, types, values, lengths,
	                 formats, 1);
	ck_assert_msg(PQresultStatus(r) == PGRES_TUPLES_OK, "%s", PQresultErrorMessage(r));
	ck_assert_uint_eq(PQftype(r, 0), PGC_OID_BYTEA);
	ck_assert_int_eq(
	    pgc_value_decode(PQftype(r, 0), PQgetvalue(r, 0, 0), (size_t)PQgetlength(r, 0, 0), &t),
	    PGC_OK);
	ck_assert_uint_eq(t.len, 259);
	ck_assert(memcmp(t.data, all, 256) == 0);
	ck_assert(memcmp(t.data + 256, "\r\n\0", 3) == 0);
	PQclear(r);
	/* Built in SQL only: NUL and CRLF inside. */
	r = PQexecParams(c, "SELECT decode('0061000d0a0d0a454e440d0a', 'hex')", 0, NULL, NULL, NULL,
	                 NULL, 1);
	ck_assert_int_eq(
	    pgc_value_decode(PQftype(r, 0), PQgetvalue(r, 0, 0), (size_t)PQgetlength(r, 0, 0), &t),
	    PGC_OK);
	ck_assert_uint_eq(t.len, 12);
	ck_assert(memcmp(t.data, "\0a\0\r\n\r\nEND\r\n", 12) == 0);
	PQclear(r);
	PQfinish(c);
}
END_TEST

START_TEST(server_flags_from_int4_and_int8)
{
	static const struct {
		const char *expr;
		enum pgc_status want;
		uint32_t flags;
	} c[] = {
	    {"0::int4", PGC_OK, 0},
	    {"7::int2", PGC_OK, 7},
	    {"2147483647::int4", PGC_OK, 2147483647u},
	    {"4294967295::int8", PGC_OK, 4294967295u},
	    {"4294967296::int8", PGC_RANGE, 0},
	    {"(-1)::int4", PGC_RANGE, 0},
	    {"(-1)::int8", PGC_RANGE, 0},
	    {"4294967295::oid", PGC_OK, 4294967295u},
	    {"1.0::numeric", PGC_TYPE, 0},
	    {"'1'::text", PGC_TYPE, 0},
	};
	PGconn *conn = tu_pg_connect(pg.conninfo);

	for (size_t i = 0; i < NELEMS(c); i++) {
		char sql[100];
		uint32_t f = 0;
		PGresult *r;
		enum pgc_status s;

		snprintf(sql, sizeof(sql), "SELECT %s", c[i].expr);
		r = PQexecParams(conn, sql, 0, NULL, NULL, NULL, NULL, 1);
		ck_assert_int_eq(PQresultStatus(r), PGRES_TUPLES_OK);
		s = pgc_flags_decode(PQftype(r, 0), PQgetvalue(r, 0, 0),
		                     (size_t)PQgetlength(r, 0, 0), &f);
		ck_assert_msg(s == c[i].want, "%s: %d", sql, s);
		if (s == PGC_OK)
			ck_assert_uint_eq(f, c[i].flags);
		PQclear(r);
	}
	PQfinish(conn);
}
END_TEST

/* What PostgreSQL itself makes of each query: prepared, with how many
 * parameters; the SQL check must accept exactly those with one. */
START_TEST(server_agrees_with_sql_check)
{
	PGconn *c = tu_pg_connect(pg.conninfo);

	for (size_t i = 0; i < NELEMS(scases); i++) {
		const char *sql = scases[i].sql;
		char err[200] = "", name[32];
		bool ours = pgc_sql_check(sql, strlen(sql), err, sizeof(err)) == 0, server = false;
		PGresult *r;

		snprintf(name, sizeof(name), "s%zu", i);
		r = PQprepare(c, name, sql, 0, NULL);
		if (PQresultStatus(r) == PGRES_COMMAND_OK) {
			PGresult *d = PQdescribePrepared(c, name);
			server = PQresultStatus(d) == PGRES_COMMAND_OK && PQnparams(d) == 1;
			PQclear(d);
		}
		ck_assert_msg(ours == server, "case %zu (%s): check says '%s', server %s (%s)", i,
		              sql, ours ? "ok" : err, server ? "finds one parameter" : "does not",
		              PQresultErrorMessage(r));
		PQclear(r);
	}
	PQfinish(c);
}
END_TEST

/* The columns a prepared route reports pass or fail the columns check. */
START_TEST(server_columns_check_on_described_statements)
{
	static const struct {
		const char *sql;
		int ok;
	} c[] = {
	    {"SELECT k, k::bytea FROM unnest($1::text[]) AS k", 1},
	    {"SELECT k, k, 1::int4 FROM unnest($1::text[]) AS k", 1},
	    {"SELECT k::int8, to_jsonb(k), 1::int8 FROM unnest($1::text[]) AS k", 1},
	    {"SELECT k, 1.5::float8 FROM unnest($1::text[]) AS k", 0},
	    {"SELECT k, k, k FROM unnest($1::text[]) AS k", 0},
	    {"SELECT k FROM unnest($1::text[]) AS k", 0},
	};
	PGconn *conn = tu_pg_connect(pg.conninfo);

	for (size_t i = 0; i < NELEMS(c); i++) {
		char name[32], err[200];
		uint32_t types[8];
		PGresult *r, *d;
		int n;

		snprintf(name, sizeof(name), "c%zu", i);
		r = PQprepare(conn, name, c[i].sql, 0, NULL);
		ck_assert_msg(PQresultStatus(r) == PGRES_COMMAND_OK, "%s", PQresultErrorMessage(r));
		d = PQdescribePrepared(conn, name);
		n = PQnfields(d);
		for (int f = 0; f < n && f < 8; f++)
			types[f] = PQftype(d, f);
		ck_assert_msg((pgc_columns_check(types, n, err, sizeof(err)) == 0) == c[i].ok,
		              "%s: %s", c[i].sql, err);
		PQclear(r);
		PQclear(d);
	}
	PQfinish(conn);
}
END_TEST

/* ---- the cluster helpers ---- */

START_TEST(cluster_lifecycle)
{
	struct pgproc p;
	double t0 = tu_now();
	char *v, dir[sizeof(p.root)];
	PGconn *c;

	tu_pg_start(&p);
	fprintf(stderr, "testpg: cluster on port %d ready in %.2f s\n", p.port, tu_now() - t0);
	snprintf(dir, sizeof(dir), "%s", p.root);

	/* The role logs in with its password, over TCP and the socket. */
	c = tu_pg_connect(p.conninfo);
	v = PQuser(c);
	ck_assert_str_eq(v, TU_PG_USER);
	PQfinish(c);
	PQfinish(tu_pg_connect(p.conninfo_unix));
	{
		char wrong[600];
		snprintf(wrong, sizeof(wrong),
		         "host=127.0.0.1 port=%d dbname=" TU_PG_DB " user=" TU_PG_USER
		         " password=nope connect_timeout=5",
		         p.port);
		c = PQconnectdb(wrong);
		ck_assert_int_eq(PQstatus(c), CONNECTION_BAD);
		ck_assert_msg(strstr(PQerrorMessage(c), "password authentication failed"), "%s",
		              PQerrorMessage(c));
		PQfinish(c);
	}

	/* Setup SQL, single values, errors, statement counts. */
	tu_pg_exec(&p, "CREATE TABLE kv (k text PRIMARY KEY, v bytea); "
	               "INSERT INTO kv VALUES ('a', '\\x00ff'), ('b', NULL)");
	ck_assert_int_eq(tu_pg_int(&p, "SELECT count(*) FROM kv"), 2);
	ck_assert_ptr_null(tu_pg_exec(&p, "SELECT v FROM kv WHERE k = 'b'"));
	ck_assert_ptr_null(tu_pg_exec(&p, "SELECT v FROM kv WHERE k = 'none'"));
	v = tu_pg_error(&p, "SELECT 'x'::bigint");
	ck_assert_str_eq(v, "invalid input syntax for type bigint: \"x\"");
	free(v);
	for (int i = 0; i < 3; i++)
		free(tu_pg_exec(&p, "SELECT k FROM kv AS lifecycle_count WHERE k = 'a'"));
	ck_assert_int_eq(tu_pg_calls(&p, "%lifecycle_count%"), 3);
	ck_assert_int_eq(tu_pg_calls(&p, "%no such statement%"), 0);

	/* A crash: connections break, the data survive a restart, the
	 * counts start from zero again. */
	c = tu_pg_connect(p.conninfo);
	tu_pg_kill(&p);
	ck_assert_int_eq(p.pid, 0);
	{
		PGresult *r = PQexec(c, "SELECT 1");
		ck_assert_int_ne(PQresultStatus(r), PGRES_TUPLES_OK);
		PQclear(r);
	}
	PQfinish(c);
	c = PQconnectdb(p.conninfo);
	ck_assert_int_eq(PQstatus(c), CONNECTION_BAD);
	PQfinish(c);
	tu_pg_restart(&p);
	ck_assert_int_gt(p.pid, 0);
	ck_assert_int_eq(tu_pg_int(&p, "SELECT count(*) FROM kv"), 2);
	ck_assert_int_eq(tu_pg_calls(&p, "%lifecycle_count%"), 0);

	/* A setting that needs a restart. */
	tu_pg_exec(&p, "ALTER SYSTEM SET max_connections = 7");
	tu_pg_restart(&p);
	ck_assert_int_eq(tu_pg_int(&p, "SHOW max_connections"), 7);

	tu_pg_stop(&p);
	ck_assert_int_eq(p.pid, 0);
	ck_assert_int_ne(access(dir, F_OK), 0);
	tu_pg_stop(&p); /* twice is harmless */
}
END_TEST

/* Two clusters side by side do not meet. */
START_TEST(clusters_are_separate)
{
	struct pgproc a, b;

	tu_pg_start(&a);
	tu_pg_start(&b);
	ck_assert_int_ne(a.port, b.port);
	tu_pg_exec(&a, "CREATE TABLE only_in_a (x int)");
	ck_assert_int_eq(
	    tu_pg_int(&b, "SELECT count(*) FROM pg_tables WHERE tablename = 'only_in_a'"), 0);
	tu_pg_stop(&a);
	ck_assert_int_eq(tu_pg_int(&b, "SELECT 1"), 1);
	tu_pg_stop(&b);
}
END_TEST

static bool running(pid_t pid)
{
	char path[64], buf[512], *s;
	FILE *f;
	bool alive = false;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	f = fopen(path, "r");
	if (!f)
		return false;
	s = fgets(buf, sizeof(buf), f) ? strrchr(buf, ')') : NULL;
	if (s && s[1] == ' ' && s[2] != 'Z' && s[2] != 'X')
		alive = true;
	fclose(f);
	return alive;
}

/* A test killed outright (as by Check's timeout) leaves no server running
 * and no directory behind. */
START_TEST(cluster_dies_with_its_test)
{
	int fds[2];
	pid_t child, pm = 0;
	char root[sizeof(((struct pgproc *)0)->root)] = "";
	double end;

	ck_assert_int_eq(pipe(fds), 0);
	child = fork();
	ck_assert_int_ge(child, 0);
	if (child == 0) {
		struct pgproc p;
		close(fds[0]);
		tu_pg_start(&p);
		if (write(fds[1], &p.pid, sizeof(p.pid)) < 0 ||
		    write(fds[1], p.root, sizeof(p.root)) < 0)
			_exit(2);
		close(fds[1]);
		pause();
		_exit(0);
	}
	close(fds[1]);
	ck_assert_int_eq(read(fds[0], &pm, sizeof(pm)), (ssize_t)sizeof(pm));
	ck_assert_int_eq(read(fds[0], root, sizeof(root)), (ssize_t)sizeof(root));
	close(fds[0]);
	ck_assert(running(pm));
	ck_assert_int_eq(access(root, F_OK), 0);
	kill(child, SIGKILL);
	waitpid(child, NULL, 0);
	end = tu_now() + tu_guard_ms(20000) / 1000.0;
	while ((running(pm) || access(root, F_OK) == 0) && tu_now() < end)
		tu_sleep_ms(20);
	ck_assert_msg(!running(pm), "postmaster %d still running", (int)pm);
	ck_assert_msg(access(root, F_OK) != 0, "%s still there", root);
}
END_TEST

Suite *pg_codec_suite(void)
{
	Suite *s = suite_create("pg_codec");
	TCase *unit = tcase_create("codec");
	TCase *server = tcase_create("server");
	TCase *cluster = tcase_create("cluster");

	tcase_add_test(unit, key_check_table);
	tcase_add_test(unit, strerror_names_each_status);
	tcase_add_test(unit, array_bytes_exact);
	tcase_add_test(unit, array_empty_is_dimensionless);
	tcase_add_test(unit, array_appends_after_existing_bytes);
	tcase_add_test(unit, array_encode_reports_the_bad_key);
	tcase_add_test(unit, array_refuses_past_the_limit);
	tcase_add_test(unit, array_many_keys_roundtrip);
	tcase_add_test(unit, value_decode_table);
	tcase_add_test(unit, bytea_is_raw_bytes);
	tcase_add_test(unit, flags_decode_ranges);
	tcase_add_test(unit, columns_check_cases);
	tcase_add_test(unit, sql_check_table);
	tcase_add_test(unit, sql_check_messages);
	tcase_add_test(unit, sql_check_every_prefix);
	tcase_add_test(unit, error_line_is_one_line);
	suite_add_tcase(s, unit);

	tcase_set_timeout(server, 120);
	tcase_add_unchecked_fixture(server, pg_up, pg_down);
	tcase_add_test(server, server_unnests_awkward_keys);
	tcase_add_test(server, server_takes_ten_thousand_keys);
	tcase_add_test(server, server_takes_the_empty_array);
	tcase_add_test(server, server_refuses_what_the_codec_refuses);
	tcase_add_test(server, server_binary_values_decode_to_their_text);
	tcase_add_test(server, server_bytea_is_exact);
	tcase_add_test(server, server_flags_from_int4_and_int8);
	tcase_add_test(server, server_agrees_with_sql_check);
	tcase_add_test(server, server_columns_check_on_described_statements);
	suite_add_tcase(s, server);

	tcase_set_timeout(cluster, 120);
	tcase_add_test(cluster, cluster_lifecycle);
	tcase_add_test(cluster, clusters_are_separate);
	tcase_add_test(cluster, cluster_dies_with_its_test);
	suite_add_tcase(s, cluster);
	return s;
}
