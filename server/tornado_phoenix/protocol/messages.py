"""Phoenix message types: what a client sends (Message) and what the server sends (Push, Reply, Broadcast).

Mirrors lib/phoenix/socket/message.ex. Refs and join refs are opaque: they are echoed back with the JSON type
they arrived with, so they are typed `object`, not `str`. A payload is any JSON value, or `bytes` for a V2
binary frame.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = [
    "Message",
    "Push",
    "Reply",
    "Broadcast",
    "Outgoing",
    "PHOENIX_TOPIC",
    "HEARTBEAT",
    "PHX_JOIN",
    "PHX_LEAVE",
    "PHX_REPLY",
    "PHX_CLOSE",
    "PHX_ERROR",
]

PHOENIX_TOPIC = "phoenix"
HEARTBEAT = "heartbeat"
PHX_JOIN = "phx_join"
PHX_LEAVE = "phx_leave"
PHX_REPLY = "phx_reply"
PHX_CLOSE = "phx_close"
PHX_ERROR = "phx_error"


@dataclass(frozen=True, slots=True)
class Message:
    """A frame from the client, decoded."""

    join_ref: Any
    ref: Any
    topic: Any
    event: Any
    payload: Any


@dataclass(frozen=True, slots=True)
class Push:
    """A frame from the server to one socket. `ref` is None except on phx_close/phx_error (= join_ref)."""

    join_ref: Any
    ref: Any
    topic: str
    event: str
    payload: Any


@dataclass(frozen=True, slots=True)
class Reply:
    """The answer to one client Message, matched by the client on `ref`."""

    join_ref: Any
    ref: Any
    topic: Any
    status: str
    response: Any


@dataclass(frozen=True, slots=True)
class Broadcast:
    """A frame fanned out to every subscriber of a topic: join_ref and ref are always null."""

    topic: str
    event: str
    payload: Any


Outgoing = Push | Reply | Broadcast
