/*
 * test_postgres: coalesced in front of a real PostgreSQL (DESIGN 7.2):
 * routes, values, collapse and batching counted with pg_stat_statements,
 * error isolation, faults of the database, reload and `-t`.
 *
 * The "server" TCase shares one cluster started in the runner; each test
 * starts its own coalesced. Fault tests start (and kill) their own cluster.
 */
#include <check.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "testpg.h"
#include "testutil.h"

Suite *postgres_suite(void);

static struct pgproc pg;

static const char schema[] =
    "CREATE TABLE kv (k text PRIMARY KEY, v text, f integer);"
    "CREATE TABLE users (id bigint PRIMARY KEY, name text);"
    "CREATE TABLE blobs (k text PRIMARY KEY, b bytea, f bigint);"
    "CREATE TABLE dups (k text, v text, n integer);"
    "INSERT INTO kv VALUES ('a', 'alpha', NULL), ('b', 'beta', 7), ('nullv', NULL, NULL),"
    " ('slow', 'slept', NULL), ('q''x', 'quote', NULL), ('b\\s', 'backslash', NULL),"
    " ('x;DROP TABLE kv;--', 'semicolon', NULL), ('h\xc3\xa9', 'utf8', NULL);"
    "INSERT INTO kv SELECT 'k' || i, 'v' || i, NULL FROM generate_series(0, 299) i;"
    "INSERT INTO users VALUES (1, 'ann'), (2, 'bob');"
    "INSERT INTO blobs VALUES ('bin', '\\x00ff0d0a20'::bytea, 4294967295);"
    "INSERT INTO dups VALUES ('d', 'first', 1), ('d', 'second', 2);"
    "GRANT SELECT ON kv, users, blobs, dups TO " TU_PG_USER ";";

static void pg_up(void)
{
	tu_pg_start(&pg);
	free(tu_pg_exec(&pg, schema));
}

static void pg_down(void)
{
	tu_pg_stop(&pg);
}

#define Q_STAR "SELECT k, v, f FROM kv WHERE k = ANY($1)"
#define Q_USER "SELECT id::text, name FROM users WHERE id = ANY($1::bigint[])"
#define Q_BLOB "SELECT k, b, f FROM blobs WHERE k = ANY($1)"
#define Q_SLOW "SELECT k, v FROM kv, (SELECT pg_sleep(0.5)) s WHERE k = ANY($1)"
#define Q_DUPS "SELECT k, v FROM dups WHERE k = ANY($1) ORDER BY n"

/* A configuration file for pg with the given [queries] lines and extra
 * lines for [upstream]; returns its path (static). */
static const char *write_conf(const char *conninfo, const char *queries, const char *upstream,
                              int port)
{
	static char path[256];
	FILE *f;

	snprintf(path, sizeof(path), "%s/pg-%d.ini", tu_tmpdir(), port);
	f = fopen(path, "w");
	ck_assert_ptr_nonnull(f);
	/* Connecting (SCRAM authentication included) is slow under valgrind:
	 * the connect timeout is a hang guard, scaled like the others. */
	fprintf(f,
	        "[server]\nlisten = 127.0.0.1:%d\nlog_level = debug\n"
	        "[upstream]\nprotocol = postgres\nconnect_timeout_ms = %d\n%s\n"
	        "[postgres]\nconninfo = %s\n[queries]\n%s\n",
	        port, tu_guard_ms(1000), upstream ? upstream : "", conninfo, queries);
	fclose(f);
	return path;
}

static void wait_port(struct proc *p)
{
	for (int i = 0; i < 500; i++) {
		int fd = tu_connect(p->port);
		if (fd >= 0) {
			close(fd);
			return;
		}
		ck_assert_msg(waitpid(p->pid, NULL, WNOHANG) != p->pid, "coalesced exited (log %s)",
		              p->log);
		tu_sleep_ms(10);
	}
	ck_abort_msg("coalesced not listening (log %s)", p->log);
}

static void co_start_conf(struct proc *co, const char *conninfo, const char *queries,
                          const char *upstream)
{
	const char *args[4];

	memset(co, 0, sizeof(*co));
	co->port = tu_free_port();
	args[0] = "-c";
	args[1] = write_conf(conninfo, queries, upstream, co->port);
	args[2] = NULL;
	snprintf(co->log, sizeof(co->log), "%s/coalesced-pg-%d.log", tu_tmpdir(), co->port);
	co->pid = tu_coalesced_spawn(args, co->log);
	wait_port(co);
}

static void co_start(struct proc *co, const char *upstream)
{
	co_start_conf(co, pg.conninfo,
	              "* = " Q_STAR "\nuser = " Q_USER "\nblob = " Q_BLOB "\nslow = " Q_SLOW
	              "\ndup = " Q_DUPS "\n",
	              upstream);
}

/* The reply to req, waiting for its last line. */
static char *ask(int port, const char *req, const char *stop)
{
	int fd = tu_connect(port);
	char *r;

	ck_assert_int_ge(fd, 0);
	tu_sends(fd, req);
	r = tu_recv_until(fd, stop, 10000, NULL);
	close(fd);
	return r;
}

static void expect(int port, const char *req, const char *want)
{
	char *r = ask(port, req, strstr(want, "END\r\n") ? "END\r\n" : "\r\n");
	ck_assert_msg(strcmp(r, want) == 0, "%s -> [%s], want [%s]", req, r, want);
	free(r);
}

START_TEST(hit_miss_null_and_routes)
{
	struct proc co;

	co_start(&co, NULL);
	expect(co.port, "get a\r\n", "VALUE a 0 5\r\nalpha\r\nEND\r\n");
	expect(co.port, "get b\r\n", "VALUE b 7 4\r\nbeta\r\nEND\r\n");
	expect(co.port, "get nope\r\n", "END\r\n");
	expect(co.port, "get nullv\r\n", "END\r\n");
	/* A prefix route gets the part after "prefix:". */
	expect(co.port, "get user:1 user:2 user:3\r\n",
	       "VALUE user:1 0 3\r\nann\r\nVALUE user:2 0 3\r\nbob\r\nEND\r\n");
	/* A prefix without a route goes to "*" whole. */
	expect(co.port, "get other:a a\r\n", "VALUE a 0 5\r\nalpha\r\nEND\r\n");
	/* Duplicate rows: the first wins. */
	expect(co.port, "get dup:d\r\n", "VALUE dup:d 0 5\r\nfirst\r\nEND\r\n");
	ck_assert_int_ge(tu_stat(co.port, "pg_rows_ignored"), 1);
	ck_assert_int_ge(tu_stat(co.port, "pg_statements"), 5);
	/* Writes are refused. */
	expect(co.port, "set a 0 0 1\r\nx\r\n", "SERVER_ERROR not supported\r\n");
	tu_stop_clean(&co);
}
END_TEST

START_TEST(bytea_and_flags)
{
	struct proc co;
	char *r;

	co_start(&co, NULL);
	r = ask(co.port, "get blob:bin\r\n", "END\r\n");
	ck_assert_int_eq(memcmp(r, "VALUE blob:bin 4294967295 5\r\n\0\xff\r\n \r\nEND\r\n", 39), 0);
	free(r);
	tu_stop_clean(&co);
}
END_TEST

START_TEST(keys_are_literal)
{
	struct proc co;

	co_start(&co, NULL);
	expect(co.port, "get q'x\r\n", "VALUE q'x 0 5\r\nquote\r\nEND\r\n");
	expect(co.port, "get b\\s\r\n", "VALUE b\\s 0 9\r\nbackslash\r\nEND\r\n");
	expect(co.port, "get x;DROP\r\n", "END\r\n");
	expect(co.port, "get x;DROP%TABLE\r\n", "END\r\n");
	expect(co.port, "get h\xc3\xa9\r\n", "VALUE h\xc3\xa9 0 4\r\nutf8\r\nEND\r\n");
	/* Invalid UTF-8 fails alone; the table is still there. */
	expect(co.port, "get h\xff\r\n",
	       "SERVER_ERROR key not valid for postgres: key is not valid UTF-8\r\n");
	expect(co.port, "get a\r\n", "VALUE a 0 5\r\nalpha\r\nEND\r\n");
	tu_stop_clean(&co);
}
END_TEST

START_TEST(no_route_sends_nothing)
{
	struct proc co;
	long long before;

	co_start_conf(&co, pg.conninfo, "user = " Q_USER "\n", NULL);
	before = tu_pg_calls(&pg, "%FROM users%");
	expect(co.port, "get nothing:1\r\n", "SERVER_ERROR no query for key\r\n");
	expect(co.port, "get user:1\r\n", "VALUE user:1 0 3\r\nann\r\nEND\r\n");
	ck_assert_int_eq(tu_pg_calls(&pg, "%FROM users%"), before + 1);
	tu_stop_clean(&co);
}
END_TEST

/* RESP clients read through the same routes: a bulk, nil for a miss, an
 * array for MGET, Redis' error for a key no route takes, writes refused. */
START_TEST(resp_clients)
{
	struct proc co;
	char extra[96], *r;
	int rport = tu_free_port(), fd;

	snprintf(extra, sizeof(extra), "\n[server]\nredis_listen = 127.0.0.1:%d\n", rport);
	co_start_conf(&co, pg.conninfo, "user = " Q_USER "\n* = " Q_STAR "\n", extra);
	struct proc rp = {.pid = co.pid, .port = rport};
	wait_port(&rp);
	fd = tu_connect(rport);
	ck_assert_int_ge(fd, 0);
	tu_sends(fd,
	         "GET a\r\nGET nope\r\nMGET user:1 user:3 b\r\n*2\r\n$3\r\nGET\r\n$6\r\nuser:2\r\n"
	         "SET a x\r\nPING\r\n");
	r = tu_recv_until(fd, "+PONG\r\n", 10000, NULL);
	ck_assert_str_eq(r, "$5\r\nalpha\r\n$-1\r\n*3\r\n$3\r\nann\r\n$-1\r\n$4\r\nbeta\r\n"
	                    "$3\r\nbob\r\n-ERR not supported\r\n+PONG\r\n");
	free(r);
	close(fd);
	tu_stop_clean(&co);
	/* Without a catch-all route, a key no route takes. */
	co_start_conf(&co, pg.conninfo, "user = " Q_USER "\n", extra);
	rp.pid = co.pid;
	wait_port(&rp);
	fd = tu_connect(rport);
	tu_sends(fd, "GET other\r\nMGET user:1 other\r\nGET user:1\r\n");
	r = tu_recv_until(fd, "$3\r\nann\r\n", 10000, NULL);
	ck_assert_str_eq(r, "-ERR no query for key\r\n-ERR no query for key\r\n$3\r\nann\r\n");
	free(r);
	close(fd);
	tu_stop_clean(&co);
}
END_TEST

START_TEST(error_isolation)
{
	struct proc co;
	char *r;
	int fd;

	co_start(&co, "[batch]\nleeway_ms = 50\n");
	/* One batch with the three keys; the bad one fails alone. */
	int fds[3];
	const char *keys[3] = {"user:1", "user:abc", "user:2"};
	for (int i = 0; i < 3; i++) {
		char req[64];
		fds[i] = tu_connect(co.port);
		ck_assert_int_ge(fds[i], 0);
		snprintf(req, sizeof(req), "get %s\r\n", keys[i]);
		tu_sends(fds[i], req);
	}
	r = tu_recv_until(fds[0], "END\r\n", 10000, NULL);
	ck_assert_str_eq(r, "VALUE user:1 0 3\r\nann\r\nEND\r\n");
	free(r);
	r = tu_recv_until(fds[1], "\r\n", 10000, NULL);
	ck_assert_str_eq(r, "SERVER_ERROR upstream error: invalid input syntax for type bigint: "
	                    "\"abc\"\r\n");
	free(r);
	r = tu_recv_until(fds[2], "END\r\n", 10000, NULL);
	ck_assert_str_eq(r, "VALUE user:2 0 3\r\nbob\r\nEND\r\n");
	free(r);
	for (int i = 0; i < 3; i++)
		close(fds[i]);
	ck_assert_int_ge(tu_stat(co.port, "batch_splits"), 1);
	/* One request with them: that one error line. */
	fd = tu_connect(co.port);
	tu_sends(fd, "get user:1 user:abc user:2\r\n");
	r = tu_recv_until(fd, "\r\n", 10000, NULL);
	ck_assert_str_eq(r, "SERVER_ERROR upstream error: invalid input syntax for type bigint: "
	                    "\"abc\"\r\n");
	free(r);
	close(fd);
	tu_stop_clean(&co);
}
END_TEST

/* Connect n clients, send each its request, return the sockets. */
static void many(int port, int n, int *fds, const char *fmt, int distinct)
{
	for (int i = 0; i < n; i++) {
		char req[64];
		fds[i] = tu_connect(port);
		ck_assert_int_ge(fds[i], 0);
		snprintf(req, sizeof(req), fmt, distinct ? i : 0);
		tu_sends(fds[i], req);
	}
}

START_TEST(collapse_slow_key)
{
	struct proc co;
	int fds[50];
	long long before = tu_pg_calls(&pg, "%pg_sleep%");

	co_start(&co, NULL);
	many(co.port, 50, fds, "get slow:slow\r\n", 0);
	for (int i = 0; i < 50; i++) {
		char *r = tu_recv_until(fds[i], "END\r\n", 10000, NULL);
		ck_assert_str_eq(r, "VALUE slow:slow 0 5\r\nslept\r\nEND\r\n");
		free(r);
		close(fds[i]);
	}
	ck_assert_int_eq(tu_pg_calls(&pg, "%pg_sleep%") - before, 1);
	tu_stop_clean(&co);
}
END_TEST

START_TEST(batching_distinct_keys)
{
	struct proc co;
	int fds[100];
	long long before = tu_pg_calls(&pg, "%FROM kv WHERE%");

	co_start(&co, "pipeline_depth = 1\nconnections = 1\n");
	many(co.port, 100, fds, "get k%d\r\n", 1);
	for (int i = 0; i < 100; i++) {
		char want[64], *r = tu_recv_until(fds[i], "END\r\n", 10000, NULL);
		snprintf(want, sizeof(want), "VALUE k%d 0 %d\r\nv%d\r\nEND\r\n", i, i < 10 ? 2 : 3,
		         i);
		ck_assert_str_eq(r, want);
		free(r);
		close(fds[i]);
	}
	/* Distinct keys share statements: far fewer than one per client. */
	ck_assert_int_le(tu_pg_calls(&pg, "%FROM kv WHERE%") - before, 25);
	tu_stop_clean(&co);
}
END_TEST

START_TEST(prepare_failure_is_per_route)
{
	struct proc co;
	char *r;

	co_start_conf(&co, pg.conninfo,
	              "* = " Q_STAR "\nbad = SELECT k, v FROM no_such_table WHERE k = ANY($1)\n",
	              NULL);
	expect(co.port, "get bad:1\r\n",
	       "SERVER_ERROR upstream error: relation \"no_such_table\" does not exist\r\n");
	expect(co.port, "get a\r\n", "VALUE a 0 5\r\nalpha\r\nEND\r\n");
	expect(co.port, "get bad:2\r\n",
	       "SERVER_ERROR upstream error: relation \"no_such_table\" does not exist\r\n");
	tu_stop_clean(&co);
	r = tu_read_file(co.log, NULL);
	ck_assert_ptr_nonnull(strstr(r, "route bad: the query does not prepare: relation"));
	free(r);
}
END_TEST

START_TEST(route_metrics)
{
	struct proc co;
	char extra[128], *r;
	int mport = tu_free_port(), fd;

	snprintf(extra, sizeof(extra), "[metrics]\nlisten = 127.0.0.1:%d\n", mport);
	co_start(&co, extra);
	expect(co.port, "get user:1 user:9\r\n", "VALUE user:1 0 3\r\nann\r\nEND\r\n");
	expect(co.port, "get user:x\r\n",
	       "SERVER_ERROR upstream error: invalid input syntax for type bigint: \"x\"\r\n");
	fd = tu_connect(mport);
	ck_assert_int_ge(fd, 0);
	tu_sends(fd, "GET /metrics HTTP/1.0\r\n\r\n");
	r = tu_recv_all(fd, 500, 5000, NULL);
	close(fd);
	ck_assert_msg(strstr(r, "coalesced_pg_route_keys_total{route=\"user\"} 3\n"), "%s", r);
	ck_assert_msg(strstr(r, "coalesced_pg_route_statements_total{route=\"user\"} 2\n"), "%s",
	              r);
	ck_assert_msg(strstr(r, "coalesced_pg_route_rows_total{route=\"user\"} 1\n"), "%s", r);
	ck_assert_msg(strstr(r, "coalesced_pg_route_misses_total{route=\"user\"} 1\n"), "%s", r);
	ck_assert_msg(strstr(r, "coalesced_pg_route_errors_total{route=\"user\"} 1\n"), "%s", r);
	ck_assert_msg(strstr(r, "coalesced_pg_route_splits_total{route=\"user\"} 0\n"), "%s", r);
	ck_assert_msg(
	    strstr(r, "coalesced_pg_route_statement_duration_seconds_count{route=\"user\"} 2\n"),
	    "%s", r);
	ck_assert_msg(strstr(r, "coalesced_pg_route_keys_total{route=\"*\"} 0\n"), "%s", r);
	free(r);
	/* The same figures in `stats`. */
	ck_assert_int_eq(tu_stat(co.port, "route:user:keys"), 3);
	ck_assert_int_eq(tu_stat(co.port, "route:user:statements"), 2);
	ck_assert_int_eq(tu_stat(co.port, "route:user:rows"), 1);
	ck_assert_int_eq(tu_stat(co.port, "route:user:misses"), 1);
	ck_assert_int_eq(tu_stat(co.port, "route:user:errors"), 1);
	ck_assert_int_eq(tu_stat(co.port, "route:user:splits"), 0);
	ck_assert_int_eq(tu_stat(co.port, "route:user:statement_seconds_le_inf"), 2);
	ck_assert_int_eq(tu_stat(co.port, "route:user:statement_seconds_count"), 2);
	ck_assert_int_eq(tu_stat(co.port, "route:*:keys"), 0);
	tu_stop_clean(&co);
}
END_TEST

START_TEST(check_mode)
{
	char path[256], log[256];
	FILE *f;
	const char *args[4];
	pid_t pid;
	int st;
	char *out;

	snprintf(log, sizeof(log), "%s/pg-t.log", tu_tmpdir());
	snprintf(path, sizeof(path), "%s/pg-t.ini", tu_tmpdir());
	/* No database: conninfo points nowhere, -t does not connect. */
	f = fopen(path, "w");
	fprintf(f, "[upstream]\nprotocol = postgres\n[postgres]\nconninfo = host=127.0.0.1 "
	           "port=1\n[queries]\n* = " Q_STAR "\nuser = " Q_USER "\n");
	fclose(f);
	args[0] = "-t";
	args[1] = "-c";
	args[2] = path;
	args[3] = NULL;
	pid = tu_coalesced_spawn(args, log);
	st = tu_wait(pid, 5000);
	ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0, "-t on a good file");

	f = fopen(path, "w");
	fprintf(f, "[upstream]\nprotocol = postgres\nservers = 127.0.0.1:11211\n[queries]\n"
	           "* = SELECT k, v FROM kv WHERE k = $2\nuser = SELECT 1; SELECT $1\n"
	           "two = SELECT $1\ntwo = SELECT $1\n");
	fclose(f);
	pid = tu_coalesced_spawn(args, log);
	st = tu_wait(pid, 5000);
	ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) != 0, "-t on a bad file");
	out = tu_read_file(log, NULL);
	ck_assert_msg(strstr(out, ":3: [upstream] servers: not used with protocol = postgres"),
	              "%s", out);
	ck_assert_msg(strstr(out, ":5: [queries] *: "), "%s", out);
	ck_assert_msg(strstr(out, ":6: [queries] user: "), "%s", out);
	ck_assert_msg(strstr(out, ":8: [queries] two: given twice"), "%s", out);
	free(out);

	f = fopen(path, "w");
	fprintf(f, "[upstream]\nprotocol = postgres\n[postgres]\nconninfo = host=x nonsense\n"
	           "[queries]\n* = " Q_STAR "\n");
	fclose(f);
	pid = tu_coalesced_spawn(args, log);
	st = tu_wait(pid, 5000);
	ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) != 0, "-t with a bad conninfo");
	out = tu_read_file(log, NULL);
	ck_assert_msg(strstr(out, ":4: [postgres] conninfo: missing \"=\" after \"nonsense\""),
	              "%s", out);
	free(out);

	f = fopen(path, "w");
	fprintf(f, "[upstream]\nprotocol = postgres\n");
	fclose(f);
	pid = tu_coalesced_spawn(args, log);
	st = tu_wait(pid, 5000);
	ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) != 0, "-t without [queries]");
	out = tu_read_file(log, NULL);
	ck_assert_msg(strstr(out, "postgres needs a [queries] section"), "%s", out);
	free(out);
}
END_TEST

/* ---- faults: each test has its own cluster ---- */

static void own_cluster(struct pgproc *p)
{
	tu_pg_start(p);
	free(tu_pg_exec(p, schema));
}

static void own_co(struct proc *co, struct pgproc *p, const char *upstream)
{
	co_start_conf(co, p->conninfo, "* = " Q_STAR "\nslow = " Q_SLOW "\n", upstream);
}

/* Ask until the reply is want, at most n times, 100 ms apart. A `version`
 * follows req: its reply ends every answer, so an answer that is not want
 * (an error where a value is awaited) costs no wait for what never comes. */
static bool eventually(int port, const char *req, const char *want, int n)
{
	char both[256];
	size_t wl = strlen(want);

	snprintf(both, sizeof(both), "%sversion\r\n", req);
	for (int i = 0; i < n; i++) {
		char *r = ask(port, both, "VERSION ");
		bool ok;
		ok = strncmp(r, want, wl) == 0 && strncmp(r + wl, "VERSION ", 8) == 0;
		free(r);
		if (ok)
			return true;
		tu_sleep_ms(100);
	}
	return false;
}

START_TEST(fault_down_at_start)
{
	struct pgproc p;
	struct proc co;

	own_cluster(&p);
	tu_pg_kill(&p); /* the data stay, for the restart */
	own_co(&co, &p, NULL);
	expect(co.port, "get a\r\n", "SERVER_ERROR upstream unavailable\r\n");
	tu_pg_restart(&p);
	/* Reconnects on its own, with backoff. */
	ck_assert(eventually(co.port, "get a\r\n", "VALUE a 0 5\r\nalpha\r\nEND\r\n", 50));
	tu_stop_clean(&co);
	tu_pg_stop(&p);
}
END_TEST

START_TEST(fault_killed_and_restarted)
{
	struct pgproc p;
	struct proc co;
	int fd;
	char *r;

	own_cluster(&p);
	own_co(&co, &p, NULL);
	expect(co.port, "get a\r\n", "VALUE a 0 5\r\nalpha\r\nEND\r\n");
	/* Killed while a statement runs: retries, then unavailable. */
	fd = tu_connect(co.port);
	tu_sends(fd, "get slow:slow\r\n");
	tu_sleep_ms(150);
	tu_pg_kill(&p);
	r = tu_recv_until(fd, "\r\n", 10000, NULL);
	ck_assert_str_eq(r, "SERVER_ERROR upstream unavailable\r\n");
	free(r);
	close(fd);
	tu_pg_restart(&p);
	ck_assert(eventually(co.port, "get a\r\n", "VALUE a 0 5\r\nalpha\r\nEND\r\n", 50));
	/* A restart (fast shutdown) as well. */
	tu_pg_restart(&p);
	ck_assert(eventually(co.port, "get b\r\n", "VALUE b 7 4\r\nbeta\r\nEND\r\n", 50));
	tu_stop_clean(&co);
	tu_pg_stop(&p);
}
END_TEST

START_TEST(fault_statement_timeout)
{
	struct pgproc p;
	struct proc co;
	char *r;

	own_cluster(&p);
	own_co(&co, &p, "timeout_ms = 200\nretries = 1\n");
	r = ask(co.port, "get slow:slow\r\n", "\r\n");
	ck_assert_str_eq(r, "SERVER_ERROR upstream timeout\r\n");
	free(r);
	ck_assert_int_ge(tu_stat(co.port, "upstream_timeouts"), 1);
	/* The loop never blocked: the others are answered. */
	expect(co.port, "get a\r\n", "VALUE a 0 5\r\nalpha\r\nEND\r\n");
	tu_stop_clean(&co);
	r = tu_read_file(co.log, NULL);
	ck_assert_ptr_nonnull(strstr(r, "ran past timeout_ms"));
	free(r);
	tu_pg_stop(&p);
}
END_TEST

START_TEST(fault_max_connections)
{
	struct pgproc p;
	struct proc co;
	PGconn *hold[3];

	own_cluster(&p);
	free(tu_pg_exec(&p, "ALTER SYSTEM SET max_connections = 5"));
	free(tu_pg_exec(&p, "ALTER SYSTEM SET superuser_reserved_connections = 2"));
	free(tu_pg_exec(&p, "ALTER SYSTEM SET max_wal_senders = 0"));
	tu_pg_restart(&p);
	for (int i = 0; i < 3; i++)
		hold[i] = tu_pg_connect(p.conninfo);
	own_co(&co, &p, "connections = 1\n");
	ck_assert(eventually(co.port, "get a\r\n", "SERVER_ERROR upstream unavailable\r\n", 20));
	PQfinish(hold[0]);
	ck_assert(eventually(co.port, "get a\r\n", "VALUE a 0 5\r\nalpha\r\nEND\r\n", 50));
	PQfinish(hold[1]);
	PQfinish(hold[2]);
	tu_stop_clean(&co);
	char *r = tu_read_file(co.log, NULL);
	ck_assert_msg(strstr(r, "too many clients") || strstr(r, "connection slots are reserved"),
	              "%s", r);
	free(r);
	tu_pg_stop(&p);
}
END_TEST

START_TEST(fault_authentication)
{
	struct pgproc p;
	struct proc co;
	char conninfo[600], *r, *pw;

	own_cluster(&p);
	snprintf(conninfo, sizeof(conninfo), "%s", p.conninfo);
	pw = strstr(conninfo, TU_PG_PASSWORD);
	ck_assert_ptr_nonnull(pw);
	memcpy(pw, "wrongpassword-zz", 16); /* same length as the real one's start */
	co_start_conf(&co, conninfo, "* = " Q_STAR "\n", NULL);
	expect(co.port, "get a\r\n", "SERVER_ERROR upstream unavailable\r\n");
	tu_stop_clean(&co);
	r = tu_read_file(co.log, NULL);
	ck_assert_msg(
	    strstr(r, "cannot connect (host=127.0.0.1 dbname=" TU_PG_DB " user=" TU_PG_USER "): "),
	    "%s", r);
	ck_assert_msg(strstr(r, "password authentication failed"), "%s", r);
	ck_assert_msg(!strstr(r, "wrongpassword-zz"), "the password is logged: %s", r);
	free(r);
	tu_pg_stop(&p);
}
END_TEST

START_TEST(reload_queries_and_conninfo)
{
	struct pgproc p, p2;
	struct proc co;
	int fd;
	char *r;

	own_cluster(&p);
	own_co(&co, &p, NULL);
	fd = tu_connect(co.port);
	tu_sends(fd, "get a\r\n");
	r = tu_recv_until(fd, "END\r\n", 10000, NULL);
	ck_assert_str_eq(r, "VALUE a 0 5\r\nalpha\r\nEND\r\n");
	free(r);
	/* New routes: user appears. */
	write_conf(p.conninfo, "* = " Q_STAR "\nuser = " Q_USER "\n", NULL, co.port);
	kill(co.pid, SIGHUP);
	ck_assert(eventually(co.port, "get user:1\r\n", "VALUE user:1 0 3\r\nann\r\nEND\r\n", 50));
	/* New database: the value differs there. */
	own_cluster(&p2);
	free(tu_pg_exec(&p2, "UPDATE kv SET v = 'other' WHERE k = 'a'"));
	write_conf(p2.conninfo, "* = " Q_STAR "\n", NULL, co.port);
	kill(co.pid, SIGHUP);
	ck_assert(eventually(co.port, "get a\r\n", "VALUE a 0 5\r\nother\r\nEND\r\n", 50));
	/* The first client is still connected and served. */
	tu_sends(fd, "get b\r\n");
	r = tu_recv_until(fd, "END\r\n", 10000, NULL);
	ck_assert_str_eq(r, "VALUE b 7 4\r\nbeta\r\nEND\r\n");
	free(r);
	close(fd);
	tu_stop_clean(&co);
	tu_pg_stop(&p2);
	tu_pg_stop(&p);
}
END_TEST

/* With threads, the first thread alone connects and fetches: the database
 * sees `connections`, not threads times that, and the log says so. */
START_TEST(threads_share_one_set_of_connections)
{
	struct proc co;
	const char *args[6];
	char *r;
	int fds[8];
	long long n = -1;
	double end;

	memset(&co, 0, sizeof(co));
	co.port = tu_free_port();
	args[0] = "-c";
	args[1] = write_conf(pg.conninfo, "user = " Q_USER "\n", "connections = 2\n", co.port);
	args[2] = "-o";
	args[3] = "server.threads=4";
	args[4] = NULL;
	snprintf(co.log, sizeof(co.log), "%s/coalesced-pg-%d.log", tu_tmpdir(), co.port);
	co.pid = tu_coalesced_spawn(args, co.log);
	wait_port(&co);
	/* Clients on every thread. */
	for (int i = 0; i < 8; i++) {
		fds[i] = tu_connect(co.port);
		ck_assert_int_ge(fds[i], 0);
	}
	for (int i = 0; i < 8; i++) {
		tu_sends(fds[i], "get user:1 user:2\r\n");
		r = tu_recv_until(fds[i], "END\r\n", 10000, NULL);
		ck_assert_str_eq(r,
		                 "VALUE user:1 0 3\r\nann\r\nVALUE user:2 0 3\r\nbob\r\nEND\r\n");
		free(r);
	}
	/* Earlier tests' daemons may still be leaving the server. */
	end = tu_now() + tu_guard_ms(5000) / 1000.0;
	while (n != 2 && tu_now() < end) {
		char *v = tu_pg_exec(&pg, "SELECT count(*) FROM pg_stat_activity "
		                          "WHERE application_name = 'coalesced'");
		n = v ? atoll(v) : -1;
		free(v);
		if (n != 2)
			tu_sleep_ms(50);
	}
	ck_assert_int_eq(n, 2);
	for (int i = 0; i < 8; i++)
		close(fds[i]);
	tu_stop_clean(&co);
	r = tu_read_file(co.log, NULL);
	ck_assert_msg(strstr(r, "4 threads; the first fetches every key") != NULL, "%s", r);
	ck_assert_msg(strstr(r, "each with its own upstream connections") == NULL, "%s", r);
	free(r);
}
END_TEST

Suite *postgres_suite(void)
{
	Suite *s = suite_create("postgres");
	TCase *server = tcase_create("server");
	TCase *faults = tcase_create("faults");

	tcase_set_timeout(server, 120);
	tcase_add_unchecked_fixture(server, pg_up, pg_down);
	tcase_add_test(server, hit_miss_null_and_routes);
	tcase_add_test(server, bytea_and_flags);
	tcase_add_test(server, keys_are_literal);
	tcase_add_test(server, no_route_sends_nothing);
	tcase_add_test(server, error_isolation);
	tcase_add_test(server, collapse_slow_key);
	tcase_add_test(server, batching_distinct_keys);
	tcase_add_test(server, prepare_failure_is_per_route);
	tcase_add_test(server, check_mode);
	tcase_add_test(server, route_metrics);
	tcase_add_test(server, resp_clients);
	tcase_add_test(server, threads_share_one_set_of_connections);
	suite_add_tcase(s, server);

	tcase_set_timeout(faults, 120);
	tcase_add_test(faults, fault_down_at_start);
	tcase_add_test(faults, fault_killed_and_restarted);
	tcase_add_test(faults, fault_statement_timeout);
	tcase_add_test(faults, fault_max_connections);
	tcase_add_test(faults, fault_authentication);
	tcase_add_test(faults, reload_queries_and_conninfo);
	suite_add_tcase(s, faults);
	return s;
}
