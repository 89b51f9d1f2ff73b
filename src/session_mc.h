/*
 * session_mc: the memcached text protocol on a client connection. Commands
 * parsed by proto_client become requests (reads join the in-flight table) or
 * immediate replies; completed requests are composed into memcached's reply
 * bytes. The session owns its parser; the connection owns the session.
 */
#ifndef COALESCED_SESSION_MC_H
#define COALESCED_SESSION_MC_H

#include "conn.h"

extern const struct session_ops session_mc_ops;

#endif
