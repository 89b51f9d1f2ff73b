/*
 * write: one client write (or any command that must reach the upstream as
 * itself: set, delete, incr, meta commands, Redis SET, ...) on its way to
 * the backend and back. Writes are never collapsed or batched.
 *
 * The session fills a struct upwrite from its parsed, validated command: the
 * key (which decides the server) and the rest as argument tokens, plus a data
 * block for storage commands. The backend of the matching protocol validates
 * and encodes it again (a client byte is never copied through unchecked),
 * sends it on the key's server, and hands back the upstream's reply bytes,
 * which the session passes on (verbatim for memcached clients).
 *
 * An upwrite is part of its request and freed with it. While the backend holds
 * it, the request stays alive even if its client leaves (the connection lets
 * go of it, request->conn becomes NULL, and the outcome frees it).
 */
#ifndef COALESCED_WRITE_H
#define COALESCED_WRITE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct server;
struct request;
struct stats;

/* Which client protocol the command is in; a backend takes its own only. */
enum write_proto { WRITE_MEMCACHE = 0, WRITE_RESP };

/* How a memcached reply to the command is framed. */
enum write_reply {
	WREPLY_LINE = 0, /* one line (STORED, DELETED, 42, ...) */
	WREPLY_VALUES,   /* VALUE blocks until END (gat, gats) */
	WREPLY_META,     /* a meta reply: VA <n> ... + data, or one line */
	WREPLY_ANY,      /* RESP: one whole reply */
};

struct write_arg {
	const char *p;
	size_t len;
};

struct upwrite {
	uint8_t proto;          /* enum write_proto */
	uint8_t reply_shape;    /* enum write_reply */
	bool has_key;           /* mn, flush_all, verbosity: no key */
	bool all_servers;       /* flush_all: every server must take it */
	struct write_arg *argv; /* the command as tokens, key included */
	uint32_t argc;
	uint32_t key_index; /* argv[key_index] is the key as sent */
	bool key_b64;       /* ... in base64 (memcached meta b flag) */
	const char *key;    /* the key's bytes: placement, read-your-writes */
	size_t keylen;
	const char *data; /* storage data block (without its CRLF), or NULL */
	/* Writes with the same lane (one client connection's) keep their order:
	 * on a server, they go on one upstream connection while it is up. */
	uint64_t lane;
	size_t datalen;

	/* Outcome, set by write_complete / write_fail. */
	char *reply; /* the upstream's reply bytes, owned */
	size_t replylen;
	char *error; /* or why there is none: the SERVER_ERROR reason, owned */

	struct request *req; /* NULL once the client has left */
	struct server *srv;  /* told of the write for read-your-writes */
	struct stats *stats;
	void *backend_data; /* the backend's, while it holds the write */
};

/* The key's bytes (for RESP: argv[key_index] itself). */
static inline struct write_arg write_key(const struct upwrite *w)
{
	if (w->key)
		return (struct write_arg){w->key, w->keylen};
	return w->argv[w->key_index];
}

/*
 * Backend side: the upstream answered (reply bytes copied) or the write
 * failed for good (reason, e.g. "upstream unavailable"). Either way the
 * key's fetches that were in flight during the write stop taking new readers
 * (read-your-writes), then the request completes. A write that may have
 * reached the server is never re-sent: its failure is final.
 */
void write_complete(struct upwrite *w, const char *reply, size_t len);
void write_fail(struct upwrite *w, const char *reason);

#endif
