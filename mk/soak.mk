# make soak: a few minutes of load with random upstream faults and crashes
# (tests/soak.sh); not part of make check. SOAK_SECONDS=30 for a short run.
ifeq ($(.DEFAULT_GOAL),)
.DEFAULT_GOAL := all
endif

.PHONY: soak

soak: deps
	$(MAKE) $(BIN) $(FAKE) $(BUILD)/bench/loadgen
	COALESCED_BIN=$(abspath $(BIN)) FAKE_UPSTREAM=$(abspath $(FAKE)) \
	LOADGEN=$(abspath $(BUILD)/bench/loadgen) bash tests/soak.sh
