/* testpg: throw-away PostgreSQL clusters (see testpg.h). */
#include "testpg.h"
#include "testutil.h"

#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <grp.h>
#include <limits.h>
#include <pwd.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define PG_BINDIR_DEFAULT "/usr/lib/postgresql/15/bin"
#define START_MS 30000
#define STOP_MS 15000
#define INITDB_MS 120000

/*
 * The runner's PID, taken before Check forks any test: the template's path
 * is derived from it, so that a template made inside one forked test is
 * found by the next, and only the runner itself removes it at exit.
 */
static pid_t runner_pid;

static void template_remove(void);

__attribute__((constructor)) static void testpg_init(void)
{
	runner_pid = getpid();
	atexit(template_remove);
}

static const char *bindir(void)
{
	const char *d = getenv("PG_BINDIR");
	return d && *d ? d : PG_BINDIR_DEFAULT;
}

/* The user the server runs as: "nobody" under root, else ourselves. */
static void pg_user(uid_t *uid, gid_t *gid)
{
	struct passwd *pw;

	*uid = geteuid();
	*gid = getegid();
	if (*uid != 0)
		return;
	pw = getpwnam("nobody");
	ck_assert_msg(pw != NULL, "testpg: no user \"nobody\" to run PostgreSQL as");
	*uid = pw->pw_uid;
	*gid = pw->pw_gid;
}

static void chown_to_pg(const char *path)
{
	uid_t uid;
	gid_t gid;

	pg_user(&uid, &gid);
	ck_assert_msg(chown(path, uid, gid) == 0, "chown %s: %s", path, strerror(errno));
}

/*
 * fork + exec argv with stdout and stderr appended to log, as the server's
 * user when asked. The child dies with this process (set after the user
 * switch, which would clear it).
 */
static pid_t spawn(const char *const *argv, const char *log, bool as_pg)
{
	pid_t parent = getpid(), pid;
	uid_t uid;
	gid_t gid;

	pg_user(&uid, &gid);
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		int fd = open("/dev/null", O_RDONLY);
		dup2(fd, 0);
		fd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0644);
		if (fd >= 0) {
			dup2(fd, 1);
			dup2(fd, 2);
		}
		if (as_pg && geteuid() == 0 &&
		    (setgroups(0, NULL) < 0 || setgid(gid) < 0 || setuid(uid) < 0)) {
			perror("testpg: dropping privileges");
			_exit(126);
		}
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (getppid() != parent)
			_exit(125);
		setenv("TZ", "UTC", 1);
		setenv("LC_ALL", "C", 1);
		unsetenv("PGDATA");
		unsetenv("PGOPTIONS");
		execv(argv[0], (char *const *)argv);
		fprintf(stderr, "testpg: exec %s: %s\n", argv[0], strerror(errno));
		_exit(127);
	}
	return pid;
}

/* Run argv to completion (bounded); asserts exit status 0. */
static void run(const char *const *argv, const char *log, bool as_pg)
{
	pid_t pid = spawn(argv, log, as_pg);
	int st = tu_wait(pid, INITDB_MS);

	if (st == -1) {
		kill(pid, SIGKILL);
		waitpid(pid, NULL, 0);
	}
	ck_assert_msg(st != -1 && WIFEXITED(st) && WEXITSTATUS(st) == 0,
	              "testpg: %s failed (status %d; log %s)", argv[0], st, log);
}

static int rm_cb(const char *path, const struct stat *sb, int type, struct FTW *ftw)
{
	(void)sb;
	(void)type;
	(void)ftw;
	remove(path);
	return 0;
}

static void rm_rf(const char *path)
{
	if (path[0])
		nftw(path, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
}

/*
 * SIGKILL every process working in root's data directory, until none is
 * left (bounded). That is the postmaster and all its children, found by
 * their working directory: backends are process groups of their own, and
 * outlive a killed postmaster for a moment, long enough to answer a query
 * or to keep the shared memory that a restart would then find in use.
 * Zombies do not count: they hold nothing, and nobody may be reaping them.
 */
static void cluster_kill(const char *root)
{
	char data[300], real[PATH_MAX];
	double end = tu_now() + 10;

	snprintf(data, sizeof(data), "%s/data", root);
	if (!realpath(data, real))
		return;
	while (tu_now() < end) {
		DIR *d = opendir("/proc");
		struct dirent *e;
		int n = 0;

		if (!d)
			return;
		while ((e = readdir(d))) {
			char path[300], buf[PATH_MAX], *s, state = 'Z';
			long pid = strtol(e->d_name, &s, 10);
			ssize_t len;
			FILE *f;

			if (pid <= 1 || *s)
				continue;
			snprintf(path, sizeof(path), "/proc/%ld/cwd", pid);
			len = readlink(path, buf, sizeof(buf) - 1);
			if (len <= 0)
				continue;
			buf[len] = '\0';
			if (strcmp(buf, real) != 0)
				continue;
			snprintf(path, sizeof(path), "/proc/%ld/stat", pid);
			f = fopen(path, "r");
			if (f) {
				s = fgets(buf, sizeof(buf), f) ? strrchr(buf, ')') : NULL;
				if (s && s[1] == ' ')
					state = s[2];
				fclose(f);
			}
			if (state != 'Z' && state != 'X') {
				kill((pid_t)pid, SIGKILL);
				n++;
			}
		}
		closedir(d);
		if (n == 0)
			return;
		tu_sleep_ms(5);
	}
}

/* The same for a postmaster that is our child, reaped. */
static void cluster_kill_child(struct pgproc *p)
{
	kill(p->pid, SIGKILL);
	cluster_kill(p->root);
	waitpid(p->pid, NULL, 0);
	p->pid = 0;
}

/*
 * A process that waits for the end of its pipe, held open only by the
 * starting process (and forks of it): then it kills whatever still runs
 * in the cluster and removes its directory. It leaves the test's process
 * group, which Check kills on a timeout, and closes every other descriptor
 * so as to keep no socket of the test open.
 */
static void guard_start(struct pgproc *p)
{
	int fds[2];
	pid_t pid;

	ck_assert_int_eq(pipe2(fds, O_CLOEXEC), 0);
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		long max = sysconf(_SC_OPEN_MAX);
		char c;

		setpgid(0, 0);
		for (int fd = 3; fd < (max > 0 && max < 65536 ? max : 65536); fd++)
			if (fd != fds[0])
				close(fd);
		while (read(fds[0], &c, 1) < 0 && errno == EINTR)
			;
		cluster_kill(p->root);
		rm_rf(p->root);
		_exit(0);
	}
	close(fds[0]);
	p->guard = pid;
	p->guard_fd = fds[1];
}

static void guard_stop(struct pgproc *p)
{
	if (p->guard <= 0)
		return;
	close(p->guard_fd);
	if (tu_wait(p->guard, 15000) == -1) {
		kill(p->guard, SIGKILL);
		waitpid(p->guard, NULL, 0);
	}
	p->guard = 0;
}

static void assert_owner(const struct pgproc *p, const char *what)
{
	ck_assert_msg(p->owner == getpid(),
	              "testpg: %s in process %d of a cluster started by process %d: a test that "
	              "stops, kills or restarts a cluster must start its own",
	              what, (int)getpid(), (int)p->owner);
}

static void set_paths(struct pgproc *p, const char *root, int port)
{
	p->port = port;
	snprintf(p->root, sizeof(p->root), "%s", root);
	snprintf(p->sockdir, sizeof(p->sockdir), "%s/sock", root);
	snprintf(p->log, sizeof(p->log), "%s/postgres-%d.log", tu_tmpdir(), port);
	snprintf(p->conninfo, sizeof(p->conninfo),
	         "host=127.0.0.1 port=%d dbname=" TU_PG_DB " user=" TU_PG_USER
	         " password=" TU_PG_PASSWORD " connect_timeout=10",
	         port);
	snprintf(p->conninfo_unix, sizeof(p->conninfo_unix),
	         "host=%s port=%d dbname=" TU_PG_DB " user=" TU_PG_USER " password=" TU_PG_PASSWORD
	         " connect_timeout=10",
	         p->sockdir, port);
	snprintf(p->admin, sizeof(p->admin),
	         "host=%s port=%d dbname=" TU_PG_DB " user=" TU_PG_SUPERUSER
	         " connect_timeout=10 options='-c statement_timeout=60000'",
	         p->sockdir, port);
}

/* Start the postmaster on p's data directory and wait until it accepts
 * connections on the socket; ping is the connection string to try. */
static void launch(struct pgproc *p, const char *ping)
{
	char postgres[256], data[200], port[16], sock[200];
	const char *argv[] = {postgres,
	                      "-D",
	                      data,
	                      "-p",
	                      port,
	                      "-k",
	                      sock,
	                      "-c",
	                      "listen_addresses=127.0.0.1",
	                      "-c",
	                      "fsync=off",
	                      "-c",
	                      "min_wal_size=2MB",
	                      "-c",
	                      "max_wal_size=64MB",
	                      "-c",
	                      "full_page_writes=off",
	                      "-c",
	                      "wal_level=minimal",
	                      "-c",
	                      "max_wal_senders=0",
	                      "-c",
	                      "autovacuum=off",
	                      "-c",
	                      "jit=off",
	                      "-c",
	                      "shared_buffers=16MB",
	                      "-c",
	                      "huge_pages=off",
	                      "-c",
	                      "logging_collector=off",
	                      "-c",
	                      "shared_preload_libraries=pg_stat_statements",
	                      "-c",
	                      "pg_stat_statements.save=off",
	                      NULL};
	double end = tu_now() + START_MS / 1000.0;

	snprintf(postgres, sizeof(postgres), "%s/postgres", bindir());
	snprintf(data, sizeof(data), "%s/data", p->root);
	snprintf(port, sizeof(port), "%d", p->port);
	snprintf(sock, sizeof(sock), "%s", p->sockdir);
	p->pid = spawn(argv, p->log, true);
	p->owner = getpid();
	while (PQping(ping) != PQPING_OK) {
		int st;
		if (waitpid(p->pid, &st, WNOHANG) == p->pid) {
			p->pid = 0;
			ck_abort_msg(
			    "testpg: postgres exited with status %d while starting (log %s)", st,
			    p->log);
		}
		if (tu_now() > end) {
			cluster_kill_child(p);
			ck_abort_msg("testpg: postgres not ready after %d ms (log %s)", START_MS,
			             p->log);
		}
		tu_sleep_ms(10);
	}
}

static void halt(struct pgproc *p)
{
	int st;

	if (p->pid <= 0)
		return;
	kill(p->pid, SIGINT);
	st = tu_wait(p->pid, STOP_MS);
	if (st == -1)
		cluster_kill_child(p);
	p->pid = 0;
}

static void exec_ok(PGconn *c, const char *sql)
{
	PGresult *r = PQexec(c, sql);
	ExecStatusType s = PQresultStatus(r);

	ck_assert_msg(s == PGRES_COMMAND_OK || s == PGRES_TUPLES_OK, "testpg: %s: %s", sql,
	              PQresultErrorMessage(r));
	PQclear(r);
}

static void write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");

	ck_assert_msg(f != NULL, "%s: %s", path, strerror(errno));
	fputs(text, f);
	ck_assert_int_eq(fclose(f), 0);
	chown_to_pg(path);
}

static const char hba[] = "# testpg: the superuser without a password, everyone else with one\n"
                          "local all " TU_PG_SUPERUSER " trust\n"
                          "host all " TU_PG_SUPERUSER " 127.0.0.1/32 trust\n"
                          "local all all scram-sha-256\n"
                          "host all all 127.0.0.1/32 scram-sha-256\n";

static void template_path(char *buf, size_t cap)
{
	snprintf(buf, cap, "/tmp/coalesced-pgtemplate.%d", (int)runner_pid);
}

static void template_remove(void)
{
	char dir[128];

	if (getpid() != runner_pid)
		return;
	template_path(dir, sizeof(dir));
	rm_rf(dir);
}

/* The template data directory (made on first use): initdb, our pg_hba.conf,
 * one start to create the role, the database and the extension, a clean
 * shutdown so that copies start without recovery. */
static void template_get(char *data, size_t cap)
{
	char dir[128], build[192], path[300], initdb[256];
	const char *argv[] = {initdb,
	                      "-D",
	                      path,
	                      "-U",
	                      TU_PG_SUPERUSER,
	                      "-A",
	                      "trust",
	                      "-E",
	                      "UTF8",
	                      "--locale=C",
	                      "--no-sync",
	                      "--wal-segsize=1",
	                      "--no-instructions",
	                      NULL};
	struct pgproc t;
	struct stat sb;
	PGconn *c;

	template_path(dir, sizeof(dir));
	snprintf(data, cap, "%s/data", dir);
	if (stat(data, &sb) == 0)
		return;
	if (mkdir(dir, 0755) < 0)
		ck_assert_msg(errno == EEXIST && lstat(dir, &sb) == 0 && S_ISDIR(sb.st_mode) &&
		                  sb.st_uid == geteuid(),
		              "testpg: cannot use %s as the template's directory", dir);
	/* Built aside and renamed into place: a test killed halfway leaves no
	 * half-made template behind for the next. */
	snprintf(build, sizeof(build), "%s/build.%d", dir, (int)getpid());
	rm_rf(build);
	ck_assert_int_eq(mkdir(build, 0700), 0);
	chown_to_pg(build);
	memset(&t, 0, sizeof(t));
	set_paths(&t, build, tu_free_port());
	snprintf(initdb, sizeof(initdb), "%s/initdb", bindir());
	snprintf(path, sizeof(path), "%s/data", build);
	run(argv, t.log, true);
	snprintf(path, sizeof(path), "%s/data/pg_hba.conf", build);
	write_file(path, hba);
	ck_assert_int_eq(mkdir(t.sockdir, 0755), 0);
	chown_to_pg(t.sockdir);

	snprintf(path, sizeof(path), "host=%s port=%d dbname=postgres user=" TU_PG_SUPERUSER,
	         t.sockdir, t.port);
	launch(&t, path);
	c = tu_pg_connect(path);
	exec_ok(c, "CREATE ROLE " TU_PG_USER " LOGIN PASSWORD '" TU_PG_PASSWORD "'");
	exec_ok(c, "CREATE DATABASE " TU_PG_DB " OWNER " TU_PG_USER);
	PQfinish(c);
	c = tu_pg_connect(t.admin);
	exec_ok(c, "CREATE EXTENSION pg_stat_statements");
	PQfinish(c);
	halt(&t);

	snprintf(path, sizeof(path), "%s/data", build);
	ck_assert_msg(rename(path, data) == 0, "rename %s: %s", path, strerror(errno));
	rm_rf(build);
}

void tu_pg_start(struct pgproc *p)
{
	char tpl[160], root[] = "/tmp/coalesced-pg.XXXXXX", data[200];
	const char *cp[] = {"/bin/cp", "-a", tpl, data, NULL};

	memset(p, 0, sizeof(*p));
	template_get(tpl, sizeof(tpl));
	ck_assert_ptr_nonnull(mkdtemp(root));
	chown_to_pg(root);
	set_paths(p, root, tu_free_port());
	guard_start(p);
	snprintf(data, sizeof(data), "%s/data", root);
	/* As root, cp -a keeps the owner: the copy is the server user's. */
	run(cp, p->log, false);
	ck_assert_int_eq(mkdir(p->sockdir, 0755), 0);
	chown_to_pg(p->sockdir);
	launch(p, p->admin);
}

void tu_pg_stop(struct pgproc *p)
{
	if (!p->root[0])
		return;
	/* Also when it is down: the guard is the owner's child. */
	assert_owner(p, "tu_pg_stop");
	halt(p);
	rm_rf(p->root);
	guard_stop(p);
	p->root[0] = '\0';
}

void tu_pg_kill(struct pgproc *p)
{
	ck_assert_msg(p->pid > 0, "testpg: tu_pg_kill of a cluster that is not running");
	assert_owner(p, "tu_pg_kill");
	cluster_kill_child(p);
}

void tu_pg_restart(struct pgproc *p)
{
	ck_assert_msg(p->root[0], "testpg: tu_pg_restart of a cluster never started");
	if (p->pid > 0) {
		assert_owner(p, "tu_pg_restart");
		halt(p);
	}
	launch(p, p->admin);
}

PGconn *tu_pg_connect(const char *conninfo)
{
	PGconn *c = PQconnectdb(conninfo);

	ck_assert_ptr_nonnull(c);
	ck_assert_msg(PQstatus(c) == CONNECTION_OK, "testpg: connect (%s): %s", conninfo,
	              PQerrorMessage(c));
	return c;
}

char *tu_pg_exec(struct pgproc *p, const char *sql)
{
	PGconn *c = tu_pg_connect(p->admin);
	PGresult *r = PQexec(c, sql);
	ExecStatusType s = PQresultStatus(r);
	char *v = NULL;

	ck_assert_msg(s == PGRES_COMMAND_OK || s == PGRES_TUPLES_OK, "testpg: %s: %s", sql,
	              PQresultErrorMessage(r));
	if (s == PGRES_TUPLES_OK && PQntuples(r) > 0 && PQnfields(r) > 0 && !PQgetisnull(r, 0, 0))
		v = strdup(PQgetvalue(r, 0, 0));
	PQclear(r);
	PQfinish(c);
	return v;
}

long long tu_pg_int(struct pgproc *p, const char *sql)
{
	char *v = tu_pg_exec(p, sql), *end;
	long long n;

	ck_assert_msg(v != NULL, "testpg: %s: no value", sql);
	errno = 0;
	n = strtoll(v, &end, 10);
	ck_assert_msg(errno == 0 && end != v && *end == '\0', "testpg: %s: not an integer: %s", sql,
	              v);
	free(v);
	return n;
}

char *tu_pg_error(struct pgproc *p, const char *sql)
{
	PGconn *c = tu_pg_connect(p->admin);
	PGresult *r = PQexec(c, sql);
	const char *m = PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY);
	char *v;

	ck_assert_msg(PQresultStatus(r) == PGRES_FATAL_ERROR && m, "testpg: %s: did not fail", sql);
	v = strdup(m);
	PQclear(r);
	PQfinish(c);
	return v;
}

long long tu_pg_calls(struct pgproc *p, const char *like)
{
	PGconn *c = tu_pg_connect(p->admin);
	const char *params[1] = {like};
	PGresult *r = PQexecParams(c,
	                           "SELECT coalesce(sum(calls), 0) FROM pg_stat_statements "
	                           "WHERE query LIKE $1",
	                           1, NULL, params, NULL, NULL, 0);
	long long n;

	ck_assert_msg(PQresultStatus(r) == PGRES_TUPLES_OK, "testpg: pg_stat_statements: %s",
	              PQresultErrorMessage(r));
	n = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
	PQclear(r);
	PQfinish(c);
	return n;
}
