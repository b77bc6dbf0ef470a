"""The server HTTP API (README: Driving it from your backend) on the real server over real sockets: auth (401,
404 when off), broadcast (single, batch, validation that delivers nothing), disconnect by user and socket id,
presence, topics, the separate TP_API_BIND listener, and `tornado-phoenix broadcast`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request

import pytest

from tests.support.backend import TestBackend
from tests.support.live_server import LiveServer, free_port
from tests.support.rawws import RawWebSocket

SECRET = "s3cret-api-key"
V2 = "/socket/websocket?vsn=2.0.0"


def api(port: int, method: str, path: str, body: object = None, *, secret: str | None = SECRET,
        auth: str | None = None, raw: bytes | None = None) -> tuple[int, dict]:
    data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
    headers = {"Content-Type": "application/json"}
    if auth is not None:
        headers["Authorization"] = auth
    elif secret is not None:
        headers["Authorization"] = f"Bearer {secret}"
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        text = exc.read()
        try:
            return exc.code, json.loads(text)
        except ValueError:
            return exc.code, {"text": text.decode()}


def recv(ws: RawWebSocket, timeout: float = 5.0) -> list:
    return json.loads(ws.recv_text(timeout))


def send(ws: RawWebSocket, *frame) -> None:
    ws.send_text(json.dumps(list(frame)))


def join(ws: RawWebSocket, topic: str, payload: dict | None = None, jr: str = "1") -> list[list]:
    """Join and return every frame up to and including the presence_state (test:*/chat:*) or the reply."""
    send(ws, jr, jr, topic, "phx_join", payload or {})
    frames = [recv(ws)]
    assert frames[0][3] == "phx_reply" and frames[0][4]["status"] == "ok", frames
    if topic.startswith(("test:", "chat:", "support:")):
        while frames[-1][3] != "presence_state":
            frames.append(recv(ws))
    return frames


@pytest.fixture(scope="module")
def api_server():
    server = LiveServer(env={"TP_API_SECRET": SECRET, "TP_MAX_FRAME_SIZE": "4000"}).start()
    yield server
    server.stop()


# ---- auth ----------------------------------------------------------------------------------------------


def test_api_is_404_without_a_secret(shared_server):
    for method, path, body in (("POST", "/api/broadcast", {"topic": "t", "event": "e"}), ("GET", "/api/topics", None)):
        status, _ = api(shared_server.port, method, path, body)
        assert status == 404


@pytest.mark.parametrize("auth,why", [
    (None, "no Authorization header"),
    ("Bearer wrong-secret", "wrong secret"),
    (f"Bearer {SECRET}x", "wrong secret"),
    (f"Basic {SECRET}", "is not 'Bearer <secret>'"),
])
def test_wrong_or_missing_secret_is_401_with_a_log_line(api_server, auth, why):
    with RawWebSocket(api_server.port, V2) as ws:
        join(ws, "test:auth")
        status, body = api(api_server.port, "POST", "/api/broadcast",
                           {"topic": "test:auth", "event": "x", "payload": {}}, secret=None, auth=auth)
        assert (status, body) == (401, {"error": "unauthorized"})
        ws.expect_silence(0.3)  # nothing delivered
    line = api_server.wait_log(why)
    assert "api refused POST /api/broadcast" in line and SECRET not in line


# ---- broadcast -----------------------------------------------------------------------------------------


def test_broadcast_reaches_every_member_single_and_batch(api_server):
    with RawWebSocket(api_server.port, V2) as a, RawWebSocket(api_server.port, "/socket/websocket") as b:
        join(a, "test:room1")
        b.send_text(json.dumps({"topic": "test:room1", "event": "phx_join", "payload": {}, "ref": "1",
                                "join_ref": "1"}))  # V1 JSON objects: encoded per serializer
        assert json.loads(b.recv_text())["event"] == "phx_reply"
        status, body = api(api_server.port, "POST", "/api/broadcast",
                           {"topic": "test:room1", "event": "new_msg", "payload": {"body": "hi", "n": 1}})
        assert status == 200 and body == {"ok": True, "published": 1, "local_recipients": 2}
        frames = [recv(a) for _ in range(2)]  # the V1 client's presence_diff came first for A
        assert [None, None, "test:room1", "new_msg", {"body": "hi", "n": 1}] in frames
        while True:
            message = json.loads(b.recv_text())
            if message["event"] == "new_msg":
                assert message == {"ref": None, "topic": "test:room1", "event": "new_msg",  # V1 has no join_ref
                                   "payload": {"body": "hi", "n": 1}}
                break
        status, body = api(api_server.port, "POST", "/api/broadcast", {"messages": [
            {"topic": "test:room1", "event": "m", "payload": {"i": 1}},
            {"topic": "test:elsewhere", "event": "m", "payload": {"i": 2}},
            {"topic": "test:room1", "event": "m", "payload": {"i": 3}},
        ]})
        assert status == 200 and body == {"ok": True, "published": 3, "local_recipients": 4}
        assert recv(a) == [None, None, "test:room1", "m", {"i": 1}]
        assert recv(a) == [None, None, "test:room1", "m", {"i": 3}]


@pytest.mark.parametrize("raw,reason", [
    (b"{not json", "body is not valid JSON"),
    (b"[1,2]", "body must be a JSON object, got a list"),
    (json.dumps({"event": "e", "payload": {}}).encode(), "topic is required"),
    (json.dumps({"topic": "test:v", "payload": {}}).encode(), "event is required"),
    (json.dumps({"topic": "test:v", "event": "e", "payload": [1]}).encode(), "payload must be a JSON object, got a list"),
    (json.dumps({"topic": "test:v", "event": "phx_close", "payload": {}}).encode(), "reserved"),
    (json.dumps({"topic": "test:v", "event": "e", "payload": {"x": "y" * 5000}}).encode(),
     "over TP_MAX_FRAME_SIZE=4000"),
    (json.dumps({"messages": []}).encode(), "messages must be a non-empty list"),
    # the whole batch is checked first: the good first message is not delivered either
    (json.dumps({"messages": [{"topic": "test:v", "event": "ok", "payload": {}},
                              {"topic": "test:v", "event": "e", "payload": "str"}]}).encode(),
     "messages[1].payload must be a JSON object"),
    (json.dumps({"messages": [{"topic": "test:v", "event": "ok", "payload": {}},
                              {"topic": "test:v", "event": "big", "payload": {"x": "y" * 5000}}]}).encode(),
     "messages[1].message is"),
])
def test_bad_broadcast_is_400_with_a_reason_and_delivers_nothing(api_server, raw, reason):
    with RawWebSocket(api_server.port, V2) as ws:
        join(ws, "test:v")
        status, body = api(api_server.port, "POST", "/api/broadcast", raw=raw)
        assert status == 400 and reason in body["error"], body
        ws.expect_silence(0.3)
    api_server.wait_log(reason[:30])


# ---- presence, topics ----------------------------------------------------------------------------------


def test_presence_and_topics(api_server):
    with RawWebSocket(api_server.port, V2) as a, RawWebSocket(api_server.port, V2) as b:
        join(a, "test:pres", {"user_id": "alice"})
        join(b, "test:pres", {"user_id": "bob"})
        join(b, "echo:solo")
        status, body = api(api_server.port, "GET", "/api/presence?topic=test:pres")
        assert status == 200 and body["topic"] == "test:pres"
        assert sorted(body["presence"]) == ["alice", "bob"]
        assert set(body["presence"]["alice"]["metas"][0]) == {"online_at", "phx_ref"}
        status, body = api(api_server.port, "GET", "/api/topics")
        assert status == 200 and body["topics"]["test:pres"] == 2 and body["topics"]["echo:solo"] == 1
        assert api(api_server.port, "GET", "/api/presence")[0] == 400
    status, body = api(api_server.port, "GET", "/api/presence?topic=test:pres")
    deadline = time.monotonic() + 5
    while body["presence"] and time.monotonic() < deadline:  # the sockets' closes are processed async
        time.sleep(0.02)
        status, body = api(api_server.port, "GET", "/api/presence?topic=test:pres")
    assert body["presence"] == {}


# ---- disconnect ----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def backend():
    server = TestBackend(SECRET).start()
    yield server
    server.stop()


def test_disconnect_by_user_and_by_socket_id_closes_with_1000(backend):
    server = LiveServer(env=backend.env(join=False, event=False)).start()
    try:
        alice1 = RawWebSocket(server.port, V2 + "&token=good&user=alice")
        alice2 = RawWebSocket(server.port, V2 + "&token=good&user=alice")
        bob = RawWebSocket(server.port, V2 + "&token=good&user=bob")
        for ws in (alice1, alice2, bob):
            join(ws, "test:d")
        status, body = api(server.port, "POST", "/api/disconnect", {"user_id": "alice"})
        assert status == 200 and body == {"ok": True, "socket_id": "user_socket:alice", "local_connections": 2}
        for ws in (alice1, alice2):
            frame = ws.recv()
            while frame.kind == "text":  # bob's/alice's presence diffs may come first
                frame = ws.recv()
            assert (frame.kind, frame.code) == ("close", 1000)
        send(bob, None, "9", "phoenix", "heartbeat", {})
        frame = recv(bob)
        while frame[3] == "presence_diff":
            frame = recv(bob)
        assert frame == [None, "9", "phoenix", "phx_reply", {"response": {}, "status": "ok"}]
        status, body = api(server.port, "POST", "/api/disconnect", {"socket_id": "user_socket:bob"})
        assert status == 200 and body["local_connections"] == 1
        frame = bob.recv()
        while frame.kind == "text":
            frame = bob.recv()
        assert (frame.kind, frame.code) == ("close", 1000)
        assert api(server.port, "POST", "/api/disconnect", {})[0] == 400
        assert api(server.port, "POST", "/api/disconnect", {"user_id": "nobody"})[1]["local_connections"] == 0
        server.wait_log("disconnect socket_id=user_socket:alice: closing 2 connection(s) with 1000")
    finally:
        server.stop()


# ---- TP_API_BIND -----------------------------------------------------------------------------------------


def test_api_bind_serves_the_api_only_on_its_own_address():
    api_port, port = free_port(), free_port()
    while port == api_port:  # free_port() may hand out the same just-closed port twice
        port = free_port()
    server = LiveServer(port=port, env={"TP_API_SECRET": SECRET, "TP_API_BIND": f"127.0.0.1:{api_port}"}).start()
    try:
        with RawWebSocket(server.port, V2) as ws:
            join(ws, "echo:bind")
            assert api(server.port, "GET", "/api/topics")[0] == 404
            status, body = api(api_port, "GET", "/api/topics")
            assert status == 200 and body["topics"] == {"echo:bind": 1}
            assert api(api_port, "POST", "/api/broadcast", {"topic": "echo:bind", "event": "e", "payload": {"a": 1}})[0] == 200
            assert recv(ws) == [None, None, "echo:bind", "e", {"a": 1}]
            assert api(api_port, "GET", "/health")[0] == 404  # only /api there
        server.wait_log(f"server API on at http://127.0.0.1:{api_port}/api")
    finally:
        server.stop()


# ---- CLI -----------------------------------------------------------------------------------------------


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if k != "TP_API_SECRET"}
    return subprocess.run([sys.executable, "-m", "tornado_phoenix", "broadcast", *args], capture_output=True,
                          text=True, timeout=20, env={**clean, **(env or {})})


def test_cli_broadcast(api_server):
    with RawWebSocket(api_server.port, V2) as ws:
        join(ws, "echo:cli")
        result = run_cli("echo:cli", "alert", '{"json": 1}', "--url", api_server.http_url,
                         env={"TP_API_SECRET": SECRET})
        assert result.returncode == 0, result.stderr
        assert json.loads(result.stdout) == {"ok": True, "published": 1, "local_recipients": 1}
        assert recv(ws) == [None, None, "echo:cli", "alert", {"json": 1}]
        result = run_cli("echo:cli", "alert", "{}", "--url", api_server.http_url, "--secret", "nope")
        assert result.returncode == 1 and "HTTP 401" in result.stderr and "wrong secret?" in result.stderr
        result = run_cli("echo:cli", "alert", "{bad", "--url", api_server.http_url, "--secret", SECRET)
        assert result.returncode == 2 and "PAYLOAD is not valid JSON" in result.stderr
        result = run_cli("echo:cli", "alert", "--url", f"http://127.0.0.1:{free_port()}", "--secret", SECRET)
        assert result.returncode == 1 and "is the server running" in result.stderr
        result = run_cli("echo:cli", "alert", "--url", api_server.http_url)
        assert result.returncode == 2 and "TP_API_SECRET" in result.stderr
        ws.expect_silence(0.2)
