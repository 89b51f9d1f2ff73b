/*
 * routes: the [queries] table of the PostgreSQL backend (DESIGN 7.2): key
 * prefix -> SQL, and which route takes a key and what part of it goes
 * into $1.
 *
 * The configuration keeps the table as text, one route a line,
 * "prefix<TAB>sql<LF>" (a prefix holds no blank, ':' or '='; SQL comes from
 * one INI line and holds no LF). Pure: no I/O. A struct routes owns its
 * strings; routes_free releases them.
 */
#ifndef COALESCED_ROUTES_H
#define COALESCED_ROUTES_H

#include <stddef.h>
#include <stdint.h>

struct route {
	char *prefix; /* "*" for the catch-all */
	size_t plen;
	char *sql;
};

struct routes {
	struct route *v;
	uint32_t n;
	int32_t star; /* index of "*", or -1 */
};

/* Whether name can be a [queries] prefix ("*" or a prefix of client keys). */
int routes_prefix_ok(const char *name, char *why, size_t cap);
/* Append a route to the text form (malloc'd, *text replaced); -1: memory. */
int routes_text_add(char **text, const char *prefix, const char *sql);
/* Whether the text form already has prefix. */
int routes_text_has(const char *text, const char *prefix);

/* Parse the text form; -1 with a reason in err. */
int routes_parse(const char *text, struct routes *out, char *err, size_t cap);
void routes_free(struct routes *r);

/* The route that takes key, or r->n if none does; *arg_off: where the part
 * that goes into $1 begins (after "prefix:" or 0 for "*"). */
uint32_t routes_locate(const struct routes *r, const char *key, size_t len, size_t *arg_off);

#endif
