/*
 * pool: the servers of one backend, which server owns a key, and each
 * server's health, ejection included.
 *
 * Placement follows libmemcached, so that clients writing to the servers
 * directly and coalesced agree on every key's server:
 *
 *   POOL_KETAMA  libmemcached's weighted ketama ring (ketama.c): MD5, points
 *                named "host-i" or "host:port-i" (port 11211 left out) from
 *                the host text as configured, and "path:0-i" for a unix
 *                socket; weights as configured (1 if none).
 *   POOL_MODULA  libmemcached's modula (modula.c): one-at-a-time hash modulo
 *                the number of servers; weights ignored.
 *
 * Ejection (DESIGN 10, off while eject_after is 0): eject_after consecutive
 * failures of a server (no connection, or a timeout; an error reply is not a
 * failure of the server) take it out of placement for retry_after: its keys
 * go to the others (a ring without it, or modula over the servers left).
 * After that, the connection layer probes it (pool_probe_start /
 * pool_probe_done) without any client request: a probe that succeeds puts it
 * back, one that fails keeps it out for another retry_after. Were every
 * server ejected, keys are placed as if none were (and fail fast there).
 *
 * Health is reported by the backend (connections up and down, failures,
 * successes) and read by whoever prints it (stats, /metrics). Times are the
 * caller's wall clock in seconds (ev_now()).
 *
 * A pool owns its server list, rings and health records; the backend it is
 * given to owns the pool. The log is the caller's and must outlive the pool.
 */
#ifndef COALESCED_POOL_H
#define COALESCED_POOL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct addr;
struct addr_list;
struct log;
struct pool;

enum pool_distribution { POOL_KETAMA = 0, POOL_MODULA };

struct pool_options {
	int distribution;     /* enum pool_distribution; fixed for a pool's life */
	uint32_t eject_after; /* consecutive failures; 0: never eject */
	double retry_after;   /* seconds out of placement before a probe */
};

/* Copies the addresses; NULL: out of memory, no server, or a server the
 * ring cannot name. */
struct pool *pool_new(const struct addr_list *servers, const struct pool_options *o,
                      const struct log *lg);
/* A pool whose "servers" are named lanes of a backend that places keys
 * itself (PostgreSQL: one per route), so that the batcher keeps one open
 * batch per lane. locate(ctx, key, len) < n gives a key's lane; ctx must
 * outlive the pool. Lanes have no address (pool_server_addr: a zeroed one).
 * NULL: out of memory or no lane. */
struct pool *pool_new_lanes(const char *const *names, uint32_t n,
                            uint32_t (*locate)(const void *ctx, const char *key, size_t len),
                            const void *ctx);
void pool_free(struct pool *p);
/* New eject_after and retry_after (reload); the distribution stays. A server
 * ejected stays so until its probe, even if ejection is now off. */
void pool_configure(struct pool *p, const struct pool_options *o);

uint32_t pool_server_count(const struct pool *p);
const struct addr *pool_server_addr(const struct pool *p, uint32_t i);
/* The server that owns key (see above). */
uint32_t pool_locate(const struct pool *p, const char *key, size_t len);
/* The server (or lane) that owns key with every server in placement: the
 * same for every worker thread whatever each has ejected. */
uint32_t pool_home(const struct pool *p, const char *key, size_t len);
/* Whether the pool's "servers" are a backend's lanes (pool_new_lanes). */
bool pool_has_lanes(const struct pool *p);
/* Whether server i is out of placement now. */
bool pool_ejected(const struct pool *p, uint32_t i);

struct pool_server_info {
	const char *name;        /* as configured, weight left out */
	uint32_t weight;         /* as configured (1 if none) */
	bool up;                 /* at least one connection established */
	bool ejected;            /* out of placement */
	uint32_t connections_up; /* established connections */
	uint32_t failures;       /* consecutive failures of the server */
	uint64_t errors;         /* every error ever, error replies included */
	uint64_t ejections;      /* times ejected */
	double last_error_at;    /* wall clock (s since the epoch); 0: none yet */
	const char *last_error;  /* why, in words; "" if none */
};

/* i < pool_server_count(p). The strings live as long as the pool. */
void pool_server_info(const struct pool *p, uint32_t i, struct pool_server_info *out);

/*
 * The `stats` lines of every server, "STAT server:<name>:<figure> <value>\r\n"
 * (figures: up, ejected, weight, connections, failures, errors, ejections,
 * last_error_time), formatted as snprintf does: returns the length the whole
 * text needs and writes what fits in buf[0..cap) (buf may be NULL with cap
 * 0). Bytes of the name that a STAT line cannot carry (space, control
 * bytes, '%') are written as %XX.
 */
size_t pool_stats_format(const struct pool *p, char *buf, size_t cap);
/* The same lines from figures already gathered (v[0..n)). */
size_t pool_info_format(const struct pool_server_info *v, uint32_t n, char *buf, size_t cap);

/* Backend side. */
void pool_conn_up(struct pool *p, uint32_t i);
void pool_conn_down(struct pool *p, uint32_t i);
/* A reply arrived: the server works; its failure streak ends. */
void pool_success(struct pool *p, uint32_t i);
/* Something went wrong at time now; server_failure: no connection or a
 * timeout (counts toward the streak and may eject the server; for an
 * ejected server whose time is up, it is a failed probe). text: why, for
 * people. */
void pool_error(struct pool *p, uint32_t i, bool server_failure, double now, const char *text);

/* An ejected server: when a probe may start (0: not ejected). */
double pool_probe_at(const struct pool *p, uint32_t i);
/* true: the caller (a connection just established or idle) is to probe
 * server i now; the server is then probing until pool_probe_done() or a
 * pool_error() with server_failure. false: not ejected, not yet time, or
 * another probe runs. */
bool pool_probe_start(struct pool *p, uint32_t i, double now);
/* The probe's answer: ok puts the server back into placement. */
void pool_probe_done(struct pool *p, uint32_t i, bool ok, double now);

#endif
