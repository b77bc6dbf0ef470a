"""phoenix.js 1.7 and 1.8 over their LongPoll transport against the real server (PHX_TRANSPORT=longpoll).

The same Node scenarios as tests/clients/test_phoenix_js.py run with the harness's transport switch: the
client's own `LongPoll` class (recorded frame by frame) on /socket/longpoll instead of `ws`. The frames the
client sends and receives must be the golden run's (the WebSocket frames of Phoenix 1.7.24), byte for byte.
1.8's `longPollFallbackMs` falls back when /socket/websocket is off (TP_WEBSOCKET=off) and stays on WebSocket
otherwise.
"""

from __future__ import annotations

import collections
import subprocess
import threading
import time

import pytest

from tests.clients.test_phoenix_js import (
    CLIENT_PARAMS,
    CLIENTS,
    GOLDEN_RUNS,
    JS_DIR,
    NODE_TIMEOUT,
    SCENARIOS,
    _diff,
    _explain,
    _parse_result,
    frames,
    is_frame,
    node_clients,  # noqa: F401  (fixture)
    normalise,
    run_scenario,
    transcript_of,
)
from tests.support.live_server import LiveServer

pytestmark = pytest.mark.clients

WINDOW = "2"  # TP_LONGPOLL_WINDOW: sessions of dropped clients end after 3 s, so presence leaves come soon


@pytest.fixture
def lp_server(monkeypatch):
    monkeypatch.setenv("PHX_TRANSPORT", "longpoll")
    server = LiveServer(env={"TP_LONGPOLL_WINDOW": WINDOW}).start()
    yield server
    server.stop()


def _longpoll_only(result: dict) -> None:
    connects = [e for e in result["entries"] if e["kind"] == "connect"]
    assert connects and all(e.get("transport") == "longpoll" for e in connects), connects


@pytest.mark.parametrize("client", CLIENT_PARAMS)
def test_golden_frames_over_longpoll(node_clients, lp_server, client):  # noqa: F811
    """The golden script over LongPoll: every frame sent and received equals the golden WebSocket run."""
    result = run_scenario(node_clients, "golden.js", client, lp_server)
    _longpoll_only(result)
    golden = GOLDEN_RUNS[CLIENTS[client]]
    want = normalise([f"{k} {v}" for k, v in golden.wire if k in ("SEND", "RECV")])
    got = normalise([f"{k} {v}" for k, v in transcript_of(result).wire if k in ("SEND", "RECV")])
    # Heartbeats are not sent over long-poll (phoenix.js skipHeartbeat).
    want = [line for line in want if '"phoenix","heartbeat"' not in line and '"phoenix","phx_reply"' not in line]
    assert got == want, "frames differ from the golden run:\n" + _diff(want, got)
    want_js = collections.Counter(normalise(golden.js))
    got_js = collections.Counter(normalise(transcript_of(result).js))
    assert got_js == want_js, f"client callbacks differ:\nmissing {want_js - got_js}\nextra {got_js - want_js}"


@pytest.mark.parametrize("client", CLIENT_PARAMS)
def test_presence_over_longpoll(node_clients, lp_server, client):  # noqa: F811
    """Presence across sockets; a dropped long-poll client leaves when its session expires."""
    r = run_scenario(node_clients, "presence.js", client, lp_server)
    _longpoll_only(r)
    ids = lambda snapshot: [p["id"] for p in snapshot]  # noqa: E731
    a, ab = ["alice"], ["alice", "bob"]
    assert [ids(s) for s in r["syncs"]["A"]] == [a, ab, a, ab, a, ab, a]
    assert lp_server.wait_log("long-poll session expired", timeout=10)


@pytest.mark.parametrize("client", CLIENT_PARAMS)
def test_crash_and_rejoin_over_longpoll(node_clients, lp_server, client):  # noqa: F811
    r = run_scenario(node_clients, "crash.js", client, lp_server)
    _longpoll_only(r)
    assert [e["what"] for e in r["events"] if e["who"] == "A"][:2] == ["pushed non-map shout", "onError"]
    assert r["join_ref_a2"] != r["join_ref_a1"] and r["state_a"] == "joined" and r["state_b"] == "joined"
    assert not any(e["who"] == "B" and e["what"] == "onError" for e in r["events"])
    assert r["shout_a"] == ["ok", {}] and r["shout_b"] == ["ok", {}]


@pytest.mark.parametrize("client", CLIENT_PARAMS)
def test_leave_over_longpoll(node_clients, lp_server, client):  # noqa: F811
    r = run_scenario(node_clients, "leave.js", client, lp_server)
    _longpoll_only(r)


@pytest.mark.parametrize("client", CLIENT_PARAMS)
def test_reconnect_and_rejoin_after_server_restart_over_longpoll(node_clients, lp_server, client):  # noqa: F811
    """The server restarts (a new random secret, no sessions): the client's poll fails, it reconnects over
    long-poll, gets a new session (410) and rejoins echo:r with a new join_ref."""
    cmd = [node_clients, str(SCENARIOS / "restart.js"), client, lp_server.ws_url]
    proc = subprocess.Popen(
        cmd, cwd=JS_DIR, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    out: list[str] = []
    ready = threading.Event()

    def pump() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            out.append(line)
            if line.strip() == "READY_FOR_RESTART":
                ready.set()

    reader = threading.Thread(target=pump, daemon=True)
    reader.start()
    try:
        assert ready.wait(20), _explain("no READY_FOR_RESTART", "".join(out), "", lp_server)
        lp_server.restart()
        assert proc.stdin is not None
        proc.stdin.write("RESTARTED\n")
        proc.stdin.flush()
        proc.wait(NODE_TIMEOUT)
    finally:
        if proc.poll() is None:
            proc.kill()
    reader.join(5)
    r = _parse_result("".join(out))
    stderr = proc.stderr.read() if proc.stderr else ""
    assert r is not None and r["error"] is None, _explain("restart.js failed", "".join(out), stderr, lp_server)
    _longpoll_only(r)
    assert r["before"] == ["ok", {"n": "before"}] and r["after"] == ["ok", {"n": "after"}]
    assert r["join_ref_2"] != r["join_ref_1"] and r["state"] == "joined" and r["opens"] >= 2
    joins = [e for e in frames(r, "R", "send") if is_frame(e, "echo:r", "phx_join")]
    assert len(joins) >= 2


@pytest.mark.parametrize("websocket,expected", [("off", "longpoll"), ("on", "websocket")])
def test_phoenix18_long_poll_fallback(node_clients, websocket, expected):  # noqa: F811
    """1.8 with longPollFallbackMs: 2500 falls back when the upgrade is refused, stays on WebSocket if not."""
    server = LiveServer(env={"TP_WEBSOCKET": websocket}).start()
    try:
        started = time.monotonic()
        r = run_scenario(node_clients, "fallback.js", "1.8", server)
        assert r["transport"] == expected, (r["transport"], time.monotonic() - started)
        assert r["conn_is_longpoll"] is (expected == "longpoll")
        assert r["join"] == ["ok", {"via": "fallback"}] and r["push"] == ["ok", {"n": 1}]
        if expected == "longpoll":
            assert server.wait_log("long-poll connect", timeout=5)
    finally:
        server.stop()


@pytest.mark.parametrize("client", CLIENT_PARAMS)
def test_session_gone_over_longpoll(node_clients, lp_server, client):  # noqa: F811
    """The server ends the session: 1.8 closes with 3410 and rejoins; 1.7 takes the new token (reopens)."""
    r = run_scenario(node_clients, "session_gone.js", client, lp_server)
    _longpoll_only(r)
    assert r["join1"][0] == "ok" and r["opens"] >= 2
    if client == "1.8":
        assert r["closes"][0] == {"code": 3410, "reason": "session_gone"}
        assert r["join_ref_2"] != r["join_ref_1"] and r["state"] == "joined"
    else:
        assert r["closes"] == []
