"""One client connection's Phoenix state: the join table and the dispatch of every decoded message.

Mirrors lib/phoenix/socket.ex (handle_in clauses) and channel/server.ex (join, reply, crash, close) of
Phoenix 1.7.24. It knows nothing about Tornado: the transport hands it decoded Messages and gives it a
`Transport` to send encoded frames on, so the same state machine serves WebSocket and long-poll and runs
in unit tests without sockets.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

from ..protocol.errors import EncodeError
from ..protocol.messages import (
    HEARTBEAT,
    PHOENIX_TOPIC,
    PHX_CLOSE,
    PHX_ERROR,
    PHX_JOIN,
    PHX_LEAVE,
    Message,
    Outgoing,
    Push,
)
from ..protocol.messages import (
    Reply as ReplyMessage,
)
from ..protocol.serializers import Frame, Serializer
from .base import Channel, Reply, Stop, _NoReply

if TYPE_CHECKING:
    from ..endpoint import Endpoint

__all__ = ["PhoenixSocket", "Transport"]

log = logging.getLogger("tornado_phoenix.socket")

_UNMATCHED = {"reason": "unmatched topic"}
_connection_ids = itertools.count(1)


class Transport(Protocol):
    """What a PhoenixSocket needs from the connection under it.

    Optional, used by the `fault:*` channel when present (the WebSocket transport has both):
    `shutdown(code, reason)` closes the connection from the server side with that close code, and
    `silence(seconds)` drops every frame in both directions for that long without closing, and
    `cancel_later(handle)` cancels a `call_later` that has not run.
    """

    serializer: Serializer

    def send(self, frame: Frame) -> None: ...

    def call_later(self, delay: float, callback: Callable[[], Any]) -> Any: ...


class PhoenixSocket:
    """The join table of one connection and the rules of Phoenix.Socket for every incoming message."""

    __slots__ = ("endpoint", "transport", "serializer", "params", "assigns", "id", "channels", "peer")

    def __init__(self, endpoint: Endpoint, transport: Transport, params: dict[str, Any], peer: str = "") -> None:
        self.endpoint = endpoint
        self.transport = transport
        self.serializer = transport.serializer
        self.params = params
        self.assigns: dict[str, Any] = {}
        self.id = next(_connection_ids)
        self.channels: dict[str, Channel] = {}
        self.peer = peer

    # ---- sending --------------------------------------------------------------------------------------

    def send(self, message: Outgoing) -> None:
        self.transport.send(self.serializer.encode(message))

    def write_frame(self, frame: Frame) -> None:
        """PubSub fan-out entry point: the frame is already encoded for this socket's serializer."""
        self.transport.send(frame)

    def call_later(self, delay: float, callback: Callable[[], Any]) -> Any:
        return self.transport.call_later(delay, callback)

    def cancel_later(self, handle: Any) -> None:
        cancel = getattr(self.transport, "cancel_later", None)  # optional Transport power
        if cancel is not None and handle is not None:
            cancel(handle)

    def _reply(self, join_ref: Any, message: Message, status: str, response: Any) -> None:
        self.send(ReplyMessage(join_ref, message.ref, message.topic, status, response))

    # ---- receiving ------------------------------------------------------------------------------------

    def handle_message(self, message: Message) -> None:
        """Apply one decoded client message. Channel errors never escape; protocol errors are the caller's."""
        topic = message.topic
        event = message.event
        if topic == PHOENIX_TOPIC and event == HEARTBEAT:
            self._reply(None, message, "ok", {})
            return
        if event == PHX_JOIN:
            self._join(message)
            return
        channel = self.channels.get(topic) if type(topic) is str else None
        if channel is None:
            if event == PHX_LEAVE:
                # phoenix.js leaves after a join timeout; Phoenix acknowledges and sends no phx_close.
                self._reply(message.join_ref, message, "ok", {})
            else:
                self._reply(None, message, "error", _UNMATCHED)
        elif event == PHX_LEAVE:
            # 1.7.24 only honours a leave that names the current join (a null join_ref is a mismatch).
            if message.join_ref == channel.join_ref and type(message.join_ref) is type(channel.join_ref):
                self._leave(channel, message)
        else:
            self._handle_in(channel, message)

    def _join(self, message: Message) -> None:
        topic = message.topic
        previous = self.channels.get(topic) if type(topic) is str else None
        if previous is not None:
            # Duplicate join: the old instance goes first, its phx_close follows the new join's reply.
            self._remove(previous, "duplicate_join")
        channel_class = self.endpoint.router.match(topic)
        if channel_class is None:
            log.warning("conn=%s join refused topic=%r reason=unmatched topic", self.id, topic)
            self._reply(None, message, "error", _UNMATCHED)
            return
        if len(self.channels) >= self.endpoint.settings.max_channels:
            log.warning("conn=%s join refused topic=%s reason=too many channels joined", self.id, topic)
            self._reply(message.join_ref, message, "error", {"reason": "too many channels joined"})
            return
        channel = channel_class(self, topic, message.join_ref)
        try:
            result = channel.join(message.payload)
            if not isinstance(result, Reply):
                raise TypeError(f"{channel_class.__name__}.join must return ok(...) or error(...), got {result!r}")
        except Exception:
            log.exception("conn=%s join crashed topic=%s channel=%s", self.id, topic, channel_class.__name__)
            channel.alive = False
            self._reply(message.join_ref, message, "error", {"reason": "join crashed"})
        else:
            if result.status == "ok":
                self.channels[topic] = channel
                self.endpoint.channel_joined()
                self.endpoint.pubsub.subscribe(topic, self)
            else:
                channel.alive = False
            log.info(
                "conn=%s join topic=%s channel=%s join_ref=%s status=%s",
                self.id, topic, channel_class.__name__, message.join_ref, result.status,
            )
            try:
                self._reply(message.join_ref, message, result.status, result.response)
            except EncodeError:
                self._crash(channel, "join reply could not be encoded")
            else:
                # Phoenix 1.7.24: the old join's phx_close comes right after the new join's reply, before
                # anything the new join's after_join sends (presence_diff, presence_state).
                if previous is not None:
                    self.send(Push(previous.join_ref, previous.join_ref, topic, PHX_CLOSE, {}))
                    previous = None
                if channel.alive:
                    self.run_guarded(channel, channel.after_join)
        if previous is not None:
            self.send(Push(previous.join_ref, previous.join_ref, topic, PHX_CLOSE, {}))

    def _leave(self, channel: Channel, message: Message) -> None:
        join_ref = channel.join_ref
        self._reply(join_ref, message, "ok", {})
        log.info("conn=%s leave topic=%s join_ref=%s", self.id, channel.topic, join_ref)
        self.send(Push(join_ref, join_ref, channel.topic, PHX_CLOSE, {}))
        self._remove(channel, "left")

    def _handle_in(self, channel: Channel, message: Message) -> None:
        channel._current_ref = message.ref
        try:
            result = channel.handle_in(message.event, message.payload)
            if isinstance(result, Reply):
                self._reply(channel.join_ref, message, result.status, result.response)
            elif isinstance(result, Stop):
                if result.reply is not None:
                    self._reply(channel.join_ref, message, result.reply.status, result.reply.response)
                self.stop_channel(channel, result.reason)
            elif not isinstance(result, _NoReply):
                raise TypeError(
                    f"{type(channel).__name__}.handle_in must return ok(...), error(...), NoReply or Stop(...), "
                    f"got {result!r}"
                )
        except Exception:
            log.exception("conn=%s channel crashed topic=%s event=%r", self.id, channel.topic, message.event)
            self._crash(channel, "handle_in raised")
        finally:
            channel._current_ref = None

    # ---- channel lifecycle ----------------------------------------------------------------------------

    def run_guarded(self, channel: Channel, callback: Callable[[], Any]) -> None:
        """Run channel code outside handle_in (after_join, timers); a raise crashes only that channel."""
        if not channel.alive:
            return
        try:
            callback()
        except Exception:
            log.exception("conn=%s channel crashed topic=%s in %s", self.id, channel.topic, callback)
            self._crash(channel, "callback raised")

    def stop_channel(self, channel: Channel, reason: str = "normal") -> None:
        """Normal stop from the server side: phx_close for this join; the client does not rejoin."""
        if not channel.alive:
            return
        self.send(Push(channel.join_ref, channel.join_ref, channel.topic, PHX_CLOSE, {}))
        log.info("conn=%s channel stopped topic=%s reason=%s", self.id, channel.topic, reason)
        self._remove(channel, reason)

    def _crash(self, channel: Channel, why: str) -> None:
        if not channel.alive:
            return
        channel.alive = False
        self._unregister(channel)
        self.endpoint.presence.untrack(channel)
        log.warning("conn=%s phx_error topic=%s join_ref=%s reason=%s", self.id, channel.topic, channel.join_ref, why)
        self.send(Push(channel.join_ref, channel.join_ref, channel.topic, PHX_ERROR, {}))

    def _unregister(self, channel: Channel) -> None:
        """Drop the channel from the join table and its topic's subscribers, if it is still the current one."""
        if self.channels.get(channel.topic) is channel:
            del self.channels[channel.topic]
            self.endpoint.channel_left()
            self.endpoint.pubsub.unsubscribe(channel.topic, self)

    def _remove(self, channel: Channel, reason: str) -> None:
        """Take a channel out of the table and let it clean up; sends nothing itself."""
        self._unregister(channel)
        if not channel.alive:
            return
        try:
            channel.handle_leave(reason)
        except Exception:
            log.exception("conn=%s handle_leave raised topic=%s", self.id, channel.topic)
        finally:
            channel.alive = False
            # A shutting-down server closes every socket with 1001: a leave diff per departing member would
            # be n broadcasts to n members (O(n^2) frames) that nobody stays to read.
            self.endpoint.presence.untrack(channel, broadcast=not self.endpoint.draining)

    def terminate(self, reason: str = "closed") -> None:
        """The connection is gone: every channel leaves without frames; presence leaves reach the others."""
        for channel in list(self.channels.values()):
            self._remove(channel, reason)
