/*
 * conformance: the bytes a client receives through coalesced equal what a
 * real memcached sends for the same input and data (DESIGN section 3). The
 * same memcached is both the oracle and the upstream, so cas values match.
 *
 * A second test case holds the request parser itself to memcached: two
 * memcached servers with the same data; one gets the client's bytes as they
 * are, the other every command the parser returns, re-encoded from its
 * parsed parts (as a session forwards them), and the parser's own replies
 * stand in for the rest. Both must answer the same bytes.
 */
#include "proto_client.h"
#include "testutil.h"

#include <check.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static struct proc mc, co, mcb, mcc;

/* The same data in a memcached, for every test. */
static void load(int port)
{
	char big[300];
	char *mb = malloc(1048576);

	ck_assert_ptr_nonnull(mb);
	tu_mc_set(port, "a", 5, "abc", 3);
	tu_mc_set(port, "b", 0, "", 0);
	tu_mc_set(port, "crlf", 42, "x\r\nEND\r\ny", 9);
	tu_mc_set(port, "flags", 4294967295u, "max", 3);
	tu_mc_set(port, "utf8-\xc3\xa9t\xc3\xa9", 1, "summer", 6);
	tu_mc_set(port, "n", 0, "10", 2);
	memset(big, 'k', 250);
	big[250] = '\0';
	tu_mc_set(port, big, 7, "long key", 8);
	for (size_t i = 0; i < 1048576; i++)
		mb[i] = (char)('a' + i % 26);
	tu_mc_set(port, "mega", 9, mb, 1048576);
	free(mb);
}

static void setup(void)
{
	char servers[64];

	tu_memcached_start(&mc, 0);
	snprintf(servers, sizeof(servers), "127.0.0.1:%d", mc.port);
	tu_coalesced_start(&co, servers, NULL);
	load(mc.port);
}

static void teardown(void)
{
	tu_stop_clean(&co);
	tu_stop(&mc);
}

struct outcome {
	char *bytes;
	size_t len;
	bool closed;
};

/*
 * Send input on a fresh connection; read until closed or quiet. With want
 * (memcached's outcome), first wait as long as a hang guard allows for as
 * many bytes and, if memcached closed, for the close: a slow coalesced
 * (valgrind, a loaded machine) must not look like one that answers less.
 */
static struct outcome exchange(int port, const char *in, size_t len, const struct outcome *want)
{
	struct outcome o;
	int fd = tu_connect(port);

	ck_assert_int_ge(fd, 0);
	tu_send(fd, in, len);
	o.bytes = tu_recv_reply(fd, want ? want->len : 0, 250, 8000, &o.len);
	o.closed = tu_closed(fd, want && want->closed ? 8000 : 50);
	close(fd);
	return o;
}

static void printable(const char *b, size_t len, char *out, size_t cap)
{
	size_t n = 0;
	for (size_t i = 0; i < len && n + 5 < cap; i++) {
		unsigned char c = (unsigned char)b[i];
		if (c >= 0x20 && c < 0x7f && c != '\\')
			out[n++] = (char)c;
		else
			n += (size_t)snprintf(out + n, cap - n, "\\x%02x", c);
	}
	out[n] = '\0';
}

static void same(const char *in, size_t len)
{
	struct outcome want = exchange(mc.port, in, len, NULL);
	struct outcome got = exchange(co.port, in, len, &want);
	char a[600], b[600], i[300];

	printable(in, len < 100 ? len : 100, i, sizeof(i));
	/* Guard against a vacuous pass: the oracle always says something or hangs up. */
	ck_assert_msg(want.len > 0 || want.closed,
	              "input '%s': memcached neither answered nor closed", i);
	printable(want.bytes, want.len < 120 ? want.len : 120, a, sizeof(a));
	printable(got.bytes, got.len < 120 ? got.len : 120, b, sizeof(b));
	ck_assert_msg(want.len == got.len && memcmp(want.bytes, got.bytes, want.len) == 0,
	              "input '%s': memcached sent %zu bytes '%s', coalesced %zu bytes '%s'", i,
	              want.len, a, got.len, b);
	ck_assert_msg(want.closed == got.closed, "input '%s': memcached %s, coalesced %s", i,
	              want.closed ? "closed" : "kept open", got.closed ? "closed" : "kept open");
	free(want.bytes);
	free(got.bytes);
}

#define SAME(lit) same(lit, sizeof(lit) - 1)

/* After an input that ends between commands, a request whose reply nothing
 * else produces (a miss carrying an opaque) marks the end of the replies, so
 * that no test waits for quiet. */
#define SENTINEL "mg __oracle__ Oend\r\n"
#define SENTINEL_REPLY "EN Oend\r\n"
#define SENTINEL_LEN (sizeof(SENTINEL_REPLY) - 1)

/* Whether the parser ends in at a command boundary, the connection open. */
static bool ends_clean(const char *in, size_t len)
{
	struct pc_parser p;
	size_t off = 0, used;
	bool clean = true;

	pc_init(&p, 65536);
	while (off < len && clean) {
		struct pc_cmd cmd;
		enum pc_status st = pc_parse(&p, in + off, len - off, &cmd, &used);
		off += used;
		if (st == PC_NEED_MORE)
			break;
		clean = st == PC_COMMAND && cmd.type != PC_QUIT;
	}
	clean = clean && off == len && p.swallow == 0 && p.need == 0;
	pc_free(&p);
	return clean;
}

/* input then the sentinel; the replies up to the sentinel's. */
static struct outcome synced(int port, const char *in, size_t len)
{
	struct outcome o = {0};
	int fd = tu_connect(port);

	ck_assert_int_ge(fd, 0);
	tu_send(fd, in, len);
	tu_send(fd, SENTINEL, sizeof(SENTINEL) - 1);
	o.bytes = tu_recv_until(fd, SENTINEL_REPLY, 8000, &o.len);
	ck_assert_msg(o.len >= SENTINEL_LEN &&
	                  memcmp(o.bytes + o.len - SENTINEL_LEN, SENTINEL_REPLY, SENTINEL_LEN) == 0,
	              "no end of replies after %zu bytes of input", len);
	o.len -= SENTINEL_LEN;
	close(fd);
	return o;
}

/* input; then want bytes, and whatever else comes within a moment. */
static struct outcome exchange_n(int port, const char *in, size_t len, size_t want)
{
	struct outcome o;
	int fd = tu_connect(port);
	size_t more;
	char *extra;

	ck_assert_int_ge(fd, 0);
	tu_send(fd, in, len);
	o.bytes = tu_recv_n(fd, want, 8000, &o.len);
	extra = tu_recv_all(fd, 15, 500, &more);
	o.bytes = realloc(o.bytes, o.len + more + 1);
	ck_assert_ptr_nonnull(o.bytes);
	memcpy(o.bytes + o.len, extra, more);
	o.len += more;
	free(extra);
	o.closed = tu_closed(fd, 15);
	close(fd);
	return o;
}

static void compare(const char *in, size_t len, struct outcome *want, struct outcome *got,
                    const char *who)
{
	char a[600], b[600], i[300];

	printable(in, len < 100 ? len : 100, i, sizeof(i));
	printable(want->bytes, want->len < 120 ? want->len : 120, a, sizeof(a));
	printable(got->bytes, got->len < 120 ? got->len : 120, b, sizeof(b));
	ck_assert_msg(want->len == got->len && memcmp(want->bytes, got->bytes, want->len) == 0,
	              "input '%s': memcached sent %zu bytes '%s', %s %zu bytes '%s'", i, want->len,
	              a, who, got->len, b);
	ck_assert_msg(want->closed == got->closed, "input '%s': memcached %s, %s %s", i,
	              want->closed ? "closed" : "kept open", who,
	              got->closed ? "closed" : "kept open");
	free(want->bytes);
	free(got->bytes);
}

/* same(), faster for input that ends between commands. */
static void same_fast(const char *in, size_t len)
{
	struct outcome want, got;

	if (!ends_clean(in, len)) {
		same(in, len);
		return;
	}
	want = synced(mc.port, in, len);
	got = exchange_n(co.port, in, len, want.len);
	compare(in, len, &want, &got, "coalesced");
}

#define SAME_FAST(lit) same_fast(lit, sizeof(lit) - 1)

/* ------------------------------------------------------------------------ */
/* The parser against memcached                                             */

struct sbuf {
	char *p;
	size_t len, cap;
};

static void put(struct sbuf *b, const void *p, size_t n)
{
	if (b->len + n + 1 > b->cap) {
		b->cap = (b->len + n + 1) * 2;
		b->p = realloc(b->p, b->cap);
		ck_assert_ptr_nonnull(b->p);
	}
	memcpy(b->p + b->len, p, n);
	b->len += n;
	b->p[b->len] = '\0';
}

static void puts_(struct sbuf *b, const char *s)
{
	put(b, s, strlen(s));
}

static void putf(struct sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void putf(struct sbuf *b, const char *fmt, ...)
{
	char tmp[64];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
	va_end(ap);
	ck_assert(n > 0 && (size_t)n < sizeof(tmp));
	put(b, tmp, (size_t)n);
}

static void put_key(struct sbuf *b, const struct pc_key *k)
{
	put(b, " ", 1);
	put(b, k->p, k->len);
}

/*
 * A command as a session forwards it: rebuilt from its parsed parts only,
 * never from the client's bytes. Whatever the parser leaves out is lost
 * here, and memcached's answer shows it.
 */
static void encode(struct sbuf *b, const struct pc_cmd *c)
{
	const char *word = pc_type_word(c->type);

	ck_assert_ptr_nonnull(word);
	puts_(b, word);
	switch (c->type) {
	case PC_GAT:
	case PC_GATS:
		putf(b, " %" PRId32, c->exptime);
		/* fall through */
	case PC_GET:
	case PC_GETS:
		for (uint32_t i = 0; i < c->nkeys; i++)
			put_key(b, &c->keys[i]);
		break;
	case PC_SET:
	case PC_ADD:
	case PC_REPLACE:
	case PC_APPEND:
	case PC_PREPEND:
	case PC_CAS:
		put_key(b, &c->keys[0]);
		putf(b, " %" PRIu32 " %" PRId32 " %zu", c->flags, c->exptime, c->datalen);
		if (c->type == PC_CAS)
			putf(b, " %" PRIu64, c->cas);
		break;
	case PC_DELETE:
	case PC_ME:
		put_key(b, &c->keys[0]);
		if (c->key_base64)
			puts_(b, " b");
		break;
	case PC_INCR:
	case PC_DECR:
		put_key(b, &c->keys[0]);
		putf(b, " %" PRIu64, c->delta);
		break;
	case PC_TOUCH:
		put_key(b, &c->keys[0]);
		putf(b, " %" PRId32, c->exptime);
		break;
	case PC_VERBOSITY:
		putf(b, " %" PRIu32, c->level);
		break;
	case PC_FLUSH_ALL:
		if (c->has_exptime)
			putf(b, " %" PRId32, c->exptime);
		break;
	case PC_MG:
	case PC_MS:
	case PC_MD:
	case PC_MA:
		put_key(b, &c->keys[0]);
		if (c->type == PC_MS)
			putf(b, " %zu", c->datalen);
		for (uint32_t i = 0; i < c->nmflags; i++) {
			put(b, " ", 1);
			put(b, &c->mflags[i].flag, 1);
			put(b, c->mflags[i].arg, c->mflags[i].arglen);
		}
		break;
	case PC_MN:
	case PC_VERSION:
		break;
	default:
		ck_abort_msg("type %d is not forwarded", c->type);
	}
	if (c->noreply)
		puts_(b, " noreply");
	puts_(b, "\r\n");
	if (c->data) {
		put(b, c->data, c->datalen);
		puts_(b, "\r\n");
	}
}

/* One request to the second memcached, synchronously: its replies. */
static void forward(int fd, const char *req, size_t len, struct sbuf *out)
{
	size_t n;
	char *r;

	tu_send(fd, req, len);
	tu_send(fd, SENTINEL, sizeof(SENTINEL) - 1);
	r = tu_recv_until(fd, SENTINEL_REPLY, 8000, &n);
	ck_assert_msg(n >= SENTINEL_LEN &&
	                  memcmp(r + n - SENTINEL_LEN, SENTINEL_REPLY, SENTINEL_LEN) == 0,
	              "no end of replies to '%.60s'", req);
	put(out, r, n - SENTINEL_LEN);
	free(r);
}

/* The client's bytes through the parser: its replies, and memcached's to
 * what it forwards. *clean: the input ended between commands. */
static struct outcome via_parser(const char *in, size_t len, bool *clean)
{
	struct outcome o = {0};
	struct sbuf out = {0}, req = {0};
	struct pc_parser p;
	size_t off = 0, used;
	int fd = tu_connect(mcb.port);

	ck_assert_int_ge(fd, 0);
	pc_init(&p, 65536);
	put(&out, "", 0);
	while (off < len && !o.closed) {
		struct pc_cmd cmd;
		enum pc_status st = pc_parse(&p, in + off, len - off, &cmd, &used);

		off += used;
		if (st == PC_NEED_MORE)
			break;
		if (st == PC_CLOSE) {
			if (cmd.reply)
				puts_(&out, cmd.reply);
			o.closed = true;
			break;
		}
		/* memcached drops the old value of a set it cannot store. */
		if (cmd.too_large && cmd.nkeys == 1) {
			req.len = 0;
			puts_(&req, cmd.key_base64 ? "md " : "delete ");
			put(&req, cmd.keys[0].p, cmd.keys[0].len);
			puts_(&req, cmd.key_base64 ? " b q\r\n" : " noreply\r\n");
			forward(fd, req.p, req.len, &out);
		}
		switch (cmd.type) {
		case PC_REPLY:
			puts_(&out, cmd.reply);
			break;
		case PC_SILENT:
			break;
		case PC_QUIT:
			o.closed = true;
			break;
		case PC_STATS:
			ck_abort_msg("stats differ by nature: not for this test");
			break;
		default:
			req.len = 0;
			encode(&req, &cmd);
			forward(fd, req.p, req.len, &out);
			break;
		}
	}
	*clean = !o.closed && off == len && p.swallow == 0 && p.need == 0;
	pc_free(&p);
	close(fd);
	free(req.p);
	o.bytes = out.p;
	o.len = out.len;
	return o;
}

/* Digits after " la=" become 0. */
static void seconds_blur(struct outcome *o)
{
	for (size_t i = 0; i + 4 <= o->len; i++) {
		if (memcmp(o->bytes + i, " la=", 4) != 0)
			continue;
		for (i += 4; i < o->len && o->bytes[i] >= '0' && o->bytes[i] <= '9'; i++)
			o->bytes[i] = '0';
	}
}

/* The same input three ways, each on a memcached of its own loaded with the
 * same data, so that their states stay in step: raw to memcached (the
 * oracle), through the parser and its re-encoding, and through coalesced,
 * which forwards writes and meta commands. */
static void parsed_same(const char *in, size_t len)
{
	bool clean;
	struct outcome got = via_parser(in, len, &clean);
	struct outcome want = clean ? synced(mc.port, in, len) : exchange(mc.port, in, len, NULL);
	struct outcome thru = clean ? synced(co.port, in, len) : exchange(co.port, in, len, NULL);
	struct outcome want2 = want;

	want2.bytes = malloc(want.len + 1);
	ck_assert_ptr_nonnull(want2.bytes);
	memcpy(want2.bytes, want.bytes, want.len);
	compare(in, len, &want, &got, "the parser");
	/* me reports seconds since last access: a second may tick between the
	 * two servers' runs. */
	seconds_blur(&want2);
	seconds_blur(&thru);
	compare(in, len, &want2, &thru, "coalesced");
}

#define PSAME(lit) parsed_same(lit, sizeof(lit) - 1)

/* Input that memcached answers with errors only: PSAME covers it now that
 * coalesced forwards writes. */
#define BOTH(lit) PSAME(lit)

static void parser_setup(void)
{
	char servers[64];
	const char *opts[] = {"server.allow_flush=yes", NULL};

	tu_memcached_start(&mc, 0);
	tu_memcached_start(&mcb, 0);
	tu_memcached_start(&mcc, 0);
	load(mc.port);
	load(mcb.port);
	load(mcc.port);
	snprintf(servers, sizeof(servers), "127.0.0.1:%d", mcc.port);
	tu_coalesced_start(&co, servers, opts);
}

static void parser_teardown(void)
{
	tu_stop_clean(&co);
	tu_stop(&mcc);
	tu_stop(&mcb);
	tu_stop(&mc);
}

START_TEST(get_basics)
{
	SAME("get a\r\n");
	SAME("get a\n");
	SAME("gets a\r\n");
	SAME("get nosuch\r\n");
	SAME("get a b a nosuch\r\n");
	SAME("gets a b a nosuch\r\n");
	SAME("get  a   b\r\n");
	SAME("get a \r\n");
	SAME(" get a\r\n");
	SAME("bget a\r\n");
	SAME("get flags\r\n");
	SAME("get utf8-\xc3\xa9t\xc3\xa9\r\n");
}
END_TEST

START_TEST(values_with_crlf_empty_and_large)
{
	SAME("get b\r\n");
	SAME("gets b\r\n");
	SAME("get crlf\r\n");
	SAME("get crlf b crlf\r\n");
	SAME("get mega\r\n");
	SAME("gets mega a mega\r\n");
}
END_TEST

START_TEST(key_lengths)
{
	char line[800];
	char k250[251], k251[252];

	memset(k250, 'k', 250);
	k250[250] = '\0';
	memset(k251, 'k', 251);
	k251[251] = '\0';
	snprintf(line, sizeof(line), "get %s\r\n", k250);
	same(line, strlen(line));
	snprintf(line, sizeof(line), "gets %s a\r\n", k250);
	same(line, strlen(line));
	snprintf(line, sizeof(line), "get %s\r\n", k251);
	same(line, strlen(line));
	snprintf(line, sizeof(line), "get a %s b\r\n", k251);
	same(line, strlen(line));
	/* memcached keeps the first reply here too (gets flush at once). */
	snprintf(line, sizeof(line), "get a\r\nget %s\r\nget b\r\n", k251);
	same(line, strlen(line));
}
END_TEST

START_TEST(errors_and_unknown_commands)
{
	SAME("get\r\n");
	SAME("gets\r\n");
	SAME("get \r\n");
	SAME("\r\n");
	SAME("\n");
	SAME("   \r\n");
	SAME("GET a\r\n");
	SAME("get\ta\r\n");
	SAME("foo\r\n");
	SAME("foo bar baz\r\n");
	SAME("x\r\n");
	SAME("ver\0sion\r\n");
	SAME("get\0 a\r\n");
	SAME("stats nosuch\r\n");
	SAME("mz\r\n");
	SAME("foo HTTP\r\n");
	SAME("GET a HTTP/1.0 b\r\n");
}
END_TEST

START_TEST(pipelining_keeps_order)
{
	SAME("get a\r\nget b\r\nget nosuch\r\ngets a\r\n");
	SAME("get a\r\nfoo\r\nget b\r\n");
	SAME("\r\nget a\r\n");
	SAME("get a\r\n\r\n");
	SAME("get a\r\nget b\r\nget crlf\r\nget mega\r\nget a\r\n");
}
END_TEST

START_TEST(closing_rules)
{
	char buf[4000];

	SAME("quit\r\n");
	SAME("quit x\r\n");
	SAME("get a\r\nquit\r\nget b\r\n");
	SAME("GET / HTTP/1.1\r\n");
	SAME("foo HTTP/\r\n");
	SAME("get a\r\nGET / HTTP/1.1\r\n");
	/* More than 2048 bytes without a newline: closed. */
	memset(buf, 'x', 3000);
	same(buf, 3000);
	/* ...unless the newline is there. */
	memcpy(buf + 3000, "\r\n", 2);
	same(buf, 3002);
	/* ...or it is a multi-get. */
	memcpy(buf, "get ", 4);
	for (int i = 4; i < 3000; i += 2)
		memcpy(buf + i, "a ", 2);
	memcpy(buf + 3000, "\r\n", 2);
	same(buf, 3002);
}
END_TEST

START_TEST(long_multiget)
{
	size_t n = 0, cap = 30000;
	char *line = malloc(cap);

	n += (size_t)snprintf(line, cap, "get");
	for (int i = 0; i < 2000; i++)
		n += (size_t)snprintf(line + n, cap - n, " %s",
		                      i % 3 == 0   ? "a"
		                      : i % 3 == 1 ? "nosuch"
		                                   : "crlf");
	n += (size_t)snprintf(line + n, cap - n, "\r\n");
	same(line, n);
	free(line);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* Writes and meta commands, parsed (oracle: memcached)                     */

#define K10 "kkkkkkkkkk"
#define K50 K10 K10 K10 K10 K10
#define K251 K50 K50 K50 K50 K50 "k"
#define O33 "O" K10 K10 K10 "kk"
#define F17 " v c f k s O1 q T30 N30 R30 h u P L I"

START_TEST(parser_storage)
{
	PSAME("set k 0 0 3\r\nxyz\r\nget k\r\n");
	PSAME("set k 5 0 3\nxyz\r\ngets k\r\n");
	PSAME("set k 0 0 0\r\n\r\nget k\r\n");
	PSAME("set k 0 0 5\r\na\0b\nc\r\nget k\r\n");
	PSAME("set k 0 0 7\r\nget a\r\n\r\nget k\r\n");
	PSAME("set k 0 0 3 foo\r\nxyz\r\nget k\r\n");
	PSAME("set k 0 0 3 noreply\r\nxyz\r\nget k\r\n");
	PSAME("add a 0 0 1\r\nx\r\nadd new 3 0 1\r\ny\r\nget a new\r\n");
	PSAME("add a 0 0 1 noreply\r\nx\r\nget a\r\n");
	PSAME("replace a 1 0 1\r\nx\r\nreplace nope 0 0 1\r\nx\r\nget a nope\r\n");
	PSAME("append a 0 0 2\r\nde\r\nprepend a 0 0 2\r\nzz\r\nget a\r\n");
	PSAME("append nope 0 0 1\r\nx\r\nprepend nope 0 0 1 noreply\r\nx\r\nget nope\r\n");
	PSAME("gets a\r\ncas a 0 0 1 1\r\nx\r\ncas nope 0 0 1 1\r\nx\r\nget a\r\n");
	PSAME("cas a 0 0 1 18446744073709551615 noreply\r\nx\r\nget a\r\n");
	PSAME("set " K50 K50 K50 K50 K50 " 0 0 1\r\nx\r\nget " K50 K50 K50 K50 K50 "\r\n");
	PSAME("set \xc3\xa9t\xc3\xa9 0 0 1\r\nx\r\nget \xc3\xa9t\xc3\xa9\r\n");
	PSAME("set k 0 0 1\0junk\r\nx\r\nget k\r\n");
	PSAME("set k 0 0 1 noreply\0junk\r\nx\r\nget k\r\n");
	/* Numbers as memcached reads them. */
	PSAME("set k 0 0 +1\r\nx\r\nset j 0 0 01\r\ny\r\nget k j\r\n");
	PSAME("set k 0 0 1 \r\nx\r\nset j 0 0  1\r\ny\r\nget k j\r\n");
	PSAME("set k 0 0 1\t\r\nx\r\nset j 0 0 1\r\r\ny\r\nget k j\r\n");
	PSAME("set k 0 0 -0\r\n\r\nget k\r\n");
	PSAME("set k 0 0 4294967297\r\nx\r\nget k\r\n");
	PSAME("set k 4294967296 0 1\r\nx\r\nset j 4294967295 0 1\r\ny\r\nget k j\r\n");
	PSAME("set k 18446744073709551615 0 1\r\nx\r\nset j -0 0 1\r\ny\r\nget k j\r\n");
	PSAME("set k +5 0 1\r\nx\r\nget k\r\n");
	PSAME("set k 0 -1 1\r\nx\r\nset j 0 2147483648 1\r\ny\r\nget k j\r\n");
	PSAME("set k 0 99999999999 1\r\nx\r\nget k\r\n");
	PSAME("gets a\r\ncas a 0 0 1 007\r\nx\r\n");
	PSAME("set k 0 0 00000000000000000000000000000000000000000000000000000000000000000001"
	      "\r\nx\r\nget k\r\n");
}
END_TEST

START_TEST(parser_storage_errors)
{
	BOTH("set\r\n");
	BOTH("set k\r\n");
	BOTH("set k 0 0\r\nxyz\r\n");
	BOTH("set k 0 0 3 noreply extra\r\nxyz\r\n");
	BOTH("set k 0 0 1 2 3\r\nx\r\n");
	BOTH("cas k 0 0 1\r\nx\r\n");
	BOTH("cas k 0 0 1 1 noreply x\r\nx\r\n");
	BOTH("set k 0 0\0 1\r\nx\r\n");
	BOTH("set k 0 0 -1\r\nx\r\n");
	BOTH("set k 0 0 abc\r\nxyz\r\n");
	BOTH("set k 0 0 1x\r\nx\r\n");
	BOTH("set k 0 0 0x1\r\nx\r\n");
	BOTH("set k abc 0 1\r\nx\r\n");
	BOTH("set k 1.5 0 1\r\nx\r\n");
	BOTH("set k 0 abc 1\r\nx\r\n");
	BOTH("set k 0 1e3 1\r\nx\r\n");
	BOTH("set k -1 0 1\r\nx\r\n");
	BOTH("set k 0 99999999999999999999 1\r\nx\r\n");
	BOTH("set " K251 " 0 0 1\r\nx\r\n");
	BOTH("cas k 0 0 1 x\r\nx\r\n");
	BOTH("cas k 0 0 1 -1\r\nx\r\n");
	BOTH("cas k 0 0 1 18446744073709551616\r\nx\r\n");
	BOTH("set k 0 0 2147483647\r\n");
	BOTH("set k 0 0 2147483646\r\n");
	BOTH("set k 0 0 99999999999999999999\r\nx\r\n");
	BOTH("set k 0 0 abc noreply\r\nxyz\r\n");
	BOTH("set k 0 0 -1 noreply\r\nget a\r\n");
	BOTH("set k 0 0 noreply\r\nx\r\n");
	BOTH("cas k 0 0 1 noreply\r\nx\r\n");
	BOTH("set " K251 " 0 0 1 noreply\r\nx\r\n");
	/* Bad data blocks. */
	BOTH("set k 0 0 3\r\nxyzW\r\n");
	BOTH("set k 0 0 3\r\nabcde\r\n");
	BOTH("set k 0 0 3\r\na\r\nb\r\n");
	BOTH("set k 0 0 3\r\nget a\r\n");
	BOTH("set k 0 0 1\r\nxy\r\n");
	BOTH("set k 0 0 1\r\nxyzget a\r\n");
	BOTH("set k 0 0 1\r\nx\n\r\n");
	BOTH("set k 0 0 3 noreply\r\nxyzW\r\n");
	BOTH("cas k 0 0 1 1 noreply\r\nxy\r\n");
	BOTH("ms k 2\r\nabc\r\n");
	BOTH("ms k 2 q\r\nabc\r\n");
	BOTH("add k 0 0 2 noreply\r\nabcget a\r\n");
}
END_TEST

/* A value over the limit: memcached's error, its block discarded, and the
 * key's old value gone. 3 MiB: over memcached's own limit in these tests
 * (-I 2m) as over coalesced's. */
START_TEST(parser_storage_too_large)
{
	static const char *const lines[] = {
	    "set a 0 0 %zu\r\n",    "set a 0 0 %zu noreply\r\n", "add zz 0 0 %zu\r\n",
	    "cas zz 0 0 %zu 1\r\n", "ms a %zu T0\r\n",           "ms a %zu q\r\n",
	    "ms YQ== %zu b\r\n",    "set zz 0 0 %zu\r\n",
	};
	/* Keys that do not exist, whole input against coalesced's replies. */
	static const char *const missing[] = {
	    "set zz 0 0 %zu\r\n",
	    "set zz 0 0 %zu noreply\r\n",
	    "ms zz %zu\r\n",
	};
	size_t vlen = 3 * 1048576;
	char *in = malloc(vlen + 200);

	ck_assert_ptr_nonnull(in);
	for (size_t i = 0; i < sizeof(lines) / sizeof(lines[0]); i++) {
		size_t n = (size_t)snprintf(in, 200, lines[i], vlen);
		memset(in + n, 'v', vlen);
		n += vlen;
		n += (size_t)sprintf(in + n, "\r\nget a\r\nget zz\r\n");
		parsed_same(in, n);
		/* a again, for the next line. */
		tu_mc_set(mc.port, "a", 5, "abc", 3);
		tu_mc_set(mcb.port, "a", 5, "abc", 3);
		tu_mc_set(mcc.port, "a", 5, "abc", 3);
	}
	for (size_t i = 0; i < sizeof(missing) / sizeof(missing[0]); i++) {
		size_t n = (size_t)snprintf(in, 200, missing[i], vlen);
		memset(in + n, 'v', vlen);
		n += vlen;
		n += (size_t)sprintf(in + n, "\r\nget a\r\n");
		same_fast(in, n);
	}
	free(in);
}
END_TEST

START_TEST(parser_key_commands)
{
	PSAME("delete a\r\nget a\r\ndelete a\r\n");
	PSAME("delete a 0\r\ndelete b noreply\r\ndelete crlf 0 noreply\r\nget a b crlf\r\n");
	PSAME("delete noreply\r\n");
	PSAME("incr n 5\r\ndecr n 100\r\nincr n 18446744073709551615\r\nget n\r\n");
	PSAME("incr n 1 noreply\r\nincr n 1 foo\r\ndecr n +3\r\nincr n 007\r\nincr n -0\r\nget "
	      "n\r\n");
	PSAME("incr nope 1\r\ndecr nope 1\r\nincr a 1\r\n");
	PSAME("touch a 100\r\ntouch a 0 noreply\r\ntouch nope 1\r\ntouch a 100 x\r\nget a\r\n");
	PSAME("touch a 99999999999\r\nget a\r\n");
	PSAME("gat 100 a b nope a\r\ngats 0 a crlf\r\n");
	PSAME("gat 0 a noreply\r\ngats  5   a  \r\n");
	PSAME("gat 0\r\ngats 0 \r\n");
	PSAME("gats 0 mega a\r\n");
	PSAME("verbosity 1\r\nverbosity 0 noreply\r\nverbosity 1 2\r\nverbosity 4294967296\r\n");
	PSAME("flush_all 100\r\nget a\r\nflush_all 100 noreply\r\nget a\r\n");
	PSAME("flush_all\r\nget a\r\n");
	PSAME("flush_all noreply\r\nget b\r\n");
	PSAME("flush_all -5\r\nget crlf\r\n");
	PSAME("flush_all 0 9\r\nget n\r\n");
}
END_TEST

START_TEST(parser_key_command_errors)
{
	BOTH("delete\r\n");
	BOTH("delete k 0 noreply x\r\n");
	BOTH("delete k 1\r\n");
	BOTH("delete k 00\r\n");
	BOTH("delete k x\r\n");
	BOTH("delete k 0 x\r\n");
	BOTH("delete k noreply 0\r\n");
	BOTH("delete k 1 noreply\r\nget a\r\n");
	BOTH("delete " K251 "\r\n");
	BOTH("delete " K251 " noreply\r\nget a\r\n");
	BOTH("incr k\r\n");
	BOTH("incr k 1 2 3\r\n");
	BOTH("decr\r\n");
	BOTH("incr k x\r\n");
	BOTH("incr k -1\r\n");
	BOTH("incr k 1.5\r\n");
	BOTH("decr k 18446744073709551616\r\n");
	BOTH("incr k x noreply\r\nget a\r\n");
	BOTH("incr k noreply\r\nget a\r\n");
	BOTH("incr " K251 " 1\r\n");
	BOTH("incr " K251 " x\r\n");
	BOTH("incr " K251 " 1 noreply\r\nget a\r\n");
	BOTH("touch k\r\n");
	BOTH("touch k 1 2 3\r\n");
	BOTH("touch k x\r\n");
	BOTH("touch k 1.5\r\n");
	BOTH("touch k 99999999999999999999\r\n");
	BOTH("touch k noreply\r\nget a\r\n");
	BOTH("touch k x noreply\r\nget a\r\n");
	BOTH("touch " K251 " 1\r\n");
	BOTH("gat 0\r\n");
	BOTH("gats 0 \r\n");
	BOTH("gat\r\n");
	BOTH("gats\r\n");
	BOTH("gat x a\r\n");
	BOTH("gat x\r\n");
	BOTH("gats 1.5 a\r\n");
	BOTH("gat 0 " K251 "\r\n");
	BOTH("gat 0 a " K251 " b\r\n");
	BOTH("verbosity\r\n");
	BOTH("verbosity 1 2 3\r\n");
	BOTH("verbosity x\r\n");
	BOTH("verbosity -1\r\n");
	BOTH("verbosity noreply\r\nget a\r\n");
	BOTH("verbosity x noreply\r\nget a\r\n");
	BOTH("flush_all 1 2 3\r\n");
	BOTH("flush_all x\r\n");
	BOTH("flush_all noreply 5\r\n");
	BOTH("flush_all x noreply\r\nget a\r\n");
	BOTH("flush_all noreply noreply\r\nget a\r\n");
}
END_TEST

START_TEST(parser_meta)
{
	PSAME("mg a\r\nmg a v\r\nmg nope v\r\nmg nope v q\r\nmn\r\n");
	PSAME("mg a v f c s k O123 q h u\r\nmg a h\r\n");
	PSAME("mg nope k O9 q\r\nmg nope k O9\r\n");
	PSAME("mg a qfoo MX F1\r\nmg a C5 D1 J2 I\r\n");
	PSAME("mg a" F17 "\r\n");
	PSAME("mg a k\0junk\r\n");
	PSAME("mg a O" K10 K10 K10 "k\r\n");
	PSAME("ms YWJj 2 b\r\nhi\r\nmg YWJj b v k\r\nmg YQ== b v\r\n");
	PSAME("ms k 2\r\nab\r\nmg k v\r\nms k 2 T0 F5 c q k O9 MS\r\ncd\r\nmg k v f\r\n");
	PSAME("ms k 2 ME\r\nab\r\nms new 2 ME c\r\nab\r\nmg new v\r\n");
	PSAME("ms a 2 MA\r\nde\r\nms a 2 MP\r\nzz\r\nms nope 1 MR\r\nx\r\nmg a v\r\n");
	PSAME("ms k 0\r\n\r\nmg k v s\r\nms k +2 v\r\nab\r\nmg k v\r\n");
	PSAME("mg a c\r\nms a 1 C1\r\nx\r\nms a 1 C999 I\r\ny\r\n");
	PSAME("ms k 2 q\r\nab\r\nms k 2 q MX\r\nab\r\nmn\r\n");
	PSAME("ms k 2" F17 "\r\nab\r\nmg k v\r\n");
	PSAME("md a\r\nmd a\r\nmd b q\r\nmd nope q\r\nmn\r\nmg b v\r\n");
	PSAME("md a q C5 O1 k\r\nmd a C1 I T30\r\nmd YQ== b\r\nmg a v\r\n");
	PSAME("ma n\r\nma n D5 v\r\nma n MD D3 v c\r\nma n M+ q\r\nma n M- v\r\nmn\r\n");
	PSAME("ma nope\r\nma nope N0 J10 v\r\nma nope2 q\r\nma a\r\n");
	PSAME("ma n D18446744073709551615 v\r\nma n O5 k v\r\n");
	PSAME("mn\r\nmn foo bar\r\nmn noreply\r\n");
	PSAME("me nope\r\nme nope zzz q q\r\nme YWJj b\r\nme a bx\r\n");
	PSAME("mg a v\0 q\r\n");
}
END_TEST

START_TEST(parser_meta_errors)
{
	BOTH("mg\r\n");
	BOTH("mg " K251 " v\r\n");
	BOTH("mg " K251 " zz\r\n");
	BOTH("mg a" F17 " b\r\n");
	BOTH("mg a E5\r\n");
	BOTH("mg a noreply\r\n");
	BOTH("mg a v v\r\n");
	BOTH("mg a v vx\r\n");
	BOTH("mg a \x80\r\n");
	BOTH("mg a \x7f\r\n");
	BOTH("mg a Tx\r\n");
	BOTH("mg a T\r\n");
	BOTH("mg a N\r\n");
	BOTH("mg a R1.5\r\n");
	BOTH("mg a Cx\r\n");
	BOTH("mg a C-1\r\n");
	BOTH("mg a Fx\r\n");
	BOTH("mg a F-1\r\n");
	BOTH("mg a Tx Fx\r\n");
	BOTH("mg a Fx Tx\r\n");
	BOTH("mg a M\r\n");
	BOTH("mg a MSS\r\n");
	BOTH("mg a Jx\r\n");
	BOTH("mg a Dx\r\n");
	BOTH("mg a Tx Dx\r\n");
	BOTH("mg a Tx zz\r\n");
	BOTH("mg a Tx v v\r\n");
	BOTH("mg a b\r\n");
	BOTH("mg ==== b\r\n");
	BOTH("mg YQ= b\r\n");
	BOTH("mg a b Tx\r\n");
	BOTH("mg a " O33 "\r\n");
	BOTH("mg a qfoo MX Fx1\r\n");
	BOTH("ms\r\n");
	BOTH("ms k\r\n");
	BOTH("ms k\r\nab\r\n");
	BOTH("ms k x\r\n");
	BOTH("ms k -1\r\nab\r\n");
	BOTH("ms k 2147483646\r\n");
	BOTH("ms " K251 " 2\r\nab\r\n");
	BOTH("ms " K251 "\r\n");
	BOTH("ms k 2" F17 " b\r\nab\r\n");
	BOTH("ms k 2 noreply\r\nab\r\nget a\r\n");
	BOTH("ms k 2 v v\r\nab\r\nget a\r\n");
	BOTH("ms k 2 T\r\nabcdget a\r\n");
	BOTH("ms k 2 b\r\nab\r\nget a\r\n");
	BOTH("ms k 2 Fx\r\nab\r\nget a\r\n");
	BOTH("ms k 2 MX\r\nab\r\nget a\r\n");
	BOTH("ms k 2 MI\r\nab\r\nget a\r\n");
	BOTH("ms k 2 " O33 "\r\nab\r\nget a\r\n");
	BOTH("ms k 2 " O33 " MX\r\nab\r\nget a\r\n");
	BOTH("ms k 2 q zz\r\nab\r\nget a\r\n");
	BOTH("md\r\n");
	BOTH("md " K251 "\r\n");
	BOTH("md k zz\r\n");
	BOTH("md k q q\r\n");
	BOTH("md k Tx\r\n");
	BOTH("md k b\r\n");
	BOTH("md k noreply\r\n");
	BOTH("md k " O33 "\r\n");
	BOTH("md k" F17 " b\r\n");
	BOTH("ma\r\n");
	BOTH("ma " K251 "\r\n");
	BOTH("ma k MX\r\n");
	BOTH("ma k MS\r\n");
	BOTH("ma k Dx\r\n");
	BOTH("ma k D-1\r\n");
	BOTH("ma k noreply\r\n");
	BOTH("ma k " O33 " MX\r\n");
	BOTH("ma k" F17 " b\r\n");
	BOTH("me\r\n");
	BOTH("me " K251 "\r\n");
	BOTH("me a b\r\n");
	BOTH("mz\r\n");
	BOTH("m1 a\r\n");
}
END_TEST

Suite *conformance_suite(void)
{
	Suite *s = suite_create("conformance");
	TCase *tc = tcase_create("against memcached");
	TCase *parser = tcase_create("parser against memcached");

	tcase_set_timeout(tc, 120);
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, get_basics);
	tcase_add_test(tc, values_with_crlf_empty_and_large);
	tcase_add_test(tc, key_lengths);
	tcase_add_test(tc, errors_and_unknown_commands);
	tcase_add_test(tc, pipelining_keeps_order);
	tcase_add_test(tc, closing_rules);
	tcase_add_test(tc, long_multiget);
	suite_add_tcase(s, tc);

	tcase_set_timeout(parser, 120);
	tcase_add_checked_fixture(parser, parser_setup, parser_teardown);
	tcase_add_test(parser, parser_storage);
	tcase_add_test(parser, parser_storage_errors);
	tcase_add_test(parser, parser_storage_too_large);
	tcase_add_test(parser, parser_key_commands);
	tcase_add_test(parser, parser_key_command_errors);
	tcase_add_test(parser, parser_meta);
	tcase_add_test(parser, parser_meta_errors);
	suite_add_tcase(s, parser);
	return s;
}
