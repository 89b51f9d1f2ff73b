/*
 * test_demo: make run's demo (tests/run_demo.sh) and the README's example
 * session. The example's commands are read from README.md and run as printed,
 * with bash, against a freshly started demo on a free port in place of 11311;
 * what they print must be what the README shows. The demo must stop on
 * Ctrl-C leaving no process and no file behind, refuse a port in use, and
 * never write into a memcached it did not start.
 *
 * The demo script runs in its own process group, as under a terminal, so that
 * "Ctrl-C" is SIGINT to the whole group and "nothing left running" is "the
 * group is empty".
 */
#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "testutil.h"

/* The port the README's example session talks to. */
#define README_PORT "11311"

struct demo {
	pid_t pid;     /* the script; also its process group */
	int port;      /* COALESCED_PORT */
	char tmp[256]; /* its TMPDIR: must be empty once it has stopped */
	char log[264]; /* its stdout and stderr: tmp + ".log" */
};

static const char *srcdir(void)
{
	const char *dir = getenv("COALESCED_SRCDIR");
	return dir && *dir ? dir : ".";
}

static char *demo_log(const struct demo *d)
{
	char *s = tu_read_file(d->log, NULL);
	return s ? s : strdup("");
}

/*
 * Start the demo with COALESCED_PORT=port. MC_PORT and PORT are the
 * variables an earlier demo read for its memcached and coalesced ports; they
 * are set so that a demo that still reads them uses the test's ports (and
 * mc_port's memcached), never 11211 or 11311.
 */
static void demo_start(struct demo *d, int port, int mc_port)
{
	const char *bin = getenv("COALESCED_BIN") ? getenv("COALESCED_BIN") : "./coalesced";
	char script[512], num[16], mcnum[16];

	memset(d, 0, sizeof(*d));
	d->port = port;
	/* A fresh name: the runner's tests may share one tu_tmpdir(). */
	snprintf(d->tmp, sizeof(d->tmp), "%s/demo-XXXXXX", tu_tmpdir());
	ck_assert_msg(mkdtemp(d->tmp) != NULL, "mkdtemp %s: %s", d->tmp, strerror(errno));
	snprintf(d->log, sizeof(d->log), "%s.log", d->tmp);
	snprintf(script, sizeof(script), "%s/tests/run_demo.sh", srcdir());
	snprintf(num, sizeof(num), "%d", port);
	snprintf(mcnum, sizeof(mcnum), "%d", mc_port);

	d->pid = fork();
	ck_assert_int_ge(d->pid, 0);
	if (d->pid == 0) {
		int fd;
		setpgid(0, 0);
		/* If the test dies, the script still stops what it started. */
		prctl(PR_SET_PDEATHSIG, SIGTERM);
		/* As from a terminal, whatever the test runner inherited. */
		signal(SIGINT, SIG_DFL);
		signal(SIGTERM, SIG_DFL);
		signal(SIGHUP, SIG_DFL);
		fd = open("/dev/null", O_RDONLY);
		dup2(fd, 0);
		fd = open(d->log, O_WRONLY | O_CREAT | O_APPEND, 0644);
		dup2(fd, 1);
		dup2(fd, 2);
		setenv("COALESCED_PORT", num, 1);
		setenv("TMPDIR", d->tmp, 1);
		setenv("PORT", num, 1);
		setenv("MC_PORT", mcnum, 1);
		execlp("sh", "sh", script, bin, (char *)NULL);
		_exit(127);
	}
	setpgid(d->pid, d->pid);
}

/* Wait until coalesced accepts connections on the demo's port. */
static void demo_wait_ready(struct demo *d)
{
	double end = tu_now() + tu_guard_ms(20000) / 1000.0;

	while (tu_now() < end) {
		int fd = tu_connect(d->port);
		if (fd >= 0) {
			close(fd);
			return;
		}
		if (waitpid(d->pid, NULL, WNOHANG) == d->pid) {
			char *log = demo_log(d);
			d->pid = 0;
			ck_abort_msg("the demo exited before listening on %d:\n%s", d->port, log);
		}
		tu_sleep_ms(50);
	}
	ck_abort_msg("the demo did not listen on %d within 20 s:\n%s", d->port, demo_log(d));
}

/* Wait (bounded) until no process of the demo's group is left. */
static bool group_gone(pid_t pgid, int ms)
{
	double end = tu_now() + ms / 1000.0;

	while (tu_now() < end) {
		if (kill(-pgid, 0) < 0 && errno == ESRCH)
			return true;
		tu_sleep_ms(20);
	}
	return false;
}

/* Names of the entries of dir (empty when none); malloc'd. */
static char *dir_entries(const char *dir)
{
	char *out = calloc(1, 1024);
	size_t len = 0;
	DIR *dp = opendir(dir);
	struct dirent *e;

	ck_assert_ptr_nonnull(out);
	ck_assert_msg(dp != NULL, "cannot open %s", dir);
	while ((e = readdir(dp)) != NULL) {
		if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
			continue;
		len += (size_t)snprintf(out + len, len < 1000 ? 1024 - len : 0, "%s ", e->d_name);
		if (len >= 1000)
			break;
	}
	closedir(dp);
	return out;
}

/* After the demo's script exited: nothing of it may be left. */
static void demo_check_nothing_left(struct demo *d)
{
	char *left;

	ck_assert_msg(group_gone(d->pid, 5000), "a process of the demo outlived it:\n%s",
	              demo_log(d));
	ck_assert_msg(tu_connect(d->port) < 0, "something still listens on %d", d->port);
	left = dir_entries(d->tmp);
	ck_assert_msg(left[0] == '\0', "the demo left files in its TMPDIR: %s", left);
	free(left);
}

/* Run cmd with bash, stdin from /dev/null; stdout and stderr together into
 * *out (malloc'd). Returns the wait status, or -1 if it ran over ms. Whatever
 * it started is killed once it is done. */
static int run_cmd(const char *cmd, int ms, char **out)
{
	int pipefd[2], status = -1;
	size_t cap = 4096, len = 0;
	char *buf = malloc(cap + 1);
	double end = tu_now() + ms / 1000.0;
	pid_t pid;

	ck_assert_ptr_nonnull(buf);
	ck_assert_int_eq(pipe(pipefd), 0);
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		int fd = open("/dev/null", O_RDONLY);
		setpgid(0, 0);
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		dup2(fd, 0);
		dup2(pipefd[1], 1);
		dup2(pipefd[1], 2);
		close(pipefd[0]);
		close(pipefd[1]);
		execlp("bash", "bash", "-c", cmd, (char *)NULL);
		_exit(127);
	}
	setpgid(pid, pid);
	close(pipefd[1]);
	for (;;) {
		struct pollfd pf = {pipefd[0], POLLIN, 0};
		int left = (int)((end - tu_now()) * 1000);
		ssize_t n;

		if (left <= 0 || poll(&pf, 1, left) <= 0)
			break;
		if (len == cap) {
			cap *= 2;
			buf = realloc(buf, cap + 1);
			ck_assert_ptr_nonnull(buf);
		}
		n = read(pipefd[0], buf + len, cap - len);
		if (n <= 0)
			break;
		len += (size_t)n;
	}
	close(pipefd[0]);
	buf[len] = '\0';
	*out = buf;
	status = tu_wait(pid, (int)((end - tu_now()) * 1000) + 100);
	/* Nothing the command started may outlive it. */
	kill(-pid, SIGKILL);
	if (status == -1)
		waitpid(pid, NULL, 0);
	return status;
}

/* A terminal shows "\r\n" as a line end, as the README does: compare so. */
static void strip_cr_before_lf(char *s)
{
	char *w = s;

	for (char *r = s; *r; r++)
		if (!(r[0] == '\r' && r[1] == '\n'))
			*w++ = *r;
	*w = '\0';
}

/* s with every README_PORT replaced by port; malloc'd. */
static char *with_port(const char *s, int port)
{
	size_t n = strlen(s) + 1;
	char *out = malloc(n * 2 + 16), *w = out, num[16];
	const char *p;

	ck_assert_ptr_nonnull(out);
	snprintf(num, sizeof(num), "%d", port);
	while ((p = strstr(s, README_PORT)) != NULL) {
		memcpy(w, s, (size_t)(p - s));
		w += p - s;
		w += sprintf(w, "%s", num);
		s = p + strlen(README_PORT);
	}
	strcpy(w, s);
	return out;
}

/* The README's example session: commands ("$ " lines) and what each prints
 * (the lines up to the next command), from the first fenced block after the
 * heading. */
#define MAX_STEPS 16

struct step {
	char *cmd;
	char expect[4096];
};

static size_t readme_example(char *readme, struct step *steps)
{
	char *p = strstr(readme, "\n## Example session\n"), *line;
	size_t n = 0;
	bool in_block = false;

	ck_assert_msg(p != NULL, "README.md has no '## Example session' section");
	p = strstr(p, "\n```");
	ck_assert_msg(p != NULL, "README.md's example session has no fenced block");
	p = strchr(p + 1, '\n');
	ck_assert_ptr_nonnull(p);
	for (line = p + 1; *line; line = p + 1) {
		p = strchr(line, '\n');
		ck_assert_msg(p != NULL, "README.md's example block is not closed");
		*p = '\0';
		if (!strcmp(line, "```")) {
			in_block = true;
			break;
		}
		if (!strncmp(line, "$ ", 2)) {
			size_t len = strlen(line);
			ck_assert_msg(n < MAX_STEPS, "more than %d commands in the example",
			              MAX_STEPS);
			/* The test starts the demo itself, on a port of its own: a
			 * make, or a job left in the background, would start another
			 * one on the real ports. */
			ck_assert_msg(strncmp(line + 2, "make", 4) != 0 && line[len - 1] != '&',
			              "README.md's example session must hold client commands "
			              "only (say to start make run in the text): '%s'",
			              line);
			steps[n].cmd = line + 2;
			steps[n].expect[0] = '\0';
			n++;
			continue;
		}
		ck_assert_msg(n > 0, "README.md's example starts with output, not a command: '%s'",
		              line);
		ck_assert(strlen(steps[n - 1].expect) + strlen(line) + 2 <
		          sizeof(steps[n - 1].expect));
		strcat(steps[n - 1].expect, line);
		strcat(steps[n - 1].expect, "\n");
	}
	ck_assert_msg(in_block, "README.md's example block is not closed");
	ck_assert_msg(n > 0, "README.md's example session has no command");
	return n;
}

/*
 * The example session, copied as printed, gives the output printed, against
 * a demo started as make run starts it; and a memcached already running (on
 * the port an earlier demo took for its own) is left untouched. Then Ctrl-C
 * stops everything.
 */
START_TEST(readme_example_session)
{
	static struct step steps[MAX_STEPS];
	struct proc mc;
	struct demo d;
	char path[512], *readme, problems[16384] = "";
	size_t n, plen = 0;
	int st;

	snprintf(path, sizeof(path), "%s/README.md", srcdir());
	readme = tu_read_file(path, NULL);
	ck_assert_msg(readme != NULL, "cannot read %s", path);
	n = readme_example(readme, steps);

	tu_memcached_start(&mc, 0);
	demo_start(&d, tu_free_port(), mc.port);
	demo_wait_ready(&d);

	for (size_t i = 0; i < n; i++) {
		char *cmd = with_port(steps[i].cmd, d.port),
		     *want = with_port(steps[i].expect, d.port);
		char *got;

		st = run_cmd(cmd, 10000, &got);
		strip_cr_before_lf(got);
		if ((st == -1 || strcmp(got, want) != 0) && plen < sizeof(problems) - 1) {
			plen += (size_t)snprintf(
			    problems + plen, sizeof(problems) - plen,
			    "$ %s\n-- README shows:\n%s-- it printed%s:\n%s-- end\n", steps[i].cmd,
			    steps[i].expect, st == -1 ? " (and ran over 10 s)" : "", got);
			if (plen >= sizeof(problems))
				plen = sizeof(problems) - 1;
		}
		free(cmd);
		free(want);
		free(got);
	}
	ck_assert_msg(plen == 0,
	              "README.md's example session does not print what it shows "
	              "(port %d in place of " README_PORT "):\n%s\ndemo log:\n%s",
	              d.port, problems, demo_log(&d));

	ck_assert_msg(tu_stat(mc.port, "cmd_set") == 0 && tu_stat(mc.port, "curr_items") == 0,
	              "the demo wrote into a memcached it did not start");

	/* Ctrl-C in the terminal of make run. */
	ck_assert_int_eq(kill(-d.pid, SIGINT), 0);
	st = tu_wait(d.pid, 15000);
	ck_assert_msg(st != -1, "the demo did not stop on Ctrl-C within 15 s:\n%s", demo_log(&d));
	demo_check_nothing_left(&d);
	tu_stop(&mc);
	free(readme);
}
END_TEST

/*
 * Its port taken by a memcached (which an earlier demo also took for its
 * own memcached's port): the demo says so, starts nothing, exits non-zero and
 * writes nothing into that memcached.
 */
START_TEST(busy_port_refused)
{
	struct proc mc;
	struct demo d;
	char want[64], *log, *left;
	int st;

	tu_memcached_start(&mc, 0);
	demo_start(&d, mc.port, mc.port);
	st = tu_wait(d.pid, 15000);
	log = demo_log(&d);
	ck_assert_msg(st != -1, "the demo did not stop within 15 s with its port in use:\n%s", log);
	ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) != 0,
	              "the demo did not fail with its port in use:\n%s", log);
	snprintf(want, sizeof(want), "127.0.0.1:%d is in use", mc.port);
	ck_assert_msg(strstr(log, want) != NULL, "the demo did not say '%s':\n%s", want, log);
	ck_assert_msg(tu_stat(mc.port, "cmd_set") == 0 && tu_stat(mc.port, "curr_items") == 0,
	              "the demo wrote into a memcached it did not start:\n%s", log);
	ck_assert_msg(group_gone(d.pid, 5000), "a process of the demo outlived it:\n%s", log);
	left = dir_entries(d.tmp);
	ck_assert_msg(left[0] == '\0', "the demo left files in its TMPDIR: %s", left);
	free(left);
	free(log);
	tu_stop(&mc);
}
END_TEST

Suite *demo_suite(void)
{
	Suite *s = suite_create("demo");
	TCase *tc = tcase_create("demo");

	tcase_set_timeout(tc, 90);
	tcase_add_test(tc, readme_example_session);
	tcase_add_test(tc, busy_port_refused);
	suite_add_tcase(s, tc);
	return s;
}
