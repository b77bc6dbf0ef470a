"""Checklist items of research/phoenix-protocol.md §12 beyond the recorded transcripts, on the real server
over real sockets. Each test names the checklist item(s) it covers (see tests/CHECKLIST.md)."""

from __future__ import annotations

import json
import signal
import time

import pytest

from tests.support.live_server import LiveServer
from tests.support.rawws import HandshakeRefused, RawWebSocket, http_get

V2 = "/socket/websocket?vsn=2.0.0"
V1 = "/socket/websocket?vsn=1.0.0"


def frames(ws: RawWebSocket, n: int) -> list:
    return [json.loads(ws.recv_text()) for _ in range(n)]


def join(ws: RawWebSocket, topic: str, jr: str = "1", payload: dict | None = None) -> list:
    ws.send_text(json.dumps([jr, jr, topic, "phx_join", payload or {}]))
    reply = json.loads(ws.recv_text())
    assert reply == [jr, jr, topic, "phx_reply", {"response": reply[4]["response"], "status": "ok"}], reply
    return reply


def unmatched(ref, topic) -> list:
    return [None, ref, topic, "phx_reply", {"response": {"reason": "unmatched topic"}, "status": "error"}]


# ---- handshake (items 1-9) -------------------------------------------------------------------------------

def test_upgrade_headers_match_phoenix(shared_server):  # 1, 7, 8
    ws = RawWebSocket(shared_server.port, V2, headers={
        "Sec-WebSocket-Protocol": "phoenix, base64url.bearer.phx.dG9rZW4",
        "Sec-WebSocket-Extensions": "permessage-deflate; client_max_window_bits",
    })
    with ws:
        assert "sec-websocket-protocol" not in ws.headers
        assert "sec-websocket-extensions" not in ws.headers
        assert "server" not in ws.headers
        assert ws.headers["cache-control"] == "max-age=0, private, must-revalidate"
        ws.send_text('[null,"1","phoenix","heartbeat",{}]')
        assert ws.recv_text() == '[null,"1","phoenix","phx_reply",{"response":{},"status":"ok"}]'


@pytest.mark.parametrize("vsn", ["2.0.0", "2.0.1"])
def test_v2_versions_upgrade(shared_server, vsn):  # 3
    with RawWebSocket(shared_server.port, f"/socket/websocket?vsn={vsn}") as ws:
        ws.send_text('[null,"1","phoenix","heartbeat",{}]')
        assert json.loads(ws.recv_text())[0] is None


@pytest.mark.parametrize("vsn", ["2.1.0", "3.0.0", "abc", "2.0", ""])
def test_unsupported_vsn_is_403_with_empty_body(shared_server, vsn):  # 3
    with pytest.raises(HandshakeRefused) as refused:
        RawWebSocket(shared_server.port, f"/socket/websocket?vsn={vsn}")
    assert (refused.value.status, refused.value.body) == (403, b"")


def test_no_vsn_speaks_v1(shared_server):  # 2
    with RawWebSocket(shared_server.port, "/socket/websocket") as ws:
        ws.send_text('{"topic":"echo:v1","event":"phx_join","payload":{},"ref":"1","join_ref":"1"}')
        assert ws.recv_text() == '{"event":"phx_reply","payload":{"response":{},"status":"ok"},"ref":"1","topic":"echo:v1"}'


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE"])
def test_non_get_is_400_with_empty_body(shared_server, method):  # 4
    status, _headers, body = http_get(shared_server.port, V2, method=method)
    assert (status, body) == (400, b"")


def test_get_without_upgrade_is_400(shared_server):  # 4
    status, _headers, _body = http_get(shared_server.port, V2)
    assert status == 400


def test_trailing_slash_upgrades(shared_server):  # 9
    with RawWebSocket(shared_server.port, "/socket/websocket/?vsn=2.0.0") as ws:
        ws.send_text('[null,"1","phoenix","heartbeat",{}]')
        assert ws.recv_text().endswith('"status":"ok"}]')


def test_origin_check_when_configured():  # 6
    server = LiveServer(env={"TP_CHECK_ORIGIN": "example.com,*.other.com"}).start()
    try:
        RawWebSocket(server.port, V2).close()  # no Origin header: always allowed
        RawWebSocket(server.port, V2, headers={"Origin": "https://example.com"}).close()
        RawWebSocket(server.port, V2, headers={"Origin": "http://a.other.com:8080"}).close()
        with pytest.raises(HandshakeRefused) as refused:
            RawWebSocket(server.port, V2, headers={"Origin": "https://evil.test"})
        assert (refused.value.status, refused.value.body) == (403, b"")
    finally:
        server.stop()


def test_unknown_path_is_404(shared_server):
    status, _headers, body = http_get(shared_server.port, "/nope")
    assert (status, body) == (404, b"not found")


def test_health(shared_server):
    with RawWebSocket(shared_server.port, V2) as ws:
        join(ws, "echo:health")
        health = shared_server.health()
        assert health["status"] == "ok" and health["connections"] >= 1 and health["channels"] >= 1
        assert {"status", "version", "uptime_s", "connections", "channels", "limits", "pubsub"} <= set(health)
        assert health["pubsub"] == {"backend": "local", "connected": True}


# ---- heartbeat and liveness (10-16) ----------------------------------------------------------------------

def test_binary_heartbeat_gets_text_reply(shared_server):  # 12
    with RawWebSocket(shared_server.port, V2) as ws:
        ws.send_binary(bytes([0, 0, 1, 7, 9]) + b"1phoenixheartbeat")
        got = ws.recv()
        assert (got.kind, got.text) == ("text", '[null,"1","phoenix","phx_reply",{"response":{},"status":"ok"}]')


def test_other_event_on_phoenix_topic_is_unmatched(shared_server):  # 13, 22
    with RawWebSocket(shared_server.port, V2) as ws:
        ws.send_text('[null,"3","phoenix","other",{}]')
        assert json.loads(ws.recv_text()) == unmatched("3", "phoenix")
        ws.send_text('["4","4","phoenix","phx_join",{}]')
        assert json.loads(ws.recv_text()) == unmatched("4", "phoenix")


def test_ping_gets_pong_with_payload(shared_server):  # 14
    with RawWebSocket(shared_server.port, V2) as ws:
        ws.send_frame(0x9, b"are you there")
        got = ws.recv()
        assert (got.kind, got.data) == ("pong", b"are you there")


def test_first_dart_heartbeat_answered_fast(shared_server):  # 16
    with RawWebSocket(shared_server.port, V2) as ws:
        started = time.monotonic()
        ws.send_text('[null,"0","phoenix","heartbeat",{}]')
        assert ws.recv_text() == '[null,"0","phoenix","phx_reply",{"response":{},"status":"ok"}]'
        assert time.monotonic() - started < 1.0


def test_idle_timeout_default_is_60s_and_frames_keep_alive():  # 15
    server = LiveServer(env={"TP_IDLE_TIMEOUT": "1.5"}).start()
    try:
        with RawWebSocket(server.port, V2) as ws:
            for ref in range(4):  # 2 s of traffic, every 0.5 s: never idle for 1.5 s
                ws.send_text(json.dumps([None, str(ref), "phoenix", "heartbeat", {}]))
                ws.recv_text()
                time.sleep(0.5)
            got = ws.recv(4)
            assert (got.kind, got.code) == ("close", 1002)
    finally:
        server.stop()
    from tornado_phoenix.config import Settings
    assert Settings().idle_timeout == 60.0


# ---- join (17-26) ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("topic", [5, None, ["x"]])
def test_non_string_topic_is_unmatched_and_socket_stays(shared_server, topic):  # 23
    with RawWebSocket(shared_server.port, V2) as ws:
        ws.send_text(json.dumps(["1", "1", topic, "phx_join", {}]))
        assert json.loads(ws.recv_text()) == unmatched("1", topic)
        ws.send_text(json.dumps(["1", "2", topic, "ping", {}]))
        assert json.loads(ws.recv_text()) == unmatched("2", topic)


def test_101st_join_is_refused(shared_server):  # 24
    with RawWebSocket(shared_server.port, V2) as ws:
        for n in range(100):
            ws.send_text(json.dumps([str(n), str(n), f"echo:{n}", "phx_join", {}]))
        for _ in range(100):
            assert json.loads(ws.recv_text())[4]["status"] == "ok"
        ws.send_text('["101","101","echo:101","phx_join",{}]')
        assert json.loads(ws.recv_text()) == [
            "101", "101", "echo:101", "phx_reply",
            {"response": {"reason": "too many channels joined"}, "status": "error"},
        ]
        # a duplicate join of a joined topic is not a new channel
        ws.send_text('["102","102","echo:5","phx_join",{}]')
        assert json.loads(ws.recv_text())[4]["status"] == "ok"


def test_presence_duplicate_join_replaces_old_meta(shared_server):  # 25, 26
    with RawWebSocket(shared_server.port, V2) as ws:
        join(ws, "test:dup", "3", {"user_id": "u"})
        diff, state = frames(ws, 2)
        assert diff[3] == "presence_diff" and state[:4] == ["3", None, "test:dup", "presence_state"]
        ws.send_text('["6","6","test:dup","phx_join",{"user_id":"u"}]')
        reply, close, diff2, state2 = frames(ws, 4)
        assert reply == ["6", "6", "test:dup", "phx_reply", {"response": {}, "status": "ok"}]
        # issue 10 #12: Phoenix 1.7.24 sends the old join's phx_close right after the new join's reply,
        # before the new channel's after_join output (presence_diff, presence_state).
        assert close == ["3", "3", "test:dup", "phx_close", {}]
        assert diff2[3] == "presence_diff" and list(diff2[4]["joins"]) == ["u"]
        assert state2[0] == "6" and len(state2[4]["u"]["metas"]) == 1
        assert state2[4]["u"]["metas"][0]["phx_ref"] != state[4]["u"]["metas"][0]["phx_ref"]


# ---- messages on joined topics (27-37) -------------------------------------------------------------------

def test_refs_keep_their_json_type(shared_server):  # 31, 32, 34
    with RawWebSocket(shared_server.port, V2) as ws:
        join(ws, "echo:refs", "7")
        ws.send_text('["7",18,"echo:refs","e",{}]')
        assert frames(ws, 2)[1] == ["7", 18, "echo:refs", "phx_reply", {"response": {}, "status": "ok"}]
        ws.send_text('[null,null,"echo:refs","e",{}]')  # null join_ref: the reply carries the current one
        assert frames(ws, 2)[1] == ["7", None, "echo:refs", "phx_reply", {"response": {}, "status": "ok"}]
        ws.send_text('["7","9","echo:refs","e",{"a":1},"extra","more"]')
        assert frames(ws, 2)[1] == ["7", "9", "echo:refs", "phx_reply", {"response": {"a": 1}, "status": "ok"}]


def test_crash_then_push_is_unmatched(shared_server):  # 35
    with RawWebSocket(shared_server.port, V2) as ws:
        join(ws, "bench:crash", "1")
        ws.send_text('["1","2","bench:crash","shout","not a map"]')
        assert ws.recv_text() == '["1","1","bench:crash","phx_error",{}]'
        ws.expect_silence(0.2)  # no reply for the crashed push
        ws.send_text('["1","3","bench:crash","shout",{}]')
        assert json.loads(ws.recv_text()) == unmatched("3", "bench:crash")
    shared_server.wait_log("phx_error topic=bench:crash")


def test_crash_hits_only_the_crashing_member(shared_server):
    with RawWebSocket(shared_server.port, V2) as a, RawWebSocket(shared_server.port, V2) as b:
        join(a, "bench:two", "1")
        join(b, "bench:two", "1")
        a.send_text('["1","2","bench:two","shout",[1]]')
        assert a.recv_text() == '["1","1","bench:two","phx_error",{}]'
        b.expect_silence(0.2)
        b.send_text('["1","2","bench:two","shout",{"still":"here"}]')
        assert b.recv_text() == '[null,null,"bench:two","shout",{"still":"here"}]'


def test_json_numbers_and_unicode_like_jason(shared_server):  # 37
    with RawWebSocket(shared_server.port, V2) as ws:
        join(ws, "echo:num", "1")
        ws.send_text('["1","2","echo:num","n",{"f":1e3,"g":1.0,"h":-0.0,"i":123456789012345678901234567890,'
                     '"s":"é☃😀/\\u0001\\t","t":0.0001,"u":1.5}]')
        push = ws.recv_text()
        assert push == ('["1",null,"echo:num","n",{"f":1.0e3,"g":1.0,"h":-0.0,"i":123456789012345678901234567890,'
                        '"s":"é☃😀/\\u0001\\t","t":1.0e-4,"u":1.5}]')


# ---- leave (40-45) ---------------------------------------------------------------------------------------

def test_leave_with_null_or_stale_join_ref_is_ignored(shared_server):  # 41, 42
    with RawWebSocket(shared_server.port, V2) as ws:
        join(ws, "echo:lv", "6")
        ws.send_text('[null,"10","echo:lv","phx_leave",{}]')
        ws.send_text('["zz","12","echo:lv","phx_leave",{}]')
        ws.expect_silence(0.3)
        ws.send_text('["6","11","echo:lv","phx_leave",{}]')
        assert frames(ws, 2) == [
            ["6", "11", "echo:lv", "phx_reply", {"response": {}, "status": "ok"}],
            ["6", "6", "echo:lv", "phx_close", {}],
        ]
        ws.send_text('["6","13","echo:lv","ping",{}]')  # 39, 44
        assert json.loads(ws.recv_text()) == unmatched("13", "echo:lv")


def test_leave_and_disconnect_broadcast_presence_leaves(shared_server):  # 45, 57
    with RawWebSocket(shared_server.port, V2) as a:
        join(a, "test:pl", "1", {"user_id": "alice"})
        frames(a, 2)
        b = RawWebSocket(shared_server.port, V2)
        join(b, "test:pl", "1", {"user_id": "bob"})
        assert list(json.loads(a.recv_text())[4]["joins"]) == ["bob"]
        b.send_text('["1","2","test:pl","phx_leave",{}]')
        leave = json.loads(a.recv_text())
        assert leave[:4] == [None, None, "test:pl", "presence_diff"] and list(leave[4]["leaves"]) == ["bob"]
        assert leave[4]["joins"] == {}
        b.close()
        c = RawWebSocket(shared_server.port, V2)
        join(c, "test:pl", "1", {"user_id": "carol"})
        frames(c, 2)
        json.loads(a.recv_text())
        c.send_close(4000)
        got = c.recv()
        assert (got.kind, got.code) == ("close", 1000)
        leave = json.loads(a.recv_text())
        assert list(leave[4]["leaves"]) == ["carol"]
        c.close()


# ---- malformed input (46-57) -----------------------------------------------------------------------------

@pytest.mark.parametrize("path,frame,code", [
    (V2, b"", 1011),
    (V2, b"42", 1011),
    (V2, b'"a string"', 1011),
    (V1, b'{"topic":"phoenix","event":"heartbeat","payload":{}}', 1011),
    (V1, b'[null,"1","phoenix","heartbeat",{}]', 1011),
    (V2, b'[null,"1","phoenix",\xff\xfe]', 1007),
])
def test_malformed_text_closes_with_code(shared_server, path, frame, code):  # 46-50
    with RawWebSocket(shared_server.port, path) as ws:
        ws.send_text(frame)
        got = ws.recv()
        assert (got.kind, got.code, got.data) == ("close", code, b"")


@pytest.mark.parametrize("path,frame", [
    (V2, bytes([7, 0, 0, 0, 0])),
    (V2, bytes([1, 0, 0, 0, 0])),
    (V2, bytes([2, 0, 0])),
    (V2, bytes([0, 1, 1, 200, 4]) + b"12echo:b"),
    (V1, b"\x00\x01\xff"),
])
def test_bad_binary_closes_1011(shared_server, path, frame):  # 51-53
    with RawWebSocket(shared_server.port, path) as ws:
        ws.send_binary(frame)
        got = ws.recv()
        assert (got.kind, got.code) == ("close", 1011)


def test_reserved_opcode_closes_1002(shared_server):  # 54
    with RawWebSocket(shared_server.port, V2) as ws:
        ws.send_frame(0x3, b"x")
        got = ws.recv()
        assert (got.kind, got.code) == ("close", 1002)


def test_frame_size_limit():  # 55
    server = LiveServer().start()  # default limit: 8,000,000 bytes
    try:
        big = b'["1","2","echo:big","ping",{"b":"' + b"x" * 7_900_000 + b'"}]'
        with RawWebSocket(server.port, V2, timeout=20) as ws:
            join(ws, "echo:big", "1")
            ws.send_text(big)
            push = ws.recv(20)
            assert push.kind == "text" and len(push.data) > 7_900_000
        too_big = b'["1","2","echo:big","ping",{"b":"' + b"x" * 8_000_001 + b'"}]'
        with RawWebSocket(server.port, V2, timeout=20) as ws:
            ws.send_text(too_big)
            got = ws.recv(20)
            assert (got.kind, got.code) == ("close", 1009)
    finally:
        server.stop()


def test_fragmented_message_is_reassembled(shared_server):  # 56
    with RawWebSocket(shared_server.port, V2) as ws:
        ws.send_frame(0x1, b'[null,"1","pho', fin=False)
        ws.send_frame(0x0, b'enix","heartbeat",{}]', fin=True)
        assert ws.recv_text() == '[null,"1","phoenix","phx_reply",{"response":{},"status":"ok"}]'


def test_bad_frame_closes_only_its_own_socket(shared_server):
    with RawWebSocket(shared_server.port, V2) as good, RawWebSocket(shared_server.port, V2) as bad:
        join(good, "echo:iso", "1")
        bad.send_text("this is not json")
        assert bad.recv().code == 1011
        good.send_text('["1","2","echo:iso","ping",{}]')
        assert len(frames(good, 2)) == 2
    shared_server.wait_log("close code=1011")


# ---- binary payloads (58-60) -----------------------------------------------------------------------------

def test_binary_push_echo_bytes_exactly(shared_server):  # 58
    with RawWebSocket(shared_server.port, V2) as ws:
        join(ws, "echo:b", "1")
        ws.send_binary(bytes([0, 1, 1, 6, 4]) + b"12echo:bblob" + bytes([0, 1, 255]))
        push, reply = ws.recv(), ws.recv()
        assert (push.kind, list(push.data)) == ("binary", [0, 1, 6, 4, 49, 101, 99, 104, 111, 58, 98, 98, 108, 111, 98, 0, 1, 255])
        assert (reply.kind, list(reply.data)) == ("binary", [1, 1, 1, 6, 2, 49, 50, 101, 99, 104, 111, 58, 98, 111, 107, 0, 1, 255])


def test_binary_broadcast_layout(shared_server):  # 59
    with RawWebSocket(shared_server.port, V2) as ws:
        join(ws, "bench:bin", "1")
        ws.send_binary(bytes([0, 1, 1, 9, 5]) + b"12bench:binshout" + b"\x00raw")
        broadcast, reply = ws.recv(), ws.recv()
        assert broadcast.data == bytes([2, 9, 5]) + b"bench:binshout\x00raw"
        assert json.loads(reply.text) == ["1", "2", "bench:bin", "phx_reply", {"response": {}, "status": "ok"}]


# ---- server-initiated (62) -------------------------------------------------------------------------------

def test_sigterm_closes_sockets_1001_and_exits_0():  # 62 (issue 2 asks 1001 on SIGTERM)
    server = LiveServer().start()
    with RawWebSocket(server.port, V2) as ws:
        join(ws, "echo:bye", "1")
        started = time.monotonic()
        server.proc.send_signal(signal.SIGTERM)
        got = ws.recv(5)
        assert (got.kind, got.code) == ("close", 1001)
        ws.send_close(1001)
        assert server.proc.wait(5) == 0
        assert time.monotonic() - started < 5


def test_one_log_line_per_lifecycle_event(shared_server):
    with RawWebSocket(shared_server.port, V2 + "&token=secret") as ws:
        join(ws, "echo:log", "1")
        ws.send_text('["1","2","echo:log","phx_leave",{}]')
        frames(ws, 2)
        ws.send_close(1000)
        ws.recv()
    shared_server.wait_log("disconnect code=1000")
    lines = shared_server.log_lines()
    assert any(" connect " in line and "params=token" in line for line in lines)
    assert not any("secret" in line for line in lines)  # param values are never logged
    assert any("join topic=echo:log channel=EchoChannel join_ref=1 status=ok" in line for line in lines)
    assert any("leave topic=echo:log" in line for line in lines)
    assert any("disconnect code=1000" in line for line in lines)



def test_v1_lifecycle_events_carry_join_ref_in_ref(shared_server):  # 81 (supabase realtime-js v1 relies on it)
    with RawWebSocket(shared_server.port, V1) as ws:
        ws.send_text('{"topic":"bench:v1","event":"phx_join","payload":{},"ref":"1","join_ref":"1"}')
        assert ws.recv_text() == '{"event":"phx_reply","payload":{"response":{},"status":"ok"},"ref":"1","topic":"bench:v1"}'
        ws.send_text('{"topic":"bench:v1","event":"shout","payload":"x","ref":"2","join_ref":"1"}')
        assert ws.recv_text() == '{"event":"phx_error","payload":{},"ref":"1","topic":"bench:v1"}'
        ws.send_text('{"topic":"echo:v1","event":"phx_join","payload":{},"ref":"3","join_ref":"3"}')
        ws.recv_text()
        ws.send_text('{"topic":"echo:v1","event":"phx_leave","payload":{},"ref":"4","join_ref":"3"}')
        assert ws.recv_text() == '{"event":"phx_reply","payload":{"response":{},"status":"ok"},"ref":"4","topic":"echo:v1"}'
        assert ws.recv_text() == '{"event":"phx_close","payload":{},"ref":"3","topic":"echo:v1"}'
