/*
 * proto_respreply: RESP2 replies, both ways. A pure, resumable parser of
 * what a Redis server sends (for the Redis backend), and a composer of the
 * same grammar (replies to RESP clients, and the arrays of bulk strings that
 * commands to Redis are made of). No I/O and no allocation.
 *
 * The parser hands out one token per call: a simple string, an error, an
 * integer, a bulk string (or nil), an array header (or nil array). Array
 * elements follow their header as tokens of their own; the parser keeps the
 * nesting and says which token completes a whole reply. A token's bytes point
 * into the caller's buffer and stay valid while the caller keeps them.
 */
#ifndef COALESCED_PROTO_RESPREPLY_H
#define COALESCED_PROTO_RESPREPLY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Arrays nested deeper than this are refused (MGET needs one level). */
#define RR_MAX_DEPTH 16

enum rr_status {
	RR_NEED_MORE = 0,
	RR_TOKEN,
	RR_INVALID, /* not RESP2 or over a limit: the stream cannot be trusted */
};

enum rr_type {
	RR_SIMPLE = 1, /* +text */
	RR_ERROR,      /* -text */
	RR_INTEGER,    /* :n */
	RR_BULK,       /* $len payload */
	RR_NIL,        /* $-1 */
	RR_ARRAY,      /* *n, its n elements follow */
	RR_NIL_ARRAY,  /* *-1 */
	RR_CHUNK,      /* part of a streamed bulk's payload */
};

struct rr_token {
	enum rr_type type;
	/* RR_SIMPLE, RR_ERROR: the text; RR_BULK: the payload when whole, else
	 * NULL with RR_CHUNK tokens to follow; RR_CHUNK: the next bytes. */
	const char *p;
	size_t len;     /* of the text, the (whole) payload, or the chunk */
	int64_t n;      /* RR_INTEGER: the value; RR_ARRAY: the element count */
	bool whole;     /* RR_BULK: the payload is in p */
	bool end;       /* RR_CHUNK: the payload's last bytes */
	uint32_t depth; /* arrays open around it: 0 for a reply on its own */
	bool done;      /* it completes a whole reply (for a streamed bulk, its
	                 * last chunk does) */
};

struct rr_parser {
	/* Limits, set after rr_init(); the defaults are those of proto_resp:
	 * 512 MiB, 1024 * 1024 elements, 64 KiB. */
	uint64_t max_bulk;
	uint32_t max_array;
	size_t max_line; /* text of a +, -, : line */
	/* A bulk longer than this that is not yet whole in the buffer is
	 * streamed: its RR_BULK token (p NULL) comes once its header is in, then
	 * RR_CHUNK tokens as its bytes arrive, so a big value need not sit in the
	 * input buffer whole. SIZE_MAX (the default): never streamed. */
	size_t stream_over;

	uint32_t depth;
	int64_t left[RR_MAX_DEPTH]; /* elements still due at each open level */
	bool streaming;
	uint64_t body; /* streamed payload bytes still to come */
	size_t scanned;
	bool failed;
	const char *why; /* RR_INVALID: for the log */
	size_t want;     /* RR_NEED_MORE: bytes from buf[0] the next token needs
	                  * at least, when known (else 0) */
};

void rr_init(struct rr_parser *p);

/*
 * Parse the next token from buf[0..len); the caller discards *consumed
 * bytes and passes the rest plus new bytes next time. After RR_INVALID every
 * call returns RR_INVALID.
 */
enum rr_status rr_parse(struct rr_parser *p, const char *buf, size_t len, struct rr_token *t,
                        size_t *consumed);

/* True between replies (no array or streamed bulk open). */
bool rr_idle(const struct rr_parser *p);

/* Composing. Each rr_put_* returns the bytes the piece takes and writes it
 * only when it fits in cap, so a call with cap 0 (out may be NULL) sizes it.
 * A value is best sent as rr_put_hdr('$') + its bytes + "\r\n" in one
 * writev, without copying it. */

/* Longest header: type, sign, 19 digits, CRLF. */
#define RR_HDR_MAX 24
#define RR_NULL_BULK "$-1\r\n"
#define RR_NULL_ARRAY "*-1\r\n"

/* "<type><n>\r\n": type '*' (array), '$' (bulk), ':' (integer). */
size_t rr_put_hdr(char *out, size_t cap, char type, int64_t n);
/* "$<len>\r\n<payload>\r\n". */
size_t rr_put_bulk(char *out, size_t cap, const void *payload, size_t len);
/* "<type><text>\r\n", type '+' or '-' (the text of an error starts with its
 * code: "ERR ..."); a CR or LF in text is sent as a space, as Redis does. */
size_t rr_put_line(char *out, size_t cap, char type, const char *text, size_t len);

#endif
