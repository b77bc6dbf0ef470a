"""`make bench`: tornado-phoenix against a bare Tornado WebSocket relay, same machine, same run.

For every target (server kind + event loop) and every room size N, a fresh server process is started and:

  1. connect + join: N Node `ws` clients (bench/worker.js, several processes) connect and join `bench:lobby`
     (the relay has no join: connect only); joins/s = N / (last join reply - first connect);
  2. idle: server RSS with N joined sockets minus RSS before the first connection, per socket;
  3. echo: one extra socket, closed loop push -> reply (echo:* channel) under the N idle members;
  4. fan-out: `rounds` times, one member shouts a 64-byte payload stamped with CLOCK_MONOTONIC; every member
     records when it lands; round time = last delivery - send, per-delivery latency = each arrival - send;
  5. message rate (sizes in --rate-sizes): `senders` members shout closed-loop for --rate-seconds, every
     member counts frames; deliveries/s.

CPU time of the server and of the load generator is read from /proc for every phase, so the report shows
which side was busy. The server runs pinned to one vCPU and the generator on the other (--server-cpu,
--gen-cpu). Writes bench/results/<stamp>.json and .png and prints a table; "wait%" is the share of the
fan-out phase the server spent runnable but without a CPU (other load on the machine): high means the
figures measured the machine, not the server.

Bounded: every wait has a deadline, workers kill themselves after 30 minutes, targets are loopback only.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ctypes
import json
import math
import os
import platform
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
RESULTS = BENCH / "results"
PYTHON = sys.executable
CLK_TCK = os.sysconf("SC_CLK_TCK")

# Phoenix 1.7.24 (Bandit 1.11.1, OTP 25) measured on this machine with the same method (issue 5).
PHOENIX = {
    2000: {"join_rate": 870, "rss_kib": 30.8, "round_median_ms": 141, "delivery_p99_ms": 222,
           "echo_p50_ms": 0.26, "echo_p99_ms": 4.37},
    10000: {"join_rate": 870, "rss_kib": 23.5, "round_median_ms": 508, "delivery_p99_ms": 604,
            "echo_p50_ms": 0.23, "echo_p99_ms": 1.44},
}
GOALS = {"round_median_ms": 250, "rss_kib": 12, "echo_p99_ms": 1.5, "join_rate": 2000}


@dataclass(frozen=True)
class Target:
    name: str
    kind: str  # "phx" | "raw"
    loop: str  # "asyncio" | "uvloop"
    workers: int = 0  # >0: TP_PUBSUB on a redis-server the bench starts, with --workers N (issue 11)


TARGETS = {
    "phx": Target("tornado-phoenix", "phx", "asyncio"),
    "phx-uvloop": Target("tornado-phoenix+uvloop", "phx", "uvloop"),
    "relay": Target("bare-relay", "raw", "asyncio"),
    "relay-uvloop": Target("bare-relay+uvloop", "raw", "uvloop"),
    # Scale-out (issue 11): what Redis costs (1 worker on Redis vs `phx`) and what a second core buys (2 workers,
    # unpinned: they share both vCPUs with the generator and redis-server). CPU and RSS sum the supervisor, the
    # workers and redis-server.
    "redis-1": Target("tornado-phoenix redis x1", "phx", "asyncio", workers=1),
    "redis-2": Target("tornado-phoenix redis x2", "phx", "asyncio", workers=2),
    # 50,000 members: one process may hold 20,000 descriptors, so at least 3 workers (SO_REUSEPORT's spread
    # is by hash, not exact); 4 leaves margin.
    "redis-4": Target("tornado-phoenix redis x4", "phx", "asyncio", workers=4),
}


# ---- small helpers ----------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def pct(values: list[float], q: float) -> float | None:
    """Nearest-rank percentile (q in 0..100) of an unsorted list; None when empty."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


def ms(us: float | None) -> float | None:
    return None if us is None else round(us / 1000, 3)


def rss_kib(pid: int | list[int]) -> int:
    if isinstance(pid, list):
        return sum(rss_kib(one) for one in pid)
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def cpu_seconds(pid: int | list[int]) -> float:
    """utime + stime of a whole process (all threads), in seconds; 0 once it is gone."""
    if isinstance(pid, list):
        return sum(cpu_seconds(one) for one in pid)
    try:
        with open(f"/proc/{pid}/stat") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / CLK_TCK
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return 0.0


def run_delay_seconds(pid: int | list[int]) -> float:
    """Time the process's threads spent runnable but waiting for a CPU (schedstat), in seconds."""
    if isinstance(pid, list):
        return sum(run_delay_seconds(one) for one in pid)
    total = 0
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{task}/schedstat") as fh:
                total += int(fh.read().split()[1])
    except (FileNotFoundError, ProcessLookupError):
        pass
    return total / 1e9


def loadavg() -> list[float]:
    with open("/proc/loadavg") as fh:
        return [float(x) for x in fh.read().split()[:3]]


def meminfo_kib(key: str) -> int:
    with open("/proc/meminfo") as fh:
        for line in fh:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return 0


NICE = 0  # --nice: applied to the server and the generators alike
_LIBC = ctypes.CDLL(None, use_errno=True)
_PR_SET_PDEATHSIG = 1


def pinned(cpu: int | None, raise_nofile: bool = True):
    """preexec_fn for every process the bench starts: its own session (so its own scheduler autogroup: the
    kernel shares CPU fairly between autogroups, and a busy VM in another session would otherwise get as much
    CPU as the whole bench), --nice for that autogroup, SIGTERM when the bench dies, one vCPU, and the soft
    descriptor limit raised to the hard one."""

    def apply() -> None:
        os.setsid()
        _LIBC.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
        if NICE:
            with contextlib.suppress(OSError), open("/proc/self/autogroup", "w") as fh:
                fh.write(str(NICE))
            os.setpriority(os.PRIO_PROCESS, 0, NICE)
        if raise_nofile:
            _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        if cpu is not None:
            os.sched_setaffinity(0, {cpu})

    return apply


# ---- the load generator processes ----------------------------------------------------------------------


class Worker:
    """One bench/worker.js process: JSON commands in, JSON events out."""

    def __init__(self, proc: asyncio.subprocess.Process, index: int) -> None:
        self.proc = proc
        self.index = index
        self.events: list[dict[str, Any]] = []
        self.changed = asyncio.Event()
        self.reader = asyncio.create_task(self._read())

    @classmethod
    async def start(cls, index: int, config: dict[str, Any], cpu: int | None) -> Worker:
        proc = await asyncio.create_subprocess_exec(
            "node", str(BENCH / "worker.js"), json.dumps(config),
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=None,
            preexec_fn=pinned(cpu), limit=64 * 1024 * 1024,
        )
        worker = cls(proc, index)
        await worker.wait("ready", timeout=20)
        return worker

    async def _read(self) -> None:
        assert self.proc.stdout is not None
        while True:
            line = await self.proc.stdout.readline()
            if not line:
                self.events.append({"ev": "eof"})
                self.changed.set()
                return
            self.events.append(json.loads(line))
            self.changed.set()

    def send(self, **cmd: Any) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write((json.dumps(cmd) + "\n").encode())

    async def wait(self, ev: str, timeout: float, **match: Any) -> dict[str, Any] | None:
        """The first unconsumed event `ev` (with fields equal to `match`); None after `timeout` seconds."""
        deadline = time.monotonic() + timeout
        while True:
            for i, event in enumerate(self.events):
                if event["ev"] == ev and all(event.get(k) == v for k, v in match.items()):
                    return self.events.pop(i)
                if event["ev"] == "eof":
                    raise RuntimeError(f"load generator {self.index} exited (code {self.proc.returncode})")
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            self.changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.changed.wait(), left)

    def cpu(self) -> float:
        return cpu_seconds(self.proc.pid)

    async def stop(self) -> None:
        if self.proc.returncode is None:
            with contextlib.suppress(Exception):
                self.send(cmd="exit")
            try:
                await asyncio.wait_for(self.proc.wait(), 10)
            except TimeoutError:
                self.proc.kill()
                await self.proc.wait()
        self.reader.cancel()


# ---- the servers -------------------------------------------------------------------------------------------


class ServerProc:
    def __init__(self, target: Target, opts: argparse.Namespace, logdir: Path) -> None:
        self.target = target
        self.port = free_port()
        self.opts = opts
        self.log_path = logdir / f"{target.kind}-{target.loop}-{self.port}.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.redis: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        if self.target.kind == "phx":
            return f"ws://127.0.0.1:{self.port}/socket/websocket?vsn=2.0.0"
        return f"ws://127.0.0.1:{self.port}/relay"

    @property
    def echo_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/echo"

    def start(self) -> None:
        if self.target.kind == "phx":
            cmd = [PYTHON, str(BENCH / "phx_server.py"), "--loop", self.target.loop, "serve",
                   "--host", "127.0.0.1", "--port", str(self.port)]
        else:
            cmd = [PYTHON, str(BENCH / "relay.py"), "--port", str(self.port), "--loop", self.target.loop]
        env = {**os.environ, "TP_LOG_LEVEL": self.opts.log_level}
        # every generator connects from a few loopback addresses: the per-address and total caps (HTTP 429/503)
        # would refuse most of a 10k room
        env.setdefault("TP_MAX_CONNECTIONS", "0")
        env.setdefault("TP_MAX_CONNECTIONS_PER_IP", "0")
        # The closed-loop echo probe sends thousands of pushes a second on one socket: above the default
        # per-socket rate limit (TP_MAX_MESSAGES_PER_SECOND), which a benchmark is not meant to measure.
        env.setdefault("TP_MAX_MESSAGES_PER_SECOND", "1000000")
        env.setdefault("TP_MESSAGE_BURST", "1000000")
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO / "server"), env.get("PYTHONPATH")]))
        cpu = self.opts.server_cpu
        if self.target.workers:
            redis_port = free_port()
            self.redis = subprocess.Popen(
                ["redis-server", "--port", str(redis_port), "--bind", "127.0.0.1", "--save", "", "--appendonly",
                 "no", "--loglevel", "warning"], stdout=subprocess.DEVNULL, preexec_fn=pinned(None))
            cmd += ["--pubsub", f"redis://127.0.0.1:{redis_port}/0", "--workers", str(self.target.workers)]
            env.setdefault("TP_SECRET_KEY_BASE", "bench-" + "k" * 64)  # several workers sign long-poll tokens alike
            if self.target.workers > 1:
                cpu = None  # the point is a second core
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(cmd, env=env, cwd=REPO, stdout=log, stderr=subprocess.STDOUT,
                                         preexec_fn=pinned(cpu))
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode}; see {self.log_path}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/health", timeout=2) as resp:
                    health = json.loads(resp.read())
                want = self.target.workers if self.target.workers > 1 else 0
                if health.get("status", "ok") == "ok" and len(health.get("workers", [])) >= want:
                    return
            except OSError:
                pass
            time.sleep(0.05)
        raise RuntimeError(f"server did not answer /health in 20 s; see {self.log_path}")

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def pids(self) -> list[int]:
        """The server's process, its workers (with --workers) and redis-server: what CPU and RSS sum over."""
        pids = [self.pid]
        with contextlib.suppress(OSError):
            with open(f"/proc/{self.pid}/task/{self.pid}/children") as fh:
                pids += [int(pid) for pid in fh.read().split()]
        if self.redis is not None:
            pids.append(self.redis.pid)
        return pids

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)
        if self.redis is not None:
            self.redis.kill()
            self.redis.wait(5)


# ---- one target at one size --------------------------------------------------------------------------------


@dataclass
class Cpu:
    """CPU seconds of the server and of all generator processes between two points."""

    server: ServerProc
    workers: list[Worker]
    t0: float = 0.0
    s0: float = 0.0
    g0: float = 0.0
    sw0: float = 0.0
    gw0: float = 0.0

    def start(self) -> None:
        self.t0 = time.monotonic()
        self.s0 = cpu_seconds(self.server.pids())
        self.g0 = sum(w.cpu() for w in self.workers)
        self.sw0 = run_delay_seconds(self.server.pids())
        self.gw0 = sum(run_delay_seconds(w.proc.pid) for w in self.workers)

    def stop(self) -> dict[str, float]:
        wall = time.monotonic() - self.t0
        server = cpu_seconds(self.server.pids()) - self.s0
        gen = sum(w.cpu() for w in self.workers) - self.g0
        # "waited": runnable but no CPU free (other processes on the machine, or the generator and the
        # server sharing one); a phase where this is large measured the machine, not the server.
        return {"wall_s": round(wall, 3), "server_cpu_s": round(server, 3), "gen_cpu_s": round(gen, 3),
                "server_busy": round(server / wall, 3) if wall else None,
                "gen_busy": round(gen / wall, 3) if wall else None,
                "server_waited_s": round(run_delay_seconds(self.server.pids()) - self.sw0, 3),
                "gen_waited_s": round(sum(run_delay_seconds(w.proc.pid) for w in self.workers) - self.gw0, 3)}


class Profile:
    """py-spy on the server for one phase (raw collapsed stacks), summarised to top-N text."""

    def __init__(self, server: ServerProc, n: int, phases: list[str], outdir: Path) -> None:
        self.server = server
        self.n = n
        self.phases = phases
        self.outdir = outdir
        self.proc: subprocess.Popen[bytes] | None = None
        self.raw: Path | None = None

    def start(self, phase: str) -> None:
        if phase not in self.phases:
            return
        stem = f"profile-{self.server.target.kind}-{self.server.target.loop}-{self.n}-{phase}"
        self.raw = self.outdir / f"{stem}.collapsed.tmp"
        self.proc = subprocess.Popen(
            [str(Path(PYTHON).parent / "py-spy"), "record", "--pid", str(self.server.pid), "--rate", "250",
             "--format", "raw", "--output", str(self.raw)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, preexec_fn=pinned(None, False))
        time.sleep(0.5)  # attach before the phase starts

    def stop(self) -> None:
        if self.proc is None or self.raw is None:
            return
        self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.proc = None
        if self.raw.exists():
            summary = self.raw.with_name(self.raw.name.replace(".collapsed.tmp", ".txt"))
            summary.write_text(summarise_profile(self.raw.read_text()))
        self.raw = None


def summarise_profile(collapsed: str, top: int = 30) -> str:
    """Top functions by self and by inclusive samples, from py-spy's raw (collapsed) output."""
    self_count: dict[str, int] = {}
    incl_count: dict[str, int] = {}
    total = 0
    for line in collapsed.splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        total += count
        frames = [f.split(" (")[0] + " (" + f.split(" (")[1].split(":")[0] + ")" if " (" in f else f
                  for f in stack.split(";")[1:]]  # first entry is the process/thread
        if not frames:
            continue
        self_count[frames[-1]] = self_count.get(frames[-1], 0) + count
        for frame in set(frames):
            incl_count[frame] = incl_count.get(frame, 0) + count
    line_count: dict[str, int] = {}
    for line in collapsed.splitlines():
        stack, _, count_text = line.rpartition(" ")
        if stack and count_text.isdigit():
            leaf = stack.split(";")[-1]
            line_count[leaf] = line_count.get(leaf, 0) + int(count_text)
    out = [f"py-spy samples (non-idle, 250 Hz): {total}", "", "top 10 source lines by self time (a C call such as"
           " socket.send is charged to the line that calls it):"]
    for leaf, count in sorted(line_count.items(), key=lambda kv: -kv[1])[:10]:
        out.append(f"  {100 * count / max(1, total):5.1f}%  {leaf}")
    out += ["", f"top {top} by self time:"]
    for frame, count in sorted(self_count.items(), key=lambda kv: -kv[1])[:top]:
        out.append(f"  {100 * count / max(1, total):5.1f}%  {frame}")
    out += ["", f"top {top} by inclusive time:"]
    for frame, count in sorted(incl_count.items(), key=lambda kv: -kv[1])[:top]:
        out.append(f"  {100 * count / max(1, total):5.1f}%  {frame}")
    return "\n".join(out) + "\n"


async def run_size(target: Target, n: int, opts: argparse.Namespace, logdir: Path) -> dict[str, Any]:
    result: dict[str, Any] = {"target": target.name, "kind": target.kind, "loop": target.loop, "members": n,
                              "load_before": loadavg()}
    server = ServerProc(target, opts, logdir)
    server.start()
    workers: list[Worker] = []
    try:
        nworkers = max(1, math.ceil(n / opts.per_worker))
        shares = [n // nworkers + (1 if i < n % nworkers else 0) for i in range(nworkers)]
        for i in range(nworkers):
            config = {"id": i, "url": server.url, "echoUrl": server.echo_url, "mode": target.kind,
                      "client": opts.client,
                      "topic": "bench:lobby", "payloadBytes": opts.payload,
                      # one source address has ~28k ephemeral ports to the server's port; past that,
                      # spread the workers over 127.0.0.1-4 (bind-before-connect costs the generator CPU)
                      "local": f"127.0.0.{1 + i % 4}" if n > 25000 else None,
                      "heartbeatMs": 30000}
            workers.append(await Worker.start(i, config, opts.gen_cpu))
        await asyncio.sleep(0.5)
        rss0 = rss_kib(server.pids())
        slab0 = meminfo_kib("Slab")
        cpu = Cpu(server, workers)
        prof = Profile(server, n, opts.profile, opts.out)

        # 1. connect + join
        prof.start("connect")
        cpu.start()
        lanes = max(1, opts.concurrency // nworkers)
        for worker, share in zip(workers, shares, strict=True):
            worker.send(cmd="connect", n=share, concurrency=lanes, timeoutMs=int(opts.connect_timeout * 1000))
        reports = [await w.wait("connected", timeout=opts.connect_timeout + 30) for w in workers]
        if any(r is None for r in reports):
            raise RuntimeError("connect phase did not finish")
        ok = sum(r["ok"] for r in reports)
        span_us = max(r["t1"] for r in reports) - min(r["t0"] for r in reports)
        join_lats = [lat for r in reports for lat in r["lats"]]
        errors: dict[str, int] = {}
        for r in reports:
            for key, count in r["errors"].items():
                errors[key] = errors.get(key, 0) + count
        result["connect"] = {
            "ok": ok, "failed": n - ok, "errors": errors, "seconds": round(span_us / 1e6, 3),
            "per_second": round(ok / (span_us / 1e6), 1) if span_us else None,
            "latency_p50_ms": ms(pct(join_lats, 50)), "latency_p99_ms": ms(pct(join_lats, 99)),
            "cpu": cpu.stop(),
        }
        prof.stop()

        # 2. idle: memory per joined socket, and what heartbeats cost
        cpu.start()
        await asyncio.sleep(opts.settle)
        rss1 = rss_kib(server.pids())
        result["idle"] = {
            "rss_before_kib": rss0, "rss_after_kib": rss1,
            "rss_per_socket_kib": round((rss1 - rss0) / ok, 2) if ok else None,
            "slab_per_socket_kib": round((meminfo_kib("Slab") - slab0) / ok, 2) if ok else None,
            "cpu": cpu.stop(),
        }

        # 3. echo round trip under N idle members
        prof.start("echo")
        cpu.start()
        workers[0].send(cmd="echo", n=opts.echo, warmup=opts.echo_warmup, timeoutMs=60000)
        echo = await workers[0].wait("echo", timeout=90)
        rtts = echo["rtts"] if echo else []
        result["echo"] = {
            "count": len(rtts), "error": echo.get("err") if echo else "timeout",
            "p50_ms": ms(pct(rtts, 50)), "p99_ms": ms(pct(rtts, 99)), "max_ms": ms(max(rtts) if rtts else None),
            "cpu": cpu.stop(),
        }
        prof.stop()

        # 4. fan-out rounds
        rounds = []
        all_lats: list[int] = []
        prof.start("fanout")
        cpu.start()
        for r in range(1, opts.rounds + 1):
            workers[0].send(cmd="shout", r=r)
            shouted = await workers[0].wait("shouted", timeout=10, r=r)
            if shouted is None:
                raise RuntimeError(f"round {r}: the shout was not sent")
            per_worker = []
            for w in workers:
                rep = await w.wait("round", timeout=opts.round_timeout, r=r)
                if rep is None:
                    w.send(cmd="flush", r=r)
                    rep = await w.wait("round", timeout=10, r=r)
                per_worker.append(rep or {"count": 0, "expect": None, "last": 0, "lats": [], "partial": True})
            delivered = sum(rep["count"] for rep in per_worker)
            last = max(rep["last"] for rep in per_worker)
            lats = [lat for rep in per_worker for lat in rep["lats"]]
            all_lats.extend(lats)
            rounds.append({
                "round": r, "delivered": delivered, "expected": ok,
                "round_ms": ms(last - shouted["t"]) if delivered else None,
                "delivery_p50_ms": ms(pct(lats, 50)), "delivery_p99_ms": ms(pct(lats, 99)),
            })
            await asyncio.sleep(opts.round_gap)
        fan_cpu = cpu.stop()
        prof.stop()
        round_times = [x["round_ms"] for x in rounds if x["round_ms"] is not None]
        result["fanout"] = {
            "rounds": len(rounds),
            "complete_rounds": sum(1 for x in rounds if x["delivered"] == ok),
            "round_median_ms": round(statistics.median(round_times), 3) if round_times else None,
            "round_max_ms": max(round_times) if round_times else None,
            "delivery_p50_ms": ms(pct(all_lats, 50)), "delivery_p99_ms": ms(pct(all_lats, 99)),
            "delivery_max_ms": ms(max(all_lats) if all_lats else None),
            "server_cpu_ms_per_round": round(fan_cpu["server_cpu_s"] * 1000 / len(rounds), 1),
            "gen_cpu_ms_per_round": round(fan_cpu["gen_cpu_s"] * 1000 / len(rounds), 1),
            "server_cpu_us_per_delivery": round(fan_cpu["server_cpu_s"] * 1e6 / max(1, len(rounds) * ok), 2),
            "gen_cpu_us_per_delivery": round(fan_cpu["gen_cpu_s"] * 1e6 / max(1, len(rounds) * ok), 2),
            "per_round": rounds, "cpu": fan_cpu,
        }

        # 5. message rate
        if n in opts.rate_sizes:
            await asyncio.sleep(0.5)
            prof.start("rate")
            cpu.start()
            for w in workers:
                w.send(cmd="rate", senders=opts.senders if w.index == 0 else 0, ms=int(opts.rate_seconds * 1000))
            reps = [await w.wait("rate", timeout=opts.rate_seconds + 30) for w in workers]
            rate_cpu = cpu.stop()
            prof.stop()
            frames = sum(r["frames"] for r in reps if r)
            secs = opts.rate_seconds
            result["rate"] = {
                "senders": opts.senders, "seconds": secs, "deliveries": frames,
                "deliveries_per_s": round(frames / secs), "shouts": sum(r["shouts"] for r in reps if r),
                "server_cpu_us_per_delivery": round(rate_cpu["server_cpu_s"] * 1e6 / max(1, frames), 2),
                "gen_cpu_us_per_delivery": round(rate_cpu["gen_cpu_s"] * 1e6 / max(1, frames), 2),
                "cpu": rate_cpu,
            }
            await asyncio.sleep(1.5)

        for w in workers:
            w.send(cmd="status")
        statuses = [await w.wait("status", timeout=10) for w in workers]
        result["generator"] = {
            "processes": nworkers,
            "closed_members": sum(s["closed"] for s in statuses if s),
            "rss_mib": round(sum(s["rss"] for s in statuses if s) / 2**20, 1),
        }
        result["server_alive"] = server.alive()
        result["load_after"] = loadavg()
        return result
    finally:
        for w in workers:
            await w.stop()
        server.stop()


# ---- report ----------------------------------------------------------------------------------------------


def fmt(value: Any, spec: str = "") -> str:
    if value is None:
        return "-"
    return format(value, spec)


def table(results: list[dict[str, Any]]) -> str:
    head = (f"{'target':<24} {'members':>7} {'joins/s':>8} {'KiB/sock':>8} {'echo p50/p99 ms':>16} "
            f"{'round med ms':>12} {'deliv p50/p99 ms':>17} {'rounds ok':>9} {'srv/gen cpu ms/rnd':>18} {'wait%':>6}")
    lines = [head, "-" * len(head)]
    for res in results:
        c, i, e, f = res["connect"], res["idle"], res["echo"], res["fanout"]
        lines.append(
            f"{res['target']:<24} {res['members']:>7} {fmt(c['per_second'], '.0f'):>8} "
            f"{fmt(i['rss_per_socket_kib'], '.1f'):>8} "
            f"{fmt(e['p50_ms'], '.2f') + ' / ' + fmt(e['p99_ms'], '.2f'):>16} "
            f"{fmt(f['round_median_ms'], '.0f'):>12} "
            f"{fmt(f['delivery_p50_ms'], '.0f') + ' / ' + fmt(f['delivery_p99_ms'], '.0f'):>17} "
            f"{str(f['complete_rounds']) + '/' + str(f['rounds']):>9} "
            f"{fmt(f['server_cpu_ms_per_round'], '.0f') + ' / ' + fmt(f['gen_cpu_ms_per_round'], '.0f'):>18} "
            f"{fmt(100 * f['cpu']['server_waited_s'] / f['cpu']['wall_s'], '.0f'):>6}"
        )
    rates = [r for r in results if "rate" in r]
    if rates:
        lines.append("")
        lines.append(f"{'message rate':<24} {'members':>7} {'senders':>8} {'deliveries/s':>13} {'srv us/deliv':>13}")
        for res in rates:
            rt = res["rate"]
            lines.append(f"{res['target']:<24} {res['members']:>7} {rt['senders']:>8} {rt['deliveries_per_s']:>13} "
                         f"{rt['server_cpu_us_per_delivery']:>13}")
    ratios = overhead_ratios(results)
    if ratios:
        lines.append("")
        lines.append("protocol overhead (tornado-phoenix / bare relay, same loop, same run): round median")
        lines.append("  " + "  ".join(f"{loop} N={n}: {ratio:.2f}x" for (loop, n), ratio in sorted(ratios.items())))
    return "\n".join(lines)


def overhead_ratios(results: list[dict[str, Any]]) -> dict[tuple[str, int], float]:
    by = {(r["kind"], r["loop"], r["members"]): r for r in results}
    out = {}
    for (kind, loop, n), res in by.items():
        base = by.get(("raw", loop, n))
        if kind == "phx" and base:
            a, b = res["fanout"]["round_median_ms"], base["fanout"]["round_median_ms"]
            if a and b:
                out[(loop, n)] = a / b
    return out


def plot(results: list[dict[str, Any]], path: Path, subtitle: str = "") -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 5), dpi=110)
    names = sorted({r["target"] for r in results})
    for name in names:
        rows = sorted((r for r in results if r["target"] == name), key=lambda r: r["members"])
        xs = [r["members"] for r in rows]
        med = [r["fanout"]["round_median_ms"] for r in rows]
        p99 = [r["fanout"]["delivery_p99_ms"] for r in rows]
        line, = ax.plot(xs, med, marker="o", label=f"{name}: round median")
        ax.plot(xs, p99, marker=".", linestyle=":", color=line.get_color(), label=f"{name}: delivery p99")
    px = sorted(PHOENIX)
    ax.plot(px, [PHOENIX[n]["round_median_ms"] for n in px], marker="s", color="purple", linestyle="--",
            label="Phoenix 1.7.24 (issue 5): round median")
    ax.axhline(GOALS["round_median_ms"], color="grey", linewidth=0.8, linestyle="--")
    ax.annotate("target at 10k: 250 ms", (10000, GOALS["round_median_ms"]), textcoords="offset points",
                xytext=(4, 4), fontsize=8, color="grey")
    ax.set_yscale("log")
    ax.set_xlabel("members in the room (joined sockets)")
    ax.set_ylabel("ms from shout to delivery (log scale)")
    ax.set_title("Fan-out of one 64-byte shout (bench:*, V2), 2-vCPU VM, loopback", fontsize=10)
    if subtitle:
        ax.text(0.01, 0.01, subtitle, transform=ax.transAxes, fontsize=7, color="grey")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def meta(opts: argparse.Namespace) -> dict[str, Any]:
    def version(cmd: list[str]) -> str:
        try:
            return subprocess.run(cmd, capture_output=True, text=True, timeout=10).stdout.strip()
        except OSError:
            return "-"

    import tornado

    cpu_model = "-"
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as fh:
        for line in fh:
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    return {
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "git": version(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"]),
        "git_dirty": bool(version(["git", "-C", str(REPO), "status", "--porcelain", "--", "server", "bench"])),
        "cpus": os.cpu_count(), "cpu_model": cpu_model, "kernel": platform.release(),
        "python": platform.python_version(), "tornado": tornado.version, "node": version(["node", "--version"]),
        "nofile": resource.getrlimit(resource.RLIMIT_NOFILE),
        "load_before": loadavg(), "options": {k: v for k, v in vars(opts).items() if k != "out"},
        "env": {k: v for k, v in os.environ.items() if k.startswith(("BENCH_", "TP_"))},
    }


# ---- main ------------------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--targets", default="phx,phx-uvloop,relay,relay-uvloop",
                   help=f"comma list of {', '.join(TARGETS)}")
    p.add_argument("--sizes", default="1000,5000,10000,19000", help="room sizes (members)")
    p.add_argument("--rounds", type=int, default=10)
    p.add_argument("--round-gap", type=float, default=0.5, help="seconds between fan-out rounds")
    p.add_argument("--round-timeout", type=float, default=20.0)
    p.add_argument("--echo", type=int, default=2000, help="measured echo round trips")
    p.add_argument("--echo-warmup", type=int, default=200)
    p.add_argument("--payload", type=int, default=64, help="shout payload bytes (JSON object)")
    p.add_argument("--rate-sizes", default="1000,10000", help="sizes that get the message-rate run")
    p.add_argument("--senders", type=int, default=10)
    p.add_argument("--rate-seconds", type=float, default=10.0)
    p.add_argument("--client", choices=["raw", "ws"], default="raw",
                   help="generator's WebSocket client: lean raw (default) or the ws package")
    p.add_argument("--per-worker", type=int, default=5000, help="clients per generator process")
    p.add_argument("--concurrency", type=int, default=100, help="connects in flight (all workers)")
    p.add_argument("--connect-timeout", type=float, default=120.0)
    p.add_argument("--settle", type=float, default=3.0, help="seconds idle before RSS is read")
    p.add_argument("--server-cpu", type=int, default=0, help="vCPU for the server (-1: no pinning)")
    p.add_argument("--gen-cpu", type=int, default=1, help="vCPU for the generators (-1: no pinning)")
    p.add_argument("--log-level", default="warning", help="TP_LOG_LEVEL of the server under test")
    p.add_argument("--profile", default="", help="phases to profile with py-spy: connect,echo,fanout,rate")
    p.add_argument("--nice", type=int, default=0, help="niceness of server and generators (root: <0 favours them)")
    p.add_argument("--out", type=Path, default=RESULTS)
    p.add_argument("--name", default="", help="result file stem (default: a timestamp)")
    p.add_argument("--smoke", action="store_true", help="tiny sizes, few rounds: proves the harness works")
    opts = p.parse_args(argv)
    if opts.smoke:
        opts.sizes, opts.rounds, opts.echo, opts.echo_warmup = "50,200", 3, 50, 10
        opts.rate_sizes, opts.rate_seconds, opts.settle, opts.round_gap = "200", 1.0, 0.5, 0.1
    opts.profile = [x for x in opts.profile.split(",") if x]
    opts.targets = [t.strip() for t in opts.targets.split(",") if t.strip()]
    for t in opts.targets:
        if t not in TARGETS:
            p.error(f"unknown target {t!r}; choose from {', '.join(TARGETS)}")
    opts.sizes = [int(x) for x in str(opts.sizes).split(",") if x]
    opts.rate_sizes = sorted({int(x) for x in str(opts.rate_sizes).split(",") if x})
    ncpu = os.cpu_count() or 1
    opts.server_cpu = None if opts.server_cpu < 0 or ncpu < 2 else opts.server_cpu
    opts.gen_cpu = None if opts.gen_cpu < 0 or ncpu < 2 else opts.gen_cpu
    return opts


async def amain(opts: argparse.Namespace) -> dict[str, Any]:
    if shutil.which("node") is None:
        raise SystemExit("bench: node is not installed (Node 18+ is needed for the load generator)")
    if not (BENCH / "node_modules" / "ws").is_dir():
        raise SystemExit("bench: run `npm ci` in bench/ first (make bench does)")
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    for key in opts.targets:  # with --workers the members spread over the workers (by hash: keep a margin)
        workers = TARGETS[key].workers
        per_process = max(opts.sizes) if workers <= 1 else math.ceil(max(opts.sizes) / workers * 1.2)
        if per_process + 100 > hard:
            raise SystemExit(f"bench: {max(opts.sizes)} members need more than the {hard} descriptors a process "
                             f"may hold (target {key}; use more workers)")
    opts.out.mkdir(parents=True, exist_ok=True)
    logdir = opts.out / "logs.tmp"
    logdir.mkdir(exist_ok=True)
    report = {"meta": meta(opts), "phoenix_reference": PHOENIX, "goals": GOALS, "results": []}
    started = time.monotonic()
    for n in opts.sizes:
        # Interleave targets per size, so a change in machine load hits ours and the baseline alike.
        for key in opts.targets:
            target = TARGETS[key]
            t0 = time.monotonic()
            print(f"bench: {target.name} N={n} (load {loadavg()[0]:.2f}) ...", flush=True)
            res = await run_size(target, n, opts, logdir)
            res["seconds"] = round(time.monotonic() - t0, 1)
            report["results"].append(res)
            f = res["fanout"]
            print(f"bench:   joins/s {res['connect']['per_second']}  KiB/socket {res['idle']['rss_per_socket_kib']}  "
                  f"echo p99 {res['echo']['p99_ms']} ms  round median {f['round_median_ms']} ms  "
                  f"delivery p99 {f['delivery_p99_ms']} ms  rounds complete {f['complete_rounds']}/{f['rounds']}"
                  f"  ({res['seconds']} s)", flush=True)
    report["meta"]["load_after"] = loadavg()
    report["meta"]["seconds"] = round(time.monotonic() - started, 1)
    return report


def main(argv: list[str] | None = None) -> int:
    global NICE
    opts = parse_args(argv)
    NICE = opts.nice
    report = asyncio.run(amain(opts))
    stem = opts.name or time.strftime("bench-%Y%m%d-%H%M%S")
    json_path = opts.out / f"{stem}.json"
    png_path = opts.out / f"{stem}.png"
    json_path.write_text(json.dumps(report, indent=1) + "\n")
    m = report["meta"]
    plot(report["results"], png_path,
         f"{m['started']}  git {m['git']}  load {m['load_before'][0]:.1f} -> {m['load_after'][0]:.1f}  "
         f"client {opts.client}  nice {opts.nice}")
    print()
    print(table(report["results"]))
    print()
    incomplete = sum(r["fanout"]["rounds"] - r["fanout"]["complete_rounds"] for r in report["results"])
    print(f"result: bench wrote {json_path.relative_to(REPO) if json_path.is_relative_to(REPO) else json_path} "
          f"and {png_path.name} in {report['meta']['seconds']} s; incomplete rounds: {incomplete}")
    return 0 if incomplete == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
