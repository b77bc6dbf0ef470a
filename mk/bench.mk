# Benchmarks (issue 5): tornado-phoenix against a bare Tornado relay, same machine, same run. See bench/README.md.
# BENCH_ARGS passes options to bench/run.py, e.g. BENCH_ARGS='--sizes 10000 --targets phx,relay --nice -10'.

BENCH_ARGS ?=

.PHONY: bench bench-smoke bench-install bench-yjs

bench/node_modules/.installed: bench/package.json bench/package-lock.json
	@echo "==> installing the load generator's ws from bench/package-lock.json"
	cd bench && npm ci --no-audit --no-fund --loglevel=error
	@touch $@

bench-install: $(VENV)/.installed bench/node_modules/.installed ## install what make bench needs (venv, bench/node_modules)
	@echo "result: bench dependencies installed"

bench: bench-install ## full benchmark, 1k/5k/10k/19k members, ours vs bare relay, asyncio and uvloop (~12 min); JSON+PNG in bench/results/
	$(PY) bench/run.py $(BENCH_ARGS)

bench-smoke: bench-install ## tiny benchmark run (50/200 members, ~30 s) that proves the harness works
	$(PY) bench/run.py --smoke --targets phx,relay --out bench/results/smoke.tmp --name smoke $(BENCH_ARGS)

bench-yjs: $(VENV)/.installed tests/js/node_modules/.installed ## room:* documents: relay vs the y-websocket server, 1 MiB join, RSS per room, store writes (~3 min)
	$(PY) bench/yjs_bench.py $(BENCH_ARGS)
