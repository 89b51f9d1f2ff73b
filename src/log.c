/* log: one formatted line per call, written with a single write(2). */
#include "log.h"

#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static const char *const level_names[] = {"error", "warn", "info", "debug"};

const char *log_level_name(int level)
{
	if (level < LVL_ERROR || level > LVL_DEBUG)
		return "?";
	return level_names[level];
}

bool log_stderr_is_journal(void)
{
	const char *js = getenv("JOURNAL_STREAM");
	unsigned long long dev, ino;
	struct stat st;

	/* systemd sets it to stderr's device:inode; a redirected stderr differs. */
	if (!js || sscanf(js, "%llu:%llu", &dev, &ino) != 2 || fstat(STDERR_FILENO, &st) < 0)
		return false;
	return (unsigned long long)st.st_dev == dev && (unsigned long long)st.st_ino == ino;
}

void log_limited(const struct log *lg, int level, struct log_limit *ll, const char *fmt, ...)
{
	struct timespec ts;
	char msg[900];
	va_list ap;
	long long now, prev;
	unsigned long long skipped;

	if (lg && level > lg->level)
		return;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	/* Worker threads may share a limit: the one that moves it to a new
	 * second writes the line. */
	now = (long long)ts.tv_sec;
	prev = __atomic_load_n(&ll->second, __ATOMIC_RELAXED);
	if (prev == now || !__atomic_compare_exchange_n(&ll->second, &prev, now, false,
	                                                __ATOMIC_RELAXED, __ATOMIC_RELAXED)) {
		__atomic_fetch_add(&ll->skipped, 1, __ATOMIC_RELAXED);
		return;
	}
	skipped = __atomic_exchange_n(&ll->skipped, 0, __ATOMIC_RELAXED);
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (skipped)
		log_msg(lg, level, "%s (and %llu more like it)", msg, skipped);
	else
		log_msg(lg, level, "%s", msg);
}

void log_msg(const struct log *lg, int level, const char *fmt, ...)
{
	char line[1024];
	struct timespec ts;
	struct tm tm;
	size_t n;
	int r;
	va_list ap;

	if (lg && level > lg->level)
		return;
	if (lg && lg->journal) {
		/* The journal stamps lines itself and reads "<N>" as the priority. */
		static const int prio[] = {3, 4, 6, 7};
		r = snprintf(line, sizeof(line), "<%d>", prio[level]);
		n = (size_t)r;
	} else {
		clock_gettime(CLOCK_REALTIME, &ts);
		gmtime_r(&ts.tv_sec, &tm);
		n = strftime(line, sizeof(line), "%Y-%m-%dT%H:%M:%S", &tm);
		r = snprintf(line + n, sizeof(line) - n, ".%03ldZ %s: ", ts.tv_nsec / 1000000,
		             log_level_name(level));
		n += (size_t)r;
	}
	va_start(ap, fmt);
	r = vsnprintf(line + n, sizeof(line) - n - 1, fmt, ap);
	va_end(ap);
	if (r < 0)
		r = 0;
	n += (size_t)r;
	if (n > sizeof(line) - 2)
		n = sizeof(line) - 2; /* truncated: still end the line */
	line[n++] = '\n';
	/* One write per line so lines from concurrent writers never interleave. */
	if (write(STDERR_FILENO, line, n) < 0)
		return;
}
