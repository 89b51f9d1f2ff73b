/*
 * notify: messages to the service manager (sd_notify: READY=1, RELOADING=1,
 * STOPPING=1, STATUS=...). Does nothing when not run under one
 * (NOTIFY_SOCKET unset).
 */
#ifndef COALESCED_NOTIFY_H
#define COALESCED_NOTIFY_H

struct log;

void notify(const struct log *lg, const char *state);

#endif
