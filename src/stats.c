/* stats: formatting of the `stats` reply. */
#include "stats.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#define U(name) {#name, offsetof(struct stats, name)}

static const struct {
	const char *name;
	size_t off;
} counters[] = {
	U(curr_connections), U(total_connections), U(rejected_connections), U(cmd_get),
	U(get_keys),	     U(get_hits),	   U(get_misses),	    U(keys_coalesced),
	U(upstream_batches), U(upstream_keys),	   U(upstream_errors),	    U(upstream_timeouts),
	U(upstream_retries), U(client_errors),	   U(cmd_unsupported),	    U(bytes_read),
	U(bytes_written),    U(inflight_keys),	   U(too_many_keys),	    U(out_of_memory),
	U(request_timeouts), U(idle_timeouts),	   U(backpressure_pauses), U(value_bytes),
};

void stats_reset(struct stats *st)
{
	uint64_t curr = st->curr_connections, inflight = st->inflight_keys, vb = st->value_bytes;

	memset(st, 0, sizeof(*st));
	st->curr_connections = curr;
	st->inflight_keys = inflight;
	st->value_bytes = vb;
}

size_t stats_format(const struct stats *st, pid_t pid, uint64_t uptime, const char *version,
		    char *buf, size_t cap)
{
	size_t n = 0;
	int r;

#define ADD(...)                                                                                   \
	do {                                                                                       \
		r = snprintf(buf + (n < cap ? n : cap), n < cap ? cap - n : 0, __VA_ARGS__);       \
		n += (size_t)(r > 0 ? r : 0);                                                      \
	} while (0)

	ADD("STAT pid %ld\r\n", (long)pid);
	ADD("STAT uptime %" PRIu64 "\r\n", uptime);
	ADD("STAT version %s\r\n", version);
	for (size_t i = 0; i < sizeof(counters) / sizeof(counters[0]); i++)
		ADD("STAT %s %" PRIu64 "\r\n", counters[i].name,
		    *(const uint64_t *)((const char *)st + counters[i].off));
	ADD("END\r\n");
#undef ADD
	return n;
}
