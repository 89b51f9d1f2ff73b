/* request: per-command reply bookkeeping; see request.h. */
#include "request.h"

#include "conn.h"
#include "shard.h"
#include "write.h"
#include "value.h"

#include <stdlib.h>
#include <string.h>

struct request *request_new_read(struct conn *c, uint8_t op, uint32_t nkeys, size_t keybytes)
{
	struct request *r = calloc(1, sizeof(*r) + nkeys * sizeof(struct slot) + keybytes);

	if (!r)
		return NULL;
	/* Each key may also hold an in-flight entry (with its own copy of the
	 * key) and a place in a batch: counted so that a connection's share of
	 * memory stays bounded whatever it sends. */
	r->pinned =
	    sizeof(*r) + nkeys * (sizeof(struct slot) + REQUEST_KEY_OVERHEAD) + 2 * keybytes;
	r->conn = c;
	r->kind = REQ_READ;
	r->op = op;
	r->nslots = nkeys;
	r->npending = nkeys;
	for (uint32_t i = 0; i < nkeys; i++)
		r->slots[i].req = r;
	return r;
}

void request_set_key(struct request *r, uint32_t i, const char *key, size_t len)
{
	/* Keys are laid out in order after the slots: each starts where the
	 * previous one ends. */
	char *p = i == 0 ? (char *)&r->slots[r->nslots]
	                 : (char *)r->slots[i - 1].key + r->slots[i - 1].keylen;

	memcpy(p, key, len);
	r->slots[i].key = p;
	r->slots[i].keylen = (uint32_t)len;
}

struct request *request_new_text(struct conn *c, const char *text, size_t len)
{
	struct request *r = calloc(1, sizeof(*r));

	if (!r)
		return NULL;
	r->text = malloc(len ? len : 1);
	if (!r->text) {
		free(r);
		return NULL;
	}
	memcpy(r->text, text, len);
	r->textlen = len;
	r->pinned = sizeof(*r) + len;
	r->conn = c;
	r->kind = REQ_TEXT;
	return r;
}

struct request *request_new_local(struct conn *c, uint8_t op)
{
	struct request *r = calloc(1, sizeof(*r));

	if (r) {
		r->conn = c;
		r->kind = REQ_LOCAL;
		r->op = op;
	}
	return r;
}

struct request *request_new_write(struct conn *c, uint8_t op, uint32_t argc, size_t bytes,
                                  size_t datalen, uint64_t *acct)
{
	/* request | upwrite | argv | token bytes | data */
	size_t head = sizeof(struct request) + sizeof(struct upwrite);
	struct request *r = calloc(1, head + argc * sizeof(struct write_arg) + bytes + datalen + 1);

	if (!r)
		return NULL;
	r->conn = c;
	r->kind = REQ_WRITE;
	r->op = op;
	r->npending = 1;
	r->pinned = head + bytes + datalen;
	r->w = (struct upwrite *)(r + 1);
	r->w->req = r;
	r->w->argv = (struct write_arg *)(r->w + 1);
	r->w->argc = argc;
	/* A data block may be empty: the session clears data when the
	 * command has none. */
	r->w->data = request_write_bytes(r) + bytes;
	r->w->datalen = datalen;
	r->acct = acct;
	if (acct)
		__atomic_fetch_add(acct, datalen, __ATOMIC_RELAXED);
	return r;
}

char *request_write_bytes(struct request *r)
{
	return (char *)(r->w->argv + r->w->argc);
}

void request_free(struct request *r)
{
	if (!r)
		return;
	for (uint32_t i = 0; i < r->nslots; i++)
		value_unref(r->slots[i].value);
	if (r->w) {
		if (r->acct)
			__atomic_fetch_sub(r->acct, r->w->datalen, __ATOMIC_RELAXED);
		free(r->w->reply);
		free(r->w->error);
	}
	free(r->err);
	free(r->text);
	free(r);
}

static void slot_filled(struct slot *s)
{
	struct request *r = s->req;

	s->entry = NULL;
	s->wprev = s->wnext = NULL;
	if (--r->npending == 0)
		conn_request_ready(r->conn, r);
}

void request_slot_hit(struct slot *s, struct value *v)
{
	if (s->proxy) {
		shard_proxy_done(s, SLOT_HIT, v, NULL);
		return;
	}
	s->value = value_ref(v);
	s->state = SLOT_HIT;
	slot_filled(s);
}

void request_slot_miss(struct slot *s)
{
	if (s->proxy) {
		shard_proxy_done(s, SLOT_MISS, NULL, NULL);
		return;
	}
	s->state = SLOT_MISS;
	slot_filled(s);
}

void request_slot_error(struct slot *s, const char *reason)
{
	if (s->proxy) {
		shard_proxy_done(s, SLOT_ERROR, NULL, reason);
		return;
	}
	s->state = SLOT_ERROR;
	/* The reply is one SERVER_ERROR line: the first reason wins. An allocation
	 * failure still yields an error reply, with a generic reason. */
	if (!s->req->err)
		s->req->err = strdup(reason);
	slot_filled(s);
}
