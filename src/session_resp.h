/*
 * session_resp: RESP2 (Redis) clients on a connection. Commands parsed by
 * proto_resp become reads (GET, MGET: they join the in-flight table like any
 * memcached get) or replies answered here (PING, ECHO, SELECT 0, HELLO,
 * CLIENT, COMMAND, INFO, QUIT); completed reads are composed as RESP2 bulk
 * strings and arrays, the values sent from their shared buffers. The
 * single-key string writes of DESIGN 9 go to a Redis backend as themselves
 * (write.h) and their reply comes back verbatim; other writes, and every
 * write toward another backend, get -ERR not supported.
 *
 * The session owns its parser and the name CLIENT SETNAME gave; the
 * connection owns the session. A write's request holds its upwrite and the
 * command's bytes in request->text (freed with the request); the reply or
 * error hanging off the upwrite is freed when the reply is composed, or by
 * the backend when the client has left.
 */
#ifndef COALESCED_SESSION_RESP_H
#define COALESCED_SESSION_RESP_H

#include "conn.h"

extern const struct session_ops session_resp_ops;

/* What HELLO and INFO call the server: a Redis version whose RESP2 behaviour
 * the session follows, for clients that look at the number. */
#define SESSION_RESP_REDIS_VERSION "7.0.15"

#endif
