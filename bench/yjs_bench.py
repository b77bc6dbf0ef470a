"""room:* benchmark (issue 9): ours vs the y-websocket server from npm, side by side in one run.

    .venv/bin/python bench/yjs_bench.py [--members 100] [--updates 2000] [--bytes 32,256] [--reps 2]
    make bench-yjs

1. Updates relayed per second in a room of `--members` members: one member pushes y-protocols updates
   (pre-built, valid, sequential Y.Text inserts of `--bytes` characters), 50 in flight at the slowest
   receiver; the clock stops when every other member has every update. Ours: `tornado-phoenix serve`
   (memory store, and sqlite), V2 binary pushes on `room:*`; anchor: `tests/js/node_modules/y-websocket/
   bin/server.js` (no persistence), same updates. Raw `ws` clients for both (bench/yjs_load.js).
2. Time to join a room holding a 1 MiB document: JSON join (the reply carries the document) and y-protocols
   (join, then `yjs_sync` until the SyncStep2 arrives), median of 5.
3. RSS per loaded room (empty and 1 MiB), measured in this process with the server's RoomManager.
4. Store writes per second: our SQLite writer (group commit), one commit per update, and pycrdt-store's
   SQLiteYStore for reference.

Prints a table with the issue's targets and writes bench/results/yjs-<time>.json. Not a test: no pass/fail.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "server"))
NODE_MODULES = REPO / "tests" / "js" / "node_modules"
Y_WEBSOCKET = NODE_MODULES / "y-websocket" / "bin" / "server.js"
LOAD = REPO / "bench" / "yjs_load.js"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_port(port: int, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on {port} after {timeout}s")


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


def start_ours(store: str, tmp: Path) -> tuple[subprocess.Popen, int]:
    port = free_port()
    env = {**os.environ, "TP_LOG_LEVEL": "warning", "TP_YJS_STORE": store, "PYTHONPATH": str(REPO / "server")}
    proc = subprocess.Popen([sys.executable, "-m", "tornado_phoenix", "serve", "--port", str(port)], env=env,
                            cwd=tmp, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_port(port)
    return proc, port


def start_y_websocket() -> tuple[subprocess.Popen, int]:
    port = free_port()
    env = {**os.environ, "HOST": "127.0.0.1", "PORT": str(port), "NODE_PATH": str(NODE_MODULES)}
    env.pop("YPERSISTENCE", None)
    proc = subprocess.Popen(["node", str(Y_WEBSOCKET)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_port(port)
    return proc, port


def load(*args: str, timeout: float = 180) -> dict:
    env = {**os.environ, "NODE_PATH": str(NODE_MODULES)}
    done = subprocess.run(["node", str(LOAD), *args], env=env, capture_output=True, text=True, timeout=timeout)
    for line in done.stdout.splitlines():
        if line.startswith("RESULT "):
            result = json.loads(line[7:])
            if "error" in result:
                raise RuntimeError(result["error"])
            return result
    raise RuntimeError(f"yjs_load.js {args}: no RESULT (exit {done.returncode})\n{done.stderr[-2000:]}")


def stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)


# ---- in-process measurements ------------------------------------------------------------------------------------


def rooms_rss(count: int, doc_bytes: int) -> float:
    """KiB of RSS per loaded room, `count` rooms each holding a document of `doc_bytes`."""
    from pycrdt import Doc, Text
    from tornado_phoenix.pubsub import LocalPubSub
    from tornado_phoenix.yjs import MemoryStore, RoomManager

    state = b""
    if doc_bytes:
        doc = Doc()
        doc.get("text", type=Text).insert(0, "x" * doc_bytes)
        state = doc.get_update()

    async def main() -> float:
        store = MemoryStore()
        for n in range(count):
            if state:
                store.rooms[f"room:{n}"] = [state]
        manager = RoomManager(LocalPubSub(), store=store, ttl=3600)
        await manager.get("room:warmup")
        gc.collect()
        before = rss_kib(os.getpid())
        rooms = [await manager.get(f"room:{n}") for n in range(count)]
        store.rooms.clear()  # the store's copies are not room memory
        gc.collect()
        after = rss_kib(os.getpid())
        assert len(rooms) == count
        return (after - before) / count

    return asyncio.run(main())


def store_writes(tmp: Path, count: int) -> dict:
    from pycrdt import Doc, Text
    from tornado_phoenix.pubsub import LocalPubSub
    from tornado_phoenix.yjs import RoomManager, SQLiteStore

    doc = Doc()
    text = doc.get("text", type=Text)
    ups: list[bytes] = []
    doc.observe(lambda event: ups.append(event.update))
    for _ in range(count):
        text += "y" * 32

    async def grouped() -> float:
        manager = RoomManager(LocalPubSub(), store=SQLiteStore(tmp / "grouped.db"), ttl=3600)
        rooms = [await manager.get(f"room:{n}") for n in range(10)]
        started = time.perf_counter()
        for n, update in enumerate(ups):
            for room in rooms:  # every update to each of 10 rooms: 10 documents growing side by side
                room.apply_update(update, None)
            if n % 10 == 0:
                await asyncio.sleep(0)
        for room in rooms:
            await room.wait_durable(room.seq)
        seconds = time.perf_counter() - started
        writes = manager.writes
        await manager.close()
        return writes / seconds

    async def one_by_one(n: int) -> float:
        store = SQLiteStore(tmp / "single.db")
        started = time.perf_counter()
        for update in ups[:n]:
            await store.write([("append", "room:s", update)])
        seconds = time.perf_counter() - started
        await store.close()
        return n / seconds

    async def ystore(n: int) -> float:
        from pycrdt.store import SQLiteYStore

        class Store(SQLiteYStore):
            db_path = str(tmp / "ystore.db")

        async with Store("room:p") as ys:
            started = time.perf_counter()
            for update in ups[:n]:
                await ys.write(update)
            return n / (time.perf_counter() - started)

    result = {"grouped_per_s": asyncio.run(grouped()), "single_commit_per_s": asyncio.run(one_by_one(300))}
    try:
        result["pycrdt_store_per_s"] = asyncio.run(ystore(300))
    except Exception as exc:  # reference only
        result["pycrdt_store_error"] = repr(exc)
    return result


# ---- main ---------------------------------------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--members", type=int, default=100)
    parser.add_argument("--updates", type=int, default=2000)
    parser.add_argument("--bytes", default="32,256", help="update text sizes, comma-separated")
    parser.add_argument("--reps", type=int, default=2)
    parser.add_argument("--out", default=str(REPO / "bench" / "results"))
    parser.add_argument("--smoke", action="store_true", help="tiny run that proves the harness works (~20 s)")
    args = parser.parse_args()
    doc_bytes, rooms, store_updates, joins = 1024 * 1024, 2000, 2000, 5
    if args.smoke:
        args.members, args.updates, args.bytes, args.reps = 5, 50, "16", 1
        doc_bytes, rooms, store_updates, joins = 64 * 1024, 50, 100, 2
    assert shutil.which("node") and Y_WEBSOCKET.is_file(), "needs node and tests/js/node_modules (make install)"
    results: dict = {"when": time.strftime("%Y-%m-%d %H:%M:%S"), "members": args.members, "updates": args.updates,
                     "load_before": os.getloadavg(), "relay": []}
    tmp = Path(tempfile.mkdtemp(prefix="tp-yjs-bench-"))
    try:
        # 1. relay throughput, alternating targets so that load changes hit both alike
        for size in [int(b) for b in args.bytes.split(",")]:
            for rep in range(args.reps):
                for target in ("phx", "yws", "phx-sqlite"):
                    if target == "yws":
                        proc, port = start_y_websocket()
                        url = f"ws://127.0.0.1:{port}"
                    else:
                        store = "memory" if target == "phx" else f"sqlite:///{tmp / f'relay-{size}-{rep}.db'}"
                        proc, port = start_ours(store, tmp)
                        url = f"ws://127.0.0.1:{port}/socket"
                    try:
                        cpu_before = cpu_seconds(proc.pid)
                        run = load("relay", "phx" if target.startswith("phx") else "yws", url, str(args.members),
                                   str(args.updates), str(size))
                        cpu = cpu_seconds(proc.pid) - cpu_before  # connects and joins included
                        run.update(target=target, rep=rep, server_rss_kib=rss_kib(proc.pid), server_cpu_s=cpu,
                                   server_cpu_ms_per_update=cpu * 1000 / args.updates)
                        results["relay"].append(run)
                        print(f"relay {target:10s} {size:4d} B rep {rep}: {run['updates_per_s']:8.0f} updates/s "
                              f"({run['deliveries_per_s']:9.0f} deliveries/s, server CPU "
                              f"{run['server_cpu_ms_per_update']:.2f} ms/update) complete={run['complete']}",
                              flush=True)
                    finally:
                        stop(proc)
        # 2. join a 1 MiB room
        proc, port = start_ours("memory", tmp)
        try:
            url = f"ws://127.0.0.1:{port}/socket"
            load("fill", url, "big", str(doc_bytes))
            results["join"] = load("join", url, "big", str(joins))
        finally:
            stop(proc)
        # 3. RSS per loaded room, 4. store writes
        results["rss_small_kib"] = rooms_rss(rooms, 0)
        results["rss_10kib_kib"] = rooms_rss(max(rooms // 4, 10), 10 * 1024)
        results["rss_1mib_kib"] = rooms_rss(8, doc_bytes)
        results["store"] = store_writes(tmp, store_updates)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    results["load_after"] = os.getloadavg()

    def median(target: str, size: int) -> float:
        runs = [r["updates_per_s"] for r in results["relay"] if r["target"] == target and r["bytes"] == size]
        return statistics.median(runs) if runs else float("nan")

    def median_cpu(target: str, size: int) -> float:
        runs = [r["server_cpu_ms_per_update"] for r in results["relay"] if r["target"] == target and r["bytes"] == size]
        return statistics.median(runs) if runs else float("nan")

    rows = []
    for size in [int(b) for b in args.bytes.split(",")]:
        ours, anchor, sqlite = median("phx", size), median("yws", size), median("phx-sqlite", size)
        rows.append((f"relay, {args.members} members, {size} B updates (updates/s)",
                     f"ours {ours:.0f} / sqlite {sqlite:.0f} vs y-websocket {anchor:.0f}: ratio {ours / anchor:.2f} "
                     f"(sqlite {sqlite / anchor:.2f}); server CPU ms/update ours {median_cpu('phx', size):.2f} / "
                     f"sqlite {median_cpu('phx-sqlite', size):.2f} vs y-websocket {median_cpu('yws', size):.2f}",
                     "ratio >= 1.0"))
    join = results["join"]
    rows.append((f"join a {doc_bytes // 1024} KiB room (median of {joins})",
                 f"y-protocols {statistics.median(join['yjs_ms']):.1f} ms; JSON reply arrives "
                 f"{statistics.median(join['json_arrival_ms']):.1f} ms (first {join['json_arrival_ms'][0]:.1f}), "
                 f"parsed by Node {statistics.median(join['json_ms']):.1f} ms",
                 "<= 50 ms"))
    rows.append(("RSS per loaded room", f"empty {results['rss_small_kib']:.0f} KiB, "
                 f"10 KiB doc {results['rss_10kib_kib']:.0f} KiB, "
                 f"{doc_bytes // 1024} KiB doc {results['rss_1mib_kib']:.0f} KiB",
                 "<= 200 KiB (small)"))
    store = results["store"]
    ystore = store.get("pycrdt_store_per_s")
    rows.append(("store writes/s (sqlite, synchronous=FULL)",
                 f"grouped {store['grouped_per_s']:.0f}, one commit each {store['single_commit_per_s']:.0f}"
                 + (f", pycrdt-store {ystore:.0f}" if ystore else ""), "(no target)"))
    results["table"] = rows
    width = max(len(r[0]) for r in rows)
    print()
    for what, got, target in rows:
        print(f"{what:{width}s}  {got}  [target {target}]")
    print(f"load average before {results['load_before']}, after {results['load_after']}")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    path = out / (f"yjs-{time.strftime('%Y%m%d-%H%M%S')}.json" if not args.smoke else "yjs-smoke.json")
    path.write_text(json.dumps(results, indent=1))
    print(f"result: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
