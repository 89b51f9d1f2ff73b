/*
 * client: one client connection. Reads bytes, feeds the request parser,
 * queues requests in arrival order, and turns each completed head request
 * into output: reply text in the connection's own arena plus references to
 * shared values, sent with writev. One place closes a client: client_close().
 *
 * The server context owns the list of clients; a client owns its buffers,
 * its requests and the value references in its output queue.
 */
#ifndef COALESCED_CLIENT_H
#define COALESCED_CLIENT_H

#include "proto_client.h"

#include <ev.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct request;
struct server;
struct value;

struct out_item {
	struct value *v; /* NULL: bytes are in the arena at off */
	size_t off;
	size_t len;
};

struct client {
	struct server *srv;
	struct client *prev, *next;   /* server->clients */
	struct client *wprev, *wnext; /* server->wpending */
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
	struct pc_parser parser;
	bool paused;       /* backpressure: not reading or parsing */
	bool eof;          /* the client sent FIN: answer what it asked, then close */
	bool stop_reading; /* quit or a fatal line: answer what came before, then close */
	bool broken;       /* a reply could not be built: close at the next write */

	struct request *rq_head, *rq_tail;
	uint32_t nreq;

	struct out_item *items;
	size_t ihead, nitems, icap;
	char *arena;
	size_t alen, acap;
	size_t out_bytes;
};

/* Takes ownership of fd (accepted, non-blocking). NULL: fd was closed. */
struct client *client_new(struct server *srv, int fd, const char *peer);
void client_close(struct client *c, const char *why);
/* Free the buffers of a client with nothing buffered that has not read since
 * idle_since: many mostly idle connections then cost little more than their
 * structs, and busy ones keep their buffers. */
void client_trim(struct client *c, ev_tstamp idle_since);
/* Graceful stop: answer what was received, read nothing more, then close. */
void client_finish(struct client *c);

/* Called when a request's last slot is filled. */
void client_request_ready(struct client *c, struct request *r);
/* Write every client with pending output (from the server's prepare watcher).
 * Returns true if it parsed new input on the way. */
bool client_write_pending(struct server *srv);

#endif
