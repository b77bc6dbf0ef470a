"""Issue 10, the wire part: WebSocket protocol errors close 1002 like Bandit, handshakes never 500, logs are
escaped, short and rate-limited, stalled HTTP requests are cut, accept backs off at the descriptor limit, and
connection limits answer 503/429 before the upgrade. Every test runs the real server over raw sockets and
checks that a bystander socket is unaffected and that the server log holds no traceback."""

from __future__ import annotations

import json
import resource
import socket
import struct
import time

import pytest

from tests.support.live_server import LiveServer
from tests.support.rawws import HandshakeRefused, RawWebSocket, http_get
from tests.support.waiting import wait_for

V2 = "/socket/websocket?vsn=2.0.0"
UPGRADE = ("Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
           "Sec-WebSocket-Version: 13\r\n")


def join(ws: RawWebSocket, topic: str, ref: str = "1") -> None:
    ws.send_text(json.dumps([ref, ref, topic, "phx_join", {}]))
    assert json.loads(ws.recv_text())[4]["status"] == "ok"


def bystander_ok(ws: RawWebSocket, ref: str) -> None:
    """The bystander still gets its heartbeat reply (presence frames of test:* topics are skipped)."""
    ws.send_text(json.dumps([None, ref, "phoenix", "heartbeat", {}]))
    for _ in range(20):
        got = json.loads(ws.recv_text())
        if got[1] == ref:
            assert got == [None, ref, "phoenix", "phx_reply", {"response": {}, "status": "ok"}]
            return
        assert got[3] in ("presence_state", "presence_diff"), got
    raise AssertionError("no heartbeat reply")


def raw_request(port: int, data: bytes, timeout: float = 5.0) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(data)
        out = b""
        try:
            while True:
                chunk = sock.recv(65536)
                if not chunk:
                    break
                out += chunk
        except (ConnectionResetError, TimeoutError):
            pass
        return out


def status_of(response: bytes) -> int:
    return int(response.split(b" ", 2)[1])


def no_traceback(server: LiveServer) -> None:
    assert "Traceback" not in server.output(), server.output()[-3000:]


@pytest.fixture(scope="module")
def server():
    live = LiveServer(env={"TP_CHECK_ORIGIN": "example.com"}).start()
    yield live
    live.stop()


# ---- defect 1: WebSocket protocol errors -> close 1002 ----------------------------------------------------

def _unmasked(ws: RawWebSocket) -> None:
    ws.sock.sendall(bytes([0x81, 0x05]) + b"hello")


BAD_FRAMES = {
    "rsv1 bit (0xC1)": lambda ws: ws.send_frame(0x1, b"[]", rsv=0x40),
    "rsv2+rsv3 bits": lambda ws: ws.send_frame(0x2, b"x", rsv=0x30),
    "ping over 125 bytes": lambda ws: ws.send_frame(0x9, b"p" * 126),
    "fragmented ping": lambda ws: ws.send_frame(0x9, b"p", fin=False),
    "fragmented close": lambda ws: ws.send_frame(0x8, b"\x03\xe8", fin=False),
    "continuation with nothing to continue": lambda ws: ws.send_frame(0x0, b"x"),
    "new text frame inside a fragmented message": lambda ws: (ws.send_frame(0x1, b"[nu", fin=False),
                                                              ws.send_frame(0x1, b"ll]")),
    "new binary frame inside a fragmented message": lambda ws: (ws.send_frame(0x2, b"\x00", fin=False),
                                                                ws.send_frame(0x2, b"\x00")),
    "unmasked client frame": _unmasked,
    "reserved control opcode 0xB": lambda ws: ws.send_frame(0xB, b""),
}


@pytest.mark.parametrize("name", list(BAD_FRAMES))
def test_protocol_error_closes_1002_and_only_that_socket(server, name):
    with RawWebSocket(server.port, V2) as bystander, RawWebSocket(server.port, V2) as bad:
        join(bystander, "test:bystand-1002")
        BAD_FRAMES[name](bad)
        got = bad.recv()
        assert (got.kind, got.code) == ("close", 1002), got
        assert bad.recv().kind == "eof"  # and the server closes the TCP connection after its close frame
        bystander_ok(bystander, "b1")
    wait_for(lambda: any("close code=1002" in line for line in server.log_lines()), what="the close line")
    no_traceback(server)


@pytest.mark.parametrize("payload", [
    struct.pack("!H", 1005), struct.pack("!H", 1006), struct.pack("!H", 999), struct.pack("!H", 1004),
    struct.pack("!H", 2999), struct.pack("!H", 5000), struct.pack("!H", 65535), struct.pack("!H", 1015),
    b"\x03", struct.pack("!H", 1000) + b"\xff\xfe",
], ids=["1005", "1006", "999", "1004", "2999", "5000", "65535", "1015", "1-byte", "non-utf8-reason"])
def test_invalid_client_close_is_answered_1002(server, payload):
    with RawWebSocket(server.port, V2) as ws:
        ws.send_frame(0x8, payload)
        got = ws.recv()
        assert (got.kind, got.code) == ("close", 1002)
    no_traceback(server)


@pytest.mark.parametrize("payload", [b"", struct.pack("!H", 1000), struct.pack("!H", 1001) + b"bye",
                                     struct.pack("!H", 1011), struct.pack("!H", 3000), struct.pack("!H", 4999)],
                         ids=["empty", "1000", "1001+reason", "1011", "3000", "4999"])
def test_valid_client_close_is_answered_1000(server, payload):
    with RawWebSocket(server.port, V2) as ws:
        ws.send_frame(0x8, payload)
        got = ws.recv()
        assert (got.kind, got.code) == ("close", 1000)


def test_oversized_message_logs_size_and_limit():  # defect 11
    live = LiveServer(env={"TP_MAX_FRAME_SIZE": "1000"}).start()
    try:
        with RawWebSocket(live.port, V2) as ws:
            ws.send_text("x" * 1001)
            assert ws.recv().code == 1009
        line = wait_for(lambda: [ln for ln in live.log_lines() if "close code=1009" in ln], what="the 1009 line")
        assert "1001 bytes" in line[0] and "TP_MAX_FRAME_SIZE=1000" in line[0]
        no_traceback(live)
    finally:
        live.stop()


# ---- defects 3 and 4: handshakes ----------------------------------------------------------------------------

def test_http10_and_version8_upgrades_are_refused_and_never_counted(server):
    http10 = f"GET {V2} HTTP/1.0\r\nHost: x\r\n{UPGRADE}\r\n".encode()
    for _ in range(200):
        response = raw_request(server.port, http10)
        assert status_of(response) == 400 and response.endswith(b"HTTP version HTTP/1.0 unsupported")
    v8 = f"GET {V2} HTTP/1.1\r\nHost: x\r\n{UPGRADE.replace('Version: 13', 'Version: 8')}Connection: close\r\n\r\n"
    response = raw_request(server.port, v8.encode())
    assert status_of(response) == 400 and b"'sec-websocket-version' header must equal '13'" in response
    assert server.health()["connections"] == 0
    no_traceback(server)


@pytest.mark.parametrize("path,headers,status", [
    (V2.replace("2.0.0", "%C2%B2.0.0"), {}, 403),
    (V2.replace("2.0.0", "%EF%BC%92.0.0"), {}, 403),  # fullwidth 2: Phoenix refuses it
    (V2.replace("2.0.0", "%FF.0.0"), {}, 403),
    (V2, {"Origin": "http://[::1"}, 403),
    (V2, {"Origin": "https://evil.test"}, 403),
    ("/static/%00", {}, 404),
    ("/static/%0a%0dx", {}, 404),
], ids=["superscript-vsn", "fullwidth-vsn", "non-utf8-vsn", "bad-ipv6-origin", "foreign-origin", "static-nul",
        "static-crlf"])
def test_handshake_errors_never_500(server, path, headers, status):
    try:
        RawWebSocket(server.port, path, headers=headers).close()
        got = 101
    except HandshakeRefused as refused:
        got = refused.status
    assert got == status
    no_traceback(server)


def test_head_is_400_without_traceback(server):
    status, _headers, _body = http_get(server.port, V2, method="HEAD")
    assert status == 400
    no_traceback(server)


def test_ascii_vsn_still_accepted(server):
    for vsn in ("1.0.0", "2.0.0", "2.0.1"):
        RawWebSocket(server.port, f"/socket/websocket?vsn={vsn}", headers={"Origin": "https://example.com"}).close()


# ---- defect 5: log injection ----------------------------------------------------------------------------------

def test_client_strings_cannot_forge_log_lines(server):
    forged = "x\n2026-12-01 10:00:00,000 INFO tornado_phoenix.socket FORGED"
    with RawWebSocket(server.port, V2) as ws:
        ws.send_text(json.dumps([forged, "1", "echo:" + forged + "y" * 500, "phx_join", {}]))
        ws.recv_text()
        ws.send_text(json.dumps([None, "2", forged, "phx_join", {}]))  # unmatched topic
        ws.recv_text()
    line = wait_for(lambda: [ln for ln in server.log_lines() if "FORGED" in ln and "join" in ln], what="join line")
    assert not any(ln.startswith("2026-12-01 10:00:00,000") for ln in server.log_lines())
    assert all("\\n2026" in ln for ln in line)
    assert any("…(+" in ln for ln in line)  # the 500-character topic was truncated


def test_json_log_format_is_one_object_per_line():
    live = LiveServer(env={"TP_LOG_FORMAT": "json"}).start()
    try:
        with RawWebSocket(live.port, V2) as ws:
            ws.send_text(json.dumps(["a\nb", "1", "echo:\u2028x", "phx_join", {}]))
            ws.recv_text()
            ws.send_frame(0x1, b"[]", rsv=0x40)
            assert ws.recv().code == 1002
        wait_for(lambda: any('"code":1002' in ln for ln in live.log_lines()), what="json close line")
        records = [json.loads(line) for line in live.log_lines()]  # every line is one JSON object
        for record in records:
            assert {"ts", "level", "logger", "event", "conn", "topic", "code", "reason", "msg"} <= set(record)
        join_line = next(r for r in records if r["event"] == "join")
        assert join_line["topic"] == "echo:\u2028x" and join_line["join_ref"] == "a\nb"
        close = next(r for r in records if r["code"] == 1002)
        assert close["event"] == "close" and "RSV" in close["reason"] and isinstance(close["conn"], int)
    finally:
        live.stop()


# ---- defect 6: log volume --------------------------------------------------------------------------------------

def test_one_bad_frame_logs_one_short_line(server):
    frame = json.dumps(["1", "1", "echo:x", "phx_join", {"x": "y" * 508}])[:-3]  # truncated JSON, 548 bytes
    assert len(frame) == 548
    before = len(server.log_lines())
    with RawWebSocket(server.port, V2) as ws:
        ws.send_text(frame)
        assert ws.recv().code == 1011
    wait_for(lambda: any("close code=1011" in ln for ln in server.log_lines()[before:]), what="close line")
    time.sleep(0.2)
    new = [ln for ln in server.log_lines()[before:] if "close code=1011" in ln]
    assert len(new) == 1 and len(new[0]) < 400, new


def test_repeated_protocol_errors_are_rate_limited_with_a_count():
    live = LiveServer().start()
    try:
        with RawWebSocket(live.port, V2) as bystander:
            join(bystander, "test:rate")
            for _ in range(60):
                with RawWebSocket(live.port, V2) as bad:
                    bad.send_frame(0x1, b"[]", rsv=0x40)
                    assert bad.recv().code == 1002
            bystander_ok(bystander, "r1")
            summary = wait_for(lambda: [ln for ln in live.log_lines() if "more like this in the last 10 s" in ln],
                               timeout=20, what="the summary line")
        close_lines = [ln for ln in live.log_lines() if "close code=1002" in ln]
        assert len(close_lines) <= 6  # 5 in the window, then the summary
        assert "(and 55 more like this in the last 10 s)" in summary[0]
        no_traceback(live)
    finally:
        live.stop()


def _low_nofile() -> None:
    resource.setrlimit(resource.RLIMIT_NOFILE, (64, 64))


def test_descriptor_limit_backs_off_and_recovers():
    live = LiveServer(preexec_fn=_low_nofile, env={"TP_LOG_LEVEL": "info"}).start()
    held: list[socket.socket] = []
    bystander = RawWebSocket(live.port, V2)
    try:
        join(bystander, "echo:emfile")
        for _ in range(120):  # well past the 64 descriptors of the server
            held.append(socket.create_connection(("127.0.0.1", live.port), timeout=5))
        wait_for(lambda: any("cannot accept connections" in ln for ln in live.log_lines()), what="EMFILE line")
        time.sleep(2.0)  # the loop would log megabytes per second here if it spun
        log_bytes = sum(len(ln) + 1 for ln in live.log_lines())
        assert log_bytes < 4000, live.output()[-2000:]
        assert sum("cannot accept connections" in ln for ln in live.log_lines()) == 1
        bystander_ok(bystander, "during")  # the connections it has are served while accepts are paused
        for sock in held:
            sock.close()
        held.clear()
        wait_for(lambda: live.health()["status"] == "ok", timeout=15, what="health after recovery")
        with RawWebSocket(live.port, V2) as ws:
            bystander_ok(ws, "after")
        live.wait_log("accepting connections again")
        no_traceback(live)
    finally:
        bystander.close()
        for sock in held:
            sock.close()
        live.stop()


# ---- defect 7: stalled and oversized requests ---------------------------------------------------------------------

def test_slowloris_connections_are_closed_after_the_header_timeout():
    live = LiveServer(env={"TP_HEADER_TIMEOUT": "1"}).start()
    try:
        with RawWebSocket(live.port, V2) as bystander:
            slow = []
            for n in range(50):
                sock = socket.create_connection(("127.0.0.1", live.port), timeout=10)
                sock.sendall(f"GET {V2} HTTP/1.1\r\nHost: x\r\nX-Slow-{n}: ".encode())  # never finished
                slow.append(sock)
            chunked = socket.create_connection(("127.0.0.1", live.port), timeout=10)
            chunked.sendall(f"GET {V2} HTTP/1.1\r\nHost: x\r\n{UPGRADE}Transfer-Encoding: chunked\r\n\r\n".encode())
            assert status_of(chunked.recv(4096)) == 400
            chunked.close()
            started = time.monotonic()
            for sock in slow:
                sock.sendall(b"a")  # trickling bytes does not extend the deadline
                try:
                    assert sock.recv(100) == b""  # closed by the server (FIN)...
                except ConnectionResetError:
                    pass  # ...or RST, since the trickled byte was never read
                sock.close()
            held = time.monotonic() - started
            assert held < 8, held
            bystander_ok(bystander, "s1")  # an open WebSocket is not subject to the header timeout
        assert live.health()["connections"] == 0
        no_traceback(live)
    finally:
        live.stop()


@pytest.mark.parametrize("request_bytes,status", [
    (f"GET /socket/websocket?vsn=2.0.0&x={'a' * 10_001} HTTP/1.1\r\nHost: x\r\n\r\n".encode(), 414),
    (f"GET /health HTTP/1.1\r\nHost: x\r\nX-Big: {'b' * 10_001}\r\n\r\n".encode(), 431),
    (b"GET /health HTTP/1.1\r\nHost: x\r\n" + b"".join(b"X-H%d: 1\r\n" % n for n in range(51)) + b"\r\n",
     431),
    (f"GET {V2} HTTP/1.1\r\nHost: x\r\n{UPGRADE}Content-Length: 5\r\n\r\nhello".encode(), 400),
], ids=["request-line-10001", "header-10001", "51-headers", "upgrade-with-body"])
def test_request_head_limits_like_bandit(server, request_bytes, status):
    response = raw_request(server.port, request_bytes)
    assert status_of(response) == status
    status_ok, _h, _b = http_get(server.port, "/health")
    assert status_ok == 200
    no_traceback(server)


def test_fifty_headers_are_fine(server):
    extra = {f"X-H{n}": "1" for n in range(48)}  # + Host and Connection: 50 header lines
    status, _h, _b = http_get(server.port, "/health", headers=extra)
    assert status == 200


def test_protocol_errors_off_logs_nothing_for_them():
    live = LiveServer(env={"TP_LOG_PROTOCOL_ERRORS": "off"}).start()
    try:
        with RawWebSocket(live.port, V2) as ws:
            ws.send_text("not json")
            assert ws.recv().code == 1011
        with RawWebSocket(live.port, V2) as ws:  # the next connection's line proves the first was processed
            wait_for(lambda: sum(" connect " in ln for ln in live.log_lines()) == 2, what="second connect")
        assert not any("close code=1011" in ln for ln in live.log_lines())
    finally:
        live.stop()


# ---- issue 10 §3: connection limits ----------------------------------------------------------------------------

def test_connection_limits_answer_503_and_429_before_the_upgrade():
    live = LiveServer(env={"TP_MAX_CONNECTIONS": "4", "TP_MAX_CONNECTIONS_PER_IP": "3"}).start()
    try:
        sockets = [RawWebSocket(live.port, V2) for _ in range(3)]
        with pytest.raises(HandshakeRefused) as per_ip:
            RawWebSocket(live.port, V2)
        assert per_ip.value.status == 429
        health = live.health()
        assert health["connections"] == 3
        assert health["limits"]["max_connections_per_ip"] == 3 and health["limits"]["refused_per_ip"] == 1
        for ws in sockets:
            bystander_ok(ws, "l1")
        sockets.pop().close()
        wait_for(lambda: live.health()["connections"] == 2, what="the close to be counted")
        RawWebSocket(live.port, V2).close()  # a slot is free again
        wait_for(lambda: any("refuse status=429" in ln for ln in live.log_lines()), what="the 429 line")
    finally:
        for ws in sockets:
            ws.close()
        live.stop()
    live = LiveServer(env={"TP_MAX_CONNECTIONS": "2", "TP_MAX_CONNECTIONS_PER_IP": "0"}).start()
    try:
        with RawWebSocket(live.port, V2), RawWebSocket(live.port, V2):
            with pytest.raises(HandshakeRefused) as total:
                RawWebSocket(live.port, V2)
            assert total.value.status == 503
            assert live.health()["limits"]["refused_total"] == 1
        no_traceback(live)
    finally:
        live.stop()


def test_verbose_protocol_errors_show_a_longer_excerpt():
    live = LiveServer(env={"TP_LOG_PROTOCOL_ERRORS": "verbose"}).start()
    try:
        with RawWebSocket(live.port, V2) as ws:
            ws.send_text("not json " + "z" * 300)
            assert ws.recv().code == 1011
        line = wait_for(lambda: [ln for ln in live.log_lines() if "close code=1011" in ln], what="close line")[0]
        assert "z" * 150 in line and "…(+109 chars)" in line  # 200 of the 309 characters, escaped
    finally:
        live.stop()
