"""`room:*` bad input over a raw WebSocket: every refusal names its reason, the document is unharmed and the
other member sees nothing of it; exact frames of the JSON protocol's happy path."""

from __future__ import annotations

import base64
import json
import struct

import pytest
from pycrdt import Doc, Text

from tests.support.live_server import LiveServer
from tests.support.rawws import RawWebSocket

V2 = "/socket/websocket?vsn=2.0.0"
V1 = "/socket/websocket?vsn=1.0.0"


@pytest.fixture(scope="module")
def server():
    server = LiveServer(env={"TP_YJS_STORE": "memory", "TP_YJS_MAX_UPDATE_BYTES": "2000",
                             "TP_YJS_MAX_DOC_BYTES": "6000"}).start()
    yield server
    server.stop()


def send(ws, *frame):
    ws.send_text(json.dumps(list(frame)))


def push_binary(ws, join_ref, ref, topic, event, payload: bytes):
    fields = [join_ref.encode(), ref.encode(), topic.encode(), event.encode()]
    ws.send_binary(struct.pack("5B", 0, *map(len, fields)) + b"".join(fields) + payload)


def recv(ws, timeout=5.0):
    got = ws.recv(timeout)
    if got.kind == "binary":
        return got.data
    assert got.kind == "text", got
    return json.loads(got.text)


def recv_app(ws, timeout=5.0):
    """The next frame that is not presence."""
    while True:
        frame = recv(ws, timeout)
        if isinstance(frame, bytes) or frame[3] not in ("presence_diff", "presence_state"):
            return frame


def no_app_frame(ws, seconds=0.3):
    try:
        frame = recv_app(ws, seconds)
    except TimeoutError:
        return
    raise AssertionError(f"expected nothing but presence, got {frame!r}")


def until_reply(ws, ref):
    """Frames up to and including the reply to `ref` (skipping presence frames)."""
    seen = []
    while True:
        frame = recv(ws)
        if isinstance(frame, list) and frame[1] == ref and frame[3] == "phx_reply":
            return frame, seen
        if isinstance(frame, bytes) or frame[3] not in ("presence_diff", "presence_state"):
            seen.append(frame)


def update_of(text: str, doc: Doc | None = None) -> tuple[Doc, bytes]:
    doc = doc or Doc()
    ytext = doc.get("text", type=Text)
    before = doc.get_state()
    ytext += text
    return doc, doc.get_update(before)


def join(ws, topic, ref="1", params=None):
    send(ws, ref, ref, topic, "phx_join", params or {})
    reply, _ = until_reply(ws, ref)
    assert reply[4]["status"] == "ok", reply
    return reply[4]["response"]


def test_json_protocol_frames_and_every_bad_input(server):
    topic = "room:bad"
    with RawWebSocket(server.port, V2) as a, RawWebSocket(server.port, V2) as b:
        assert join(a, topic) == {"state": [0, 0]}
        join(b, topic)
        doc, good = update_of("kept")
        send(a, "1", "2", topic, "update", {"data": list(good)})
        assert until_reply(a, "2")[0] == ["1", "2", topic, "phx_reply", {"response": {}, "status": "ok"}]
        assert recv_app(b) == [None, None, topic, "update", {"data": list(good)}]

        big_doc, too_big = update_of("x" * 2100)
        bad = [
            ({"data": [1, 2, 3]}, "invalid update"),
            ({"data": [300, 1]}, "invalid update"),
            ({"data": "!!! not base64"}, "invalid update"),
            ({"data": None}, "invalid update"),
            ({}, "invalid update"),
            ({"data": list(too_big)}, "update too large"),
        ]
        for n, (payload, reason) in enumerate(bad):
            ref = str(10 + n)
            send(a, "1", ref, topic, "update", payload)
            reply, seen = until_reply(a, ref)
            assert reply[4] == {"response": {"reason": reason}, "status": "error"}, payload
            assert seen == []
        push_binary(a, "1", "30", topic, "update", b"\x07garbage")
        assert until_reply(a, "30")[0][4] == {"response": {"reason": "invalid update"}, "status": "error"}

        # y-protocols garbage on the same room
        for n, message in enumerate([b"\x09", b"\x00\x02\x64abc", b"\x00\x02\x03\xff\xff\xff", b"\x01\x05\x01\x01\x01\x01{",
                                     b"\x00\x07\x00", b"\x00\x02" + b"\xff" * 2100, b"", b"\x00\x00\x03\xff\xff\xff"]):
            ref = str(40 + n)
            push_binary(a, "1", ref, topic, "yjs", message)
            reply = until_reply(a, ref)[0]
            reason = "update too large" if len(message) > 2000 else "invalid update"
            assert reply[4] == {"response": {"reason": reason}, "status": "error"}, message
        send(a, "1", "50", topic, "yjs", {"not": "binary"})
        assert until_reply(a, "50")[0][4]["response"] == {"reason": "invalid update"}

        # document too large: 6000 bytes max, updates of ~1.5 kB each
        refused = None
        for n in range(6):
            doc, chunk = update_of("y" * 1500, doc)
            ref = str(60 + n)
            send(a, "1", ref, topic, "update", {"data": list(chunk)})
            reply, _ = until_reply(a, ref)
            if reply[4]["status"] == "error":
                refused = reply[4]["response"]
                break
            assert recv_app(b)[3] == "update"
        assert refused == {"reason": "document too large"}

        # nothing else reached b, and the document holds exactly the accepted updates
        no_app_frame(b)
        with RawWebSocket(server.port, V1) as c:
            c.send_text(json.dumps({"topic": topic, "event": "phx_join", "payload": {}, "ref": "1", "join_ref": "1"}))
            while True:
                frame = recv(c)
                if frame.get("event") == "phx_reply":
                    break
            check = Doc()
            check.apply_update(bytes(frame["payload"]["response"]["state"]))
            text = str(check.get("text", type=Text))
            assert text.startswith("kept") and set(text[4:]) == {"y"} and len(text) == 4 + 1500 * n
        # the room still takes small edits, as a V2 binary push and as base64
        doc, more = update_of("!", check)
        push_binary(a, "1", "70", topic, "update", more)
        assert until_reply(a, "70")[0][4] == {"response": {}, "status": "ok"}
        assert recv_app(b) == [None, None, topic, "update", {"data": list(more)}]
        doc, more = update_of("?", doc)
        send(a, "1", "71", topic, "update", {"data": base64.b64encode(more).decode()})
        assert until_reply(a, "71")[0][4] == {"response": {}, "status": "ok"}
    assert not any("Traceback" in line for line in server.log_lines())


def test_y_protocols_need_v2(server):
    with RawWebSocket(server.port, V1) as ws:
        ws.send_text(json.dumps({"topic": "room:v1", "event": "phx_join", "payload": {"protocol": "yjs"},
                                 "ref": "1", "join_ref": "1"}))
        frame = recv(ws)
        assert frame["payload"] == {"response": {"reason": "y-protocols needs vsn=2.0.0 (binary frames)"},
                                    "status": "error"}


def test_y_protocols_frames(server):
    """Binary pushes in; `yjs` binary pushes (kind 0, to this socket) and broadcasts (kind 2) out."""
    topic = "room:frames"
    with RawWebSocket(server.port, V2) as a, RawWebSocket(server.port, V2) as b:
        assert join(a, topic, params={"protocol": "yjs"}) == {}
        join(b, topic, params={"protocol": "yjs"})
        doc, good = update_of("hi")
        message = b"\x00\x02" + bytes([len(good)]) + good
        push_binary(a, "1", "2", topic, "yjs", message)
        got = recv_app(b)
        assert got == bytes([2, len(topic), 3]) + topic.encode() + b"yjs" + message  # broadcast, kind 2
        no_app_frame(a)  # no reply to a `yjs` push, no echo (y_ex)
        push_binary(b, "1", "3", topic, "yjs_sync", b"\x00\x00\x01\x00")  # SyncStep1 of an empty doc
        step2 = recv_app(b)
        header = bytes([0, 1, len(topic), 3]) + b"1" + topic.encode() + b"yjs"
        assert step2.startswith(header + b"\x00\x01")  # push kind 0 with join_ref "1": SyncStep2
        diff = step2[len(header) + 2:]
        check = Doc()
        check.apply_update(diff[1:])  # varUint length < 128 here
        assert str(check.get("text", type=Text)) == "hi"
        assert recv_app(b).startswith(header + b"\x00\x00")  # then the server's SyncStep1
