/*
 * proto_mcreply: pure parser for one line of a memcached reply to `gets`
 * (VALUE header, END, error lines). Bytes in, classification out; no I/O and
 * no allocation. The data block after a VALUE line is read by the caller.
 */
#ifndef COALESCED_PROTO_MCREPLY_H
#define COALESCED_PROTO_MCREPLY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum mcr_kind {
	MCR_INVALID = 0,
	MCR_VALUE,
	MCR_END,
	MCR_ERROR,        /* ERROR */
	MCR_CLIENT_ERROR, /* CLIENT_ERROR <text> */
	MCR_SERVER_ERROR, /* SERVER_ERROR <text> */
	MCR_VERSION,
};

struct mcr_line {
	enum mcr_kind kind;
	const char *key; /* MCR_VALUE: points into the line */
	size_t keylen;
	uint32_t flags;
	uint64_t bytes;
	uint64_t cas;
	const char *text; /* error and version lines: the rest of the line */
	size_t textlen;
};

/* line excludes the line end; a trailing '\r' is stripped by the parser.
 * Returns the kind (also stored in out). A VALUE line must carry a cas,
 * since coalesced only ever sends `gets`. */
enum mcr_kind mcr_parse_line(const char *line, size_t len, struct mcr_line *out);

/* Longest reply line accepted before the reply counts as garbage. */
#define MCR_MAX_LINE 8192

#endif
