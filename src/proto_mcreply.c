/* proto_mcreply: strict parsing of memcached reply lines. */
#include "proto_mcreply.h"

#include <string.h>

/* Decimal digits only, no sign, no overflow past max. */
static bool parse_u64(const char **pp, const char *end, uint64_t max, uint64_t *out)
{
	const char *p = *pp;
	uint64_t v = 0;

	if (p == end || *p < '0' || *p > '9')
		return false;
	for (; p < end && *p >= '0' && *p <= '9'; p++) {
		unsigned d = (unsigned)(*p - '0');
		if (v > (max - d) / 10)
			return false;
		v = v * 10 + d;
	}
	*pp = p;
	*out = v;
	return true;
}

static bool starts(const char *p, const char *end, const char *word)
{
	size_t n = strlen(word);
	return (size_t)(end - p) >= n && memcmp(p, word, n) == 0;
}

static enum mcr_kind text_line(struct mcr_line *out, enum mcr_kind k, const char *p,
                               const char *end)
{
	if (p < end && *p == ' ')
		p++;
	out->kind = k;
	out->text = p;
	out->textlen = (size_t)(end - p);
	return k;
}

enum mcr_kind mcr_parse_line(const char *line, size_t len, struct mcr_line *out)
{
	const char *p = line, *end = line + len;
	uint64_t flags;

	memset(out, 0, sizeof(*out));
	if (len && end[-1] == '\r')
		end--;

	if (starts(p, end, "VALUE ")) {
		p += 6;
		out->key = p;
		while (p < end && (unsigned char)*p > 0x20 && *p != 0x7f)
			p++;
		out->keylen = (size_t)(p - out->key);
		if (out->keylen == 0 || out->keylen > 250 || p == end || *p++ != ' ')
			return MCR_INVALID;
		if (!parse_u64(&p, end, UINT32_MAX, &flags) || p == end || *p++ != ' ')
			return MCR_INVALID;
		out->flags = (uint32_t)flags;
		if (!parse_u64(&p, end, UINT64_MAX, &out->bytes) || p == end || *p++ != ' ')
			return MCR_INVALID;
		if (!parse_u64(&p, end, UINT64_MAX, &out->cas) || p != end)
			return MCR_INVALID;
		return out->kind = MCR_VALUE;
	}
	if ((size_t)(end - p) == 3 && memcmp(p, "END", 3) == 0)
		return out->kind = MCR_END;
	if ((size_t)(end - p) == 5 && memcmp(p, "ERROR", 5) == 0)
		return text_line(out, MCR_ERROR, p, end);
	if (starts(p, end, "ERROR "))
		return text_line(out, MCR_ERROR, p + 5, end);
	if (starts(p, end, "CLIENT_ERROR"))
		return text_line(out, MCR_CLIENT_ERROR, p + 12, end);
	if (starts(p, end, "SERVER_ERROR"))
		return text_line(out, MCR_SERVER_ERROR, p + 12, end);
	if (starts(p, end, "VERSION "))
		return text_line(out, MCR_VERSION, p + 7, end);
	return MCR_INVALID;
}
