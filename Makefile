# coalesced — request-coalescing proxy for the memcached text protocol.
#
#   make            build ./coalesced
#   make check      install missing Debian packages, build, run every test
#   make run        start a local memcached with demo keys and coalesced in front
#   make asan       the test suite with ASan + UBSan
#   make valgrind   the test suite with the daemon under valgrind
#   make check-threads  the test suite with [server] threads = 2 as the default
#   make tsan       the test suite with ThreadSanitizer, threads = 2 as the default
#   make check-all  check, then check-threads, tsan, asan and valgrind
#   make format     clang-format the sources

CC ?= cc
CFLAGS ?= -O2 -g
CPPFLAGS += -D_GNU_SOURCE
# THREADS=N builds a daemon whose [server] threads defaults to N.
ifneq ($(THREADS),)
CPPFLAGS += -DCOALESCED_DEFAULT_THREADS='"$(THREADS)"'
endif
WARN := -std=c11 -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes -Wmissing-prototypes
# libpq: the PostgreSQL backend and the tests' throw-away clusters.
PG_CPPFLAGS := $(shell pkg-config --cflags libpq 2>/dev/null || echo -I$$(pg_config --includedir))
PG_LIBS := $(shell pkg-config --libs libpq 2>/dev/null || echo -lpq)
CPPFLAGS += $(PG_CPPFLAGS)
LDLIBS_DAEMON := -lev -linih -lsystemd -lm -pthread $(PG_LIBS)
CHECK_LIBS := $(shell pkg-config --libs check 2>/dev/null || echo -lcheck -lsubunit -lm -lrt -pthread)
# The placement tests compare against libmemcached itself; only the test
# runner links it, never the daemon.
CHECK_LIBS += -lmemcached -lhashkit

BUILD ?= build
BIN ?= coalesced

SRCS := $(wildcard src/*.c)
OBJS := $(SRCS:src/%.c=$(BUILD)/%.o)
LIB_OBJS := $(filter-out $(BUILD)/main.o,$(OBJS))
TEST_SRCS := $(wildcard tests/test_*.c) tests/check_main.c tests/testutil.c tests/testpg.c
TEST_OBJS := $(TEST_SRCS:tests/%.c=$(BUILD)/tests/%.o)
FAKE := $(BUILD)/fake_upstream
FAKE_REDIS := $(BUILD)/fake_redis

.PHONY: all check check-pre check-all check-threads test deps run asan tsan valgrind format clean

# Extra steps (fuzzing, man page lint, install tree, benchmarks) live in
# mk/*.mk; a fragment adds itself to CHECK_PRE to run before the test runner,
# so that the runner's summary stays the last thing make check prints.
CHECK_PRE :=
-include $(sort $(wildcard mk/*.mk))

all: $(BIN)

$(BIN): $(OBJS)
	$(CC) $(CFLAGS) $(EXTRA_CFLAGS) -o $@ $(OBJS) $(LDFLAGS) $(LDLIBS_DAEMON)

$(BUILD)/%.o: src/%.c | $(BUILD)
	$(CC) $(CPPFLAGS) $(WARN) $(CFLAGS) $(EXTRA_CFLAGS) -MMD -MP -c -o $@ $<

$(BUILD)/tests/%.o: tests/%.c | $(BUILD)/tests
	$(CC) $(CPPFLAGS) -Isrc $(WARN) -Wno-missing-prototypes $(CFLAGS) $(EXTRA_CFLAGS) -MMD -MP -c -o $@ $<

$(BUILD)/check_all: $(TEST_OBJS) $(LIB_OBJS)
	$(CC) $(CFLAGS) $(EXTRA_CFLAGS) -o $@ $^ $(LDFLAGS) $(LDLIBS_DAEMON) $(CHECK_LIBS)

$(FAKE): tests/fake_upstream.c | $(BUILD)
	$(CC) $(CPPFLAGS) $(WARN) $(CFLAGS) $(EXTRA_CFLAGS) -o $@ $<

$(FAKE_REDIS): tests/fake_redis.c | $(BUILD)
	$(CC) $(CPPFLAGS) $(WARN) $(CFLAGS) $(EXTRA_CFLAGS) -o $@ $<

$(BUILD) $(BUILD)/tests:
	mkdir -p $@

# deps: every package make check needs; deps-run: only what make run needs.
deps:
	@sh tests/deps.sh test
deps-run:
	@sh tests/deps.sh run
.PHONY: deps-run

# The whole suite: unit tests in-process, integration tests against real
# memcached, the fake upstream and the daemon. Check prints the summary.
check: deps
	$(MAKE) $(BIN) $(BUILD)/check_all $(FAKE) $(FAKE_REDIS)
	$(if $(CHECK_PRE),$(MAKE) $(CHECK_PRE))
	COALESCED_BIN=$(abspath $(BIN)) FAKE_UPSTREAM=$(abspath $(FAKE)) \
		FAKE_REDIS=$(abspath $(FAKE_REDIS)) \
		$(BUILD)/check_all
test: check

# CK_TIMEOUT_MULTIPLIER scales Check's test timeouts and every wait in the
# tests (tests/testutil.h): a slower build gets longer hang guards, never a
# different verdict. CHECK_PRE is left out: the fuzz targets and the man
# page lint are the same in every build, and make check runs them.
asan: deps
	CK_TIMEOUT_MULTIPLIER=3 $(MAKE) check BUILD=build/asan BIN=build/asan/coalesced CC=clang \
		CFLAGS="-O1 -g -fno-omit-frame-pointer" \
		EXTRA_CFLAGS="-fsanitize=address,undefined -fno-sanitize-recover=all" CHECK_PRE=

# Every test again on the threaded path: the daemon's [server] threads
# defaults to 2, so each test's daemon runs two workers sharing keys.
check-threads: deps
	$(MAKE) check BUILD=build/threads BIN=build/threads/coalesced THREADS=2 CHECK_PRE=

# ThreadSanitizer on the threaded path; any data race fails the daemon's exit
# status (66), which the tests check, or the test runner itself.
tsan: deps
	TSAN_OPTIONS="halt_on_error=1 exitcode=66 second_deadlock_stack=1" \
	CK_TIMEOUT_MULTIPLIER=4 $(MAKE) check BUILD=build/tsan BIN=build/tsan/coalesced CC=clang \
		CFLAGS="-O1 -g -fno-omit-frame-pointer" EXTRA_CFLAGS="-fsanitize=thread" \
		THREADS=2 CHECK_PRE=

# The daemon runs under valgrind in every integration test; any error it
# reports makes its exit status 99, which the tests check. Tests scale their
# waits by CK_TIMEOUT_MULTIPLIER (tu_guard_ms); VALGRIND=1 stays for tests
# written before that.
valgrind: deps
	$(MAKE) $(BIN) $(BUILD)/check_all $(FAKE) $(FAKE_REDIS)
	COALESCED_BIN=$(abspath $(BIN)) FAKE_UPSTREAM=$(abspath $(FAKE)) \
	COALESCED_WRAPPER="valgrind -q --error-exitcode=99 --leak-check=full --errors-for-leak-kinds=definite" \
	CK_TIMEOUT_MULTIPLIER=6 VALGRIND=1 \
		valgrind -q --error-exitcode=99 --leak-check=full --errors-for-leak-kinds=definite \
		--trace-children=no $(BUILD)/check_all

# Everything, one after the other (they would only fight over the cores):
# the first failure stops it.
check-all:
	$(MAKE) check
	$(MAKE) check-threads
	$(MAKE) tsan
	$(MAKE) asan
	$(MAKE) valgrind

# A demo memcached with three keys and coalesced in front of it on
# 127.0.0.1:$(COALESCED_PORT) (default 11311), in the foreground; Ctrl-C stops
# both. The build waits for deps-run, hence the recursive make.
run: deps-run
	@$(MAKE) --no-print-directory $(BIN)
	@COALESCED_PORT='$(COALESCED_PORT)' sh tests/run_demo.sh $(abspath $(BIN))

format:
	clang-format -i src/*.c src/*.h tests/*.c tests/*.h

clean:
	rm -rf build $(BIN)

-include $(OBJS:.o=.d) $(TEST_OBJS:.o=.d)
