# Client-testing toolkit (issue 4): the live probe and the browser console's bundled phoenix.js.
# `make probe HOST=203.0.113.7 PORT=4000` checks a running server end to end (README: Testing your client's failure paths).

PROBE_HOST = $(or $(HOST),127.0.0.1)
PROBE_URL ?= ws://$(PROBE_HOST):$(PORT)/socket
PROBE_ARGS ?=
CONSOLE_STATIC := server/tornado_phoenix/static
CONSOLE_PHOENIX := console/node_modules/phoenix

.PHONY: probe console toolkit-test

probe: $(VENV)/.installed ## probe a live server end to end: make probe HOST=… PORT=… [PROBE_ARGS='--json --token T --timeout 5']
	@$(BIN)/tornado-phoenix probe $(PROBE_URL) $(PROBE_ARGS); rc=$$?; \
	if [ $$rc -eq 0 ]; then echo "result: probe of $(PROBE_URL) passed" >&2; \
	else echo "result: probe of $(PROBE_URL) FAILED (exit $$rc)" >&2; fi; exit $$rc

console: ## rebuild the console's vendored phoenix.min.js and yjs.min.js (esbuild) from console/package-lock.json; commit the result
	cd console && npm ci --no-audit --no-fund --loglevel=error
	cp $(CONSOLE_PHOENIX)/priv/static/phoenix.min.js $(CONSOLE_STATIC)/phoenix.min.js
	cp $(CONSOLE_PHOENIX)/LICENSE.md $(CONSOLE_STATIC)/phoenix.LICENSE.md
	cd console && ./node_modules/.bin/esbuild yjs-entry.js --bundle --minify --format=iife --target=es2019 \
		--legal-comments=none --outfile=../$(CONSOLE_STATIC)/yjs.min.js
	for pkg in yjs y-protocols lib0; do echo "== $$pkg $$(node -p "require('./console/node_modules/$$pkg/package.json').version")"; \
		cat console/node_modules/$$pkg/LICENSE; echo; done > $(CONSOLE_STATIC)/yjs.LICENSE.md
	@echo "result: $(CONSOLE_STATIC)/phoenix.min.js is phoenix $$(node -p 'require("./$(CONSOLE_PHOENIX)/package.json").version'), yjs.min.js is yjs $$(node -p 'require("./console/node_modules/yjs/package.json").version')"

toolkit-test: install ## the fault, probe and console tests (raw client, phoenix.js, headless chromium)
	$(BIN)/pytest $(PYTEST_ARGS) tests/integration/test_faults.py tests/integration/test_probe.py \
		tests/clients/test_faults_phoenix_js.py tests/browser
	@echo "result: fault, probe and console tests passed"
