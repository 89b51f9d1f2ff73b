/*
 * request: one client command waiting for its reply, with one slot per key.
 *
 * A request is owned by its client's queue and freed by request_free() once
 * its reply is composed, or when the client closes. Each slot waits on one
 * in-flight entry; the entry's resolution fills the slot (a value reference,
 * a miss, or an error) and request_slot_done() tells the client when the last
 * slot is filled. Key bytes are stored in the same allocation.
 */
#ifndef COALESCED_REQUEST_H
#define COALESCED_REQUEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct client;
struct entry;
struct value;

enum slot_state { SLOT_PENDING = 0, SLOT_HIT, SLOT_MISS, SLOT_ERROR };

struct slot {
	struct slot *wprev, *wnext; /* the entry's waiter list */
	struct entry *entry;        /* while pending */
	struct request *req;
	struct value *value; /* SLOT_HIT: one reference, owned */
	const char *key;
	uint8_t keylen;
	uint8_t state;
};

/* REQ_STATS is formatted when its turn comes, so it counts what came before. */
enum request_kind { REQ_GET = 0, REQ_TEXT, REQ_STATS };

struct request {
	struct request *next;
	struct client *client;
	uint8_t kind;
	bool gets;
	uint32_t nslots;
	uint32_t npending;
	double started; /* ev_now when parsed, for latency figures */
	char *err;      /* first failure reason of any slot, owned */
	char *text;     /* REQ_TEXT: the whole reply, owned */
	size_t textlen;
	struct slot slots[];
};

struct pc_key;

/* A get/gets request for nkeys keys, copying the key bytes. */
struct request *request_new_get(struct client *c, bool gets, const struct pc_key *keys,
                                uint32_t nkeys);
/* A request whose reply is already known (ERROR, VERSION, stats, ...). */
struct request *request_new_text(struct client *c, const char *text, size_t len);
struct request *request_new_stats(struct client *c);
/* Drops value references; the caller has detached pending slots first. */
void request_free(struct request *r);

/* Called by the in-flight table once per slot when its entry resolves. */
void request_slot_hit(struct slot *s, struct value *v);
void request_slot_miss(struct slot *s);
void request_slot_error(struct slot *s, const char *reason);

#endif
