# make bench: build the load generator and compare memcached direct, twemproxy
# (nutcracker) and coalesced under load (tests/bench/run.sh; the mixed scenario
# adds 10 % sets to Zipf reads), then pgbench direct, pgbouncer and coalesced in
# front of PostgreSQL (tests/bench/pg.sh). Not part of make check.
# BENCH_SECONDS=2 make bench is a quick smoke run; results go to bench/results/
# (results.md, results.jsonl, scaling.png, mixed.md, pg.md, threads.md).

# This fragment is read before the main Makefile's first rule: keep `all` the
# default goal.
ifeq ($(.DEFAULT_GOAL),)
.DEFAULT_GOAL := all
endif

LOADGEN := $(BUILD)/bench/loadgen
LOADGEN_CFLAGS := -std=c11 -D_GNU_SOURCE -O2 -g -Wall -Wextra -Werror

.PHONY: bench bench-deps loadgen

loadgen: $(LOADGEN)

$(LOADGEN): tests/bench/loadgen.c
	@mkdir -p $(@D)
	$(CC) $(LOADGEN_CFLAGS) -o $@ $< -lev -lm

bench-deps: deps
	@sh tests/bench/deps.sh

bench: bench-deps
	$(MAKE) $(BIN) $(FAKE) $(LOADGEN)
	COALESCED_BIN=$(abspath $(BIN)) FAKE_UPSTREAM=$(abspath $(FAKE)) \
	LOADGEN=$(abspath $(LOADGEN)) bash tests/bench/run.sh
	COALESCED_BIN=$(abspath $(BIN)) LOADGEN=$(abspath $(LOADGEN)) bash tests/bench/pg.sh
	$(MAKE) bench-threads

# make bench-threads: threads = 1 against threads = 2 on every main scenario,
# several rounds, and the model for bigger machines (bench/results/threads.md).
.PHONY: bench-threads
bench-threads: bench-deps
	$(MAKE) $(BIN) $(FAKE) $(LOADGEN)
	COALESCED_BIN=$(abspath $(BIN)) FAKE_UPSTREAM=$(abspath $(FAKE)) \
	LOADGEN=$(abspath $(LOADGEN)) bash tests/bench/threads.sh

# make bench-redis: Redis directly, twemproxy (redis: true) and coalesced with
# RESP on both sides, driven by redis-benchmark and by loadgen --protocol resp
# (tests/bench/redis.sh); results in bench/results/redis.md.
.PHONY: bench-redis
bench-redis: bench-deps
	$(MAKE) $(BIN) $(FAKE_REDIS) $(LOADGEN)
	COALESCED_BIN=$(abspath $(BIN)) FAKE_REDIS=$(abspath $(FAKE_REDIS)) \
	LOADGEN=$(abspath $(LOADGEN)) bash tests/bench/redis.sh
