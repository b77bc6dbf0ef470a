"""`make bench-cross-node`: delivery latency of a small broadcast across two nodes on Redis (issue 11).

Starts a redis-server and two `tornado-phoenix serve --pubsub redis://…` processes (nodes A and B) on free
loopback ports, joins `bench:lat` with one client on A (the sender), one more on A (same-node reference) and
one on B, then sends `--count` shouts of a small payload stamped with CLOCK_MONOTONIC, one at a time, and
records for each the time until it lands on A's other client and on B's client. Prints p50/p99/max for
both and writes bench/results/cross-node-<stamp>.json. Bounded: every wait has a deadline.

    .venv/bin/python bench/cross_node.py --count 2000
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from tornado.websocket import websocket_connect

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q / 100 * (len(ordered) - 1))))]


def wait_health(port: int, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as resp:
                if json.loads(resp.read())["status"] == "ok":
                    return
        except OSError:
            pass
        time.sleep(0.05)
    raise RuntimeError(f"node on {port} not healthy (connected to Redis) within {timeout}s")


async def join(port: int, ref: str):
    conn = await websocket_connect(f"ws://127.0.0.1:{port}/socket/websocket?vsn=2.0.0")
    await conn.write_message(json.dumps([ref, ref, "bench:lat", "phx_join", {}]))
    while True:
        frame = json.loads(await asyncio.wait_for(conn.read_message(), 10))
        if frame[3] == "phx_reply":
            return conn


async def arrival(conn, seq: int) -> int:
    while True:
        frame = json.loads(await conn.read_message())
        if frame[3] == "shout" and frame[4]["seq"] == seq:
            return time.monotonic_ns()


async def measure(port_a: int, port_b: int, count: int, gap: float) -> dict:
    sender, local, remote = await join(port_a, "1"), await join(port_a, "2"), await join(port_b, "3")
    await asyncio.sleep(0.5)
    same, cross = [], []
    for seq in range(count + 50):  # the first 50 warm up
        t0 = time.monotonic_ns()
        await sender.write_message(json.dumps(["1", str(seq), "bench:lat", "shout", {"seq": seq, "pad": "x" * 40}]))
        t_local, t_remote = await asyncio.wait_for(asyncio.gather(arrival(local, seq), arrival(remote, seq)), 10)
        if seq >= 50:
            same.append((t_local - t0) / 1e6)
            cross.append((t_remote - t0) / 1e6)
        await asyncio.sleep(gap)
    for conn in (sender, local, remote):
        conn.close()

    def summary(values: list[float]) -> dict:
        return {"p50_ms": round(pct(values, 50), 3), "p99_ms": round(pct(values, 99), 3),
                "max_ms": round(max(values), 3), "mean_ms": round(statistics.fmean(values), 3)}

    return {"count": count, "same_node": summary(same), "cross_node": summary(cross)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--count", type=int, default=2000)
    parser.add_argument("--gap", type=float, default=0.002, help="seconds between shouts")
    parser.add_argument("--out", type=Path, default=BENCH / "results")
    opts = parser.parse_args()
    redis_port, port_a, port_b = free_port(), free_port(), free_port()
    procs = [subprocess.Popen(["redis-server", "--port", str(redis_port), "--bind", "127.0.0.1", "--save", "",
                               "--appendonly", "no"], stdout=subprocess.DEVNULL)]
    env = {**os.environ, "TP_LOG_LEVEL": "warning", "TP_PUBSUB": f"redis://127.0.0.1:{redis_port}/0"}
    try:
        for port in (port_a, port_b):
            procs.append(subprocess.Popen([sys.executable, "-m", "tornado_phoenix", "serve", "--port", str(port)],
                                          env=env, cwd=REPO))
        wait_health(port_a)
        wait_health(port_b)
        result = asyncio.run(measure(port_a, port_b, opts.count, opts.gap))
    finally:
        for proc in reversed(procs):
            proc.send_signal(signal.SIGTERM)
        for proc in procs:
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
    result["load"] = os.getloadavg()
    opts.out.mkdir(parents=True, exist_ok=True)
    path = opts.out / f"cross-node-{time.strftime('%Y%m%d-%H%M%S')}.json"
    path.write_text(json.dumps(result, indent=2))
    s, c = result["same_node"], result["cross_node"]
    print(f"small broadcast ({opts.count} shouts): same node p50 {s['p50_ms']} ms p99 {s['p99_ms']} ms; "
          f"cross node (via Redis) p50 {c['p50_ms']} ms p99 {c['p99_ms']} ms max {c['max_ms']} ms")
    print(f"result: cross-node latency written to {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
