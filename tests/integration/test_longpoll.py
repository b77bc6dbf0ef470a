"""Long-poll on raw HTTP against the real server, as Phoenix 1.7.24 answers (phoenix-protocol.md §8).

Every answer is HTTP 200 with the status in a JSON body whose keys are sorted; the frames are the WebSocket's
text frames byte for byte (compared with a raw WebSocket doing the same). TP_LONGPOLL_WINDOW=1 keeps the 204
and session-expiry waits short (Phoenix: 10 s window, 15 s lifetime; the default here is the same 10 s).
"""

from __future__ import annotations

import base64
import json
import struct
import time
import urllib.request

import pytest

from tests.support.live_server import LiveServer
from tests.support.rawws import RawWebSocket, http_get

WINDOW = 1.0


@pytest.fixture(scope="module")
def lp():
    server = LiveServer(env={"TP_LONGPOLL_WINDOW": str(WINDOW), "TP_CHECK_ORIGIN": "good.example"}).start()
    yield server
    server.stop()


def request(server: LiveServer, method: str, query: str, body: bytes | None = None,
            headers: dict[str, str] | None = None, path: str = "/socket/longpoll"):
    req = urllib.request.Request(f"{server.http_url}{path}?{query}", data=body, method=method, headers=headers or {})
    with urllib.request.urlopen(req, timeout=10) as resp:
        return resp.status, {k.lower(): v for k, v in resp.headers.items()}, resp.read()


def open_session(server: LiveServer, query: str = "vsn=2.0.0", **kw) -> str:
    status, headers, body = request(server, "GET", query, **kw)
    assert status == 200
    parsed = json.loads(body)
    assert body == b'{"messages":[],"status":410,"token":"%s"}' % parsed["token"].encode()
    return parsed["token"]


def post(server: LiveServer, token: str, lines: list[str], vsn: str = "2.0.0",
         headers: dict[str, str] | None = None, path: str = "/socket/longpoll") -> dict:
    _, _, body = request(server, "POST", f"vsn={vsn}&token={token}", "\n".join(lines).encode(),
                         {"Content-Type": "application/x-ndjson", **(headers or {})}, path=path)
    return json.loads(body)


def poll(server: LiveServer, token: str, vsn: str = "2.0.0", **kw) -> dict:
    return json.loads(request(server, "GET", f"vsn={vsn}&token={token}", **kw)[2])


def poll_until(server: LiveServer, token: str, count: int, timeout: float = 8.0, **kw) -> list[str]:
    got: list[str] = []
    deadline = time.monotonic() + timeout
    while len(got) < count and time.monotonic() < deadline:
        answer = poll(server, token, **kw)
        assert answer["status"] in (200, 204), answer
        got += answer["messages"]
    return got


def test_open_is_410_with_a_signed_token_and_phoenix_headers(lp):
    status, headers, body = request(lp, "GET", "vsn=2.0.0&user=1")
    assert status == 200
    assert headers["content-type"] == "application/json; charset=utf-8"
    assert headers["access-control-allow-origin"] == "*"
    assert headers["cache-control"] == "max-age=0, private, must-revalidate"
    assert "server" not in headers
    token = json.loads(body)["token"]
    assert token.startswith("SFMyNTY.") and token.count(".") == 2


def test_post_then_get_returns_the_websockets_frames(lp):
    token = open_session(lp)
    lines = ['["1","1","echo:lp","phx_join",{"a":"é"}]', '["1","2","echo:lp","ping",{"n":1.5}]']
    assert post(lp, token, lines) == {"status": 200}
    _, _, raw = request(lp, "GET", f"vsn=2.0.0&token={token}")
    answer = json.loads(raw)
    assert answer["status"] == 200 and answer["token"] == token
    assert raw.startswith(b'{"messages":["') and raw.endswith(b'"status":200,"token":"%s"}' % token.encode())
    with RawWebSocket(lp.port) as ws:
        for line in lines:
            ws.send_text(line)
        over_ws = [ws.recv_text() for _ in range(3)]
    assert answer["messages"] == over_ws
    assert over_ws[0] == '["1","1","echo:lp","phx_reply",{"response":{"a":"é"},"status":"ok"}]'


def test_empty_poll_answers_204_after_the_window_with_the_same_token(lp):
    token = open_session(lp)
    started = time.monotonic()
    assert poll(lp, token) == {"messages": [], "status": 204, "token": token}
    assert time.monotonic() - started >= WINDOW * 0.9


def test_a_waiting_poll_is_answered_as_soon_as_a_frame_arrives(lp):
    token = open_session(lp)
    post(lp, token, ['["1","1","test:lp-wait","phx_join",{"user_id":"u"}]'])
    got = poll_until(lp, token, 3)
    assert any('"presence_state"' in m for m in got)
    other = open_session(lp)
    post(lp, other, ['["7","7","test:lp-wait","phx_join",{"user_id":"v"}]'])
    got = poll_until(lp, token, 1)
    assert got and '"presence_diff"' in got[0] and '"v"' in got[0]


def test_unsupported_vsn_and_refused_origin_are_403_in_the_body(lp):
    for query in ("vsn=3.0.0", "vsn=2.1.0", "vsn=abc"):
        status, _, body = request(lp, "GET", query)
        assert (status, body) == (200, b'{"status":403}')
    status, _, body = request(lp, "GET", "vsn=2.0.0", headers={"Origin": "https://evil.example"})
    assert (status, body) == (200, b'{"status":403}')
    open_session(lp, headers={"Origin": "https://good.example"})


def test_bad_token_post_is_410_and_bad_token_get_opens_a_new_session(lp):
    assert post(lp, "SFMyNTY.forged.token", ['["1","1","echo:x","phx_join",{}]']) == {"status": 410}
    token = open_session(lp, "vsn=2.0.0&token=SFMyNTY.forged.token")
    assert token != "SFMyNTY.forged.token"


def test_token_in_the_18_header(lp):
    token = open_session(lp)
    assert post(lp, "", ['["1","1","echo:h","phx_join",{}]'], headers={"X-Phoenix-Longpoll-Token": token}) == {
        "status": 200
    }
    assert poll_until(lp, token, 1)[0] == '["1","1","echo:h","phx_reply",{"response":{},"status":"ok"}]'


def test_v1_objects_in_a_plain_body(lp):
    token = open_session(lp, "")  # no vsn: V1, as Phoenix
    msg = b'{"topic":"echo:v1","event":"phx_join","payload":{},"ref":"1"}'
    _, _, body = request(lp, "POST", f"token={token}", msg, {"Content-Type": "application/json"})
    assert json.loads(body) == {"status": 200}
    answer = json.loads(request(lp, "GET", f"token={token}")[2])
    assert answer["messages"] == ['{"event":"phx_reply","payload":{"response":{},"status":"ok"},"ref":"1","topic":"echo:v1"}']


def test_malformed_line_is_408_and_ends_the_session(lp):
    token = open_session(lp)
    assert post(lp, token, ['["1","1","echo:m","phx_join",{}]', "[not json"]) == {"status": 408}
    assert post(lp, token, ['["1","2","echo:m","ping",{}]']) == {"status": 410}
    answer = poll(lp, token)
    assert answer["status"] == 410 and answer["token"] != token


def test_session_expires_after_one_and_a_half_windows_without_a_poll(lp):
    token = open_session(lp)
    assert post(lp, token, ['["1","1","echo:exp","phx_join",{}]']) == {"status": 200}
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and post(lp, token, []) == {"status": 200}:
        time.sleep(0.2)
    assert post(lp, token, []) == {"status": 410}
    assert lp.wait_log("long-poll session expired")


def test_base64_binary_line_is_a_binary_push_and_binary_replies_crash_the_channel(lp):
    token = open_session(lp)
    post(lp, token, ['["1","1","echo:bin","phx_join",{}]'])
    assert poll_until(lp, token, 1)
    topic, event = b"echo:bin", b"ping"
    push = struct.pack("5B", 0, 1, 1, len(topic), len(event)) + b"1" + b"2" + topic + event + b"\x00\xffraw"
    assert post(lp, token, [base64.b64encode(push).decode()]) == {"status": 200}
    got = poll_until(lp, token, 1)
    assert got == ['["1","1","echo:bin","phx_error",{}]']
    assert lp.wait_log("cannot travel over long-poll")


def test_options_and_other_methods(lp):
    status, headers, body = request(lp, "OPTIONS", "", headers={"Access-Control-Request-Headers": "x-phoenix-authtoken"})
    assert status == 200 and body == b"" and "content-type" not in headers
    assert headers["access-control-allow-headers"] == "x-phoenix-authtoken"
    assert headers["access-control-allow-methods"] == "get, post, options"
    assert headers["access-control-max-age"] == "3600"
    status, _, _ = http_get(lp.port, "/socket/longpoll", method="PUT")
    assert status == 400


def test_random_secret_is_logged_when_tp_secret_key_base_is_unset(lp):
    assert lp.wait_log("TP_SECRET_KEY_BASE is not set")
    server = LiveServer(env={"TP_SECRET_KEY_BASE": "x" * 64}).start()
    try:
        open_session(server)
        assert not any("TP_SECRET_KEY_BASE is not set" in line for line in server.log_lines())
    finally:
        server.stop()


def test_websocket_off_refuses_the_upgrade_and_keeps_long_poll():
    server = LiveServer(env={"TP_WEBSOCKET": "off"}).start()
    try:
        status, _, _ = http_get(server.port, "/socket/websocket?vsn=2.0.0")
        assert status == 404
        open_session(server)
    finally:
        server.stop()


def test_only_the_first_100_ndjson_lines_are_handled(lp):
    token = open_session(lp)
    post(lp, token, ['["1","1","echo:many","phx_join",{}]'])
    assert poll_until(lp, token, 1)
    lines = [f'["1","{n}","echo:many","ping",{{"n":{n}}}]' for n in range(2, 103)]  # 101 lines
    assert post(lp, token, lines) == {"status": 200}
    got = poll_until(lp, token, 200)
    replies = [m for m in got if '"phx_reply"' in m]
    assert len(replies) == 100 and replies[-1].startswith('["1","101",')


def test_invalid_utf8_body_is_408_and_ends_the_session(lp):
    token = open_session(lp)
    _, _, body = request(lp, "POST", f"vsn=2.0.0&token={token}", b'["1","1","echo:u","phx_join",{"a":"\xff"}]',
                         {"Content-Type": "application/x-ndjson"})
    assert json.loads(body) == {"status": 408}
    assert post(lp, token, []) == {"status": 410}


def test_fault_channel_works_over_long_poll(lp):
    """fault:* crash, silence and disconnect on a long-poll session (the same transport hooks as WebSocket)."""
    token = open_session(lp)
    post(lp, token, ['["1","1","fault:lp","phx_join",{}]', '["1","2","fault:lp","crash",{}]'])
    got = poll_until(lp, token, 2)
    assert got[1] == '["1","1","fault:lp","phx_error",{}]'
    post(lp, token, ['["3","3","fault:lp","phx_join",{}]', '["3","4","fault:lp","silence",{"ms":3000}]'])
    got = poll_until(lp, token, 2)
    assert got[1] == '["3","4","fault:lp","phx_reply",{"response":{"silent_ms":3000},"status":"ok"}]'
    post(lp, token, ['["3","5","fault:lp","drop_reply",{}]', '[null,"6","phoenix","heartbeat",{}]'])
    assert poll(lp, token) == {"messages": [], "status": 204, "token": token}  # dropped while silent
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        post(lp, token, ['[null,"7","phoenix","heartbeat",{}]'])
        answer = poll(lp, token)
        if answer["messages"]:
            break
    assert answer["messages"] == ['[null,"7","phoenix","phx_reply",{"response":{},"status":"ok"}]']
    post(lp, token, ['["3","8","fault:lp","disconnect",{"code":4000}]'])
    assert lp.wait_log("long-poll disconnect (shutdown 4000)")
    assert post(lp, token, []) == {"status": 410}


def test_yjs_json_protocol_over_long_poll():
    """room:* with the JSON protocol works over long-poll unchanged: join state, update relayed to the other."""
    from pycrdt import Doc, Text

    server = LiveServer(env={"TP_LONGPOLL_WINDOW": str(WINDOW), "TP_YJS_STORE": "memory"}).start()
    try:
        a, b = open_session(server), open_session(server)
        post(server, a, ['["1","1","room:lp","phx_join",{"user_id":"a"}]'])
        post(server, b, ['["1","1","room:lp","phx_join",{"user_id":"b"}]'])
        assert any('"phx_reply"' in m and '"state"' in m for m in poll_until(server, b, 1))
        doc = Doc()
        doc["t"] = text = Text()
        text += "over long-poll"
        update = list(doc.get_update())
        assert post(server, a, [json.dumps(["1", "2", "room:lp", "update", {"data": update}])]) == {"status": 200}
        deadline = time.monotonic() + 8
        relayed = None
        while relayed is None and time.monotonic() < deadline:
            for m in poll(server, b)["messages"]:
                frame = json.loads(m)
                if frame[3] == "update":
                    relayed = frame[4]["data"]
        assert relayed is not None
        replica = Doc()
        replica.apply_update(bytes(relayed))
        replica["t"] = got = Text()
        assert str(got) == "over long-poll"
    finally:
        server.stop()


def test_long_poll_uses_the_websockets_auth():
    """TP_AUTH applies to long-poll as to the WebSocket: the token param, or 1.8's X-Phoenix-AuthToken header."""
    server = LiveServer(env={"TP_AUTH": "token", "TP_AUTH_TOKENS": "alpha,beta"}).start()
    try:
        status, _, body = request(server, "GET", "vsn=2.0.0")
        assert (status, body) == (200, b'{"status":403}')
        assert (request(server, "GET", "vsn=2.0.0&token=gamma")[2]) == b'{"status":403}'
        open_session(server, "vsn=2.0.0&token=alpha")
        open_session(server, "vsn=2.0.0", headers={"X-Phoenix-AuthToken": "beta"})
        assert server.wait_log("long-poll refuse status=403 reason=")
        server.wait_log("missing token", "long-poll refuse")
    finally:
        server.stop()
