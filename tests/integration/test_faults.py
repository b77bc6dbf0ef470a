"""`fault:*` on the real server over a raw WebSocket: the exact frames each fault produces (README: Testing your client's failure paths),
parameter validation, and the browser console's static files being served."""

from __future__ import annotations

import json
import time

import pytest
from tornado_phoenix.app import default_router
from tornado_phoenix.channels.socket import PhoenixSocket
from tornado_phoenix.config import Settings
from tornado_phoenix.endpoint import Endpoint
from tornado_phoenix.presence import LocalPresence
from tornado_phoenix.protocol.messages import Message
from tornado_phoenix.protocol.serializers import V2 as V2_SERIALIZER
from tornado_phoenix.pubsub import LocalPubSub

from tests.support.live_server import LiveServer
from tests.support.rawws import RawWebSocket, http_get

V2 = "/socket/websocket?vsn=2.0.0"
FAULTS = ["crash", "close", "delay", "drop_reply", "silence", "disconnect", "push_after", "broadcast_storm"]


def recv(ws: RawWebSocket, timeout: float = 5.0) -> list:
    return json.loads(ws.recv_text(timeout))


def send(ws: RawWebSocket, *frame) -> None:
    ws.send_text(json.dumps(list(frame)))


def ok(jr, ref, topic, response=None) -> list:
    return [jr, ref, topic, "phx_reply", {"response": {} if response is None else response, "status": "ok"}]


def err(jr, ref, topic, reason) -> list:
    return [jr, ref, topic, "phx_reply", {"response": {"reason": reason}, "status": "error"}]


def join_fault(ws: RawWebSocket, topic: str, jr: str = "1") -> None:
    send(ws, jr, jr, topic, "phx_join", {})
    assert recv(ws) == ok(jr, jr, topic, {"faults": FAULTS})


def heartbeat(ws: RawWebSocket, ref: str) -> None:
    send(ws, None, ref, "phoenix", "heartbeat", {})


@pytest.fixture
def ws(shared_server):
    with RawWebSocket(shared_server.port, V2) as sock:
        yield sock


# ---- crash / close ---------------------------------------------------------------------------------------


def test_crash_sends_phx_error_without_reply_and_rejoin_works(shared_server, ws):
    topic = "fault:crash"
    join_fault(ws, topic)
    send(ws, "1", "2", topic, "crash", {})
    assert recv(ws) == ["1", "1", topic, "phx_error", {}]
    ws.expect_silence(0.3)  # the crashing push never gets a reply
    send(ws, "1", "3", topic, "delay", {"ms": 0})  # the crashed join is gone
    assert recv(ws) == err(None, "3", topic, "unmatched topic")
    join_fault(ws, topic, jr="4")  # the client's rejoin (new join_ref) succeeds
    send(ws, "4", "5", topic, "delay", {"ms": 0})
    assert recv(ws) == ok("4", "5", topic, {"delayed_ms": 0})
    shared_server.wait_log("fault=crash topic=fault:crash")


def test_close_replies_then_phx_close(ws):
    topic = "fault:close"
    join_fault(ws, topic)
    send(ws, "1", "2", topic, "close", {})
    assert recv(ws) == ok("1", "2", topic)
    assert recv(ws) == ["1", "1", topic, "phx_close", {}]
    send(ws, "1", "3", topic, "drop_reply", {})
    assert recv(ws) == err(None, "3", topic, "unmatched topic")


# ---- replies: delay, drop_reply, push_after --------------------------------------------------------------


def test_delay_replies_after_ms_and_the_socket_keeps_working(ws):
    topic = "fault:delay"
    join_fault(ws, topic)
    started = time.monotonic()
    send(ws, "1", "2", topic, "delay", {"ms": 400})
    heartbeat(ws, "3")  # not blocked by the pending reply
    assert recv(ws) == ok(None, "3", "phoenix")
    assert recv(ws) == ok("1", "2", topic, {"delayed_ms": 400})
    assert 0.38 <= time.monotonic() - started < 2.0


def test_delayed_reply_is_not_sent_after_leave(ws):
    topic = "fault:delay-leave"
    join_fault(ws, topic)
    send(ws, "1", "2", topic, "delay", {"ms": 200})
    send(ws, "1", "3", topic, "phx_leave", {})
    assert recv(ws) == ok("1", "3", topic)
    assert recv(ws) == ["1", "1", topic, "phx_close", {}]
    ws.expect_silence(0.5)


def test_drop_reply_sends_nothing(ws):
    topic = "fault:drop"
    join_fault(ws, topic)
    send(ws, "1", "2", topic, "drop_reply", {})
    ws.expect_silence(0.5)
    send(ws, "1", "3", topic, "delay", {"ms": 0})
    assert recv(ws) == ok("1", "3", topic, {"delayed_ms": 0})


def test_push_after_replies_now_and_pushes_later(ws):
    topic = "fault:later"
    join_fault(ws, topic)
    started = time.monotonic()
    send(ws, "1", "2", topic, "push_after", {"ms": 300, "event": "news", "payload": {"a": [1, "b"]}})
    assert recv(ws) == ok("1", "2", topic)
    assert time.monotonic() - started < 0.25
    assert recv(ws) == ["1", None, topic, "news", {"a": [1, "b"]}]
    assert time.monotonic() - started >= 0.28


def test_push_after_defaults(ws):
    topic = "fault:later-defaults"
    join_fault(ws, topic)
    send(ws, "1", "2", topic, "push_after", {"ms": 0})
    assert recv(ws) == ok("1", "2", topic)
    assert recv(ws) == ["1", None, topic, "after", {}]


# ---- silence ------------------------------------------------------------------------------------------------


def test_silence_drops_frames_both_ways_then_recovers(shared_server, ws):
    topic = "fault:silence"
    join_fault(ws, topic)
    with RawWebSocket(shared_server.port, V2) as other:
        join_fault(other, topic, jr="9")
        started = time.monotonic()
        send(ws, "1", "2", topic, "silence", {"ms": 800})
        assert recv(ws) == ok("1", "2", topic, {"silent_ms": 800})
        heartbeat(ws, "3")  # dropped: never answered, not even after the silence
        send(ws, "1", "4", topic, "delay", {"ms": 0})  # dropped too
        send(other, "9", "10", topic, "broadcast_storm", {"count": 2, "bytes": 1})  # lost for the silent socket
        assert recv(other)[3] == "storm" and recv(other)[3] == "storm"
        assert recv(other) == ok("9", "10", topic, {"sent": 2})
        ws.expect_silence(max(0.0, 0.8 - (time.monotonic() - started)) + 0.1)
    heartbeat(ws, "5")  # the silence is over: answered, and the socket was never closed
    assert recv(ws) == ok(None, "5", "phoenix")
    send(ws, "1", "6", topic, "delay", {"ms": 0})
    assert recv(ws) == ok("1", "6", topic, {"delayed_ms": 0})
    ws.expect_silence(0.2)  # nothing queued during the silence comes out afterwards


def test_silence_longer_than_idle_timeout_does_not_close_a_talking_client():
    server = LiveServer(env={"TP_IDLE_TIMEOUT": "0.6"}).start()
    try:
        with RawWebSocket(server.port, V2) as ws:
            topic = "fault:idle"
            join_fault(ws, topic)
            send(ws, "1", "2", topic, "silence", {"ms": 1500})
            assert recv(ws) == ok("1", "2", topic, {"silent_ms": 1500})
            for n in range(8):  # 2 s of heartbeats every 0.25 s: dropped during the silence, but activity
                heartbeat(ws, f"h{n}")
                time.sleep(0.25)
            heartbeat(ws, "after")
            got = recv(ws)
            while got[1] != "after":  # the heartbeats sent after the silence ended are answered
                assert got[:4] == [None, got[1], "phoenix", "phx_reply"], got
                got = recv(ws)
            assert got == ok(None, "after", "phoenix")
            answered = [line for line in server.log_lines() if "close code=1002" in line]
            assert answered == []
            # and a client that goes quiet is still closed by the idle timeout as usual
            assert ws.recv(3).code == 1002
    finally:
        server.stop()


# ---- disconnect ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("code", [1000, 1001, 1011, 4000, 4999])
def test_disconnect_closes_with_code_and_reason(ws, code):
    topic = f"fault:disconnect-{code}"
    join_fault(ws, topic)
    send(ws, "1", "2", topic, "disconnect", {"code": code, "reason": "fault ✓"})
    assert recv(ws) == ok("1", "2", topic)
    close = ws.recv()
    assert (close.kind, close.code, close.data.decode()) == ("close", code, "fault ✓")
    ws.send_close(code)  # complete the closing handshake, as a client does; then the server drops TCP
    assert ws.recv().kind == "eof"


def test_disconnect_defaults_to_1000_without_reason(ws):
    join_fault(ws, "fault:d")
    send(ws, "1", "2", "fault:d", "disconnect", {})
    assert recv(ws) == ok("1", "2", "fault:d")
    close = ws.recv()
    assert (close.kind, close.code, close.data) == ("close", 1000, b"")


@pytest.mark.parametrize("code", [999, 1002, 1005, 1006, 1012, 3000, 3999, 5000, "4000", 4000.5, None, True])
def test_disconnect_refuses_other_codes(ws, code):
    join_fault(ws, "fault:bad-code")
    send(ws, "1", "2", "fault:bad-code", "disconnect", {"code": code})
    assert recv(ws) == err("1", "2", "fault:bad-code", f"code must be 1000, 1001, 1011 or 4000..4999, got {code!r}")


def test_disconnect_refuses_long_reason(ws):
    join_fault(ws, "fault:bad-reason")
    send(ws, "1", "2", "fault:bad-reason", "disconnect", {"code": 4000, "reason": "x" * 124})
    assert recv(ws) == err("1", "2", "fault:bad-reason", "reason must be at most 123 UTF-8 bytes (a close frame's limit)")
    send(ws, "1", "3", "fault:bad-reason", "disconnect", {"code": 4000, "reason": 5})
    assert recv(ws) == err("1", "3", "fault:bad-reason", "reason must be a string, got 5")


# ---- broadcast_storm ----------------------------------------------------------------------------------------


def test_broadcast_storm_reaches_every_member_then_replies(shared_server, ws):
    topic = "fault:storm"
    join_fault(ws, topic)
    with RawWebSocket(shared_server.port, V2) as other:
        join_fault(other, topic, jr="7")
        send(ws, "1", "2", topic, "broadcast_storm", {"count": 500, "bytes": 300})
        for seq in range(500):
            frame = recv(ws)
            assert frame == [None, None, topic, "storm", {"seq": seq, "count": 500, "data": "x" * 300}]
        assert recv(ws) == ok("1", "2", topic, {"sent": 500})
        seen = [recv(other) for _ in range(500)]
        assert [f[4]["seq"] for f in seen] == list(range(500))
        other.expect_silence(0.2)


def test_broadcast_storm_at_the_caps(shared_server, ws):
    topic = "fault:storm-caps"
    join_fault(ws, topic)
    send(ws, "1", "2", topic, "broadcast_storm", {"count": 64, "bytes": 65536})  # exactly 4 MiB
    for seq in range(64):
        frame = recv(ws, 10)
        assert frame[3] == "storm" and frame[4]["seq"] == seq and len(frame[4]["data"]) == 65536
    assert recv(ws) == ok("1", "2", topic, {"sent": 64})
    send(ws, "1", "3", topic, "broadcast_storm", {"count": 10000})
    got = [recv(ws) for _ in range(10001)]
    assert got[-1] == ok("1", "3", topic, {"sent": 10000})
    assert got[9999][4] == {"seq": 9999, "count": 10000, "data": ""}


@pytest.mark.parametrize(
    "payload, reason",
    [
        ({}, "count is required: an integer from 1 to 10000"),
        ({"count": 0}, "count must be an integer from 1 to 10000, got 0"),
        ({"count": 10001}, "count must be an integer from 1 to 10000, got 10001"),
        ({"count": 1, "bytes": 65537}, "bytes must be an integer from 0 to 65536, got 65537"),
        ({"count": 65, "bytes": 65536}, "count * bytes must be at most 4194304, got 4259840"),
    ],
)
def test_broadcast_storm_caps(ws, payload, reason):
    join_fault(ws, "fault:storm-bad")
    send(ws, "1", "2", "fault:storm-bad", "broadcast_storm", payload)
    assert recv(ws) == err("1", "2", "fault:storm-bad", reason)


# ---- validation ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "event, payload, reason",
    [
        ("delay", {}, "ms is required: an integer from 0 to 30000"),
        ("delay", {"ms": 30001}, "ms must be an integer from 0 to 30000, got 30001"),
        ("delay", {"ms": -1}, "ms must be an integer from 0 to 30000, got -1"),
        ("delay", {"ms": "10"}, "ms must be an integer from 0 to 30000, got '10'"),
        ("delay", {"ms": 1.5}, "ms must be an integer from 0 to 30000, got 1.5"),
        ("delay", {"ms": True}, "ms must be an integer from 0 to 30000, got True"),
        ("silence", {"ms": 60001}, "ms must be an integer from 0 to 60000, got 60001"),
        ("push_after", {"ms": 10, "event": "phx_close"},
         "event must be a non-empty string not starting with phx_, got 'phx_close'"),
        ("push_after", {"ms": 10, "event": ""}, "event must be a non-empty string not starting with phx_, got ''"),
        ("push_after", {"ms": 10, "payload": [1]}, "payload must be a JSON object"),
        ("crash", [1], "payload must be a JSON object"),
        ("delay", "x", "payload must be a JSON object"),
    ],
)
def test_bad_params_get_a_clear_error_reply(ws, event, payload, reason):
    join_fault(ws, "fault:bad")
    send(ws, "1", "2", "fault:bad", event, payload)
    assert recv(ws) == err("1", "2", "fault:bad", reason)
    send(ws, "1", "3", "fault:bad", "delay", {"ms": 0})  # the channel is unharmed
    assert recv(ws) == ok("1", "3", "fault:bad", {"delayed_ms": 0})


def test_unknown_event(ws):
    join_fault(ws, "fault:x")
    send(ws, "1", "2", "fault:x", "explode", {})
    assert recv(ws) == err("1", "2", "fault:x", "unknown event")


def test_integral_float_ms_is_accepted(ws):
    join_fault(ws, "fault:float")
    send(ws, "1", "2", "fault:float", "delay", {"ms": 5.0})
    assert recv(ws) == ok("1", "2", "fault:float", {"delayed_ms": 5})


def test_one_log_line_per_fault(shared_server, ws):
    join_fault(ws, "fault:log")
    send(ws, "1", "2", "fault:log", "push_after", {"ms": 0, "event": "logged"})
    assert recv(ws) == ok("1", "2", "fault:log")
    recv(ws)
    deadline = time.monotonic() + 2
    while time.monotonic() < deadline:
        lines = [line for line in shared_server.log_lines() if "fault=push_after topic=fault:log " in line]
        if lines:
            break
        time.sleep(0.02)
    assert len(lines) == 1 and "ms=0 event=logged" in lines[0]


# ---- the console's files -------------------------------------------------------------------------------------


def test_console_page_and_assets_are_served(shared_server):
    status, headers, body = http_get(shared_server.port, "/")
    assert status == 200 and headers["content-type"].startswith("text/html")
    page = body.decode()
    assert "/static/phoenix.min.js" in page and "/static/console.js" in page
    assert "http://" not in page.replace("http://www.w3.org", "") and "https://" not in page  # no CDN
    for asset in ("phoenix.min.js", "console.js", "console.css"):
        status, headers, body = http_get(shared_server.port, f"/static/{asset}")
        assert status == 200 and len(body) > 100, asset
    status, _headers, _body = http_get(shared_server.port, "/static/nope.js")
    assert status == 404
    status, _headers, body = http_get(shared_server.port, "/nope")
    assert (status, body) == (404, b"not found")


# ---- a transport without the fault powers (e.g. a test double or a future long-poll transport) --------------


def test_faults_needing_transport_powers_are_refused_clearly_without_them():
    class PlainTransport:  # only what the Transport protocol requires
        serializer = V2_SERIALIZER

        def __init__(self):
            self.frames = []

        def send(self, frame):
            self.frames.append(json.loads(frame.data))

        def call_later(self, delay, callback):
            return None

    pubsub = LocalPubSub()
    transport = PlainTransport()
    socket = PhoenixSocket(Endpoint(Settings(), default_router(), pubsub, LocalPresence(pubsub)), transport, {})
    socket.handle_message(Message("1", "1", "fault:plain", "phx_join", {}))
    socket.handle_message(Message("1", "2", "fault:plain", "silence", {"ms": 10}))
    socket.handle_message(Message("1", "3", "fault:plain", "disconnect", {"code": 4000}))
    assert transport.frames[1:] == [
        err("1", "2", "fault:plain", "this transport cannot be silenced"),
        err("1", "3", "fault:plain", "this transport cannot be disconnected"),
    ]
