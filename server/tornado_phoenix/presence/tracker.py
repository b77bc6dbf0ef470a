"""Presence state for many topics, pure: no I/O, no clock (phx_refs are handed in).

Mirrors the data model of phoenix_pubsub's Tracker as Phoenix.Presence exposes it: per topic, per key, a
list of metas, each with a unique `phx_ref`.
"""

from __future__ import annotations

from collections.abc import Hashable
from typing import Any

__all__ = ["PresenceTracker"]


class PresenceTracker:
    def __init__(self) -> None:
        # topic -> owner -> (key, meta); dict order = join order, which is the order metas are listed in.
        self._topics: dict[str, dict[Hashable, tuple[str, dict[str, Any]]]] = {}
        self._owner_topics: dict[Hashable, set[str]] = {}

    def track(self, owner: Hashable, topic: str, key: str, meta: dict[str, Any]) -> dict[str, Any]:
        """Returns the `presence_diff` payload for this join."""
        self._topics.setdefault(topic, {})[owner] = (key, meta)
        self._owner_topics.setdefault(owner, set()).add(topic)
        return {"joins": {key: {"metas": [meta]}}, "leaves": {}}

    def untrack(self, owner: Hashable) -> list[tuple[str, dict[str, Any]]]:
        """Returns (topic, presence_diff payload) for every topic the owner was tracked on."""
        diffs = []
        for topic in sorted(self._owner_topics.pop(owner, ())):
            entries = self._topics.get(topic, {})
            key, meta = entries.pop(owner)
            if not entries:
                self._topics.pop(topic, None)
            diffs.append((topic, {"joins": {}, "leaves": {key: {"metas": [meta]}}}))
        return diffs

    def list(self, topic: str) -> dict[str, dict[str, list[dict[str, Any]]]]:
        state: dict[str, dict[str, list[dict[str, Any]]]] = {}
        for key, meta in self._topics.get(topic, {}).values():
            state.setdefault(key, {"metas": []})["metas"].append(meta)
        return state

    def topics(self) -> list[str]:
        return list(self._topics)

    def count(self, topic: str) -> int:
        return len(self._topics.get(topic, ()))
