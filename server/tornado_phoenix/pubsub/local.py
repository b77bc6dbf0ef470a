"""In-process pub/sub with Phoenix's fastlane: a broadcast is encoded once per serializer, then the same
frame object (and its cached wire bytes) goes to every subscriber."""

from __future__ import annotations

from typing import Any

from ..protocol.messages import Broadcast
from ..protocol.serializers import Frame
from .base import Subscriber

__all__ = ["LocalPubSub"]


class LocalPubSub:
    def __init__(self) -> None:
        # dict, not set: insertion order makes delivery order stable and tests deterministic.
        self._topics: dict[str, dict[Subscriber, None]] = {}
        self.metrics: Any = None  # set by make_app: a metrics.Metrics (counted per broadcast, never per recipient)

    def subscribe(self, topic: str, subscriber: Subscriber) -> None:
        self._topics.setdefault(topic, {})[subscriber] = None

    def unsubscribe(self, topic: str, subscriber: Subscriber) -> None:
        subscribers = self._topics.get(topic)
        if subscribers is not None:
            subscribers.pop(subscriber, None)
            if not subscribers:
                del self._topics[topic]

    def subscriber_count(self, topic: str) -> int:
        return len(self._topics.get(topic, ()))

    def broadcast(self, topic: str, event: str, payload: Any, *, exclude: Subscriber | None = None) -> int:
        subscribers = self._topics.get(topic)
        if not subscribers:
            return 0
        message = Broadcast(topic, event, payload)
        frames: dict[Any, Frame] = {}
        delivered = 0
        # Copy: a write may close a slow consumer, which unsubscribes it while we iterate.
        for subscriber in list(subscribers):
            if subscriber is exclude:
                continue
            serializer = subscriber.serializer
            frame = frames.get(serializer)
            if frame is None:
                frame = frames[serializer] = serializer.encode_broadcast(message)
            subscriber.write_frame(frame)
            delivered += 1
        metrics = self.metrics
        if metrics is not None:
            # bytes: exact with one serializer in the room (the usual case), else counted at the last frame's size
            metrics.broadcast(delivered, len(frame.data) if delivered else 0)
        return delivered
