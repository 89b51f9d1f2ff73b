/*
 * stats: the counters of DESIGN section 5 and the `stats` reply.
 *
 * One struct stats per server context; modules increment fields directly.
 */
#ifndef COALESCED_STATS_H
#define COALESCED_STATS_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

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
	uint64_t value_bytes; /* gauge: bytes of values alive */
};

/* Zero the cumulative counters; gauges (current connections, in-flight
 * keys, value bytes) keep their values. */
void stats_reset(struct stats *st);

/* Writes the whole `stats` reply (STAT lines and END) into buf; returns its
 * length, or the length it would need if cap is too small. */
size_t stats_format(const struct stats *st, pid_t pid, uint64_t uptime, const char *version,
		    char *buf, size_t cap);

#endif
