"""Pure parts of the wire hardening (issue 10): the log helper, the Tornado pin, close codes, request heads."""

from __future__ import annotations

import io
import json
import logging
import struct

import tornado
from tornado.httputil import HTTPHeaders
from tornado_phoenix import logs
from tornado_phoenix.logs import JsonFormatter, TextFormatter, Throttle, esc
from tornado_phoenix.protocol.serializers import negotiate
from tornado_phoenix.transport.handshake import origin_host, upgrade_problem
from tornado_phoenix.transport.tornado_compat import TORNADO_VERSION, close_reply_code, head_problem


def test_tornado_is_the_release_the_frame_parser_was_copied_from():
    # tornado_compat replaces WebSocketProtocol13._receive_frame and reaches into HTTP1Connection and IOStream
    # internals of this release; re-read those (and update TORNADO_VERSION) before moving the pin.
    assert tornado.version == TORNADO_VERSION


def test_esc_keeps_plain_tokens_bare_and_quotes_the_rest():
    assert str(esc("echo:room-1")) == "echo:room-1"
    assert str(esc("a b")) == "'a b'"
    assert str(esc("x\nFAKE\r\x1b[31m\u2028")) == "'x\\nFAKE\\r\\x1b[31m\\u2028'"
    assert str(esc(None)) == "None" and str(esc(18)) == "18"
    assert str(esc(b"\xff\x00")) == "b'\\xff\\x00'"


def test_esc_truncates_with_a_marker():
    text = str(esc("y" * 500))
    assert text == "y" * 200 + "…(+300 chars)"
    assert str(esc(["x"] * 300)).endswith("chars)")


def _record(msg, *args, name="tornado_phoenix.socket", exc_info=None):
    return logging.LogRecord(name, logging.WARNING, __file__, 1, msg, args, exc_info)


def test_text_formatter_escapes_control_characters_and_indents_tracebacks():
    formatter = TextFormatter()
    line = formatter.format(_record("conn=%s join topic=%s", 7, "raw\nline"))  # an unescaped argument
    assert "\n" not in line and "raw\\nline" in line
    try:
        raise ValueError("bad\n2026-12-01 FORGED")
    except ValueError:
        import sys
        out = formatter.format(_record("crash", exc_info=sys.exc_info()))
    assert all(part.startswith("  ") for part in out.splitlines()[1:])


def test_library_lines_are_cut():
    line = TextFormatter().format(_record("400 GET %s", "/x?" + "a" * 5000, name="tornado.general"))
    assert len(line) < 800 and line.endswith("chars)")


def test_json_formatter_fields():
    line = JsonFormatter().format(_record("conn=%s close code=%d reason=%s topic=%s", 7, 1002, esc("RSV bits"),
                                          esc("t\u2028x")))
    assert "\n" not in line and "\u2028" not in line
    record = json.loads(line)
    assert record["event"] == "close" and record["conn"] == 7 and record["code"] == 1002
    assert record["reason"] == "RSV bits" and record["topic"] == "t\u2028x" and record["level"] == "warning"


def test_throttle_counts_what_it_suppresses():
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    throttle = Throttle(window=0.0, burst=2)
    handler.addFilter(throttle)
    logger = logging.getLogger("tornado_phoenix.protocol.unit-test")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        throttle.window = 3600
        for n in range(10):
            logger.warning("conn=%s close code=1002", n)
        assert stream.getvalue().count("close code=1002") == 2
        throttle.window = 0
        throttle.flush(float("inf"))
        assert "(and 8 more like this in the last 0 s)" in stream.getvalue()
    finally:
        logger.removeHandler(handler)


def test_configure_off_silences_protocol_errors():
    stream = io.StringIO()
    logs.configure("info", "text", "off", stream=stream)
    try:
        logs.protocol_log.warning("conn=1 close code=1002")
        logging.getLogger("tornado_phoenix.transport").info("conn=1 connect")
        assert "close code" not in stream.getvalue() and "connect" in stream.getvalue()
    finally:
        logs.configure("info", "text", "short", stream=stream)
        logging.getLogger().handlers[:] = []


def test_close_codes_like_bandit():
    for code in (1000, 1001, 1003, 1007, 1011, 3000, 4999):
        assert close_reply_code(struct.pack("!H", code))[0] == 1000
    for code in (999, 1004, 1005, 1006, 1012, 1015, 2999, 5000, 65535):
        assert close_reply_code(struct.pack("!H", code))[0] == 1002
    assert close_reply_code(b"")[0] == 1000
    assert close_reply_code(b"\x03")[0] == 1002
    assert close_reply_code(b"\x03\xe8\xff")[0] == 1002


def test_vsn_must_be_ascii():
    assert negotiate("².0.0") is None and negotiate("２.0.0") is None
    assert negotiate("2.0.0") is not None and negotiate(None) is not None


def test_origin_host_never_raises():
    assert origin_host("http://[::1") is None
    assert origin_host("https://Example.com:443") == "example.com"


def test_upgrade_problem_messages_match_websock_adapter():
    headers = HTTPHeaders({"Host": "x", "Upgrade": "websocket", "Connection": "Upgrade", "Sec-WebSocket-Key": "k",
                           "Sec-WebSocket-Version": "13"})
    assert upgrade_problem("GET", "HTTP/1.1", headers) is None
    assert upgrade_problem("GET", "HTTP/1.0", headers) == "HTTP version HTTP/1.0 unsupported"
    headers["Sec-WebSocket-Version"] = "8"
    assert upgrade_problem("GET", "HTTP/1.1", headers) == "'sec-websocket-version' header must equal '13', got [\"8\"]"


def test_head_problem_limits():
    assert head_problem(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", True) is None
    assert head_problem(b"GET /" + b"a" * 10_001, False)[0] == 414
    assert head_problem(b"GET / HTTP/1.1\r\nX: " + b"b" * 10_001, False)[0] == 431
    many = b"GET / HTTP/1.1\r\n" + b"".join(b"H%d: 1\r\n" % n for n in range(51)) + b"\r\n"
    assert head_problem(many, True)[0] == 431
    chunked = b"GET / HTTP/1.1\r\nUpgrade: websocket\r\nTransfer-Encoding: chunked\r\n\r\n"
    assert head_problem(chunked, True)[0] == 400
    assert head_problem(b"GET / HTTP/1.1\r\nUpgrade: websocket\r\nContent-Length: 0\r\n\r\n", True) is None
    assert head_problem(b"POST / HTTP/1.1\r\nUpgrade: h2c\r\nContent-Length: 3\r\n\r\n", True) is None


def test_throttle_key_ignores_varying_reasons_but_not_codes():
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(Throttle(window=3600, burst=1))
    logger = logging.getLogger("tornado_phoenix.protocol.unit-key")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        for n in range(5):  # a client varying the reason text does not get past the limit
            logger.warning("conn=%s close code=%d reason=%s", n, 1011, esc(f"invalid JSON at column {n}"))
        logger.warning("conn=%s close code=%d reason=%s", 9, 1002, esc("RSV bits"))  # another code: own window
        lines = stream.getvalue().splitlines()
        assert len(lines) == 2 and "code=1011" in lines[0] and "code=1002" in lines[1]
    finally:
        logger.removeHandler(handler)
