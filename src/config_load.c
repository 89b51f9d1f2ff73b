/* config_load: the INI loader: a file or a string of text into a struct
 * config, every error reported at once with its line; see config.h. */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <ini.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* --- the INI loader -----------------------------------------------------
 *
 * inih reads past a bad line but returns the number of the first one only,
 * and calls the handler without line numbers (Debian builds it without
 * INI_HANDLER_LINENO). So the text is split into lines first and fed to
 * inih by our reader, which knows the line number. A syntax-only pass is
 * repeated, each bad line it finds being fed as a blank line the next time
 * (inih ignores a bad line, so nothing else changes), until none is left;
 * then one pass sets the keys, collecting the handler's errors. The first
 * MAX_ERRORS errors are reported, in line order.
 */

#define MAX_ERRORS 32
/* A configuration is a few kilobytes; this bounds a mistake like -c /dev/zero. */
#define MAX_FILE_BYTES (1 << 20)
/* inih's buffer holds the line, its '\n' and a NUL. */
#define MAX_LINE_BYTES (INI_MAX_LINE - 2)

struct load_error {
	int line;
	unsigned seq; /* keeps errors on one line in the order found */
	char msg[480];
};

struct text_line {
	size_t off, len; /* len excludes the '\n' */
	bool bad;        /* reported already: inih is given a blank line */
};

struct load_ctx {
	struct config *c;
	const char *text;
	struct text_line *lines;
	size_t nlines, next;
	int line;  /* the line inih holds, from 1 */
	bool scan; /* looking for syntax errors only: the handler does nothing */
	/* "servers =" is an error unless indented lines continue it; the key
	 * keeps its value until they do, so that it never holds an empty list. */
	int pending_line;
	const struct config_key *pending_key;
	char pending[480];
	int servers_line, protocol_line; /* where given; 0: not */
	struct load_error errs[MAX_ERRORS];
	size_t nerrs;
	unsigned seq;
	bool too_many;
};

static void add_error(struct load_ctx *lc, int line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void add_error(struct load_ctx *lc, int line, const char *fmt, ...)
{
	struct load_error *e;
	va_list ap;

	if (lc->nerrs == MAX_ERRORS) {
		/* Keep the first lines' errors, whatever order they are found in. */
		lc->too_many = true;
		e = &lc->errs[0];
		for (size_t i = 1; i < lc->nerrs; i++)
			if (lc->errs[i].line >= e->line)
				e = &lc->errs[i];
		if (line >= e->line)
			return;
	} else {
		e = &lc->errs[lc->nerrs++];
	}
	e->line = line;
	e->seq = lc->seq++;
	va_start(ap, fmt);
	vsnprintf(e->msg, sizeof(e->msg), fmt, ap);
	va_end(ap);
}

static bool is_list(const struct config_key *k)
{
	return k->type == CT_LISTEN || k->type == CT_SERVERS || k->type == CT_OPT_LISTEN;
}

static int set_string(struct config *c, const struct config_key *k, char *owned)
{
	char **p = (char **)((char *)c + k->offset);

	if (!owned)
		return -1;
	free(*p);
	*p = owned;
	return 0;
}

static char *read_line(char *str, int num, void *stream)
{
	struct load_ctx *lc = stream;
	const struct text_line *l;

	if (lc->next == lc->nlines)
		return NULL;
	l = &lc->lines[lc->next++];
	lc->line = (int)lc->next;
	if (l->bad || l->len + 2 > (size_t)num) {
		snprintf(str, (size_t)num, "\n");
		return str;
	}
	memcpy(str, lc->text + l->off, l->len);
	str[l->len] = '\n';
	str[l->len + 1] = '\0';
	return str;
}

/*
 * Whether inih calls the handler for a continuation line (an indented line
 * after a key: inih passes the key above and the line's whole text) rather
 * than for an indented "key = value": only then is the line, stripped of
 * blanks and of an inline comment, exactly the value.
 */
static bool continues(const struct load_ctx *lc, const char *value)
{
	const struct text_line *l = &lc->lines[lc->next - 1];
	const char *s = lc->text + l->off, *end = s + l->len;
	size_t n = strlen(value);

	if (l->len == 0 || !isspace((unsigned char)*s))
		return false;
	while (s < end && isspace((unsigned char)*s))
		s++;
	if ((size_t)(end - s) < n || memcmp(s, value, n) != 0)
		return false;
	for (s += n; s < end && isspace((unsigned char)*s); s++)
		;
	return s == end || *s == ';';
}

static void flush_pending(struct load_ctx *lc)
{
	if (lc->pending_line) {
		add_error(lc, lc->pending_line, "%s", lc->pending);
		lc->pending_line = 0;
	}
}

/* An address list goes on over indented lines, each adding its addresses as
 * if after a comma; any other key takes one line. */
static void continue_value(struct load_ctx *lc, const char *section, const char *name,
                           const char *value)
{
	bool sec_ok;
	const struct config_key *k = config_find_key(section, name, &sec_ok);
	char why[512], piece[INI_MAX_LINE], **p, *joined;
	bool replace;
	size_t n;

	if (!k)
		return; /* the key's own line is reported already */
	/* Some inih versions leave the inline comment on a continuation line. */
	snprintf(piece, sizeof(piece), "%s", value);
	n = strlen(piece);
	for (size_t i = 1; i < n; i++) {
		if (piece[i] == ';' && isspace((unsigned char)piece[i - 1])) {
			n = i;
			break;
		}
	}
	while (n > 0 && isspace((unsigned char)piece[n - 1]))
		n--;
	piece[n] = '\0';
	value = piece;
	if (!is_list(k)) {
		add_error(lc, lc->line,
		          "[%s] %s: an indented line continues the value above it; only address "
		          "lists (listen, servers) take several lines",
		          section, name);
		return;
	}
	replace = lc->pending_line && lc->pending_key == k;
	if (replace)
		lc->pending_line = 0; /* not empty after all */
	if (config_check_addrs(value, k->type != CT_SERVERS, why, sizeof(why)) < 0) {
		add_error(lc, lc->line,
		          "[%s] %s: %s (an indented line continues the value above it)", section,
		          name, why);
		return;
	}
	p = (char **)((char *)lc->c + k->offset);
	if (replace || **p == '\0')
		joined = strdup(value);
	else if (asprintf(&joined, "%s,%s", *p, value) < 0)
		joined = NULL;
	if (set_string(lc->c, k, joined) < 0)
		add_error(lc, lc->line, "out of memory");
}

static int handler(void *user, const char *section, const char *name, const char *value)
{
	struct load_ctx *lc = user;
	const struct config_key *k;
	char why[sizeof(lc->pending)];
	bool sec_ok;

	if (lc->scan)
		return 1;
	if (continues(lc, value)) {
		continue_value(lc, section, name, value);
		return 1;
	}
	flush_pending(lc);
	if (strcmp(section, "upstream") == 0 && strcmp(name, "servers") == 0)
		lc->servers_line = lc->line;
	if (strcmp(section, "upstream") == 0 && strcmp(name, "protocol") == 0)
		lc->protocol_line = lc->line;
	if (config_set(lc->c, section, name, value, why, sizeof(why)) == 0)
		return 1;
	k = config_find_key(section, name, &sec_ok);
	if (k && *value == '\0' && (k->type == CT_LISTEN || k->type == CT_SERVERS)) {
		/* "servers =" and the addresses on the indented lines below. */
		lc->pending_line = lc->line;
		lc->pending_key = k;
		snprintf(lc->pending, sizeof(lc->pending), "%s", why);
		return 1;
	}
	add_error(lc, lc->line, "%s", why);
	return 1;
}

static int split_lines(struct load_ctx *lc, size_t len)
{
	size_t n = 0, off = 0;

	for (size_t i = 0; i < len; i++)
		if (lc->text[i] == '\n')
			n++;
	if (len > 0 && lc->text[len - 1] != '\n')
		n++;
	lc->lines = calloc(n ? n : 1, sizeof(*lc->lines));
	if (!lc->lines)
		return -1;
	for (size_t i = 0; i < n; i++) {
		const char *nl = memchr(lc->text + off, '\n', len - off);
		struct text_line *l = &lc->lines[i];

		l->off = off;
		l->len = nl ? (size_t)(nl - (lc->text + off)) : len - off;
		off += l->len + 1;
		if (l->len > MAX_LINE_BYTES) {
			l->bad = true;
			add_error(lc, (int)i + 1, "line too long (at most %d bytes)",
			          MAX_LINE_BYTES);
		} else if (memchr(lc->text + l->off, '\0', l->len)) {
			l->bad = true;
			add_error(lc, (int)i + 1, "a NUL byte: not a text file");
		}
	}
	lc->nlines = n;
	return 0;
}

static void syntax_error(struct load_ctx *lc, int line)
{
	const struct text_line *l = &lc->lines[line - 1];
	const char *s = lc->text + l->off, *end = s + l->len;

	while (s < end && isspace((unsigned char)*s))
		s++;
	if (s < end && *s == '[')
		add_error(lc, line, "syntax error: no ']' closes the section name");
	else
		add_error(lc, line, "syntax error: expected 'key = value' or '[section]'");
}

static int cmp_errors(const void *a, const void *b)
{
	const struct load_error *x = a, *y = b;

	if (x->line != y->line)
		return x->line < y->line ? -1 : 1;
	return x->seq < y->seq ? -1 : x->seq > y->seq;
}

/* One line per error; what does not fit in err is counted in a last line. */
static void format_errors(struct load_ctx *lc, const char *origin, char *err, size_t errlen)
{
	size_t n = 0, shown = 0;
	char tail[128];

	qsort(lc->errs, lc->nerrs, sizeof(lc->errs[0]), cmp_errors);
	err[0] = '\0';
	for (; shown < lc->nerrs; shown++) {
		const struct load_error *e = &lc->errs[shown];
		int w = snprintf(err + n, errlen - n, "%s%s:%d: %s", shown ? "\n" : "", origin,
		                 e->line, e->msg);
		/* Leave room for the tail, unless this is the last line. */
		if (w < 0 || n + (size_t)w + (shown + 1 < lc->nerrs ? 96 : 0) >= errlen) {
			err[n] = '\0';
			break;
		}
		n += (size_t)w;
	}
	if (shown < lc->nerrs || lc->too_many) {
		if (lc->too_many)
			snprintf(tail, sizeof(tail), "%s%s: more errors not shown", n ? "\n" : "",
			         origin);
		else
			snprintf(tail, sizeof(tail), "%s%s: %zu more errors not shown",
			         n ? "\n" : "", origin, lc->nerrs - shown);
		if (n + strlen(tail) < errlen)
			memcpy(err + n, tail, strlen(tail) + 1);
	}
}

static int load_text(struct config *c, const char *text, size_t len, const char *origin, char *err,
                     size_t errlen)
{
	struct load_ctx *lc = calloc(1, sizeof(*lc));
	int r;

	if (!lc || (lc->c = c, lc->text = text, split_lines(lc, len) < 0)) {
		snprintf(err, errlen, "%s: out of memory", origin);
		free(lc);
		return -1;
	}
	/* Each pass finds the next syntax error, so this ends within nlines. */
	lc->scan = true;
	do {
		lc->next = 0;
		r = ini_parse_stream(read_line, lc, handler, lc);
		if (r <= 0 || (size_t)r > lc->nlines || lc->lines[r - 1].bad)
			break;
		lc->lines[r - 1].bad = true;
		syntax_error(lc, r);
	} while (!lc->too_many);
	lc->scan = false;
	lc->next = 0;
	if (r >= 0)
		r = ini_parse_stream(read_line, lc, handler, lc);
	flush_pending(lc);
	if (r >= 0 && c->protocol == PROTO_POSTGRES) {
		if (lc->servers_line)
			add_error(lc, lc->servers_line,
			          "[upstream] servers: not used with protocol = postgres (the "
			          "database is [postgres] conninfo)");
		if (!c->queries)
			add_error(lc, lc->protocol_line,
			          "[upstream] protocol: postgres needs a [queries] section");
	}
	if (r < 0)
		add_error(lc, 0, "out of memory");
	r = lc->nerrs || lc->too_many ? -1 : 0;
	if (r < 0)
		format_errors(lc, origin, err, errlen);
	free(lc->lines);
	free(lc);
	return r;
}

static char *read_file(const char *path, size_t *len, char *err, size_t errlen)
{
	FILE *f = fopen(path, "r");
	struct stat st;
	char *buf = NULL;
	size_t n = 0, cap = 0;

	if (!f) {
		snprintf(err, errlen, "%s: cannot open: %s", path, strerror(errno));
		return NULL;
	}
	/* fopen() opens a directory, which then reads as an empty file. */
	if (fstat(fileno(f), &st) == 0 && S_ISDIR(st.st_mode)) {
		snprintf(err, errlen, "%s: cannot read: %s", path, strerror(EISDIR));
		fclose(f);
		return NULL;
	}
	for (;;) {
		size_t got;
		if (n == cap) {
			char *nb;
			if (cap > MAX_FILE_BYTES) {
				snprintf(err, errlen, "%s: larger than %d bytes", path,
				         MAX_FILE_BYTES);
				goto fail;
			}
			cap = cap ? cap * 2 : 4096;
			nb = realloc(buf, cap + 1);
			if (!nb) {
				snprintf(err, errlen, "%s: out of memory", path);
				goto fail;
			}
			buf = nb;
		}
		got = fread(buf + n, 1, cap - n, f);
		n += got;
		if (got == 0)
			break;
	}
	if (ferror(f)) {
		snprintf(err, errlen, "%s: cannot read: %s", path, strerror(errno));
		goto fail;
	}
	fclose(f);
	buf[n] = '\0';
	*len = n;
	return buf;
fail:
	fclose(f);
	free(buf);
	return NULL;
}

int config_load_file(struct config *c, const char *path, char *err, size_t errlen)
{
	size_t len;
	char *text = read_file(path, &len, err, errlen);
	int r;

	if (!text)
		return -1;
	r = load_text(c, text, len, path, err, errlen);
	free(text);
	return r;
}

int config_load_string(struct config *c, const char *text, const char *origin, char *err,
                       size_t errlen)
{
	return load_text(c, text, strlen(text), origin, err, errlen);
}
