/*
 * pg_codec: the bytes the PostgreSQL backend exchanges with libpq, without
 * any I/O: a batch of keys as one binary text[] parameter, result values in
 * binary format turned into the bytes a client gets, and the checks of a
 * route's SQL that `coalesced -t` runs without a database.
 *
 * Ownership: the caller owns every struct pgc_buf and frees it with
 * pgc_buf_free; the codec only grows it (realloc). Decoded values point
 * into the caller's result bytes or into the caller's struct pgc_text, and
 * live as long as those.
 *
 * Keys. A key reaches PostgreSQL as an element of a text[] parameter, and a
 * text value can hold neither a NUL byte nor bytes that are invalid in the
 * encoding: the server would reject the whole parameter, and so the whole
 * batch. The codec refuses such a key instead (PGC_NUL, PGC_UTF8) and adds
 * nothing for it, so the backend fails that key alone (its waiters get
 * SERVER_ERROR with pgc_strerror's text) and sends the others. Keys are
 * checked as UTF-8 (RFC 3629: no overlong forms, no surrogates, nothing past
 * U+10FFFF), the rules PostgreSQL applies to UTF-8 text. The backend must
 * therefore connect with client_encoding=UTF8: the server then converts keys
 * into the database's encoding, and a key with no equivalent there fails in
 * the server (a query error, isolated by splitting the batch).
 */
#ifndef COALESCED_PG_CODEC_H
#define COALESCED_PG_CODEC_H

#include <stddef.h>
#include <stdint.h>

/* Type OIDs (pg_type.oid, fixed since PostgreSQL 8). */
#define PGC_OID_BOOL 16
#define PGC_OID_BYTEA 17
#define PGC_OID_NAME 19
#define PGC_OID_INT8 20
#define PGC_OID_INT2 21
#define PGC_OID_INT4 23
#define PGC_OID_TEXT 25
#define PGC_OID_OID 26
#define PGC_OID_JSON 114
#define PGC_OID_UNKNOWN 705
#define PGC_OID_BPCHAR 1042
#define PGC_OID_VARCHAR 1043
#define PGC_OID_TEXT_ARRAY 1009 /* the type of the keys' parameter */
#define PGC_OID_UUID 2950
#define PGC_OID_JSONB 3802

/* The largest encoded array: PostgreSQL takes no message past 1 GB - 1, and
 * the Bind message carrying the array has a few more bytes of its own. */
#define PGC_ARRAY_MAX ((size_t)0x3fffffff - 4096)

enum pgc_status {
	PGC_OK = 0,
	PGC_NUL,     /* a key holds a NUL byte */
	PGC_UTF8,    /* a key is not valid UTF-8 */
	PGC_TOO_BIG, /* the array would pass PGC_ARRAY_MAX */
	PGC_NOMEM,
	PGC_TYPE,   /* a result column of a type the codec does not convert */
	PGC_FORMAT, /* a binary value whose length does not fit its type */
	PGC_RANGE,  /* flags outside 0 .. 2^32-1 */
};

/* A short English text for s ("key contains a NUL byte", ...). */
const char *pgc_strerror(enum pgc_status s);

struct pgc_buf {
	char *data;
	size_t len;
	size_t cap;
};

void pgc_buf_reset(struct pgc_buf *b); /* empty, keeping the memory */
void pgc_buf_free(struct pgc_buf *b);

/* PGC_OK if key can be an element of a text[] parameter. */
enum pgc_status pgc_key_check(const void *key, size_t len);

/*
 * Building one text[] parameter in binary format (array_recv's layout:
 * ndim, has-null flag, element type, then per dimension its length and
 * lower bound, then each element as a 32-bit length and its bytes; all
 * integers in network byte order), appended to a buffer:
 *
 *     struct pgc_array a;
 *     pgc_array_begin(&a, &buf);
 *     for each key: if (pgc_array_add(&a, k, klen) != PGC_OK) fail that key;
 *     if (pgc_array_end(&a) != PGC_OK) fail the batch (out of memory);
 *     value = buf.data + a.start, length buf.len - a.start, format 1,
 *     type PGC_OID_TEXT_ARRAY.
 *
 * A refused key leaves the buffer as it was. An array without elements is
 * sent as PostgreSQL sends one (no dimensions).
 */
struct pgc_array {
	struct pgc_buf *buf;
	size_t start;          /* where this array's bytes begin in buf */
	uint32_t n;            /* elements added */
	enum pgc_status error; /* out of memory in begin, reported by add and end */
};

void pgc_array_begin(struct pgc_array *a, struct pgc_buf *buf);
enum pgc_status pgc_array_add(struct pgc_array *a, const void *key, size_t len);
enum pgc_status pgc_array_end(struct pgc_array *a);

struct pgc_key {
	const void *data;
	size_t len;
};

/* The whole batch at once, appended to buf. On a refused key nothing is
 * appended, and *bad (if not NULL) is that key's index. */
enum pgc_status pgc_array_encode(struct pgc_buf *buf, const struct pgc_key *keys, size_t n,
                                 size_t *bad);

/*
 * One result value in binary format (PQgetvalue of a result asked for with
 * resultFormat 1; PQftype gives its type) as the bytes a client is sent:
 * text, varchar, bpchar, name, json and unknown as they are;
 * bytea as its raw bytes; jsonb as its text (without the format version
 * byte); int2, int4, int8 and oid in decimal; uuid in its canonical form;
 * bool as t or f (as in text format). Other types give PGC_TYPE: the query
 * should cast the column (::text or ::bytea). out->data points into data
 * or into out->tmp (so out must not be copied while in use).
 */
struct pgc_text {
	const char *data;
	size_t len;
	char tmp[40];
};

enum pgc_status pgc_value_decode(uint32_t type, const char *data, size_t len, struct pgc_text *out);

/* A flags value in binary format: int2, int4, int8 or oid, within
 * 0 .. 2^32-1. */
enum pgc_status pgc_flags_decode(uint32_t type, const char *data, size_t len, uint32_t *flags);

/*
 * The columns of a route's statement (PQdescribePrepared: PQnfields and
 * each PQftype): two or three, the key and the value of types
 * pgc_value_decode converts, the optional flags of an integer type.
 * Returns 0, or -1 with a one-line reason in err.
 */
int pgc_columns_check(const uint32_t *types, int n, char *err, size_t cap);

/*
 * A route's SQL as `coalesced -t` checks it: one statement that uses the
 * parameter $1 and no other $n. Like PostgreSQL's own lexer, it skips
 * '...' strings (also E'...' with backslash escapes, and U&'...', B'...',
 * X'...', N'...'), "..." identifiers, $tag$...$tag$ strings, -- comments
 * and nested C-style comments, and
 * identifiers (in which a '$' is a letter: a$1 is one name). Strings
 * follow standard_conforming_strings = on, PostgreSQL's default. A ';'
 * followed by anything but blanks and comments is a second statement.
 * Returns 0, or -1 with a one-line reason (naming the byte offset) in err.
 */
int pgc_sql_check(const char *sql, size_t len, char *err, size_t cap);

/*
 * A server message made fit for one protocol line (the SERVER_ERROR line
 * a client reads): control characters, CR and LF included, become spaces;
 * it is cut to fit cap (NUL included) at a UTF-8 character boundary.
 * msg NULL counts as empty. Returns the length written.
 */
size_t pgc_error_line(const char *msg, char *out, size_t cap);

#endif
