/*
 * proto_tok: tokens, numbers and keys of a memcached command line (see
 * proto_tok.h). Numbers go through libc strto*, as memcached's do, so that
 * every odd form memcached accepts (a sign, leading blanks, many zeros) is
 * accepted here too and nothing more.
 */
#include "proto_tok.h"

#include "proto_client.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

bool pt_next(const char **s, const char *e, struct pt_tok *t)
{
	const char *p = *s;

	while (p < e && *p == ' ')
		p++;
	if (p == e)
		return false;
	t->p = p;
	while (p < e && *p != ' ')
		p++;
	t->len = (size_t)(p - t->p);
	*s = p;
	return true;
}

size_t pt_tokenize(const char *s, const char *e, struct pt_tok *t, size_t max)
{
	size_t n = 0;

	while (n < max && pt_next(&s, e, &t[n]))
		n++;
	return n;
}

bool pt_is(const struct pt_tok *t, const char *word)
{
	size_t n = strlen(word);
	return t->len == n && memcmp(t->p, word, n) == 0;
}

/*
 * memcached's safe_strtol / safe_strtoul / safe_strtoull: libc strto* (so a
 * sign, leading blanks and zeros pass), the number may be followed only by
 * white space, and the result is stored in the narrower type as is.
 */
/* A NUL-terminated copy for strto*: on the stack, or (for a number padded
 * with many zeros, which memcached accepts) on the heap. */
static char *pt_copy(const struct pt_tok *t, char *buf, size_t cap)
{
	char *p = t->len < cap ? buf : malloc(t->len + 1);

	if (!p || t->len == 0) {
		if (p && p != buf)
			free(p);
		return NULL;
	}
	memcpy(p, t->p, t->len);
	p[t->len] = '\0';
	return p;
}

static void pt_copy_free(char *p, char *buf)
{
	if (p != buf)
		free(p);
}

static bool pt_num_end_ok(const char *buf, const char *end)
{
	return end != buf && (*end == '\0' || *end == ' ' || (*end >= '\t' && *end <= '\r'));
}

bool pt_int32(const struct pt_tok *t, int32_t *out)
{
	char buf[64], *p = pt_copy(t, buf, sizeof(buf)), *end;
	long v;
	bool ok;

	if (!p)
		return false;
	errno = 0;
	v = strtol(p, &end, 10);
	ok = errno != ERANGE && pt_num_end_ok(p, end);
	pt_copy_free(p, buf);
	if (ok)
		*out = (int32_t)v;
	return ok;
}

/* safe_strtoul (wide false: unsigned long) or safe_strtoull. A value so
 * large that it is negative as a signed number is refused if the token has
 * a '-' anywhere: strto* accepts "-1" and wraps it around. */
bool pt_unsigned(const struct pt_tok *t, bool wide, uint64_t *out)
{
	char buf[64], *p = pt_copy(t, buf, sizeof(buf)), *end;
	uint64_t v;
	bool neg, ok;

	if (!p)
		return false;
	errno = 0;
	if (wide) {
		unsigned long long u = strtoull(p, &end, 10);
		v = u;
		neg = (long long)u < 0;
	} else {
		unsigned long u = strtoul(p, &end, 10);
		v = u;
		neg = (long)u < 0;
	}
	ok = errno != ERANGE && pt_num_end_ok(p, end) && !(neg && strchr(p, '-'));
	pt_copy_free(p, buf);
	if (ok)
		*out = v;
	return ok;
}

bool pt_uint32(const struct pt_tok *t, uint32_t *out)
{
	uint64_t v;

	if (!pt_unsigned(t, false, &v))
		return false;
	*out = (uint32_t)v;
	return true;
}

bool pt_uint64(const struct pt_tok *t, uint64_t *out)
{
	return pt_unsigned(t, true, out);
}

bool pt_key_ok(const char *k, size_t len)
{
	if (len == 0 || len > PC_KEY_MAX)
		return false;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)k[i];
		if (c <= 0x20 || c == 0x7f)
			return false;
	}
	return true;
}

bool pt_line_key_ok(const struct pt_line *l, const struct pt_tok *k)
{
	return pt_key_ok(k->p, k->len) && !(l->nul && k->p + k->len == l->nul);
}
