/* log: one formatted line per call, written with a single write(2). */
#include "log.h"

#include <stdio.h>
#include <time.h>
#include <unistd.h>

static const char *const level_names[] = {"error", "warn", "info", "debug"};

const char *log_level_name(int level)
{
	if (level < LOG_ERROR || level > LOG_DEBUG)
		return "?";
	return level_names[level];
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
	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	n = strftime(line, sizeof(line), "%Y-%m-%dT%H:%M:%S", &tm);
	r = snprintf(line + n, sizeof(line) - n, ".%03ldZ %s: ", ts.tv_nsec / 1000000,
		     log_level_name(level));
	n += (size_t)r;
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
