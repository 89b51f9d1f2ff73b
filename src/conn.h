/*
 * conn: one client connection, whatever protocol it speaks. It moves bytes:
 * reads into its buffer, hands them to its protocol session, keeps the
 * session's requests in arrival order, and writes composed replies (text in
 * its own arena plus references to shared values) with writev. It applies
 * backpressure and the idle and unfinished-request timeouts. It never parses.
 *
 * The server context owns the list of connections; a connection owns its
 * buffers, its requests, its session state and the value references in its
 * output queue. One place closes a connection: conn_close().
 */
#ifndef COALESCED_CONN_H
#define COALESCED_CONN_H

#include <ev.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct conn;
struct request;
struct server;
struct value;

/*
 * What a protocol (memcached text, RESP) provides. The connection calls it;
 * it calls back only into the conn_out_* and conn_* request functions below.
 * Reads and writes are protocol-neutral once queued: the connection starts
 * them itself (reads join the in-flight table, writes go to the backend).
 */
struct session_ops {
	/* Set up c->session. -1: out of memory. */
	int (*init)(struct conn *c);
	/* Parse and act on the command at the start of buf[0..len). Sets *used
	 * to the bytes consumed (also when more are needed, e.g. while a data
	 * block is discarded); returns false when a command needs more bytes. */
	bool (*feed)(struct conn *c, const char *buf, size_t len, size_t *used);
	/* Compose a completed request into the output. -1: out of memory. */
	int (*compose)(struct conn *c, struct request *r);
	/* A command is partly received and the request timeout runs. */
	bool (*partial)(const struct conn *c);
	/* The configuration changed (reload): take up the new limits. */
	void (*configure)(struct conn *c);
	void (*destroy)(struct conn *c);
	/* Largest line the session may need buffered at once. */
	size_t (*max_line)(const struct conn *c);
};

struct out_item {
	struct value *v; /* NULL: bytes are in the arena at off */
	size_t off;
	size_t len;
};

struct conn {
	struct server *srv;
	const struct session_ops *ops;
	void *session;              /* the protocol's own state, owned through ops */
	struct conn *prev, *next;   /* server->conns */
	struct conn *wprev, *wnext; /* server->wpending */
	bool wpending;
	int fd;
	uint64_t id;
	char name[80];
	ev_io rio, wio;
	ev_timer timer;          /* idle and unfinished-request timeouts */
	ev_tstamp last_active;   /* last bytes read */
	ev_tstamp partial_since; /* an unfinished request waits since; 0: none */

	char *rbuf;
	size_t rlen, rcap;
	bool paused;       /* backpressure: not reading or parsing */
	bool eof;          /* the client sent FIN: answer what it asked, then close */
	bool stop_reading; /* quit or a fatal line: answer what came before, then close */
	bool broken;       /* a reply could not be built: close at the next write */

	struct request *rq_head, *rq_tail;
	struct request *rq_unstarted; /* first read or write not started yet */
	uint32_t reads_active, writes_active;
	bool starting; /* inside start_ready(): no nested walk */
	uint32_t nreq;
	size_t req_bytes; /* memory pinned by queued requests (request->pinned) */

	struct out_item *items;
	size_t ihead, nitems, icap;
	char *arena;
	size_t alen, acap;
	size_t out_bytes;
};

/* Takes ownership of fd (accepted, non-blocking). NULL: fd was closed. */
struct conn *conn_new(struct server *srv, int fd, const char *peer, const struct session_ops *ops);
void conn_close(struct conn *c, const char *why);
/* Free the buffers of a connection with nothing buffered that has not read
 * since idle_since: many mostly idle connections then cost little more than
 * their structs, and busy ones keep their buffers. */
void conn_trim(struct conn *c, ev_tstamp idle_since);
/* Graceful stop: read what is already in the socket buffer, answer it, read
 * nothing more, then close. May close c at once (a failed read). */
void conn_finish(struct conn *c);
/* The configuration changed: existing connections take up the new limits. */
void conn_configure(struct conn *c);

/* Write every connection with pending output (from the server's prepare
 * watcher). Returns true if it parsed new input on the way. */
bool conn_write_pending(struct server *srv);

/* ---- for sessions ---- */

/*
 * Queue r behind the connection's other requests (it owns r from now on).
 * Reads and writes are started in order, so that a connection's requests take
 * effect in the order sent: a read waits while an earlier write of the
 * connection is unanswered, a write while an earlier read is; reads join each
 * other freely, and so do writes.
 */
void conn_enqueue(struct conn *c, struct request *r);
/* Called when a request's last slot is filled. */
void conn_request_ready(struct conn *c, struct request *r);
/* A request the session composes when its turn comes (r->op = op), so that
 * it reflects what came before it (stats). */
void conn_local(struct conn *c, uint8_t op);
/* A reply known at once: sent in turn behind any unanswered request. */
void conn_reply(struct conn *c, const char *text, size_t len);
/* Read nothing more; close once everything asked before is answered. */
void conn_stop_reading(struct conn *c);
/* Give up on the connection at the next write (a reply could not be built). */
void conn_break(struct conn *c);

/* Append to the output: bytes (copied), or a value (takes the reference,
 * sends v's data and its CRLF). -1: out of memory. */
int conn_out_bytes(struct conn *c, const char *p, size_t len);
int conn_out_value(struct conn *c, struct value *v);
/* Room for up to n bytes at the end of the output arena, to be written in
 * place and then committed with conn_out_commit(used). NULL: out of memory. */
char *conn_out_reserve(struct conn *c, size_t n);
void conn_out_commit(struct conn *c, size_t used);

#endif
