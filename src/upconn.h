/*
 * upconn: pipelined connections to one upstream server, whatever protocol
 * is spoken on them. A group holds the connections to one server; each
 * connection connects with a timeout, reconnects with backoff, and keeps two
 * queues of requests in the order they were encoded:
 *
 *   unwritten  no byte of them has reached the socket: on failure they can
 *              go elsewhere unharmed;
 *   written    at least one byte went out: the server may have acted on
 *              them, so on failure the codec decides (a read may be retried,
 *              a write must not be re-sent blindly).
 *
 * The codec (struct upconn_ops: memcached today, Redis later) turns a
 * request into bytes, consumes reply bytes and reports each request's end.
 * A request is an opaque pointer owned by the codec from upconn_send() until
 * upconn hands it back through upconn_pop() or ops->fail().
 *
 * One timer per connection serves as connect timeout, reply deadline of the
 * written requests, or reconnect backoff, according to its state. A codec
 * that can read a reply past without its request (ops->abandon) keeps the
 * connection when one reply is late: only that request fails; a reply still
 * missing after twice timeout_ms fails the connection.
 * Connections going up and down, failures and replies are reported to the
 * server's record in the pool. While the pool has the server ejected, the
 * connections keep reconnecting with backoff, and once the pool says it is
 * time, one established connection sends ops->probe (no client request
 * rides on it): its reply line brings the server back.
 *
 * upconn owns its sockets and buffers; the pool belongs to the caller.
 */
#ifndef COALESCED_UPCONN_H
#define COALESCED_UPCONN_H

#include "upstream.h"

#include <ev.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct addr;
struct log;
struct pool;
struct upconn;

enum upconn_state { UPCONN_DOWN = 0, UPCONN_CONNECTING, UPCONN_UP };

struct upconn_ops {
	/* Bytes of per-connection codec state, zeroed on every (re)connect. */
	size_t state_size;
	/* Append req's bytes with upconn_wspace()/upconn_wcommit(). -1: nothing
	 * of req may be sent (it is not queued; the caller reports it). */
	int (*encode)(struct upconn *c, void *req);
	/* Reply bytes: consume complete replies, matching them to
	 * upconn_head(); returns the bytes used (the rest comes again with
	 * more), or -1 once it has called upconn_fail(). */
	long (*input)(struct upconn *c, const char *buf, size_t len);
	/* Optional: where the next read may land directly (a large value's
	 * body), and how many bytes; NULL for the line buffer. */
	char *(*direct)(struct upconn *c, size_t *room);
	/* n bytes landed there; 0, or -1 once it has called upconn_fail(). */
	int (*direct_done)(struct upconn *c, size_t n);
	/* The connection is being reset: drop partial reply state. */
	void (*reset)(struct upconn *c);
	/* req will get no reply on this connection (it is back with the codec). */
	void (*fail)(struct upconn *c, void *req, bool written, enum batch_error why,
	             const char *text);
	/* Shutdown: req is forgotten without an outcome. */
	void (*discard)(void *req);
	/* Optional: req's reply is overdue (text says so). Answer its
	 * requester (a timeout, as fail() would) but keep reading: its reply
	 * is still to come and must be consumed without req, while
	 * upconn_head_abandoned() says so, then upconn_pop()ped. head: req's
	 * reply may have begun (partial reply state belongs to it). NULL: an
	 * overdue reply fails the connection. */
	void (*abandon)(struct upconn *c, void *req, bool head, const char *text);
	/* The probe of an ejected server (pool.h): request bytes whose reply
	 * is one line, any line ("version\r\n"). NULL: an established
	 * connection is the probe. */
	const char *probe;
};

struct upconn_item {
	void *req;
	uint64_t start;    /* stream offset of its first byte */
	ev_tstamp sent_at; /* when its first byte was written */
};

/* A FIFO ring of requests. */
struct upconn_queue {
	struct upconn_item *v;
	uint32_t cap, head, n;
};

struct upconn_group;

struct upconn {
	struct upconn_group *grp;
	int fd;
	enum upconn_state state;
	int write_errno; /* seen where failing at once is unsafe */
	ev_io rio, wio;
	ev_timer timer;
	double backoff;
	bool was_up;  /* connected since the last failure */
	bool probing; /* a probe is out; its reply line comes first */
	struct upconn_queue unwritten, written;
	char *wbuf;
	size_t wlen, woff, wcap;
	uint64_t wqueued, wdone; /* stream offsets: bytes encoded, bytes written */
	char *rbuf;
	size_t rlen, rcap;
	void *state_mem; /* the codec's, ops->state_size bytes */
};

struct upconn_group {
	struct ev_loop *loop;
	const struct upconn_ops *ops;
	void *ctx;                           /* the codec's, for upconn_ctx() */
	const struct upstream_settings *set; /* the backend's, read live */
	const struct log *log;
	struct pool *pool;
	uint32_t server; /* index in the pool */
	const struct addr *addr;
	struct upconn *conns;
	uint32_t nconns;
	uint32_t rr;
	bool draining; /* replaced by a newer backend on reload */
};

/* -1: out of memory. Connections start with upconn_group_start(). */
int upconn_group_init(struct upconn_group *g, struct ev_loop *loop, const struct upconn_ops *ops,
                      void *ctx, const struct upstream_settings *set, const struct log *lg,
                      struct pool *pool, uint32_t server, uint32_t nconns);
/* Connect eagerly, so that the first request does not pay for it. */
void upconn_group_start(struct upconn_group *g);
/* Closes everything; queued requests go to ops->discard. */
void upconn_group_destroy(struct upconn_group *g);
/* Take nothing new, do not reconnect; idle connections close now, busy ones
 * once their last reply is in. */
void upconn_group_drain(struct upconn_group *g);
/* Requests queued on the group's connections. */
uint32_t upconn_group_outstanding(const struct upconn_group *g);

/* The same for a backend's array of n groups, one per server; destroy also
 * frees the array. */
uint32_t upconn_groups_outstanding(const struct upconn_group *g, uint32_t n);
void upconn_groups_drain(struct upconn_group *g, uint32_t n);
void upconn_groups_destroy(struct upconn_group *g, uint32_t n);

/*
 * The least loaded connection that is up, round-robin among equals; else one
 * still connecting. avoid (a retry's failed connection) is the last choice.
 * Unless forced, a connection already at pipeline_depth is not chosen, and
 * then *busy says that one was skipped for that reason only. NULL and not
 * busy: every connection is down.
 */
struct upconn *upconn_pick(struct upconn_group *g, const void *avoid, bool force, bool *busy);
/* Encode req and queue it; written now if the connection is up. -1: the
 * codec refused to encode it; req stays with the caller. */
int upconn_send(struct upconn *c, void *req);

/* Codec side. */
void *upconn_ctx(const struct upconn *c);
void *upconn_state(const struct upconn *c);
const char *upconn_name(const struct upconn *c);
/* The oldest written request: the one the reply bytes belong to, or NULL. */
void *upconn_head(const struct upconn *c);
/* The oldest written request was abandoned (ops->abandon): its reply is
 * read past, then popped (upconn_pop() returns NULL). */
bool upconn_head_abandoned(const struct upconn *c);
/* Its reply is complete: dequeue it; *sent_at: when it went out. */
void *upconn_pop(struct upconn *c, ev_tstamp *sent_at);
/* Room for n more bytes of output, or NULL (out of memory). */
char *upconn_wspace(struct upconn *c, size_t n);
void upconn_wcommit(struct upconn *c, size_t n);
/* The connection is unusable (bad reply, error reply): close it and hand
 * every queued request to ops->fail. text: why, for the log. */
void upconn_fail(struct upconn *c, enum batch_error why, const char *text);

#endif
