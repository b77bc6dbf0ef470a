"""Start `tornado-phoenix serve` for the benchmark, on the stock asyncio loop or on uvloop.

    python bench/phx_server.py --loop uvloop serve --host 127.0.0.1 --port 4000

Everything after `--loop X` goes to the real CLI unchanged; the only difference is the event loop policy.

Experiment knobs (environment, never set by `make bench`):
  BENCH_GC=stock|off|t:A,B,C   CPython's default GC instead of gcpolicy.py / no cyclic GC / thresholds
  BENCH_GC_STATS=1             print GC passes and their CPU seconds per generation at exit
  BENCH_TRACEMALLOC=PATH       SIGUSR1 dumps a tracemalloc snapshot to PATH.N
  BENCH_TYPES=PATH             SIGUSR2 writes GC-tracked objects by type (count, bytes) to PATH.N
"""

from __future__ import annotations

import asyncio
import gc
import os
import sys

from tornado_phoenix.cli import main

if __name__ == "__main__":
    argv = sys.argv[1:]
    loop = "asyncio"
    if argv[:1] == ["--loop"]:
        loop, argv = argv[1], argv[2:]
    if loop == "uvloop":
        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    elif loop != "asyncio":
        sys.exit(f"unknown --loop {loop!r} (asyncio or uvloop)")
    policy = os.environ.get("BENCH_GC", "")  # experiment only: how much of the time is the cyclic GC
    if policy == "off":
        gc.disable()
    elif policy.startswith("t:"):
        gc.set_threshold(*(int(x) for x in policy[2:].split(",")))
    if policy in ("stock", "off") or policy.startswith("t:"):  # without the server's own policy (gcpolicy.py)
        import tornado_phoenix.gcpolicy

        tornado_phoenix.gcpolicy.install = lambda *args, **kwargs: (lambda: None)
    if os.environ.get("BENCH_GC_STATS"):  # experiment only: time spent in each GC generation, at exit
        import atexit
        import time

        spent = [0.0, 0.0, 0.0]
        runs = [0, 0, 0]
        started = [0.0]

        def on_gc(phase: str, info: dict) -> None:
            if phase == "start":
                started[0] = time.thread_time()
            else:
                spent[info["generation"]] += time.thread_time() - started[0]
                runs[info["generation"]] += 1

        gc.callbacks.append(on_gc)
        atexit.register(lambda: print(f"gc: runs {runs} seconds {[round(x, 3) for x in spent]}", flush=True))
    if os.environ.get("BENCH_TRACEMALLOC"):  # experiment only: SIGUSR1 writes a tracemalloc snapshot
        import signal
        import tracemalloc

        tracemalloc.start(int(os.environ.get("BENCH_TRACEMALLOC_FRAMES", "12")))
        shots = iter(range(1000))
        prefix = os.environ["BENCH_TRACEMALLOC"]
        signal.signal(signal.SIGUSR1, lambda *_: tracemalloc.take_snapshot().dump(f"{prefix}.{next(shots)}"))
    if os.environ.get("BENCH_TYPES"):  # experiment only: SIGUSR2 writes GC-tracked objects by type (count, bytes)
        import json
        import signal

        type_shots = iter(range(1000))

        def type_stats(*_: object) -> None:
            counts: dict[str, list[int]] = {}
            for obj in gc.get_objects():
                name = type(obj).__qualname__
                if name in ("coroutine", "Task", "function", "method", "TimerHandle", "Handle"):
                    inner = getattr(obj, "cr_code", None) or getattr(obj, "__func__", obj)
                    if name == "Task":
                        inner = obj.get_coro()
                    elif name in ("TimerHandle", "Handle"):
                        inner = obj._callback
                    name += " " + getattr(inner, "__qualname__", getattr(inner, "co_qualname", "?"))
                    frame = getattr(obj, "cr_frame", None)
                    if frame is not None:
                        name += f" line {frame.f_lineno}"
                entry = counts.setdefault(name, [0, 0])
                entry[0] += 1
                entry[1] += sys.getsizeof(obj)
            with open(f"{os.environ['BENCH_TYPES']}.{next(type_shots)}", "w") as fh:
                json.dump(counts, fh)

        signal.signal(signal.SIGUSR2, type_stats)
    sys.exit(main(argv))
