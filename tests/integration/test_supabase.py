"""The supabase mount (/realtime/v1) on raw sockets: apikey rules, wire details the JS client does not show,
and that the Phoenix mount is untouched by it."""

from __future__ import annotations

import json
import struct
import urllib.request

import pytest

from tests.integration.test_longpoll import open_session, poll_until, post
from tests.support.live_server import LiveServer
from tests.support.rawws import HandshakeRefused, RawWebSocket

JOIN = '["1","1","realtime:room","phx_join",{"config":{"broadcast":{"self":true},"presence":{"key":"","enabled":true},"postgres_changes":[],"private":false}}]'


@pytest.fixture(scope="module")
def supa():
    server = LiveServer(env={"TP_SUPABASE_APIKEYS": "anon,service"}).start()
    yield server
    server.stop()


def test_apikey_is_required_and_checked_against_tp_supabase_apikeys(supa):
    for query in ("vsn=2.0.0", "vsn=2.0.0&apikey=", "vsn=2.0.0&apikey=other"):
        with pytest.raises(HandshakeRefused) as refused:
            RawWebSocket(supa.port, f"/realtime/v1/websocket?{query}")
        assert refused.value.status == 403
    with RawWebSocket(supa.port, "/realtime/v1/websocket?apikey=service&vsn=2.0.0") as ws:
        ws.send_text('[null,"1","phoenix","heartbeat",{}]')
        assert ws.recv_text() == '[null,"1","phoenix","phx_reply",{"response":{},"status":"ok"}]'


def test_join_reply_presence_state_and_kind_4_broadcast(supa):
    with RawWebSocket(supa.port, "/realtime/v1/websocket?apikey=anon&vsn=2.0.0") as ws:
        ws.send_text(JOIN)
        assert ws.recv_text() == '["1","1","realtime:room","phx_reply",{"response":{"postgres_changes":[]},"status":"ok"}]'
        assert ws.recv_text() == '["1",null,"realtime:room","presence_state",{}]'
        ws.send_text('["1","2","realtime:room","broadcast",{"type":"broadcast","event":"ev","payload":{"a":1}}]')
        frame = ws.recv()
        assert frame.kind == "binary"
        topic, event, body = b"realtime:room", b"ev", b'{"a":1}'
        assert frame.data == struct.pack("5B", 4, len(topic), len(event), 0, 1) + topic + event + body
        # kind 3 in (raw payload, encoding 0) -> kind 4 out with the same bytes
        push = struct.pack("7B", 3, 1, 1, len(topic), 2, 0, 0) + b"1" + b"3" + topic + b"ev" + b"\x00\x01raw"
        ws.send_binary(push)
        frame = ws.recv()
        assert frame.data == struct.pack("5B", 4, len(topic), 2, 0, 0) + topic + b"ev" + b"\x00\x01raw"


def test_phoenix_binary_kind_0_is_refused_on_a_supabase_socket(supa):
    with RawWebSocket(supa.port, "/realtime/v1/websocket?apikey=anon&vsn=2.0.0") as ws:
        ws.send_binary(struct.pack("5B", 0, 1, 1, 4, 2) + b"12" + b"echo" + b"ev" + b"x")
        assert ws.recv().kind == "close"


def test_phoenix_mount_does_not_route_realtime_topics(supa):
    with RawWebSocket(supa.port, "/socket/websocket?vsn=2.0.0") as ws:
        ws.send_text(JOIN)
        assert ws.recv_text() == '[null,"1","realtime:room","phx_reply",{"response":{"reason":"unmatched topic"},"status":"error"}]'


def test_supabase_long_poll_carries_broadcasts_as_text(supa):
    path = "/realtime/v1/longpoll"
    with urllib.request.urlopen(f"{supa.http_url}{path}?vsn=2.0.0") as resp:
        assert json.loads(resp.read()) == {"status": 403}  # no apikey
    token = open_session(supa, "vsn=2.0.0&apikey=anon", path=path)
    post(supa, token, [JOIN, '["1","2","realtime:room","broadcast",{"type":"broadcast","event":"e","payload":{}}]'],
         path=path)
    got = poll_until(supa, token, 3, path=path)
    assert got[2] == '[null,null,"realtime:room","broadcast",{"event":"e","payload":{},"type":"broadcast"}]'


def test_access_token_in_the_join_is_verified_when_a_secret_is_set():
    import time

    import jwt

    secret = "s" * 40
    server = LiveServer(env={"TP_SUPABASE_JWT_SECRET": secret}).start()
    try:
        expired = jwt.encode({"exp": int(time.time()) - 30}, secret, algorithm="HS256")
        forged = jwt.encode({"exp": int(time.time()) + 30}, "t" * 40, algorithm="HS256")
        good = jwt.encode({"exp": int(time.time()) + 30}, secret, algorithm="HS256")
        with RawWebSocket(server.port, "/realtime/v1/websocket?apikey=a&vsn=2.0.0") as ws:
            for ref, token, reason in (("1", expired, "Token has expired"), ("2", forged, "InvalidJWTToken")):
                ws.send_text(json.dumps([ref, ref, "realtime:a", "phx_join", {"config": {}, "access_token": token}]))
                reply = json.loads(ws.recv_text())
                assert reply[4]["status"] == "error" and reply[4]["response"]["reason"].startswith(reason), reply
            ws.send_text(json.dumps(["3", "3", "realtime:a", "phx_join", {"config": {}, "access_token": good}]))
            assert ws.recv_text() == '["3","3","realtime:a","phx_reply",{"response":{"postgres_changes":[]},"status":"ok"}]'
            ws.send_text(json.dumps(["3", "4", "realtime:a", "access_token", {"access_token": expired}]))
            system = json.loads(ws.recv_text())
            assert system[:4] == ["3", None, "realtime:a", "system"]
            assert system[4]["status"] == "error" and system[4]["message"].startswith("Token has expired")
            assert ws.recv_text() == '["3","3","realtime:a","phx_close",{}]'
    finally:
        server.stop()
