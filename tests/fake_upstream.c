/*
 * fake_upstream: a scriptable fake memcached upstream for coalesced's integration tests.
 *
 *   fake_upstream [-p PORT] [-r RECORD_FILE]
 *
 * Listens on 127.0.0.1:PORT (PORT 0 or no -p: an ephemeral port) and, once listening, prints
 * "PORT <n>\n" on stdout so the test can learn the port. SIGTERM/SIGINT exit with status 0.
 *
 * Values are computed from the key, so tests can check replies without a store:
 *   miss*            a miss (no VALUE block)
 *   big<N>_*         N bytes, byte i = 'a' + i % 26 (N up to 256 MiB, else treated as plain)
 *   crlf_*           the 9 bytes "a\r\nEND\r\nb" (protocol text inside data)
 *   anything else    "v:" followed by the key
 * Flags are always 0; the cas of a key is its 64-bit FNV-1a hash, in decimal.
 *
 * Commands: "gets k1 .. kN" (VALUE lines with cas), "get k1 .. kN" (without cas; either with
 * no key -> "ERROR"), "version" (-> "VERSION fake"); anything else -> "ERROR".
 *
 * Every complete line other than a control line is appended to RECORD_FILE (opened for
 * appending, not truncated) exactly as received, minus its "\n" (so a "\r" is kept), and
 * flushed at once. Lines up to 1 MiB are accepted; a longer line closes the connection. Once
 * a request is to be answered by closing (close, close_mid, fail_next), later lines on that
 * connection are ignored and not recorded.
 *
 * Control lines (never recorded; a test would normally use its own connection for them):
 *   fake_mode <mode> [args]  set how ALL later get/gets requests on ALL connections are
 *                            answered; replies "OK" (or "CLIENT_ERROR ..." if malformed)
 *   fake_stats               "STAT requests <n>", "STAT keys <n>", "END": get/gets lines and
 *                            keys in them received since start or the last fake_reset
 *   fake_reset               zero those counters (the mode is left alone); replies "OK"
 *   fake_restart <ms>        as if the server restarted: close every other connection (FIN,
 *                            replies still queued are dropped), refuse connections for <ms> ms,
 *                            then listen again on the same port; replies "OK"
 *
 * Modes (the mode in force when a request is read decides how it is answered):
 *   normal                   answer as described above
 *   delay <ms>               answer each request <ms> ms after it was read
 *   serial <ms>              one request at a time across the whole server, <ms> ms each
 *   hang                     never answer (later replies on that connection are stuck too)
 *   close                    close the connection, sending nothing for the request
 *   close_mid                send the first VALUE line and half its data, then close (with
 *                            no hit at all: send "EN", then close)
 *   garbage                  "HELLO GARBAGE"
 *   server_error <text>      "SERVER_ERROR <text>"
 *   client_error <text>      "CLIENT_ERROR <text>"
 *   error                    "ERROR"
 *   partial                  the normal reply without its final "END\r\n"
 *   reverse                  VALUE blocks in reverse key order
 *   unknown_key              a VALUE block for the unrequested key "zzunknown" first
 *   bad_length               every VALUE line announces one byte more than the data sent
 *   fail_next <n>            the next n requests are answered by closing; then normal
 *   error_next <n>           the next n requests get "SERVER_ERROR busy"; then normal
 *
 * Replies on one connection always leave in request order, as memcached's do. The server is a
 * single poll() loop: sockets are non-blocking, output is queued per connection and written
 * on POLLOUT, and delays are deadlines in that loop, never sleeps. Like memcached, it stops
 * reading from a peer that has 4 MiB of replies it has not read yet.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_LINE (1024 * 1024)       /* longest accepted line, without its "\r\n" */
#define MAX_BIG (256u * 1024 * 1024) /* largest big<N>_ value */
#define READ_CHUNK (64 * 1024)       /* bytes asked of each read() */
#define READ_BUDGET (1024 * 1024)    /* bytes read per connection per loop, for fairness */
#define HIGH_WATER (4 * 1024 * 1024) /* stop taking requests while this much is unsent */
#define NEVER INT64_MAX              /* deadline of a reply that is never sent (hang) */

/* A byte buffer; the unconsumed bytes are data[off, len). */
struct buf {
	char *data;
	size_t off;
	size_t len;
	size_t cap;
};

/* A reply that may not be sent yet: it leaves once due and once all replies before it left. */
struct pending {
	struct pending *next;
	int64_t due;      /* monotonic us */
	bool close_after; /* close the connection once this reply is written */
	struct buf body;
};

struct conn {
	int fd;
	struct buf in;
	size_t scanned; /* bytes at the start of in known to hold no '\n' */
	struct buf out;
	struct pending *head, *tail;
	size_t backlog;    /* bytes of replies not written yet, queued or in out */
	bool eof;          /* the peer will send no more */
	bool stop_reading; /* a close is queued: ignore whatever else arrives */
	bool closing;      /* close once out is written */
	bool want_write;   /* the last write would have blocked: wait for POLLOUT */
	bool dead;         /* destroy at the next sweep */
};

enum mode {
	M_NORMAL,
	M_DELAY,
	M_SERIAL,
	M_HANG,
	M_CLOSE,
	M_CLOSE_MID,
	M_GARBAGE,
	M_SERVER_ERROR,
	M_CLIENT_ERROR,
	M_ERROR,
	M_PARTIAL,
	M_REVERSE,
	M_UNKNOWN_KEY,
	M_BAD_LENGTH,
	M_FAIL_NEXT,
	M_ERROR_NEXT,
	M_CHAOS,
};

enum mode_arg { ARG_NONE, ARG_NUM, ARG_TEXT };

static const struct {
	const char *name;
	enum mode mode;
	enum mode_arg arg;
} mode_table[] = {
    {"normal", M_NORMAL, ARG_NONE},
    {"delay", M_DELAY, ARG_NUM},
    {"serial", M_SERIAL, ARG_NUM},
    {"hang", M_HANG, ARG_NONE},
    {"close", M_CLOSE, ARG_NONE},
    {"close_mid", M_CLOSE_MID, ARG_NONE},
    {"garbage", M_GARBAGE, ARG_NONE},
    {"server_error", M_SERVER_ERROR, ARG_TEXT},
    {"client_error", M_CLIENT_ERROR, ARG_TEXT},
    {"error", M_ERROR, ARG_NONE},
    {"partial", M_PARTIAL, ARG_NONE},
    {"reverse", M_REVERSE, ARG_NONE},
    {"unknown_key", M_UNKNOWN_KEY, ARG_NONE},
    {"bad_length", M_BAD_LENGTH, ARG_NONE},
    {"fail_next", M_FAIL_NEXT, ARG_NUM},
    {"error_next", M_ERROR_NEXT, ARG_NUM},
    /* chaos <pct>: that share of requests meets a fault picked at random
     * (for soak runs); the rest are answered normally. */
    {"chaos", M_CHAOS, ARG_NUM},
};

/* Options of build_reply(). */
enum {
	R_CAS = 1 << 0,        /* gets: VALUE lines carry the cas */
	R_REVERSE = 1 << 1,    /* blocks in reverse key order */
	R_UNKNOWN = 1 << 2,    /* an unrequested block first */
	R_BAD_LENGTH = 1 << 3, /* announce one byte more than sent */
	R_NO_END = 1 << 4,     /* leave out the final END */
};

struct tok {
	const char *p;
	size_t n;
};

/* Server-wide state. */
static struct {
	int64_t now; /* monotonic us, read once per loop turn */
	enum mode mode;
	uint64_t mode_num; /* ms for delay/serial, count for fail_next/error_next */
	char *mode_text;   /* text for server_error/client_error */
	size_t mode_text_len;
	int64_t serial_free; /* when the serial "database" is next free */
	uint64_t rng;        /* chaos: xorshift state, fixed seed */
	uint64_t requests, keys;
	FILE *record;
	bool record_failed;
	struct conn **conns;
	size_t nconns, capconns;
	struct tok *toks;
	size_t captoks;
	int lfd;             /* the listening socket; -1 while "restarting" */
	unsigned port;       /* its port, to listen again on */
	int64_t relisten_at; /* when to listen again */
} g;

static void die(const char *fmt, ...)
{
	va_list ap;

	fputs("fake_upstream: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(1);
}

static void *xrealloc(void *p, size_t n)
{
	p = realloc(p, n ? n : 1);
	if (!p)
		die("out of memory (%zu bytes)", n);
	return p;
}

/* Microseconds: with whole milliseconds a "delay 100" reply could leave after 99.1 ms. */
static int64_t now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* ---- buffers ---- */

static size_t buf_used(const struct buf *b)
{
	return b->len - b->off;
}

/* Make room for n more bytes at the end and return where they go. */
static char *buf_reserve(struct buf *b, size_t n)
{
	if (b->cap - b->len >= n)
		return b->data + b->len;
	/* Slide the live bytes down only when that is cheap next to the space it frees. */
	if (b->off > 0 && b->off >= buf_used(b)) {
		memmove(b->data, b->data + b->off, buf_used(b));
		b->len -= b->off;
		b->off = 0;
	}
	if (b->cap - b->len < n) {
		size_t cap = b->cap ? b->cap : 4096;

		while (cap - b->len < n)
			cap *= 2;
		b->data = xrealloc(b->data, cap);
		b->cap = cap;
	}
	return b->data + b->len;
}

static void buf_append(struct buf *b, const void *p, size_t n)
{
	if (n == 0) /* p may be NULL then */
		return;
	memcpy(buf_reserve(b, n), p, n);
	b->len += n;
}

static void buf_puts(struct buf *b, const char *s)
{
	buf_append(b, s, strlen(s));
}

static void buf_printf(struct buf *b, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(buf_reserve(b, 64), 64, fmt, ap);
	va_end(ap);
	if (n >= 64) {
		va_start(ap, fmt);
		vsnprintf(buf_reserve(b, (size_t)n + 1), (size_t)n + 1, fmt, ap);
		va_end(ap);
	}
	if (n > 0)
		b->len += (size_t)n;
}

static void buf_consume(struct buf *b, size_t n)
{
	b->off += n;
	if (b->off == b->len)
		b->off = b->len = 0;
}

static void buf_free(struct buf *b)
{
	free(b->data);
	memset(b, 0, sizeof(*b));
}

/* ---- values ---- */

enum vkind { V_MISS, V_PLAIN, V_BIG, V_CRLF };

static const char crlf_value[] = "a\r\nEND\r\nb";

static bool has_prefix(const char *p, size_t n, const char *prefix)
{
	size_t k = strlen(prefix);

	return n >= k && memcmp(p, prefix, k) == 0;
}

/* What kind of value key has, and its length. */
static enum vkind classify(const char *key, size_t klen, size_t *vlen)
{
	if (has_prefix(key, klen, "miss"))
		return V_MISS;
	if (has_prefix(key, klen, "big") && klen > 3 && key[3] >= '0' && key[3] <= '9') {
		size_t i = 3, n = 0;

		while (i < klen && key[i] >= '0' && key[i] <= '9' && n <= MAX_BIG)
			n = n * 10 + (size_t)(key[i++] - '0');
		if (i < klen && key[i] == '_' && n <= MAX_BIG) {
			*vlen = n;
			return V_BIG;
		}
	}
	if (has_prefix(key, klen, "crlf_")) {
		*vlen = sizeof(crlf_value) - 1;
		return V_CRLF;
	}
	*vlen = 2 + klen;
	return V_PLAIN;
}

/* Write the first n bytes of the value of key to dst. */
static void fill_value(char *dst, enum vkind kind, const char *key, size_t klen, size_t n)
{
	size_t i;

	switch (kind) {
	case V_BIG:
		for (i = 0; i < n; i += 26)
			memcpy(dst + i, "abcdefghijklmnopqrstuvwxyz", n - i < 26 ? n - i : 26);
		break;
	case V_CRLF:
		memcpy(dst, crlf_value, n);
		break;
	case V_PLAIN:
		memcpy(dst, "v:", n < 2 ? n : 2);
		if (n > 2)
			memcpy(dst + 2, key, n - 2 < klen ? n - 2 : klen);
		break;
	case V_MISS:
		break;
	}
}

static uint64_t fnv1a64(const char *p, size_t n)
{
	uint64_t h = 14695981039346656037ull;

	while (n--) {
		h ^= (unsigned char)*p++;
		h *= 1099511628211ull;
	}
	return h;
}

/*
 * Append key's VALUE block to b. With half set, stop after the first half of the data (for
 * close_mid). Returns false, appending nothing, on a miss.
 */
static bool append_block(struct buf *b, const char *key, size_t klen, unsigned opts, bool half)
{
	size_t vlen, send;
	enum vkind kind = classify(key, klen, &vlen);

	if (kind == V_MISS)
		return false;
	buf_puts(b, "VALUE ");
	buf_append(b, key, klen);
	buf_printf(b, " 0 %zu", vlen + ((opts & R_BAD_LENGTH) ? 1 : 0));
	if (opts & R_CAS)
		buf_printf(b, " %" PRIu64, fnv1a64(key, klen));
	buf_puts(b, "\r\n");
	send = half ? vlen / 2 : vlen;
	fill_value(buf_reserve(b, send), kind, key, klen, send);
	b->len += send;
	if (!half)
		buf_puts(b, "\r\n");
	return true;
}

static void build_reply(struct buf *b, const struct tok *keys, size_t nkeys, unsigned opts)
{
	size_t i;

	if (opts & R_UNKNOWN)
		append_block(b, "zzunknown", 9, opts, false);
	for (i = 0; i < nkeys; i++) {
		const struct tok *k = &keys[(opts & R_REVERSE) ? nkeys - 1 - i : i];

		append_block(b, k->p, k->n, opts, false);
	}
	if (!(opts & R_NO_END))
		buf_puts(b, "END\r\n");
}

/* ---- connections ---- */

/* Queue a reply on c, to be sent at due after everything queued before it. */
static struct pending *reply_new(struct conn *c, int64_t due)
{
	struct pending *p = xrealloc(NULL, sizeof(*p));

	memset(p, 0, sizeof(*p));
	p->due = due;
	if (c->tail)
		c->tail->next = p;
	else
		c->head = p;
	c->tail = p;
	return p;
}

static void reply_now(struct conn *c, const char *s)
{
	buf_puts(&reply_new(c, g.now)->body, s);
}

/* The reply closes the connection: whatever the peer sends after the request is ignored. */
static void reply_close(struct conn *c, struct pending *p)
{
	p->close_after = true;
	c->stop_reading = true;
}

static void record_line(const char *line, size_t n)
{
	if (!g.record)
		return;
	if (fwrite(line, 1, n, g.record) != n || fputc('\n', g.record) == EOF ||
	    fflush(g.record) != 0) {
		if (!g.record_failed)
			fprintf(stderr, "fake_upstream: writing the record file: %s\n",
			        strerror(errno));
		g.record_failed = true;
	}
}

/* Split line into space-separated tokens, in g.toks; returns their number. */
static size_t tokenize(const char *line, size_t n)
{
	size_t i = 0, ntoks = 0;

	while (i < n) {
		size_t start;

		while (i < n && line[i] == ' ')
			i++;
		if (i == n)
			break;
		start = i;
		while (i < n && line[i] != ' ')
			i++;
		if (ntoks == g.captoks) {
			g.captoks = g.captoks ? g.captoks * 2 : 64;
			g.toks = xrealloc(g.toks, g.captoks * sizeof(*g.toks));
		}
		g.toks[ntoks].p = line + start;
		g.toks[ntoks].n = i - start;
		ntoks++;
	}
	return ntoks;
}

static bool tok_is(const struct tok *t, const char *s)
{
	return t->n == strlen(s) && memcmp(t->p, s, t->n) == 0;
}

static bool parse_num(const struct tok *t, uint64_t *v)
{
	size_t i;

	*v = 0;
	if (t->n == 0 || t->n > 9) /* keeps deadlines far from overflow */
		return false;
	for (i = 0; i < t->n; i++) {
		if (t->p[i] < '0' || t->p[i] > '9')
			return false;
		*v = *v * 10 + (uint64_t)(t->p[i] - '0');
	}
	return true;
}

/* "fake_mode <mode> [args]"; line excludes the "\r\n". */
static void handle_fake_mode(struct conn *c, const char *line, size_t n, size_t ntoks)
{
	const struct tok *t = g.toks;
	size_t i;
	uint64_t num = 0;

	for (i = 0; ntoks >= 2 && i < sizeof(mode_table) / sizeof(mode_table[0]); i++)
		if (tok_is(&t[1], mode_table[i].name))
			break;
	if (ntoks < 2 || i == sizeof(mode_table) / sizeof(mode_table[0])) {
		reply_now(c, "CLIENT_ERROR unknown fake_mode\r\n");
		return;
	}
	switch (mode_table[i].arg) {
	case ARG_NONE:
		if (ntoks != 2) {
			reply_now(c, "CLIENT_ERROR this fake_mode takes no argument\r\n");
			return;
		}
		break;
	case ARG_NUM:
		if (ntoks != 3 || !parse_num(&t[2], &num)) {
			reply_now(c, "CLIENT_ERROR this fake_mode takes one number\r\n");
			return;
		}
		break;
	case ARG_TEXT: {
		/* The text is the rest of the line, spaces and all. */
		const char *p = t[1].p + t[1].n, *end = line + n;

		while (p < end && *p == ' ')
			p++;
		g.mode_text_len = (size_t)(end - p);
		g.mode_text = xrealloc(g.mode_text, g.mode_text_len + 1);
		memcpy(g.mode_text, p, g.mode_text_len);
		break;
	}
	}
	g.mode = mode_table[i].mode;
	g.mode_num = num;
	if ((g.mode == M_FAIL_NEXT || g.mode == M_ERROR_NEXT) && num == 0)
		g.mode = M_NORMAL;
	reply_now(c, "OK\r\n");
}

static void handle_get(struct conn *c, const struct tok *keys, size_t nkeys, bool cas)
{
	unsigned opts = cas ? R_CAS : 0;
	enum mode mode = g.mode;
	struct pending *p;
	size_t i;

	g.requests++;
	g.keys += nkeys;
	if (nkeys == 0) { /* as memcached does */
		reply_now(c, "ERROR\r\n");
		return;
	}
	if (mode == M_FAIL_NEXT || mode == M_ERROR_NEXT) {
		if (--g.mode_num == 0)
			g.mode = M_NORMAL;
		mode = mode == M_FAIL_NEXT ? M_CLOSE : M_ERROR_NEXT;
	}

	if (mode == M_CHAOS) {
		/* Faults that never yield a wrong value, only errors or delays. */
		static const enum mode faults[] = {
		    M_DELAY,   M_CLOSE,   M_CLOSE_MID,  M_GARBAGE,     M_ERROR_NEXT,
		    M_PARTIAL, M_REVERSE, M_BAD_LENGTH, M_UNKNOWN_KEY, M_HANG};
		g.rng ^= g.rng << 13;
		g.rng ^= g.rng >> 7;
		g.rng ^= g.rng << 17;
		mode = g.rng % 100 < g.mode_num ? faults[(g.rng >> 8) % 10] : M_NORMAL;
	}
	p = reply_new(c, g.now);
	switch (mode) {
	case M_NORMAL:
		break;
	case M_DELAY:
		p->due = g.now + (int64_t)(g.mode == M_CHAOS ? 50 : g.mode_num) * 1000;
		break;
	case M_SERIAL:
		/* One global queue: this request starts once the previous one has finished. */
		if (g.serial_free < g.now)
			g.serial_free = g.now;
		g.serial_free += (int64_t)g.mode_num * 1000;
		p->due = g.serial_free;
		break;
	case M_HANG:
		p->due = NEVER;
		return;
	case M_FAIL_NEXT: /* mapped to M_CLOSE above */
	case M_CLOSE:
		reply_close(c, p);
		return;
	case M_CLOSE_MID:
		for (i = 0; i < nkeys; i++)
			if (append_block(&p->body, keys[i].p, keys[i].n, opts, true))
				break;
		if (i == nkeys)
			buf_puts(&p->body, "EN");
		reply_close(c, p);
		return;
	case M_GARBAGE:
		buf_puts(&p->body, "HELLO GARBAGE\r\n");
		return;
	case M_SERVER_ERROR:
	case M_CLIENT_ERROR:
		buf_puts(&p->body, mode == M_SERVER_ERROR ? "SERVER_ERROR" : "CLIENT_ERROR");
		if (g.mode_text_len) {
			buf_puts(&p->body, " ");
			buf_append(&p->body, g.mode_text, g.mode_text_len);
		}
		buf_puts(&p->body, "\r\n");
		return;
	case M_ERROR:
		buf_puts(&p->body, "ERROR\r\n");
		return;
	case M_ERROR_NEXT:
		buf_puts(&p->body, "SERVER_ERROR busy\r\n");
		return;
	case M_PARTIAL:
		opts |= R_NO_END;
		break;
	case M_REVERSE:
		opts |= R_REVERSE;
		break;
	case M_UNKNOWN_KEY:
		opts |= R_UNKNOWN;
		break;
	case M_BAD_LENGTH:
		opts |= R_BAD_LENGTH;
		break;
	case M_CHAOS: /* mapped to a fault or M_NORMAL above */
		break;
	}
	build_reply(&p->body, keys, nkeys, opts);
}

/* One complete line, n bytes without its '\n' (a '\r' before it is still there). */
static void handle_line(struct conn *c, const char *line, size_t n)
{
	size_t len = (n > 0 && line[n - 1] == '\r') ? n - 1 : n;
	size_t ntoks = tokenize(line, len);
	const struct tok *t = g.toks;

	if (ntoks > 0 && tok_is(&t[0], "fake_mode")) {
		handle_fake_mode(c, line, len, ntoks);
		return;
	}
	if (ntoks > 0 && tok_is(&t[0], "fake_stats")) {
		struct buf *b = &reply_new(c, g.now)->body;

		buf_printf(b, "STAT requests %" PRIu64 "\r\n", g.requests);
		buf_printf(b, "STAT keys %" PRIu64 "\r\nEND\r\n", g.keys);
		return;
	}
	if (ntoks > 0 && tok_is(&t[0], "fake_reset")) {
		g.requests = g.keys = 0;
		reply_now(c, "OK\r\n");
		return;
	}
	if (ntoks > 0 && tok_is(&t[0], "fake_restart")) {
		uint64_t ms;

		if (ntoks != 2 || !parse_num(&t[1], &ms)) {
			reply_now(c, "CLIENT_ERROR fake_restart takes one number\r\n");
			return;
		}
		/* Swept (closed) at the end of this loop turn. */
		for (size_t i = 0; i < g.nconns; i++)
			if (g.conns[i] != c)
				g.conns[i]->dead = true;
		if (g.lfd >= 0)
			close(g.lfd);
		g.lfd = -1;
		g.relisten_at = g.now + (int64_t)ms * 1000;
		reply_now(c, "OK\r\n");
		return;
	}

	record_line(line, n);
	if (ntoks > 0 && tok_is(&t[0], "gets"))
		handle_get(c, t + 1, ntoks - 1, true);
	else if (ntoks > 0 && tok_is(&t[0], "get"))
		handle_get(c, t + 1, ntoks - 1, false);
	else if (ntoks > 0 && tok_is(&t[0], "version"))
		reply_now(c, "VERSION fake\r\n");
	else
		reply_now(c, "ERROR\r\n");
}

/*
 * Handle the complete lines in c->in, all of them unless the replies pile up: like memcached,
 * stop taking requests from a peer that does not read its replies. Returns false if the
 * connection must be dropped.
 */
static bool handle_input(struct conn *c)
{
	while (!c->stop_reading && c->backlog < HIGH_WATER) {
		char *start = c->in.data + c->in.off;
		size_t avail = buf_used(&c->in), n;
		char *nl = avail ? memchr(start + c->scanned, '\n', avail - c->scanned) : NULL;

		if (!nl) {
			c->scanned = avail;
			return avail <= MAX_LINE + 1; /* room for the '\r' */
		}
		n = (size_t)(nl - start);
		if ((n > 0 && start[n - 1] == '\r' ? n - 1 : n) > MAX_LINE)
			return false;
		handle_line(c, start, n); /* queues exactly one reply */
		c->backlog += buf_used(&c->tail->body);
		buf_consume(&c->in, n + 1);
		c->scanned = 0;
	}
	if (c->stop_reading) {
		buf_free(&c->in);
		c->scanned = 0;
	}
	return true;
}

/* Whether c->in may hold complete lines not handled yet. */
static bool input_held(const struct conn *c)
{
	return !c->stop_reading && c->scanned < buf_used(&c->in);
}

static void handle_readable(struct conn *c)
{
	size_t total = 0;

	while (!c->stop_reading && !c->eof && c->backlog < HIGH_WATER && total < READ_BUDGET) {
		char *dst = buf_reserve(&c->in, READ_CHUNK);
		ssize_t r = read(c->fd, dst, c->in.cap - c->in.len);

		if (r < 0) {
			if (errno == EINTR)
				continue;
			if (errno != EAGAIN && errno != EWOULDBLOCK)
				c->dead = true;
			return;
		}
		if (r == 0) {
			c->eof = true;
			return;
		}
		c->in.len += (size_t)r;
		total += (size_t)r;
		if (!handle_input(c)) {
			c->dead = true; /* over-long line */
			return;
		}
	}
}

static void flush_output(struct conn *c)
{
	while (buf_used(&c->out) > 0) {
		ssize_t r = send(c->fd, c->out.data + c->out.off, buf_used(&c->out), MSG_NOSIGNAL);

		if (r < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				c->want_write = true;
			else
				c->dead = true;
			return;
		}
		buf_consume(&c->out, (size_t)r);
		c->backlog -= (size_t)r;
	}
	if (c->out.cap > 1024 * 1024) /* don't keep a big value's buffer per idle connection */
		buf_free(&c->out);
}

static void free_pending(struct conn *c)
{
	while (c->head) {
		struct pending *p = c->head;

		c->head = p->next;
		buf_free(&p->body);
		free(p);
	}
	c->tail = NULL;
}

/* Move the replies that are due to the output, in order. */
static void release_due(struct conn *c)
{
	while (!c->closing && c->head && c->head->due <= g.now) {
		struct pending *p = c->head;

		c->head = p->next;
		if (!c->head)
			c->tail = NULL;
		if (buf_used(&c->out) == 0) { /* saves copying big values */
			struct buf t = c->out;

			c->out = p->body;
			p->body = t;
		} else {
			buf_append(&c->out, p->body.data + p->body.off, buf_used(&p->body));
		}
		if (p->close_after) {
			c->closing = true;
			free_pending(c);
			c->backlog = buf_used(&c->out);
		}
		buf_free(&p->body);
		free(p);
	}
}

/* Send the replies that are due, and take the requests held back while replies piled up. */
static void service(struct conn *c)
{
	for (;;) {
		size_t held;

		release_due(c);
		if (!c->dead && !c->want_write)
			flush_output(c);
		if (c->dead || c->backlog >= HIGH_WATER || !input_held(c))
			break;
		held = buf_used(&c->in);
		if (!handle_input(c))
			c->dead = true;
		if (buf_used(&c->in) == held)
			break;
	}
	if (buf_used(&c->out) == 0) {
		if (c->closing)
			c->dead = true;
		/* The peer has gone and no reply is left that will ever be sent. */
		if (c->eof && !input_held(c) && (!c->head || c->head->due == NEVER))
			c->dead = true;
	}
}

static void conn_destroy(size_t i)
{
	struct conn *c = g.conns[i];
	char junk[4096];

	/*
	 * Send FIN after the data already written, and read what the peer sent meanwhile:
	 * closing with unread input would make the kernel send RST, which can discard a reply
	 * (a close_mid fragment) before the peer reads it.
	 */
	shutdown(c->fd, SHUT_WR);
	for (int k = 0; k < 64 && read(c->fd, junk, sizeof(junk)) > 0; k++)
		;
	close(c->fd);
	buf_free(&c->in);
	buf_free(&c->out);
	free_pending(c);
	free(c);
	g.conns[i] = g.conns[--g.nconns];
}

static void conn_add(int fd)
{
	struct conn *c;

	if (g.nconns == g.capconns) {
		g.capconns = g.capconns ? g.capconns * 2 : 256;
		g.conns = xrealloc(g.conns, g.capconns * sizeof(*g.conns));
	}
	c = xrealloc(NULL, sizeof(*c));
	memset(c, 0, sizeof(*c));
	c->fd = fd;
	g.conns[g.nconns++] = c;
}

/* Accept all waiting connections. Returns false when out of descriptors, to back off. */
static bool accept_all(int lfd)
{
	for (;;) {
		int one = 1, fd = accept(lfd, NULL, NULL);

		if (fd < 0) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS ||
			    errno == ENOMEM) {
				fprintf(stderr, "fake_upstream: accept: %s\n", strerror(errno));
				return false;
			}
			return true; /* EAGAIN, or nothing we could do anything about */
		}
		if (fcntl(fd, F_SETFL, O_NONBLOCK) < 0 || fcntl(fd, F_SETFD, FD_CLOEXEC) < 0) {
			close(fd);
			continue;
		}
		/* Replies are written whole: send them now rather than wait on Nagle. */
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		conn_add(fd);
	}
}

/* announce: print "PORT <n>" once listening (the first time only). */
static int listen_on(unsigned port, bool announce)
{
	struct sockaddr_in sa;
	socklen_t salen = sizeof(sa);
	int one = 1, fd = socket(AF_INET, SOCK_STREAM, 0);

	if (fd < 0)
		die("socket: %s", strerror(errno));
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	memset(&sa, 0, sizeof(sa));
	sa.sin_family = AF_INET;
	sa.sin_port = htons((uint16_t)port);
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
		die("bind 127.0.0.1:%u: %s", port, strerror(errno));
	if (listen(fd, 4096) < 0)
		die("listen: %s", strerror(errno));
	if (fcntl(fd, F_SETFL, O_NONBLOCK) < 0 || fcntl(fd, F_SETFD, FD_CLOEXEC) < 0)
		die("fcntl: %s", strerror(errno));
	if (getsockname(fd, (struct sockaddr *)&sa, &salen) < 0)
		die("getsockname: %s", strerror(errno));
	g.port = (unsigned)ntohs(sa.sin_port);
	if (announce) {
		printf("PORT %u\n", g.port);
		fflush(stdout);
	}
	return fd;
}

/*
 * Exit straight from the handler: there is nothing to clean up (the record file is flushed
 * line by line), and it cannot race with poll() the way a flag checked by the loop can.
 */
static void on_signal(int sig)
{
	(void)sig;
	_exit(0);
}

static void setup_process(void)
{
	struct sigaction sa;
	struct rlimit rl;

	memset(&sa, 0, sizeof(sa));
	sigemptyset(&sa.sa_mask);
	sa.sa_handler = on_signal;
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	sa.sa_handler = SIG_IGN;
	sigaction(SIGPIPE, &sa, NULL);

	/* Tests open 1000+ connections; the usual soft limit of 1024 descriptors is too few. */
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
}

static void usage(void)
{
	fprintf(stderr, "usage: fake_upstream [-p PORT] [-r RECORD_FILE]\n");
	exit(2);
}

int main(int argc, char **argv)
{
	g.rng = 0x9e3779b97f4a7c15ULL;
	size_t cappfds = 1024;
	struct pollfd *pfds = xrealloc(NULL, cappfds * sizeof(*pfds));
	int64_t accept_paused_until = 0;
	unsigned long port = 0;
	char *end;
	int opt;

	while ((opt = getopt(argc, argv, "p:r:h")) != -1) {
		switch (opt) {
		case 'p':
			errno = 0;
			port = strtoul(optarg, &end, 10);
			if (errno || end == optarg || *end || port > 65535)
				usage();
			break;
		case 'r':
			g.record = fopen(optarg, "ab");
			if (!g.record)
				die("%s: %s", optarg, strerror(errno));
			break;
		default:
			usage();
		}
	}
	if (optind != argc)
		usage();

	setup_process();
	g.lfd = listen_on((unsigned)port, true);

	for (;;) {
		int64_t next = NEVER;
		int timeout;
		size_t i, n;

		if (cappfds < g.nconns + 1) {
			cappfds = (g.nconns + 1) * 2;
			pfds = xrealloc(pfds, cappfds * sizeof(*pfds));
		}
		g.now = now_us();
		if (g.lfd < 0 && g.relisten_at <= g.now)
			g.lfd = listen_on(g.port, false);
		pfds[0].fd = g.lfd; /* poll() skips it while negative */
		pfds[0].events = accept_paused_until <= g.now ? POLLIN : 0;
		if (!pfds[0].events)
			next = accept_paused_until;
		if (g.lfd < 0)
			next = g.relisten_at;
		for (i = 0; i < g.nconns; i++) {
			struct conn *c = g.conns[i];

			pfds[i + 1].fd = c->fd;
			pfds[i + 1].events = 0;
			/* Don't read from a peer that doesn't read its replies. */
			if (!c->eof && !c->stop_reading && c->backlog < HIGH_WATER)
				pfds[i + 1].events |= POLLIN;
			if (c->want_write)
				pfds[i + 1].events |= POLLOUT;
			if (!c->closing && c->head && c->head->due < next)
				next = c->head->due;
		}
		if (next == NEVER)
			timeout = -1;
		else if (next <= g.now)
			timeout = 0;
		else if (next - g.now >= (int64_t)INT_MAX * 1000)
			timeout = INT_MAX;
		else /* round up, or we would wake early and spin */
			timeout = (int)((next - g.now + 999) / 1000);

		if (poll(pfds, g.nconns + 1, timeout) < 0) {
			if (errno == EINTR)
				continue;
			die("poll: %s", strerror(errno));
		}
		g.now = now_us();

		n = g.nconns; /* connections accepted below have no pollfd yet */
		for (i = 0; i < n; i++) {
			struct conn *c = g.conns[i];
			short re = pfds[i + 1].revents;

			if (re & POLLOUT)
				c->want_write = false;
			if (re & POLLNVAL)
				c->dead = true;
			else if ((pfds[i + 1].events & POLLIN) &&
			         (re & (POLLIN | POLLHUP | POLLERR)))
				handle_readable(c); /* read() reports the error or EOF */
			else if (re & (POLLHUP | POLLERR))
				c->dead = true;
		}
		for (i = g.nconns; i-- > 0;) {
			service(g.conns[i]);
			/* Destroying moves the last connection, already serviced, to i. */
			if (g.conns[i]->dead)
				conn_destroy(i);
		}
		if (g.lfd >= 0 && (pfds[0].revents & POLLIN) && !accept_all(g.lfd))
			accept_paused_until = g.now + 100000;
	}
}
