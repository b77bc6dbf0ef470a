"""The PubSub interface (Phoenix.PubSub's role). A Redis-backed implementation can sit behind it later."""

from __future__ import annotations

from typing import Any, Protocol

from ..protocol.serializers import Frame, Serializer

__all__ = ["PubSub", "Subscriber"]


class Subscriber(Protocol):
    """A connection that takes pre-encoded frames: fan-out encodes once per serializer, not per subscriber."""

    serializer: Serializer

    def write_frame(self, frame: Frame) -> None: ...


class PubSub(Protocol):
    def subscribe(self, topic: str, subscriber: Subscriber) -> None: ...

    def unsubscribe(self, topic: str, subscriber: Subscriber) -> None: ...

    def broadcast(self, topic: str, event: str, payload: Any, *, exclude: Subscriber | None = None) -> int:
        """Deliver to every subscriber of `topic` (but `exclude`); returns how many got it."""
        ...

    def subscriber_count(self, topic: str) -> int: ...
