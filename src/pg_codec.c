/*
 * pg_codec: keys into a binary text[] parameter, binary result values into
 * client bytes, and the static checks of a route's SQL (see pg_codec.h).
 * Pure: no I/O, no libpq; the caller owns every buffer.
 */
#include "pg_codec.h"

#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ndim, flags, element type, then one dimension: length, lower bound. */
#define ARRAY_HEADER 20
#define ARRAY_HEADER_EMPTY 12
/* PostgreSQL's MaxArraySize: MaxAllocSize / sizeof(Datum). */
#define ARRAY_MAX_ELEMS ((uint32_t)(0x3fffffff / 8))

const char *pgc_strerror(enum pgc_status s)
{
	switch (s) {
	case PGC_OK:
		return "ok";
	case PGC_NUL:
		return "key contains a NUL byte, which PostgreSQL text cannot hold";
	case PGC_UTF8:
		return "key is not valid UTF-8";
	case PGC_TOO_BIG:
		return "keys too large for one PostgreSQL array";
	case PGC_NOMEM:
		return "out of memory";
	case PGC_TYPE:
		return "result column of an unsupported type (cast it to text or bytea)";
	case PGC_FORMAT:
		return "malformed binary value from the server";
	case PGC_RANGE:
		return "flags outside 0..4294967295";
	}
	return "unknown error";
}

void pgc_buf_reset(struct pgc_buf *b)
{
	b->len = 0;
}

void pgc_buf_free(struct pgc_buf *b)
{
	free(b->data);
	b->data = NULL;
	b->len = b->cap = 0;
}

static bool buf_reserve(struct pgc_buf *b, size_t more)
{
	size_t cap = b->cap ? b->cap : 256;
	char *p;

	if (more <= b->cap - b->len)
		return true;
	if (more > SIZE_MAX / 2 - b->len)
		return false;
	while (cap - b->len < more)
		cap *= 2;
	p = realloc(b->data, cap);
	if (!p)
		return false;
	b->data = p;
	b->cap = cap;
	return true;
}

static void put32(char *at, uint32_t v)
{
	unsigned char *u = (unsigned char *)at;
	u[0] = (unsigned char)(v >> 24);
	u[1] = (unsigned char)(v >> 16);
	u[2] = (unsigned char)(v >> 8);
	u[3] = (unsigned char)v;
}

static uint64_t get_be(const char *data, size_t len)
{
	const unsigned char *u = (const unsigned char *)data;
	uint64_t v = 0;

	for (size_t i = 0; i < len; i++)
		v = v << 8 | u[i];
	return v;
}

/* Well-formed UTF-8 as in Unicode's table 3-7, which is what PostgreSQL's
 * pg_utf8_islegal accepts. */
static enum pgc_status utf8_check(const unsigned char *s, size_t len)
{
	size_t i = 0;

	while (i < len) {
		unsigned char c = s[i];
		unsigned char lo = 0x80, hi = 0xbf;
		size_t n;

		if (c < 0x80) {
			if (c == 0)
				return PGC_NUL;
			i++;
			continue;
		}
		if (c >= 0xc2 && c <= 0xdf)
			n = 1;
		else if (c >= 0xe0 && c <= 0xef)
			n = 2;
		else if (c >= 0xf0 && c <= 0xf4)
			n = 3;
		else
			return PGC_UTF8;
		/* The second byte's range is what excludes overlong forms,
		 * surrogates and code points past U+10FFFF. */
		if (c == 0xe0)
			lo = 0xa0;
		else if (c == 0xed)
			hi = 0x9f;
		else if (c == 0xf0)
			lo = 0x90;
		else if (c == 0xf4)
			hi = 0x8f;
		if (len - i <= n)
			return PGC_UTF8;
		if (s[i + 1] < lo || s[i + 1] > hi)
			return PGC_UTF8;
		for (size_t k = 2; k <= n; k++)
			if (s[i + k] < 0x80 || s[i + k] > 0xbf)
				return PGC_UTF8;
		i += n + 1;
	}
	return PGC_OK;
}

enum pgc_status pgc_key_check(const void *key, size_t len)
{
	/* A NUL anywhere is the clearer complaint, even in a key that is not
	 * UTF-8 either. */
	if (memchr(key, 0, len))
		return PGC_NUL;
	return utf8_check(key, len);
}

void pgc_array_begin(struct pgc_array *a, struct pgc_buf *buf)
{
	a->buf = buf;
	a->start = buf->len;
	a->n = 0;
	a->error = PGC_OK;
	if (!buf_reserve(buf, ARRAY_HEADER)) {
		a->error = PGC_NOMEM;
		return;
	}
	put32(buf->data + buf->len, 1);
	put32(buf->data + buf->len + 4, 0);
	put32(buf->data + buf->len + 8, PGC_OID_TEXT);
	put32(buf->data + buf->len + 12, 0); /* the count, set by pgc_array_end */
	put32(buf->data + buf->len + 16, 1);
	buf->len += ARRAY_HEADER;
}

enum pgc_status pgc_array_add(struct pgc_array *a, const void *key, size_t len)
{
	struct pgc_buf *b = a->buf;
	enum pgc_status s;

	if (a->error != PGC_OK)
		return a->error;
	if (a->n >= ARRAY_MAX_ELEMS || len > PGC_ARRAY_MAX - 4 ||
	    b->len - a->start > PGC_ARRAY_MAX - 4 - len)
		return PGC_TOO_BIG;
	s = pgc_key_check(key, len);
	if (s != PGC_OK)
		return s;
	if (!buf_reserve(b, 4 + len)) {
		a->error = PGC_NOMEM;
		return a->error;
	}
	put32(b->data + b->len, (uint32_t)len);
	if (len)
		memcpy(b->data + b->len + 4, key, len);
	b->len += 4 + len;
	a->n++;
	return PGC_OK;
}

enum pgc_status pgc_array_end(struct pgc_array *a)
{
	struct pgc_buf *b = a->buf;

	if (a->error != PGC_OK)
		return a->error;
	if (a->n == 0) {
		/* As array_send writes an empty array: no dimensions. */
		put32(b->data + a->start, 0);
		b->len = a->start + ARRAY_HEADER_EMPTY;
		return PGC_OK;
	}
	put32(b->data + a->start + 12, a->n);
	return PGC_OK;
}

enum pgc_status pgc_array_encode(struct pgc_buf *buf, const struct pgc_key *keys, size_t n,
                                 size_t *bad)
{
	struct pgc_array a;
	enum pgc_status s;

	pgc_array_begin(&a, buf);
	for (size_t i = 0; i < n; i++) {
		s = pgc_array_add(&a, keys[i].data, keys[i].len);
		if (s != PGC_OK) {
			if (bad)
				*bad = i;
			buf->len = a.start;
			return s;
		}
	}
	s = pgc_array_end(&a);
	if (s != PGC_OK)
		buf->len = a.start;
	return s;
}

static bool text_like(uint32_t type)
{
	switch (type) {
	case PGC_OID_TEXT:
	case PGC_OID_VARCHAR:
	case PGC_OID_BPCHAR:
	case PGC_OID_NAME:
	case PGC_OID_JSON:
	case PGC_OID_UNKNOWN:
	case PGC_OID_BYTEA:
		return true;
	}
	return false;
}

static bool integer_type(uint32_t type, size_t *width)
{
	switch (type) {
	case PGC_OID_INT2:
		*width = 2;
		return true;
	case PGC_OID_INT4:
	case PGC_OID_OID:
		*width = 4;
		return true;
	case PGC_OID_INT8:
		*width = 8;
		return true;
	}
	return false;
}

static bool value_type(uint32_t type)
{
	size_t w;
	return text_like(type) || integer_type(type, &w) || type == PGC_OID_JSONB ||
	       type == PGC_OID_UUID || type == PGC_OID_BOOL;
}

/* A binary integer of its type's width, sign-extended unless it is an oid. */
static enum pgc_status integer_decode(uint32_t type, const char *data, size_t len, int64_t *out)
{
	size_t w;
	uint64_t v;

	if (!integer_type(type, &w))
		return PGC_TYPE;
	if (len != w)
		return PGC_FORMAT;
	v = get_be(data, len);
	if (type == PGC_OID_OID || w == 8)
		*out = (int64_t)v; /* two's complement, as every target compiler does */
	else if (w == 4)
		*out = (int32_t)(uint32_t)v;
	else
		*out = (int16_t)(uint16_t)v;
	return PGC_OK;
}

enum pgc_status pgc_value_decode(uint32_t type, const char *data, size_t len, struct pgc_text *out)
{
	static const char hex[] = "0123456789abcdef";
	enum pgc_status s;
	int64_t v;
	int n;

	out->data = data;
	out->len = len;
	if (text_like(type))
		return PGC_OK;
	switch (type) {
	case PGC_OID_JSONB:
		/* jsonb_send: a format version byte, then the text. */
		if (len < 1 || data[0] != 1)
			return PGC_FORMAT;
		out->data = data + 1;
		out->len = len - 1;
		return PGC_OK;
	case PGC_OID_BOOL:
		if (len != 1)
			return PGC_FORMAT;
		out->data = data[0] ? "t" : "f";
		out->len = 1;
		return PGC_OK;
	case PGC_OID_UUID:
		if (len != 16)
			return PGC_FORMAT;
		n = 0;
		for (size_t i = 0; i < 16; i++) {
			unsigned char c = (unsigned char)data[i];
			if (i == 4 || i == 6 || i == 8 || i == 10)
				out->tmp[n++] = '-';
			out->tmp[n++] = hex[c >> 4];
			out->tmp[n++] = hex[c & 15];
		}
		out->data = out->tmp;
		out->len = (size_t)n;
		return PGC_OK;
	}
	s = integer_decode(type, data, len, &v);
	if (s != PGC_OK)
		return s;
	n = snprintf(out->tmp, sizeof(out->tmp), "%" PRId64, v);
	out->data = out->tmp;
	out->len = (size_t)n;
	return PGC_OK;
}

enum pgc_status pgc_flags_decode(uint32_t type, const char *data, size_t len, uint32_t *flags)
{
	int64_t v;
	enum pgc_status s = integer_decode(type, data, len, &v);

	if (s != PGC_OK)
		return s;
	if (v < 0 || v > (int64_t)UINT32_MAX)
		return PGC_RANGE;
	*flags = (uint32_t)v;
	return PGC_OK;
}

int pgc_columns_check(const uint32_t *types, int n, char *err, size_t cap)
{
	static const char *const names[] = {"key", "value"};
	size_t w;

	if (n < 2 || n > 3) {
		snprintf(err, cap,
		         "returns %d column%s; a query returns the key, the value and optionally "
		         "the flags",
		         n, n == 1 ? "" : "s");
		return -1;
	}
	for (int i = 0; i < 2; i++)
		if (!value_type(types[i])) {
			snprintf(err, cap,
			         "column %d (the %s) has type oid %" PRIu32
			         ", which is not converted; cast it to text or bytea",
			         i + 1, names[i], types[i]);
			return -1;
		}
	if (n == 3 && !integer_type(types[2], &w)) {
		snprintf(err, cap,
		         "column 3 (the flags) has type oid %" PRIu32
		         "; flags must be int2, int4, int8 or oid",
		         types[2]);
		return -1;
	}
	return 0;
}

/* PostgreSQL's lexer: ident_start [A-Za-z\200-\377_], ident_cont adds
 * digits and '$'; a dollar quote's tag is an identifier without '$'. */
static bool ident_start(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c >= 0x80;
}

static bool digit(unsigned char c)
{
	return c >= '0' && c <= '9';
}

static bool ident_cont(unsigned char c)
{
	return ident_start(c) || digit(c) || c == '$';
}

static bool blank(unsigned char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

/* The end of a quoted token opened at s[i] by q (', "), past the closing
 * quote; a doubled quote is one character of it, and with backslashes a
 * backslash escapes the next byte. 0 if unterminated. */
static size_t skip_quoted(const char *s, size_t len, size_t i, char q, bool backslashes)
{
	for (i++; i < len; i++) {
		if (backslashes && s[i] == '\\') {
			i++;
			continue;
		}
		if (s[i] == q) {
			if (i + 1 < len && s[i + 1] == q) {
				i++;
				continue;
			}
			return i + 1;
		}
	}
	return 0;
}

/* The length of a dollar quote's delimiter at s[i] ($$ or $tag$), or 0. */
static size_t dollar_delim(const char *s, size_t len, size_t i)
{
	size_t k = i + 1;

	if (k < len && ident_start((unsigned char)s[k]))
		for (k++;
		     k < len && (ident_start((unsigned char)s[k]) || digit((unsigned char)s[k]));
		     k++)
			;
	if (k < len && s[k] == '$')
		return k + 1 - i;
	return 0;
}

int pgc_sql_check(const char *s, size_t len, char *err, size_t cap)
{
	size_t i = 0, semicolon = 0, uses = 0;
	bool ended = false, any = false;

#define FAIL(...)                                                                                  \
	do {                                                                                       \
		snprintf(err, cap, __VA_ARGS__);                                                   \
		return -1;                                                                         \
	} while (0)

	if (memchr(s, '\0', len))
		FAIL("NUL byte at byte %zu", (size_t)((const char *)memchr(s, '\0', len) - s));
	while (i < len) {
		unsigned char c = (unsigned char)s[i];
		size_t start = i, end;

		if (blank(c)) {
			i++;
			continue;
		}
		if (c == '-' && i + 1 < len && s[i + 1] == '-') {
			while (i < len && s[i] != '\n' && s[i] != '\r')
				i++;
			continue;
		}
		if (c == '/' && i + 1 < len && s[i + 1] == '*') {
			int depth = 1;
			for (i += 2; i < len && depth > 0; i++) {
				if (s[i] == '/' && i + 1 < len && s[i + 1] == '*') {
					depth++;
					i++;
				} else if (s[i] == '*' && i + 1 < len && s[i + 1] == '/') {
					depth--;
					i++;
				}
			}
			if (depth > 0)
				FAIL("unterminated /* comment at byte %zu", start);
			continue;
		}
		if (c == ';') {
			/* Empty statements after it are no second statement. */
			if (!ended)
				semicolon = i;
			ended = true;
			i++;
			continue;
		}
		if (ended)
			FAIL("more than one statement (';' at byte %zu)", semicolon);
		any = true;
		if (c == '\'' || c == '"') {
			end = skip_quoted(s, len, i, (char)c, false);
			if (!end)
				FAIL("unterminated quoted %s at byte %zu",
				     c == '"' ? "identifier" : "string", start);
			i = end;
			continue;
		}
		if (c == '$') {
			size_t d;
			if (i + 1 < len && digit((unsigned char)s[i + 1])) {
				size_t k = i + 1;
				bool one;
				while (k < len && s[k] == '0')
					k++;
				one = k < len && s[k] == '1' &&
				      (k + 1 >= len || !digit((unsigned char)s[k + 1]));
				while (k < len && digit((unsigned char)s[k]))
					k++;
				if (k < len && ident_start((unsigned char)s[k]))
					FAIL("trailing junk after parameter at byte %zu", start);
				if (!one)
					FAIL("uses %.*s at byte %zu; the only parameter is $1, the "
					     "batch's keys (text[])",
					     (int)(k - i > 24 ? 24 : k - i), s + i, start);
				uses++;
				i = k;
				continue;
			}
			d = dollar_delim(s, len, i);
			if (d) {
				const char *close = NULL;
				for (size_t k = i + d; k + d <= len; k++)
					if (s[k] == '$' && memcmp(s + k, s + i, d) == 0) {
						close = s + k;
						break;
					}
				if (!close)
					FAIL("unterminated dollar-quoted string at byte %zu",
					     start);
				i = (size_t)(close - s) + d;
				continue;
			}
			i++;
			continue;
		}
		if (ident_start(c)) {
			char n = i + 1 < len ? s[i + 1] : '\0';
			if ((c == 'e' || c == 'E') && n == '\'') {
				end = skip_quoted(s, len, i + 1, '\'', true);
				if (!end)
					FAIL("unterminated quoted string at byte %zu", start);
				i = end;
				continue;
			}
			if ((c == 'b' || c == 'B' || c == 'x' || c == 'X' || c == 'n' ||
			     c == 'N') &&
			    n == '\'') {
				end = skip_quoted(s, len, i + 1, '\'', false);
				if (!end)
					FAIL("unterminated quoted string at byte %zu", start);
				i = end;
				continue;
			}
			if ((c == 'u' || c == 'U') && n == '&' && i + 2 < len &&
			    (s[i + 2] == '\'' || s[i + 2] == '"')) {
				end = skip_quoted(s, len, i + 2, s[i + 2], false);
				if (!end)
					FAIL("unterminated quoted %s at byte %zu",
					     s[i + 2] == '"' ? "identifier" : "string", start);
				i = end;
				continue;
			}
			for (i++; i < len && ident_cont((unsigned char)s[i]); i++)
				;
			continue;
		}
		if (digit(c)) {
			/* A number: its digits must not be read as an identifier's
			 * start, nor a following "$1" as part of it. */
			while (i < len && (digit((unsigned char)s[i]) || s[i] == '.'))
				i++;
			if (i < len && (s[i] == 'e' || s[i] == 'E')) {
				size_t k = i + 1;
				if (k < len && (s[k] == '+' || s[k] == '-'))
					k++;
				if (k < len && digit((unsigned char)s[k]))
					for (i = k; i < len && digit((unsigned char)s[i]); i++)
						;
			}
			continue;
		}
		i++;
	}
#undef FAIL
	if (!any) {
		snprintf(err, cap, "empty query");
		return -1;
	}
	if (!uses) {
		snprintf(err, cap, "does not use $1, the batch's keys (text[])");
		return -1;
	}
	return 0;
}

size_t pgc_error_line(const char *msg, char *out, size_t cap)
{
	size_t len, n;

	if (cap == 0)
		return 0;
	if (!msg)
		msg = ""; /* as PQresultErrorField gives for a field not sent */
	len = strlen(msg);
	n = len < cap - 1 ? len : cap - 1;
	/* Never end on half a character. */
	if (n < len)
		while (n > 0 && ((unsigned char)msg[n] & 0xc0) == 0x80)
			n--;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)msg[i];
		out[i] = c < 0x20 || c == 0x7f ? ' ' : (char)c;
	}
	out[n] = '\0';
	return n;
}
