/*
 * stats: the counters of DESIGN section 5 and the `stats` reply.
 *
 * One struct stats per server context; modules increment fields directly.
 */
#ifndef COALESCED_STATS_H
#define COALESCED_STATS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* Cumulative histogram with fixed upper bounds (Prometheus style). */
#define HIST_MAX_BUCKETS 20
struct histogram {
	const double *bounds; /* nbounds ascending upper bounds; +Inf implied */
	uint32_t nbounds;
	uint64_t counts[HIST_MAX_BUCKETS + 1];
	double sum;
	uint64_t count;
};

void hist_init_latency(struct histogram *h);
void hist_init_size(struct histogram *h);
void hist_add(struct histogram *h, double v);

/*
 * Per key prefix figures (the prefix is the key up to its first ':'), so an
 * operator can see which keys a storm is on. At most DETAIL_MAX prefixes are
 * told apart; the rest are counted under "(other)", keys without ':' under
 * "(none)".
 */
#define DETAIL_MAX 1024
#define DETAIL_PREFIX_MAX 48
struct detail_prefix {
	char name[DETAIL_PREFIX_MAX + 1];      /* as in the key */
	char label[4 * DETAIL_PREFIX_MAX + 1]; /* escaped for output */
	uint8_t len;
	uint64_t keys, coalesced, upstream, hits, misses; /* in this order */
};
struct detail {
	struct detail_prefix *v;
	uint32_t n;
	bool off;        /* "stats detail off" */
	uint32_t *slots; /* open addressing: index + 1, 0 = empty */
};
/* Index of key's prefix; creates it if there is room. */
uint32_t detail_index(struct detail *d, const char *key, size_t len);
/* The row to count in, or NULL while collection is off or unset. */
static inline struct detail_prefix *detail_row(struct detail *d, uint32_t i)
{
	return d->v && !d->off && i < d->n ? &d->v[i] : NULL;
}

/*
 * Per route of the PostgreSQL backend ([queries]), by route name; rows outlive
 * a reload that keeps the name. At most ROUTE_STATS_MAX routes are counted.
 */
#define ROUTE_STATS_MAX 64
#define ROUTE_NAME_MAX 64
struct route_stats {
	char name[ROUTE_NAME_MAX + 1];
	uint64_t keys, statements, rows, misses, errors, splits; /* in this order */
	struct histogram seconds;                                /* statement latency */
};

struct stats {
	uint64_t curr_connections;
	uint64_t total_connections;
	uint64_t rejected_connections;
	uint64_t cmd_get;
	uint64_t get_keys;
	uint64_t get_hits;
	uint64_t get_misses;
	uint64_t keys_coalesced;
	uint64_t upstream_batches;
	uint64_t upstream_keys;
	uint64_t upstream_errors;
	uint64_t upstream_timeouts;
	uint64_t upstream_retries;
	uint64_t client_errors;
	uint64_t cmd_unsupported;
	uint64_t bytes_read;
	uint64_t bytes_written;
	uint64_t inflight_keys;
	uint64_t too_many_keys;
	uint64_t out_of_memory;
	uint64_t request_timeouts;
	uint64_t idle_timeouts;
	uint64_t backpressure_pauses;
	uint64_t value_bytes; /* gauge: bytes of values alive (see vb) */
	/* Writes (DESIGN 9), named as memcached names them. */
	uint64_t cmd_set;   /* set add replace append prepend cas ms */
	uint64_t cmd_touch; /* touch gat gats */
	uint64_t cmd_delete;
	uint64_t cmd_incr;
	uint64_t cmd_decr;
	uint64_t cmd_flush;
	uint64_t cmd_meta;          /* mg ms md ma mn me */
	uint64_t writes_forwarded;  /* commands sent upstream as themselves */
	uint64_t write_errors;      /* of those, failed without an upstream reply */
	uint64_t reads_after_write; /* reads that could not join a fetch: a write
	                               of the key completed during it */
	/* PostgreSQL backend (DESIGN 7.2). */
	uint64_t pg_statements;     /* prepared statements executed (one per batch) */
	uint64_t pg_rows;           /* rows received */
	uint64_t pg_rows_ignored;   /* rows for a key already answered (first wins) or not asked */
	uint64_t pg_query_errors;   /* statements that failed with a query error */
	uint64_t pg_prepare_errors; /* routes that failed to prepare on a connection */
	uint64_t batch_splits;      /* failed batches split in two to isolate a key's error */
	struct histogram request_seconds; /* client get/gets, parse to reply */
	struct histogram batch_seconds;   /* upstream batch, send to END */
	struct histogram batch_keys;      /* keys per upstream batch */
	struct detail detail;
	/* Lines for `stats` before its END (per-server health), formatted as
	 * snprintf does; NULL: none. Set by the worker, kept by stats_reset. */
	size_t (*servers_format)(const void *ctx, char *buf, size_t cap);
	const void *servers_ctx;
	struct route_stats *routes; /* ROUTE_STATS_MAX rows, nroutes used */
	uint32_t nroutes;
	/* Where bytes of values in flight are counted, atomically: value_bytes
	 * above, or with worker threads one counter for the process. */
	uint64_t *vb;
};

/* The row of route name, created if there is room; NULL otherwise. */
struct route_stats *stats_route(struct stats *st, const char *name);

/* Returns -1 if the per-prefix table cannot be allocated. */
int stats_init(struct stats *st);
void stats_free(struct stats *st);
/* The `stats detail dump` reply, malloc'd. */
char *stats_detail_dump(const struct stats *st, size_t *len);

struct stat_counter {
	const char *name;
	size_t off; /* of a uint64_t in struct stats */
	bool gauge;
};
/* The counters of the `stats` reply, in order. */
size_t stats_counters(const struct stat_counter **out);

/* Add src's figures to dst's (worker threads summed): counters, gauges but
 * value_bytes, histograms, per-prefix rows by prefix and per-route rows by
 * route name. */
void stats_add(struct stats *dst, const struct stats *src);

/* Zero the cumulative counters; gauges (current connections, in-flight
 * keys, value bytes) keep their values. */
void stats_reset(struct stats *st);

/* name for a STAT line: bytes it cannot carry (controls, space, %) as %XX,
 * cut to fit cap (3 bytes per input byte always fit). */
void stats_name(const char *name, char *out, size_t cap);

/* Writes the whole `stats` reply (STAT lines and END) into buf; returns its
 * length, or the length it would need if cap is too small. Per-server lines
 * come from servers_format, then per-route lines (PostgreSQL). */
size_t stats_format(const struct stats *st, pid_t pid, uint64_t uptime, const char *version,
                    char *buf, size_t cap);

#endif
