/* write: a write's outcome, read-your-writes, and its request; see write.h. */
#include "write.h"

#include "conn.h"
#include "shard.h"
#include "request.h"
#include "stats.h"

#include <stdlib.h>
#include <string.h>

static void finish(struct upwrite *w)
{
	struct request *r = w->req;

	/* Before anyone can see the reply: fetches of the key that were in
	 * flight while the write was may have read the old value, so no read
	 * that arrives from now on may join them. */
	if (w->has_key && w->srv) {
		struct write_arg k = write_key(w);
		shard_write_done(w->srv, k.p, k.len);
	}
	r->npending = 0;
	if (!r->conn) {
		/* The client left while the write was under way. */
		request_free(r);
		return;
	}
	conn_request_ready(r->conn, r);
}

void write_complete(struct upwrite *w, const char *reply, size_t len)
{
	w->reply = malloc(len ? len : 1);
	if (w->reply) {
		memcpy(w->reply, reply, len);
		w->replylen = len;
	} else {
		w->error = strdup("out of memory");
	}
	finish(w);
}

void write_fail(struct upwrite *w, const char *reason)
{
	if (w->stats)
		w->stats->write_errors++;
	w->error = strdup(reason);
	finish(w);
}
