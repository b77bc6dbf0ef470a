"""Serializers V1, V2 text and V2 binary, both directions: exact bytes, round trips, malformed input."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st
from tornado_phoenix.protocol.errors import CloseCode, DecodeError, EncodeError
from tornado_phoenix.protocol.messages import Broadcast, Message, Push, Reply
from tornado_phoenix.protocol.serializers import V1, V2, negotiate

refs = st.one_of(st.none(), st.text(max_size=20), st.integers(-(2**63), 2**63 - 1))
keys = st.text(max_size=10)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**200), 2**200) | st.text()
    | st.floats(allow_nan=False, allow_infinity=False),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(keys, children, max_size=4),
    max_leaves=12,
)
short = st.text(max_size=40).filter(lambda s: len(s.encode()) <= 255)


# ---- V2 text --------------------------------------------------------------------------------------------

def test_v2_decode_takes_first_five_elements():
    assert V2.decode_text('["1","2","t","e",{"a":1},"extra"]') == Message("1", "2", "t", "e", {"a": 1})


@pytest.mark.parametrize("text", ["", "nope", "42", '"s"', "{}", '["1","2","t","e"]', "[1,2,3", "null", "NaN"])
def test_v2_decode_rejects_with_1011(text):
    with pytest.raises(DecodeError) as err:
        V2.decode_text(text)
    assert err.value.close_code == CloseCode.INTERNAL_ERROR


def test_v2_encode_exact_frames():
    assert V2.encode(Reply(None, "1", "phoenix", "ok", {})).data == \
        b'[null,"1","phoenix","phx_reply",{"response":{},"status":"ok"}]'
    assert V2.encode(Push("16", None, "echo:1", "hello", {"x": [1, 2]})).data == b'["16",null,"echo:1","hello",{"x":[1,2]}]'
    assert V2.encode(Broadcast("room:a", "shout", {"b": 1, "a": 2})).data == b'[null,null,"room:a","shout",{"a":2,"b":1}]'
    assert V2.encode(Push("3", "3", "t", "phx_close", {})).data == b'["3","3","t","phx_close",{}]'


@given(refs, refs, st.text(max_size=30), st.text(max_size=30), json_values)
def test_v2_text_round_trip(join_ref, ref, topic, event, payload):
    frame = V2.encode(Push(join_ref, ref, topic, event, payload))
    assert not frame.binary
    assert V2.decode_text(frame.data.decode()) == Message(join_ref, ref, topic, event, payload)


@given(json_values)
def test_reply_response_round_trips(response):
    frame = V2.encode(Reply("1", 2, "t", "ok", response))
    assert json.loads(frame.data) == ["1", 2, "t", "phx_reply", {"response": response, "status": "ok"}]


# ---- V2 binary ------------------------------------------------------------------------------------------

def test_v2_binary_exact_layouts():
    message = V2.decode_binary(bytes([0, 1, 1, 6, 4]) + b"12echo:bblob" + bytes([0, 1, 255]))
    assert message == Message("1", "2", "echo:b", "blob", b"\x00\x01\xff")
    assert V2.encode(Push("1", None, "echo:b", "blob", b"\x00\x01\xff")).data == \
        bytes([0, 1, 6, 4]) + b"1echo:bblob\x00\x01\xff"
    assert V2.encode(Reply("1", "2", "echo:b", "ok", b"\x00\x01\xff")).data == \
        bytes([1, 1, 1, 6, 2]) + b"12echo:bok\x00\x01\xff"
    assert V2.encode(Broadcast("t", "e", b"zz")).data == bytes([2, 1, 1]) + b"tezz"
    assert V2.encode(Reply(None, None, "t", "ok", b"")).data == bytes([1, 0, 0, 1, 2]) + b"tok"


@given(short, short, short, short, st.binary(max_size=300))
def test_v2_binary_push_round_trip(join_ref, ref, topic, event, data):
    raw = bytes([0, *(len(f.encode()) for f in (join_ref, ref, topic, event))])
    raw += b"".join(f.encode() for f in (join_ref, ref, topic, event)) + data
    assert V2.decode_binary(raw) == Message(join_ref, ref, topic, event, data)
    out = V2.encode(Push(join_ref, None, topic, event, data))
    assert out.binary and out.data.endswith(data)


@pytest.mark.parametrize("raw", [b"", bytes([0, 1]), bytes([7, 0, 0, 0, 0]), bytes([1, 0, 0, 0, 0]),
                                 bytes([2, 0, 0, 0, 0]), bytes([0, 1, 1, 200, 4]) + b"12xx", bytes([0, 1, 0, 0, 0]) + b"\xff"])
def test_v2_binary_malformed(raw):
    with pytest.raises(DecodeError):
        V2.decode_binary(raw)


@given(st.binary(max_size=64))
def test_v2_binary_never_raises_anything_but_decode_error(raw):
    try:
        V2.decode_binary(raw)
    except DecodeError:
        pass


@given(st.text(max_size=64))
def test_text_decoders_never_raise_anything_but_decode_error(text):
    for serializer in (V1, V2):
        try:
            serializer.decode_text(text)
        except DecodeError:
            pass


def test_binary_field_over_255_bytes_refuses_to_encode():  # checklist 60
    with pytest.raises(EncodeError):
        V2.encode(Push("1", None, "t" * 256, "e", b"x"))
    with pytest.raises(EncodeError):
        V2.encode(Broadcast("t", "é" * 128, b"x"))


# ---- V1 -------------------------------------------------------------------------------------------------

def test_v1_exact_frames():
    assert V1.encode(Reply(None, "1", "phoenix", "ok", {})).data == \
        b'{"event":"phx_reply","payload":{"response":{},"status":"ok"},"ref":"1","topic":"phoenix"}'
    assert V1.encode(Broadcast("room:a", "shout", {"z": 1})).data == \
        b'{"event":"shout","payload":{"z":1},"ref":null,"topic":"room:a"}'
    assert V1.encode(Push("3", None, "echo:1", "ping", {})).data == \
        b'{"event":"ping","payload":{},"ref":null,"topic":"echo:1"}'
    assert V1.encode(Push("3", "3", "echo:1", "phx_close", {})).data == \
        b'{"event":"phx_close","payload":{},"ref":"3","topic":"echo:1"}'


def test_v1_decode():
    assert V1.decode_text('{"topic":"t","event":"e","payload":{},"ref":"1"}') == Message(None, "1", "t", "e", {})
    assert V1.decode_text('{"topic":"t","event":"e","payload":1,"ref":null,"join_ref":"j"}') == \
        Message("j", None, "t", "e", 1)


@pytest.mark.parametrize("text", ['{"topic":"t","event":"e","payload":{}}', '[null,"1","t","e",{}]', "x", "1"])
def test_v1_malformed(text):
    with pytest.raises(DecodeError):
        V1.decode_text(text)


def test_v1_binary_is_json_decoded_like_phoenix():
    assert V1.decode_binary(b'{"topic":"t","event":"e","payload":{},"ref":"1"}').ref == "1"
    with pytest.raises(DecodeError):
        V1.decode_binary(b"\x00\x01\xff")


def test_v1_cannot_carry_binary():
    with pytest.raises(EncodeError):
        V1.encode(Push("1", None, "t", "e", b"x"))


@given(refs, st.text(max_size=20), st.text(max_size=20), json_values)
def test_v1_round_trip(ref, topic, event, payload):
    text = json.dumps({"topic": topic, "event": event, "payload": payload, "ref": ref})
    assert V1.decode_text(text) == Message(None, ref, topic, event, payload)
    assert json.loads(V1.encode(Push(None, ref, topic, event, payload)).data) == \
        {"event": event, "payload": payload, "ref": ref, "topic": topic}


# ---- negotiation ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("vsn,expected", [(None, V1), ("1.0.0", V1), ("2.0.0", V2), ("2.0.1", V2),
                                          ("2.1.0", None), ("3.0.0", None), ("abc", None), ("2.0", None)])
def test_negotiate(vsn, expected):
    assert negotiate(vsn) is expected
