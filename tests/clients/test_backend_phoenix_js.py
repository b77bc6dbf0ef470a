"""Driving tornado-phoenix from a backend, through the official Phoenix JS clients (npm phoenix 1.7.23 and
1.8.16): the connect/join/event callbacks to a real backend (tests/support/backend.py) and the server API
(/api/broadcast, /api/disconnect) as phoenix.js sees them. Script: tests/js/scenarios/backend.js."""

from __future__ import annotations

import json
import os
import subprocess

import pytest

from tests.clients.test_faults_phoenix_js import CLIENT_PARAMS, CLIENTS, JS_DIR, NODE_TIMEOUT, node  # noqa: F401
from tests.support.backend import TestBackend
from tests.support.live_server import LiveServer

pytestmark = pytest.mark.clients

SECRET = "js-secret"


@pytest.fixture(scope="module")
def backend_server():
    backend = TestBackend(SECRET, slow_delay=3.0).start()
    server = LiveServer(env={**backend.env(), "TP_JOIN_TOPICS": "chat:*", "TP_CALLBACK_TIMEOUT": "1"}).start()
    yield server, backend
    server.stop()
    backend.stop()


@pytest.mark.parametrize("client", CLIENT_PARAMS)
def test_backend_driven_room_with_phoenix_js(node, backend_server, client):  # noqa: F811
    server, backend = backend_server
    cmd = [node, str(JS_DIR / "scenarios" / "backend.js"), client, server.ws_url]
    env = {**os.environ, "API_URL": server.http_url, "API_SECRET": SECRET}
    try:
        done = subprocess.run(cmd, cwd=JS_DIR, capture_output=True, text=True, timeout=NODE_TIMEOUT,
                              stdin=subprocess.DEVNULL, env=env)
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"backend.js did not exit within {NODE_TIMEOUT}s\n{exc.stdout}\n{exc.stderr}")
    lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    server_log = "\n".join(server.log_lines()[-40:])
    assert lines, f"no RESULT line\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}\n{server_log}"
    result = json.loads(lines[-1][len("RESULT "):])
    assert result["error"] is None, f"{result['error']}\n--- server log ---\n{server_log}"
    assert result["version"] == CLIENTS[client]
    steps = result["steps"]
    room = [e for e in result["entries"] if e["kind"] == "send" and "phx_join" in e.get("data", "")][0]
    topic = json.loads(room["data"])[2]
    assert steps["joinA"] == ["ok", {"welcome": topic, "user": "alice"}]
    assert steps["joinB"] == ["ok", {"welcome": topic, "user": "bob"}]
    assert steps["presenceA"] == ["alice", "bob"]
    assert steps["both"] == ["ok", {"stored": True}]
    assert steps["apiSingle"] == {"status": 200, "body": {"ok": True, "published": 1, "local_recipients": 2}}
    assert steps["apiBatch"]["status"] == 200 and steps["apiBatch"]["body"]["published"] == 2
    expected = [["new_msg", {"body": "hello"}], ["saved", {"id": 1}], ["m", {"i": 1}], ["m", {"i": 2}]]
    assert result["got"]["A"] == expected and result["got"]["B"] == expected
    assert steps["refused"] == ["error", {"reason": "not a member"}]
    assert steps["slow"] == ["error", {"reason": "backend unavailable"}]
    assert steps["disconnect"]["body"]["local_connections"] == 1
    assert steps["bAfter"] == ["ok", {"still": "here"}]
    by_socket = {}
    for entry in result["entries"]:
        by_socket.setdefault(entry["socket"], []).append(entry)
    assert [e["status"] for e in by_socket["C"] if e["kind"] == "http"] == [403]
    assert not [e for e in by_socket["C"] if e["kind"] == "open"]
    closes = [e for e in by_socket["A"] if e["kind"] == "close"]
    assert closes and closes[0]["code"] == 1000  # Phoenix 1.7.24's disconnect broadcast code
    # every callback the backend got was signed (the backend checks the HMAC and the timestamp itself)
    assert all(r["signed"] for r in backend.requests)
