/*
 * metrics: a minimal HTTP/1.0 endpoint serving GET /metrics in the Prometheus
 * text exposition format: every `stats` counter, the latency and batch-size
 * histograms, and per-prefix figures.
 *
 * It owns its listening sockets and its short-lived HTTP connections; it
 * only reads the server's statistics.
 */
#ifndef COALESCED_METRICS_H
#define COALESCED_METRICS_H

#include <stddef.h>

struct server;
struct metrics;

/* Listen on the address list text; NULL with a message in err on failure. */
struct metrics *metrics_open(struct server *srv, const char *where, char *err, size_t errlen);
void metrics_close(struct metrics *m);

/* The exposition text, malloc'd, for the HTTP reply and for tests. */
char *metrics_render(const struct server *srv, size_t *len);

#endif
