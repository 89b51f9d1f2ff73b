/*
 * proto_respreply: RESP2 replies. The parser is strict, unlike Redis' request
 * parser: a reply frames values that many clients will receive, so every
 * line must end in CRLF, a bulk's payload must be followed by CRLF, numbers
 * are canonical (rp_strtoll), and a simple string or error holds no CR or LF.
 * RESP3 types are refused: coalesced never asks for them.
 */
#include "proto_respreply.h"

#include "proto_resp.h"

#include <string.h>

void rr_init(struct rr_parser *p)
{
	memset(p, 0, sizeof(*p));
	p->max_bulk = RP_MAX_BULK_DEFAULT;
	p->max_array = RP_MAX_ARRAY_DEFAULT;
	p->max_line = RP_MAX_INLINE_DEFAULT;
	p->stream_over = SIZE_MAX;
}

bool rr_idle(const struct rr_parser *p)
{
	return p->depth == 0 && !p->streaming && !p->failed;
}

static enum rr_status invalid(struct rr_parser *p, const char *why)
{
	p->failed = true;
	p->why = why;
	return RR_INVALID;
}

/* One element is complete: close every array it completes. True when that
 * completes the whole reply. */
static bool complete(struct rr_parser *p)
{
	while (p->depth > 0) {
		if (--p->left[p->depth - 1] > 0)
			return false;
		p->depth--;
	}
	return true;
}

/* The next bytes of a streamed bulk. Its last payload bytes go out with the
 * CRLF after them, so that the chunk that says "end" has checked it. */
static enum rr_status chunk(struct rr_parser *p, const char *buf, size_t len, struct rr_token *t,
                            size_t *consumed)
{
	size_t take = p->body < len ? (size_t)p->body : len;
	bool end = take == p->body && len - take >= 2;

	if (end && (buf[take] != '\r' || buf[take + 1] != '\n'))
		return invalid(p, "bulk string not followed by CRLF");
	if (!end && take == 0) {
		p->want = p->body > SIZE_MAX - 2 ? SIZE_MAX : (size_t)p->body + 2;
		return RR_NEED_MORE;
	}
	t->type = RR_CHUNK;
	t->p = buf;
	t->len = take;
	t->end = end;
	t->depth = p->depth;
	*consumed = take + (end ? 2 : 0);
	p->body -= take;
	if (end) {
		p->streaming = false;
		t->done = complete(p);
	}
	return RR_TOKEN;
}

enum rr_status rr_parse(struct rr_parser *p, const char *buf, size_t len, struct rr_token *t,
                        size_t *consumed)
{
	size_t lim, at, hdr;
	const char *cr, *text;
	int64_t v;

	memset(t, 0, sizeof(*t));
	*consumed = 0;
	p->want = 0;
	if (p->failed)
		return RR_INVALID;
	if (p->streaming)
		return chunk(p, buf, len, t, consumed);
	if (len == 0)
		return RR_NEED_MORE;
	switch (buf[0]) {
	case '+':
	case '-':
	case ':':
	case '$':
	case '*':
		break;
	default:
		return invalid(p, "unexpected type byte");
	}
	/* The line: type byte, at most max_line bytes, CRLF. */
	lim = len - 1 > p->max_line ? p->max_line + 1 : len - 1;
	cr = p->scanned < lim ? memchr(buf + 1 + p->scanned, '\r', lim - p->scanned) : NULL;
	if (!cr) {
		p->scanned = lim;
		if (len - 1 > p->max_line)
			return invalid(p, "reply line too long");
		return RR_NEED_MORE;
	}
	at = (size_t)(cr - buf);
	p->scanned = at - 1;
	if (at + 1 >= len)
		return RR_NEED_MORE;
	if (buf[at + 1] != '\n')
		return invalid(p, "CR not followed by LF");
	p->scanned = 0;
	hdr = at + 2;
	text = buf + 1;
	t->depth = p->depth;

	switch (buf[0]) {
	case '+':
	case '-':
		if (memchr(text, '\n', at - 1))
			return invalid(p, "LF inside a status line");
		t->type = buf[0] == '+' ? RR_SIMPLE : RR_ERROR;
		t->p = text;
		t->len = at - 1;
		break;
	case ':':
		if (!rp_strtoll(text, at - 1, &v))
			return invalid(p, "invalid integer");
		t->type = RR_INTEGER;
		t->n = v;
		break;
	case '$':
		if (!rp_strtoll(text, at - 1, &v) || v < -1 ||
		    (v >= 0 && (uint64_t)v > p->max_bulk))
			return invalid(p, "invalid bulk length");
		if (v == -1) {
			t->type = RR_NIL;
			break;
		}
		t->type = RR_BULK;
		t->len = (size_t)v;
		if ((uint64_t)(len - hdr) >= (uint64_t)v + 2) {
			if (buf[hdr + t->len] != '\r' || buf[hdr + t->len + 1] != '\n')
				return invalid(p, "bulk string not followed by CRLF");
			t->p = buf + hdr;
			t->whole = true;
			*consumed = hdr + t->len + 2;
			t->done = complete(p);
			return RR_TOKEN;
		}
		if ((uint64_t)v > p->stream_over) {
			p->streaming = true;
			p->body = (uint64_t)v;
			*consumed = hdr;
			return RR_TOKEN;
		}
		{
			uint64_t w = (uint64_t)hdr + (uint64_t)v + 2;
			p->want = w > SIZE_MAX ? SIZE_MAX : (size_t)w;
		}
		/* The header is read again with the payload: it is short. */
		return RR_NEED_MORE;
	case '*':
		if (!rp_strtoll(text, at - 1, &v) || v < -1 || v > (int64_t)p->max_array)
			return invalid(p, "invalid array length");
		if (v == -1) {
			t->type = RR_NIL_ARRAY;
			break;
		}
		t->type = RR_ARRAY;
		t->n = v;
		if (v == 0)
			break;
		if (p->depth >= RR_MAX_DEPTH)
			return invalid(p, "arrays nested too deep");
		p->left[p->depth++] = v;
		*consumed = hdr;
		return RR_TOKEN;
	}
	*consumed = hdr;
	t->done = complete(p);
	return RR_TOKEN;
}

/* Decimal of v into out (room for 20 characters); returns its length. */
static size_t put_num(char *out, int64_t v)
{
	char tmp[24];
	size_t n = 0, k = 0;
	uint64_t u = v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;

	do {
		tmp[n++] = (char)('0' + u % 10);
		u /= 10;
	} while (u);
	if (v < 0)
		out[k++] = '-';
	while (n)
		out[k++] = tmp[--n];
	return k;
}

size_t rr_put_hdr(char *out, size_t cap, char type, int64_t n)
{
	char tmp[RR_HDR_MAX];
	size_t k = 0;

	tmp[k++] = type;
	k += put_num(tmp + k, n);
	tmp[k++] = '\r';
	tmp[k++] = '\n';
	if (k <= cap)
		memcpy(out, tmp, k);
	return k;
}

size_t rr_put_bulk(char *out, size_t cap, const void *payload, size_t len)
{
	char hdr[RR_HDR_MAX];
	size_t h = rr_put_hdr(hdr, sizeof(hdr), '$', (int64_t)len);
	size_t total = h + len + 2;

	if (total <= cap) {
		memcpy(out, hdr, h);
		if (len)
			memcpy(out + h, payload, len);
		out[h + len] = '\r';
		out[h + len + 1] = '\n';
	}
	return total;
}

size_t rr_put_line(char *out, size_t cap, char type, const char *text, size_t len)
{
	size_t total = len + 3;

	if (total <= cap) {
		out[0] = type;
		for (size_t i = 0; i < len; i++)
			out[1 + i] = text[i] == '\r' || text[i] == '\n' ? ' ' : text[i];
		out[len + 1] = '\r';
		out[len + 2] = '\n';
	}
	return total;
}
