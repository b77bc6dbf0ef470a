"""@supabase/realtime-js 2.119.1 (the locked current 2.x) against the real server's /realtime/v1 mount.

tests/js/supabase/realtime.js runs two RealtimeClients over `ws` and reports what the library surfaced plus the
binary frame kinds seen both ways; the server checks access tokens with TP_SUPABASE_JWT_SECRET, and the script
signs its JWTs (HS256, node's crypto) with the same secret.
"""

from __future__ import annotations

import json
import os
import subprocess

import pytest

from tests.clients.test_phoenix_js import JS_DIR, NODE_TIMEOUT, _parse_result, node_clients  # noqa: F401
from tests.support.live_server import LiveServer

pytestmark = pytest.mark.clients

SECRET = "tornado-phoenix-test-secret-of-at-least-32-bytes"


@pytest.fixture(scope="module")
def supa_server():
    server = LiveServer(env={"TP_SUPABASE_JWT_SECRET": SECRET}).start()
    yield server
    server.stop()


def run_realtime(node: str, vsn: str, server: LiveServer) -> dict:
    proc = subprocess.run(
        [node, "supabase/realtime.js", vsn, f"{server.http_url}/realtime/v1"],
        cwd=JS_DIR, capture_output=True, text=True, timeout=NODE_TIMEOUT, env={**os.environ, "JWT_SECRET": SECRET},
    )
    result = _parse_result(proc.stdout)
    tail = "\n".join(server.log_lines()[-40:])
    assert result is not None, f"no RESULT:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}\n{tail}"
    assert result["error"] is None, f"{result['error']}\n{json.dumps(result)[:3000]}\n{proc.stderr[-2000:]}\n{tail}"
    return result


@pytest.mark.parametrize("vsn", ["2.0.0", "1.0.0"])
def test_realtime_js_broadcast_presence_auth(node_clients, supa_server, vsn):  # noqa: F811
    r = run_realtime(node_clients, vsn, supa_server)
    assert r["url"].endswith(f"/realtime/v1/websocket?apikey=anon-key&vsn={vsn}")
    for key in ("subscribe_a", "subscribe_b", "subscribe_self"):
        assert r[key] == {"status": "SUBSCRIBED", "err": None}, key
    # self false: B gets A's broadcast, A does not; self true + ack true: both get it and send() is acked.
    assert r["send_self_false"] == "ok" and r["send_ack"] == "ok"
    assert [m["payload"] for m in r["b_got"]] == [{"x": 1, "s": "héllo"}]
    assert r["a_got"] == []
    assert [(m["event"], m["payload"]) for m in r["self_got"]] == [("Ping", {"n": 2})]
    assert [(m["event"], m["payload"]) for m in r["b2_got"]] == [("Ping", {"n": 2})]
    # presence: track, re-track (update), a second key, untrack, as B's RealtimePresence reports them
    assert r["track"] == r["retrack"] == r["track_b"] == r["untrack"] == "ok"
    events = r["presence_events"]
    assert events[0] == ["sync", []]
    assert ["join", "alice", ["alice"]] in events and ["join", "bob", ["bob"]] in events
    assert events[-2:] == [["leave", "alice", ["alice"]], ["sync", ["bob"]]]
    assert r["presence_ref_ok"] is True
    # postgres_changes: a system error naming the cause, the subscribe fails with it
    assert r["pg_system"]["extension"] == "postgres_changes" and r["pg_system"]["status"] == "error"
    assert "no database" in r["pg_system"]["message"]
    assert r["subscribe_pg"]["status"] == "CHANNEL_ERROR" and "no database" in r["subscribe_pg"]["err"]
    # setAuth: valid keeps the channel joined; expired -> system error, then closed
    assert r["send_after_valid"] == "ok" and r["state_after_valid"] == "joined"
    assert r["expired_system"]["status"] == "error" and r["expired_system"]["extension"] == "system"
    assert r["expired_system"]["message"].startswith("Token has expired")
    assert r["state_after_expired"] == "closed"
    # wire: kind 3 in and kind 4 out on 2.0.0, text only on 1.0.0; never a Phoenix binary kind 0/1/2
    frames = r["frames"]
    if vsn == "2.0.0":
        assert frames["sent_binary_kinds"] and set(frames["sent_binary_kinds"]) == {3}
        assert frames["recv_binary_kinds"] and set(frames["recv_binary_kinds"]) == {4}
    else:
        assert frames["sent_binary_kinds"] == [] and frames["recv_binary_kinds"] == []
        assert "broadcast" in frames["recv_text_events"]
