/*
 * metrics: the Prometheus page. Its figures over HTTP; its validity whatever
 * keys clients send, checked by promtool and by a strict parser written here
 * from the text format's specification (version 0.0.4), with every prefix
 * recovered from its labels; the build-info gauge; and the unix: listener,
 * which must never remove a file it did not make.
 */
#include "metrics.h"
#include "server.h"
#include "stats.h"
#include "testutil.h"

#include <check.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

/* ---- A strict parser of the text exposition format ---- */

#define MAXLABELS 8

struct sample {
	char *name;
	size_t nl;
	char *lname[MAXLABELS];
	char *lval[MAXLABELS]; /* unescaped, NUL-terminated (values hold no NUL) */
	double v;
};

struct family {
	char *name;
	char type[16];
	bool help, closed;
};

struct page {
	struct sample *s;
	size_t n;
	struct family *f;
	size_t nf;
	char err[512];
};

static void page_free(struct page *pg)
{
	for (size_t i = 0; i < pg->n; i++) {
		free(pg->s[i].name);
		for (size_t j = 0; j < pg->s[i].nl; j++) {
			free(pg->s[i].lname[j]);
			free(pg->s[i].lval[j]);
		}
	}
	for (size_t i = 0; i < pg->nf; i++)
		free(pg->f[i].name);
	free(pg->s);
	free(pg->f);
}

/* Well-formed UTF-8 (RFC 3629), by decoding each code point. */
static bool utf8_valid(const unsigned char *b, size_t len, size_t *bad)
{
	for (size_t i = 0; i < len;) {
		unsigned cp, need, min;
		if (b[i] < 0x80) {
			i++;
			continue;
		}
		if ((b[i] & 0xe0) == 0xc0)
			cp = b[i] & 0x1fu, need = 1, min = 0x80;
		else if ((b[i] & 0xf0) == 0xe0)
			cp = b[i] & 0x0fu, need = 2, min = 0x800;
		else if ((b[i] & 0xf8) == 0xf0)
			cp = b[i] & 0x07u, need = 3, min = 0x10000;
		else
			goto fail;
		if (len - i <= need)
			goto fail;
		for (unsigned k = 1; k <= need; k++) {
			if ((b[i + k] & 0xc0) != 0x80)
				goto fail;
			cp = cp << 6 | (b[i + k] & 0x3fu);
		}
		if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
			goto fail;
		i += need + 1;
		continue;
	fail:
		*bad = i;
		return false;
	}
	return true;
}

static bool is_name(const char *s, size_t n, bool colon)
{
	if (n == 0 || (s[0] >= '0' && s[0] <= '9'))
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = s[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '_' || (colon && c == ':')))
			return false;
	}
	return true;
}

static const char *skip_blank(const char *p, const char *end)
{
	while (p < end && (*p == ' ' || *p == '\t'))
		p++;
	return p;
}

static size_t token_len(const char *p, const char *end)
{
	size_t n = 0;
	while (p + n < end && p[n] != ' ' && p[n] != '\t')
		n++;
	return n;
}

static struct family *family_find(struct page *pg, const char *name, size_t n)
{
	for (size_t i = 0; i < pg->nf; i++)
		if (strlen(pg->f[i].name) == n && memcmp(pg->f[i].name, name, n) == 0)
			return &pg->f[i];
	return NULL;
}

static struct family *family_get(struct page *pg, const char *name, size_t n)
{
	struct family *f = family_find(pg, name, n);
	if (f)
		return f;
	pg->f = realloc(pg->f, (pg->nf + 1) * sizeof(*pg->f));
	ck_assert_ptr_nonnull(pg->f);
	f = &pg->f[pg->nf++];
	memset(f, 0, sizeof(*f));
	f->name = strndup(name, n);
	return f;
}

/* The family a sample belongs to: histogram and summary samples carry a
 * suffix after their family's name. */
static struct family *family_of(struct page *pg, const char *name)
{
	static const char *const sfx[] = {"_bucket", "_sum", "_count"};
	size_t n = strlen(name);

	for (size_t i = 0; i < 3; i++) {
		size_t k = strlen(sfx[i]);
		if (n > k && strcmp(name + n - k, sfx[i]) == 0) {
			struct family *f = family_find(pg, name, n - k);
			if (f && (strcmp(f->type, "histogram") == 0 ||
			          (i > 0 && strcmp(f->type, "summary") == 0)))
				return f;
		}
	}
	return family_get(pg, name, n);
}

static bool reject(struct page *pg, size_t line, const char *what)
{
	snprintf(pg->err, sizeof(pg->err), "line %zu: %s", line, what);
	return false;
}

/* A label value after its opening quote; *pp ends after the closing one. */
static char *label_value(const char **pp, const char *end)
{
	const char *p = *pp;
	char *out = malloc((size_t)(end - p) + 1);
	size_t n = 0;

	ck_assert_ptr_nonnull(out);
	while (p < end && *p != '"') {
		if (*p == '\\') {
			if (p + 1 >= end)
				break;
			if (p[1] == '\\' || p[1] == '"')
				out[n++] = p[1];
			else if (p[1] == 'n')
				out[n++] = '\n';
			else
				break;
			p += 2;
		} else {
			out[n++] = *p++;
		}
	}
	if (p >= end || *p != '"') {
		free(out);
		return NULL;
	}
	out[n] = '\0';
	*pp = p + 1;
	return out;
}

static bool parse_value(const char *p, size_t n, double *v)
{
	char buf[64], *e;

	if (n == 0 || n >= sizeof(buf))
		return false;
	memcpy(buf, p, n);
	buf[n] = '\0';
	if (strcmp(buf, "+Inf") == 0 || strcmp(buf, "-Inf") == 0 || strcmp(buf, "NaN") == 0) {
		*v = 0;
		return true;
	}
	/* Go's ParseFloat: decimal forms only here, nothing strtod adds. */
	if (strpbrk(buf, "xXpPiInN"))
		return false;
	errno = 0;
	*v = strtod(buf, &e);
	return *e == '\0' && errno == 0;
}

static bool parse_sample(struct page *pg, size_t ln, const char *p, const char *end)
{
	struct sample s = {0};
	size_t n = 0;

	while (p + n < end && p[n] != '{' && p[n] != ' ' && p[n] != '\t')
		n++;
	if (!is_name(p, n, true))
		return reject(pg, ln, "bad metric name");
	s.name = strndup(p, n);
	p = skip_blank(p + n, end);
	if (p < end && *p == '{') {
		p = skip_blank(p + 1, end);
		while (p < end && *p != '}') {
			n = 0;
			while (p + n < end && p[n] != '=' && p[n] != ' ' && p[n] != '\t')
				n++;
			if (!is_name(p, n, false) || (n >= 2 && p[0] == '_' && p[1] == '_'))
				goto bad_label;
			if (s.nl == MAXLABELS)
				goto bad_label;
			s.lname[s.nl] = strndup(p, n);
			for (size_t j = 0; j < s.nl; j++)
				if (strcmp(s.lname[j], s.lname[s.nl]) == 0) {
					s.nl++;
					goto bad_label;
				}
			p = skip_blank(p + n, end);
			if (p >= end || *p != '=') {
				s.nl++;
				goto bad_label;
			}
			p = skip_blank(p + 1, end);
			if (p >= end || *p != '"') {
				s.nl++;
				goto bad_label;
			}
			p++;
			s.lval[s.nl] = label_value(&p, end);
			s.nl++;
			if (!s.lval[s.nl - 1])
				goto bad_label;
			p = skip_blank(p, end);
			if (p < end && *p == ',')
				p = skip_blank(p + 1, end);
			else if (p < end && *p != '}')
				goto bad_label;
		}
		if (p >= end)
			goto bad_label;
		p = skip_blank(p + 1, end);
	}
	n = token_len(p, end);
	if (!parse_value(p, n, &s.v)) {
		snprintf(pg->err, sizeof(pg->err), "line %zu: bad value", ln);
		goto free;
	}
	p = skip_blank(p + n, end);
	if (p < end) {
		/* An optional timestamp: an integer, and nothing after it. */
		n = token_len(p, end);
		for (size_t i = (*p == '-'); i < n; i++)
			if (p[i] < '0' || p[i] > '9') {
				snprintf(pg->err, sizeof(pg->err), "line %zu: bad timestamp", ln);
				goto free;
			}
		if (skip_blank(p + n, end) != end) {
			snprintf(pg->err, sizeof(pg->err), "line %zu: text after the sample", ln);
			goto free;
		}
	}
	pg->s = realloc(pg->s, (pg->n + 1) * sizeof(*pg->s));
	ck_assert_ptr_nonnull(pg->s);
	pg->s[pg->n++] = s;
	return true;
bad_label:
	snprintf(pg->err, sizeof(pg->err), "line %zu: bad label (%zu)", ln, s.nl);
free:
	free(s.name);
	for (size_t j = 0; j < s.nl; j++) {
		free(s.lname[j]);
		free(s.lval[j]);
	}
	return false;
}

static bool parse_comment(struct page *pg, size_t ln, const char *p, const char *end)
{
	static const char *const types[] = {"counter", "gauge", "histogram", "summary", "untyped"};
	size_t n;
	struct family *f;

	p = skip_blank(p + 1, end);
	n = token_len(p, end);
	bool help = n == 4 && memcmp(p, "HELP", 4) == 0;
	bool type = n == 4 && memcmp(p, "TYPE", 4) == 0;
	if (!help && !type)
		return true; /* any other comment */
	p = skip_blank(p + n, end);
	n = token_len(p, end);
	if (!is_name(p, n, true))
		return reject(pg, ln, "bad metric name in HELP/TYPE");
	f = family_get(pg, p, n);
	p = skip_blank(p + n, end);
	if (help) {
		if (f->help)
			return reject(pg, ln, "second HELP");
		f->help = true;
		for (; p < end; p++)
			if (*p == '\\' && (p + 1 >= end || (p[1] != '\\' && p[1] != 'n')))
				return reject(pg, ln, "bad escape in HELP");
			else if (*p == '\\')
				p++;
		return true;
	}
	if (f->type[0])
		return reject(pg, ln, "second TYPE");
	for (size_t i = 0; i < pg->n; i++) {
		const char *sn = pg->s[i].name;
		size_t fl = strlen(f->name);
		if (strncmp(sn, f->name, fl) == 0 &&
		    (!sn[fl] || !strcmp(sn + fl, "_bucket") || !strcmp(sn + fl, "_sum") ||
		     !strcmp(sn + fl, "_count")))
			return reject(pg, ln, "TYPE after samples");
	}
	n = token_len(p, end);
	for (size_t i = 0; i < 5; i++)
		if (n == strlen(types[i]) && memcmp(p, types[i], n) == 0) {
			memcpy(f->type, types[i], n + 1);
			return skip_blank(p + n, end) == end
			           ? true
			           : reject(pg, ln, "text after the type");
		}
	return reject(pg, ln, "unknown type");
}

/* A canonical spelling of a sample's name and label set, to find twins. */
static char *sample_key(const struct sample *s)
{
	size_t order[MAXLABELS], len = strlen(s->name) + 2;
	char *k;

	for (size_t i = 0; i < s->nl; i++) {
		order[i] = i;
		len += strlen(s->lname[i]) + strlen(s->lval[i]) + 3;
	}
	for (size_t i = 1; i < s->nl; i++)
		for (size_t j = i; j > 0 && strcmp(s->lname[order[j - 1]], s->lname[order[j]]) > 0;
		     j--) {
			size_t t = order[j];
			order[j] = order[j - 1];
			order[j - 1] = t;
		}
	k = malloc(len);
	ck_assert_ptr_nonnull(k);
	strcpy(k, s->name);
	for (size_t i = 0; i < s->nl; i++) {
		/* 0xff never occurs in valid UTF-8: a safe separator. */
		strcat(k, "\xff");
		strcat(k, s->lname[order[i]]);
		strcat(k, "=");
		strcat(k, s->lval[order[i]]);
	}
	return k;
}

/* Parse a whole page; false with pg->err set on the first violation. */
static bool page_parse(const char *text, size_t len, struct page *pg)
{
	const char *p = text, *end = text + len;
	size_t current = SIZE_MAX;
	size_t bad, ln = 0;

	memset(pg, 0, sizeof(*pg));
	if (!utf8_valid((const unsigned char *)text, len, &bad)) {
		snprintf(pg->err, sizeof(pg->err), "not UTF-8 at byte %zu", bad);
		return false;
	}
	if (memchr(text, '\0', len))
		return reject(pg, 0, "NUL byte in the page");
	if (len > 0 && text[len - 1] != '\n')
		return reject(pg, 0, "the last line does not end with a line feed");
	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		const char *q = skip_blank(p, nl);
		ln++;
		if (q < nl && *q == '#') {
			if (!parse_comment(pg, ln, q, nl))
				return false;
		} else if (q < nl) {
			const char *e = nl;
			while (e > q && (e[-1] == ' ' || e[-1] == '\t'))
				e--;
			if (!parse_sample(pg, ln, q, e))
				return false;
			/* An index: the family array moves as it grows. */
			size_t f = (size_t)(family_of(pg, pg->s[pg->n - 1].name) - pg->f);
			if (f != current) {
				/* All of a family's samples form one group. */
				if (pg->f[f].closed)
					return reject(pg, ln, "a family's samples are split");
				if (current != SIZE_MAX)
					pg->f[current].closed = true;
				current = f;
			}
		}
		p = nl + 1;
	}
	for (size_t i = 0; i < pg->n; i++) {
		char *a = sample_key(&pg->s[i]);
		for (size_t j = i + 1; j < pg->n; j++) {
			char *b = sample_key(&pg->s[j]);
			bool same = strcmp(a, b) == 0;
			free(b);
			if (same) {
				snprintf(pg->err, sizeof(pg->err),
				         "samples %zu and %zu share a label set", i, j);
				free(a);
				return false;
			}
		}
		free(a);
	}
	return true;
}

static const char *sample_label(const struct sample *s, const char *name)
{
	for (size_t i = 0; i < s->nl; i++)
		if (strcmp(s->lname[i], name) == 0)
			return s->lval[i];
	return NULL;
}

/* The prefix a row stands for, as documented in metrics.h; NULL for the
 * catch-all rows. */
static char *row_prefix(const struct sample *s, size_t *len)
{
	const char *hex = sample_label(s, "prefix_hex");
	const char *v = sample_label(s, "prefix");
	char *out;

	ck_assert_ptr_nonnull(v);
	if (!hex && (strcmp(v, "(none)") == 0 || strcmp(v, "(other)") == 0))
		return NULL;
	if (!hex) {
		*len = strlen(v);
		return strdup(v);
	}
	ck_assert_uint_eq(strlen(hex) % 2, 0);
	*len = strlen(hex) / 2;
	out = malloc(*len + 1);
	for (size_t i = 0; i < *len; i++) {
		unsigned b;
		ck_assert_int_eq(sscanf(hex + 2 * i, "%2x", &b), 1);
		out[i] = (char)b;
	}
	out[*len] = '\0';
	return out;
}

/* The keys_total row of one prefix; fails unless there is exactly one. */
static const struct sample *prefix_row(const struct page *pg, const char *prefix, size_t plen)
{
	const struct sample *found = NULL;

	for (size_t i = 0; i < pg->n; i++) {
		const struct sample *s = &pg->s[i];
		size_t len;
		char *raw;
		if (strcmp(s->name, "coalesced_prefix_keys_total") != 0)
			continue;
		raw = row_prefix(s, &len);
		if (raw && len == plen && memcmp(raw, prefix, plen) == 0) {
			ck_assert_msg(!found, "two rows for prefix %.*s", (int)plen, prefix);
			found = s;
		}
		free(raw);
	}
	ck_assert_msg(found, "no row for prefix %.*s", (int)plen, prefix);
	return found;
}

/* The page in a file, for promtool and for a reader of a failure. */
static const char *page_save(const char *body, size_t len)
{
	static char path[256];
	static int n;
	FILE *f;

	snprintf(path, sizeof(path), "%s/page.%d.%d.txt", tu_tmpdir(), (int)getpid(), ++n);
	f = fopen(path, "w");
	ck_assert_ptr_nonnull(f);
	ck_assert_uint_eq(fwrite(body, 1, len, f), len);
	fclose(f);
	return path;
}

/* promtool (Debian's prometheus package, see tests/deps.sh) must accept the
 * page without a complaint, lint included. */
static void promtool_check(const char *path)
{
	char out[300], cmd[1024];
	int st;

	snprintf(out, sizeof(out), "%s.promtool", path);
	snprintf(cmd, sizeof(cmd), "timeout 30 promtool check metrics <%s >%s 2>&1", path, out);
	st = system(cmd);
	ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) != 127,
	              "promtool is missing: run tests/deps.sh");
	char *msg = tu_read_file(out, NULL);
	ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0,
	              "promtool (status %d): %.300s (page %s)",
	              WIFEXITED(st) ? WEXITSTATUS(st) : -1, msg ? msg : "", path);
	free(msg);
}

/* Both checks, then the page parsed for the test to look into. */
static void page_check(const char *body, size_t len, struct page *pg)
{
	const char *path = page_save(body, len);
	bool ok = page_parse(body, len, pg);

	ck_assert_msg(ok, "%s (page %s)", pg->err, path);
	promtool_check(path);
}

static int unix_connect(const char *path)
{
	struct sockaddr_un un = {.sun_family = AF_UNIX};
	int fd = socket(AF_UNIX, SOCK_STREAM, 0);

	snprintf(un.sun_path, sizeof(un.sun_path), "%s", path);
	if (connect(fd, (struct sockaddr *)&un, sizeof(un)) < 0) {
		close(fd);
		return -1;
	}
	return fd;
}

/* The metrics endpoint opens just after the client listener that
 * tu_coalesced_start() waits for: retry, within a bound. */
static int metrics_connect(int port, const char *path)
{
	double end = tu_now() + tu_guard_ms(10000) / 1000.0;
	int fd;

	while ((fd = path ? unix_connect(path) : tu_connect(port)) < 0 && tu_now() < end)
		tu_sleep_ms(20);
	return fd;
}

/* GET /metrics on a connected socket; the body, malloc'd. */
static char *http_get(int fd, size_t *len)
{
	size_t n;
	char *r, *body;

	ck_assert_int_ge(fd, 0);
	tu_sends(fd, "GET /metrics HTTP/1.0\r\n\r\n");
	r = tu_recv_all(fd, 3000, 5000, &n);
	close(fd);
	ck_assert_msg(strncmp(r, "HTTP/1.0 200 ", 13) == 0, "%.200s", r);
	body = strstr(r, "\r\n\r\n");
	ck_assert_ptr_nonnull(body);
	body += 4;
	*len = n - (size_t)(body - r);
	body = memcpy(malloc(*len + 1), body, *len + 1);
	free(r);
	return body;
}

/* The parser above must be no weaker than the format: each of these
 * pages breaks one rule. */
START_TEST(strict_parser_rejects_bad_pages)
{
	static const char *const bad[] = {
	    "a{p=\"\\x22\"} 1\n",                 /* an escape the format lacks */
	    "a{p=\"\xff\"} 1\n",                  /* not UTF-8 */
	    "a{p=\"\xed\xa0\x80\"} 1\n",          /* a surrogate */
	    "a{p=\"x\"} 1\na{p=\"x\"} 2\n",       /* twins */
	    "a 1",                                /* no final line feed */
	    "a 1\nb 1\na 2\n",                    /* a family split */
	    "1a 1\n",                             /* a bad metric name */
	    "a{__p=\"x\"} 1\n",                   /* a reserved label name */
	    "a{p=\"x\",p=\"y\"} 1\n",             /* a label twice */
	    "a{p=\"x} 1\n",                       /* an open quote */
	    "a 0x1\n",                            /* a hex value */
	    "# TYPE a counter\n# TYPE a gauge\n", /* a second TYPE */
	    "a 1\n# TYPE a counter\n",            /* TYPE after samples */
	    "# TYPE a countr\n",                  /* an unknown type */
	    "# HELP a bad \\q\n",                 /* a bad escape in HELP */
	};
	static const char good[] = "# HELP a x \\\\ \\n y\n# TYPE a histogram\n"
	                           "a_bucket{le=\"1\"} 0\na_bucket{le=\"+Inf\"} 1\n"
	                           "a_sum 2.5\na_count 1\nb{p=\"\\\"\\\\\\n\xc3\xa9\",} -Inf 123\n";
	struct page pg;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		ck_assert_msg(!page_parse(bad[i], strlen(bad[i]), &pg), "accepted %s", bad[i]);
		page_free(&pg);
	}
	ck_assert_msg(page_parse(good, strlen(good), &pg), "%s", pg.err);
	ck_assert_uint_eq(pg.n, 5);
	ck_assert_str_eq(sample_label(&pg.s[4], "p"), "\"\\\n\xc3\xa9");
	page_free(&pg);
}
END_TEST

/* ---- Over HTTP ---- */

static struct proc mc, co;

static void start(int mport)
{
	char servers[64], opt[64];

	snprintf(opt, sizeof(opt), "metrics.listen=127.0.0.1:%d", mport);
	const char *opts[] = {opt, NULL};
	tu_memcached_start(&mc, 0);
	snprintf(servers, sizeof(servers), "127.0.0.1:%d", mc.port);
	tu_coalesced_start(&co, servers, opts);
}

static void stop(void)
{
	tu_stop_clean(&co);
	tu_stop(&mc);
}

START_TEST(metrics_over_http)
{
	int mport = tu_free_port();
	char want[128], *body, *r;
	size_t len;
	struct page pg;

	start(mport);
	free(tu_roundtrip(co.port, "get a b\r\n", 3000));
	free(tu_roundtrip(co.port, "get a\r\n", 3000));
	body = http_get(metrics_connect(mport, NULL), &len);
	page_check(body, len, &pg);
	page_free(&pg);
	ck_assert_ptr_nonnull(strstr(body, "\ncoalesced_cmd_get_total 2\n"));
	ck_assert_ptr_nonnull(strstr(body, "\ncoalesced_get_keys_total 3\n"));
	ck_assert_ptr_nonnull(strstr(body, "# TYPE coalesced_curr_connections gauge\n"));
	ck_assert_ptr_nonnull(
	    strstr(body, "# TYPE coalesced_request_duration_seconds histogram\n"));
	ck_assert_ptr_nonnull(strstr(body, "\ncoalesced_request_duration_seconds_count 2\n"));
	ck_assert_ptr_nonnull(strstr(body, "\ncoalesced_upstream_batch_keys_bucket{le=\"2\"} 2\n"));
	ck_assert_ptr_nonnull(strstr(body, "\ncoalesced_upstream_batch_keys_sum 3\n"));
	ck_assert_ptr_nonnull(
	    strstr(body, "\ncoalesced_upstream_batch_duration_seconds_count 2\n"));
	snprintf(want, sizeof(want),
	         "# TYPE coalesced_build_info gauge\n"
	         "coalesced_build_info{version=\"%s\"} 1\n",
	         COALESCED_VERSION);
	ck_assert_msg(strstr(body, want), "no %s", want);
	free(body);
	{
		int fd = metrics_connect(mport, NULL);
		tu_sends(fd, "GET /nope HTTP/1.0\r\n\r\n");
		r = tu_recv_all(fd, 3000, 5000, NULL);
		close(fd);
		ck_assert_msg(strncmp(r, "HTTP/1.0 404 ", 13) == 0, "%.200s", r);
		free(r);
	}
	stop();
}
END_TEST

/* Prefixes a memcached client can send (any byte > 0x20 but DEL). */
static const char *const hostile[] = {
    "a\"b\\c",            /* the report's `get a"b\c:1` */
    "\\n\\\"",            /* backslashes that look like escapes */
    "\xff\xfe",           /* not UTF-8 */
    "\xff",               /* shows like ... */
    "\xfe",               /* ... this one: told apart by prefix_hex */
    "\xc0\xaf",           /* overlong '/' */
    "\xed\xa0\x80",       /* a UTF-16 surrogate */
    "\xe2\x82",           /* cut short */
    "\xf4\x90\x80\x80",   /* above U+10FFFF */
    "x\xe2\x82\xacy\xc3", /* valid, then cut short at the end */
    "\xc3\xa9t\xc3\xa9",  /* valid UTF-8: kept as is */
    "\xef\xbf\xbd",       /* U+FFFD itself, sent by the client */
    "\xf0\x9f\x90\x98",   /* four bytes */
    "(none)",             /* spelled like a catch-all row */
    "(other)",            /* likewise */
    "",                   /* the empty prefix of ":1" */
    "{}=,#",              /* the format's own punctuation */
};

START_TEST(hostile_keys_keep_the_page_valid)
{
	int mport = tu_free_port(), fd;
	size_t n = sizeof(hostile) / sizeof(hostile[0]), len;
	char *req = malloc(64 + n * 32), *r, *body;
	struct page pg;

	start(mport);
	/* Collection is on from the start: no `stats detail on` needed. */
	strcpy(req, "get plain");
	for (size_t i = 0; i < n; i++) {
		strcat(req, " ");
		strcat(req, hostile[i]);
		strcat(req, ":1");
	}
	strcat(req, "\r\n");
	fd = tu_connect(co.port);
	tu_sends(fd, req);
	r = tu_recv_until(fd, "END\r\n", 3000, NULL);
	ck_assert_msg(strcmp(r, "END\r\n") == 0, "%.200s", r);
	free(r);
	close(fd);
	free(req);

	body = http_get(metrics_connect(mport, NULL), &len);
	page_check(body, len, &pg);
	for (size_t i = 0; i < n; i++) {
		size_t plen = strlen(hostile[i]), bad;
		const struct sample *s = prefix_row(&pg, hostile[i], plen);
		bool exact = utf8_valid((const unsigned char *)hostile[i], plen, &bad) &&
		             strcmp(hostile[i], "(none)") != 0 &&
		             strcmp(hostile[i], "(other)") != 0;
		ck_assert_msg(s->v == 1, "prefix %zu: %g", i, s->v);
		/* prefix_hex only where the prefix label cannot stand alone. */
		ck_assert_msg((sample_label(s, "prefix_hex") == NULL) == exact, "prefix %zu", i);
	}
	/* The catch-all for keys without ':' is still the plain "(none)". */
	{
		bool seen = false;
		for (size_t i = 0; i < pg.n; i++) {
			const struct sample *s = &pg.s[i];
			if (strcmp(s->name, "coalesced_prefix_keys_total") == 0 && s->nl == 1 &&
			    strcmp(sample_label(s, "prefix"), "(none)") == 0) {
				ck_assert(s->v == 1);
				seen = true;
			}
		}
		ck_assert(seen);
	}
	page_free(&pg);
	free(body);
	stop();
}
END_TEST

/* Bytes no memcached client can send, but a binary-safe protocol can: the
 * rendering alone, in-process. */
START_TEST(control_bytes_keep_the_page_valid)
{
	static const struct {
		const char *p;
		size_t len;
	} keys[] = {
	    {"a\nb", 3},     {"\t", 1}, {"a\0b", 3}, {"\r", 1}, {"\x7f", 1},
	    {"\x01\x1f", 2}, {" ", 1},  {"\n", 1},   {"\\", 1},
	};
	struct server srv;
	struct page pg;
	size_t len;
	char *body;

	memset(&srv, 0, sizeof(srv));
	srv.started = time(NULL);
	ck_assert_int_eq(stats_init(&srv.stats), 0);
	for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
		char key[16];
		memcpy(key, keys[i].p, keys[i].len);
		key[keys[i].len] = ':';
		uint32_t row = detail_index(&srv.stats.detail, key, keys[i].len + 1);
		detail_row(&srv.stats.detail, row)->keys++;
	}
	body = metrics_render(&srv, &len);
	ck_assert_ptr_nonnull(body);
	page_check(body, len, &pg);
	for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
		const struct sample *s = prefix_row(&pg, keys[i].p, keys[i].len);
		ck_assert(s->v == 1);
	}
	/* A newline is escaped, not replaced: that row needs no prefix_hex. */
	ck_assert_ptr_null(sample_label(prefix_row(&pg, "\n", 1), "prefix_hex"));
	ck_assert_ptr_nonnull(sample_label(prefix_row(&pg, "\r", 1), "prefix_hex"));
	page_free(&pg);
	free(body);
	stats_free(&srv.stats);
}
END_TEST

/* ---- The unix: listener ---- */

static int unix_listen(const char *path)
{
	struct sockaddr_un un = {.sun_family = AF_UNIX};
	int fd = socket(AF_UNIX, SOCK_STREAM, 0);

	snprintf(un.sun_path, sizeof(un.sun_path), "%s", path);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(bind(fd, (struct sockaddr *)&un, sizeof(un)), 0);
	ck_assert_int_eq(listen(fd, 8), 0);
	return fd;
}

/* Start coalesced with its metrics on unix:path; it must refuse (exit 3)
 * and say why in its log. */
static void expect_refusal(const char *path, const char *why)
{
	struct proc p = {0};
	char opt[300], listen[64], *log;
	int st;

	snprintf(opt, sizeof(opt), "metrics.listen=unix:%s", path);
	snprintf(listen, sizeof(listen), "server.listen=127.0.0.1:%d", tu_free_port());
	snprintf(p.log, sizeof(p.log), "%s/refusal.log", tu_tmpdir());
	const char *args[] = {"-o", listen, "-o", "upstream.servers=127.0.0.1:1", "-o", opt, NULL};
	p.pid = tu_coalesced_spawn(args, p.log);
	st = tu_wait(p.pid, 5000);
	if (st == -1)
		tu_stop(&p);
	log = tu_read_file(p.log, NULL);
	ck_assert_msg(st != -1 && WIFEXITED(st) && WEXITSTATUS(st) == 3, "status %d; log: %.500s",
	              st, log ? log : "");
	ck_assert_msg(log && strstr(log, why), "log: %.500s", log ? log : "");
	free(log);
}

START_TEST(unix_path_regular_file_is_kept)
{
	char path[200], *data;

	snprintf(path, sizeof(path), "%s/precious.txt", tu_tmpdir());
	FILE *f = fopen(path, "w");
	ck_assert_ptr_nonnull(f);
	fputs("keep me\n", f);
	fclose(f);
	expect_refusal(path, "not a socket");
	data = tu_read_file(path, NULL);
	ck_assert_msg(data && strcmp(data, "keep me\n") == 0, "the file was touched");
	free(data);
}
END_TEST

START_TEST(unix_path_live_listener_is_kept)
{
	char path[200];
	struct stat st;
	int lfd, fd;

	snprintf(path, sizeof(path), "%s/live.sock", tu_tmpdir());
	lfd = unix_listen(path);
	expect_refusal(path, "another process is listening");
	/* The first owner's socket is still there and still answers. */
	ck_assert_int_eq(stat(path, &st), 0);
	ck_assert(S_ISSOCK(st.st_mode));
	fd = unix_connect(path);
	ck_assert_int_ge(fd, 0);
	close(fd);
	close(lfd);
	unlink(path);
}
END_TEST

START_TEST(unix_path_stale_socket_is_replaced)
{
	char path[200], opt[300], *body;
	struct stat st;
	struct page pg;
	size_t len;

	/* A socket file whose listener has gone, as a crash leaves it. */
	snprintf(path, sizeof(path), "%s/stale.sock", tu_tmpdir());
	close(unix_listen(path));
	snprintf(opt, sizeof(opt), "metrics.listen=unix:%s", path);
	const char *opts[] = {opt, NULL};
	tu_coalesced_start(&co, "127.0.0.1:1", opts);
	body = http_get(metrics_connect(0, path), &len);
	page_check(body, len, &pg);
	page_free(&pg);
	free(body);
	tu_stop_clean(&co);
	ck_assert_msg(stat(path, &st) < 0 && errno == ENOENT, "socket file left behind");
}
END_TEST

Suite *metrics_suite(void)
{
	Suite *s = suite_create("metrics");
	TCase *tc = tcase_create("metrics");

	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, strict_parser_rejects_bad_pages);
	tcase_add_test(tc, metrics_over_http);
	tcase_add_test(tc, hostile_keys_keep_the_page_valid);
	tcase_add_test(tc, control_bytes_keep_the_page_valid);
	tcase_add_test(tc, unix_path_regular_file_is_kept);
	tcase_add_test(tc, unix_path_live_listener_is_kept);
	tcase_add_test(tc, unix_path_stale_socket_is_replaced);
	suite_add_tcase(s, tc);
	return s;
}
