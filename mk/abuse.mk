# The abuse suite (tests/abuse, issue 10 §4). `make test` runs it at CI size (TP_ABUSE_SCALE=1, ~2 minutes);
# `make abuse` runs it 5x bigger (>= 20,000 fuzz cases); `make soak` is the long RSS-drift run.
ABUSE_SCALE   ?= 5
SOAK_SOCKETS  ?= 10000
SOAK_SECONDS  ?= 1800

.PHONY: abuse soak

abuse: install ## the abuse suite, 5x the CI size (fuzzer >= 20,000 frames, floods, slow consumers, SIGTERM)
	TP_ABUSE_SCALE=$(ABUSE_SCALE) $(BIN)/pytest -s -p no:cacheprovider $(PYTEST_ARGS) tests/abuse
	@echo "result: abuse suite passed"

soak: install ## 10,000 sockets with traffic for 30 minutes; prints the server's RSS drift (target <= 5 %)
	TP_SOAK=1 TP_SOAK_SOCKETS=$(SOAK_SOCKETS) TP_SOAK_SECONDS=$(SOAK_SECONDS) \
		$(BIN)/pytest -s -p no:cacheprovider $(PYTEST_ARGS) tests/abuse/test_soak.py
	@echo "result: soak passed"
