/*
 * request: one client command waiting for its reply, with one slot per key.
 *
 * A request is owned by its connection's queue and freed by request_free() once
 * its reply is composed, or when the connection closes. Each slot waits on one
 * in-flight entry; the entry's resolution fills the slot (a value reference,
 * a miss, or an error) and request_slot_done() tells the connection when the last
 * slot is filled. Key bytes are stored in the same allocation.
 */
#ifndef COALESCED_REQUEST_H
#define COALESCED_REQUEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct conn;
struct entry;
struct value;

enum slot_state { SLOT_PENDING = 0, SLOT_HIT, SLOT_MISS, SLOT_ERROR };

struct slot {
	struct slot *wprev, *wnext; /* the entry's waiter list */
	struct entry *entry;        /* while pending */
	struct request *req;
	struct value *value; /* SLOT_HIT: one reference, owned */
	const char *key;
	uint32_t keylen;
	uint32_t ticket; /* waiting on another thread (shard): its index + 1 */
	uint8_t state;
	bool proxy; /* a shard proxy for a slot on another thread, not in a request */
};

/*
 * REQ_READ waits on its slots; REQ_WRITE on one upstream reply; REQ_TEXT
 * carries its whole reply; REQ_LOCAL is composed by the session when its turn
 * comes (e.g. `stats`, so that it counts what came before it). What `op`
 * means is the session's business.
 */
enum request_kind { REQ_READ = 0, REQ_WRITE, REQ_TEXT, REQ_LOCAL };

struct request {
	struct request *next;
	struct conn *conn;
	uint8_t kind;
	uint8_t op;
	bool started;    /* READ/WRITE: handed to the in-flight table or backend */
	uint32_t sflags; /* the session's own flags (noreply, quiet mode, ...) */
	uint32_t nslots;
	uint32_t npending;
	double since;  /* ev_now when parsed, for latency figures */
	size_t pinned; /* memory it holds while queued, with its keys' entries */
	char *err;     /* first failure reason of any slot, owned */
	char *text;    /* REQ_TEXT: the whole reply; others: session data; owned */
	size_t textlen;
	struct upwrite *w; /* REQ_WRITE: in the same allocation */
	uint64_t *acct;    /* REQ_WRITE: where its data bytes are counted */
	struct slot slots[];
};

/* Estimated bytes an in-flight entry and a batch place cost per key. */
#define REQUEST_KEY_OVERHEAD 128

/* A read of nkeys keys whose bytes add up to keybytes; request_set_key()
 * then copies each key, in order. */
struct request *request_new_read(struct conn *c, uint8_t op, uint32_t nkeys, size_t keybytes);
void request_set_key(struct request *r, uint32_t i, const char *key, size_t len);
/* A write whose command has argc tokens of bytes bytes in all, and a data
 * block of datalen bytes (counted in *acct while the request lives). Its
 * upwrite (r->w) has argv pointing at request_write_bytes(r), to be filled
 * by the caller, and data (if datalen) at the bytes after them. */
struct request *request_new_write(struct conn *c, uint8_t op, uint32_t argc, size_t bytes,
                                  size_t datalen, uint64_t *acct);
char *request_write_bytes(struct request *r);
/* A request whose reply is already known (ERROR, VERSION, ...). */
struct request *request_new_text(struct conn *c, const char *text, size_t len);
/* A request the session composes when its turn comes. */
struct request *request_new_local(struct conn *c, uint8_t op);
/* Drops value references; the caller has detached pending slots first. */
void request_free(struct request *r);

/* Called by the in-flight table once per slot when its entry resolves (a
 * proxy slot's outcome goes back to its thread). */
void request_slot_hit(struct slot *s, struct value *v);
void request_slot_miss(struct slot *s);
void request_slot_error(struct slot *s, const char *reason);

#endif
