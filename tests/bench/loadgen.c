/*
 * loadgen: a load generator for the memcached text protocol or RESP2 (Redis), on libev.
 *
 *   loadgen [--server 127.0.0.1:PORT] [options]          measure; prints one JSON line
 *   loadgen --preload [--keys N --value-size S ...]      store the N keys with "set"
 *   loadgen --command LINE                              send one line, print the reply
 *   loadgen --protocol resp ...                         the same in RESP2 (see below)
 *   loadgen --dump                                      print what the server sends until EOF
 *   loadgen --free-port                                 print a free loopback TCP port
 *
 * Load: C connections, each keeping P requests outstanding (pipelining); each request is a
 * "get" (or "gets") of M keys drawn from a key space of N keys "<prefix><i>" (default prefix
 * "key:"), uniformly, by Zipf(s), or uniformly among the K first keys ("hot"). The run is
 * bounded by a duration, a request count or both; every random choice comes from a fixed seed
 * (one stream per connection). --idle adds connections that send one single-key get every
 * --idle-interval seconds (0: nothing at all), to hold many mostly idle connections.
 *
 * --set-ratio F makes each request of a loaded connection a single-key "set" with probability F
 * (same key distribution, same value size), the rest gets as above. Every set writes a new
 * version of its key: versions count from 1 per key, version 0 being the preloaded value.
 *
 * Every reply is parsed strictly (lines end in CRLF; VALUE <key> <flags> <bytes>[ <cas>] with a
 * cas exactly for gets, the data block followed by CRLF, keys in request order, END;
 * SERVER_ERROR / CLIENT_ERROR / ERROR lines answer a request with an error) and every value is
 * checked against the value its key must have:
 *
 *   --values pattern (default)  key i holds flags (i & 0xffff) and S bytes: the decimal i,
 *                               ':', then byte j = 'a' + (i + j) % 26, cut to S bytes;
 *                               --preload stores exactly these values. Version v > 0 (written
 *                               by --set-ratio) is the decimal i, ':', the decimal v, ':', then
 *                               byte j = 'a' + (i + v + j) % 26, cut to S bytes.
 *   --values fake               the fake upstream's values: flags 0 and "v:" + the key
 *
 * With writes in the mix a get must return a well-formed value of the key asked for, of a
 * version that has been sent (at most the key's latest) and not older than the key's floor
 * when the get was sent. The floor follows from memcached applying commands one at a time:
 * sets of a key overlapping in time form a window (from the first sent while none was
 * outstanding to the moment none is); when a window closes with every set STORED, the key
 * holds one of the window's versions, all newer than anything before, so the floor becomes
 * the window's first version. A get older than its floor counts as stale (and as wrong); a
 * key with a failed or lost set keeps its floor from then on.
 *
 * --protocol resp speaks RESP2 instead: a 1-key get is GET, an M-key get MGET, a set SET
 * (values carry no flags; their bytes and versions are as above); --preload stores with SET,
 * --command sends its words as one array and prints one whole reply. Replies are parsed as
 * strictly: a bulk string or $-1 (a miss) for GET; *M then M of those, in key order, for MGET;
 * +OK for SET. An error line (-...) answers its request with an error (server_errors);
 * anything else is a protocol error.
 *
 * A reply that does not parse closes that connection (its outstanding requests count as
 * errors); the run goes on with the others. Latency is measured from the moment a request is
 * queued for writing to the moment its whole reply has been read, into a log-bucketed
 * histogram (32 sub-buckets per power of two: at most about 3 % above the true value).
 *
 * Only loopback addresses (127.0.0.0/8) are accepted. RLIMIT_NOFILE is raised as far as the
 * connections need (up to the hard limit, beyond it if allowed); if that is not enough the
 * program says so and exits 2.
 *
 * Exit status: 0 the run completed (errors, if any, are in the JSON line), 1 it could not run
 * (no connection at all, preload or command failed), 2 bad usage or resource limits.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <ev.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#define MAX_LINE 4096             /* longest reply line accepted */
#define MAX_VALUE (64u << 20)     /* largest value block accepted */
#define IBUF_ACTIVE (64 * 1024)   /* first input buffer of a loaded connection */
#define IBUF_IDLE 2048            /* first input buffer of an idle connection */
#define READ_ROOM 2048            /* free input space wanted before each read */
#define HSUB 5                    /* histogram: 2^HSUB sub-buckets per power of two */
#define HBUCKETS (60 << HSUB)     /* covers every uint64_t value */
#define PRELOAD_BATCH 500         /* sets written before their replies are read */
#define MIN_SET_VALUE 24          /* value bytes needed to carry key index and version */

enum dist { DIST_UNIFORM, DIST_ZIPF, DIST_HOT };
enum vmode { VAL_PATTERN, VAL_FAKE };
enum proto { PROTO_MC, PROTO_RESP };
enum phase { PH_CONNECT, PH_RUN, PH_DRAIN, PH_DONE };
enum cstate { CS_NONE, CS_CONNECTING, CS_OPEN, CS_CLOSED };

struct opts {
	struct sockaddr_in addr;
	char server[64];
	long conns, pipeline, multi, idle;
	uint32_t nkeys, value_size, hot;
	enum dist dist;
	double zipf_s, set_ratio;
	double duration, idle_interval, connect_timeout, drain_timeout, max_seconds;
	uint64_t count, seed;
	long max_connecting;
	enum vmode values;
	enum proto proto;
	const char *prefix, *label, *command, *dist_name;
	bool gets, preload, dump, free_port;
};

struct req {
	uint64_t t_ns;
	uint32_t nkeys, cursor;
	uint32_t *keys;
	uint32_t *floors; /* per key: the oldest version the get may return (--set-ratio) */
	uint32_t set_ver; /* 0: a get; else the version this set writes (keys[0]) */
	bool in_array;    /* RESP: the MGET reply's array header has been read */
};

/* Per key, with --set-ratio: what the versions of the values may be (see the header). */
struct keyver {
	uint32_t latest;    /* last version sent */
	uint32_t floor;     /* oldest version a get sent now may return */
	uint32_t win_first; /* first version of the open window */
	uint32_t pending;   /* sets outstanding */
	bool frozen;        /* a set failed or was lost: the floor stays */
};

struct conn {
	ev_io io;
	ev_timer tm; /* idle connections: the next request */
	struct lg *g;
	int fd, events;
	enum cstate state;
	bool idle;
	uint64_t rng;
	char *ib, *ob;
	size_t ilen, ioff, icap, olen, ooff, ocap;
	struct req *q;
	unsigned qhead, qn, qcap;
};

struct lg {
	struct opts o;
	struct ev_loop *loop;
	struct conn *conns;
	long nconns, next_connect, connecting;
	enum phase phase;
	ev_timer phase_tm, hard_tm;
	ev_signal sigint, sigterm;
	double *zipf_cdf;
	struct keyver *kv;  /* nkeys entries with --set-ratio, else NULL */
	char *vbuf;         /* scratch for one expected value */
	char *fill;         /* 'a' + k % 26 for k < value_size + 26 */
	size_t prefix_len;
	uint64_t t_start, t_run, t_stop, t_last;
	/* counters */
	long conns_ok, conns_failed, conns_closed, idle_ok, idle_closed;
	uint64_t issued, completed, keys_issued, idle_requests, outstanding;
	uint64_t hits, misses, server_errors, client_errors, plain_errors, protocol_errors;
	uint64_t wrong_values, stale_values, lost_requests, unanswered;
	uint64_t gets_done, sets_done, sets_stored, sets_not_stored;
	uint64_t hist[HBUCKETS], lat_max, lat_sum;
	int first_errno;
	char first_problem[200];
	bool interrupted;
	rlim_t nofile;
};

/* ---------------------------------------------------------------- small tools */

static uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static uint64_t splitmix(uint64_t *s)
{
	uint64_t z = (*s += 0x9e3779b97f4a7c15u);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
	return z ^ (z >> 31);
}

static void die(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fputs("loadgen: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
	exit(2);
}

static void *xrealloc(void *p, size_t n)
{
	void *q = realloc(p, n ? n : 1);
	if (!q)
		die("out of memory (%zu bytes)", n);
	return q;
}

static void note_problem(struct lg *g, const char *fmt, ...)
{
	if (g->first_problem[0])
		return;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(g->first_problem, sizeof g->first_problem, fmt, ap);
	va_end(ap);
	fprintf(stderr, "loadgen: %s\n", g->first_problem);
}

static size_t utoa(char *out, uint64_t v)
{
	char tmp[24];
	size_t n = 0;
	do {
		tmp[n++] = (char)('0' + v % 10);
		v /= 10;
	} while (v);
	for (size_t i = 0; i < n; i++)
		out[i] = tmp[n - 1 - i];
	return n;
}

/* ---------------------------------------------------------------- values and keys */

static size_t key_format(const struct lg *g, uint32_t i, char *out)
{
	memcpy(out, g->o.prefix, g->prefix_len);
	return g->prefix_len + utoa(out + g->prefix_len, i);
}

static uint32_t value_flags(const struct lg *g, uint32_t i)
{
	return g->o.values == VAL_FAKE ? 0 : (i & 0xffffu);
}

/* Version ver of key i's value, written to out (room for value_size or the fake value). */
static size_t value_format(const struct lg *g, uint32_t i, uint32_t ver, char *out)
{
	if (g->o.values == VAL_FAKE) {
		out[0] = 'v';
		out[1] = ':';
		return 2 + key_format(g, i, out + 2);
	}
	char head[24];
	size_t hl = utoa(head, i);
	head[hl++] = ':';
	if (ver) {
		hl += utoa(head + hl, ver);
		head[hl++] = ':';
	}
	size_t s = g->o.value_size;
	size_t n = hl < s ? hl : s;
	memcpy(out, head, n);
	if (s > hl)
		memcpy(out + hl, g->fill + (i + ver + hl) % 26, s - hl);
	return s;
}

/* Whether d is exactly some version of key i's value; that version in *ver. */
static bool value_ok(const struct lg *g, uint32_t i, uint32_t flags, const char *d, size_t n, uint32_t *ver)
{
	*ver = 0;
	if (flags != value_flags(g, i))
		return false;
	if (g->o.values == VAL_FAKE) {
		char exp[300];
		size_t el = value_format(g, i, 0, exp);
		return n == el && memcmp(d, exp, n) == 0;
	}
	if (n != g->o.value_size)
		return false;
	if (g->kv) {
		/* "<i>:<v>:": read v where the value says it is, then compare the whole value. */
		char head[24];
		size_t hl = utoa(head, i);
		head[hl++] = ':';
		if (n > hl + 1 && memcmp(d, head, hl) == 0 && d[hl] >= '1' && d[hl] <= '9') {
			uint64_t v = 0;
			size_t k = hl;
			while (k < n && k < hl + 10 && d[k] >= '0' && d[k] <= '9')
				v = v * 10 + (uint64_t)(d[k++] - '0');
			if (k == n || d[k] != ':' || v > UINT32_MAX)
				return false;
			*ver = (uint32_t)v;
		}
	}
	value_format(g, i, *ver, g->vbuf);
	return memcmp(d, g->vbuf, n) == 0;
}

static uint32_t pick_key(struct lg *g, uint64_t *rng)
{
	uint64_t r = splitmix(rng);
	switch (g->o.dist) {
	case DIST_HOT:
		return (uint32_t)(((r >> 32) * (uint64_t)g->o.hot) >> 32);
	case DIST_ZIPF: {
		double u = (double)(r >> 11) * 0x1.0p-53;
		uint32_t lo = 0, hi = g->o.nkeys - 1;
		while (lo < hi) {
			uint32_t mid = lo + (hi - lo) / 2;
			if (g->zipf_cdf[mid] >= u)
				hi = mid;
			else
				lo = mid + 1;
		}
		return lo;
	}
	case DIST_UNIFORM:
	default:
		return (uint32_t)(((r >> 32) * (uint64_t)g->o.nkeys) >> 32);
	}
}

static void zipf_setup(struct lg *g)
{
	uint32_t n = g->o.nkeys;
	g->zipf_cdf = xrealloc(NULL, sizeof(double) * n);
	double sum = 0;
	for (uint32_t k = 0; k < n; k++) {
		sum += 1.0 / pow((double)(k + 1), g->o.zipf_s);
		g->zipf_cdf[k] = sum;
	}
	for (uint32_t k = 0; k < n; k++)
		g->zipf_cdf[k] /= sum;
	g->zipf_cdf[n - 1] = 1.0;
}

/* ---------------------------------------------------------------- histogram */

static unsigned hist_index(uint64_t v)
{
	if (v < (1u << HSUB))
		return (unsigned)v;
	unsigned e = 63u - (unsigned)__builtin_clzll(v);
	return ((e - HSUB + 1) << HSUB) + (unsigned)((v >> (e - HSUB)) - (1u << HSUB));
}

static uint64_t hist_upper(unsigned idx)
{
	if (idx < (1u << HSUB))
		return idx;
	unsigned e = (idx >> HSUB) + HSUB - 1, sub = idx & ((1u << HSUB) - 1);
	uint64_t lower = (uint64_t)((1u << HSUB) + sub) << (e - HSUB);
	return lower + (((uint64_t)1 << (e - HSUB)) - 1);
}

static void hist_add(struct lg *g, uint64_t v)
{
	g->hist[hist_index(v)]++;
	g->lat_sum += v;
	if (v > g->lat_max)
		g->lat_max = v;
}

static double hist_pct(const struct lg *g, double q)
{
	uint64_t total = 0;
	for (unsigned i = 0; i < HBUCKETS; i++)
		total += g->hist[i];
	if (!total)
		return 0;
	uint64_t want = (uint64_t)ceil(q * (double)total), acc = 0;
	if (want < 1)
		want = 1;
	for (unsigned i = 0; i < HBUCKETS; i++) {
		acc += g->hist[i];
		if (acc >= want) {
			uint64_t u = hist_upper(i);
			return (double)(u < g->lat_max ? u : g->lat_max) / 1000.0;
		}
	}
	return (double)g->lat_max / 1000.0;
}

/* ---------------------------------------------------------------- connections */

static void conn_set_events(struct conn *c, int ev)
{
	if (c->events == ev)
		return;
	ev_io_stop(c->g->loop, &c->io);
	ev_io_set(&c->io, c->fd, ev);
	if (ev)
		ev_io_start(c->g->loop, &c->io);
	c->events = ev;
}

static void finish(struct lg *g)
{
	if (g->phase == PH_DONE)
		return;
	g->phase = PH_DONE;
	ev_break(g->loop, EVBREAK_ALL);
}

static void start_run(struct lg *g);
static void stop_sending(struct lg *g);
static void set_done(struct lg *g, uint32_t i, bool stored);
static void connect_more(struct lg *g);

static void conn_close(struct conn *c, bool counted_as_closed)
{
	struct lg *g = c->g;
	if (c->state == CS_CLOSED || c->state == CS_NONE)
		return;
	bool was_open = c->state == CS_OPEN;
	if (c->state == CS_CONNECTING)
		g->connecting--;
	conn_set_events(c, 0);
	ev_timer_stop(g->loop, &c->tm);
	close(c->fd);
	c->fd = -1;
	c->state = CS_CLOSED;
	if (was_open && counted_as_closed) {
		g->conns_closed++;
		if (c->idle)
			g->idle_closed++;
	}
	/* Requests that will never be answered. */
	for (unsigned k = 0; k < c->qn; k++) {
		const struct req *r = &c->q[(c->qhead + k) % c->qcap];
		if (r->set_ver)
			set_done(g, r->keys[0], false);
	}
	g->lost_requests += c->qn;
	g->outstanding -= c->qn;
	c->qn = 0;
	if (g->phase == PH_DRAIN && g->outstanding == 0)
		finish(g);
}

static void conn_flush(struct conn *c)
{
	while (c->ooff < c->olen) {
		ssize_t n = write(c->fd, c->ob + c->ooff, c->olen - c->ooff);
		if (n > 0) {
			c->ooff += (size_t)n;
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			conn_set_events(c, EV_READ | EV_WRITE);
			return;
		}
		note_problem(c->g, "write: %s", n < 0 ? strerror(errno) : "short write");
		conn_close(c, true);
		return;
	}
	c->ooff = c->olen = 0;
	conn_set_events(c, EV_READ);
}

static void out_reserve(struct conn *c, size_t more)
{
	if (c->olen + more <= c->ocap)
		return;
	if (c->ooff) {
		memmove(c->ob, c->ob + c->ooff, c->olen - c->ooff);
		c->olen -= c->ooff;
		c->ooff = 0;
	}
	if (c->olen + more > c->ocap) {
		size_t cap = c->ocap ? c->ocap : 1024;
		while (cap < c->olen + more)
			cap *= 2;
		c->ob = xrealloc(c->ob, cap);
		c->ocap = cap;
	}
}

static bool can_issue(const struct lg *g)
{
	return g->phase == PH_RUN && (g->o.count == 0 || g->issued < g->o.count);
}

/* A RESP bulk string: $<n> CRLF <bytes> CRLF. */
static char *put_bulk(char *p, const char *d, size_t n)
{
	*p++ = '$';
	p += utoa(p, n);
	*p++ = '\r';
	*p++ = '\n';
	memcpy(p, d, n);
	p += n;
	*p++ = '\r';
	*p++ = '\n';
	return p;
}

/* A RESP array header and the command name, its first element. */
static char *put_cmd(char *p, size_t nargs, const char *name)
{
	*p++ = '*';
	p += utoa(p, nargs);
	*p++ = '\r';
	*p++ = '\n';
	return put_bulk(p, name, strlen(name));
}

/* SET <key> <version ver of its value> (RESP values carry no flags). */
static size_t resp_set(const struct lg *g, uint32_t i, uint32_t ver, char *out, char *vbuf)
{
	char key[256];
	char *p = put_cmd(out, 3, "SET");
	p = put_bulk(p, key, key_format(g, i, key));
	return (size_t)(put_bulk(p, vbuf, value_format(g, i, ver, vbuf)) - out);
}

static void issue_set(struct conn *c, struct req *r)
{
	struct lg *g = c->g;
	uint32_t i = pick_key(g, &c->rng);
	struct keyver *kv = &g->kv[i];
	if (kv->latest == UINT32_MAX)
		die("more than 2^32 sets of one key");
	uint32_t ver = ++kv->latest;
	if (kv->pending++ == 0)
		kv->win_first = ver;
	r->keys[0] = i;
	r->nkeys = 1;
	r->set_ver = ver;
	if (g->o.proto == PROTO_RESP) {
		out_reserve(c, 64 + g->prefix_len + g->o.value_size);
		c->olen += resp_set(g, i, ver, c->ob + c->olen, g->vbuf);
		return;
	}
	out_reserve(c, 48 + g->prefix_len + g->o.value_size);
	char *p = c->ob + c->olen;
	memcpy(p, "set ", 4);
	p += 4;
	p += key_format(g, i, p);
	*p++ = ' ';
	p += utoa(p, value_flags(g, i));
	memcpy(p, " 0 ", 3);
	p += 3;
	p += utoa(p, g->o.value_size);
	*p++ = '\r';
	*p++ = '\n';
	p += value_format(g, i, ver, p);
	*p++ = '\r';
	*p++ = '\n';
	c->olen = (size_t)(p - c->ob);
}

/* A set of key i has its reply (stored) or never will. */
static void set_done(struct lg *g, uint32_t i, bool stored)
{
	struct keyver *kv = &g->kv[i];
	kv->pending--;
	if (!stored)
		kv->frozen = true;
	if (kv->pending == 0 && !kv->frozen)
		kv->floor = kv->win_first;
}

static void issue(struct conn *c, uint64_t now, uint32_t nkeys)
{
	struct lg *g = c->g;
	struct req *r = &c->q[(c->qhead + c->qn) % c->qcap];
	r->cursor = 0;
	r->t_ns = now;
	r->set_ver = 0;
	r->in_array = false;
	if (g->kv && !c->idle && (double)(splitmix(&c->rng) >> 11) * 0x1.0p-53 < g->o.set_ratio) {
		issue_set(c, r);
		c->qn++;
		g->outstanding++;
		g->issued++;
		if (g->o.count && g->issued >= g->o.count)
			stop_sending(g);
		return;
	}
	/* RESP: GET for one key, MGET for more; the reply carries no keys, only their order. */
	bool resp = g->o.proto == PROTO_RESP;
	out_reserve(c, 32 + (size_t)nkeys * (g->prefix_len + 24));
	char *p = c->ob + c->olen;
	if (resp) {
		p = put_cmd(p, nkeys + 1, nkeys == 1 ? "GET" : "MGET");
	} else if (g->o.gets) {
		memcpy(p, "gets", 4);
		p += 4;
	} else {
		memcpy(p, "get", 3);
		p += 3;
	}
	for (uint32_t k = 0; k < nkeys; k++) {
		uint32_t i = pick_key(g, &c->rng);
		r->keys[k] = i;
		if (g->kv)
			r->floors[k] = g->kv[i].floor;
		if (resp) {
			char key[256];
			p = put_bulk(p, key, key_format(g, i, key));
		} else {
			*p++ = ' ';
			p += key_format(g, i, p);
		}
	}
	if (!resp) {
		*p++ = '\r';
		*p++ = '\n';
	}
	c->olen = (size_t)(p - c->ob);
	r->nkeys = nkeys;
	c->qn++;
	g->outstanding++;
	g->issued++;
	g->keys_issued += nkeys;
	if (c->idle)
		g->idle_requests++;
	if (g->o.count && g->issued >= g->o.count)
		stop_sending(g);
}

static void refill(struct conn *c, uint64_t now)
{
	if (c->idle || c->state != CS_OPEN)
		return;
	while (c->qn < c->qcap && can_issue(c->g))
		issue(c, now, (uint32_t)c->g->o.multi);
}

static void complete(struct conn *c, uint64_t now)
{
	struct lg *g = c->g;
	struct req *r = &c->q[c->qhead];
	hist_add(g, now > r->t_ns ? now - r->t_ns : 0);
	if (r->set_ver)
		g->sets_done++;
	else
		g->gets_done++;
	c->qhead = (c->qhead + 1) % c->qcap;
	c->qn--;
	g->outstanding--;
	g->completed++;
	g->t_last = now;
	if (g->phase == PH_DRAIN && g->outstanding == 0)
		finish(g);
}

static int protocol_error(struct conn *c, const char *what, const char *line, size_t ll)
{
	struct lg *g = c->g;
	g->protocol_errors++;
	char shown[80];
	size_t n = ll < sizeof shown - 1 ? ll : sizeof shown - 1;
	for (size_t i = 0; i < n; i++)
		shown[i] = (line[i] >= 0x20 && line[i] < 0x7f) ? line[i] : '?';
	shown[n] = 0;
	note_problem(g, "protocol error from %s: %s: \"%s\"", g->o.server, what, shown);
	conn_close(c, true);
	return -1;
}

static bool parse_u64(const char *s, size_t n, uint64_t *out)
{
	if (n == 0 || n > 20 || (n > 1 && s[0] == '0'))
		return false;
	uint64_t v = 0;
	for (size_t i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return false;
		uint64_t d = (uint64_t)(s[i] - '0');
		if (v > (UINT64_MAX - d) / 10)
			return false;
		v = v * 10 + d;
	}
	*out = v;
	return true;
}

/* Splits "a b c" at single spaces into at most max tokens; false if empty tokens or too many. */
static int split(const char *s, size_t n, const char **tok, size_t *tl, int max)
{
	int nt = 0;
	size_t start = 0;
	for (size_t i = 0; i <= n; i++) {
		if (i == n || s[i] == ' ') {
			if (i == start || nt == max)
				return -1;
			tok[nt] = s + start;
			tl[nt] = i - start;
			nt++;
			start = i + 1;
		}
	}
	return nt;
}

/* A reply element of need bytes starts at p, avail of them read: room for all of it. */
static void want_bytes(struct conn *c, char *p, size_t avail, size_t need)
{
	if (c->icap - c->ioff >= need + READ_ROOM)
		return;
	memmove(c->ib, p, avail);
	c->ioff = 0;
	c->ilen = avail;
	if (c->icap < need + READ_ROOM) {
		c->icap = need + READ_ROOM;
		c->ib = xrealloc(c->ib, c->icap);
	}
}

/* The value d (n bytes, with flags) received for key j of get r: a hit, checked. */
static void check_value(struct lg *g, const struct req *r, uint32_t j, uint32_t flags,
                        const char *d, size_t n)
{
	uint32_t idx = r->keys[j], ver;
	char key[256];
	g->hits++;
	if (!value_ok(g, idx, flags, d, n, &ver)) {
		if (!g->wrong_values) {
			int kl = (int)key_format(g, idx, key);
			if (g->o.proto == PROTO_RESP)
				fprintf(stderr, "loadgen: wrong value for %.*s (%zu bytes)\n", kl,
				        key, n);
			else
				fprintf(stderr,
				        "loadgen: wrong value for %.*s (flags %" PRIu32
				        ", %zu bytes)\n",
				        kl, key, flags, n);
		}
		g->wrong_values++;
	} else if (g->kv && ver > g->kv[idx].latest) {
		if (!g->wrong_values)
			fprintf(stderr,
			        "loadgen: %.*s: version %" PRIu32 " never written (latest %" PRIu32
			        ")\n",
			        (int)key_format(g, idx, key), key, ver, g->kv[idx].latest);
		g->wrong_values++;
	} else if (g->kv && ver < r->floors[j]) {
		if (!g->stale_values)
			fprintf(stderr,
			        "loadgen: %.*s: stale version %" PRIu32 " (floor %" PRIu32
			        " when asked)\n",
			        (int)key_format(g, idx, key), key, ver, r->floors[j]);
		g->stale_values++;
		g->wrong_values++;
	}
}

/* The next complete reply line at c->ioff, CRLF checked and cut off (the
 * CRLF is still in the buffer). 1: *p, *ll set; 0: need more; -1: closed. */
static int next_line(struct conn *c, char **p, size_t *ll)
{
	size_t avail = c->ilen - c->ioff;
	char *nl;

	*p = c->ib + c->ioff;
	if (!avail)
		return 0;
	nl = memchr(*p, '\n', avail);
	if (!nl) {
		if (avail > MAX_LINE)
			return protocol_error(c, "line too long", *p, avail);
		return 0;
	}
	*ll = (size_t)(nl - *p);
	if (*ll == 0 || (*p)[*ll - 1] != '\r')
		return protocol_error(c, "line not ended by CRLF", *p, *ll);
	(*ll)--;
	if (c->qn == 0)
		return protocol_error(c, "reply with no request outstanding", *p, *ll);
	return 1;
}

/*
 * RESP2 replies, strictly: a GET gets a bulk string or $-1; an MGET of N keys *N then N of
 * those, in key order; a SET +OK. An error line (-...) in place of a whole reply answers that
 * request with an error; anything else is a protocol error. 0: need more; -1: closed.
 */
static int parse_resp(struct conn *c, uint64_t now)
{
	struct lg *g = c->g;
	for (;;) {
		char *p;
		size_t ll;
		int got = next_line(c, &p, &ll);
		if (got <= 0)
			return got;
		size_t avail = c->ilen - c->ioff;
		struct req *r = &c->q[c->qhead];
		if (ll == 0)
			return protocol_error(c, "empty line", p, ll);
		if (p[0] == '-' && !r->in_array) {
			c->ioff += ll + 2;
			if (!g->server_errors)
				fprintf(stderr, "loadgen: first error reply from %s: %.*s\n",
				        g->o.server, (int)ll, p);
			g->server_errors++;
			if (r->set_ver)
				set_done(g, r->keys[0], false);
			complete(c, now);
			continue;
		}
		if (r->set_ver) {
			if (ll != 3 || memcmp(p, "+OK", 3) != 0)
				return protocol_error(c, "unexpected reply to SET", p, ll);
			c->ioff += ll + 2;
			set_done(g, r->keys[0], true);
			g->sets_stored++;
			complete(c, now);
			continue;
		}
		uint64_t n;
		if (r->nkeys > 1 && !r->in_array) {
			if (p[0] != '*' || !parse_u64(p + 1, ll - 1, &n))
				return protocol_error(c, "MGET reply not an array", p, ll);
			if (n != r->nkeys)
				return protocol_error(
				    c, "MGET reply of another length than the keys asked", p, ll);
			r->in_array = true;
			c->ioff += ll + 2;
			continue;
		}
		if (p[0] != '$')
			return protocol_error(c,
			                      r->in_array ? "MGET element not a bulk string"
			                                  : "GET reply not a bulk string",
			                      p, ll);
		if (ll == 3 && p[1] == '-' && p[2] == '1') {
			g->misses++;
			c->ioff += ll + 2;
		} else {
			if (!parse_u64(p + 1, ll - 1, &n) || n > MAX_VALUE)
				return protocol_error(c, "malformed bulk length", p, ll);
			size_t need = ll + 2 + (size_t)n + 2;
			if (avail < need) {
				want_bytes(c, p, avail, need);
				return 0;
			}
			const char *data = p + ll + 2;
			if (data[n] != '\r' || data[n + 1] != '\n')
				return protocol_error(c, "bulk string not ended by CRLF", p, ll);
			check_value(g, r, r->cursor, value_flags(g, r->keys[r->cursor]), data,
			            (size_t)n);
			c->ioff += need;
		}
		if (++r->cursor == r->nkeys)
			complete(c, now);
	}
}

/* Parses every complete reply in the input buffer. 0: need more; -1: connection closed. */
static int parse(struct conn *c, uint64_t now)
{
	if (c->g->o.proto == PROTO_RESP)
		return parse_resp(c, now);
	struct lg *g = c->g;
	for (;;) {
		char *p;
		size_t ll;
		int got = next_line(c, &p, &ll);
		if (got <= 0)
			return got;
		size_t avail = c->ilen - c->ioff;
		struct req *r = &c->q[c->qhead];
		if (r->set_ver && ll >= 6 && memcmp(p, "VALUE ", 6) == 0)
			return protocol_error(c, "VALUE in reply to a set", p, ll);
		if (ll >= 6 && memcmp(p, "VALUE ", 6) == 0) {
			const char *tok[5];
			size_t tl[5];
			int nt = split(p + 6, ll - 6, tok, tl, 4);
			uint64_t flags, bytes, cas;
			if (nt != (g->o.gets ? 4 : 3))
				return protocol_error(c, g->o.gets ? "VALUE line without cas" : "VALUE line with cas", p, ll);
			if (!parse_u64(tok[1], tl[1], &flags) || flags > UINT32_MAX ||
			    !parse_u64(tok[2], tl[2], &bytes) || bytes > MAX_VALUE ||
			    (nt == 4 && !parse_u64(tok[3], tl[3], &cas)))
				return protocol_error(c, "malformed VALUE line", p, ll);
			size_t need = ll + 2 + (size_t)bytes + 2;
			if (avail < need) {
				want_bytes(c, p, avail, need);
				return 0;
			}
			const char *data = p + ll + 2;
			if (data[bytes] != '\r' || data[bytes + 1] != '\n')
				return protocol_error(c, "data block not ended by CRLF", p, ll);
			uint64_t idx;
			if (tl[0] <= g->prefix_len || memcmp(tok[0], g->o.prefix, g->prefix_len) != 0 ||
			    !parse_u64(tok[0] + g->prefix_len, tl[0] - g->prefix_len, &idx) ||
			    idx >= g->o.nkeys)
				return protocol_error(c, "VALUE for a key never asked", p, ll);
			uint32_t j = r->cursor;
			while (j < r->nkeys && r->keys[j] != idx)
				j++;
			if (j == r->nkeys)
				return protocol_error(c, "VALUE for a key not asked (or out of order)", p, ll);
			g->misses += j - r->cursor;
			r->cursor = j + 1;
			check_value(g, r, j, (uint32_t)flags, data, (size_t)bytes);
			c->ioff += need;
			continue;
		}
		c->ioff += ll + 2;
		bool is_error = (ll >= 12 && (memcmp(p, "SERVER_ERROR", 12) == 0 || memcmp(p, "CLIENT_ERROR", 12) == 0) &&
				 (ll == 12 || p[12] == ' ')) ||
				(ll == 5 && memcmp(p, "ERROR", 5) == 0);
		if (r->set_ver) {
			bool stored = ll == 6 && memcmp(p, "STORED", 6) == 0;
			bool not_stored = ll == 10 && memcmp(p, "NOT_STORED", 10) == 0;
			if (!stored && !not_stored && !is_error)
				return protocol_error(c, "unexpected reply to a set", p, ll);
			set_done(g, r->keys[0], stored);
			if (stored)
				g->sets_stored++;
			if (not_stored) {
				g->sets_not_stored++;
				complete(c, now);
				continue;
			}
			if (stored) {
				complete(c, now);
				continue;
			}
		}
		if (!r->set_ver && ll == 3 && memcmp(p, "END", 3) == 0) {
			g->misses += r->nkeys - r->cursor;
			complete(c, now);
		} else if (ll >= 12 && memcmp(p, "SERVER_ERROR", 12) == 0 && (ll == 12 || p[12] == ' ')) {
			if (!g->server_errors)
				fprintf(stderr, "loadgen: first error reply from %s: %.*s\n", g->o.server, (int)ll, p);
			g->server_errors++;
			complete(c, now);
		} else if (ll >= 12 && memcmp(p, "CLIENT_ERROR", 12) == 0 && (ll == 12 || p[12] == ' ')) {
			if (!g->client_errors)
				fprintf(stderr, "loadgen: first error reply from %s: %.*s\n", g->o.server, (int)ll, p);
			g->client_errors++;
			complete(c, now);
		} else if (ll == 5 && memcmp(p, "ERROR", 5) == 0) {
			g->plain_errors++;
			complete(c, now);
		} else {
			return protocol_error(c, "unexpected line", p, ll);
		}
		if (c->state != CS_OPEN)
			return -1;
	}
}

static void conn_read(struct conn *c)
{
	struct lg *g = c->g;
	if (!c->ib) {
		c->icap = c->idle ? IBUF_IDLE : IBUF_ACTIVE;
		c->ib = xrealloc(NULL, c->icap);
	}
	if (c->icap - c->ilen < READ_ROOM) {
		if (c->ioff) {
			memmove(c->ib, c->ib + c->ioff, c->ilen - c->ioff);
			c->ilen -= c->ioff;
			c->ioff = 0;
		}
		if (c->icap - c->ilen < READ_ROOM) {
			c->icap *= 2;
			c->ib = xrealloc(c->ib, c->icap);
		}
	}
	ssize_t n = read(c->fd, c->ib + c->ilen, c->icap - c->ilen);
	if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
		return;
	if (n <= 0) {
		if (n == 0)
			note_problem(g, "%s closed a%s connection (%u requests outstanding)", g->o.server,
				     c->idle ? "n idle" : "", c->qn);
		else
			note_problem(g, "read from %s: %s", g->o.server, strerror(errno));
		conn_close(c, true);
		return;
	}
	c->ilen += (size_t)n;
	uint64_t now = now_ns();
	if (parse(c, now) < 0)
		return;
	if (c->ioff == c->ilen)
		c->ioff = c->ilen = 0;
	refill(c, now);
	if (c->olen > c->ooff && !(c->events & EV_WRITE))
		conn_flush(c);
}

static void conn_established(struct conn *c)
{
	struct lg *g = c->g;
	c->state = CS_OPEN;
	g->connecting--;
	g->conns_ok++;
	if (c->idle)
		g->idle_ok++;
	conn_set_events(c, EV_READ);
}

static void check_connected(struct lg *g)
{
	if (g->phase == PH_CONNECT && g->next_connect == g->nconns && g->connecting == 0)
		start_run(g);
}

static void conn_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	(void)loop;
	struct conn *c = (struct conn *)w;
	struct lg *g = c->g;
	if (c->state == CS_CONNECTING) {
		int err = 0;
		socklen_t el = sizeof err;
		if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &el) < 0)
			err = errno;
		if (err) {
			if (!g->first_errno)
				g->first_errno = err;
			note_problem(g, "connect to %s: %s", g->o.server, strerror(err));
			conn_close(c, false);
			g->conns_failed++;
		} else {
			conn_established(c);
		}
		connect_more(g);
		check_connected(g);
		return;
	}
	if (c->state != CS_OPEN)
		return;
	if (revents & EV_READ)
		conn_read(c);
	if (c->state == CS_OPEN && (revents & EV_WRITE))
		conn_flush(c);
}

static void idle_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	(void)loop;
	(void)revents;
	struct conn *c = (struct conn *)((char *)w - offsetof(struct conn, tm));
	if (c->state != CS_OPEN || c->qn || !can_issue(c->g))
		return;
	issue(c, now_ns(), 1);
	if (!(c->events & EV_WRITE))
		conn_flush(c);
}

static void connect_more(struct lg *g)
{
	while (g->phase == PH_CONNECT && g->connecting < g->o.max_connecting && g->next_connect < g->nconns) {
		struct conn *c = &g->conns[g->next_connect++];
		int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, IPPROTO_TCP);
		if (fd < 0) {
			if (!g->first_errno)
				g->first_errno = errno;
			note_problem(g, "socket: %s", strerror(errno));
			c->state = CS_CLOSED;
			g->conns_failed++;
			continue;
		}
		int one = 1;
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
		c->fd = fd;
		ev_io_init(&c->io, conn_cb, fd, 0);
		c->events = 0;
		c->state = CS_CONNECTING;
		g->connecting++;
		if (connect(fd, (const struct sockaddr *)&g->o.addr, sizeof g->o.addr) == 0) {
			conn_established(c);
			continue;
		}
		if (errno == EINPROGRESS) {
			conn_set_events(c, EV_WRITE);
			continue;
		}
		if (!g->first_errno)
			g->first_errno = errno;
		note_problem(g, "connect to %s: %s", g->o.server, strerror(errno));
		conn_close(c, false);
		g->conns_failed++;
	}
}

/* ---------------------------------------------------------------- phases */

static void phase_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	(void)loop;
	(void)revents;
	struct lg *g = w->data;
	if (g->phase == PH_CONNECT) {
		/* Connect phase over: whatever is still connecting has failed. */
		for (long i = 0; i < g->nconns; i++) {
			struct conn *c = &g->conns[i];
			if (c->state == CS_CONNECTING) {
				conn_close(c, false);
				g->conns_failed++;
			}
			if (c->state == CS_NONE)
				g->conns_failed++;
		}
		g->next_connect = g->nconns;
		note_problem(g, "connect phase timed out after %.1f s", g->o.connect_timeout);
		start_run(g);
	} else if (g->phase == PH_RUN) {
		stop_sending(g);
	} else if (g->phase == PH_DRAIN) {
		finish(g);
	}
}

static void hard_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	(void)loop;
	(void)revents;
	struct lg *g = w->data;
	note_problem(g, "hard time limit of %.0f s reached", g->o.max_seconds);
	finish(g);
}

static void signal_cb(struct ev_loop *loop, ev_signal *w, int revents)
{
	(void)loop;
	(void)revents;
	struct lg *g = w->data;
	g->interrupted = true;
	finish(g);
}

static void start_run(struct lg *g)
{
	if (g->phase != PH_CONNECT)
		return;
	ev_timer_stop(g->loop, &g->phase_tm);
	g->phase = PH_RUN;
	uint64_t now = now_ns();
	g->t_run = g->t_last = now;
	for (long i = 0; i < g->nconns; i++) {
		struct conn *c = &g->conns[i];
		if (c->state != CS_OPEN)
			continue;
		if (c->idle) {
			if (g->o.idle_interval > 0) {
				double first = g->o.idle_interval * ((double)(splitmix(&c->rng) >> 11) * 0x1.0p-53);
				ev_timer_init(&c->tm, idle_cb, first, g->o.idle_interval);
				ev_timer_start(g->loop, &c->tm);
			}
			continue;
		}
		refill(c, now);
		conn_flush(c);
	}
	if (g->o.duration > 0) {
		ev_timer_set(&g->phase_tm, g->o.duration, 0);
		ev_timer_start(g->loop, &g->phase_tm);
	}
	if (g->phase == PH_RUN && g->conns_ok == 0)
		stop_sending(g);
}

static void stop_sending(struct lg *g)
{
	if (g->phase != PH_RUN)
		return;
	g->phase = PH_DRAIN;
	g->t_stop = now_ns();
	ev_timer_stop(g->loop, &g->phase_tm);
	for (long i = 0; i < g->nconns; i++)
		ev_timer_stop(g->loop, &g->conns[i].tm);
	if (g->outstanding == 0) {
		finish(g);
		return;
	}
	ev_timer_set(&g->phase_tm, g->o.drain_timeout, 0);
	ev_timer_start(g->loop, &g->phase_tm);
}

/* ---------------------------------------------------------------- setup */

static void raise_nofile(struct lg *g, rlim_t need)
{
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
		die("getrlimit: %s", strerror(errno));
	if (rl.rlim_cur < need) {
		bool done = false;
		if (rl.rlim_max < need) {
			/* Beyond the hard limit only with privilege: try, else settle for the hard limit. */
			struct rlimit up = {need, need};
			done = setrlimit(RLIMIT_NOFILE, &up) == 0;
		}
		if (!done) {
			struct rlimit want = {rl.rlim_max < need ? rl.rlim_max : need, rl.rlim_max};
			if (setrlimit(RLIMIT_NOFILE, &want) < 0)
				die("setrlimit(RLIMIT_NOFILE, %llu): %s", (unsigned long long)want.rlim_cur,
				    strerror(errno));
		}
		getrlimit(RLIMIT_NOFILE, &rl);
	}
	g->nofile = rl.rlim_cur;
	if (rl.rlim_cur < need)
		die("RLIMIT_NOFILE hard limit %llu is too low for %llu connections (need %llu descriptors); "
		    "raise it (ulimit -Hn, LimitNOFILE=) or use fewer connections",
		    (unsigned long long)rl.rlim_max, (unsigned long long)(need - 32), (unsigned long long)need);
}

static void parse_server(struct opts *o, const char *s)
{
	char host[64];
	const char *colon = strrchr(s, ':');
	if (!colon || (size_t)(colon - s) >= sizeof host)
		die("--server wants HOST:PORT, got '%s'", s);
	memcpy(host, s, (size_t)(colon - s));
	host[colon - s] = 0;
	char *end;
	long port = strtol(colon + 1, &end, 10);
	if (*end || port < 1 || port > 65535)
		die("bad port in '%s'", s);
	memset(&o->addr, 0, sizeof o->addr);
	o->addr.sin_family = AF_INET;
	o->addr.sin_port = htons((uint16_t)port);
	if (strcmp(host, "localhost") == 0)
		strcpy(host, "127.0.0.1");
	if (inet_pton(AF_INET, host, &o->addr.sin_addr) != 1)
		die("--server wants a numeric IPv4 address, got '%s'", host);
	if ((ntohl(o->addr.sin_addr.s_addr) >> 24) != 127)
		die("loadgen only sends to loopback addresses (127.0.0.0/8), not %s", host);
	snprintf(o->server, sizeof o->server, "%s:%ld", host, port);
}

static long num_arg(const char *name, const char *s, long lo, long hi)
{
	char *end;
	errno = 0;
	long v = strtol(s, &end, 10);
	if (errno || *end || end == s || v < lo || v > hi)
		die("%s wants an integer in %ld..%ld, got '%s'", name, lo, hi, s);
	return v;
}

static double dbl_arg(const char *name, const char *s, double lo, double hi)
{
	char *end;
	errno = 0;
	double v = strtod(s, &end);
	if (errno || *end || end == s || !(v >= lo && v <= hi))
		die("%s wants a number in %g..%g, got '%s'", name, lo, hi, s);
	return v;
}

static void usage(FILE *f)
{
	fputs("usage: loadgen [options]\n"
	      "  --server HOST:PORT       loopback address to load (default 127.0.0.1:11211)\n"
	      "      --protocol memcache|resp  memcached text or RESP2 (GET, MGET, SET) (default memcache)\n"
	      "  -c, --conns C            loaded connections (default 50)\n"
	      "  -P, --pipeline P         requests outstanding per connection (default 1)\n"
	      "  -m, --multi M            keys per get (default 1; RESP: MGET when M > 1)\n"
	      "  -n, --keys N             key space: keys <prefix>0 .. <prefix>N-1 (default 100000)\n"
	      "  -s, --value-size S       value bytes (default 100)\n"
	      "  -d, --dist D             uniform | zipf:S | hot:K (default uniform)\n"
	      "  -t, --duration SEC       stop sending after SEC seconds (default 10; 0 with --requests)\n"
	      "  -r, --requests R         stop after R requests (default 0: no limit)\n"
	      "      --seed X             random seed (default 1)\n"
	      "      --values pattern|fake  expected values (default pattern)\n"
	      "      --prefix P           key prefix (default key:)\n"
	      "      --gets               send gets (expect cas) instead of get\n"
	      "      --set-ratio F        a share F of requests are single-key sets of new versions\n"
	      "      --idle N             extra connections that stay mostly idle\n"
	      "      --idle-interval SEC  each idle connection gets one key every SEC (0: never)\n"
	      "      --connect-timeout SEC  connect phase limit (default 30)\n"
	      "      --drain-timeout SEC  wait for outstanding replies after sending stops (default 5)\n"
	      "      --max-seconds SEC    hard limit on the whole run (default 600)\n"
	      "      --max-connecting N   connects in progress at once (default 256)\n"
	      "      --label TEXT         copied into the JSON line\n"
	      "      --preload            store the N keys with set (pattern values), then exit\n"
	      "      --command LINE       send LINE (RESP: as an array of its words), print the reply, exit\n"
	      "      --dump               print everything the server sends until it closes\n"
	      "      --free-port          print a free 127.0.0.1 TCP port below the ephemeral range\n",
	      f);
}

static void parse_opts(struct opts *o, int argc, char **argv)
{
	enum {
		O_SEED = 256, O_VALUES, O_PREFIX, O_GETS, O_IDLE, O_IDLE_INT, O_CONN_TO, O_DRAIN_TO,
		O_MAXSEC, O_MAXCONN, O_LABEL, O_PRELOAD, O_COMMAND, O_DUMP, O_FREE, O_SERVER, O_SETRATIO,
		O_PROTOCOL
	};
	static const struct option lo[] = {
		{"server", required_argument, NULL, O_SERVER},
		{"protocol", required_argument, NULL, O_PROTOCOL},
		{"conns", required_argument, NULL, 'c'},
		{"pipeline", required_argument, NULL, 'P'},
		{"multi", required_argument, NULL, 'm'},
		{"keys", required_argument, NULL, 'n'},
		{"value-size", required_argument, NULL, 's'},
		{"dist", required_argument, NULL, 'd'},
		{"duration", required_argument, NULL, 't'},
		{"requests", required_argument, NULL, 'r'},
		{"seed", required_argument, NULL, O_SEED},
		{"values", required_argument, NULL, O_VALUES},
		{"prefix", required_argument, NULL, O_PREFIX},
		{"gets", no_argument, NULL, O_GETS},
		{"set-ratio", required_argument, NULL, O_SETRATIO},
		{"idle", required_argument, NULL, O_IDLE},
		{"idle-interval", required_argument, NULL, O_IDLE_INT},
		{"connect-timeout", required_argument, NULL, O_CONN_TO},
		{"drain-timeout", required_argument, NULL, O_DRAIN_TO},
		{"max-seconds", required_argument, NULL, O_MAXSEC},
		{"max-connecting", required_argument, NULL, O_MAXCONN},
		{"label", required_argument, NULL, O_LABEL},
		{"preload", no_argument, NULL, O_PRELOAD},
		{"command", required_argument, NULL, O_COMMAND},
		{"dump", no_argument, NULL, O_DUMP},
		{"free-port", no_argument, NULL, O_FREE},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	bool duration_set = false;
	o->conns = 50;
	o->pipeline = 1;
	o->multi = 1;
	o->nkeys = 100000;
	o->value_size = 100;
	o->dist = DIST_UNIFORM;
	o->dist_name = "uniform";
	o->duration = 10;
	o->seed = 1;
	o->values = VAL_PATTERN;
	o->proto = PROTO_MC;
	o->prefix = "key:";
	o->label = "";
	o->connect_timeout = 30;
	o->drain_timeout = 5;
	o->max_seconds = 600;
	o->max_connecting = 256;
	parse_server(o, "127.0.0.1:11211");
	int ch;
	while ((ch = getopt_long(argc, argv, "c:P:m:n:s:d:t:r:h", lo, NULL)) != -1) {
		switch (ch) {
		case O_SERVER: parse_server(o, optarg); break;
		case O_PROTOCOL:
			if (strcmp(optarg, "memcache") == 0)
				o->proto = PROTO_MC;
			else if (strcmp(optarg, "resp") == 0)
				o->proto = PROTO_RESP;
			else
				die("--protocol wants memcache or resp, got '%s'", optarg);
			break;
		case 'c': o->conns = num_arg("--conns", optarg, 0, 1000000); break;
		case 'P': o->pipeline = num_arg("--pipeline", optarg, 1, 100000); break;
		case 'm': o->multi = num_arg("--multi", optarg, 1, 10000); break;
		case 'n': o->nkeys = (uint32_t)num_arg("--keys", optarg, 1, 1000000000); break;
		case 's': o->value_size = (uint32_t)num_arg("--value-size", optarg, 0, 16 << 20); break;
		case 'd':
			o->dist_name = optarg;
			if (strcmp(optarg, "uniform") == 0) {
				o->dist = DIST_UNIFORM;
			} else if (strncmp(optarg, "zipf:", 5) == 0) {
				o->dist = DIST_ZIPF;
				o->zipf_s = dbl_arg("--dist zipf:S", optarg + 5, 0, 10);
			} else if (strncmp(optarg, "hot:", 4) == 0) {
				o->dist = DIST_HOT;
				o->hot = (uint32_t)num_arg("--dist hot:K", optarg + 4, 1, 1000000000);
			} else {
				die("--dist wants uniform, zipf:S or hot:K, got '%s'", optarg);
			}
			break;
		case 't':
			o->duration = dbl_arg("--duration", optarg, 0, 86400);
			duration_set = true;
			break;
		case 'r': o->count = (uint64_t)num_arg("--requests", optarg, 0, LONG_MAX); break;
		case O_SEED: o->seed = (uint64_t)num_arg("--seed", optarg, 0, LONG_MAX); break;
		case O_VALUES:
			if (strcmp(optarg, "pattern") == 0)
				o->values = VAL_PATTERN;
			else if (strcmp(optarg, "fake") == 0)
				o->values = VAL_FAKE;
			else
				die("--values wants pattern or fake, got '%s'", optarg);
			break;
		case O_PREFIX:
			o->prefix = optarg;
			if (strlen(optarg) > 200 || strpbrk(optarg, " \t\r\n"))
				die("--prefix: at most 200 bytes, no spaces");
			break;
		case O_GETS: o->gets = true; break;
		case O_SETRATIO: o->set_ratio = dbl_arg("--set-ratio", optarg, 0, 1); break;
		case O_IDLE: o->idle = num_arg("--idle", optarg, 0, 1000000); break;
		case O_IDLE_INT: o->idle_interval = dbl_arg("--idle-interval", optarg, 0, 3600); break;
		case O_CONN_TO: o->connect_timeout = dbl_arg("--connect-timeout", optarg, 0.001, 3600); break;
		case O_DRAIN_TO: o->drain_timeout = dbl_arg("--drain-timeout", optarg, 0.001, 3600); break;
		case O_MAXSEC: o->max_seconds = dbl_arg("--max-seconds", optarg, 0.001, 86400); break;
		case O_MAXCONN: o->max_connecting = num_arg("--max-connecting", optarg, 1, 1000000); break;
		case O_LABEL: o->label = optarg; break;
		case O_PRELOAD: o->preload = true; break;
		case O_COMMAND: o->command = optarg; break;
		case O_DUMP: o->dump = true; break;
		case O_FREE: o->free_port = true; break;
		case 'h': usage(stdout); exit(0);
		default: usage(stderr); exit(2);
		}
	}
	if (optind != argc)
		die("unexpected argument '%s'", argv[optind]);
	if (o->count && !duration_set)
		o->duration = 0;
	if (o->duration == 0 && o->count == 0)
		die("give --duration or --requests (or both)");
	if (o->set_ratio > 0 && (o->values != VAL_PATTERN || o->value_size < MIN_SET_VALUE))
		die("--set-ratio needs --values pattern and --value-size of at least %d", MIN_SET_VALUE);
	if (o->gets && o->proto == PROTO_RESP)
		die("--gets is a memcache command: not with --protocol resp");
	if (o->dist == DIST_HOT && o->hot > o->nkeys)
		o->hot = o->nkeys;
	for (const char *l = o->label; *l; l++)
		if (*l == '"' || *l == '\\' || (unsigned char)*l < 0x20)
			die("--label: no quotes, backslashes or control characters");
}

/* ---------------------------------------------------------------- side modes */

static int connect_blocking(const struct opts *o, double timeout_s)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, IPPROTO_TCP);
	if (fd < 0)
		return -1;
	struct timeval tv = {(time_t)timeout_s, (suseconds_t)((timeout_s - (double)(time_t)timeout_s) * 1e6)};
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
	if (connect(fd, (const struct sockaddr *)&o->addr, sizeof o->addr) < 0) {
		int e = errno;
		close(fd);
		errno = e;
		return -1;
	}
	return fd;
}

static bool write_all(int fd, const char *p, size_t n)
{
	while (n) {
		ssize_t w = write(fd, p, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return false;
		p += w;
		n -= (size_t)w;
	}
	return true;
}

static int run_preload(struct lg *g)
{
	const struct opts *o = &g->o;
	int fd = connect_blocking(o, 10);
	if (fd < 0)
		die("connect to %s: %s", o->server, strerror(errno));
	uint64_t t0 = now_ns();
	size_t vmax = o->value_size + 300;
	char *val = xrealloc(NULL, vmax);
	size_t cap = PRELOAD_BATCH * (vmax + 300), len;
	char *out = xrealloc(NULL, cap);
	char in[PRELOAD_BATCH * 8 + 4096]; /* replies are single lines in both protocols */
	uint64_t stored = 0, errors = 0;
	bool broken = false;
	for (uint32_t base = 0; base < o->nkeys && !broken; base += PRELOAD_BATCH) {
		uint32_t end = base + PRELOAD_BATCH < o->nkeys ? base + PRELOAD_BATCH : o->nkeys;
		len = 0;
		for (uint32_t i = base; i < end; i++) {
			if (o->proto == PROTO_RESP) {
				len += resp_set(g, i, 0, out + len, val);
				continue;
			}
			char key[256];
			size_t kl = key_format(g, i, key);
			size_t vl = value_format(g, i, 0, val);
			len += (size_t)snprintf(out + len, cap - len, "set %.*s %u 0 %zu\r\n", (int)kl, key,
						value_flags(g, i), vl);
			memcpy(out + len, val, vl);
			len += vl;
			out[len++] = '\r';
			out[len++] = '\n';
		}
		if (!write_all(fd, out, len)) {
			fprintf(stderr, "loadgen: preload write: %s\n", strerror(errno));
			broken = true;
			break;
		}
		/* Read one reply line per set. */
		uint32_t want = end - base, got = 0;
		size_t il = 0;
		while (got < want) {
			ssize_t n = read(fd, in + il, sizeof in - il);
			if (n <= 0) {
				fprintf(stderr, "loadgen: preload read: %s\n", n ? strerror(errno) : "connection closed");
				broken = true;
				break;
			}
			il += (size_t)n;
			char *p = in, *nl;
			while (got < want && (nl = memchr(p, '\n', il - (size_t)(p - in)))) {
				size_t ll = (size_t)(nl - p);
				if ((o->proto == PROTO_MC && ll == 7 &&
				     memcmp(p, "STORED\r", 7) == 0) ||
				    (o->proto == PROTO_RESP && ll == 4 &&
				     memcmp(p, "+OK\r", 4) == 0)) {
					stored++;
				} else {
					if (!errors)
						fprintf(stderr, "loadgen: preload reply: %.*s\n", (int)ll, p);
					errors++;
				}
				got++;
				p = nl + 1;
			}
			il -= (size_t)(p - in);
			memmove(in, p, il);
			if (il == sizeof in) {
				fprintf(stderr, "loadgen: preload: reply line too long\n");
				broken = true;
				break;
			}
		}
	}
	close(fd);
	free(out);
	free(val);
	double secs = (double)(now_ns() - t0) / 1e9;
	printf("{\"mode\":\"preload\",\"server\":\"%s\",\"keys\":%" PRIu32 ",\"value_size\":%" PRIu32
	       ",\"stored\":%" PRIu64 ",\"errors\":%" PRIu64 ",\"seconds\":%.3f}\n",
	       o->server, o->nkeys, o->value_size, stored, errors, secs);
	return (!broken && stored == o->nkeys) ? 0 : 1;
}

static bool terminal_line(const char *p, size_t ll)
{
	static const char *const ends[] = {"END", "OK", "ERROR", "STORED", "NOT_STORED", "DELETED", "NOT_FOUND", "RESET"};
	for (size_t i = 0; i < sizeof ends / sizeof ends[0]; i++)
		if (ll == strlen(ends[i]) && memcmp(p, ends[i], ll) == 0)
			return true;
	return (ll >= 8 && memcmp(p, "VERSION ", 8) == 0) || (ll >= 12 && memcmp(p, "SERVER_ERROR", 12) == 0) ||
	       (ll >= 12 && memcmp(p, "CLIENT_ERROR", 12) == 0);
}

/* Bytes of the whole RESP2 reply at p (n bytes read): 0 incomplete, -1 malformed. */
static long resp_reply_len(const char *p, size_t n, int depth)
{
	const char *nl = memchr(p, '\n', n);
	if (!nl)
		return 0;
	size_t ll = (size_t)(nl - p), hl = ll + 1;
	if (ll < 2 || p[ll - 1] != '\r' || depth > 32)
		return -1;
	ll--;
	uint64_t v;
	switch (p[0]) {
	case '+':
	case '-':
	case ':':
		return (long)hl;
	case '$':
	case '*':
		if (ll == 3 && p[1] == '-' && p[2] == '1')
			return (long)hl;
		if (!parse_u64(p + 1, ll - 1, &v) || v > MAX_VALUE)
			return -1;
		if (p[0] == '$') {
			if (n < hl + v + 2)
				return 0;
			return p[hl + v] == '\r' && p[hl + v + 1] == '\n' ? (long)(hl + v + 2) : -1;
		}
		for (uint64_t k = 0; k < v; k++) {
			long e = resp_reply_len(p + hl, n - hl, depth + 1);
			if (e <= 0)
				return e;
			hl += (size_t)e;
		}
		return (long)hl;
	default:
		return -1;
	}
}

/* --command LINE as a RESP array of its space-separated words. */
static char *resp_command(const char *line, size_t *len)
{
	size_t n = strlen(line), words = 0;
	char *out = xrealloc(NULL, 3 * n + 32), *p;
	for (size_t i = 0; i < n; i++)
		if (line[i] != ' ' && (i == 0 || line[i - 1] == ' '))
			words++;
	p = out;
	*p++ = '*';
	p += utoa(p, words);
	*p++ = '\r';
	*p++ = '\n';
	for (size_t i = 0; i < n;) {
		if (line[i] == ' ') {
			i++;
			continue;
		}
		size_t w = strcspn(line + i, " ");
		p = put_bulk(p, line + i, w);
		i += w;
	}
	*len = (size_t)(p - out);
	return out;
}

/*
 * --command: one command out, the reply to stdout up to its terminal line (memcache) or its
 * end (RESP). --dump: all until EOF.
 */
static int run_command(struct lg *g)
{
	const struct opts *o = &g->o;
	int fd = connect_blocking(o, 5);
	if (fd < 0) {
		fprintf(stderr, "loadgen: connect to %s: %s\n", o->server, strerror(errno));
		return 1;
	}
	if (o->command) {
		size_t n = strlen(o->command);
		char *line;
		if (o->proto == PROTO_RESP) {
			line = resp_command(o->command, &n);
		} else {
			line = xrealloc(NULL, n + 2);
			memcpy(line, o->command, n);
			memcpy(line + n, "\r\n", 2);
			n += 2;
		}
		if (!write_all(fd, line, n)) {
			free(line);
			fprintf(stderr, "loadgen: write: %s\n", strerror(errno));
			close(fd);
			return 1;
		}
		free(line);
	}
	size_t cap = 1 << 16, len = 0, scan = 0;
	char *buf = xrealloc(NULL, cap);
	uint64_t deadline = now_ns() + 5000000000u;
	int rc = 1;
	for (;;) {
		if (len == cap) {
			if (cap >= (16u << 20))
				break;
			cap *= 2;
			buf = xrealloc(buf, cap);
		}
		ssize_t n = read(fd, buf + len, cap - len);
		if (n == 0) {
			rc = o->dump ? 0 : 1;
			break;
		}
		if (n < 0) {
			if (errno == EINTR)
				continue;
			fprintf(stderr, "loadgen: read: %s\n", strerror(errno));
			break;
		}
		len += (size_t)n;
		bool done = false;
		char *nl;
		if (!o->dump && o->proto == PROTO_RESP) {
			long e = resp_reply_len(buf, len, 0);
			if (e < 0) {
				fprintf(stderr, "loadgen: malformed RESP reply\n");
				break;
			}
			done = e > 0;
		}
		while (!o->dump && o->proto == PROTO_MC &&
		       (nl = memchr(buf + scan, '\n', len - scan))) {
			size_t ll = (size_t)(nl - (buf + scan));
			if (ll && buf[scan + ll - 1] == '\r')
				ll--;
			if (terminal_line(buf + scan, ll))
				done = true;
			scan = (size_t)(nl - buf) + 1;
			if (done)
				break;
		}
		if (done) {
			rc = 0;
			break;
		}
		if (now_ns() > deadline) {
			fprintf(stderr, "loadgen: no complete reply within 5 s\n");
			break;
		}
	}
	fwrite(buf, 1, len, stdout);
	free(buf);
	close(fd);
	return rc;
}

static int run_free_port(void)
{
	unsigned lo = 32768;
	FILE *f = fopen("/proc/sys/net/ipv4/ip_local_port_range", "r");
	if (f) {
		unsigned a, b;
		if (fscanf(f, "%u %u", &a, &b) == 2)
			lo = a;
		fclose(f);
	}
	if (lo <= 11000)
		lo = 65535; /* odd range: search above 10000 anyway */
	uint64_t s = now_ns() ^ ((uint64_t)getpid() << 32);
	for (int tries = 0; tries < 2000; tries++) {
		unsigned span = lo > 10000 ? lo - 10000 : 1;
		unsigned port = 10000 + (unsigned)(splitmix(&s) % span);
		int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (fd < 0)
			return 1;
		struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
		a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		int ok = bind(fd, (struct sockaddr *)&a, sizeof a) == 0 && listen(fd, 1) == 0;
		close(fd);
		if (ok) {
			printf("%u\n", port);
			return 0;
		}
	}
	fprintf(stderr, "loadgen: no free port found\n");
	return 1;
}

/* ---------------------------------------------------------------- the run */

static void print_json(struct lg *g)
{
	uint64_t end = g->t_last > g->t_run ? g->t_last : g->t_run;
	if (g->t_stop > end)
		end = g->t_stop;
	double elapsed = g->t_run ? (double)(end - g->t_run) / 1e9 : 0;
	double connect_s = g->t_run ? (double)(g->t_run - g->t_start) / 1e9 : (double)(now_ns() - g->t_start) / 1e9;
	uint64_t error_replies = g->server_errors + g->client_errors + g->plain_errors;
	uint64_t errors = error_replies + g->sets_not_stored + g->lost_requests + g->unanswered;
	uint64_t keys_done = g->hits + g->misses;
	double mean = g->completed ? (double)g->lat_sum / (double)g->completed / 1000.0 : 0;
	struct rusage ru;
	double cpu_s = 0;
	if (getrusage(RUSAGE_SELF, &ru) == 0)
		cpu_s = (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 + (double)ru.ru_stime.tv_sec +
			(double)ru.ru_stime.tv_usec / 1e6;
	printf("{\"label\":\"%s\",\"server\":\"%s\",\"conns\":%ld,\"idle\":%ld,\"idle_interval_s\":%g,"
	       "\"pipeline\":%ld,\"multi\":%ld,\"cmd\":\"%s\",\"dist\":\"%s\",\"key_space\":%" PRIu32
	       ",\"value_size\":%" PRIu32 ",\"values\":\"%s\",\"seed\":%" PRIu64 ",\"duration_s\":%g,"
	       "\"max_requests\":%" PRIu64 ",\"nofile\":%llu,"
	       "\"connect_s\":%.3f,\"conns_ok\":%ld,\"conns_failed\":%ld,\"conns_closed\":%ld,"
	       "\"idle_ok\":%ld,\"idle_closed\":%ld,\"idle_open_at_end\":%ld,"
	       "\"elapsed_s\":%.3f,\"requests\":%" PRIu64 ",\"completed\":%" PRIu64 ",\"keys\":%" PRIu64
	       ",\"idle_requests\":%" PRIu64 ",\"ops_per_s\":%.0f,\"keys_per_s\":%.0f,"
	       "\"hits\":%" PRIu64 ",\"misses\":%" PRIu64 ",\"errors\":%" PRIu64 ",\"server_errors\":%" PRIu64
	       ",\"client_errors\":%" PRIu64 ",\"error_lines\":%" PRIu64 ",\"protocol_errors\":%" PRIu64
	       ",\"lost_requests\":%" PRIu64 ",\"unanswered\":%" PRIu64 ",\"wrong_values\":%" PRIu64 ","
	       "\"set_ratio\":%g,\"gets\":%" PRIu64 ",\"sets\":%" PRIu64 ",\"sets_stored\":%" PRIu64
	       ",\"sets_not_stored\":%" PRIu64 ",\"stale_values\":%" PRIu64 ",\"gets_per_s\":%.0f,"
	       "\"p50_us\":%.1f,\"p90_us\":%.1f,\"p99_us\":%.1f,\"p999_us\":%.1f,\"max_us\":%.1f,"
	       "\"mean_us\":%.1f,\"cpu_s\":%.3f,\"interrupted\":%s,\"first_problem\":\"",
	       g->o.label, g->o.server, g->o.conns, g->o.idle, g->o.idle_interval, g->o.pipeline, g->o.multi,
	       g->o.proto == PROTO_RESP ? (g->o.multi > 1 ? "MGET" : "GET") : g->o.gets ? "gets" : "get", g->o.dist_name, g->o.nkeys, g->o.value_size,
	       g->o.values == VAL_FAKE ? "fake" : "pattern", g->o.seed, g->o.duration, g->o.count,
	       (unsigned long long)g->nofile, connect_s, g->conns_ok, g->conns_failed, g->conns_closed,
	       g->idle_ok, g->idle_closed, g->idle_ok - g->idle_closed, elapsed, g->issued, g->completed,
	       g->keys_issued, g->idle_requests, elapsed > 0 ? (double)g->completed / elapsed : 0,
	       elapsed > 0 ? (double)keys_done / elapsed : 0, g->hits, g->misses, errors, g->server_errors,
	       g->client_errors, g->plain_errors, g->protocol_errors, g->lost_requests, g->unanswered,
	       g->wrong_values, g->o.set_ratio, g->gets_done, g->sets_done, g->sets_stored, g->sets_not_stored,
	       g->stale_values, elapsed > 0 ? (double)g->gets_done / elapsed : 0, hist_pct(g, 0.50), hist_pct(g, 0.90), hist_pct(g, 0.99), hist_pct(g, 0.999),
	       (double)g->lat_max / 1000.0, mean, cpu_s, g->interrupted ? "true" : "false");
	for (const char *p = g->first_problem; *p; p++)
		if (*p != '"' && *p != '\\' && (unsigned char)*p >= 0x20)
			putchar(*p);
	printf("\"}\n");
}

static int run_load(struct lg *g)
{
	struct opts *o = &g->o;
	g->nconns = o->conns + o->idle;
	raise_nofile(g, (rlim_t)g->nconns + 32);
	signal(SIGPIPE, SIG_IGN);
	if (o->dist == DIST_ZIPF)
		zipf_setup(g);
	if (o->set_ratio > 0) {
		g->kv = calloc(o->nkeys, sizeof *g->kv);
		if (!g->kv)
			die("out of memory");
	}
	g->loop = ev_default_loop(EVBACKEND_EPOLL);
	if (!g->loop)
		g->loop = ev_default_loop(0);
	if (!g->loop)
		die("cannot start libev");
	g->conns = calloc((size_t)g->nconns ? (size_t)g->nconns : 1, sizeof *g->conns);
	if (!g->conns)
		die("out of memory");
	for (long i = 0; i < g->nconns; i++) {
		struct conn *c = &g->conns[i];
		c->g = g;
		c->fd = -1;
		c->idle = i >= o->conns;
		c->rng = o->seed ^ (0x632be59bd9b4e019u * (uint64_t)(i + 1));
		splitmix(&c->rng);
		c->qcap = c->idle ? 1 : (unsigned)o->pipeline;
		c->q = xrealloc(NULL, sizeof *c->q * c->qcap);
		size_t per = (size_t)c->qcap * (size_t)o->multi;
		uint32_t *keys = xrealloc(NULL, sizeof(uint32_t) * per * 2);
		for (unsigned k = 0; k < c->qcap; k++) {
			c->q[k].keys = keys + (size_t)k * (size_t)o->multi;
			c->q[k].floors = keys + per + (size_t)k * (size_t)o->multi;
		}
		ev_init(&c->tm, idle_cb);
	}
	ev_init(&g->phase_tm, phase_cb);
	g->phase_tm.data = g;
	ev_init(&g->hard_tm, hard_cb);
	g->hard_tm.data = g;
	ev_timer_set(&g->hard_tm, o->max_seconds, 0);
	ev_timer_start(g->loop, &g->hard_tm);
	ev_signal_init(&g->sigint, signal_cb, SIGINT);
	g->sigint.data = g;
	ev_signal_start(g->loop, &g->sigint);
	ev_signal_init(&g->sigterm, signal_cb, SIGTERM);
	g->sigterm.data = g;
	ev_signal_start(g->loop, &g->sigterm);

	g->phase = PH_CONNECT;
	g->t_start = now_ns();
	ev_timer_set(&g->phase_tm, o->connect_timeout, 0);
	ev_timer_start(g->loop, &g->phase_tm);
	connect_more(g);
	check_connected(g);
	if (g->phase != PH_DONE)
		ev_run(g->loop, 0);
	if (!g->t_stop)
		g->t_stop = now_ns();
	g->unanswered = g->outstanding;
	print_json(g);
	fflush(stdout);
	for (long i = 0; i < g->nconns; i++) {
		struct conn *c = &g->conns[i];
		if (c->fd >= 0)
			close(c->fd);
		free(c->ib);
		free(c->ob);
		if (c->q)
			free(c->q[0].keys);
		free(c->q);
	}
	free(g->conns);
	free(g->zipf_cdf);
	free(g->kv);
	return g->conns_ok > 0 ? 0 : 1;
}

int main(int argc, char **argv)
{
	static struct lg g;
	parse_opts(&g.o, argc, argv);
	g.prefix_len = strlen(g.o.prefix);
	g.fill = xrealloc(NULL, (size_t)g.o.value_size + 32);
	g.vbuf = xrealloc(NULL, (size_t)g.o.value_size + 300);
	for (size_t k = 0; k < (size_t)g.o.value_size + 32; k++)
		g.fill[k] = (char)('a' + k % 26);
	int rc;
	if (g.o.free_port)
		rc = run_free_port();
	else if (g.o.command || g.o.dump)
		rc = run_command(&g);
	else if (g.o.preload)
		rc = run_preload(&g);
	else
		rc = run_load(&g);
	free(g.fill);
	free(g.vbuf);
	return rc;
}
