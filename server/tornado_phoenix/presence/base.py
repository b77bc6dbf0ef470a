"""The Presence interface; `LocalPresence` implements it for one process."""

from __future__ import annotations

from collections.abc import Hashable
from typing import Any, Protocol

__all__ = ["Presence"]


class Presence(Protocol):
    def track(self, owner: Hashable, topic: str, key: str, meta: dict[str, Any]) -> dict[str, Any]:
        """Add `meta` under `key` for `owner` (a channel); broadcasts the join diff; returns the stored meta."""
        ...

    def untrack(self, owner: Hashable, *, broadcast: bool = True) -> None:
        """Remove everything `owner` tracks; broadcasts the leave diffs (unless `broadcast` is False: the
        server is shutting down and every member is leaving). A no-op for unknown owners."""
        ...

    def list(self, topic: str) -> dict[str, dict[str, list[dict[str, Any]]]]:
        """The `presence_state` payload: key -> {"metas": [...]}."""
        ...
