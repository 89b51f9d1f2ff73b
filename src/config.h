/*
 * config: the configuration as one table of keys (section, name, type,
 * default, range, reloadable), the INI loader built on inih, and -o overrides.
 *
 * A struct config owns its strings; config_free() releases them. Loading
 * never touches the running daemon: the caller swaps configurations.
 *
 * Loading reports every error of a file, not just the first: the message
 * holds one line per error ("file:line: [section] key: why"), in line order,
 * joined by '\n' with no trailing newline.
 */
#ifndef COALESCED_CONFIG_H
#define COALESCED_CONFIG_H

#include <stdbool.h>
#include <stddef.h>

#define CONFIG_DEFAULT_PATH "/etc/coalesced/coalesced.ini"

enum upstream_protocol { PROTO_MEMCACHE = 0, PROTO_REDIS, PROTO_POSTGRES };

struct config {
	/* [server] */
	char *listen;
	long max_clients;
	long idle_timeout_s;
	long max_line_bytes;
	long log_level;
	long request_timeout_ms;
	long max_keys_per_request;
	long max_pending_requests;
	long max_output_bytes;
	long max_memory_mb;
	long shutdown_timeout_ms;
	char *user;
	bool allow_flush;
	long max_value_bytes;
	long threads;
	char *redis_listen; /* RESP2 clients; empty: off */
	/* [upstream] */
	long protocol;
	char *servers;
	long connections;
	long connect_timeout_ms;
	long timeout_ms;
	long retries;
	long pipeline_depth;
	long distribution; /* enum pool_distribution */
	long eject_after;
	long retry_after_ms;
	/* [batch] */
	double leeway_ms;
	long max_keys;
	bool coalesce;
	/* [metrics] */
	char *metrics_listen;
	/* [redis]: the Redis backend's AUTH and SELECT on every connect */
	char *redis_username;
	char *redis_password;
	long redis_database;
	/* [postgres] */
	char *conninfo;
	/* [queries]: not in the key table (its keys are prefixes); the route
	 * table's text form (routes.h), NULL when the section is empty. */
	char *queries;
};

/* CT_OPT_LISTEN: an address list, or empty for "off". */
enum config_type {
	CT_INT,
	CT_DOUBLE,
	CT_BOOL,
	CT_STRING,
	CT_ENUM,
	CT_LISTEN,
	CT_SERVERS,
	CT_OPT_LISTEN
};

struct config_key {
	const char *section;
	const char *name;
	enum config_type type;
	size_t offset;
	const char *def;
	double min, max;
	const char *const *enum_names; /* CT_ENUM: NULL-terminated */
	bool reloadable;
	/* A further check of a non-empty value (the user exists); NULL: none. */
	int (*check)(const char *value, char *why, size_t whylen);
};

/* For the loader (config_load.c): a key of the table by section and name
 * (*sec_ok: the section exists), and the check of an address list value. */
const struct config_key *config_find_key(const char *section, const char *name, bool *sec_ok);
int config_check_addrs(const char *v, bool listen, char *err, size_t errlen);

/* The table, for the loader, the key-set test and the reload logic. */
const struct config_key *config_keys(size_t *n);

/* Fill with built-in defaults. */
void config_init(struct config *c);
void config_free(struct config *c);
/* Deep copy; returns 0 or -1 on allocation failure. */
int config_copy(struct config *dst, const struct config *src);

/*
 * Each returns 0 on success, or -1 with a message naming where and which key
 * in err (for a load, one line per error; see above). A failed load leaves *c
 * partially updated: load into a scratch copy. A file is read whole; a
 * directory, or one that cannot be read, is an error.
 */
int config_set(struct config *c, const char *section, const char *name, const char *value,
               char *err, size_t errlen);
int config_load_file(struct config *c, const char *path, char *err, size_t errlen);
int config_load_string(struct config *c, const char *text, const char *origin, char *err,
                       size_t errlen);
/* arg is "section.key=value", from -o. A malformed arg is a usage error,
 * which the caller can tell apart with config_override_wellformed(). */
int config_override(struct config *c, const char *arg, char *err, size_t errlen);
/* Whether arg has the form SECTION.KEY=VALUE (any section, key or value). */
bool config_override_wellformed(const char *arg);

#endif
