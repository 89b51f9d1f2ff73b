# fuzz.mk -- libFuzzer targets for the parsers and the configuration loader.
#
#   make fuzz        build the fuzz targets in build/fuzz (clang, ASan, UBSan)
#   make fuzz-smoke  run each for FUZZ_SECONDS (default 20); part of make check
#   make fuzz-long   run each for FUZZ_LONG_SECONDS (default 600)
#
# Each run works on a copy of the seed corpus, build/fuzz/corpus-<target>,
# which keeps what the fuzzer finds from run to run until make clean; the
# seeds in tests/fuzz/corpus are never written. A crash or an invariant
# violation fails the run, leaves the input in build/fuzz/artifacts and
# prints the end of the log. Targets run one after another: the fuzzer's own
# parallel modes would only fight over this machine's two cores.
#
# A crash input is replayed with: build/fuzz/<target> <file>

# Included before the main Makefile's first rule: keep "all" the default goal.
fuzz_mk_goal := $(.DEFAULT_GOAL)

FUZZ_BUILD := build/fuzz
FUZZ_CC ?= clang
FUZZ_SECONDS ?= 20
FUZZ_LONG_SECONDS ?= 600
FUZZ_FLAGS := -g -O1 -fno-omit-frame-pointer -fsanitize=fuzzer,address,undefined \
	-fno-sanitize-recover=all
# Not -Werror: src/ is written for the project's cc, and a warning only
# clang gives must not stop the fuzzers from building.
FUZZ_WARN := -std=c11 -Wall -Wextra -Wshadow -Wstrict-prototypes -Wmissing-prototypes
# -max_len bounds one input; -timeout fails any input that takes longer
# than that many seconds, which is how a parser that loops forever shows.
FUZZ_RUN_FLAGS := -max_len=8192 -timeout=5 -rss_limit_mb=2048 -print_final_stats=1
FUZZ_TARGETS := fuzz_proto_client fuzz_injection fuzz_mcreply fuzz_config fuzz_resp_request \
	fuzz_resp_reply

# The src modules each target links, and anything else it needs.
fuzz_srcs_fuzz_proto_client := src/proto_client.c src/proto_meta.c src/proto_tok.c
fuzz_srcs_fuzz_injection := src/proto_client.c src/proto_meta.c src/proto_tok.c
fuzz_srcs_fuzz_mcreply := src/proto_mcreply.c
fuzz_srcs_fuzz_config := src/config.c src/config_load.c src/addr.c src/log.c src/routes.c src/pg_codec.c
fuzz_srcs_fuzz_resp_request := src/proto_resp.c src/proto_respreply.c
fuzz_srcs_fuzz_resp_reply := src/proto_respreply.c src/proto_resp.c
fuzz_libs_fuzz_config := -linih -lm $(PG_LIBS) -Wl,--wrap=getaddrinfo

FUZZ_BINS := $(FUZZ_TARGETS:%=$(FUZZ_BUILD)/%)

.PHONY: fuzz fuzz-smoke fuzz-long

fuzz: $(FUZZ_BINS)

# Fails early, naming the package, when clang lacks the sanitizer runtimes.
$(FUZZ_BUILD)/.toolchain: | $(FUZZ_BUILD)
	@printf 'int LLVMFuzzerTestOneInput(const unsigned char *d, unsigned long n);\nint LLVMFuzzerTestOneInput(const unsigned char *d, unsigned long n) { (void)d; (void)n; return 0; }\n' \
		>$(FUZZ_BUILD)/toolchain.c
	@$(FUZZ_CC) $(FUZZ_FLAGS) -o $(FUZZ_BUILD)/toolchain $(FUZZ_BUILD)/toolchain.c || { \
		echo "fuzz: $(FUZZ_CC) cannot build with -fsanitize=fuzzer,address,undefined;" \
			"on Debian install clang and libclang-rt-14-dev" >&2; exit 1; }
	@rm -f $(FUZZ_BUILD)/toolchain $(FUZZ_BUILD)/toolchain.c
	@touch $@

$(FUZZ_BUILD):
	mkdir -p $@

# One clang call per target over its sources: the targets are small, and
# this keeps the fuzzing flags off the objects of the normal build. The rules
# are made with eval, which avoids .SECONDEXPANSION and its effect on every
# rule after it.
define fuzz_bin_rule
$(FUZZ_BUILD)/$(1): tests/fuzz/$(1).c $(fuzz_srcs_$(1)) $(wildcard src/*.h) \
		$(wildcard tests/fuzz/*.h) $(FUZZ_BUILD)/.toolchain
	$$(FUZZ_CC) $$(CPPFLAGS) -Isrc $$(FUZZ_WARN) $$(FUZZ_FLAGS) -o $$@ \
		tests/fuzz/$(1).c $(fuzz_srcs_$(1)) $(fuzz_libs_$(1))
endef
$(foreach t,$(FUZZ_TARGETS),$(eval $(call fuzz_bin_rule,$(t))))

# $(1): seconds per target. Each target gets a fresh copy of its seeds added
# to its working corpus, then a run whose log is kept beside it.
define fuzz_run
	@mkdir -p $(FUZZ_BUILD)/artifacts
	@for t in $(FUZZ_TARGETS); do \
		corpus=$(FUZZ_BUILD)/corpus-$$t; log=$(FUZZ_BUILD)/$$t.log; \
		mkdir -p $$corpus && cp tests/fuzz/corpus/$$t/* $$corpus/ || exit 1; \
		echo "fuzz: $$t for $(1) s (log: $$log)"; \
		if UBSAN_OPTIONS=print_stacktrace=1 $(FUZZ_BUILD)/$$t $(FUZZ_RUN_FLAGS) \
			-max_total_time=$(1) -artifact_prefix=$(FUZZ_BUILD)/artifacts/$$t- \
			$$corpus >$$log 2>&1; then \
			awk -v t=$$t '/^#[0-9]+.*DONE/ { cov = $$4; ft = $$6; corp = $$8 } \
				/^Done [0-9]+ runs in/ { runs = $$2; secs = $$5 } \
				/^stat::peak_rss_mb:/ { rss = $$2 } \
				END { printf "fuzz: %s: %s runs in %s s, cov %s, features %s, corpus %s, peak rss %s MB\n", \
					t, runs, secs, cov, ft, corp, rss }' $$log; \
		else \
			tail -n 60 $$log >&2; \
			echo "fuzz: $$t FAILED; input in $(FUZZ_BUILD)/artifacts/, full log $$log" >&2; \
			exit 1; \
		fi; \
	done
endef

fuzz-smoke: fuzz
	$(call fuzz_run,$(FUZZ_SECONDS))

fuzz-long: fuzz
	$(call fuzz_run,$(FUZZ_LONG_SECONDS))

CHECK_PRE += fuzz-smoke

.DEFAULT_GOAL := $(fuzz_mk_goal)
