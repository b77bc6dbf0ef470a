"""`tornado-phoenix probe` as a user runs it (a subprocess), against a running server, a stopped one, a server
without `fault:*` (like the Phoenix reference app), a wrong path and a server that never answers."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import textwrap
import time

import pytest

from tests.support.live_server import REPO, LiveServer, free_port

STEPS = ["connect", "heartbeat", "join echo", "echo round trip", "presence", "shout", "leave",
         "fault disconnect", "reconnect+rejoin", "close"]


def probe(url: str, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "tornado_phoenix", "probe", url, *args],
                          cwd=REPO, capture_output=True, text=True, timeout=timeout)


def table_rows(stdout: str) -> dict[str, list[str]]:
    lines = stdout.splitlines()
    assert lines[0].startswith("tornado-phoenix probe ws://"), stdout
    assert lines[1].split() == ["step", "result", "ms", "detail"], stdout
    rows = {}
    for line in lines[2:-1]:
        for name in STEPS:
            if line.startswith(f"  {name} "):
                rows[name] = line[len(name) + 2:].split(None, 2)
    assert list(rows) == STEPS, stdout
    return rows


def test_probe_passes_against_a_running_server(shared_server):
    done = probe(shared_server.ws_url)
    assert done.returncode == 0, done.stdout + done.stderr
    rows = table_rows(done.stdout)
    for name, (status, ms, _detail) in rows.items():
        assert status == "ok" and float(ms) >= 0, (name, done.stdout)
    assert "server closed the socket: 4000 'probe'" in rows["fault disconnect"][2]
    assert done.stdout.splitlines()[-1] == "result: ok (10 ok, 0 FAIL, 0 skip)"
    shared_server.wait_log("fault=disconnect topic=fault:probe-")


def test_probe_json_has_the_same_steps(shared_server):
    done = probe(shared_server.ws_url, "--json", "--timeout", "3")
    assert done.returncode == 0, done.stdout + done.stderr
    result = json.loads(done.stdout)
    assert result["ok"] is True and result["counts"] == {"ok": 10, "FAIL": 0, "skip": 0}
    assert [s["name"] for s in result["steps"]] == STEPS
    assert all(s["status"] == "ok" and isinstance(s["ms"], float) and s["detail"] for s in result["steps"])
    assert result["socket_url"] == f"{shared_server.ws_url}/websocket?vsn=2.0.0"


def test_probe_sends_the_token_and_masks_it(shared_server):
    done = probe(shared_server.ws_url, "--token", "s3cr3t/+", "--param", "client=probe")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "s3cr3t" not in done.stdout
    assert "token=***" in done.stdout and "client=probe" in done.stdout
    shared_server.wait_log("params=client,token")


def test_probe_fails_clearly_against_a_stopped_server():
    server = LiveServer().start()
    url = server.ws_url
    server.stop()
    started = time.monotonic()
    done = probe(url)
    assert done.returncode == 1, done.stdout + done.stderr
    assert time.monotonic() - started < 20
    rows = table_rows(done.stdout)
    assert rows["connect"][0] == "FAIL" and "connection refused by 127.0.0.1:" in rows["connect"][2]
    assert all(rows[name][:2] == ["skip", "-"] for name in STEPS[1:])
    assert done.stdout.splitlines()[-1] == "result: FAIL (0 ok, 1 FAIL, 9 skip)"
    as_json = json.loads(probe(url, "--json").stdout)
    assert as_json["ok"] is False and as_json["steps"][0]["status"] == "FAIL"
    assert "connection refused" in as_json["steps"][0]["detail"]


NO_FAULTS_SERVER = textwrap.dedent(
    """
    import asyncio, sys
    from tornado_phoenix.app import make_app
    from tornado_phoenix.channels.echo import EchoChannel
    from tornado_phoenix.channels.router import Router
    from tornado_phoenix.channels.test import TestChannel
    from tornado_phoenix.config import Settings

    async def main():
        router = Router([("echo:*", EchoChannel), ("test:*", TestChannel)])  # like a Phoenix app: no fault:*
        app, _ = make_app(Settings(port=int(sys.argv[1])), router=router)
        app.listen(int(sys.argv[1]), "127.0.0.1")
        print("ready", flush=True)
        await asyncio.sleep(120)

    asyncio.run(main())
    """
)


def test_fault_step_is_skipped_when_the_server_has_no_fault_channel():
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-c", NO_FAULTS_SERVER, str(port)], cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
        done = probe(f"ws://127.0.0.1:{port}/socket")
        assert done.returncode == 0, done.stdout + done.stderr
        rows = table_rows(done.stdout)
        assert rows["fault disconnect"][0] == "skip"
        assert rows["fault disconnect"][2] == "server has no fault:* channel"
        assert rows["reconnect+rejoin"][0] == "ok" and rows["close"][0] == "ok"
        assert done.stdout.splitlines()[-1] == "result: ok (9 ok, 0 FAIL, 1 skip)"
    finally:
        proc.kill()
        proc.wait(5)


def test_wrong_path_is_an_http_failure(shared_server):
    done = probe(f"ws://127.0.0.1:{shared_server.port}/nope")
    assert done.returncode == 1
    detail = table_rows(done.stdout)["connect"]
    assert detail[0] == "FAIL" and detail[2].startswith("HTTP 404 instead of 101"), done.stdout


def test_a_server_that_never_answers_times_out():
    with socket.socket() as listener:  # accepts TCP (backlog), never speaks HTTP
        listener.bind(("127.0.0.1", 0))
        listener.listen(4)
        port = listener.getsockname()[1]
        started = time.monotonic()
        done = probe(f"ws://127.0.0.1:{port}/socket", "--timeout", "1")
        assert done.returncode == 1
        assert time.monotonic() - started < 15
        detail = table_rows(done.stdout)["connect"]
        assert detail[0] == "FAIL" and detail[2] == f"no answer from 127.0.0.1:{port} within 1s", done.stdout


@pytest.mark.parametrize("args, message", [
    (["http//nope"], "expected a ws://HOST:PORT/socket URL"),
    (["ws://127.0.0.1:1/socket", "--param", "novalue"], "--param expects KEY=VALUE"),
    (["ws://127.0.0.1:1/socket", "--timeout", "0"], "--timeout must be greater than 0"),
])
def test_bad_arguments_exit_2(args, message):
    done = subprocess.run([sys.executable, "-m", "tornado_phoenix", "probe", *args], cwd=REPO,
                          capture_output=True, text=True, timeout=30)
    assert done.returncode == 2 and message in done.stderr, done.stderr
