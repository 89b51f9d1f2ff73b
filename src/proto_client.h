/*
 * proto_client: pure, resumable parser of the memcached text protocol as
 * clients send it. Bytes in; out comes one of: need more bytes, a command, or
 * "close the connection". No I/O; the only allocation is the parser's own key
 * array, reused from command to command.
 *
 * Keys in a returned command point into the caller's buffer and stay valid
 * until the caller discards the consumed bytes or calls pc_parse() again.
 */
#ifndef COALESCED_PROTO_CLIENT_H
#define COALESCED_PROTO_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define PC_KEY_MAX 250
/* memcached closes a connection that sends this much without a newline,
 * unless the line is a get/gets (multi-gets may be long). */
#define PC_SHORT_LINE_MAX 2048

enum pc_status {
	PC_NEED_MORE = 0,
	PC_COMMAND,
	PC_CLOSE, /* reply (may be NULL) then close */
};

enum pc_type {
	PC_GET = 0,
	PC_GETS,
	PC_VERSION,
	PC_QUIT,
	PC_STATS,
	PC_REPLY,  /* answer with cmd.reply */
	PC_SILENT, /* a refused command with noreply: no answer at all */
};

struct pc_key {
	const char *p;
	size_t len;
};

struct pc_cmd {
	enum pc_type type;
	const char *reply;  /* PC_REPLY / PC_CLOSE: full reply line with CRLF, or NULL */
	bool client_error;  /* the reply reports a client mistake */
	bool unsupported;   /* a memcached command coalesced refuses */
	bool too_many_keys; /* a get over the parser's max_keys */
	const struct pc_key *keys;
	uint32_t nkeys;
	const char *why;  /* PC_CLOSE: for the log */
	const char *args; /* PC_STATS: the rest of the line */
	size_t argslen;
};

struct pc_parser {
	size_t max_line;   /* longest get/gets line */
	uint32_t max_keys; /* most keys in one get/gets; pc_init sets no limit */
	size_t scanned;    /* bytes of the pending line already searched for '\n' */
	bool started;      /* the connection's first byte has been seen */
	uint64_t swallow;  /* data block bytes still to discard */
	bool swallow_noreply;
	bool swallow_check;   /* the block must end in CRLF */
	char swallow_tail[2]; /* last two bytes discarded */
	struct pc_key *keys;
	uint32_t kcap;
};

void pc_init(struct pc_parser *p, size_t max_line);
void pc_free(struct pc_parser *p);

/* Parse from buf[0..len). *consumed is set to the bytes used (also on
 * PC_NEED_MORE, when a data block is being discarded). */
enum pc_status pc_parse(struct pc_parser *p, const char *buf, size_t len, struct pc_cmd *cmd,
                        size_t *consumed);

#endif
