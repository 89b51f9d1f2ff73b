/*
 * test_pg_pipeline: the pipeline-mode connection module on its own, against
 * a real PostgreSQL: statements prepared once per connection, results
 * matched to their jobs in order, a failed statement or PREPARE aborting
 * only its own segment, and the batches of a connection that goes away
 * handed back.
 */
#include <check.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pg_pipeline.h"
#include "testpg.h"
#include "testutil.h"

Suite *pg_pipeline_suite(void);

static struct pgproc pg;

static void pg_up(void)
{
	tu_pg_start(&pg);
}

static void pg_down(void)
{
	tu_pg_stop(&pg);
}

enum { TEXT_OID = 25 };

/* What a result said, taken from pgp_next(). */
struct seen {
	enum pgp_kind kind;
	uint32_t stmt;
	void *payload;
	ExecStatusType status;
	char value[64]; /* first column of the first row; "" if none */
	char sqlstate[8];
};

static bool wait_fd(int fd, short events, int ms)
{
	struct pollfd p = {.fd = fd, .events = events};

	return poll(&p, 1, ms) > 0;
}

static void connect_up(struct pgp *p, uint32_t nstmts)
{
	double end = tu_now() + tu_guard_ms(10000) / 1000.0;
	enum pgp_poll st = PGP_WANT_WRITE;

	ck_assert_int_eq(pgp_init(p, nstmts), 0);
	ck_assert_msg(pgp_connect(p, pg.conninfo, NULL, NULL), "%s", pgp_error(p));
	while (st != PGP_UP && tu_now() < end) {
		ck_assert_msg(st != PGP_FAILED, "%s", pgp_error(p));
		wait_fd(pgp_socket(p), st == PGP_WANT_READ ? POLLIN : POLLOUT, 100);
		st = pgp_poll(p);
	}
	ck_assert_int_eq(st, PGP_UP);
}

static void send_text(struct pgp *p, uint32_t stmt, const char *sql, const char *arg, void *payload)
{
	char name[32];

	snprintf(name, sizeof(name), "t_%u", stmt);
	ck_assert_msg(
	    pgp_send(p, stmt, name, sql, TEXT_OID, arg, (int)strlen(arg), payload, tu_now()), "%s",
	    pgp_error(p));
}

/* Flush, then read until want results came (bounded); returns how many. */
static int collect(struct pgp *p, struct seen *out, int want)
{
	double end = tu_now() + tu_guard_ms(10000) / 1000.0;
	int n = 0;

	while (pgp_flush(p) == 1 && tu_now() < end)
		wait_fd(pgp_socket(p), POLLOUT, 100);
	while (n < want && tu_now() < end) {
		struct pgp_job j;
		PGresult *r;
		enum pgp_next k;

		wait_fd(pgp_socket(p), POLLIN, 100);
		ck_assert_msg(pgp_consume(p), "%s", pgp_error(p));
		while (n < want && (k = pgp_next(p, &j, &r)) == PGP_RESULT) {
			const char *state = PQresultErrorField(r, PG_DIAG_SQLSTATE);
			struct seen *s = &out[n++];
			memset(s, 0, sizeof(*s));
			s->kind = j.kind;
			s->stmt = j.stmt;
			s->payload = j.payload;
			s->status = PQresultStatus(r);
			if (s->status == PGRES_TUPLES_OK && PQntuples(r) > 0)
				snprintf(s->value, sizeof(s->value), "%.*s", PQgetlength(r, 0, 0),
				         PQgetvalue(r, 0, 0));
			snprintf(s->sqlstate, sizeof(s->sqlstate), "%s", state ? state : "");
			PQclear(r);
		}
		ck_assert_int_ne(k, PGP_OUT_OF_STEP);
	}
	return n;
}

#define Q_UPPER "SELECT upper($1::text)"
#define Q_INV "SELECT (100 / $1::text::int)::text"

/* Each statement is prepared on its first use only; every result comes
 * back with its own job and payload, in the order sent. */
START_TEST(statements_prepare_once_and_answer_in_order)
{
	struct pgp p;
	struct seen s[8];
	int a, b, c;

	connect_up(&p, 2);
	send_text(&p, 0, Q_UPPER, "abc", &a);
	send_text(&p, 1, Q_INV, "4", &b);
	send_text(&p, 0, Q_UPPER, "xyz", &c);
	ck_assert_uint_eq(p.execs, 3);
	ck_assert_uint_eq(pgp_oldest_exec(&p) > 0, 1);
	ck_assert_int_eq(collect(&p, s, 5), 5);
	ck_assert_int_eq(s[0].kind, PGP_PREPARE);
	ck_assert_int_eq(s[0].status, PGRES_COMMAND_OK);
	ck_assert_int_eq(s[1].kind, PGP_EXEC);
	ck_assert_ptr_eq(s[1].payload, &a);
	ck_assert_str_eq(s[1].value, "ABC");
	ck_assert_int_eq(s[2].kind, PGP_PREPARE);
	ck_assert_uint_eq(s[2].stmt, 1);
	ck_assert_int_eq(s[3].kind, PGP_EXEC);
	ck_assert_ptr_eq(s[3].payload, &b);
	ck_assert_str_eq(s[3].value, "25");
	ck_assert_int_eq(s[4].kind, PGP_EXEC); /* no second PREPARE */
	ck_assert_ptr_eq(s[4].payload, &c);
	ck_assert_str_eq(s[4].value, "XYZ");
	ck_assert_uint_eq(p.execs, 0);
	pgp_free(&p);
}
END_TEST

/* A statement that fails aborts its own segment only: the next one, on the
 * same connection, still runs. */
START_TEST(a_failed_statement_spares_the_next)
{
	struct pgp p;
	struct seen s[8];
	int a, b;

	connect_up(&p, 1);
	send_text(&p, 0, Q_INV, "0", &a);
	send_text(&p, 0, Q_INV, "5", &b);
	ck_assert_int_eq(collect(&p, s, 3), 3);
	ck_assert_int_eq(s[0].kind, PGP_PREPARE);
	ck_assert_int_eq(s[1].kind, PGP_EXEC);
	ck_assert_ptr_eq(s[1].payload, &a);
	ck_assert_int_eq(s[1].status, PGRES_FATAL_ERROR);
	ck_assert_str_eq(s[1].sqlstate, "22012"); /* division by zero */
	ck_assert_int_eq(s[2].kind, PGP_EXEC);
	ck_assert_ptr_eq(s[2].payload, &b);
	ck_assert_int_eq(s[2].status, PGRES_TUPLES_OK);
	ck_assert_str_eq(s[2].value, "20");
	pgp_free(&p);
}
END_TEST

/* A PREPARE that fails aborts its EXEC, and the statement is prepared
 * again when next used. */
START_TEST(a_failed_prepare_is_tried_again)
{
	struct pgp p;
	struct seen s[8];
	int a, b;

	connect_up(&p, 1);
	send_text(&p, 0, "SELECT upper($1::text) FROM no_such_table", "x", &a);
	ck_assert_int_eq(collect(&p, s, 2), 2);
	ck_assert_int_eq(s[0].kind, PGP_PREPARE);
	ck_assert_int_eq(s[0].status, PGRES_FATAL_ERROR);
	ck_assert_str_eq(s[0].sqlstate, "42P01");
	ck_assert_int_eq(s[1].kind, PGP_EXEC);
	ck_assert_ptr_eq(s[1].payload, &a);
	ck_assert_int_eq(s[1].status, PGRES_PIPELINE_ABORTED);
	/* The statement's name is free again: a PREPARE goes first. */
	send_text(&p, 0, Q_UPPER, "ok", &b);
	ck_assert_int_eq(collect(&p, s, 2), 2);
	ck_assert_int_eq(s[0].kind, PGP_PREPARE);
	ck_assert_int_eq(s[0].status, PGRES_COMMAND_OK);
	ck_assert_ptr_eq(s[1].payload, &b);
	ck_assert_str_eq(s[1].value, "OK");
	pgp_free(&p);
}
END_TEST

/* A connection that goes away hands back every payload still queued, once
 * each, including one put back after its result; none is left behind. */
START_TEST(payloads_come_back_when_the_connection_goes)
{
	struct pgp p;
	struct seen s[4];
	int a, b, c;
	void *got[4] = {0};
	int n = 0;

	connect_up(&p, 1);
	send_text(&p, 0, Q_UPPER, "a", &a);
	ck_assert_int_eq(collect(&p, s, 2), 2); /* PREPARE, then a's EXEC: a is ours */
	ck_assert_ptr_eq(s[1].payload, &a);
	ck_assert_uint_eq(p.execs, 0);
	pgp_put_back(&p, &a); /* as the backend does when the connection fails */
	send_text(&p, 0, Q_UPPER, "b", &b);
	send_text(&p, 0, Q_UPPER, "c", &c);
	ck_assert_uint_eq(p.execs, 3);
	for (void *x; n < 4 && (x = pgp_take_exec(&p));)
		got[n++] = x;
	ck_assert_int_eq(n, 3);
	ck_assert_ptr_eq(got[0], &a);
	ck_assert_ptr_eq(got[1], &b);
	ck_assert_ptr_eq(got[2], &c);
	ck_assert_uint_eq(p.execs, 0);
	pgp_close(&p);
	ck_assert_ptr_null(pgp_take_exec(&p));
	ck_assert_int_eq(pgp_socket(&p), -1);
	pgp_free(&p);
}
END_TEST

/* No server there: the start or the first steps fail, with libpq's words. */
START_TEST(a_failed_connect_says_why)
{
	struct pgp p;
	char conninfo[128];
	double end = tu_now() + tu_guard_ms(10000) / 1000.0;
	enum pgp_poll st = PGP_WANT_WRITE;

	snprintf(conninfo, sizeof(conninfo), "host=127.0.0.1 port=%d connect_timeout=2",
	         tu_free_port());
	ck_assert_int_eq(pgp_init(&p, 1), 0);
	if (pgp_connect(&p, conninfo, NULL, NULL)) {
		while (st != PGP_FAILED && st != PGP_UP && tu_now() < end) {
			wait_fd(pgp_socket(&p), st == PGP_WANT_READ ? POLLIN : POLLOUT, 100);
			st = pgp_poll(&p);
		}
		ck_assert_int_eq(st, PGP_FAILED);
	}
	ck_assert_ptr_nonnull(strstr(pgp_error(&p), "refused"));
	pgp_free(&p);
}
END_TEST

Suite *pg_pipeline_suite(void)
{
	Suite *s = suite_create("pg_pipeline");
	TCase *tc = tcase_create("pipeline");

	tcase_set_timeout(tc, 60);
	tcase_add_unchecked_fixture(tc, pg_up, pg_down);
	tcase_add_test(tc, statements_prepare_once_and_answer_in_order);
	tcase_add_test(tc, a_failed_statement_spares_the_next);
	tcase_add_test(tc, a_failed_prepare_is_tried_again);
	tcase_add_test(tc, payloads_come_back_when_the_connection_goes);
	tcase_add_test(tc, a_failed_connect_says_why);
	suite_add_tcase(s, tc);
	return s;
}
