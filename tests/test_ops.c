/*
 * ops: what an operator installs and reads. The man pages lint clean; the
 * keys accepted by the parser, listed in conf/coalesced.ini and documented in
 * coalesced.ini(5) are the same, with the same defaults, ranges and reload
 * behaviour; every `stats` counter and command-line option is documented;
 * `make install` lays out the expected tree and `make uninstall` takes it
 * back; the generated systemd unit passes `systemd-analyze verify`.
 *
 * Run from the repository root. COALESCED_BIN names the daemon (default
 * ./coalesced).
 */
#include "addr.h"
#include "config.h"
#include "log.h"
#include "pool.h"
#include "stats.h"
#include "testutil.h"

#include <check.h>
#include <ctype.h>
#include <ftw.h>
#include <ini.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define MAN8 "man/coalesced.8"
#define MAN5 "man/coalesced.ini.5"
#define CONF "conf/coalesced.ini"

/* Problems found by a test, each also printed at once; the test fails at the
 * end with all of them, so that one run shows everything that is wrong. */
struct report {
	char text[8192];
	size_t len;
	int n;
};

static void problem(struct report *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void problem(struct report *r, const char *fmt, ...)
{
	char line[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	fprintf(stderr, "ops: %s\n", line);
	if (r->len < sizeof(r->text))
		r->len +=
		    (size_t)snprintf(r->text + r->len, sizeof(r->text) - r->len, "  %s\n", line);
	r->n++;
}

static void report_check(const struct report *r)
{
	ck_assert_msg(r->n == 0, "%d problem(s):\n%s", r->n, r->text);
}

static const char *bin_path(void)
{
	return getenv("COALESCED_BIN") ? getenv("COALESCED_BIN") : "./coalesced";
}

/* Run a shell command with its output in a log file; returns the exit status
 * (-1 if it did not exit) and the log, malloc'd, in *log. */
static int run_logged(const char *cmd, char **log)
{
	static int n;
	char path[256], full[4096];
	int st;

	snprintf(path, sizeof(path), "%s/ops-%d.log", tu_tmpdir(), ++n);
	snprintf(full, sizeof(full), "(%s) >'%s' 2>&1 </dev/null", cmd, path);
	st = system(full);
	*log = tu_read_file(path, NULL);
	if (!*log)
		*log = strdup("");
	return st != -1 && WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static bool have_program(const char *name)
{
	char cmd[256];

	snprintf(cmd, sizeof(cmd), "command -v '%s' >/dev/null 2>&1", name);
	return system(cmd) == 0;
}

/* Lines of a text file, split in place. */
struct lines {
	char *buf;
	char **v;
	size_t n;
};

static void lines_read(struct lines *l, const char *path)
{
	size_t cap = 0;

	memset(l, 0, sizeof(*l));
	l->buf = tu_read_file(path, NULL);
	ck_assert_msg(l->buf, "cannot read %s (run the tests from the repository root)", path);
	for (char *p = l->buf; *p;) {
		char *nl = strchr(p, '\n');
		if (l->n == cap) {
			cap = cap ? cap * 2 : 256;
			l->v = realloc(l->v, cap * sizeof(*l->v));
			ck_assert_ptr_nonnull(l->v);
		}
		l->v[l->n++] = p;
		if (!nl)
			break;
		*nl = '\0';
		p = nl + 1;
	}
}

static void lines_free(struct lines *l)
{
	free(l->buf);
	free(l->v);
}

static bool starts(const char *s, const char *prefix)
{
	return strncmp(s, prefix, strlen(prefix)) == 0;
}

/* A macro line's text with the zero-width escape \& and quotes removed. */
static void unescape(const char *s, char *out, size_t cap)
{
	size_t o = 0;

	for (; *s && o + 1 < cap; s++) {
		if (s[0] == '\\' && s[1] == '&') {
			s++;
			continue;
		}
		if (*s != '"')
			out[o++] = *s;
	}
	out[o] = '\0';
}

/* Does s hold one identifier ([A-Za-z0-9_]+) and nothing else? */
static bool is_name(const char *s)
{
	if (!*s)
		return false;
	for (; *s; s++)
		if (!(isalnum((unsigned char)*s) || *s == '_'))
			return false;
	return true;
}

/* A make-time placeholder such as @SBINDIR@ left in s? */
static bool has_placeholder(const char *s)
{
	for (const char *p = strchr(s, '@'); p; p = strchr(p + 1, '@')) {
		size_t n = strspn(p + 1, "ABCDEFGHIJKLMNOPQRSTUVWXYZ_");
		if (n > 0 && p[1 + n] == '@')
			return true;
	}
	return false;
}

/*
 * An item `.It <macro> name` of a list directly under a `.Sh` section (not
 * of a nested list), with the `.Ss \&[section]\&` heading it is under, if
 * any, and its body: the lines up to the next item of its list or the end of
 * the list.
 */
struct item {
	char section[32];
	char name[64];
	char *body;
	size_t line; /* 1-based, in the page */
};

struct items {
	struct item *v;
	size_t n;
};

static void items_free(struct items *it)
{
	for (size_t i = 0; i < it->n; i++)
		free(it->v[i].body);
	free(it->v);
}

static void body_append(struct item *i, const char *line)
{
	size_t have = i->body ? strlen(i->body) : 0, add = strlen(line);
	char *b = realloc(i->body, have + add + 2);

	ck_assert_ptr_nonnull(b);
	memcpy(b + have, line, add);
	b[have + add] = '\n';
	b[have + add + 1] = '\0';
	i->body = b;
}

/*
 * Collect the items of .Sh sh whose tag macro is macro ("Cm", "Va", "Fl").
 * With by_ss, items count only under `.Ss \&[section]\&` headings; an item
 * of another form at that level is reported as a problem.
 */
static void man_items(const char *path, const char *sh, const char *macro, bool by_ss,
                      struct items *out, struct report *r)
{
	struct lines l;
	char want[64], text[512], name[64];
	size_t name_len;
	bool in_sh = false;
	int depth = 0;
	char section[32] = "";
	struct item *cur = NULL;
	size_t cap = 0;

	memset(out, 0, sizeof(*out));
	snprintf(want, sizeof(want), ".It %s ", macro);
	lines_read(&l, path);
	for (size_t ln = 0; ln < l.n; ln++) {
		const char *s = l.v[ln];

		if (starts(s, ".Sh ")) {
			unescape(s + 4, text, sizeof(text));
			in_sh = strcmp(text, sh) == 0;
			cur = NULL;
			depth = 0;
			section[0] = '\0';
			continue;
		}
		if (!in_sh)
			continue;
		if (starts(s, ".Ss ")) {
			size_t n;
			unescape(s + 4, text, sizeof(text));
			n = strlen(text);
			cur = NULL;
			depth = 0;
			section[0] = '\0';
			if (by_ss && n > 2 && text[0] == '[' && text[n - 1] == ']' &&
			    n - 2 < sizeof(section)) {
				memcpy(section, text + 1, n - 2);
				section[n - 2] = '\0';
			}
			continue;
		}
		if (starts(s, ".Bl")) {
			depth++;
			if (depth > 1 && cur)
				body_append(cur, s);
			continue;
		}
		if (starts(s, ".El")) {
			if (depth == 1)
				cur = NULL;
			else if (cur)
				body_append(cur, s);
			if (depth > 0)
				depth--;
			continue;
		}
		if (depth == 1 && starts(s, ".It")) {
			cur = NULL;
			if (by_ss && !section[0])
				continue;
			/* Keys: the name alone; counters and options: the first word. */
			name_len =
			    starts(s, want) ? strcspn(s + strlen(want), by_ss ? "" : " ") : 0;
			if (name_len > 0 && name_len < sizeof(cur->name)) {
				memcpy(name, s + strlen(want), name_len);
				name[name_len] = '\0';
			} else {
				name[0] = '\0';
			}
			if (!is_name(name)) {
				if (by_ss)
					problem(r, "%s:%zu: '%s' is not of the form '%sname'", path,
					        ln + 1, s, want);
				continue;
			}
			if (out->n == cap) {
				cap = cap ? cap * 2 : 32;
				out->v = realloc(out->v, cap * sizeof(*out->v));
				ck_assert_ptr_nonnull(out->v);
			}
			cur = &out->v[out->n++];
			memset(cur, 0, sizeof(*cur));
			snprintf(cur->section, sizeof(cur->section), "%s", section);
			snprintf(cur->name, sizeof(cur->name), "%s", name);
			cur->line = ln + 1;
			cur->body = strdup("");
			ck_assert_ptr_nonnull(cur->body);
			continue;
		}
		if (cur)
			body_append(cur, s);
	}
	lines_free(&l);
}

static const struct item *items_find(const struct items *it, const char *section, const char *name)
{
	for (size_t i = 0; i < it->n; i++)
		if (strcmp(it->v[i].section, section) == 0 && strcmp(it->v[i].name, name) == 0)
			return &it->v[i];
	return NULL;
}

/* Report an item documented twice. */
static void items_dups(const struct items *it, const char *path, struct report *r)
{
	for (size_t i = 0; i < it->n; i++)
		for (size_t j = 0; j < i; j++)
			if (strcmp(it->v[i].section, it->v[j].section) == 0 &&
			    strcmp(it->v[i].name, it->v[j].name) == 0)
				problem(r, "%s:%zu: [%s] %s documented twice (also line %zu)", path,
				        it->v[i].line, it->v[i].section, it->v[i].name,
				        it->v[j].line);
}

static const struct config_key *parser_find(const char *section, const char *name)
{
	size_t n;
	const struct config_key *k = config_keys(&n);

	for (size_t i = 0; i < n; i++)
		if (strcmp(k[i].section, section) == 0 && strcmp(k[i].name, name) == 0)
			return &k[i];
	return NULL;
}

/* conf/coalesced.ini as (section, key, value) triples, read with inih. */
struct conf_entry {
	char section[32], name[64], value[256];
	int order;
};

struct conf {
	struct conf_entry v[256];
	size_t n;
	bool overflow;
};

static int conf_handler(void *user, const char *section, const char *name, const char *value)
{
	struct conf *c = user;
	struct conf_entry *e;

	if (c->n == sizeof(c->v) / sizeof(c->v[0])) {
		c->overflow = true;
		return 0;
	}
	e = &c->v[c->n];
	snprintf(e->section, sizeof(e->section), "%s", section);
	snprintf(e->name, sizeof(e->name), "%s", name);
	snprintf(e->value, sizeof(e->value), "%s", value);
	e->order = (int)c->n++;
	return 1;
}

static const struct conf_entry *conf_find(const struct conf *c, const char *section,
                                          const char *name)
{
	for (size_t i = 0; i < c->n; i++)
		if (strcmp(c->v[i].section, section) == 0 && strcmp(c->v[i].name, name) == 0)
			return &c->v[i];
	return NULL;
}

static void conf_read(struct conf *c)
{
	int rc;

	memset(c, 0, sizeof(*c));
	rc = ini_parse(CONF, conf_handler, c);
	ck_assert_msg(rc == 0 && !c->overflow, "%s: ini_parse failed (%d)", CONF, rc);
}

START_TEST(man_pages_lint_clean)
{
	char *log;
	int rc;

	ck_assert_msg(have_program("mandoc"),
	              "mandoc is not installed (Debian package mandoc); it lints the man pages");
	rc = run_logged("mandoc -Tlint -Wwarning " MAN8 " " MAN5, &log);
	ck_assert_msg(rc == 0 && log[0] == '\0', "mandoc -Tlint -Wwarning: exit %d\n%s", rc, log);
	free(log);
}
END_TEST

/* The parser's table, conf/coalesced.ini and coalesced.ini(5) hold the same
 * (section, key) pairs. */
START_TEST(config_keys_same_everywhere)
{
	struct report r = {0};
	struct items man;
	struct conf conf;
	size_t n;
	const struct config_key *k = config_keys(&n);

	conf_read(&conf);
	man_items(MAN5, "SETTINGS", "Cm", true, &man, &r);
	items_dups(&man, MAN5, &r);
	for (size_t i = 0; i < conf.n; i++)
		for (size_t j = 0; j < i; j++)
			if (strcmp(conf.v[i].section, conf.v[j].section) == 0 &&
			    strcmp(conf.v[i].name, conf.v[j].name) == 0)
				problem(&r, "%s: [%s] %s set twice", CONF, conf.v[i].section,
				        conf.v[i].name);

	for (size_t i = 0; i < n; i++) {
		if (!conf_find(&conf, k[i].section, k[i].name))
			problem(&r, "[%s] %s: accepted by the parser, missing from %s",
			        k[i].section, k[i].name, CONF);
		if (!items_find(&man, k[i].section, k[i].name))
			problem(&r, "[%s] %s: accepted by the parser, missing from %s",
			        k[i].section, k[i].name, MAN5);
	}
	for (size_t i = 0; i < conf.n; i++) {
		if (!parser_find(conf.v[i].section, conf.v[i].name))
			problem(&r, "[%s] %s: in %s, unknown to the parser (src/config.c)",
			        conf.v[i].section, conf.v[i].name, CONF);
		if (!items_find(&man, conf.v[i].section, conf.v[i].name))
			problem(&r, "[%s] %s: in %s, missing from %s", conf.v[i].section,
			        conf.v[i].name, CONF, MAN5);
	}
	for (size_t i = 0; i < man.n; i++) {
		if (!parser_find(man.v[i].section, man.v[i].name))
			problem(&r,
			        "%s:%zu: [%s] %s: documented, unknown to the parser "
			        "(src/config.c)",
			        MAN5, man.v[i].line, man.v[i].section, man.v[i].name);
		if (!conf_find(&conf, man.v[i].section, man.v[i].name))
			problem(&r, "%s:%zu: [%s] %s: documented, missing from %s", MAN5,
			        man.v[i].line, man.v[i].section, man.v[i].name, CONF);
	}
	ck_assert_msg(man.n > 0, "%s: no '.It Cm key' items under '.Ss \\&[section]\\&'", MAN5);
	items_free(&man);
	report_check(&r);
}
END_TEST

/* The default written after "Default:" in an item's body: the argument of
 * the .Ql line that follows, or "" for "Default: empty". NULL if absent. */
static bool man_default(const char *body, char *out, size_t cap)
{
	const char *p = strstr(body, "Default: empty");
	const char *q = strstr(body, "Default:\n.Ql ");
	size_t n;

	if (p && (p == body || p[-1] == '\n')) {
		out[0] = '\0';
		return true;
	}
	if (!q || (q != body && q[-1] != '\n'))
		return false;
	q += strlen("Default:\n.Ql ");
	n = strcspn(q, " \n");
	if (n >= cap)
		return false;
	memcpy(out, q, n);
	out[n] = '\0';
	return true;
}

static bool has_line_starting(const char *body, const char *prefix)
{
	for (const char *p = body; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL)
		if (starts(p, prefix))
			return true;
	return false;
}

/* Each key's default, range, values and reload behaviour agree between the
 * parser's table, coalesced.ini(5) and conf/coalesced.ini, which shows every
 * key at its default. */
START_TEST(config_docs_match_parser)
{
	struct report r = {0};
	struct items man;
	struct conf conf;
	size_t n;
	const struct config_key *k = config_keys(&n);

	conf_read(&conf);
	man_items(MAN5, "SETTINGS", "Cm", true, &man, &r);
	for (size_t i = 0; i < n; i++) {
		const struct item *it = items_find(&man, k[i].section, k[i].name);
		const struct conf_entry *ce = conf_find(&conf, k[i].section, k[i].name);
		char def[256], range[128];
		bool restart, reload;

		const char *kdef = k[i].def;
#ifdef COALESCED_DEFAULT_THREADS
		/* A build for the threaded test run (make THREADS=2) changes only
		 * the built-in default; the documents keep the shipped one. */
		if (strcmp(k[i].name, "threads") == 0)
			kdef = "1";
#endif
		if (ce && strcmp(ce->value, kdef) != 0)
			problem(&r, "[%s] %s: %s has '%s', the default is '%s'", k[i].section,
			        k[i].name, CONF, ce->value, kdef);
		if (!it)
			continue; /* reported by config_keys_same_everywhere */
		if (!man_default(it->body, def, sizeof(def)))
			problem(&r,
			        "%s:%zu: [%s] %s: no 'Default:' then '.Ql value' (or 'Default: "
			        "empty.')",
			        MAN5, it->line, k[i].section, k[i].name);
		else if (strcmp(def, kdef) != 0)
			problem(&r,
			        "%s:%zu: [%s] %s: documented default '%s', the parser's is '%s'",
			        MAN5, it->line, k[i].section, k[i].name, def, kdef);
		if (k[i].type == CT_INT || k[i].type == CT_DOUBLE) {
			snprintf(range, sizeof(range), "Range: %.15g to %.15g", k[i].min, k[i].max);
			if (!has_line_starting(it->body, range))
				problem(&r, "%s:%zu: [%s] %s: no line '%s'", MAN5, it->line,
				        k[i].section, k[i].name, range);
		}
		if (k[i].type == CT_ENUM)
			for (long v = (long)k[i].min; v <= (long)k[i].max; v++) {
				char ql[80];
				snprintf(ql, sizeof(ql), ".Ql %s", k[i].enum_names[v]);
				if (!has_line_starting(it->body, ql))
					problem(&r, "%s:%zu: [%s] %s: value '%s' not documented",
					        MAN5, it->line, k[i].section, k[i].name,
					        k[i].enum_names[v]);
			}
		reload = has_line_starting(it->body, "Reloadable on");
		restart = has_line_starting(it->body, "Needs a restart.");
		if (reload == restart || reload != k[i].reloadable)
			problem(&r, "%s:%zu: [%s] %s: should say '%s' (and not the other)", MAN5,
			        it->line, k[i].section, k[i].name,
			        k[i].reloadable ? "Reloadable on" : "Needs a restart.");
	}
	items_free(&man);
	report_check(&r);
}
END_TEST

/* The per-server lines of a pool of two servers. */
static size_t two_server_lines(const void *ctx, char *buf, size_t cap)
{
	return pool_stats_format(ctx, buf, cap);
}

/* Every counter of the `stats` reply is an `.It Va name` item under
 * STATISTICS in coalesced(8), and nothing else is. The per-server lines
 * ("server:<name>:<figure>") are one item, "server", whose nested list has
 * an `.It Va figure` for each figure. */
START_TEST(stats_counters_documented)
{
	static struct stats st; /* zero: only the names matter */
	static const struct log quiet = {.level = LVL_ERROR};
	static const struct pool_options po = {.distribution = POOL_KETAMA};
	struct report r = {0};
	struct items man;
	struct addr_list al;
	struct pool *p;
	const struct item *srv;
	char buf[16384], names[128][64], figures[32][64], err[256];
	size_t len, nn = 0, nf = 0;

	ck_assert_int_eq(
	    addr_list_parse("127.0.0.1:1:2, unix:/tmp/s", false, &al, err, sizeof(err)), 0);
	p = pool_new(&al, &po, &quiet);
	addr_list_free(&al);
	ck_assert_ptr_nonnull(p);
	st.servers_format = two_server_lines;
	st.servers_ctx = p;
	len = stats_format(&st, 1, 0, "0", buf, sizeof(buf));
	ck_assert_uint_lt(len, sizeof(buf));
	for (char *q = buf; (q = strstr(q, "STAT ")) && nn < 128; q++) {
		size_t n = strcspn(q + 5, " \r\n");
		ck_assert_uint_lt(n, sizeof(names[0]));
		if (strncmp(q + 5, "server:", 7) == 0) {
			const char *fig = q + 5 + n;
			while (fig[-1] != ':')
				fig--;
			if (nf < 32)
				snprintf(figures[nf++], sizeof(figures[0]), "%.*s",
				         (int)(q + 5 + n - fig), fig);
			if (nn > 0 && strcmp(names[nn - 1], "server") == 0)
				continue;
			n = 6;
		}
		memcpy(names[nn], q + 5, n);
		names[nn++][n] = '\0';
	}
	ck_assert_uint_gt(nn, 0);
	ck_assert_uint_gt(nf, 0);
	man_items(MAN8, "STATISTICS", "Va", false, &man, &r);
	items_dups(&man, MAN8, &r);
	for (size_t i = 0; i < nn; i++)
		if (!items_find(&man, "", names[i]))
			problem(&r, "stats counter %s: missing from STATISTICS in %s", names[i],
			        MAN8);
	srv = items_find(&man, "", "server");
	for (size_t i = 0; srv && i < nf; i++) {
		char it[80];
		snprintf(it, sizeof(it), ".It Va %s", figures[i]);
		if (!has_line_starting(srv->body, it))
			problem(&r, "per-server figure %s: missing from the server item in %s",
			        figures[i], MAN8);
	}
	for (size_t i = 0; i < man.n; i++) {
		/* Per-route lines come only with the PostgreSQL backend: the
		 * postgres suite (route_metrics) checks that they are there. */
		bool found = strcmp(man.v[i].name, "route") == 0;
		for (size_t j = 0; j < nn && !found; j++)
			found = strcmp(names[j], man.v[i].name) == 0;
		if (!found)
			problem(&r, "%s:%zu: %s is documented but not in the stats reply", MAN8,
			        man.v[i].line, man.v[i].name);
	}
	items_free(&man);
	pool_free(p);
	report_check(&r);
}
END_TEST

/* The options in the daemon's usage line are the `.It Fl x` items of
 * OPTIONS in coalesced(8), and the other way round. */
START_TEST(options_documented)
{
	struct report r = {0};
	struct items man;
	char cmd[1024], *out, *nl;
	int rc;

	snprintf(cmd, sizeof(cmd), "'%s' -h", bin_path());
	rc = run_logged(cmd, &out);
	ck_assert_msg(rc == 0, "%s: exit %d\n%s", cmd, rc, out);
	nl = strchr(out, '\n');
	if (nl)
		*nl = '\0';
	ck_assert_msg(starts(out, "usage: coalesced "), "usage line: %s", out);
	man_items(MAN8, "OPTIONS", "Fl", false, &man, &r);
	for (const char *p = out; (p = strstr(p, "[-")); p += 2) {
		char opt[2] = {p[2], '\0'};
		if (!items_find(&man, "", opt))
			problem(&r, "option -%s: in the usage line, missing from OPTIONS in %s",
			        opt, MAN8);
	}
	for (size_t i = 0; i < man.n; i++) {
		char pat[8];
		snprintf(pat, sizeof(pat), "[-%s", man.v[i].name);
		if (!strstr(out, pat))
			problem(&r, "%s:%zu: option -%s documented, not in the usage line '%s'",
			        MAN8, man.v[i].line, man.v[i].name, out);
	}
	items_free(&man);
	free(out);
	report_check(&r);
}
END_TEST

/* make install / uninstall into DESTDIR, isolated from any outer make's
 * variables; the daemon is never rebuilt here (-o). Returns the exit status
 * and the output in *log. */
static int make_target(const char *target, const char *destdir, const char *prefix, char **log)
{
	static const char *const vars[] = {"MAKEFLAGS",  "MFLAGS",       "MAKELEVEL", "DESTDIR",
	                                   "PREFIX",     "SBINDIR",      "MANDIR",    "SYSCONFDIR",
	                                   "SYSTEMDDIR", "MAKEOVERRIDES"};
	char cmd[2048];
	const char *bin = bin_path();

	for (size_t i = 0; i < sizeof(vars) / sizeof(vars[0]); i++)
		unsetenv(vars[i]);
	snprintf(cmd, sizeof(cmd), "make --no-print-directory %s DESTDIR='%s'%s%s BIN='%s' -o '%s'",
	         target, destdir, prefix ? " PREFIX=" : "", prefix ? prefix : "", bin, bin);
	return run_logged(cmd, log);
}

static const char *fresh_destdir(const char *name)
{
	static char dir[512];

	snprintf(dir, sizeof(dir), "%s/%s", tu_tmpdir(), name);
	ck_assert_int_eq(mkdir(dir, 0755), 0);
	return dir;
}

/* Regular files and symlinks left under a tree, as a report. */
static struct report *leftovers;
static const char *leftover_root;

static int leftover_cb(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
	(void)st;
	(void)ftw;
	if (type != FTW_D && type != FTW_DP && type != FTW_DNR)
		problem(leftovers, "left behind: %s", path + strlen(leftover_root));
	return 0;
}

static void check_empty_tree(const char *root, struct report *r)
{
	leftovers = r;
	leftover_root = root;
	ck_assert_int_eq(nftw(root, leftover_cb, 16, FTW_PHYS), 0);
}

struct expect {
	const char *path; /* under DESTDIR */
	mode_t mode;
	const char *same_as; /* source file it must equal, or NULL */
};

static int expected_count;
static const struct expect *expected;
static struct report *unexpected;
static const char *unexpected_root;

static int unexpected_cb(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
	const char *rel = path + strlen(unexpected_root);
	bool known = false;

	(void)st;
	(void)ftw;
	if (type == FTW_D || type == FTW_DP)
		return 0;
	for (int i = 0; i < expected_count && !known; i++)
		known = strcmp(rel, expected[i].path) == 0;
	if (!known)
		problem(unexpected, "installed but not expected: %s", rel);
	return 0;
}

static bool same_file(const char *a, const char *b)
{
	size_t la, lb;
	char *x = tu_read_file(a, &la), *y = tu_read_file(b, &lb);
	bool same = x && y && la == lb && memcmp(x, y, la) == 0;

	free(x);
	free(y);
	return same;
}

static void check_tree(const char *root, const struct expect *e, int n, struct report *r)
{
	for (int i = 0; i < n; i++) {
		char path[1024];
		struct stat st;

		snprintf(path, sizeof(path), "%s%s", root, e[i].path);
		if (lstat(path, &st) < 0) {
			problem(r, "not installed: %s", e[i].path);
			continue;
		}
		if (!S_ISREG(st.st_mode))
			problem(r, "%s: not a regular file", e[i].path);
		else if ((st.st_mode & 07777) != e[i].mode)
			problem(r, "%s: mode %04o, want %04o", e[i].path,
			        (unsigned)(st.st_mode & 07777), (unsigned)e[i].mode);
		if (e[i].same_as && !same_file(path, e[i].same_as))
			problem(r, "%s: differs from %s", e[i].path, e[i].same_as);
	}
	expected = e;
	expected_count = n;
	unexpected = r;
	unexpected_root = root;
	ck_assert_int_eq(nftw(root, unexpected_cb, 16, FTW_PHYS), 0);
}

/* The unit's line starting with prefix, or problem. */
static void check_unit_line(const char *unit, const char *want, struct report *r)
{
	struct lines l;
	bool found = false;

	lines_read(&l, unit);
	for (size_t i = 0; i < l.n; i++) {
		if (strcmp(l.v[i], want) == 0)
			found = true;
		if (has_placeholder(l.v[i]))
			problem(r, "%s: placeholder left: %s", unit, l.v[i]);
	}
	if (!found)
		problem(r, "%s: no line '%s'", unit, want);
	lines_free(&l);
}

static void remove_tree(const char *dir)
{
	char cmd[1024], *log;

	snprintf(cmd, sizeof(cmd), "rm -rf -- '%s'", dir);
	ck_assert_int_eq(run_logged(cmd, &log), 0);
	free(log);
}

START_TEST(install_tree_prefix_usr)
{
	static const struct expect files[] = {
	    {"/usr/sbin/coalesced", 0755, NULL},
	    {"/usr/share/man/man8/coalesced.8", 0644, MAN8},
	    {"/usr/share/man/man5/coalesced.ini.5", 0644, MAN5},
	    {"/etc/coalesced/coalesced.ini", 0644, CONF},
	    {"/etc/coalesced/coalesced.ini.example", 0644, CONF},
	    {"/usr/lib/systemd/system/coalesced.service", 0644, NULL},
	    {"/usr/lib/systemd/system/coalesced.socket", 0644, "systemd/coalesced.socket"},
	};
	struct report r = {0};
	const char *dest = fresh_destdir("install-usr");
	char unit[1024], bin[1024], *log;
	int rc;

	rc = make_target("install", dest, "/usr", &log);
	ck_assert_msg(rc == 0, "make install DESTDIR=%s PREFIX=/usr: exit %d\n%s", dest, rc, log);
	free(log);
	check_tree(dest, files, (int)(sizeof(files) / sizeof(files[0])), &r);
	snprintf(bin, sizeof(bin), "%s/usr/sbin/coalesced", dest);
	if (!same_file(bin, bin_path()))
		problem(&r, "/usr/sbin/coalesced differs from %s", bin_path());
	snprintf(unit, sizeof(unit), "%s/usr/lib/systemd/system/coalesced.service", dest);
	check_unit_line(unit, "ExecStart=/usr/sbin/coalesced -c /etc/coalesced/coalesced.ini", &r);
	report_check(&r);

	rc = make_target("uninstall", dest, "/usr", &log);
	ck_assert_msg(rc == 0, "make uninstall DESTDIR=%s PREFIX=/usr: exit %d\n%s", dest, rc, log);
	free(log);
	check_empty_tree(dest, &r);
	report_check(&r);
	remove_tree(dest);
}
END_TEST

START_TEST(install_tree_default_prefix)
{
	static const struct expect files[] = {
	    {"/usr/local/sbin/coalesced", 0755, NULL},
	    {"/usr/local/share/man/man8/coalesced.8", 0644, MAN8},
	    {"/usr/local/share/man/man5/coalesced.ini.5", 0644, MAN5},
	    {"/usr/local/etc/coalesced/coalesced.ini", 0644, CONF},
	    {"/usr/local/etc/coalesced/coalesced.ini.example", 0644, CONF},
	    {"/usr/local/lib/systemd/system/coalesced.service", 0644, NULL},
	    {"/usr/local/lib/systemd/system/coalesced.socket", 0644, "systemd/coalesced.socket"},
	};
	struct report r = {0};
	const char *dest = fresh_destdir("install-local");
	char unit[1024], *log;
	int rc;

	rc = make_target("install", dest, NULL, &log);
	ck_assert_msg(rc == 0, "make install DESTDIR=%s: exit %d\n%s", dest, rc, log);
	free(log);
	check_tree(dest, files, (int)(sizeof(files) / sizeof(files[0])), &r);
	snprintf(unit, sizeof(unit), "%s/usr/local/lib/systemd/system/coalesced.service", dest);
	check_unit_line(unit,
	                "ExecStart=/usr/local/sbin/coalesced -c "
	                "/usr/local/etc/coalesced/coalesced.ini",
	                &r);
	rc = make_target("uninstall", dest, NULL, &log);
	ck_assert_msg(rc == 0, "make uninstall DESTDIR=%s: exit %d\n%s", dest, rc, log);
	free(log);
	check_empty_tree(dest, &r);
	report_check(&r);
	remove_tree(dest);
}
END_TEST

/* install never overwrites the operator's coalesced.ini, and uninstall keeps
 * it when it was changed, removing everything else. */
START_TEST(install_keeps_changed_config)
{
	static const char mine[] = "[server]\nmax_clients = 10\n";
	struct report r = {0};
	const char *dest = fresh_destdir("install-keep");
	char ini[1024], example[1024], *log, *text;
	FILE *f;
	int rc;

	snprintf(ini, sizeof(ini), "%s/etc/coalesced/coalesced.ini", dest);
	snprintf(example, sizeof(example), "%s/etc/coalesced/coalesced.ini.example", dest);
	rc = make_target("install", dest, "/usr", &log);
	ck_assert_msg(rc == 0, "make install: exit %d\n%s", rc, log);
	free(log);
	f = fopen(ini, "w");
	ck_assert_ptr_nonnull(f);
	fputs(mine, f);
	fclose(f);
	rc = make_target("install", dest, "/usr", &log);
	ck_assert_msg(rc == 0, "make install (again): exit %d\n%s", rc, log);
	free(log);
	text = tu_read_file(ini, NULL);
	ck_assert_msg(text && strcmp(text, mine) == 0, "install overwrote %s", ini);
	free(text);
	ck_assert_msg(same_file(example, CONF), "%s differs from %s", example, CONF);

	rc = make_target("uninstall", dest, "/usr", &log);
	ck_assert_msg(rc == 0, "make uninstall: exit %d\n%s", rc, log);
	free(log);
	text = tu_read_file(ini, NULL);
	ck_assert_msg(text && strcmp(text, mine) == 0, "uninstall removed the changed %s", ini);
	free(text);
	ck_assert_int_eq(unlink(ini), 0);
	check_empty_tree(dest, &r);
	report_check(&r);
	remove_tree(dest);
}
END_TEST

/*
 * systemd-analyze verify on the unit as installed with PREFIX=/usr. verify
 * requires ExecStart's program to exist, so the copy verified points at the
 * staged binary; MANPATH lets it find the staged man pages that
 * Documentation= names. It exits 0 even on unknown directives, so any output
 * fails too.
 */
START_TEST(systemd_unit_verifies)
{
	char dest[512], vdir[512], unit[1024], copy[1024], cmd[4096], *log;
	struct lines l;
	FILE *f;
	int rc;

	if (!have_program("systemd-analyze")) {
		fprintf(stderr, "SKIP systemd_unit_verifies: systemd-analyze is not installed "
		                "(Debian package systemd)\n");
		return;
	}
	ck_assert_msg(have_program("man"), "man is not installed (Debian package man-db); "
	                                   "systemd-analyze verify needs it for Documentation=");
	snprintf(dest, sizeof(dest), "%s", fresh_destdir("install-verify"));
	rc = make_target("install", dest, "/usr", &log);
	ck_assert_msg(rc == 0, "make install: exit %d\n%s", rc, log);
	free(log);
	snprintf(unit, sizeof(unit), "%s/usr/lib/systemd/system/coalesced.service", dest);
	snprintf(vdir, sizeof(vdir), "%s", fresh_destdir("verify"));
	snprintf(copy, sizeof(copy), "%s/coalesced.service", vdir);
	lines_read(&l, unit);
	f = fopen(copy, "w");
	ck_assert_ptr_nonnull(f);
	for (size_t i = 0; i < l.n; i++) {
		if (starts(l.v[i], "ExecStart=/usr/sbin/coalesced"))
			fprintf(f, "ExecStart=%s%s\n", dest, l.v[i] + strlen("ExecStart="));
		else
			fprintf(f, "%s\n", l.v[i]);
	}
	fclose(f);
	lines_free(&l);
	snprintf(cmd, sizeof(cmd), "MANPATH='%s/usr/share/man' systemd-analyze verify '%s'", dest,
	         copy);
	rc = run_logged(cmd, &log);
	ck_assert_msg(rc == 0 && log[0] == '\0', "%s: exit %d\n%s", cmd, rc, log);
	free(log);
	remove_tree(dest);
	remove_tree(vdir);
}
END_TEST

Suite *ops_suite(void)
{
	Suite *s = suite_create("ops");
	TCase *docs = tcase_create("docs"), *install = tcase_create("install");

	tcase_set_timeout(docs, 60);
	tcase_add_test(docs, man_pages_lint_clean);
	tcase_add_test(docs, config_keys_same_everywhere);
	tcase_add_test(docs, config_docs_match_parser);
	tcase_add_test(docs, stats_counters_documented);
	tcase_add_test(docs, options_documented);
	suite_add_tcase(s, docs);
	tcase_set_timeout(install, 120);
	tcase_add_test(install, install_tree_prefix_usr);
	tcase_add_test(install, install_tree_default_prefix);
	tcase_add_test(install, install_keeps_changed_config);
	tcase_add_test(install, systemd_unit_verifies);
	suite_add_tcase(s, install);
	return s;
}
