/*
 * metrics: a minimal HTTP/1.0 endpoint serving GET /metrics in the Prometheus
 * text exposition format: a build-info gauge, every `stats` counter, the
 * latency and batch-size histograms, and per-prefix figures.
 *
 * The page is valid UTF-8 whatever keys clients send. A per-prefix row is
 * labelled prefix="<the prefix>", escaped as the format wants (\\, \", \n);
 * where the prefix holds bytes that are not UTF-8 or are control characters,
 * those show as U+FFFD and the row also carries prefix_hex="<the prefix's
 * bytes in hex>", as it does for a prefix spelled like the catch-all rows
 * "(none)" and "(other)". So no two rows share a label set: a row without
 * prefix_hex whose prefix is "(none)" or "(other)" is a catch-all; any
 * other row stands for prefix_hex decoded when present, else for prefix.
 *
 * It owns its listening sockets and its short-lived HTTP connections; it
 * only reads the server's statistics. A unix: listener removes a socket file
 * nobody listens on before it binds, and its own socket file when it closes;
 * never anything else.
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
char *metrics_render(struct server *srv, size_t *len);

#endif
