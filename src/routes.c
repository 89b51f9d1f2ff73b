/* routes: [queries] prefix -> SQL, and key -> route. */
#include "routes.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int routes_prefix_ok(const char *name, char *why, size_t cap)
{
	if (strcmp(name, "*") == 0)
		return 0;
	if (*name == '\0') {
		snprintf(why, cap, "empty prefix");
		return -1;
	}
	for (const char *p = name; *p; p++) {
		unsigned char ch = (unsigned char)*p;
		/* Such a byte cannot be in the part of a key before its first ':'. */
		if (ch <= 0x20 || ch == 0x7f || ch == ':' || ch == '=' || ch == '*') {
			snprintf(why, cap,
			         "a prefix holds no blank, control byte, ':', '=' or '*'");
			return -1;
		}
	}
	return 0;
}

int routes_text_add(char **text, const char *prefix, const char *sql)
{
	char *n;

	if (asprintf(&n, "%s%s\t%s\n", *text ? *text : "", prefix, sql) < 0)
		return -1;
	free(*text);
	*text = n;
	return 0;
}

int routes_text_has(const char *text, const char *prefix)
{
	size_t pl = strlen(prefix);

	for (const char *l = text; l && *l;) {
		const char *tab = strchr(l, '\t'), *nl = strchr(l, '\n');
		if (!tab || !nl)
			return 0;
		if ((size_t)(tab - l) == pl && memcmp(l, prefix, pl) == 0)
			return 1;
		l = nl + 1;
	}
	return 0;
}

void routes_free(struct routes *r)
{
	for (uint32_t i = 0; i < r->n; i++) {
		free(r->v[i].prefix);
		free(r->v[i].sql);
	}
	free(r->v);
	r->v = NULL;
	r->n = 0;
	r->star = -1;
}

int routes_parse(const char *text, struct routes *out, char *err, size_t cap)
{
	uint32_t n = 0;

	memset(out, 0, sizeof(*out));
	out->star = -1;
	for (const char *p = text ? text : ""; *p; p++)
		n += *p == '\n';
	if (n == 0) {
		snprintf(err, cap, "[queries] has no route");
		return -1;
	}
	out->v = calloc(n, sizeof(*out->v));
	if (!out->v) {
		snprintf(err, cap, "out of memory");
		return -1;
	}
	for (const char *l = text; *l;) {
		const char *tab = strchr(l, '\t'), *nl = strchr(l, '\n');
		struct route *r = &out->v[out->n];
		if (!tab || !nl || tab > nl) {
			snprintf(err, cap, "[queries]: malformed route table");
			routes_free(out);
			return -1;
		}
		r->prefix = strndup(l, (size_t)(tab - l));
		r->sql = strndup(tab + 1, (size_t)(nl - tab - 1));
		out->n++;
		if (!r->prefix || !r->sql) {
			snprintf(err, cap, "out of memory");
			routes_free(out);
			return -1;
		}
		r->plen = strlen(r->prefix);
		if (strcmp(r->prefix, "*") == 0)
			out->star = (int32_t)(out->n - 1);
		l = nl + 1;
	}
	return 0;
}

uint32_t routes_locate(const struct routes *r, const char *key, size_t len, size_t *arg_off)
{
	const char *colon = memchr(key, ':', len);

	if (colon) {
		size_t pl = (size_t)(colon - key);
		for (uint32_t i = 0; i < r->n; i++) {
			if ((int32_t)i != r->star && r->v[i].plen == pl &&
			    memcmp(r->v[i].prefix, key, pl) == 0) {
				*arg_off = pl + 1;
				return i;
			}
		}
	}
	*arg_off = 0;
	return r->star >= 0 ? (uint32_t)r->star : r->n;
}
