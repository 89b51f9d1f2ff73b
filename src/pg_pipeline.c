/* pg_pipeline: a libpq connection in pipeline mode and its job queue; see pg_pipeline.h. */
#include "pg_pipeline.h"

#include <stdlib.h>
#include <string.h>

enum { PREP_NONE = 0, PREP_SENT, PREP_OK };

int pgp_init(struct pgp *p, uint32_t nstmts)
{
	memset(p, 0, sizeof(*p));
	p->nstmts = nstmts;
	p->prepared = calloc(nstmts ? nstmts : 1, 1);
	return p->prepared ? 0 : -1;
}

void pgp_close(struct pgp *p)
{
	if (p->pg)
		PQfinish(p->pg);
	p->pg = NULL;
	p->qhead = p->qlen = 0;
	p->execs = 0;
	if (p->prepared)
		memset(p->prepared, 0, p->nstmts);
}

void pgp_free(struct pgp *p)
{
	pgp_close(p);
	free(p->q);
	free(p->prepared);
	memset(p, 0, sizeof(*p));
}

bool pgp_connect(struct pgp *p, const char *conninfo, PQnoticeReceiver notice, void *arg)
{
	/* expand_dbname: conninfo is a whole connection string; the keywords
	 * after it override what it says. Keys are checked as UTF-8 (pg_codec). */
	const char *const kw[] = {"dbname", "client_encoding", "fallback_application_name", NULL};
	const char *const val[] = {conninfo, "UTF8", "coalesced", NULL};

	pgp_close(p);
	p->pg = PQconnectStartParams(kw, val, 1);
	if (!p->pg || PQstatus(p->pg) == CONNECTION_BAD)
		return false;
	PQsetNoticeReceiver(p->pg, notice, arg);
	return true;
}

enum pgp_poll pgp_poll(struct pgp *p)
{
	switch (PQconnectPoll(p->pg)) {
	case PGRES_POLLING_READING:
		return PGP_WANT_READ;
	case PGRES_POLLING_WRITING:
		return PGP_WANT_WRITE;
	case PGRES_POLLING_OK:
		if (PQsetnonblocking(p->pg, 1) != 0 || PQenterPipelineMode(p->pg) != 1)
			return PGP_FAILED;
		return PGP_UP;
	default:
		return PGP_FAILED;
	}
}

int pgp_socket(const struct pgp *p)
{
	return p->pg ? PQsocket(p->pg) : -1;
}

const char *pgp_error(const struct pgp *p)
{
	return p->pg ? PQerrorMessage(p->pg) : "out of memory";
}

/* Room for n more jobs, so that pushing them moves nothing. */
static int reserve(struct pgp *p, uint32_t n)
{
	if (p->qhead == p->qlen)
		p->qhead = p->qlen = 0;
	if (p->qlen + n > p->qcap && p->qhead > 0) {
		memmove(p->q, p->q + p->qhead, (p->qlen - p->qhead) * sizeof(*p->q));
		p->qlen -= p->qhead;
		p->qhead = 0;
	}
	if (p->qlen + n > p->qcap) {
		uint32_t cap = p->qcap ? p->qcap * 2 : 16;
		struct pgp_job *q = realloc(p->q, (cap + n) * sizeof(*q));
		if (!q)
			return -1;
		p->q = q;
		p->qcap = cap + n;
	}
	return 0;
}

static struct pgp_job *push(struct pgp *p, enum pgp_kind kind, uint32_t stmt, double now)
{
	struct pgp_job *j = &p->q[p->qlen++];

	memset(j, 0, sizeof(*j));
	j->kind = kind;
	j->stmt = stmt;
	j->sent_at = now;
	return j;
}

bool pgp_send(struct pgp *p, uint32_t stmt, const char *name, const char *sql, Oid type,
              const char *val, int len, void *payload, double now)
{
	const Oid types[1] = {type};
	const int fmt[1] = {1};
	const char *vals[1] = {val};
	const int lens[1] = {len};
	struct pgp_job *j;

	if (stmt >= p->nstmts || reserve(p, 3) < 0)
		return false;
	if (p->prepared[stmt] == PREP_NONE) {
		if (!PQsendPrepare(p->pg, name, sql, 1, types))
			return false;
		push(p, PGP_PREPARE, stmt, now);
		p->prepared[stmt] = PREP_SENT;
	}
	if (!PQsendQueryPrepared(p->pg, name, 1, vals, lens, fmt, 1))
		return false;
	j = push(p, PGP_EXEC, stmt, now);
	j->payload = payload;
	p->execs++;
	if (!PQpipelineSync(p->pg)) {
		j->payload = NULL;
		p->execs--;
		return false;
	}
	push(p, PGP_SYNC, stmt, now);
	return true;
}

int pgp_flush(struct pgp *p)
{
	return PQflush(p->pg);
}

bool pgp_consume(struct pgp *p)
{
	return PQconsumeInput(p->pg) != 0;
}

enum pgp_next pgp_next(struct pgp *p, struct pgp_job *job, PGresult **res)
{
	while (p->qhead < p->qlen) {
		struct pgp_job *h = &p->q[p->qhead];
		PGresult *r;

		if (PQisBusy(p->pg))
			return PGP_NONE;
		r = PQgetResult(p->pg);
		if (!r) {
			if (h->kind == PGP_SYNC || !h->seen)
				return PGP_NONE; /* nothing more yet */
			p->qhead++;
			continue;
		}
		if (PQresultStatus(r) == PGRES_PIPELINE_SYNC) {
			/* After an error libpq ends the query with no NULL: the sync
			 * ends everything before it. */
			while (p->qhead < p->qlen && p->q[p->qhead].kind != PGP_SYNC &&
			       p->q[p->qhead].seen)
				p->qhead++;
			PQclear(r);
			if (p->qhead == p->qlen || p->q[p->qhead].kind != PGP_SYNC)
				return PGP_OUT_OF_STEP;
			p->qhead++;
			continue;
		}
		if (h->seen) {
			/* The next query's result without a NULL before it. */
			p->qhead++;
			h = &p->q[p->qhead];
			if (p->qhead == p->qlen || h->kind == PGP_SYNC || h->seen) {
				PQclear(r);
				return PGP_OUT_OF_STEP;
			}
		}
		if (h->kind == PGP_SYNC) {
			PQclear(r);
			return PGP_OUT_OF_STEP;
		}
		h->seen = true;
		*job = *h;
		if (h->kind == PGP_EXEC) {
			h->payload = NULL;
			p->execs--;
		} else {
			p->prepared[h->stmt] =
			    PQresultStatus(r) == PGRES_COMMAND_OK ? PREP_OK : PREP_NONE;
		}
		*res = r;
		return PGP_RESULT;
	}
	return PGP_NONE;
}

void pgp_put_back(struct pgp *p, void *payload)
{
	if (p->qhead < p->qlen && p->q[p->qhead].kind == PGP_EXEC && !p->q[p->qhead].payload) {
		p->q[p->qhead].payload = payload;
		p->execs++;
	}
}

void *pgp_take_exec(struct pgp *p)
{
	for (uint32_t i = p->qhead; i < p->qlen; i++) {
		void *payload = p->q[i].payload;
		if (p->q[i].kind == PGP_EXEC && payload) {
			p->q[i].payload = NULL;
			p->execs--;
			return payload;
		}
	}
	return NULL;
}

double pgp_oldest_exec(const struct pgp *p)
{
	for (uint32_t i = p->qhead; i < p->qlen; i++)
		if (p->q[i].kind == PGP_EXEC)
			return p->q[i].sent_at;
	return -1;
}
