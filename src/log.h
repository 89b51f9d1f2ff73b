/*
 * log: levelled log lines on stderr.
 *
 * A struct log lives in the server context and is passed explicitly; it owns
 * nothing but its level and the rate-limit state.
 */
#ifndef COALESCED_LOG_H
#define COALESCED_LOG_H

#include <stdarg.h>
#include <stdbool.h>

enum log_level { LVL_ERROR = 0, LVL_WARN, LVL_INFO, LVL_DEBUG };

struct log {
	int level;
	bool journal; /* stderr is the journal: syslog priorities, no timestamps */
};

/* At most one line a second per kind of event, so that a flood of bad
 * clients cannot flood the log; the next line says how many were skipped. */
struct log_limit {
	long long second;
	unsigned long long skipped;
};

#define LOG_ATTR_FMT __attribute__((format(printf, 3, 4)))
#define LOG_LIMITED_FMT __attribute__((format(printf, 4, 5)))

void log_msg(const struct log *lg, int level, const char *fmt, ...) LOG_ATTR_FMT;
const char *log_level_name(int level);
void log_limited(const struct log *lg, int level, struct log_limit *ll, const char *fmt, ...)
    LOG_LIMITED_FMT;
/* Whether stderr is connected to the systemd journal (JOURNAL_STREAM). */
bool log_stderr_is_journal(void);

#define log_error(lg, ...) log_msg((lg), LVL_ERROR, __VA_ARGS__)
#define log_warn(lg, ...) log_msg((lg), LVL_WARN, __VA_ARGS__)
#define log_info(lg, ...) log_msg((lg), LVL_INFO, __VA_ARGS__)
/* Debug lines are often built on hot paths: test the level before formatting. */
#define log_debug(lg, ...)                                                                         \
	do {                                                                                       \
		if ((lg)->level >= LVL_DEBUG)                                                      \
			log_msg((lg), LVL_DEBUG, __VA_ARGS__);                                     \
	} while (0)

#endif
