"""Topic patterns to channel classes, first match wins (Phoenix's `channel "room:*", RoomChannel`)."""

from __future__ import annotations

from typing import Any

from .base import Channel

__all__ = ["Router"]


class Router:
    """Route topics to Channel classes. A pattern is an exact topic or a prefix ending in `*`."""

    def __init__(self, routes: list[tuple[str, type[Channel]]] | None = None) -> None:
        self._exact: dict[str, type[Channel]] = {}
        self._prefixes: list[tuple[str, type[Channel]]] = []
        for pattern, channel in routes or []:
            self.add(pattern, channel)

    def add(self, pattern: str, channel: type[Channel]) -> None:
        if not (isinstance(channel, type) and issubclass(channel, Channel)):
            raise TypeError(f"route {pattern!r}: {channel!r} is not a Channel subclass")
        if "*" in pattern[:-1]:
            raise ValueError(f"route {pattern!r}: '*' is only allowed at the end, as in 'room:*'")
        if pattern.endswith("*"):
            self._prefixes.append((pattern[:-1], channel))
        else:
            self._exact[pattern] = channel

    def channel(self, pattern: str):
        """Decorator form: `@router.channel("echo:*") class EchoChannel(Channel): ...`."""

        def register(cls: type[Channel]) -> type[Channel]:
            self.add(pattern, cls)
            return cls

        return register

    def match(self, topic: Any) -> type[Channel] | None:
        if type(topic) is not str:
            return None
        found = self._exact.get(topic)
        if found is not None:
            return found
        for prefix, channel in self._prefixes:
            if topic.startswith(prefix):
                return channel
        return None

    def pattern_of(self, topic: Any) -> str:
        """The route pattern a topic matches ("-" for none): a bounded label for metrics."""
        if type(topic) is not str:
            return "-"
        if topic in self._exact:
            return topic
        for prefix, _ in self._prefixes:
            if topic.startswith(prefix):
                return prefix + "*"
        return "-"

    def patterns(self) -> list[str]:
        return list(self._exact) + [prefix + "*" for prefix, _ in self._prefixes]
