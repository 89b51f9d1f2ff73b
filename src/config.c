/* config: table-driven INI configuration; see config.h. */
#include "config.h"

#include "addr.h"
#include "log.h"
#include "pg_codec.h"
#include "routes.h"

#include <ctype.h>
#include <errno.h>
#include <ini.h>
#include <libpq-fe.h>
#include <math.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

static const char *const log_levels[] = {"error", "warn", "info", "debug", NULL};
static const char *const protocols[] = {"memcache", "redis", "postgres", NULL};
static const char *const distributions[] = {"ketama", "modula", NULL};

#define OFF(f) offsetof(struct config, f)

/* The user must exist when the file is checked, not only when privileges are
 * dropped at start: "coalesced -t" must not pass a file the daemon refuses. */
static int check_user(const char *v, char *why, size_t whylen)
{
	struct passwd *pw;

	errno = 0;
	pw = getpwnam(v);
	if (pw)
		return 0;
	/* Not found reads as any of these, or as no errno at all (getpwnam(3)). */
	if (errno == 0 || errno == ENOENT || errno == ESRCH || errno == EBADF || errno == EPERM)
		snprintf(why, whylen, "no user '%s'", v);
	else
		snprintf(why, whylen, "no user '%s': %s", v, strerror(errno));
	return -1;
}

/* A conninfo that libpq cannot parse is found by -t, not at the first connect. */
static int check_conninfo(const char *v, char *why, size_t whylen)
{
	char *msg = NULL;
	PQconninfoOption *o = PQconninfoParse(v, &msg);

	if (o) {
		PQconninfoFree(o);
		return 0;
	}
	snprintf(why, whylen, "%.*s", (int)strcspn(msg ? msg : "not a connection string", "\n"),
	         msg ? msg : "not a connection string");
	PQfreemem(msg);
	return -1;
}

/* [server] threads when not set; the test suite builds with 2 (make
 * THREADS=2) so that every behaviour is checked across threads. */
#ifndef COALESCED_DEFAULT_THREADS
#define COALESCED_DEFAULT_THREADS "1"
#endif

/* The one place a key is declared. conf/coalesced.ini and coalesced.ini(5)
 * must list the same keys; a test checks that they do. */
static const struct config_key keys[] = {
    {"server", "listen", CT_LISTEN, OFF(listen), "127.0.0.1:11311", 0, 0, NULL, false, NULL},
    {"server", "max_clients", CT_INT, OFF(max_clients), "4096", 1, 1000000, NULL, true, NULL},
    {"server", "idle_timeout_s", CT_INT, OFF(idle_timeout_s), "0", 0, 31536000, NULL, true, NULL},
    {"server", "max_line_bytes", CT_INT, OFF(max_line_bytes), "65536", 2048, 67108864, NULL, true,
     NULL},
    {"server", "log_level", CT_ENUM, OFF(log_level), "info", 0, LVL_DEBUG, log_levels, true, NULL},
    {"server", "request_timeout_ms", CT_INT, OFF(request_timeout_ms), "30000", 0, 3600000, NULL,
     true, NULL},
    {"server", "max_keys_per_request", CT_INT, OFF(max_keys_per_request), "4096", 1, 1000000, NULL,
     true, NULL},
    {"server", "max_pending_requests", CT_INT, OFF(max_pending_requests), "1024", 1, 1000000, NULL,
     true, NULL},
    {"server", "max_output_bytes", CT_INT, OFF(max_output_bytes), "4194304", 65536, 1073741824,
     NULL, true, NULL},
    {"server", "max_memory_mb", CT_INT, OFF(max_memory_mb), "1024", 1, 1048576, NULL, true, NULL},
    {"server", "shutdown_timeout_ms", CT_INT, OFF(shutdown_timeout_ms), "10000", 0, 3600000, NULL,
     true, NULL},
    {"server", "user", CT_STRING, OFF(user), "", 0, 0, NULL, false, check_user},
    {"server", "allow_flush", CT_BOOL, OFF(allow_flush), "no", 0, 0, NULL, true, NULL},
    {"server", "max_value_bytes", CT_INT, OFF(max_value_bytes), "1048576", 1, 1073741824, NULL,
     true, NULL},
    {"server", "threads", CT_INT, OFF(threads), COALESCED_DEFAULT_THREADS, 1, 256, NULL, false,
     NULL},
    /* For an enum, max is the last value supported so far. */
    {"upstream", "protocol", CT_ENUM, OFF(protocol), "memcache", 0, PROTO_POSTGRES, protocols,
     false, NULL},
    {"upstream", "servers", CT_SERVERS, OFF(servers), "127.0.0.1:11211", 0, 0, NULL, true, NULL},
    {"upstream", "connections", CT_INT, OFF(connections), "2", 1, 1024, NULL, true, NULL},
    {"upstream", "connect_timeout_ms", CT_INT, OFF(connect_timeout_ms), "1000", 1, 600000, NULL,
     true, NULL},
    {"upstream", "timeout_ms", CT_INT, OFF(timeout_ms), "1000", 1, 600000, NULL, true, NULL},
    {"upstream", "retries", CT_INT, OFF(retries), "1", 0, 10, NULL, true, NULL},
    {"upstream", "pipeline_depth", CT_INT, OFF(pipeline_depth), "4", 1, 1024, NULL, true, NULL},
    {"upstream", "distribution", CT_ENUM, OFF(distribution), "ketama", 0, 1, distributions, true,
     NULL},
    {"upstream", "eject_after", CT_INT, OFF(eject_after), "0", 0, 1000000, NULL, true, NULL},
    {"upstream", "retry_after_ms", CT_INT, OFF(retry_after_ms), "30000", 1, 86400000, NULL, true,
     NULL},
    {"batch", "leeway_ms", CT_DOUBLE, OFF(leeway_ms), "0", 0, 10000, NULL, true, NULL},
    {"batch", "max_keys", CT_INT, OFF(max_keys), "100", 1, 10000, NULL, true, NULL},
    {"batch", "coalesce", CT_BOOL, OFF(coalesce), "yes", 0, 0, NULL, true, NULL},
    {"metrics", "listen", CT_OPT_LISTEN, OFF(metrics_listen), "", 0, 0, NULL, false, NULL},
    {"server", "redis_listen", CT_OPT_LISTEN, OFF(redis_listen), "", 0, 0, NULL, false, NULL},
    {"redis", "username", CT_STRING, OFF(redis_username), "", 0, 0, NULL, false, NULL},
    {"redis", "password", CT_STRING, OFF(redis_password), "", 0, 0, NULL, false, NULL},
    {"redis", "database", CT_INT, OFF(redis_database), "0", 0, 1000000, NULL, false, NULL},
    {"postgres", "conninfo", CT_STRING, OFF(conninfo), "", 0, 0, NULL, true, check_conninfo},
};

const struct config_key *config_keys(size_t *n)
{
	*n = sizeof(keys) / sizeof(keys[0]);
	return keys;
}

static bool is_string(const struct config_key *k)
{
	return k->type == CT_STRING || k->type == CT_LISTEN || k->type == CT_SERVERS ||
	       k->type == CT_OPT_LISTEN;
}

const struct config_key *config_find_key(const char *section, const char *name, bool *sec_ok)
{
	*sec_ok = false;
	for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
		if (strcmp(keys[i].section, section) != 0)
			continue;
		*sec_ok = true;
		if (strcmp(keys[i].name, name) == 0)
			return &keys[i];
	}
	return NULL;
}

static int parse_bool(const char *v, bool *out)
{
	static const char *const yes[] = {"yes", "true", "on", "1"};
	static const char *const no[] = {"no", "false", "off", "0"};
	for (size_t i = 0; i < 4; i++) {
		if (strcasecmp(v, yes[i]) == 0) {
			*out = true;
			return 0;
		}
		if (strcasecmp(v, no[i]) == 0) {
			*out = false;
			return 0;
		}
	}
	return -1;
}

/* Validate an address list now, so a bad address is reported with its line. */
int config_check_addrs(const char *v, bool listen, char *err, size_t errlen)
{
	struct addr_list al;
	char why[256];

	if (addr_list_parse(v, listen, &al, why, sizeof(why)) < 0) {
		snprintf(err, errlen, "%s", why);
		return -1;
	}
	addr_list_free(&al);
	return 0;
}

static int set_value(struct config *c, const struct config_key *k, const char *v, char *err,
                     size_t errlen)
{
	void *p = (char *)c + k->offset;
	char *end;

	switch (k->type) {
	case CT_INT: {
		long n;
		errno = 0;
		n = strtol(v, &end, 10);
		if (*v == '\0' || *end != '\0') {
			snprintf(err, errlen, "'%s' is not an integer", v);
			return -1;
		}
		if (errno == ERANGE) {
			snprintf(err, errlen, "%s is out of range (%ld to %ld)", v, (long)k->min,
			         (long)k->max);
			return -1;
		}
		if (n < (long)k->min || n > (long)k->max) {
			snprintf(err, errlen, "%ld is out of range (%ld to %ld)", n, (long)k->min,
			         (long)k->max);
			return -1;
		}
		*(long *)p = n;
		return 0;
	}
	case CT_DOUBLE: {
		double d;
		errno = 0;
		d = strtod(v, &end);
		if (*v == '\0' || *end != '\0' || errno == ERANGE || !isfinite(d)) {
			snprintf(err, errlen, "'%s' is not a number", v);
			return -1;
		}
		if (d < k->min || d > k->max) {
			snprintf(err, errlen, "%g is out of range (%g to %g)", d, k->min, k->max);
			return -1;
		}
		*(double *)p = d;
		return 0;
	}
	case CT_BOOL:
		if (parse_bool(v, (bool *)p) < 0) {
			snprintf(err, errlen, "'%s' is not yes or no", v);
			return -1;
		}
		return 0;
	case CT_ENUM:
		for (long i = 0; k->enum_names[i]; i++) {
			if (strcmp(v, k->enum_names[i]) == 0) {
				if (i > (long)k->max) {
					snprintf(err, errlen, "'%s' is not supported yet", v);
					return -1;
				}
				*(long *)p = i;
				return 0;
			}
		}
		snprintf(err, errlen, "'%s' is not one of", v);
		for (long i = 0; k->enum_names[i]; i++) {
			size_t n = strlen(err);
			snprintf(err + n, errlen - n, " %s", k->enum_names[i]);
		}
		return -1;
	case CT_LISTEN:
	case CT_SERVERS:
	case CT_OPT_LISTEN:
	case CT_STRING: {
		char *dup;
		bool addrs = k->type != CT_STRING && !(k->type == CT_OPT_LISTEN && *v == '\0');
		if (addrs && config_check_addrs(v, k->type != CT_SERVERS, err, errlen) < 0)
			return -1;
		if (k->check && *v && k->check(v, err, errlen) < 0)
			return -1;
		dup = strdup(v);
		if (!dup) {
			snprintf(err, errlen, "out of memory");
			return -1;
		}
		free(*(char **)p);
		*(char **)p = dup;
		return 0;
	}
	}
	snprintf(err, errlen, "unknown type");
	return -1;
}

/* [queries]: every key is a route; its SQL is checked here, without a
 * database, so that -t finds a bad query with its line. */
static int set_query(struct config *c, const char *name, const char *value, char *err,
                     size_t errlen)
{
	char why[256];

	if (routes_prefix_ok(name, why, sizeof(why)) < 0) {
		snprintf(err, errlen, "[queries] %s: %s", name, why);
		return -1;
	}
	if (routes_text_has(c->queries, name)) {
		snprintf(err, errlen, "[queries] %s: given twice", name);
		return -1;
	}
	if (pgc_sql_check(value, strlen(value), why, sizeof(why)) < 0) {
		snprintf(err, errlen, "[queries] %s: %s", name, why);
		return -1;
	}
	if (routes_text_add(&c->queries, name, value) < 0) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	return 0;
}

int config_set(struct config *c, const char *section, const char *name, const char *value,
               char *err, size_t errlen)
{
	bool sec_ok;
	const struct config_key *k = config_find_key(section, name, &sec_ok);
	char why[512];

	if (strcmp(section, "queries") == 0)
		return set_query(c, name, value, err, errlen);
	if (section[0] == '\0') {
		snprintf(err, errlen, "%s: key outside any [section]", name);
		return -1;
	}
	if (!sec_ok) {
		snprintf(err, errlen, "[%s] %s: unknown section [%s]", section, name, section);
		return -1;
	}
	if (!k) {
		snprintf(err, errlen, "[%s] %s: unknown key", section, name);
		return -1;
	}
	if (set_value(c, k, value, why, sizeof(why)) < 0) {
		snprintf(err, errlen, "[%s] %s: %s", section, name, why);
		return -1;
	}
	return 0;
}

void config_init(struct config *c)
{
	char err[256];

	memset(c, 0, sizeof(*c));
	for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
		/* Defaults are constants that pass their own checks. */
		if (set_value(c, &keys[i], keys[i].def, err, sizeof(err)) < 0)
			abort();
	}
}

void config_free(struct config *c)
{
	for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
		if (is_string(&keys[i])) {
			char **p = (char **)((char *)c + keys[i].offset);
			free(*p);
			*p = NULL;
		}
	}
	free(c->queries);
	c->queries = NULL;
}

int config_copy(struct config *dst, const struct config *src)
{
	*dst = *src;
	dst->queries = NULL;
	if (src->queries && !(dst->queries = strdup(src->queries))) {
		for (size_t j = 0; j < sizeof(keys) / sizeof(keys[0]); j++)
			if (is_string(&keys[j]))
				*(char **)((char *)dst + keys[j].offset) = NULL;
		return -1;
	}
	for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
		if (is_string(&keys[i])) {
			char **p = (char **)((char *)dst + keys[i].offset);
			*p = strdup(*p);
			if (!*p) {
				/* Leave the rest NULL so config_free stays safe. */
				for (size_t j = i + 1; j < sizeof(keys) / sizeof(keys[0]); j++)
					if (is_string(&keys[j]))
						*(char **)((char *)dst + keys[j].offset) = NULL;
				return -1;
			}
		}
	}
	return 0;
}

bool config_override_wellformed(const char *arg)
{
	const char *dot = strchr(arg, '.');
	const char *eq = strchr(arg, '=');

	return dot && eq && dot < eq && dot != arg && eq != dot + 1;
}

int config_override(struct config *c, const char *arg, char *err, size_t errlen)
{
	const char *dot = strchr(arg, '.');
	const char *eq = strchr(arg, '=');
	char *section, *name, why[512];
	int r = -1;

	if (!config_override_wellformed(arg)) {
		snprintf(err, errlen, "-o %s: expected SECTION.KEY=VALUE", arg);
		return -1;
	}
	section = strndup(arg, (size_t)(dot - arg));
	name = strndup(dot + 1, (size_t)(eq - dot - 1));
	if (!section || !name)
		snprintf(err, errlen, "-o %s: out of memory", arg);
	else if (config_set(c, section, name, eq + 1, why, sizeof(why)) < 0)
		snprintf(err, errlen, "-o %s: %s", arg, why);
	else
		r = 0;
	free(section);
	free(name);
	return r;
}
