"""Slowloris, bad handshakes and WebSocket protocol strictness (issue 10, defects 1, 3, 4, 7): written against
the issue's required behaviour (the fixes are the i10-wire branch's, now in main: these were xfail until it
landed). Each also checks the server logged no traceback and bystanders were unaffected."""

from __future__ import annotations

import socket
import struct
import time

import pytest

from tests.abuse.support import Witnesses, tracebacks
from tests.support.live_server import LiveServer
from tests.support.rawws import RawWebSocket, http_get
from tests.support.waiting import wait_for

V2 = "/socket/websocket?vsn=2.0.0"


@pytest.fixture(scope="module")
def server():
    server = LiveServer(env={"TP_LOG_LEVEL": "info", "TP_CHECK_ORIGIN": "example.com"}).start()
    yield server
    server.stop()


def upgrade_request(port: int, path: str = V2, version: str = "HTTP/1.1", extra: str = "") -> bytes:
    return (f"GET {path} {version}\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n{extra}\r\n").encode()


def status_of(port: int, request: bytes) -> int:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(request)
        head = sock.recv(4096)
    return int(head.split()[1]) if head else 0


def test_slowloris_half_sent_upgrades_are_dropped_after_the_header_timeout(server):
    with Witnesses(server.port) as witnesses:
        held = []
        for _ in range(50):
            sock = socket.create_connection(("127.0.0.1", server.port), timeout=20)
            sock.sendall(upgrade_request(server.port)[:40])  # never finished
            held.append(sock)
        started = time.monotonic()
        for sock in held:
            assert sock.recv(4096) is not None  # returns b"" (or a 408) once the server gives up
        took = time.monotonic() - started
        for sock in held:
            sock.close()
    witnesses.check()
    assert took < 15  # the header timeout: 10 s by default
    assert tracebacks(server) == []


@pytest.mark.parametrize("request_bytes, expected", [
    (lambda port: upgrade_request(port, version="HTTP/1.0"), {400, 403, 426}),
    (lambda port: upgrade_request(port, extra="").replace(b"Version: 13", b"Version: 8"), {400, 426}),
    (lambda port: upgrade_request(port, "/socket/websocket?vsn=%C2%B2.0.0"), {403}),
    (lambda port: upgrade_request(port, "/socket/websocket?vsn=%EF%BC%92.0.0"), {403}),
    (lambda port: upgrade_request(port, "/socket/websocket?vsn=%FF"), {403}),
    (lambda port: upgrade_request(port, extra="Origin: http://[::1\r\n"), {403}),
    (lambda port: b"GET /static/%00 HTTP/1.1\r\nHost: x\r\n\r\n", {400, 404}),
    (lambda port: upgrade_request(port).replace(b"GET", b"HEAD", 1), {400}),
])
def test_bad_handshakes_are_refused_without_a_traceback(server, request_bytes, expected):
    assert status_of(server.port, request_bytes(server.port)) in expected
    time.sleep(0.1)
    assert tracebacks(server) == []
    assert server.health()["connections"] == 0


def raw_frame(first: int, payload: bytes, masked: bool = True) -> bytes:
    if not masked:
        return struct.pack("!BB", first, len(payload)) + payload
    return struct.pack("!BB", first, 0x80 | len(payload)) + b"\x00\x00\x00\x00" + payload


@pytest.mark.parametrize("data", [
    raw_frame(0xC1, b"[]"),  # RSV1 set
    raw_frame(0x09, b"x"),  # fragmented ping (FIN clear)
    raw_frame(0x80, b"x"),  # continuation with nothing to continue
    raw_frame(0x01, b"[") + raw_frame(0x81, b"[]"),  # a new data frame inside a fragmented message
    raw_frame(0x81, b"[]", masked=False),  # unmasked client frame
    raw_frame(0x88, struct.pack("!H", 1005)),  # invalid close codes
    raw_frame(0x88, struct.pack("!H", 999)),
    raw_frame(0x88, struct.pack("!H", 5000)),
    raw_frame(0x88, b"\x03"),  # 1-byte close payload
    raw_frame(0x88, struct.pack("!H", 1000) + b"\xff"),  # non-UTF-8 reason
])
def test_protocol_errors_close_1002(server, data):
    with RawWebSocket(server.port, V2) as ws:
        ws.sock.sendall(data)
        got = ws.recv()
        assert (got.kind, got.code) == ("close", 1002)
    assert tracebacks(server) == []


def test_log_injection_is_escaped(server):
    with RawWebSocket(server.port, V2) as ws:
        ws.send_text('["1\\nFORGED line","1","echo:x\\nFORGED","phx_join",{}]')
        ws.recv()
    wait_for(lambda: any("echo:x" in line for line in server.log_lines()), 5, "the join line")
    assert not any(line.startswith("FORGED") for line in server.log_lines())


def test_http_get_helper_still_works(server):
    status, _headers, _body = http_get(server.port, "/health")
    assert status == 200
