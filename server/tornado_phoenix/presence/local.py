"""Single-process Presence: the pure tracker plus phx_ref generation and diff broadcasts over PubSub."""

from __future__ import annotations

import base64
import itertools
import os
import struct
import time
from collections.abc import Hashable
from typing import Any

from ..pubsub.base import PubSub
from .tracker import PresenceTracker

__all__ = ["LocalPresence", "new_phx_ref"]

_node_hash = int.from_bytes(os.urandom(2), "big")
_unique = itertools.count()


def new_phx_ref() -> str:
    """16 URL-safe base64 characters of 12 bytes: ns timestamp, node hash, counter (phoenix_pubsub's layout)."""
    raw = struct.pack(">QHH", time.time_ns() & (2**64 - 1), _node_hash, next(_unique) & 0xFFFF)
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


class LocalPresence:
    def __init__(self, pubsub: PubSub) -> None:
        self.pubsub = pubsub
        self.tracker = PresenceTracker()

    def track(self, owner: Hashable, topic: str, key: str, meta: dict[str, Any]) -> dict[str, Any]:
        stored = {**meta, "phx_ref": new_phx_ref()}
        diff = self.tracker.track(owner, topic, key, stored)
        self.pubsub.broadcast(topic, "presence_diff", diff)
        return stored

    def untrack(self, owner: Hashable, *, broadcast: bool = True) -> None:
        diffs = self.tracker.untrack(owner)
        if broadcast:
            for topic, diff in diffs:
                self.pubsub.broadcast(topic, "presence_diff", diff)

    def list(self, topic: str) -> dict[str, dict[str, list[dict[str, Any]]]]:
        return self.tracker.list(topic)
