/*
 * proto_resp: pure, resumable parser of RESP2 requests as Redis clients send
 * them: multibulk arrays (`*2\r\n$3\r\nGET\r\n$1\r\nk\r\n`) and inline
 * commands (`GET k\r\n`, with redis-cli's quoting). Bytes in; out comes one
 * of: need more bytes, a command (argv), or a protocol error whose reply and
 * wording are Redis' own, after which the connection is to be closed. No I/O.
 *
 * Ownership: the parser owns its argv array and, for inline commands, a
 * buffer holding the unquoted arguments; rp_free() releases both. Arguments
 * of a multibulk command point into the caller's buffer. Either way they stay
 * valid until the next rp_parse() or rp_free(), and (multibulk) as long as
 * the caller keeps the consumed bytes.
 */
#ifndef COALESCED_PROTO_RESP_H
#define COALESCED_PROTO_RESP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Redis' defaults: proto-max-bulk-len, PROTO_INLINE_MAX_SIZE. Redis 7.0
 * accepts up to INT_MAX array elements; 1024 * 1024 was its bound before
 * and is ours by default. */
#define RP_MAX_BULK_DEFAULT (512ULL * 1024 * 1024)
#define RP_MAX_ARRAY_DEFAULT (1024U * 1024)
#define RP_MAX_INLINE_DEFAULT ((size_t)64 * 1024)

enum rp_status {
	RP_NEED_MORE = 0,
	RP_COMMAND,
	RP_ERROR, /* send cmd->reply, then close; the parser stays in error */
};

struct rp_arg {
	const char *p;
	size_t len;
};

struct rp_cmd {
	const struct rp_arg *argv; /* argc >= 1 on RP_COMMAND */
	uint32_t argc;
	bool is_inline;
	/* RP_ERROR: "-ERR Protocol error: ...\r\n" as Redis sends it (NUL
	 * terminated, no NUL inside), and the short reason Redis logs. */
	const char *reply;
	size_t replylen;
	const char *why;
};

struct rp_parser {
	/* Limits, set after rp_init(): a bulk longer than max_bulk or an array
	 * of more than max_array elements is "invalid ... length"; a line (an
	 * inline command, or a count line) longer than max_inline is "too big".
	 * An inline command's argument count is bounded by its line only, as in
	 * Redis. The caller bounds the bytes it buffers for one command. */
	uint64_t max_bulk;
	uint32_t max_array;
	size_t max_inline;

	/* Progress within the pending command; offsets count from its first
	 * byte, which is buf[0] of the next call. */
	int state;
	size_t pos;      /* where the next count line or bulk starts */
	size_t scanned;  /* bytes from pos already searched for the line end */
	uint32_t left;   /* array elements still to come */
	int64_t bulklen; /* of the bulk at pos, -1 while its count line is unread */
	uint32_t argc;   /* elements read so far */
	size_t *offs;    /* their offsets (argv[i].p is set at the end) */
	struct rp_arg *argv;
	uint32_t cap;
	char *arena; /* inline arguments, unquoted */
	size_t arena_cap;
	char err[64];           /* reply of "expected '$', got 'x'" */
	const char *fail_reply; /* after RP_ERROR: repeated by later calls */
	const char *fail_why;
	size_t want; /* on RP_NEED_MORE: the pending command needs at least this
	              * many bytes from buf[0] before it can end (a hint for
	              * sizing the input buffer; 0 when not known) */
};

/* Limits take Redis' defaults. */
void rp_init(struct rp_parser *p);
void rp_free(struct rp_parser *p);

/*
 * Parse from buf[0..len), which must start with the bytes the previous call
 * left unconsumed (the caller discards exactly *consumed bytes after each
 * call, and passes what remains plus any new bytes; the bytes may move).
 * *consumed counts the bytes used: a command's, and before it any empty
 * inline lines and `*0` / `*-1` arrays, which are skipped as Redis skips
 * them (so RP_NEED_MORE may consume too).
 */
enum rp_status rp_parse(struct rp_parser *p, const char *buf, size_t len, struct rp_cmd *cmd,
                        size_t *consumed);

/* A number as Redis' string2ll() reads one: optional '-', no leading zero,
 * no other sign or blank, within int64. For lengths, counts and arguments
 * such as SELECT's index. */
bool rp_strtoll(const char *s, size_t n, int64_t *out);

#endif
