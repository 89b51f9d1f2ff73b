/*
 * proto_client: pure, resumable parser of the memcached text protocol as
 * clients send it. Bytes in; out comes one of: need more bytes, a command, or
 * "close the connection". No I/O; the only allocation is the parser's own key
 * array, reused from command to command.
 *
 * Every command memcached 1.6 knows is either parsed into its parts (reads,
 * writes, meta commands: the session forwards them re-encoded from those
 * parts, or refuses them) or refused here (PC_REPLY with `unsupported`).
 * Malformed lines get memcached's own reply, byte for byte.
 *
 * Keys, meta flags and data blocks in a returned command point into the
 * caller's buffer (or the parser) and stay valid until the caller discards
 * the consumed bytes or calls pc_parse() again.
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
/* pc_init's max_value: memcached's default item size limit. */
#define PC_VALUE_MAX_DEFAULT 1048576
/* Most flags a meta command may carry: memcached takes 19 tokens in all. */
#define PC_MFLAGS_MAX 17

enum pc_status {
	PC_NEED_MORE = 0,
	PC_COMMAND,
	PC_CLOSE, /* reply (may be NULL) then close */
};

enum pc_type {
	PC_GET = 0, /* keys */
	PC_GETS,    /* keys */
	PC_VERSION,
	PC_QUIT,
	PC_STATS,  /* args */
	PC_REPLY,  /* answer with cmd.reply */
	PC_SILENT, /* answer nothing: a failed or refused command with noreply */
	/* Storage: keys[0], flags, exptime, data/datalen, noreply; cas also cas. */
	PC_SET,
	PC_ADD,
	PC_REPLACE,
	PC_APPEND,
	PC_PREPEND,
	PC_CAS,
	PC_DELETE,    /* keys[0], noreply ("delete <key> 0" is the same command) */
	PC_INCR,      /* keys[0], delta, noreply */
	PC_DECR,      /* keys[0], delta, noreply */
	PC_TOUCH,     /* keys[0], exptime, noreply */
	PC_GAT,       /* exptime, keys (one or more, checked as for get) */
	PC_GATS,      /* exptime, keys */
	PC_VERBOSITY, /* level, noreply */
	PC_FLUSH_ALL, /* exptime (the delay) when has_exptime, noreply */
	/* Meta commands: keys[0] (none for mn), key_base64, mflags; ms also
	 * data/datalen. Flags are checked as memcached checks them, not acted on:
	 * q, O, k, ... are the session's to honour. */
	PC_MG,
	PC_MS,
	PC_MD,
	PC_MA,
	PC_MN,
	PC_ME, /* keys[0] and key_base64 only: memcached ignores other flags */
};

struct pc_key {
	const char *p;
	size_t len;
};

/* One meta flag token: its first byte, then the rest of the token (a TTL, a
 * number, an opaque, a mode; empty for most flags). Only bytes 0x21-0x7e and
 * 0x80-0xff appear in it. */
struct pc_mflag {
	char flag;
	const char *arg;
	size_t arglen;
};

struct pc_cmd {
	enum pc_type type;
	const char *reply;  /* PC_REPLY / PC_CLOSE: full reply line with CRLF, or NULL */
	bool client_error;  /* the reply (or silence) reports a client mistake */
	bool unsupported;   /* a memcached command coalesced refuses */
	bool too_many_keys; /* a get/gat over the parser's max_keys */
	/* A storage value over max_value: memcached's "object too large"
	 * answered (or not, with noreply) and its block being discarded. When
	 * nkeys is 1, memcached would also have dropped that key's old value
	 * (set and ms do), which the session may want to mirror. */
	bool too_large;
	/* Keys, each 1-250 bytes none of which is <= 0x20 or 0x7f: the keys of
	 * a get/gets/gat/gats, or the one key of the other key commands (for a
	 * meta command with the b flag: the base64 text as sent). */
	const struct pc_key *keys;
	uint32_t nkeys;
	const char *why;  /* PC_CLOSE: for the log */
	const char *args; /* PC_STATS: the rest of the line */
	size_t argslen;

	/* Classic commands: the line ended in "noreply": memcached sends no
	 * reply at all, not even an error. Meta commands use the q flag. */
	bool noreply;
	uint32_t flags;   /* storage: client flags (memcached keeps the low 32 bits) */
	int32_t exptime;  /* storage, touch, gat/gats; flush_all's delay */
	bool has_exptime; /* flush_all: a delay was given */
	uint64_t cas;     /* cas: the unique to compare */
	uint64_t delta;   /* incr/decr */
	uint32_t level;   /* verbosity */
	/* Storage and ms: the data block, without its CRLF, in the caller's
	 * buffer right after the command line. */
	const char *data;
	size_t datalen;
	bool key_base64; /* meta: the b flag: keys[0] is base64 (see pc_base64_decode) */
	const struct pc_mflag *mflags; /* meta: the flags in the order sent */
	uint32_t nmflags;
};

struct pc_parser {
	size_t max_line;   /* longest get/gets line */
	uint32_t max_keys; /* most keys in one get/gets/gat/gats; pc_init sets no limit */
	size_t max_value;  /* largest data block; pc_init: PC_VALUE_MAX_DEFAULT */
	/* >0: a command's data block is incomplete: pc_parse returns
	 * PC_NEED_MORE, consuming nothing, until this many bytes from the start
	 * of the command line are buffered. The caller must be able to hold them
	 * (up to max_value plus a line). */
	size_t need;
	size_t scanned;   /* bytes of the pending line already searched for '\n' */
	bool started;     /* the connection's first byte has been seen */
	uint64_t swallow; /* bytes of a refused data block still to discard */
	struct pc_key *keys;
	uint32_t kcap;
	struct pc_key key1; /* the key of a single-key command */
	struct pc_mflag mflags[PC_MFLAGS_MAX];
};

void pc_init(struct pc_parser *p, size_t max_line);
void pc_free(struct pc_parser *p);

/* Parse from buf[0..len). *consumed is set to the bytes used (also on
 * PC_NEED_MORE, when a data block is being discarded). */
enum pc_status pc_parse(struct pc_parser *p, const char *buf, size_t len, struct pc_cmd *cmd,
                        size_t *consumed);

/* The command word of a parsed command type ("set", "mg", ...); NULL for
 * PC_REPLY and PC_SILENT. */
const char *pc_type_word(enum pc_type type);

/* Decode a base64 meta key the way memcached 1.6 does (bytes outside the
 * alphabet are skipped; decoding stops after the first padded group). out
 * needs len * 3 / 4 bytes, or is NULL to only check. Returns the decoded
 * length; 0 means memcached refuses the key. */
size_t pc_base64_decode(const char *in, size_t len, unsigned char *out);

#endif
