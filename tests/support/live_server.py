"""Start the real `tornado-phoenix serve` as a subprocess on a free loopback port.

Integration and client tests talk to this process over real sockets, exactly as a user's client would.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

from tests.support.waiting import wait_for

__all__ = ["LiveServer", "free_port"]

REPO = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class LiveServer:
    """One server process; `restart()` keeps the port so clients can reconnect to the same URL."""

    def __init__(self, *, port: int | None = None, env: dict[str, str] | None = None, args: list[str] | None = None,
                 preexec_fn: Callable[[], None] | None = None):
        self.port = port or free_port()
        self.preexec_fn = preexec_fn  # e.g. a low RLIMIT_NOFILE for the descriptor-limit tests
        self.extra_env = env or {}
        self.extra_args = args or []
        self.proc: subprocess.Popen[str] | None = None
        self._lines: list[str] = []
        self._reader: threading.Thread | None = None

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        """The endpoint a phoenix.js client is given (it appends /websocket itself)."""
        return f"ws://127.0.0.1:{self.port}/socket"

    def start(self, timeout: float = 15.0) -> LiveServer:
        env = {**os.environ, "TP_LOG_LEVEL": "debug", **self.extra_env}
        cmd = [sys.executable, "-m", "tornado_phoenix", "serve", "--host", "127.0.0.1", "--port", str(self.port)]
        self.proc = subprocess.Popen(
            cmd + self.extra_args,
            env=env,
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            preexec_fn=self.preexec_fn,
        )
        self._reader = threading.Thread(target=self._pump, args=(self.proc,), daemon=True)
        self._reader.start()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode}:\n{self.output()}")
            try:
                self.health()
                return self
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"server did not answer /health within {timeout}s:\n{self.output()}")

    def _pump(self, proc: subprocess.Popen[str]) -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            self._lines.append(line.rstrip("\n"))

    def health(self) -> dict:
        with urllib.request.urlopen(self.http_url + "/health", timeout=2) as resp:
            return json.loads(resp.read())

    def output(self) -> str:
        return "\n".join(self._lines)

    def log_lines(self) -> list[str]:
        return list(self._lines)

    def wait_logs(self, *needles: str, timeout: float = 10.0, count: int = 1) -> list[str]:
        """The log lines holding every needle, once there are `count` of them: the server writes its log
        asynchronously, so a test waits for a line (bounded) instead of asserting it right after an event."""
        def found() -> list[str]:
            lines = [line for line in self.log_lines() if all(needle in line for needle in needles)]
            return lines if len(lines) >= count else []

        return wait_for(found, timeout, f"{count} log line(s) with {needles!r}",
                        detail=lambda: "last lines:\n" + "\n".join(self.log_lines()[-30:]))

    def wait_log(self, *needles: str, timeout: float = 10.0) -> str:
        """The first log line holding every needle, waited for (bounded)."""
        return self.wait_logs(*needles, timeout=timeout)[0]

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 10.0) -> int | None:
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else None
        self.proc.send_signal(sig)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)
        if self._reader:
            self._reader.join(2)
        return self.proc.returncode

    def restart(self) -> LiveServer:
        self.stop()
        return self.start()
