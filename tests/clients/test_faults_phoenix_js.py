"""`fault:*` through the official Phoenix JS clients (npm phoenix 1.7.23 and 1.8.16, from tests/js/node_modules):
the client's own push timeout, rejoin, no-rejoin, reconnect and heartbeat watchdog must do the right thing.

Each test runs one script of tests/js/faults/ (`node faults/<script>.js <client> <url> [arg]`, which prints one
`RESULT <json>` line, see tests/js/lib/harness.js) against one real server for the module.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.support.live_server import LiveServer

pytestmark = pytest.mark.clients

REPO = Path(__file__).resolve().parents[2]
JS_DIR = REPO / "tests" / "js"
CLIENTS = {"1.7": "1.7.23", "1.8": "1.8.16"}
CLIENT_PARAMS = [pytest.param(name, id=f"phoenix-{name}") for name in CLIENTS]
NODE_TIMEOUT = 45.0  # each script's own global timeout (20-30 s) is below this


@pytest.fixture(scope="module")
def node() -> str:
    node = shutil.which("node")
    assert node, "node is not installed (the official JS client tests need Node.js >= 18 and npm)"
    if not all((JS_DIR / "node_modules" / pkg / "package.json").is_file() for pkg in ("phoenix", "phoenix18", "ws")):
        npm = shutil.which("npm")
        assert npm, "npm is not installed and tests/js/node_modules is missing"
        done = subprocess.run([npm, "ci", "--no-audit", "--no-fund", "--loglevel=error"], cwd=JS_DIR,
                              capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, f"npm ci in tests/js failed:\n{done.stdout}\n{done.stderr}"
    return node


@pytest.fixture(scope="module")
def server():
    server = LiveServer().start()
    yield server
    server.stop()


def run_fault(node: str, script: str, client: str, server: LiveServer, *extra: str) -> dict:
    cmd = [node, str(JS_DIR / "faults" / script), client, server.ws_url, *extra]
    try:
        done = subprocess.run(cmd, cwd=JS_DIR, capture_output=True, text=True, timeout=NODE_TIMEOUT,
                              stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"{script} did not exit within {NODE_TIMEOUT}s\n{exc.stdout}\n{exc.stderr}")
    result = None
    for line in reversed(done.stdout.splitlines()):
        if line.startswith("RESULT "):
            result = json.loads(line[len("RESULT "):])
            break
    server_log = "\n".join(server.log_lines()[-40:])
    assert result is not None, f"{script} printed no RESULT (exit {done.returncode})\n{done.stderr}\n{server_log}"
    assert result["error"] is None and done.returncode == 0, (
        f"{script} failed (exit {done.returncode}): {result['error']}\n{done.stderr[-3000:]}\n{server_log}")
    assert result["version"] == CLIENTS[client]
    return result


def recv_frames(result: dict, socket: str = "A") -> list[list]:
    out = []
    for e in result["entries"]:
        if e["kind"] == "recv" and e["socket"] == socket and "data" in e:
            out.append(json.loads(e["data"]))
    return out


@pytest.mark.parametrize("client", CLIENT_PARAMS)
def test_replies_timeout_delay_push_after_and_storm(node, server, client):
    r = run_fault(node, "replies.js", client, server)
    assert r["join"][0] == "ok"
    assert r["dropped"] == ["timeout", None] and 390 <= r["dropped_ms"] < 1500  # the client's own timeout
    assert r["state_after_drop"] == "joined"
    assert r["delayed"] == ["ok", {"delayed_ms": 600}] and 590 <= r["delayed_ms"] < 2000
    assert r["late_callbacks"] == ["timeout"]  # the reply came after the client gave up: ignored
    assert r["push_after"] == ["ok", {}] and r["push_after_reply_ms"] < 300
    assert r["afters"] == [{"n": 7}] and 390 <= r["push_after_push_ms"] < 2000
    assert r["storm"] == ["ok", {"sent": 2000}] and r["storm_count_at_reply"] == 2000  # the reply came after
    assert r["storm_a"] == r["storm_b"] == 2000 and r["storm_in_order"]
    assert r["final_state"] == "joined"


@pytest.mark.parametrize("client", CLIENT_PARAMS)
def test_crash_errors_the_channel_and_the_client_rejoins(node, server, client):
    r = run_fault(node, "crash.js", client, server)
    assert r["state_after_error"] == "errored" and r["events"] == ["onError"]
    assert r["crash_reply"] == ["timeout", None]  # no reply for the crashing push
    assert r["join_ref_2"] != r["join_ref_1"] and r["state"] == "joined"
    assert 900 <= r["rejoin_ms"] < 4000  # phoenix.js's first rejoin backoff step is 1 s
    assert r["after"] == ["ok", {"delayed_ms": 0}]
    assert r["socket_opens"] == 1  # a channel crash never touches the socket
    frames = recv_frames(r)
    errors = [f for f in frames if f[3] == "phx_error"]
    assert len(errors) == 1 and errors[0][0] == errors[0][1] == r["join_ref_1"] and errors[0][4] == {}


@pytest.mark.parametrize("client", CLIENT_PARAMS)
def test_close_is_not_rejoined(node, server, client):
    r = run_fault(node, "close.js", client, server)
    assert r["reply"] == ["ok", {}]
    assert r["events"] == ["onClose"] and r["state"] == "closed"
    assert r["joins_sent"] == 1  # never rejoined
    assert r["socket_state"] == "open" and r["echo_after"] == ["ok", {"still": "here"}]
    closes = [f for f in recv_frames(r) if f[3] == "phx_close"]
    assert len(closes) == 1 and closes[0][0] == closes[0][1] and closes[0][4] == {}


@pytest.mark.parametrize("code", [1011, 4000, 1001])
@pytest.mark.parametrize("client", CLIENT_PARAMS)
def test_disconnect_is_followed_by_reconnect_and_rejoin(node, server, client, code):
    r = run_fault(node, "disconnect.js", client, server, str(code))
    assert r["reply"] == ["ok", {}]
    assert (r["close_code"], r["close_reason"]) == (code, f"js {code}")
    assert r["reconnected"] and r["opens"] == 2 and r["socket_state"] == "open"
    assert r["channel_states"] == ["joined", "joined"]
    assert all(new != old for new, old in zip(r["join_refs_2"], r["join_refs_1"], strict=True))
    assert r["echo_after"] == ["ok", {"after": code}]


@pytest.mark.parametrize("client", CLIENT_PARAMS)
def test_disconnect_1000(node, server, client):
    r = run_fault(node, "disconnect.js", client, server, "1000")
    assert (r["close_code"], r["close_reason"]) == (1000, "js 1000")
    if client == "1.7":
        # phoenix.js 1.7 does not reconnect after a server close with 1000 (onConnClose checks the code).
        assert r["opens"] == 1 and r["socket_state"] == "closed"
        assert r["channel_states"] == ["errored", "errored"] and r["join_refs_2"] == r["join_refs_1"]
    else:
        # phoenix.js 1.8.16's onConnClose no longer looks at the code: it reconnects after 1000 too.
        assert r["opens"] == 2 and r["socket_state"] == "open" and r["channel_states"] == ["joined", "joined"]


@pytest.mark.parametrize("client", CLIENT_PARAMS)
def test_silence_fires_the_heartbeat_watchdog_then_the_client_reconnects(node, server, client):
    r = run_fault(node, "silence.js", client, server)
    assert r["reply"] == ["ok", {"silent_ms": 3000}]
    # heartbeatIntervalMs 250: a heartbeat is sent within 250 ms and declared lost 250 ms later
    assert 250 <= r["watchdog_ms"] < 1500, r["notes"]
    assert r["unanswered_heartbeats"] >= 1
    assert r["close_code"] == 1000  # the client closed it ("heartbeat timeout"); the server answered 1000
    assert r["reconnected_ms"] < 3000  # reconnected while the old socket was still silenced
    assert r["join_ref_2"] != r["join_ref_1"] and r["echo_after"] == ["ok", {"after": "silence"}]
