/*
 * test_redis: RESP2 clients ([server] redis_listen) and the Redis backend
 * ([upstream] protocol = redis), end to end.
 *
 * Oracle: a real redis-server. The same bytes are sent to it directly and to
 * coalesced in front of it, and the replies must be equal, errors included.
 * Collapse, batching, the AUTH/SELECT handshake and upstream faults are
 * counted and provoked on tests/fake_redis.c. Real clients (redis-cli,
 * python3-redis, redis-benchmark) must work unchanged.
 */
#include "proto_respreply.h"
#include "testutil.h"

#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#define MS 5000

/* ---- processes ---- */

static pid_t spawn_quiet(const char *const *argv, const char *log)
{
	pid_t pid = fork();

	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		int fd = open("/dev/null", O_RDONLY);
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		dup2(fd, 0);
		fd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0644);
		if (fd >= 0) {
			dup2(fd, 1);
			dup2(fd, 2);
		}
		execvp(argv[0], (char *const *)argv);
		_exit(127);
	}
	return pid;
}

static void wait_port(struct proc *p)
{
	double end = tu_now() + 5;

	while (tu_now() < end) {
		int fd = tu_connect(p->port);
		if (fd >= 0) {
			close(fd);
			return;
		}
		ck_assert_msg(waitpid(p->pid, NULL, WNOHANG) != p->pid, "exited (log %s)", p->log);
		tu_sleep_ms(10);
	}
	ck_abort_msg("nothing on port %d (log %s)", p->port, p->log);
}

static const char *fake_bin(void)
{
	static char path[512];
	const char *env = getenv("FAKE_REDIS");
	const char *up = getenv("FAKE_UPSTREAM");

	if (env)
		return env;
	if (up) {
		char tmp[512];
		snprintf(tmp, sizeof(tmp), "%s", up);
		snprintf(path, sizeof(path), "%s/fake_redis", dirname(tmp));
		return path;
	}
	return "build/fake_redis";
}

/* The fake Redis in mode with delay_ms, recording into record (or not). */
static void fake_start(struct proc *p, const char *mode, int delay_ms, const char *record)
{
	char port[16], delay[16];
	const char *argv[] = {
	    fake_bin(), "-p", port, "-m", mode, "-d", delay, "-r", record ? record : "/dev/null",
	    NULL};

	memset(p, 0, sizeof(*p));
	p->port = tu_free_port();
	snprintf(port, sizeof(port), "%d", p->port);
	snprintf(delay, sizeof(delay), "%d", delay_ms);
	snprintf(p->log, sizeof(p->log), "%s/fake_redis-%d.log", tu_tmpdir(), p->port);
	p->pid = spawn_quiet(argv, p->log);
	wait_port(p);
}

/* redis-server with a password (NULL: none). */
static void redis_start(struct proc *p, const char *password)
{
	char port[16];
	const char *argv[] = {
	    "redis-server", "--port", port,    "--bind",    "127.0.0.1",     "--save", "",
	    "--appendonly", "no",     "--dir", tu_tmpdir(), "--requirepass", password, NULL};

	if (!password) {
		tu_redis_start(p);
		return;
	}
	memset(p, 0, sizeof(*p));
	p->port = tu_free_port();
	snprintf(port, sizeof(port), "%d", p->port);
	snprintf(p->log, sizeof(p->log), "%s/redis-%d.log", tu_tmpdir(), p->port);
	p->pid = spawn_quiet(argv, p->log);
	wait_port(p);
}

/* coalesced in front of servers (protocol redis unless opts say), with a
 * RESP listener on *rport. */
static void co_start(struct proc *co, int *rport, const char *servers, const char *proto,
                     const char *const *extra)
{
	char rl[64], pr[64];
	const char *opts[24];
	int n = 0;

	*rport = tu_free_port();
	snprintf(rl, sizeof(rl), "server.redis_listen=127.0.0.1:%d", *rport);
	snprintf(pr, sizeof(pr), "upstream.protocol=%s", proto);
	opts[n++] = rl;
	opts[n++] = pr;
	for (int i = 0; extra && extra[i] && n < 22; i++)
		opts[n++] = extra[i];
	opts[n] = NULL;
	tu_coalesced_start(co, servers, opts);
	struct proc rp = {.pid = co->pid, .port = *rport};
	snprintf(rp.log, sizeof(rp.log), "%s", co->log);
	wait_port(&rp);
}

static void addr_of(const struct proc *p, char *buf, size_t len)
{
	snprintf(buf, len, "127.0.0.1:%d", p->port);
}

/* ---- RESP I/O ---- */

/* Complete replies at the start of buf. */
static int count_replies(const char *buf, size_t len)
{
	struct rr_parser p;
	size_t off = 0;
	int n = 0;

	rr_init(&p);
	while (off < len) {
		struct rr_token t;
		size_t used = 0;
		enum rr_status s = rr_parse(&p, buf + off, len - off, &t, &used);
		if (s != RR_TOKEN)
			break;
		off += used;
		if (t.done)
			n++;
	}
	return n;
}

/* Read until n whole replies came, the peer closed, or ms passed. */
static char *resp_read(int fd, int n, int ms, size_t *lenp)
{
	size_t cap = 1 << 16, len = 0;
	char *buf = malloc(cap + 1);
	double end = tu_now() + ms / 1000.0;

	ck_assert_ptr_nonnull(buf);
	while (count_replies(buf, len) < n && tu_now() < end) {
		struct pollfd pf = {fd, POLLIN, 0};
		ssize_t r;
		if (poll(&pf, 1, 20) <= 0)
			continue;
		if (len == cap) {
			cap *= 2;
			buf = realloc(buf, cap + 1);
			ck_assert_ptr_nonnull(buf);
		}
		r = recv(fd, buf + len, cap - len, 0);
		if (r <= 0)
			break;
		len += (size_t)r;
	}
	buf[len] = '\0';
	*lenp = len;
	return buf;
}

/* Send req on a fresh connection to port and read n replies. */
static char *ask(int port, const void *req, size_t reqlen, int n, size_t *len)
{
	int fd = tu_connect(port);
	char *r;

	ck_assert_int_ge(fd, 0);
	tu_send(fd, req, reqlen);
	r = resp_read(fd, n, MS, len);
	close(fd);
	return r;
}

static char *asks(int port, const char *req, int n)
{
	size_t len;
	return ask(port, req, strlen(req), n, &len);
}

/* The same bytes to Redis and through coalesced: the same reply bytes. */
static void same(int redis_port, int co_port, const void *req, size_t reqlen, int n)
{
	size_t l1, l2;
	char *want = ask(redis_port, req, reqlen, n, &l1);
	char *got = ask(co_port, req, reqlen, n, &l2);

	ck_assert_msg(count_replies(want, l1) == n, "redis gave %d replies, not %d, to '%.*s'",
	              count_replies(want, l1), n, (int)(reqlen > 200 ? 200 : reqlen),
	              (const char *)req);
	ck_assert_msg(l1 == l2 && memcmp(want, got, l1) == 0,
	              "for '%.*s'\nredis:     '%.*s' (%zu)\ncoalesced: '%.*s' (%zu)",
	              (int)(reqlen > 200 ? 200 : reqlen), (const char *)req,
	              (int)(l1 > 300 ? 300 : l1), want, l1, (int)(l2 > 300 ? 300 : l2), got, l2);
	free(want);
	free(got);
}

static void sames(int redis_port, int co_port, const char *req, int n)
{
	same(redis_port, co_port, req, strlen(req), n);
}

/* A command as a RESP array. */
static size_t cmd(char *out, size_t cap, int argc, const char *const *argv, const size_t *lens)
{
	size_t n = rr_put_hdr(out, cap, '*', argc);

	for (int i = 0; i < argc; i++)
		n += rr_put_bulk(out + n, cap - n, argv[i], lens ? lens[i] : strlen(argv[i]));
	return n;
}

static void redis_set(int port, const char *key, const void *val, size_t len)
{
	const char *argv[] = {"SET", key, val};
	size_t lens[] = {3, strlen(key), len};
	size_t cap = len + 256, n, rl;
	char *buf = malloc(cap), *r;

	n = cmd(buf, cap, 3, argv, lens);
	r = ask(port, buf, n, 1, &rl);
	ck_assert_str_eq(r, "+OK\r\n");
	free(r);
	free(buf);
}

static int count_lines(const char *path, const char *prefix)
{
	size_t len;
	char *s = tu_read_file(path, &len);
	int n = 0;

	if (!s)
		return 0;
	for (char *p = s; p && *p;) {
		if (strncmp(p, prefix, strlen(prefix)) == 0)
			n++;
		p = strchr(p, '\n');
		if (p)
			p++;
	}
	free(s);
	return n;
}

/* ---- oracle: real Redis ---- */

static struct proc redis, co;
static int rport;

static void oracle_setup(void)
{
	char srv[64];
	char *big = malloc(1 << 20);

	redis_start(&redis, NULL);
	for (size_t i = 0; i < (1u << 20); i++)
		big[i] = (char)('a' + i % 26);
	redis_set(redis.port, "a", "hello", 5);
	redis_set(redis.port, "empty", "", 0);
	redis_set(redis.port, "crlf", "x\r\n$3\r\nEND\r\n", 12);
	redis_set(redis.port, "nul", "a\0b", 3);
	redis_set(redis.port, "big", big, 1 << 20);
	redis_set(redis.port, "sp ace", "spaced", 6);
	redis_set(redis.port, "k\r\n x", "binary key", 10);
	redis_set(redis.port, "", "empty key", 9);
	for (int i = 0; i < 250; i++) {
		char k[16], v[32];
		snprintf(k, sizeof(k), "h%d", i);
		snprintf(v, sizeof(v), "value of h%d", i);
		redis_set(redis.port, k, v, strlen(v));
	}
	free(big);
	addr_of(&redis, srv, sizeof(srv));
	co_start(&co, &rport, srv, "redis", NULL);
}

static void oracle_teardown(void)
{
	tu_stop_clean(&co);
	tu_stop(&redis);
}

START_TEST(test_oracle_reads)
{
	sames(redis.port, rport, "*2\r\n$3\r\nGET\r\n$1\r\na\r\n", 1);
	sames(redis.port, rport, "*2\r\n$3\r\nget\r\n$4\r\nnope\r\n", 1);
	sames(redis.port, rport, "*2\r\n$3\r\nGET\r\n$5\r\nempty\r\n", 1);
	sames(redis.port, rport, "*2\r\n$3\r\nGET\r\n$4\r\ncrlf\r\n", 1);
	sames(redis.port, rport, "*2\r\n$3\r\nGET\r\n$3\r\nnul\r\n", 1);
	sames(redis.port, rport, "*2\r\n$3\r\nGET\r\n$6\r\nsp ace\r\n", 1);
	sames(redis.port, rport, "*2\r\n$3\r\nGET\r\n$3\r\nbig\r\n", 1);
	/* Duplicates, misses, binary values in one MGET. */
	sames(redis.port, rport,
	      "*8\r\n$4\r\nMGET\r\n$1\r\na\r\n$4\r\nnope\r\n$1\r\na\r\n$5\r\nempty\r\n"
	      "$4\r\ncrlf\r\n$3\r\nnul\r\n$3\r\nbig\r\n",
	      1);
	sames(redis.port, rport, "*3\r\n$4\r\nmget\r\n$2\r\nm1\r\n$2\r\nm1\r\n", 1);
	/* Binary keys travel as they are to a Redis upstream. */
	sames(redis.port, rport, "*3\r\n$4\r\nMGET\r\n$5\r\nk\r\n x\r\n$0\r\n\r\n", 1);
	/* More keys than max_keys: several batches, one reply in order. */
	char req[16384];
	size_t n = (size_t)snprintf(req, sizeof(req), "MGET a");
	for (int i = 0; i < 250; i++)
		n += (size_t)snprintf(req + n, sizeof(req) - n, " %c%d", i % 3 ? 'h' : 'm', i);
	n += (size_t)snprintf(req + n, sizeof(req) - n, " a\r\n");
	same(redis.port, rport, req, n, 1);
}
END_TEST

START_TEST(test_oracle_inline_pipelined)
{
	sames(redis.port, rport, "GET a\r\n", 1);
	sames(redis.port, rport, "MGET a nope a\r\n", 1);
	sames(redis.port, rport, "get \"sp ace\"\n", 1);
	sames(redis.port, rport, "\r\n\r\nPING\r\n", 1);
	/* Pipelined: reads, local commands and errors keep their order. */
	sames(redis.port, rport,
	      "GET a\r\n*2\r\n$3\r\nGET\r\n$3\r\nbig\r\nPING\r\nMGET nope a\r\nECHO hi\r\n"
	      "GET\r\nFOO a b\r\n*3\r\n$4\r\nMGET\r\n$5\r\nempty\r\n$1\r\na\r\nPING there\r\n",
	      9);
	char many[20000];
	size_t n = 0;
	for (int i = 0; i < 300; i++)
		n += (size_t)snprintf(many + n, sizeof(many) - n, "GET %s\r\n",
		                      i % 3 == 0   ? "a"
		                      : i % 3 == 1 ? "nope"
		                                   : "crlf");
	same(redis.port, rport, many, n, 300);
}
END_TEST

START_TEST(test_oracle_local_and_errors)
{
	sames(redis.port, rport, "PING\r\n", 1);
	sames(redis.port, rport, "*2\r\n$4\r\nPING\r\n$3\r\nx y\r\n", 1);
	sames(redis.port, rport, "PING a b\r\n", 1);
	sames(redis.port, rport, "ECHO\r\n", 1);
	sames(redis.port, rport, "*2\r\n$4\r\necho\r\n$4\r\na\r\nb\r\n", 1);
	sames(redis.port, rport, "SELECT 0\r\n", 1);
	sames(redis.port, rport, "SELECT x\r\n", 1);
	sames(redis.port, rport, "SELECT\r\n", 1);
	sames(redis.port, rport, "GET\r\n", 1);
	sames(redis.port, rport, "GET a b\r\n", 1);
	sames(redis.port, rport, "MGET\r\n", 1);
	sames(redis.port, rport, "FOO\r\n", 1);
	sames(redis.port, rport, "foo bar baz\r\n", 1);
	sames(redis.port, rport, "HELLO x\r\n", 1);
	sames(redis.port, rport, "HELLO 2 BOGUS\r\n", 1);
	sames(redis.port, rport, "CLIENT GETNAME\r\nCLIENT SETNAME app1\r\nCLIENT GETNAME\r\n", 3);
	sames(redis.port, rport, "CLIENT SETNAME \"a b\"\r\n", 1);
	sames(redis.port, rport, "CLIENT SETNAME\r\n", 1);
	sames(redis.port, rport, "CLIENT NOPE\r\n", 1);
	sames(redis.port, rport, "COMMAND NOPE\r\n", 1);
	sames(redis.port, rport, "QUIT\r\nPING\r\n", 1);
	/* Protocol errors: Redis' words, then the connection is closed. */
	sames(redis.port, rport, "*1\r\nx\r\n", 1);
	sames(redis.port, rport, "*2\r\n$3\r\nGET\r\n$-5\r\n", 1);
	sames(redis.port, rport, "PING\r\n*a\r\n", 2);
	sames(redis.port, rport, "GET \"a\r\n", 1);
	/* Things Redis answers its own way where coalesced must differ. */
	char *r = asks(rport, "SELECT 1\r\n", 1);
	ck_assert_str_eq(r, "-ERR DB index is out of range\r\n");
	free(r);
	r = asks(rport, "MSET a b\r\n", 1);
	ck_assert_str_eq(r, "-ERR not supported\r\n");
	free(r);
	/* Redis speaks RESP3 here; coalesced does not, and says so as Redis 6
	 * did, so that clients fall back to RESP2. */
	r = asks(rport, "HELLO 3\r\n", 1);
	ck_assert_str_eq(r, "-NOPROTO unsupported protocol version\r\n");
	free(r);
	r = asks(rport, "HELLO\r\n", 1);
	ck_assert_msg(strncmp(r, "*14\r\n$6\r\nserver\r\n$5\r\nredis\r\n$7\r\nversion\r\n", 40) ==
	                  0,
	              "%s", r);
	ck_assert_ptr_nonnull(strstr(r, "$5\r\nproto\r\n:2\r\n"));
	free(r);
	r = asks(rport, "COMMAND COUNT\r\nCOMMAND DOCS\r\nCLIENT ID\r\n", 3);
	ck_assert_msg(strncmp(r, ":", 1) == 0 && strstr(r, "\r\n*0\r\n:"), "%s", r);
	free(r);
	r = asks(rport, "CLIENT SETINFO lib-name redis-py\r\n", 1);
	ck_assert_str_eq(r, "+OK\r\n");
	free(r);
}
END_TEST

START_TEST(test_http_closed)
{
	int fd = tu_connect(rport);
	size_t len;

	tu_sends(fd, "POST / HTTP/1.1\r\nHost: x\r\n\r\n");
	ck_assert(tu_closed(fd, MS));
	close(fd);
	fd = tu_connect(rport);
	tu_sends(fd, "PING\r\nHost: evil\r\n");
	char *r = resp_read(fd, 1, MS, &len);
	ck_assert_str_eq(r, "+PONG\r\n");
	ck_assert(tu_closed(fd, MS));
	free(r);
	close(fd);
}
END_TEST

START_TEST(test_limits)
{
	struct proc c2;
	int p2;
	char srv[64];
	const char *extra[] = {"server.max_keys_per_request=3", "server.max_line_bytes=4096", NULL};
	char *r;
	int fd;
	size_t len;

	addr_of(&redis, srv, sizeof(srv));
	co_start(&c2, &p2, srv, "redis", extra);
	r = asks(p2, "MGET a b c d\r\nGET a\r\n", 2);
	ck_assert_str_eq(r, "-ERR too many keys\r\n$5\r\nhello\r\n");
	free(r);
	/* A bulk over the bound: Redis' error, and the connection closes. */
	fd = tu_connect(p2);
	tu_sends(fd, "*2\r\n$3\r\nGET\r\n$5000\r\n");
	r = resp_read(fd, 1, MS, &len);
	ck_assert_str_eq(r, "-ERR Protocol error: invalid bulk length\r\n");
	ck_assert(tu_closed(fd, MS));
	free(r);
	close(fd);
	/* An inline command over max_line_bytes. */
	fd = tu_connect(p2);
	char line[6000];
	memset(line, 'x', sizeof(line));
	tu_send(fd, line, sizeof(line));
	r = resp_read(fd, 1, MS, &len);
	ck_assert_str_eq(r, "-ERR Protocol error: too big inline request\r\n");
	ck_assert(tu_closed(fd, MS));
	free(r);
	close(fd);
	tu_stop_clean(&c2);
}
END_TEST

START_TEST(test_stats_info)
{
	char *r = asks(rport, "GET a\r\nMGET a nope\r\nINFO\r\n", 3);
	ck_assert_ptr_nonnull(strstr(r, "# Server\r\nredis_version:"));
	ck_assert_ptr_nonnull(strstr(r, "# Coalesced\r\n"));
	ck_assert_ptr_nonnull(strstr(r, "\r\ncmd_get:"));
	ck_assert_ptr_nonnull(strstr(r, "\r\nkeyspace_hits:"));
	free(r);
	ck_assert_int_ge(tu_stat(co.port, "cmd_get"), 2);
	ck_assert_int_ge(tu_stat(co.port, "get_keys"), 3);
}
END_TEST

/* Writes pass through to Redis: the same bytes as Redis sends, starting
 * from the same (empty) keys each time. */
static void same_writes(const char *req, int n)
{
	char del[256];

	snprintf(del, sizeof(del), "DEL w1\r\nDEL w2\r\n");
	free(asks(redis.port, del, 2));
	size_t l1, l2;
	char *want = ask(redis.port, req, strlen(req), n, &l1);
	free(asks(redis.port, del, 2));
	char *got = ask(rport, req, strlen(req), n, &l2);
	ck_assert_msg(count_replies(want, l1) == n, "redis: %d replies", count_replies(want, l1));
	ck_assert_msg(l1 == l2 && memcmp(want, got, l1) == 0,
	              "for '%s'\nredis:     '%s'\ncoalesced: '%s'", req, want, got);
	free(want);
	free(got);
}

START_TEST(test_writes_oracle)
{
	same_writes("GET w1\r\nSET w1 1\r\nGET w1\r\nINCR w1\r\nGET w1\r\nINCRBY w1 5\r\n"
	            "DECR w1\r\nDECRBY w1 2\r\nGET w1\r\nMGET w1 w2\r\n",
	            10);
	same_writes("SET w1 abc\r\nINCR w1\r\nAPPEND w1 xyz\r\nSTRLEN w1\r\nGETSET w1 q\r\n"
	            "GETDEL w1\r\nEXISTS w1\r\nSETNX w1 n\r\nSETNX w1 m\r\nGET w1\r\n",
	            10);
	same_writes("SET w1 v EX 100\r\nTTL w1\r\nPERSIST w1\r\nTTL w1\r\nEXPIRE w1 50\r\n"
	            "TTL w1\r\nPEXPIRE w1 100000\r\nSETEX w2 100 s\r\nPSETEX w2 100000 p\r\n"
	            "GET w2\r\nSET w1 z XX GET\r\nSET w1 y NX\r\nDEL w1\r\nUNLINK w2\r\n",
	            14);
	/* Errors come back as Redis sends them: arity, syntax, wrong type. */
	same_writes("SET w1\r\nSET w1 v BOGUS\r\nSETEX w1 x v\r\nINCR\r\nTTL\r\n"
	            "*3\r\n$3\r\nSET\r\n$2\r\nw1\r\n$4\r\na\r\nb\r\nGET w1\r\n",
	            7);
	/* Counted under memcached's names (the sequences above, at least). */
	ck_assert_int_ge(tu_stat(co.port, "cmd_set"), 5);
	ck_assert_int_ge(tu_stat(co.port, "cmd_incr"), 2);
	ck_assert_int_ge(tu_stat(co.port, "cmd_decr"), 2);
	ck_assert_int_ge(tu_stat(co.port, "cmd_delete"), 3);
	ck_assert_int_ge(tu_stat(co.port, "writes_forwarded"), 30);
	/* The multi-key forms and other writes are refused. */
	char *r =
	    asks(rport, "DEL w1 w2\r\nEXISTS w1 w2\r\nUNLINK a b\r\nMSET a 1\r\nFLUSHALL\r\n", 5);
	ck_assert_str_eq(r, "-ERR not supported\r\n-ERR not supported\r\n-ERR not supported\r\n"
	                    "-ERR not supported\r\n-ERR not supported\r\n");
	free(r);
}
END_TEST

/* Read-your-writes: once a client has the reply to its SET, every read that
 * starts afterwards sees that value, while other clients keep fetches of the
 * key in flight all along. */
START_TEST(test_read_your_writes)
{
	int hammer[4], w = tu_connect(rport), rd = tu_connect(rport);
	unsigned seed = 12345;
	size_t len;

	for (int i = 0; i < 4; i++)
		hammer[i] = tu_connect(rport);
	for (int i = 1; i <= 300; i++) {
		char req[128], want[64];
		for (int h = 0; h < 4; h++) {
			tu_sends(hammer[h], "GET ryw\r\nGET ryw\r\n");
		}
		snprintf(req, sizeof(req), "SET ryw %d\r\n", i);
		snprintf(want, sizeof(want), "$%d\r\n%d\r\n", (int)strlen(req) - 10, i);
		seed = seed * 1103515245u + 12345u;
		if ((seed >> 16) % 2) {
			/* The read pipelined behind the write, on its connection. */
			strcat(req, "GET ryw\r\n");
			tu_sends(w, req);
			char *r = resp_read(w, 2, MS, &len);
			ck_assert_msg(strncmp(r, "+OK\r\n", 5) == 0 && strcmp(r + 5, want) == 0,
			              "round %d: '%s'", i, r);
			free(r);
		} else {
			/* Another client asks once the write's reply is in. */
			tu_sends(w, req);
			char *r = resp_read(w, 1, MS, &len);
			ck_assert_str_eq(r, "+OK\r\n");
			free(r);
			tu_sends(rd, "GET ryw\r\n");
			r = resp_read(rd, 1, MS, &len);
			ck_assert_msg(strcmp(r, want) == 0, "round %d: '%s'", i, r);
			free(r);
		}
		for (int h = 0; h < 4; h++)
			free(resp_read(hammer[h], 2, MS, &len));
	}
	for (int h = 0; h < 4; h++)
		close(hammer[h]);
	close(w);
	close(rd);
}
END_TEST

/* ---- real clients ---- */

static int run(const char *shcmd, char **output)
{
	char buf[8192];
	size_t n = 0;
	FILE *f = popen(shcmd, "r");
	int st;

	ck_assert_ptr_nonnull(f);
	while (n < sizeof(buf) - 1 && fgets(buf + n, (int)(sizeof(buf) - n), f))
		n = strlen(buf);
	st = pclose(f);
	if (output)
		*output = strdup(buf);
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

START_TEST(test_redis_cli)
{
	char sh[512], *out;

	snprintf(sh, sizeof(sh),
	         "timeout 20 redis-cli -p %d get a && timeout 20 redis-cli -p %d mget a nope "
	         "&& timeout 20 redis-cli -p %d ping",
	         rport, rport, rport);
	ck_assert_int_eq(run(sh, &out), 0);
	ck_assert_str_eq(out, "hello\nhello\n\nPONG\n");
	free(out);
}
END_TEST

START_TEST(test_python_redis)
{
	char sh[1024], *out;

	snprintf(sh, sizeof(sh),
	         "timeout 30 /usr/bin/python3 -c '\n"
	         "import redis\n"
	         "r = redis.Redis(host=\"127.0.0.1\", port=%d, client_name=\"t\")\n"
	         "assert r.get(\"a\") == b\"hello\"\n"
	         "assert r.get(\"nope\") is None\n"
	         "assert r.mget([\"a\", \"nope\", \"nul\"]) == [b\"hello\", None, b\"a\\x00b\"]\n"
	         "p = r.pipeline(transaction=False)\n"
	         "p.get(\"a\"); p.mget(\"crlf\", \"a\"); p.get(\"empty\")\n"
	         "assert p.execute() == [b\"hello\", [b\"x\\r\\n$3\\r\\nEND\\r\\n\", b\"hello\"], "
	         "b\"\"]\n"
	         "assert len(r.get(\"big\")) == 1 << 20\n"
	         "print(\"ok\")\n' 2>&1",
	         rport);
	ck_assert_int_eq(run(sh, &out), 0);
	ck_assert_str_eq(out, "ok\n");
	free(out);
}
END_TEST

START_TEST(test_redis_benchmark)
{
	char sh[512], *out;

	snprintf(
	    sh, sizeof(sh),
	    "timeout 60 redis-benchmark -p %d -t get,mget -n 2000 -c 20 -q 2>&1 | tr '\\r' '\\n' "
	    "| grep -ci err",
	    rport);
	/* grep -c prints 0 (and fails) when no line mentions an error. */
	run(sh, &out);
	ck_assert_str_eq(out, "0\n");
	free(out);
	snprintf(sh, sizeof(sh), "timeout 60 redis-benchmark -p %d -t get,mget -n 2000 -q", rport);
	ck_assert_int_eq(run(sh, NULL), 0);
	/* It has no MGET test of its own (-t mget runs nothing): one of ten
	 * random keys, some of them hits. */
	snprintf(sh, sizeof(sh),
	         "timeout 60 redis-benchmark -p %d -n 2000 -r 300 -q MGET key:__rand_int__ "
	         "key:__rand_int__ a key:__rand_int__ big key:__rand_int__ 2>&1 | tr '\\r' '\\n' "
	         "| grep -c 'requests per second'",
	         rport);
	run(sh, &out);
	ck_assert_str_eq(out, "1\n");
	free(out);
}
END_TEST

/* ---- fake Redis: collapse, batching, handshake, faults ---- */

START_TEST(test_collapse_across_protocols)
{
	struct proc fake, c;
	int p;
	char srv[64], rec[256];
	int fds[4], mfd;
	size_t len;

	snprintf(rec, sizeof(rec), "%s/collapse.rec", tu_tmpdir());
	unlink(rec);
	fake_start(&fake, "normal", 400, rec);
	addr_of(&fake, srv, sizeof(srv));
	co_start(&c, &p, srv, "redis", NULL);
	/* One fetch held for 400 ms; everyone else asks meanwhile. */
	fds[0] = tu_connect(p);
	tu_sends(fds[0], "GET k1\r\n");
	tu_sleep_ms(100);
	for (int i = 1; i < 4; i++) {
		fds[i] = tu_connect(p);
		tu_sends(fds[i], i == 3 ? "MGET k1 k1\r\n" : "*2\r\n$3\r\nGET\r\n$2\r\nk1\r\n");
	}
	mfd = tu_connect(c.port);
	tu_sends(mfd, "get k1\r\n");
	for (int i = 0; i < 4; i++) {
		char *r = resp_read(fds[i], 1, MS, &len);
		ck_assert_str_eq(r,
		                 i == 3 ? "*2\r\n$4\r\nv:k1\r\n$4\r\nv:k1\r\n" : "$4\r\nv:k1\r\n");
		free(r);
		close(fds[i]);
	}
	char *m = tu_recv_until(mfd, "END\r\n", MS, &len);
	ck_assert_str_eq(m, "VALUE k1 0 4\r\nv:k1\r\nEND\r\n");
	free(m);
	close(mfd);
	ck_assert_int_eq(count_lines(rec, "GET k1"), 1);
	ck_assert_int_eq(count_lines(rec, ""), 1);
	ck_assert_int_ge(tu_stat(c.port, "keys_coalesced"), 4);
	tu_stop_clean(&c);
	tu_stop(&fake);
}
END_TEST

START_TEST(test_batching)
{
	struct proc fake, c;
	int p;
	char srv[64], rec[256];
	const char *extra[] = {"batch.leeway_ms=200", NULL};
	int fds[3];
	size_t len;

	snprintf(rec, sizeof(rec), "%s/batch.rec", tu_tmpdir());
	unlink(rec);
	fake_start(&fake, "normal", 0, rec);
	addr_of(&fake, srv, sizeof(srv));
	co_start(&c, &p, srv, "redis", extra);
	fds[0] = tu_connect(p);
	fds[1] = tu_connect(p);
	fds[2] = tu_connect(c.port);
	tu_sends(fds[0], "GET x1\r\n");
	tu_sends(fds[1], "MGET x2 missx x1\r\n");
	tu_sends(fds[2], "gets x3\r\n");
	char *r = resp_read(fds[0], 1, MS, &len);
	ck_assert_str_eq(r, "$4\r\nv:x1\r\n");
	free(r);
	r = resp_read(fds[1], 1, MS, &len);
	ck_assert_str_eq(r, "*3\r\n$4\r\nv:x2\r\n$-1\r\n$4\r\nv:x1\r\n");
	free(r);
	r = tu_recv_until(fds[2], "END\r\n", MS, &len);
	/* Redis has no cas: a gets client sees 0. */
	ck_assert_str_eq(r, "VALUE x3 0 4 0\r\nv:x3\r\nEND\r\n");
	free(r);
	for (int i = 0; i < 3; i++)
		close(fds[i]);
	/* One MGET of the four distinct keys, nothing else. */
	ck_assert_int_eq(count_lines(rec, ""), 1);
	ck_assert_int_eq(count_lines(rec, "MGET "), 1);
	size_t flen;
	char *all = tu_read_file(rec, &flen);
	int words = 0;
	for (char *q = all; *q; q++)
		words += *q == ' ';
	ck_assert_int_eq(words, 4);
	free(all);
	tu_stop_clean(&c);
	tu_stop(&fake);
}
END_TEST

START_TEST(test_handshake_recorded)
{
	struct proc fake, c;
	int p;
	char srv[64], rec[256];
	const char *extra[] = {"redis.username=app", "redis.password=s3cret", "redis.database=3",
	                       NULL};
	size_t len;

	snprintf(rec, sizeof(rec), "%s/hs.rec", tu_tmpdir());
	unlink(rec);
	fake_start(&fake, "normal", 0, rec);
	addr_of(&fake, srv, sizeof(srv));
	co_start(&c, &p, srv, "redis", extra);
	char *r = asks(p, "GET k\r\n", 1);
	ck_assert_str_eq(r, "$3\r\nv:k\r\n");
	free(r);
	r = tu_read_file(rec, &len);
	ck_assert_str_eq(r, "AUTH app s3cret\nSELECT 3\nGET k\n");
	free(r);
	tu_stop_clean(&c);
	tu_stop(&fake);
}
END_TEST

START_TEST(test_auth_select_real)
{
	struct proc rs, c;
	int p;
	char srv[64], sh[256];
	const char *good[] = {"redis.password=pw1", "redis.database=2", NULL};
	const char *bad[] = {"redis.password=wrong", "upstream.retries=0", NULL};
	const char *baddb[] = {"redis.password=pw1", "redis.database=99", "upstream.retries=0",
	                       NULL};

	redis_start(&rs, "pw1");
	snprintf(sh, sizeof(sh),
	         "redis-cli -p %d -a pw1 --no-auth-warning -n 2 set dbkey in2 >/dev/null", rs.port);
	ck_assert_int_eq(run(sh, NULL), 0);
	addr_of(&rs, srv, sizeof(srv));

	co_start(&c, &p, srv, "redis", good);
	char *r = asks(p, "GET dbkey\r\n", 1);
	ck_assert_str_eq(r, "$3\r\nin2\r\n");
	free(r);
	tu_stop_clean(&c);

	co_start(&c, &p, srv, "redis", bad);
	r = asks(p, "GET dbkey\r\n", 1);
	ck_assert_str_eq(r, "-ERR upstream error: WRONGPASS invalid username-password pair or user "
	                    "is disabled.\r\n");
	free(r);
	tu_stop_clean(&c);
	size_t len;
	r = tu_read_file(c.log, &len);
	ck_assert_ptr_nonnull(strstr(r, "WRONGPASS"));
	free(r);

	co_start(&c, &p, srv, "redis", baddb);
	r = asks(p, "GET dbkey\r\n", 1);
	ck_assert_str_eq(r, "-ERR upstream error: ERR DB index is out of range\r\n");
	free(r);
	tu_stop_clean(&c);
	tu_stop(&rs);
}
END_TEST

static void fault(const char *mode, const char *want, const char *const *extra)
{
	struct proc fake, c;
	int p;
	char srv[64];

	fake_start(&fake, mode, 0, NULL);
	addr_of(&fake, srv, sizeof(srv));
	co_start(&c, &p, srv, "redis", extra);
	char *r = asks(p, "GET k\r\nMGET k j\r\nPING\r\n", 3);
	char expect[400];
	snprintf(expect, sizeof(expect), "%s%s+PONG\r\n", want, want);
	ck_assert_msg(strcmp(r, expect) == 0, "mode %s: '%s'", mode, r);
	free(r);
	tu_stop_clean(&c);
	tu_stop(&fake);
}

START_TEST(test_faults)
{
	const char *fast[] = {"upstream.timeout_ms=300", NULL};

	fault("loading", "-ERR upstream error: LOADING Redis is loading the dataset in memory\r\n",
	      NULL);
	fault("garbage", "-ERR upstream protocol error\r\n", NULL);
	fault("close_mid", "-ERR upstream unavailable\r\n", NULL);
	fault("hang", "-ERR upstream timeout\r\n", fast);
}
END_TEST

START_TEST(test_upstream_down)
{
	struct proc c;
	int p;
	char srv[64];

	snprintf(srv, sizeof(srv), "127.0.0.1:%d", tu_free_port());
	co_start(&c, &p, srv, "redis", NULL);
	char *r = asks(p, "GET k\r\n", 1);
	ck_assert_str_eq(r, "-ERR upstream unavailable\r\n");
	free(r);
	tu_stop_clean(&c);
}
END_TEST

START_TEST(test_redis_killed)
{
	struct proc rs, c;
	int p;
	char srv[64];

	redis_start(&rs, NULL);
	redis_set(rs.port, "k", "v", 1);
	addr_of(&rs, srv, sizeof(srv));
	co_start(&c, &p, srv, "redis", NULL);
	char *r = asks(p, "GET k\r\n", 1);
	ck_assert_str_eq(r, "$1\r\nv\r\n");
	free(r);
	tu_stop(&rs);
	r = asks(p, "GET k\r\n", 1);
	ck_assert_str_eq(r, "-ERR upstream unavailable\r\n");
	free(r);
	tu_stop_clean(&c);
}
END_TEST

/* Values in flight from Redis stay within max_memory_mb: a client that
 * reads nothing while three 20-key MGETs of 1 MB values come in does not
 * pin more than the budget; the keys over it get -ERR out of memory and the
 * stream stays in step. */
START_TEST(test_value_budget)
{
	enum { KEYS = 20, VLEN = 1000000 };
	const char *extra[] = {"server.max_memory_mb=8", NULL};
	struct proc rs, c;
	int p, fd;
	char srv[64], line[512];
	char *val = malloc(VLEN), *r;
	long long peak = 0;
	size_t n = 0, len;
	double end;

	ck_assert_ptr_nonnull(val);
	memset(val, 'v', VLEN);
	redis_start(&rs, NULL);
	for (int k = 0; k < KEYS; k++) {
		char key[16];
		snprintf(key, sizeof(key), "big%d", k);
		redis_set(rs.port, key, val, VLEN);
	}
	free(val);
	addr_of(&rs, srv, sizeof(srv));
	co_start(&c, &p, srv, "redis", extra);
	n += (size_t)snprintf(line, sizeof(line), "MGET");
	for (int k = 0; k < KEYS; k++)
		n += (size_t)snprintf(line + n, sizeof(line) - n, " big%d", k);
	n += (size_t)snprintf(line + n, sizeof(line) - n, "\r\n");
	fd = tu_connect(p);
	for (int i = 0; i < 3; i++)
		tu_send(fd, line, n);
	tu_sends(fd, "PING\r\n");
	end = tu_now() + 2;
	while (tu_now() < end) {
		long long v = tu_stat(c.port, "value_bytes");
		if (v > peak)
			peak = v;
		tu_sleep_ms(20);
	}
	ck_assert_msg(peak <= 8ll << 20, "values in flight reached %lld bytes", peak);
	ck_assert_int_gt(tu_stat(c.port, "out_of_memory"), 0);
	/* Every reply comes, the last one the PING's. */
	r = resp_read(fd, 4, tu_guard_ms(MS), &len);
	ck_assert_ptr_nonnull(r);
	ck_assert_ptr_nonnull(strstr(r, "-ERR out of memory\r\n"));
	ck_assert_int_ge(len, 7);
	ck_assert_mem_eq(r + len - 7, "+PONG\r\n", 7);
	free(r);
	close(fd);
	tu_stop_clean(&c);
	tu_stop(&rs);
}
END_TEST

/* An ejected Redis server's keys go to the other server meanwhile; it is
 * probed with PING and comes back by itself. */
START_TEST(test_ejected_server_probed)
{
	struct proc rs[2], c;
	int p, own;
	char srv[160], tmo[64], name[96], a0[64], a1[64];
	const char *extra[] = {tmo, "upstream.eject_after=1", "upstream.retry_after_ms=200",
	                       "upstream.retries=0", NULL};
	char *r;
	double end;

	snprintf(tmo, sizeof(tmo), "upstream.timeout_ms=%d", tu_guard_ms(300));
	for (int i = 0; i < 2; i++) {
		redis_start(&rs[i], NULL);
		redis_set(rs[i].port, "k", i ? "1" : "0", 1);
	}
	addr_of(&rs[0], a0, sizeof(a0));
	addr_of(&rs[1], a1, sizeof(a1));
	snprintf(srv, sizeof(srv), "%s,%s", a0, a1);
	co_start(&c, &p, srv, "redis", extra);
	/* Which server owns k: its value says. */
	r = asks(p, "GET k\r\n", 1);
	ck_assert_msg(strcmp(r, "$1\r\n0\r\n") == 0 || strcmp(r, "$1\r\n1\r\n") == 0, "%s", r);
	own = r[4] - '0';
	free(r);
	snprintf(name, sizeof(name), "server:%s:ejected", own ? a1 : a0);
	kill(rs[own].pid, SIGSTOP);
	r = asks(p, "GET k\r\n", 1);
	ck_assert_str_eq(r, "-ERR upstream timeout\r\n");
	free(r);
	ck_assert_int_eq(tu_stat(c.port, name), 1);
	/* Meanwhile the other server answers for k. */
	r = asks(p, "GET k\r\n", 1);
	ck_assert_str_eq(r, own ? "$1\r\n0\r\n" : "$1\r\n1\r\n");
	free(r);
	kill(rs[own].pid, SIGCONT);
	/* Back within a hang guard, through the probe alone. */
	end = tu_now() + tu_guard_ms(10000) / 1000.0;
	while (tu_stat(c.port, name) != 0 && tu_now() < end)
		tu_sleep_ms(50);
	ck_assert_int_eq(tu_stat(c.port, name), 0);
	r = asks(rs[own].port, "INFO commandstats\r\n", 1);
	ck_assert_msg(strstr(r, "cmdstat_ping:calls="), "no PING reached Redis: %s", r);
	free(r);
	r = asks(p, "GET k\r\n", 1);
	ck_assert_str_eq(r, own ? "$1\r\n1\r\n" : "$1\r\n0\r\n");
	free(r);
	tu_stop_clean(&c);
	tu_stop(&rs[0]);
	tu_stop(&rs[1]);
}
END_TEST

/* total_connections_received of a Redis server. */
static long long redis_connections(int port)
{
	char *r = asks(port, "INFO stats\r\n", 1), *p = strstr(r, "total_connections_received:");
	long long n;

	ck_assert_ptr_nonnull(p);
	n = strtoll(p + 27, NULL, 10);
	free(r);
	return n;
}

/* One slow reply fails its own request, not the connection: the GET stuck
 * behind a script that keeps Redis busy gets -ERR upstream timeout, its late
 * reply is read past, and the next GET is answered on the same connection. */
START_TEST(test_slow_reply_keeps_connection)
{
	struct proc rs, c;
	int p, busy;
	char srv[64], tmo[64];
	const char *extra[] = {tmo, "upstream.connections=1", "upstream.retries=0", NULL};
	/* Busy for 1.5 timeouts, by Redis' own clock: the GET's reply comes
	 * late, but before the connection would be given up (2 timeouts). */
	char script[256];
	long long before;
	size_t len;
	int ms = tu_guard_ms(300);
	char *r;

	snprintf(tmo, sizeof(tmo), "upstream.timeout_ms=%d", ms);
	redis_start(&rs, NULL);
	redis_set(rs.port, "k", "v", 1);
	addr_of(&rs, srv, sizeof(srv));
	co_start(&c, &p, srv, "redis", extra);
	r = asks(p, "GET k\r\n", 1);
	ck_assert_str_eq(r, "$1\r\nv\r\n");
	free(r);
	before = redis_connections(rs.port);
	snprintf(script, sizeof(script),
	         "EVAL \"local t=redis.call('TIME'); local e=t[1]*1000000+t[2]+%d; "
	         "repeat t=redis.call('TIME') until t[1]*1000000+t[2]>=e; return 1\" 0\r\n",
	         ms * 1500);
	busy = tu_connect(rs.port);
	tu_sends(busy, script);
	tu_sleep_ms(50);
	r = asks(p, "GET k\r\nPING\r\n", 2);
	ck_assert_str_eq(r, "-ERR upstream timeout\r\n+PONG\r\n");
	free(r);
	r = resp_read(busy, 1, tu_guard_ms(MS), &len);
	ck_assert_str_eq(r, ":1\r\n");
	free(r);
	close(busy);
	/* The late reply is read past; the next GET gets its own. */
	r = asks(p, "GET k\r\n", 1);
	ck_assert_str_eq(r, "$1\r\nv\r\n");
	free(r);
	/* No new connection from coalesced: only the two INFO and the busy one. */
	ck_assert_int_eq(redis_connections(rs.port) - before, 2);
	tu_stop_clean(&c);
	tu_stop(&rs);
}
END_TEST

/* A write is never sent twice: a connection lost under it fails it. */
START_TEST(test_write_not_retried)
{
	struct proc fake, c;
	int p;
	char srv[64], rec[256];

	snprintf(rec, sizeof(rec), "%s/wr.rec", tu_tmpdir());
	unlink(rec);
	char tmo[64];
	/* The reply deadline is a hang guard here: the fake's close must come
	 * first even in a slow (sanitizer) build. */
	snprintf(tmo, sizeof(tmo), "upstream.timeout_ms=%d", tu_guard_ms(5000));
	const char *extra[] = {tmo, NULL};
	fake_start(&fake, "close_mid", 0, rec);
	addr_of(&fake, srv, sizeof(srv));
	co_start(&c, &p, srv, "redis", extra);
	char *r = asks(p, "SET k v\r\nPING\r\n", 2);
	ck_assert_str_eq(r, "-ERR upstream unavailable\r\n+PONG\r\n");
	free(r);
	tu_stop_clean(&c);
	tu_stop(&fake);
	ck_assert_int_eq(count_lines(rec, "SET k v"), 1);
}
END_TEST

/* A client that leaves while its write is under way: the write completes
 * upstream, read-your-writes holds for the others, nothing leaks (valgrind). */
START_TEST(test_write_client_leaves)
{
	struct proc fake, c;
	int p, fd;
	char srv[64], rec[256];

	snprintf(rec, sizeof(rec), "%s/leave.rec", tu_tmpdir());
	unlink(rec);
	fake_start(&fake, "normal", 300, rec);
	addr_of(&fake, srv, sizeof(srv));
	co_start(&c, &p, srv, "redis", NULL);
	fd = tu_connect(p);
	tu_sends(fd, "SET gone v\r\n");
	tu_sleep_ms(100);
	/* A reset, not a FIN: a half-closed client is still answered. */
	struct linger lg = {1, 0};
	setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
	close(fd);
	tu_sleep_ms(400);
	char *r = asks(p, "GET k\r\n", 1);
	ck_assert_str_eq(r, "$3\r\nv:k\r\n");
	free(r);
	tu_stop_clean(&c);
	tu_stop(&fake);
	ck_assert_int_eq(count_lines(rec, "SET gone v"), 1);
}
END_TEST

/* Writes toward a backend that takes none of RESP's: refused. */
START_TEST(test_write_memcached_refused)
{
	struct proc fake, c;
	int p;
	char srv[64];

	tu_fake_start(&fake, NULL);
	addr_of(&fake, srv, sizeof(srv));
	co_start(&c, &p, srv, "memcache", NULL);
	char *r = asks(p, "SET k v\r\nDEL k\r\nGET k\r\n", 3);
	ck_assert_str_eq(r, "-ERR not supported\r\n-ERR not supported\r\n$3\r\nv:k\r\n");
	free(r);
	tu_stop_clean(&c);
	tu_stop(&fake);
}
END_TEST

/* A memcached backend cannot carry every RESP key: refused, never sent. */
START_TEST(test_invalid_key_memcached)
{
	struct proc fake, c;
	int p;
	char srv[64], rec[256], big[300], req[400];
	size_t len;

	snprintf(rec, sizeof(rec), "%s/mc.rec", tu_tmpdir());
	unlink(rec);
	tu_fake_start(&fake, rec);
	addr_of(&fake, srv, sizeof(srv));
	co_start(&c, &p, srv, "memcache", NULL);
	char *r = asks(p, "*2\r\n$3\r\nGET\r\n$3\r\na b\r\n", 1);
	ck_assert_str_eq(r, "-ERR invalid key\r\n");
	free(r);
	r = asks(p, "*3\r\n$4\r\nMGET\r\n$2\r\nok\r\n$5\r\nx\r\nyz\r\n", 1);
	ck_assert_str_eq(r, "-ERR invalid key\r\n");
	free(r);
	memset(big, 'k', 251);
	big[251] = '\0';
	snprintf(req, sizeof(req), "GET %s\r\n", big);
	r = asks(p, req, 1);
	ck_assert_str_eq(r, "-ERR invalid key\r\n");
	free(r);
	r = asks(p, "GET fine\r\n", 1);
	ck_assert_str_eq(r, "$6\r\nv:fine\r\n");
	free(r);
	tu_stop_clean(&c);
	tu_stop(&fake);
	r = tu_read_file(rec, &len);
	/* "ok" may have gone out on its own; no refused key ever did. */
	ck_assert_ptr_null(strstr(r, "a b"));
	ck_assert_ptr_null(strstr(r, "kkkk"));
	ck_assert_ptr_null(strstr(r, "yz"));
	ck_assert_ptr_nonnull(strstr(r, "gets fine"));
	free(r);
}
END_TEST

Suite *redis_suite(void);
Suite *redis_suite(void)
{
	Suite *s = suite_create("redis");
	TCase *tc = tcase_create("redis oracle");

	tcase_add_unchecked_fixture(tc, oracle_setup, oracle_teardown);
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, test_oracle_reads);
	tcase_add_test(tc, test_oracle_inline_pipelined);
	tcase_add_test(tc, test_oracle_local_and_errors);
	tcase_add_test(tc, test_http_closed);
	tcase_add_test(tc, test_limits);
	tcase_add_test(tc, test_stats_info);
	tcase_add_test(tc, test_writes_oracle);
	tcase_add_test(tc, test_read_your_writes);
	tcase_add_test(tc, test_redis_cli);
	tcase_add_test(tc, test_python_redis);
	tcase_add_test(tc, test_redis_benchmark);
	suite_add_tcase(s, tc);

	tc = tcase_create("redis upstream");
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_collapse_across_protocols);
	tcase_add_test(tc, test_batching);
	tcase_add_test(tc, test_handshake_recorded);
	tcase_add_test(tc, test_auth_select_real);
	tcase_add_test(tc, test_faults);
	tcase_add_test(tc, test_upstream_down);
	tcase_add_test(tc, test_redis_killed);
	tcase_add_test(tc, test_value_budget);
	tcase_add_test(tc, test_ejected_server_probed);
	tcase_add_test(tc, test_slow_reply_keeps_connection);
	tcase_add_test(tc, test_invalid_key_memcached);
	tcase_add_test(tc, test_write_not_retried);
	tcase_add_test(tc, test_write_client_leaves);
	tcase_add_test(tc, test_write_memcached_refused);
	suite_add_tcase(s, tc);
	return s;
}
