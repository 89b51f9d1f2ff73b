/* config: table-driven INI configuration; see config.h. */
#include "config.h"

#include "addr.h"
#include "log.h"

#include <errno.h>
#include <ini.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static const char *const log_levels[] = {"error", "warn", "info", "debug", NULL};
static const char *const protocols[] = {"memcache", "redis", "postgres", NULL};

#define OFF(f) offsetof(struct config, f)

/* The one place a key is declared. conf/coalesced.ini and coalesced.ini(5)
 * must list the same keys; a test checks that they do. */
static const struct config_key keys[] = {
    {"server", "listen", CT_LISTEN, OFF(listen), "127.0.0.1:11311", 0, 0, NULL, false},
    {"server", "max_clients", CT_INT, OFF(max_clients), "4096", 1, 1000000, NULL, true},
    {"server", "idle_timeout_s", CT_INT, OFF(idle_timeout_s), "0", 0, 31536000, NULL, true},
    {"server", "max_line_bytes", CT_INT, OFF(max_line_bytes), "65536", 2048, 67108864, NULL, true},
    {"server", "log_level", CT_ENUM, OFF(log_level), "info", 0, LVL_DEBUG, log_levels, true},
    {"server", "request_timeout_ms", CT_INT, OFF(request_timeout_ms), "30000", 0, 3600000, NULL,
     true},
    {"server", "max_keys_per_request", CT_INT, OFF(max_keys_per_request), "4096", 1, 1000000, NULL,
     true},
    {"server", "max_pending_requests", CT_INT, OFF(max_pending_requests), "1024", 1, 1000000, NULL,
     true},
    {"server", "max_output_bytes", CT_INT, OFF(max_output_bytes), "4194304", 65536, 1073741824,
     NULL, true},
    {"server", "max_memory_mb", CT_INT, OFF(max_memory_mb), "1024", 1, 1048576, NULL, true},
    {"server", "shutdown_timeout_ms", CT_INT, OFF(shutdown_timeout_ms), "10000", 0, 3600000, NULL,
     true},
    {"server", "user", CT_STRING, OFF(user), "", 0, 0, NULL, false},
    /* For an enum, max is the last value supported so far. */
    {"upstream", "protocol", CT_ENUM, OFF(protocol), "memcache", 0, PROTO_MEMCACHE, protocols,
     false},
    {"upstream", "servers", CT_SERVERS, OFF(servers), "127.0.0.1:11211", 0, 0, NULL, true},
    {"upstream", "connections", CT_INT, OFF(connections), "2", 1, 1024, NULL, true},
    {"upstream", "connect_timeout_ms", CT_INT, OFF(connect_timeout_ms), "1000", 1, 600000, NULL,
     true},
    {"upstream", "timeout_ms", CT_INT, OFF(timeout_ms), "1000", 1, 600000, NULL, true},
    {"upstream", "retries", CT_INT, OFF(retries), "1", 0, 10, NULL, true},
    {"upstream", "pipeline_depth", CT_INT, OFF(pipeline_depth), "4", 1, 1024, NULL, true},
    {"batch", "leeway_ms", CT_DOUBLE, OFF(leeway_ms), "0", 0, 10000, NULL, true},
    {"batch", "max_keys", CT_INT, OFF(max_keys), "100", 1, 10000, NULL, true},
    {"batch", "coalesce", CT_BOOL, OFF(coalesce), "yes", 0, 0, NULL, true},
    {"metrics", "listen", CT_OPT_LISTEN, OFF(metrics_listen), "", 0, 0, NULL, false},
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

static const struct config_key *find_key(const char *section, const char *name, bool *sec_ok)
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
static int check_addrs(const char *v, bool listen, char *err, size_t errlen)
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
		if (addrs && check_addrs(v, k->type != CT_SERVERS, err, errlen) < 0)
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

int config_set(struct config *c, const char *section, const char *name, const char *value,
               char *err, size_t errlen)
{
	bool sec_ok;
	const struct config_key *k = find_key(section, name, &sec_ok);
	char why[512];

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
}

int config_copy(struct config *dst, const struct config *src)
{
	*dst = *src;
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

/* inih does not pass line numbers to handlers in Debian's build: the handler
 * keeps the first message and ini_parse_* returns the first bad line. */
struct load_ctx {
	struct config *c;
	char msg[512];
	bool failed;
	int fail_line; /* the line the handler's message is about */
	/* Reader state, to refuse over-long lines instead of splitting them. */
	FILE *fp;
	const char *text;
	int line;
	int long_line;
};

static int handler(void *user, const char *section, const char *name, const char *value)
{
	struct load_ctx *lc = user;
	char why[512];

	if (config_set(lc->c, section, name, value, why, sizeof(why)) < 0) {
		if (!lc->failed) {
			snprintf(lc->msg, sizeof(lc->msg), "%s", why);
			lc->failed = true;
			/* inih calls us right after reading the key's line. */
			lc->fail_line = lc->line;
		}
		return 0;
	}
	return 1;
}

static char *read_line(char *str, int num, void *stream)
{
	struct load_ctx *lc = stream;
	size_t n;

	if (lc->fp) {
		if (!fgets(str, num, lc->fp))
			return NULL;
	} else {
		const char *nl;
		if (*lc->text == '\0')
			return NULL;
		nl = strchr(lc->text, '\n');
		n = nl ? (size_t)(nl - lc->text) + 1 : strlen(lc->text);
		if (n > (size_t)num - 1)
			n = (size_t)num - 1;
		memcpy(str, lc->text, n);
		str[n] = '\0';
		lc->text += n;
	}
	lc->line++;
	n = strlen(str);
	if (n == (size_t)num - 1 && str[n - 1] != '\n' && !lc->long_line)
		lc->long_line = lc->line;
	return str;
}

static int run_parse(struct load_ctx *lc, const char *origin, char *err, size_t errlen)
{
	int r = ini_parse_stream(read_line, lc, handler, lc);

	if (lc->long_line && (r == 0 || lc->long_line <= r)) {
		snprintf(err, errlen, "%s:%d: line too long (at most %d bytes)", origin,
		         lc->long_line, INI_MAX_LINE - 2);
		return -1;
	}
	if (r > 0) {
		/* inih reports the first bad line of any kind; ours may be later. */
		if (lc->failed && lc->fail_line == r)
			snprintf(err, errlen, "%s:%d: %s", origin, r, lc->msg);
		else
			snprintf(err, errlen,
			         "%s:%d: syntax error: expected 'key = value' or '[section]'",
			         origin, r);
		return -1;
	}
	if (r < 0) {
		snprintf(err, errlen, "%s: out of memory", origin);
		return -1;
	}
	return 0;
}

int config_load_file(struct config *c, const char *path, char *err, size_t errlen)
{
	struct load_ctx lc = {.c = c};
	int r;

	lc.fp = fopen(path, "r");
	if (!lc.fp) {
		snprintf(err, errlen, "%s: cannot open: %s", path, strerror(errno));
		return -1;
	}
	r = run_parse(&lc, path, err, errlen);
	fclose(lc.fp);
	return r;
}

int config_load_string(struct config *c, const char *text, const char *origin, char *err,
                       size_t errlen)
{
	struct load_ctx lc = {.c = c, .text = text};

	return run_parse(&lc, origin, err, errlen);
}

int config_override(struct config *c, const char *arg, char *err, size_t errlen)
{
	const char *dot = strchr(arg, '.');
	const char *eq = strchr(arg, '=');
	char section[64], name[64], why[512];

	if (!dot || !eq || dot > eq || dot == arg || eq == dot + 1 ||
	    (size_t)(dot - arg) >= sizeof(section) || (size_t)(eq - dot - 1) >= sizeof(name)) {
		snprintf(err, errlen, "-o %s: expected SECTION.KEY=VALUE", arg);
		return -1;
	}
	memcpy(section, arg, (size_t)(dot - arg));
	section[dot - arg] = '\0';
	memcpy(name, dot + 1, (size_t)(eq - dot - 1));
	name[eq - dot - 1] = '\0';
	if (config_set(c, section, name, eq + 1, why, sizeof(why)) < 0) {
		snprintf(err, errlen, "-o %s: %s", arg, why);
		return -1;
	}
	return 0;
}
