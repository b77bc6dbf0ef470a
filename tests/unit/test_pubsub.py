"""LocalPubSub fan-out: one encode per serializer per broadcast, the same frame object to every subscriber."""

from __future__ import annotations

from tornado_phoenix.protocol.serializers import V1JsonSerializer, V2JsonSerializer
from tornado_phoenix.pubsub import LocalPubSub


class CountingV2(V2JsonSerializer):
    calls = 0

    def encode_broadcast(self, message):
        CountingV2.calls += 1
        return super().encode_broadcast(message)


class CountingV1(V1JsonSerializer):
    calls = 0

    def encode(self, message):
        CountingV1.calls += 1
        return super().encode(message)

    encode_broadcast = encode


class Subscriber:
    def __init__(self, serializer):
        self.serializer = serializer
        self.frames = []

    def write_frame(self, frame):
        self.frames.append(frame)


def test_broadcast_encodes_once_per_serializer():
    v2, v1 = CountingV2(), CountingV1()
    pubsub = LocalPubSub()
    v2_subs = [Subscriber(v2) for _ in range(50)]
    v1_subs = [Subscriber(v1) for _ in range(30)]
    for sub in v2_subs + v1_subs:
        pubsub.subscribe("t", sub)
    assert pubsub.broadcast("t", "shout", {"a": 1}) == 80
    assert (CountingV2.calls, CountingV1.calls) == (1, 1)
    assert len({id(sub.frames[0]) for sub in v2_subs}) == 1  # the very same Frame (and cached wire bytes)
    assert v2_subs[0].frames[0].data == b'[null,null,"t","shout",{"a":1}]'
    assert v1_subs[0].frames[0].data == b'{"event":"shout","payload":{"a":1},"ref":null,"topic":"t"}'


def test_exclude_and_unsubscribe():
    pubsub = LocalPubSub()
    a, b = Subscriber(V2JsonSerializer()), Subscriber(V2JsonSerializer())
    pubsub.subscribe("t", a)
    pubsub.subscribe("t", b)
    assert pubsub.broadcast("t", "e", {}, exclude=a) == 1 and not a.frames and len(b.frames) == 1
    pubsub.unsubscribe("t", a)
    pubsub.unsubscribe("t", b)
    assert pubsub.subscriber_count("t") == 0 and pubsub.broadcast("t", "e", {}) == 0
