"""The supabase serializers: kind 3 in, kind 4 out, text on 1.0.0, never a Phoenix binary kind 0/1/2."""

from __future__ import annotations

import struct

import pytest
from tornado_phoenix.protocol.errors import DecodeError, EncodeError
from tornado_phoenix.protocol.messages import Broadcast, Push, Reply
from tornado_phoenix.supabase import SUPA_TEXT, SUPA_V1, SUPA_V2, verify_access_token


def kind3(topic: bytes, event: bytes, meta: bytes, enc: int, body: bytes) -> bytes:
    return struct.pack("7B", 3, 1, 1, len(topic), len(event), len(meta), enc) + b"1" + b"2" + topic + event + meta + body


def test_kind_3_json_and_raw():
    m = SUPA_V2.decode_binary(kind3(b"realtime:r", "é".encode(), b'{"persist":true}', 1, b'{"x":1}'))
    assert (m.join_ref, m.ref, m.topic, m.event) == ("1", "2", "realtime:r", "broadcast")
    assert m.payload == {"type": "broadcast", "event": "é", "payload": {"x": 1}, "meta": {"persist": True}}
    m = SUPA_V2.decode_binary(kind3(b"realtime:r", b"e", b"", 0, b"\x00\xff"))
    assert m.payload == {"type": "broadcast", "event": "e", "payload": b"\x00\xff"}


@pytest.mark.parametrize("data", [b"", b"\x00\x01\x01\x01\x01", b"\x03\x01", kind3(b"t", b"e", b"", 1, b"{")[:-3],
                                  kind3(b"t", b"e", b"", 1, b"{bad")])
def test_bad_binary_is_a_decode_error(data):
    with pytest.raises(DecodeError):
        SUPA_V2.decode_binary(data)


def test_kind_4_out_and_text_for_v1_and_long_poll():
    b = Broadcast("realtime:r", "broadcast", {"type": "broadcast", "event": "ev", "payload": {"a": 1}})
    frame = SUPA_V2.encode_broadcast(b)
    assert frame.binary and frame.data == b"\x04\x0a\x02\x00\x01realtime:rev{\"a\":1}"
    assert SUPA_V1.encode_broadcast(b).data == (
        b'{"event":"broadcast","payload":{"event":"ev","payload":{"a":1},"type":"broadcast"},"ref":null,'
        b'"topic":"realtime:r"}'
    )
    assert not SUPA_TEXT.encode_broadcast(b).binary
    raw = Broadcast("realtime:r", "broadcast", {"type": "broadcast", "event": "ev", "payload": b"\x01"})
    assert SUPA_V2.encode_broadcast(raw).data == b"\x04\x0a\x02\x00\x00realtime:rev\x01"


def test_never_phoenix_binary_kinds():
    with pytest.raises(EncodeError):
        SUPA_V2.encode(Push("1", None, "realtime:r", "x", b"bytes"))
    with pytest.raises(EncodeError):
        SUPA_V2.encode(Reply("1", "1", "realtime:r", "ok", b"bytes"))
    with pytest.raises(EncodeError):
        SUPA_V2.encode_broadcast(Broadcast("realtime:r", "other", b"bytes"))


def test_verify_access_token():
    import time

    import jwt

    secret = "s" * 40
    good = jwt.encode({"exp": int(time.time()) + 60}, secret, algorithm="HS256")
    old = jwt.encode({"exp": int(time.time()) - 60}, secret, algorithm="HS256")
    assert verify_access_token(good, secret) is None
    assert verify_access_token(old, secret).startswith("Token has expired")
    assert verify_access_token(good, "t" * 40).startswith("InvalidJWTToken")
    assert verify_access_token("anything", "") is None
