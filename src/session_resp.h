/*
 * session_resp: RESP2 (Redis) clients on a connection. Commands parsed by
 * proto_resp become reads (GET, MGET: they join the in-flight table like any
 * memcached get) or replies answered here (PING, ECHO, SELECT 0, HELLO,
 * CLIENT, COMMAND, INFO, QUIT); completed reads are composed as RESP2 bulk
 * strings and arrays, the values sent from their shared buffers. Writes are
 * refused with -ERR not supported.
 *
 * The session owns its parser and the name CLIENT SETNAME gave; the
 * connection owns the session.
 */
#ifndef COALESCED_SESSION_RESP_H
#define COALESCED_SESSION_RESP_H

#include "conn.h"

extern const struct session_ops session_resp_ops;

/* What HELLO and INFO call the server: a Redis version whose RESP2 behaviour
 * the session follows, for clients that look at the number. */
#define SESSION_RESP_REDIS_VERSION "7.0.15"

#endif
