"""`--workers N` (issue 11 §2): N processes on one port (SO_REUSEPORT) over a real redis-server."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import urllib.request

from tests.integration.test_api import SECRET, api
from tests.support.live_server import REPO, LiveServer, free_port

from .conftest import Member, wait_for


def test_workers_with_local_pubsub_stop_at_start_naming_tp_pubsub():
    proc = subprocess.run(
        [sys.executable, "-m", "tornado_phoenix", "serve", "--workers", "3", "--port", "4999"],
        cwd=REPO, capture_output=True, text=True, timeout=30,
        env={**os.environ, "TP_PUBSUB": "local"},
    )
    assert proc.returncode == 2
    assert "TP_PUBSUB" in proc.stderr and "--workers=3" in proc.stderr


def test_three_workers_share_one_port_and_survive_a_dead_worker(redis):
    server = LiveServer(env={"TP_PUBSUB": redis.url, "TP_PRESENCE_DOWN_AFTER": "2", "TP_SECRET_KEY_BASE": "k" * 64},
                        args=["--workers", "3"])
    server.start()
    try:
        def ready():
            health = server.health()
            workers = health.get("workers", [])
            return len(workers) == 3 and all(w["pubsub"]["connected"] for w in workers) and health

        health = wait_for(ready, "three workers connected to Redis in /health", timeout=20)
        assert health["status"] == "ok"
        pids = {worker["pid"] for worker in health["workers"]}
        assert len(pids) == 3 and server.proc.pid not in pids

        members = [Member(server.port, "test:w", f"user{i}") for i in range(24)]
        # each worker's figures reach the others within 0.5 s: wait for one answer that adds up to 24
        health = wait_for(lambda: (h := server.health())["connections"] == 24 and h,
                          "/health to sum 24 connections over the workers")
        per_worker = {w["index"]: w["connections"] for w in health["workers"]}
        assert sum(per_worker.values()) == 24
        assert sum(1 for count in per_worker.values() if count) >= 2, per_worker  # spread by SO_REUSEPORT
        # presence converges across the workers: everyone sees all 24
        everyone = [f"user{i}" for i in range(24)]
        for member in members:
            member.wait_keys(everyone, timeout=15)
        # a broadcast from one worker reaches the members on the others
        members[0].shout({"hello": "all"})
        for member in members:
            assert member.next_event("shout")[4] == {"hello": "all"}

        # kill -9 the worker holding the most members: it is restarted, the others keep their sockets
        victim = max(health["workers"], key=lambda w: w["connections"])
        os.kill(victim["pid"], signal.SIGKILL)
        survivors_count = 24 - victim["connections"]

        def restarted():
            try:  # a request the kernel hashed to the dying worker's listener is reset (README: SO_REUSEPORT)
                workers = server.health()["workers"]
            except OSError:
                return False
            return len(workers) == 3 and victim["pid"] not in {w["pid"] for w in workers}

        def connections():
            try:
                return server.health()["connections"]
            except OSError:
                return None

        wait_for(restarted, "the killed worker to be restarted", timeout=20)
        wait_for(lambda: connections() == survivors_count, "the survivors' connections")
        alive = [member for member in members if not gone(member)]
        assert len(alive) == survivors_count
        # /metrics on the main port sums the live workers: the dead one's connections left the gauge
        wait_for(lambda: metric(server.port, "tornado_phoenix_connections") == survivors_count,
                 "/metrics to count the survivors' connections", timeout=15)
        # the dead worker's members leave on every other worker (TP_PRESENCE_DOWN_AFTER=2)
        still = sorted(f"user{members.index(member)}" for member in alive)
        for member in alive:
            member.wait_keys(still, timeout=15)
        alive[0].shout({"after": "restart"})
        for member in alive:
            assert member.next_event("shout")[4] == {"after": "restart"}
        assert "exited with status -9; restarting it" in server.output()

        # SIGTERM to the supervisor reaches every worker: every remaining socket gets 1001, exit 0
        assert server.stop(signal.SIGTERM, timeout=30) == 0
        codes = []
        for member in alive:
            try:
                while True:
                    frame = member.ws.recv(10)
                    if frame.kind in ("close", "eof"):
                        codes.append(frame.code)
                        break
            except (TimeoutError, OSError):
                codes.append("timeout")
        assert codes.count(1001) == survivors_count, codes
    finally:
        server.stop()


def metric(port: int, name: str) -> float | None:
    """The value of one sample of /metrics on 127.0.0.1:port (None when absent or the request failed)."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
            text = response.read().decode()
    except OSError:
        return None
    values = [float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.rsplit(" ", 1)[0] == name]
    return sum(values) if values else None


def gone(member: Member) -> bool:
    """True when the member's connection died (its worker was killed); frames read meanwhile are kept."""
    try:
        while True:
            member.recv(0.5)
    except TimeoutError:
        return False
    except (AssertionError, OSError):  # EOF, a close frame or a reset
        return True


def test_workers_share_the_metrics_and_api_ports(redis):
    """TP_METRICS_BIND and TP_API_BIND with --workers 2: every worker serves them (SO_REUSEPORT, like the main
    port), a scrape counts the connects of every worker, an API broadcast reaches the members of every worker."""
    metrics_port, api_port = free_port(), free_port()
    server = LiveServer(env={"TP_PUBSUB": redis.url, "TP_SECRET_KEY_BASE": "k" * 64, "TP_API_SECRET": SECRET,
                             "TP_METRICS_BIND": f"127.0.0.1:{metrics_port}", "TP_API_BIND": f"127.0.0.1:{api_port}"},
                        args=["--workers", "2"])
    server.start()
    try:
        wait_for(lambda: len(w := server.health().get("workers", [])) == 2 and all(x["pubsub"]["connected"] for x in w),
                 "two workers connected to Redis", timeout=20)
        assert server.output().count(f"metrics on http://127.0.0.1:{metrics_port}/metrics") == 2
        members = [Member(server.port, "test:shared-ports", f"user{i}") for i in range(12)]
        health = wait_for(lambda: (h := server.health())["connections"] == 12 and h, "12 connections")
        assert all(w["connections"] for w in health["workers"]), health["workers"]  # both workers hold members

        def scrape() -> float:
            return metric(metrics_port, 'tornado_phoenix_connects_total{result="ok"}')

        # each scrape is a new connection, hashed to either worker; all of them count all 12 connects
        wait_for(lambda: scrape() == 12, "a scrape to count the connects of both workers", timeout=15)
        assert [scrape() for _ in range(6)] == [12.0] * 6

        status, body = api(api_port, "POST", "/api/broadcast",
                           {"topic": "test:shared-ports", "event": "shout", "payload": {"from": "api"}})
        assert status == 200, body
        for member in members:
            assert member.next_event("shout")[4] == {"from": "api"}
    finally:
        server.stop()


def test_workers_stop_at_start_when_the_metrics_port_is_taken(redis):
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        taken = squatter.getsockname()[1]
        proc = subprocess.run(
            [sys.executable, "-m", "tornado_phoenix", "serve", "--workers", "2", "--port", str(free_port())],
            cwd=REPO, capture_output=True, text=True, timeout=30,
            env={**os.environ, "TP_PUBSUB": redis.url, "TP_SECRET_KEY_BASE": "k" * 64,
                 "TP_METRICS_BIND": f"127.0.0.1:{taken}"},
        )
    assert proc.returncode == 1
    out = proc.stdout + proc.stderr
    assert f"cannot listen on 127.0.0.1:{taken}" in out and "TP_METRICS_BIND" in out
