/*
 * fake_redis: a fake Redis upstream for coalesced's tests, which records what
 * it is sent and answers in a chosen way.
 *
 *   fake_redis -p PORT [-r RECORD_FILE] [-m MODE] [-d DELAY_MS]
 *
 * Listens on 127.0.0.1:PORT. Values are computed from the key: a key that
 * starts with "miss" is a miss (nil), any other key holds "v:" + the key.
 * GET and MGET are answered from that; AUTH, SELECT and PING get +OK (PONG);
 * anything else gets "-ERR unknown command".
 *
 * Every command (RESP arrays only) is appended to RECORD_FILE as one line,
 * its arguments joined by single spaces, and flushed at once, before it is
 * answered.
 *
 * MODE says how GET and MGET are answered:
 *   normal     as above (default)
 *   loading    "-LOADING Redis is loading the dataset in memory"
 *   garbage    "HELLO GARBAGE"
 *   hang       nothing, ever
 *   close_mid  the start of the reply, then the connection is closed; any
 *              other command but AUTH, SELECT and PING: closed, no reply
 * DELAY_MS: each command but AUTH and SELECT is answered that long after it
 * was read; the whole server sleeps meanwhile (tests use it to hold a fetch
 * or a write in flight).
 *
 * SIGTERM and SIGINT end it with status 0.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_CONNS 128
#define MAX_ARGS 100000
#define BUF_MAX (16u << 20)

struct fconn {
	int fd;
	char *buf;
	size_t len, cap;
};

struct fake {
	const char *mode;
	int delay_ms;
	FILE *rec;
	/* One command's reply, written at once: a write per piece would cost
	 * the reader a packet each and make a 1 ms command take longer. */
	char *obuf;
	size_t olen, ocap;
};

static void out(struct fake *f, const char *p, size_t n)
{
	if (f->olen + n > f->ocap) {
		size_t cap = (f->olen + n) * 2;
		char *nb = realloc(f->obuf, cap);
		if (!nb)
			exit(1);
		f->obuf = nb;
		f->ocap = cap;
	}
	memcpy(f->obuf + f->olen, p, n);
	f->olen += n;
}

static void flush_out(struct fake *f, int fd)
{
	const char *p = f->obuf;
	size_t n = f->olen;

	f->olen = 0;
	while (n) {
		ssize_t w = write(fd, p, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return;
		p += w;
		n -= (size_t)w;
	}
}

static void outf(struct fake *f, const char *fmt, const char *p, size_t n)
{
	char hdr[64];
	int h = snprintf(hdr, sizeof(hdr), fmt, n);

	out(f, hdr, (size_t)h);
	if (p) {
		out(f, p, n);
		out(f, "\r\n", 2);
	}
}

static void value(struct fake *f, const char *k, size_t n)
{
	char *v;

	if (n >= 4 && memcmp(k, "miss", 4) == 0) {
		out(f, "$-1\r\n", 5);
		return;
	}
	v = malloc(n + 2);
	if (!v)
		exit(1);
	memcpy(v, "v:", 2);
	memcpy(v + 2, k, n);
	outf(f, "$%zu\r\n", v, n + 2);
	free(v);
}

/* One command; returns -1 when the connection is to be closed. */
static int command(struct fake *f, char **argv, size_t *lens, size_t argc)
{
	int get = lens[0] == 3 && strncasecmp(argv[0], "GET", 3) == 0;
	int mget = lens[0] == 4 && strncasecmp(argv[0], "MGET", 4) == 0;

	for (size_t i = 0; i < argc; i++) {
		if (i)
			fputc(' ', f->rec);
		fwrite(argv[i], 1, lens[i], f->rec);
	}
	fputc('\n', f->rec);
	fflush(f->rec);
	if (f->delay_ms > 0 && !(lens[0] == 4 && strncasecmp(argv[0], "AUTH", 4) == 0) &&
	    !(lens[0] == 6 && strncasecmp(argv[0], "SELECT", 6) == 0)) {
		struct timespec ts = {f->delay_ms / 1000, (long)(f->delay_ms % 1000) * 1000000L};
		while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
			;
	}
	if (!get && !mget) {
		if ((lens[0] == 4 && strncasecmp(argv[0], "AUTH", 4) == 0) ||
		    (lens[0] == 6 && strncasecmp(argv[0], "SELECT", 6) == 0))
			out(f, "+OK\r\n", 5);
		else if (lens[0] == 4 && strncasecmp(argv[0], "PING", 4) == 0)
			out(f, "+PONG\r\n", 7);
		else if (strcmp(f->mode, "close_mid") == 0)
			return -1;
		else
			out(f, "-ERR unknown command\r\n", 22);
		return 0;
	}
	if (strcmp(f->mode, "hang") == 0)
		return 0;
	if (strcmp(f->mode, "loading") == 0) {
		static const char e[] = "-LOADING Redis is loading the dataset in memory\r\n";
		out(f, e, sizeof(e) - 1);
		return 0;
	}
	if (strcmp(f->mode, "garbage") == 0) {
		out(f, "HELLO GARBAGE\r\n", 15);
		return 0;
	}
	if (strcmp(f->mode, "close_mid") == 0) {
		out(f, mget ? "*2\r\n$5\r\nv:" : "$5\r\nv:", mget ? 10 : 6);
		return -1;
	}
	if (mget)
		outf(f, "*%zu\r\n", NULL, argc - 1);
	else if (argc != 2) {
		out(f, "-ERR wrong number of arguments for 'get' command\r\n", 50);
		return 0;
	}
	for (size_t i = 1; i < argc; i++)
		value(f, argv[i], lens[i]);
	return 0;
}

/* Parse and answer the complete commands in c->buf. -1: close. */
static int process(struct fake *f, struct fconn *c)
{
	static char *argv[MAX_ARGS];
	static size_t lens[MAX_ARGS];
	size_t off = 0;

	for (;;) {
		size_t p = off, argc, n;
		char *nl, *end;

		if (p >= c->len)
			break;
		if (c->buf[p] != '*')
			return -1;
		nl = memchr(c->buf + p, '\n', c->len - p);
		if (!nl)
			break;
		argc = strtoul(c->buf + p + 1, &end, 10);
		if (argc == 0 || argc > MAX_ARGS)
			return -1;
		p = (size_t)(nl - c->buf) + 1;
		for (n = 0; n < argc; n++) {
			size_t blen;
			if (p >= c->len)
				break;
			if (c->buf[p] != '$')
				return -1;
			nl = memchr(c->buf + p, '\n', c->len - p);
			if (!nl)
				break;
			blen = strtoul(c->buf + p + 1, &end, 10);
			p = (size_t)(nl - c->buf) + 1;
			if (c->len - p < blen + 2)
				break;
			argv[n] = c->buf + p;
			lens[n] = blen;
			p += blen + 2;
		}
		if (n < argc)
			break;
		int rc = command(f, argv, lens, argc);
		flush_out(f, c->fd);
		if (rc < 0)
			return -1;
		off = p;
	}
	memmove(c->buf, c->buf + off, c->len - off);
	c->len -= off;
	return 0;
}

static volatile sig_atomic_t stop;

static void on_signal(int sig)
{
	(void)sig;
	stop = 1;
}

int main(int argc, char **argv)
{
	struct fake f = {.mode = "normal"};
	struct fconn conns[MAX_CONNS];
	struct pollfd pf[MAX_CONNS + 1];
	struct sockaddr_in sa = {.sin_family = AF_INET};
	const char *record = "/dev/null";
	int port = 0, opt, lfd, one = 1;
	size_t nconns = 0;

	while ((opt = getopt(argc, argv, "p:r:m:d:")) != -1) {
		switch (opt) {
		case 'p':
			port = atoi(optarg);
			break;
		case 'r':
			record = optarg;
			break;
		case 'm':
			f.mode = optarg;
			break;
		case 'd':
			f.delay_ms = atoi(optarg);
			break;
		default:
			fprintf(stderr, "usage: fake_redis -p PORT [-r FILE] [-m MODE] [-d MS]\n");
			return 2;
		}
	}
	f.rec = fopen(record, "a");
	if (!f.rec) {
		perror(record);
		return 1;
	}
	signal(SIGTERM, on_signal);
	signal(SIGINT, on_signal);
	signal(SIGPIPE, SIG_IGN);
	lfd = socket(AF_INET, SOCK_STREAM, 0);
	setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	sa.sin_port = htons((uint16_t)port);
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (bind(lfd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(lfd, 128) < 0) {
		perror("bind");
		return 1;
	}
	while (!stop) {
		pf[0] = (struct pollfd){lfd, POLLIN, 0};
		for (size_t i = 0; i < nconns; i++)
			pf[i + 1] = (struct pollfd){conns[i].fd, POLLIN, 0};
		if (poll(pf, nconns + 1, 200) < 0)
			continue;
		/* Only the connections polled: one accepted now has no revents
		 * yet, and a blocking read on it would stall every other one. */
		size_t polled = nconns;
		if ((pf[0].revents & POLLIN) && nconns < MAX_CONNS) {
			int fd = accept(lfd, NULL, NULL);
			if (fd >= 0) {
				/* Replies go out in several writes: without this, Nagle
				 * holds each one's tail for the peer's delayed ACK (40 ms). */
				setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
				conns[nconns++] = (struct fconn){fd, NULL, 0, 0};
			}
		}
		for (size_t i = polled; i-- > 0;) {
			struct fconn *c = &conns[i];
			ssize_t r;
			if (!(pf[i + 1].revents & (POLLIN | POLLHUP | POLLERR)))
				continue;
			if (c->cap - c->len < 65536) {
				size_t cap = c->cap ? c->cap * 2 : 131072;
				char *nb = cap <= BUF_MAX ? realloc(c->buf, cap) : NULL;
				if (!nb)
					r = 0;
				else {
					c->buf = nb;
					c->cap = cap;
				}
			}
			r = c->cap - c->len ? read(c->fd, c->buf + c->len, c->cap - c->len) : 0;
			if (r < 0 && errno == EINTR)
				continue;
			if (r > 0) {
				c->len += (size_t)r;
				if (process(&f, c) == 0)
					continue;
			}
			close(c->fd);
			free(c->buf);
			conns[i] = conns[--nconns];
		}
	}
	return 0;
}
