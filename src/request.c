/* request: per-command reply bookkeeping; see request.h. */
#include "request.h"

#include "client.h"
#include "proto_client.h"
#include "value.h"

#include <stdlib.h>
#include <string.h>

struct request *request_new_get(struct client *c, bool gets, const struct pc_key *keys,
                                uint32_t nkeys)
{
	size_t keybytes = 0;
	struct request *r;
	char *kp;

	for (uint32_t i = 0; i < nkeys; i++)
		keybytes += keys[i].len;
	r = calloc(1, sizeof(*r) + nkeys * sizeof(struct slot) + keybytes);
	if (!r)
		return NULL;
	r->client = c;
	r->kind = REQ_GET;
	r->gets = gets;
	r->nslots = nkeys;
	r->npending = nkeys;
	kp = (char *)&r->slots[nkeys];
	for (uint32_t i = 0; i < nkeys; i++) {
		memcpy(kp, keys[i].p, keys[i].len);
		r->slots[i].key = kp;
		r->slots[i].keylen = (uint8_t)keys[i].len;
		r->slots[i].req = r;
		kp += keys[i].len;
	}
	return r;
}

struct request *request_new_text(struct client *c, const char *text, size_t len)
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
	r->client = c;
	r->kind = REQ_TEXT;
	return r;
}

struct request *request_new_stats(struct client *c)
{
	struct request *r = calloc(1, sizeof(*r));

	if (r) {
		r->client = c;
		r->kind = REQ_STATS;
	}
	return r;
}

void request_free(struct request *r)
{
	if (!r)
		return;
	for (uint32_t i = 0; i < r->nslots; i++)
		value_unref(r->slots[i].value);
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
		client_request_ready(r->client, r);
}

void request_slot_hit(struct slot *s, struct value *v)
{
	s->value = value_ref(v);
	s->state = SLOT_HIT;
	slot_filled(s);
}

void request_slot_miss(struct slot *s)
{
	s->state = SLOT_MISS;
	slot_filled(s);
}

void request_slot_error(struct slot *s, const char *reason)
{
	s->state = SLOT_ERROR;
	/* The reply is one SERVER_ERROR line: the first reason wins. An allocation
	 * failure still yields an error reply, with a generic reason. */
	if (!s->req->err)
		s->req->err = strdup(reason);
	slot_filled(s);
}
