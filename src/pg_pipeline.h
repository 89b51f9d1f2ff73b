/*
 * pg_pipeline: one libpq connection in pipeline mode and the queue of what
 * was sent on it, in order: a PREPARE the first time a statement is used on
 * the connection, then an EXEC, then a SYNC, for every statement sent.
 * Results come back in that order; pgp_next() matches each to its job and
 * keeps the prepared statements' state.
 *
 * It knows no events, batches or pools: the caller (backend_postgres) watches
 * the socket, keeps the timers and decides what a result means. An EXEC's
 * payload is the caller's pointer; it passes back to the caller with the
 * EXEC's result (pgp_next) or when taken out of a connection that goes away
 * (pgp_take_exec). pgp_close(), pgp_free() and pgp_connect() (which closes
 * first) drop the queue, so the caller takes the payloads before.
 */
#ifndef COALESCED_PG_PIPELINE_H
#define COALESCED_PG_PIPELINE_H

#include <libpq-fe.h>
#include <stdbool.h>
#include <stdint.h>

enum pgp_kind { PGP_PREPARE, PGP_EXEC, PGP_SYNC };

struct pgp_job {
	enum pgp_kind kind;
	bool seen;     /* its result arrived; the NULL that ends it is next */
	uint32_t stmt; /* the statement's index */
	void *payload; /* EXEC: the caller's */
	double sent_at;
};

struct pgp {
	PGconn *pg;        /* NULL while closed; the caller may ask it for names */
	uint8_t *prepared; /* per statement: not, sent, or prepared */
	uint32_t nstmts;
	struct pgp_job *q;
	uint32_t qhead, qlen, qcap;
	uint32_t execs; /* EXEC jobs queued (read only) */
};

/* Closed, for statements 0..nstmts-1. -1: out of memory. */
int pgp_init(struct pgp *p, uint32_t nstmts);
void pgp_free(struct pgp *p);

/* Begin to connect (conninfo: a connection string; UTF-8 client encoding).
 * false: failed at once, pgp_error() says why; the caller closes. */
bool pgp_connect(struct pgp *p, const char *conninfo, PQnoticeReceiver notice, void *arg);

enum pgp_poll { PGP_WANT_READ, PGP_WANT_WRITE, PGP_UP, PGP_FAILED };
/* One step of connecting; PGP_UP: connected, non-blocking, in pipeline mode. */
enum pgp_poll pgp_poll(struct pgp *p);

int pgp_socket(const struct pgp *p);
/* libpq's last error, or why there is no connection. */
const char *pgp_error(const struct pgp *p);
void pgp_close(struct pgp *p);

/* Queue statement stmt (name, sql: as prepared) with one binary parameter
 * of type, then a SYNC. false: libpq refused (pgp_error()); the connection
 * is then to be closed, and payload stays the caller's. */
bool pgp_send(struct pgp *p, uint32_t stmt, const char *name, const char *sql, Oid type,
              const char *val, int len, void *payload, double now);
/* Write what libpq holds: 0 done, 1 more to write when the socket allows,
 * -1 the connection failed. */
int pgp_flush(struct pgp *p);
/* Read what arrived; false: the connection failed (pgp_error()). */
bool pgp_consume(struct pgp *p);

enum pgp_next { PGP_NONE, PGP_RESULT, PGP_OUT_OF_STEP };
/* The next result, *res (the caller PQclear()s it), and a copy of the job it
 * answers, *job (an EXEC's payload passes to the caller). PGP_NONE: nothing
 * more yet. PGP_OUT_OF_STEP: libpq and the queue disagree; close. */
enum pgp_next pgp_next(struct pgp *p, struct pgp_job *job, PGresult **res);
/* Right after pgp_next() gave an EXEC: its payload back on it, for
 * pgp_take_exec() to find when the connection is closed. */
void pgp_put_back(struct pgp *p, void *payload);
/* The payloads of EXECs still queued, one a call; NULL: none left. */
void *pgp_take_exec(struct pgp *p);
/* When the oldest EXEC in the queue was sent; -1: none queued. */
double pgp_oldest_exec(const struct pgp *p);

#endif
