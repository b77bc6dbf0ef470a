"""Several worker processes serving one port (`TP_WORKERS`), and the board their /health reads.

`tornado-phoenix serve --workers 3 --pubsub redis://127.0.0.1:6379/0` runs a small supervisor (no event
loop, no sockets of its own) that starts 3 `serve` processes. Each worker listens on the same host:port
with SO_REUSEPORT (the kernel spreads new connections over the workers by 4-tuple hash, instead of the
shared-socket LIFO accept queue that piles long-lived WebSockets onto the busiest process), runs its own
event loop, and is a node of the configured Redis pub/sub. The supervisor restarts a worker that dies (the
others keep their sockets), forwards SIGTERM/SIGINT to every worker and exits 0 when all of them did.

Each worker writes its figures to `<stats dir>/<index>.json` every 0.5 s and on every pub/sub state change;
/health on any worker sums the connections of the live ones and lists each worker's pub/sub state:

    {"status":"ok","connections":3000,"workers":[{"index":0,"pid":4242,"connections":1010,
     "pubsub":{"backend":"redis","connected":true,...}},...],...}
"""

from __future__ import annotations

import asyncio
import ctypes
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson
from prometheus_client import multiprocess

from .config import Settings, metrics_address

if TYPE_CHECKING:
    from .endpoint import Endpoint

__all__ = ["supervise", "WorkerBoard"]

log = logging.getLogger("tornado_phoenix.workers")

_PUBLISH_EVERY = 0.5
_FAST_EXIT = 3.0  # a worker dying this soon after its start, this many times in a row, stops everything
_FAST_EXIT_LIMIT = 5


class WorkerBoard:
    """One worker's view of all: it publishes its own figures and reads the others'."""

    def __init__(self, directory: str, index: int, endpoint: Endpoint) -> None:
        self.directory = Path(directory)
        self.index = index
        self.endpoint = endpoint
        self._task: asyncio.Task[None] | None = None

    def own(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "pid": os.getpid(),
            "connections": len(self.endpoint.connections),
            "channels": self.endpoint.channels,
            "pubsub": pubsub_health(self.endpoint),
        }

    def write(self) -> None:
        path = self.directory / f"{self.index}.json"
        tmp = self.directory / f".{self.index}.{os.getpid()}.tmp"
        try:
            tmp.write_bytes(orjson.dumps(self.own()))
            os.replace(tmp, path)
        except OSError as exc:
            log.warning("workers: cannot write %s: %s", path, exc)

    def all(self) -> list[dict[str, Any]]:
        """Every live worker's last figures (this one's fresh), ordered by index."""
        workers = {self.index: self.own()}
        for path in self.directory.glob("*.json"):
            try:
                entry = orjson.loads(path.read_bytes())
                index, pid = int(entry["index"]), int(entry["pid"])
            except (OSError, ValueError, KeyError, TypeError):
                continue
            if index != self.index and _alive(pid):
                workers[index] = entry
        return [workers[index] for index in sorted(workers)]

    def start(self) -> None:
        self.write()
        on_state = getattr(self.endpoint.pubsub, "on_state", None)
        if on_state is not None:
            on_state(lambda connected: self.write())
        self._task = asyncio.get_running_loop().create_task(self._loop())

    def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
        try:
            (self.directory / f"{self.index}.json").unlink()
        except OSError:
            pass

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(_PUBLISH_EVERY)
            self.write()


def pubsub_health(endpoint: Endpoint) -> dict[str, Any]:
    health = getattr(endpoint.pubsub, "health", None)
    return health() if health is not None else {"backend": "local", "connected": True}


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _die_with_parent() -> None:  # runs in the child between fork and exec
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except OSError:
        pass


def _listen_addresses(settings: Settings) -> list[tuple[str, str, int]]:
    """Every address the workers share: (the setting that names it, host, port)."""
    addresses = [("TP_PORT/--port", settings.host, settings.port)]
    if settings.metrics and settings.metrics_bind:
        addresses.append(("TP_METRICS_BIND", *metrics_address(settings.metrics_bind)))
    if settings.api_address is not None:
        addresses.append(("TP_API_BIND", *settings.api_address))
    return addresses


def _check_ports(settings: Settings) -> str | None:
    """Fail before forking when a shared port is taken (a clear error instead of N crashing workers)."""
    for name, host, port in _listen_addresses(settings):
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        try:
            with socket.socket(family, socket.SOCK_STREAM) as sock:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
                sock.bind((host, port))
        except OSError as exc:
            return f"cannot listen on {host}:{port}: {exc.strerror or exc} (is another process using it? set {name})"
    return None


def supervise(settings: Settings, argv: list[str]) -> int:
    """Run `settings.worker_count()` workers (`serve` with argv + --workers 1) until SIGTERM/SIGINT."""
    count = settings.worker_count()
    problem = _check_ports(settings)
    if problem:
        log.error("%s", problem)
        return 1
    stats_dir = tempfile.mkdtemp(prefix="tornado-phoenix-workers-")
    # prometheus-client's multi-process mode: each worker writes its metrics to files here and a scrape of any
    # worker reads them all (metrics.py), so /metrics (main port or TP_METRICS_BIND) counts the whole host.
    metrics_dir = os.path.join(stats_dir, "metrics")
    os.mkdir(metrics_dir)
    worker_env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": metrics_dir}
    stopping = False

    def on_signal(signum: int, frame: Any) -> None:
        nonlocal stopping
        if not stopping:
            log.info("supervisor: %s, stopping %d worker(s)", signal.Signals(signum).name, count)
        stopping = True
        for proc in procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)

    def spawn(index: int) -> subprocess.Popen[bytes]:
        cmd = [sys.executable, "-m", "tornado_phoenix", *argv, "--workers", "1",
               "--worker-index", str(index), "--worker-stats-dir", stats_dir]
        proc = subprocess.Popen(cmd, preexec_fn=_die_with_parent, env=worker_env)
        started[index] = time.monotonic()
        return proc

    procs: dict[int, subprocess.Popen[bytes]] = {}
    started: dict[int, float] = {}
    fast_exits: dict[int, int] = {}
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    log.info("supervisor pid %d: starting %d workers on %s:%s (SO_REUSEPORT), pubsub %s",
             os.getpid(), count, settings.host, settings.port, _redacted(settings.pubsub))
    code = 0
    try:
        for index in range(count):
            procs[index] = spawn(index)
        while not stopping:
            time.sleep(0.1)
            for index, proc in list(procs.items()):
                status = proc.poll()
                if status is None or stopping:
                    continue
                quick = time.monotonic() - started[index] < _FAST_EXIT
                fast_exits[index] = fast_exits.get(index, 0) + 1 if quick else 0
                if fast_exits[index] >= _FAST_EXIT_LIMIT:
                    log.error("worker %d exited %d times right after starting (last status %s); stopping "
                              "(see the worker's log lines above)", index, fast_exits[index], status)
                    code = 1
                    on_signal(signal.SIGTERM, None)
                    break
                log.warning("worker %d (pid %d) exited with status %s; restarting it", index, proc.pid, status)
                # its gauges (connections, channels) leave the sums; its counters stay counted
                multiprocess.mark_process_dead(proc.pid, metrics_dir)
                procs[index] = spawn(index)
        deadline = time.monotonic() + settings.shutdown_timeout + 5.0
        for index, proc in procs.items():
            try:
                status = proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                log.error("worker %d (pid %d) did not stop within the shutdown timeout; killing it",
                          index, proc.pid)
                proc.kill()
                status = proc.wait()
            if status != 0:
                code = code or 1
        log.info("supervisor: all workers stopped")
        return code
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                proc.kill()
        shutil.rmtree(stats_dir, ignore_errors=True)


def _redacted(url: str) -> str:
    if url == "local":
        return url
    from .pubsub.redis import redact_url

    return redact_url(url)
