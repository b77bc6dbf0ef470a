"""The Channel base class: what a user subclasses to add a topic, with Phoenix.Channel's callback names.

A channel instance lives for one join of one topic on one socket. Callbacks are plain methods:

    class RoomChannel(Channel):
        def join(self, payload):            # -> ok(response) | error(response)
            return ok({})
        def handle_in(self, event, payload):  # -> ok(...) | error(...) | NoReply | Stop(...)
            self.broadcast(event, payload)
            return ok({})
        def handle_leave(self, reason):     # the channel is going away ("left", "closed", ...)
            ...

Raising from a callback crashes only this channel: the client gets `phx_error` for this join, exactly as
when a Phoenix channel process crashes. The rest of the socket keeps working.

Any callback may be `async def` (e.g. a join that loads state from a store): the socket awaits it and
handles its next message only after it returned, so one socket's messages stay in order; other sockets
are not delayed.

    class DocChannel(Channel):
        async def join(self, payload):
            self.doc = await load(self.topic)   # the join reply goes out when this returns
            return ok({"size": len(self.doc)})
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..protocol.messages import Push
from ..protocol.messages import Reply as ReplyMessage

if TYPE_CHECKING:
    from .socket import PhoenixSocket

__all__ = ["Channel", "Reply", "Stop", "NoReply", "ReplyRef", "ok", "error"]


@dataclass(frozen=True, slots=True)
class Reply:
    """Reply to the client's push (or join) with a status and a response."""

    status: str
    response: Any = field(default_factory=dict)


def ok(response: Any = None) -> Reply:
    return Reply("ok", {} if response is None else response)


def error(response: Any = None) -> Reply:
    return Reply("error", {} if response is None else response)


class _NoReply:
    __slots__ = ()

    def __repr__(self) -> str:
        return "NoReply"


NoReply = _NoReply()
"""Send nothing back now (the client's push times out unless the channel replies later via `reply`)."""


@dataclass(frozen=True, slots=True)
class Stop:
    """Stop the channel normally: an optional reply, then `phx_close`. The client will not rejoin."""

    reason: str = "normal"
    reply: Reply | None = None


@dataclass(frozen=True, slots=True)
class ReplyRef:
    """Captured by `Channel.reply_ref()` inside handle_in, to reply later (Phoenix's socket_ref)."""

    join_ref: Any
    ref: Any
    topic: str


class Channel:
    """Base class for a channel. Subclass it and register the class on a Router with a topic pattern."""

    def __init__(self, socket: PhoenixSocket, topic: str, join_ref: Any) -> None:
        self.socket = socket
        self.topic = topic
        self.join_ref = join_ref
        self.assigns: dict[str, Any] = {}
        self._current_ref: Any = None
        self.alive = True

    # ---- callbacks a subclass overrides -------------------------------------------------------------

    def join(self, payload: Any) -> Reply:
        return ok({})

    def after_join(self) -> None:
        """Runs right after the join reply went out; pushes made here follow it (Phoenix's :after_join)."""

    def handle_in(self, event: str, payload: Any) -> Reply | Stop | _NoReply:
        return error({"reason": "unknown event"})

    def handle_leave(self, reason: str) -> None:
        """The channel is going away: "left", "closed" (socket gone), "duplicate_join" or a Stop reason."""

    # ---- what a channel can do ----------------------------------------------------------------------

    @property
    def pubsub(self):
        return self.socket.endpoint.pubsub

    @property
    def presence(self):
        return self.socket.endpoint.presence

    def push(self, event: str, payload: Any) -> None:
        """Send an event to this client only (`[join_ref, null, topic, event, payload]`)."""
        _check_payload(payload, "push")
        self.socket.send(Push(self.join_ref, None, self.topic, event, payload))

    def broadcast(self, event: str, payload: Any) -> None:
        """Send an event to every subscriber of this topic, this client included."""
        _check_payload(payload, "broadcast")
        self.pubsub.broadcast(self.topic, event, payload)

    def broadcast_from(self, event: str, payload: Any) -> None:
        """Send an event to every subscriber of this topic except this client."""
        _check_payload(payload, "broadcast")
        self.pubsub.broadcast(self.topic, event, payload, exclude=self.socket)

    def reply_ref(self) -> ReplyRef:
        """Inside handle_in: a handle to reply to the current push later (return NoReply now)."""
        return ReplyRef(self.join_ref, self._current_ref, self.topic)

    def reply(self, ref: ReplyRef, reply: Reply) -> None:
        self.socket.send(ReplyMessage(ref.join_ref, ref.ref, ref.topic, reply.status, reply.response))

    def call_later(self, delay: float, callback: Callable[[], Any]) -> Any:
        """Run `callback` after `delay` seconds if this channel is still joined; a raise crashes it. Returns a
        handle for `cancel_later`.

        An async callback runs as its own task (it does not hold up the socket's messages)."""
        return self.socket.call_later(delay, lambda: self.socket.run_guarded(self, callback, in_order=False))

    def cancel_later(self, handle: Any) -> None:
        """Cancel a `call_later` that has not run yet (a no-op if it ran, or the transport cannot cancel)."""
        self.socket.cancel_later(handle)


def _check_payload(payload: Any, what: str) -> None:
    # Phoenix raises on a non-map push/broadcast payload; the channel crashes and the client sees phx_error.
    if not isinstance(payload, (dict, bytes)):
        raise TypeError(f"{what} payload must be a JSON object (map) or bytes, got {type(payload).__name__}")
