"""The topic of a V2 binary frame, used to crash the channel that tried to send one over long-poll."""

from __future__ import annotations

from tornado_phoenix.protocol.messages import Broadcast, Push, Reply
from tornado_phoenix.protocol.serializers import V2
from tornado_phoenix.transport.longpoll import binary_frame_topic


def test_topic_of_each_binary_kind():
    assert binary_frame_topic(V2.encode(Push("12", None, "room:é", "ev", b"\x00")).data) == "room:é"
    assert binary_frame_topic(V2.encode(Reply("12", "345", "room:b", "ok", b"\x00")).data) == "room:b"
    assert binary_frame_topic(V2.encode_broadcast(Broadcast("room:c", "ev", b"\x00")).data) == "room:c"


def test_garbage_has_no_topic():
    for data in (b"", b"\x07abc", b"\x00\xff", b"\x02\x05\x01\xff\xfe"):
        assert binary_frame_topic(data) is None
