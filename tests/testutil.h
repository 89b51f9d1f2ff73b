/*
 * testutil: helpers for integration tests: free loopback ports, child
 * processes (memcached, the fake upstream, coalesced) stopped by PID, and
 * socket I/O with bounded waits. Every wait has a deadline; nothing here can
 * hang a test.
 *
 * A deadline (the ms a helper takes) is a hang guard, never a speed
 * requirement: a wait ends as soon as what it waits for happens, and the
 * helpers multiply every deadline by tu_slowdown(), so that the verdict does
 * not depend on how fast the machine or the build is. Quiet periods (the
 * quiet_ms of tu_recv_all) are not scaled: they are how long silence means
 * "nothing more is coming".
 */
#ifndef COALESCED_TESTUTIL_H
#define COALESCED_TESTUTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

struct proc {
	pid_t pid;
	int port;
	char log[256]; /* its stderr, for failure messages */
};

/* A port that was free on 127.0.0.1 a moment ago. */
int tu_free_port(void);
double tu_now(void);
void tu_sleep_ms(int ms);
/* How many times slower than a plain build this run may be: the
 * CK_TIMEOUT_MULTIPLIER that Check scales its test timeouts by (make asan and
 * make valgrind set it), or 1. */
double tu_slowdown(void);
/* ms as a hang guard: multiplied by tu_slowdown(). */
int tu_guard_ms(int ms);

/* For a test that judges a daemon by its resident memory: under ASan,
 * freed memory waits in a quarantine (256 MB by default) before it is
 * reused, which looks like growth; daemons started after this call (in
 * this test process) run without it. No effect on other builds. */
void tu_judging_rss(void);

/* Resident memory of a process (VmRSS), in KiB; -1 if unknown. */
long tu_rss_kib(pid_t pid);

/* Send the bytes of buf (len of them, over and over) on the non-blocking
 * fd until limit bytes went out or the peer took nothing for a (scaled)
 * second, i.e. it stopped reading; returns the bytes sent. Fails the test
 * if the peer still reads after a minute (scaled). */
size_t tu_push_until_stall(int fd, const char *buf, size_t len, size_t limit);

/* Start a real memcached on a free port (or port, if > 0). */
void tu_memcached_start(struct proc *p, int port);
/* Start a real redis-server on a free port: no persistence, its log in
 * p->log. */
void tu_redis_start(struct proc *p);
/* Start the fake upstream (tests/fake_upstream.c); record: file or NULL. */
void tu_fake_start(struct proc *p, const char *record);
/*
 * Start coalesced listening on a free port, with upstream servers and extra
 * -o overrides (NULL-terminated). Returns once it accepts connections.
 * COALESCED_WRAPPER (e.g. valgrind ...) is put in front when set.
 */
void tu_coalesced_start(struct proc *p, const char *servers, const char *const *opts);
/* Start coalesced with explicit argv (after the program name); does not wait
 * for it to listen. */
pid_t tu_coalesced_spawn(const char *const *args, const char *errlog);
/* The same, passing listen_fd as a socket from the service manager. */
pid_t tu_coalesced_spawn_fd(const char *const *args, const char *errlog, int listen_fd);

/* The fake upstream (recording every line to record, unless NULL) with
 * coalesced in front of it, started with the -o overrides in opts. */
void tu_stack_start(struct proc *fake, struct proc *co, const char *record,
                    const char *const *opts);
/* coalesced must exit cleanly; the fake is stopped. */
void tu_stack_stop(struct proc *fake, struct proc *co);
/* A figure of the fake upstream's own count (requests, keys); -1 if absent. */
long tu_fake_stat(int port, const char *name);

/* SIGTERM, wait (bounded), SIGKILL if needed; returns the exit status
 * (as from waitpid), or -1 if it had to be killed. */
int tu_stop(struct proc *p);
/* Same, asserting a clean exit 0 (under valgrind: no errors). */
void tu_stop_clean(struct proc *p);
/* Wait for pid to exit within ms; returns the wait status or -1. */
int tu_wait(pid_t pid, int ms);

int tu_connect(int port); /* blocking connect to 127.0.0.1:port, -1 on failure */
void tu_send(int fd, const void *buf, size_t len);
void tu_sends(int fd, const char *s);
/* Read until the bytes end with one of the terminators seen as a complete
 * reply (stop), the peer closes, or ms pass. Returns malloc'd bytes
 * (NUL-terminated; *len excludes the NUL). */
char *tu_recv_until(int fd, const char *stop, int ms, size_t *len);
/* Read exactly len bytes, or fewer if closed / timed out. */
char *tu_recv_n(int fd, size_t want, int ms, size_t *len);
/* Read whatever arrives until the peer closes or it is quiet for quiet_ms. */
char *tu_recv_all(int fd, int quiet_ms, int max_ms, size_t *len);
/* Read want bytes (the reply expected), waiting up to ms for them, then
 * whatever else arrives until the peer closes or it is quiet for quiet_ms:
 * a slow peer is not taken for one that answers less. */
char *tu_recv_reply(int fd, size_t want, int quiet_ms, int ms, size_t *len);
/* true if the peer closed the connection within ms. */
bool tu_closed(int fd, int ms);

/* One request/reply on a fresh connection; reply ends with END/ERROR/etc. */
char *tu_roundtrip(int port, const char *req, int ms);
/* Value of "STAT name" in a stats reply from port; -1 if missing. */
long long tu_stat(int port, const char *name);
/* Store a value into a memcached (directly). */
void tu_mc_set(int port, const char *key, unsigned flags, const void *data, size_t len);
/* Send a control line to the fake upstream and expect OK. */
void tu_fake_ctl(int port, const char *line);
/*
 * One try of the deterministic read-your-writes check against the fake
 * upstream behind coalesced: on client a a fetch of k is held upstream
 * (fake delay 600 ms); client b deletes k (the fake answers ERROR at once).
 * If that reply came before the held fetch's (the write went out on
 * another upstream connection), a read of k on client c = reader(arg) must
 * start a fetch of its own. Returns whether the situation occurred (and was
 * checked); closes every client.
 */
bool tu_ryw_try(int fake_port, int a, int b, int (*reader)(void *), void *arg);

/* Run a shell command under timeout(1) (secs): its exit status (-1 if it
 * did not exit), its stdout and stderr in out (NUL-terminated, cut at cap). */
int tu_run(char *out, size_t cap, int secs, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Read a whole file (NULL if missing). */
char *tu_read_file(const char *path, size_t *len);
/* A fresh temporary directory for this test. */
const char *tu_tmpdir(void);

#endif
