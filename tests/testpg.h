/*
 * testpg: throw-away PostgreSQL clusters for the tests.
 *
 * A cluster lives in a fresh temporary directory (data directory, unix
 * socket directory), listens on a free port of 127.0.0.1 and on its own
 * unix socket, and runs as the unprivileged user "nobody" when the tests run
 * as root (PostgreSQL refuses root); otherwise as the current user. The
 * postmaster is started directly (no pg_ctl) and stopped by PID: SIGINT
 * (fast shutdown) for tu_pg_stop; tu_pg_kill is a crash, SIGKILL to the
 * postmaster and every backend at once.
 *
 * A cluster never outlives the test that started it: besides the postmaster
 * dying with its parent, a small guard process kills it and removes its
 * directory as soon as the starting process is gone, whether it returned,
 * failed an assertion or was killed by Check's timeout.
 *
 * Speed: initdb runs once per test runner, into a template that already has
 * the role, the database and pg_stat_statements; every cluster is a copy of
 * it, so a start costs a copy and a postmaster start (well under a second
 * on an idle machine). The template is removed when the runner exits.
 *
 * Every cluster has: database TU_PG_DB owned by role TU_PG_USER (password
 * TU_PG_PASSWORD, required over TCP and the socket), the superuser
 * "postgres" (no password), pg_stat_statements loaded and created in
 * TU_PG_DB with pg_stat_statements.save=off (each start counts from zero),
 * fsync off (a commit survives the server's crash, not the machine's),
 * autovacuum off, English messages, UTF-8.
 *
 * Settings that need a restart (max_connections, ...) are changed with
 * tu_pg_exec(p, "ALTER SYSTEM SET ...") and tu_pg_restart(p).
 *
 * Who may stop what: under Check's fork mode a postmaster dies with the
 * process that started it. Start a shared cluster in an unchecked fixture
 * (it lives for the whole TCase, in the runner); a test that kills or
 * restarts its cluster must start its own (in the test or in a checked
 * fixture). tu_pg_stop/kill/restart assert that they run in the process
 * that started the cluster.
 */
#ifndef COALESCED_TESTPG_H
#define COALESCED_TESTPG_H

#include <libpq-fe.h>
#include <sys/types.h>

#define TU_PG_DB "coalesced"
#define TU_PG_USER "coalesced"
#define TU_PG_PASSWORD "coalesced-test-pw"
#define TU_PG_SUPERUSER "postgres"

struct pgproc {
	pid_t pid;         /* the postmaster; 0 when down */
	pid_t owner;       /* the process that started it: only it can stop it */
	pid_t guard;       /* removes the cluster if the owner dies without stopping it */
	int guard_fd;      /* the guard's pipe, closed by tu_pg_stop */
	int port;          /* 127.0.0.1 and the socket's number */
	char root[128];    /* temporary directory: data/, sock/; removed by tu_pg_stop */
	char sockdir[160]; /* the unix socket directory (libpq host=) */
	char log[256];     /* the server's stderr, kept after stop for failure messages */
	/* libpq connection strings (connect_timeout set): */
	char conninfo[512];      /* TU_PG_USER with its password over TCP */
	char conninfo_unix[512]; /* the same over the unix socket */
	char admin[512];         /* the superuser over the unix socket, db TU_PG_DB */
};

/* Create and start a cluster; returns once it accepts connections. */
void tu_pg_start(struct pgproc *p);
/* Fast shutdown (SIGINT), bounded; SIGKILL if it does not stop. Removes
 * the cluster's directory. Does nothing for a cluster never started. */
void tu_pg_stop(struct pgproc *p);
/* SIGKILL to the postmaster and every backend; the data stay, for
 * tu_pg_restart (which then runs crash recovery). */
void tu_pg_kill(struct pgproc *p);
/* Stop (fast) if running, then start again on the same port and data. */
void tu_pg_restart(struct pgproc *p);

/* A blocking connection with the given conninfo; asserts that it works. */
PGconn *tu_pg_connect(const char *conninfo);
/* Run sql (one or several statements) as the superuser in TU_PG_DB on a
 * fresh connection; asserts success. Returns the first value of the last
 * statement's first row as a malloc'd string, or NULL (no row, NULL). */
char *tu_pg_exec(struct pgproc *p, const char *sql);
/* tu_pg_exec, asserting an integer result. */
long long tu_pg_int(struct pgproc *p, const char *sql);
/* Run sql, asserting that it fails; returns the server's primary message
 * (malloc'd). */
char *tu_pg_error(struct pgproc *p, const char *sql);
/* Executions counted by pg_stat_statements for statements whose text is
 * LIKE pattern (0 when none). */
long long tu_pg_calls(struct pgproc *p, const char *like);

#endif
