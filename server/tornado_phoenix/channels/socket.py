"""One client connection's Phoenix state: the join table and the dispatch of every decoded message.

Mirrors lib/phoenix/socket.ex (handle_in clauses) and channel/server.ex (join, reply, crash, close) of
Phoenix 1.7.24. It knows nothing about Tornado: the transport hands it decoded Messages and gives it a
`Transport` to send encoded frames on, so the same state machine serves WebSocket and long-poll and runs
in unit tests without sockets.

Channel callbacks may be coroutines (`async def join/handle_in/handle_leave/after_join`). One socket's
messages are still handled strictly in order: while a callback is awaited, later messages of that socket
wait in its inbox (other sockets are not delayed), and the reply goes out when the coroutine returns:

    client  [ "1","1","room:a","phx_join",{} ]      -> async join awaits the store
    client  [ "1","2","room:a","update",{...} ]     -> queued until the join's reply is sent
    server  [ "1","1","room:a","phx_reply",{"status":"ok",...} ]
    server  [ "1","2","room:a","phx_reply",{"status":"ok",...} ]

If the connection goes away while a callback is awaited, its result is dropped and the channel is cleaned
up (handle_leave("closed")) as if it had been joined.
"""

from __future__ import annotations

import asyncio
import inspect
import itertools
import logging
from collections import deque
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, Protocol

from ..auth import UNAUTHORIZED
from ..logs import esc
from ..protocol.errors import CloseCode, EncodeError, ProtocolError
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
    Optional `reject(code, reason)`: close the connection for a protocol error raised while handling a
    message that had been queued behind an awaited callback (the transport's own handler is not on the
    stack then).
    """

    serializer: Serializer

    def send(self, frame: Frame) -> None: ...

    def call_later(self, delay: float, callback: Callable[[], Any]) -> Any: ...


class PhoenixSocket:
    """The join table of one connection and the rules of Phoenix.Socket for every incoming message."""

    __slots__ = ("endpoint", "transport", "serializer", "params", "assigns", "id", "channels", "peer",
                 "closed", "_pending", "_inbox")

    def __init__(self, endpoint: Endpoint, transport: Transport, params: dict[str, Any], peer: str = "") -> None:
        self.endpoint = endpoint
        self.transport = transport
        self.serializer = transport.serializer
        self.params = params
        self.assigns: dict[str, Any] = {}
        self.id = next(_connection_ids)
        self.channels: dict[str, Channel] = {}
        self.peer = peer
        self.closed = False
        self._pending = 0  # awaited channel callbacks in flight; messages queue in _inbox meanwhile
        self._inbox: deque[Message] | None = None

    # ---- sending --------------------------------------------------------------------------------------

    def send(self, message: Outgoing) -> None:
        frame = self.serializer.encode(message)
        metrics = self.endpoint.metrics
        metrics.messages_out += 1
        metrics.bytes_out += len(frame.data)
        self.transport.send(frame)

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
        """Apply one decoded client message. Channel errors never escape; protocol errors are the caller's.

        While an awaited channel callback is in flight, the message waits its turn in the inbox.
        """
        if self._pending:
            if self._inbox is None:
                self._inbox = deque()
            self._inbox.append(message)
            return
        self._dispatch(message)

    def _dispatch(self, message: Message) -> None:
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
        endpoint = self.endpoint
        channel_class = endpoint.router.match(topic)
        joined = endpoint.metrics.joined
        if channel_class is None:
            log.warning("conn=%s join refused topic=%s reason=unmatched topic", self.id, esc(topic))
            joined("-", "unmatched")
            self._reply(None, message, "error", _UNMATCHED)
            return
        pattern = endpoint.router.pattern_of(topic)
        if not endpoint.auth.may_join(self.assigns, topic):
            log.warning("conn=%s join refused topic=%s reason=unauthorized (token's channels/faults claims)",
                        self.id, esc(topic))
            joined(pattern, "unauthorized")
            self._reply(message.join_ref, message, "error", UNAUTHORIZED)
            self._close_previous(previous)
            return
        if len(self.channels) >= endpoint.settings.max_channels:
            log.warning("conn=%s join refused topic=%s reason=too many channels joined", self.id, esc(topic))
            joined(pattern, "too_many_channels")
            self._reply(message.join_ref, message, "error", {"reason": "too many channels joined"})
            return
        channel = channel_class(self, topic, message.join_ref)
        try:
            result = channel.join(message.payload)
        except Exception as exc:
            self._join_done(channel, message, previous, None, exc)
            return
        if inspect.isawaitable(result):
            self._await(result, lambda res, exc: self._join_done(channel, message, previous, res, exc))
        else:
            self._join_done(channel, message, previous, result, None)

    def _join_done(
        self, channel: Channel, message: Message, previous: Channel | None, result: Any, exc: BaseException | None
    ) -> None:
        topic = channel.topic
        name = type(channel).__name__
        if exc is None and not isinstance(result, Reply):
            exc = TypeError(f"{name}.join must return ok(...) or error(...), got {result!r}")
        pattern = self.endpoint.router.pattern_of(topic)
        if exc is not None:
            log.error("conn=%s join crashed topic=%s channel=%s", self.id, esc(topic), name,
                      exc_info=(type(exc), exc, exc.__traceback__))
            self.endpoint.metrics.joined(pattern, "crashed")
            channel.alive = False
            if not self.closed:
                self._reply(message.join_ref, message, "error", {"reason": "join crashed"})
                self._close_previous(previous)
            return
        if self.closed:
            # The connection went away while an async join was awaited: nothing to send, but a join that
            # succeeded may have taken resources (presence, a room member slot): let the channel release them.
            if result.status == "ok":
                self._remove(channel, "closed")
            channel.alive = False
            return
        if result.status == "ok":
            self.channels[topic] = channel
            self.endpoint.channel_joined()
            self.endpoint.pubsub.subscribe(topic, self)
        else:
            channel.alive = False
        self.endpoint.metrics.joined(pattern, result.status)
        log.info(
            "conn=%s join topic=%s channel=%s join_ref=%s status=%s",
            self.id, esc(topic), name, esc(message.join_ref), result.status,
        )
        try:
            self._reply(message.join_ref, message, result.status, result.response)
        except EncodeError:
            self._close_previous(previous)
            self._crash(channel, "join reply could not be encoded")
            return
        # Phoenix 1.7.24: the old join's phx_close comes right after the new join's reply, before anything
        # the new channel sends from after_join (presence_state, presence_diff, ...).
        self._close_previous(previous)
        if channel.alive:
            self.run_guarded(channel, channel.after_join)

    def _close_previous(self, previous: Channel | None) -> None:
        if previous is not None:
            self.send(Push(previous.join_ref, previous.join_ref, previous.topic, PHX_CLOSE, {}))

    def _leave(self, channel: Channel, message: Message) -> None:
        join_ref = channel.join_ref
        self._reply(join_ref, message, "ok", {})
        log.info("conn=%s leave topic=%s join_ref=%s", self.id, esc(channel.topic), esc(join_ref))
        self.send(Push(join_ref, join_ref, channel.topic, PHX_CLOSE, {}))
        self._remove(channel, "left")

    def _handle_in(self, channel: Channel, message: Message) -> None:
        channel._current_ref = message.ref
        try:
            result = channel.handle_in(message.event, message.payload)
        except Exception as exc:
            channel._current_ref = None
            self._handle_in_done(channel, message, None, exc)
            return
        if inspect.isawaitable(result):
            # The coroutine's body runs later: keep the push's ref current for reply_ref() until it returns
            # (this socket handles nothing else meanwhile).
            self._await(result, lambda res, exc: self._handle_in_done(channel, message, res, exc))
        else:
            channel._current_ref = None
            self._handle_in_done(channel, message, result, None)

    def _handle_in_done(self, channel: Channel, message: Message, result: Any, exc: BaseException | None) -> None:
        channel._current_ref = None
        if self.closed or not channel.alive:
            return
        try:
            if exc is not None:
                raise exc
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
            log.exception("conn=%s channel crashed topic=%s event=%s", self.id, esc(channel.topic),
                          esc(message.event))
            self._crash(channel, "handle_in raised")

    # ---- awaited callbacks -----------------------------------------------------------------------------

    def _await(self, awaitable: Awaitable[Any], done: Callable[[Any, BaseException | None], None]) -> None:
        """Await a channel callback's coroutine, then call done(result, exc); this socket's later messages
        wait in the inbox until every awaited callback has finished."""
        self._pending += 1
        asyncio.ensure_future(self._run_awaited(awaitable, done))

    async def _run_awaited(self, awaitable: Awaitable[Any], done: Callable[[Any, BaseException | None], None]) -> None:
        try:
            try:
                result = await awaitable
            except Exception as exc:
                done(None, exc)
            else:
                done(result, None)
        except Exception:
            self._fail(*_internal(self))
        finally:
            self._pending -= 1
            if not self._pending:
                self._drain()

    def _drain(self) -> None:
        inbox = self._inbox
        while inbox and not self._pending and not self.closed:
            message = inbox.popleft()
            try:
                self._dispatch(message)
            except ProtocolError as exc:
                self._fail(exc.close_code, str(exc))
            except Exception:
                self._fail(*_internal(self))

    def _fail(self, code: int, reason: str) -> None:
        """A protocol error outside the transport's own handler: close the connection like it would."""
        if self._inbox:
            self._inbox.clear()
        reject = getattr(self.transport, "reject", None)
        if reject is not None:
            reject(code, reason)
        else:
            log.warning("conn=%s %s (code %d); the transport cannot be closed from here", self.id, reason, code)

    def _spawn(self, channel: Channel, awaitable: Awaitable[Any], what: str) -> None:
        """Run a coroutine that nothing waits for (a timer, a leave of a closed socket); a raise crashes
        the channel if it is still alive, else it is logged."""

        async def run() -> None:
            try:
                await awaitable
            except Exception:
                log.exception("conn=%s channel crashed topic=%s in %s", self.id, esc(channel.topic), what)
                if not self.closed:
                    self._crash(channel, f"{what} raised")

        asyncio.ensure_future(run())

    # ---- channel lifecycle ----------------------------------------------------------------------------

    def run_guarded(self, channel: Channel, callback: Callable[[], Any], *, in_order: bool = True) -> None:
        """Run channel code outside handle_in (after_join, timers); a raise crashes only that channel.

        A coroutine callback is awaited; with `in_order` (after_join) this socket's later messages wait for
        it, as Phoenix's :after_join is handled before them; timers pass in_order=False.
        """
        if not channel.alive or self.closed:
            return
        try:
            result = callback()
        except Exception:
            log.exception("conn=%s channel crashed topic=%s in %s", self.id, esc(channel.topic), callback)
            self._crash(channel, "callback raised")
            return
        if inspect.isawaitable(result):
            if in_order:
                self._await(result, lambda _res, exc: self._guarded_done(channel, callback, exc))
            else:
                self._spawn(channel, result, getattr(callback, "__name__", "callback"))

    def _guarded_done(self, channel: Channel, callback: Callable[[], Any], exc: BaseException | None) -> None:
        if exc is not None and channel.alive and not self.closed:
            log.error("conn=%s channel crashed topic=%s in %s", self.id, esc(channel.topic), callback,
                      exc_info=(type(exc), exc, exc.__traceback__))
            self._crash(channel, "callback raised")

    def stop_channel(self, channel: Channel, reason: str = "normal") -> None:
        """Normal stop from the server side: phx_close for this join; the client does not rejoin."""
        if not channel.alive:
            return
        self.send(Push(channel.join_ref, channel.join_ref, channel.topic, PHX_CLOSE, {}))
        log.info("conn=%s channel stopped topic=%s reason=%s", self.id, esc(channel.topic), esc(reason))
        self._remove(channel, reason)

    def _crash(self, channel: Channel, why: str) -> None:
        if not channel.alive:
            return
        channel.alive = False
        self._unregister(channel)
        self.endpoint.presence.untrack(channel)
        log.warning("conn=%s phx_error topic=%s join_ref=%s reason=%s", self.id, esc(channel.topic), esc(channel.join_ref),
                    esc(why))
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
            result = channel.handle_leave(reason)
        except Exception:
            log.exception("conn=%s handle_leave raised topic=%s", self.id, esc(channel.topic))
            result = None
        finally:
            channel.alive = False
            # A shutting-down server closes every socket with 1001: a leave diff per departing member would
            # be n broadcasts to n members (O(n^2) frames) that nobody stays to read.
            self.endpoint.presence.untrack(channel, broadcast=not self.endpoint.draining)
        if inspect.isawaitable(result):
            if self.closed:
                self._spawn(channel, result, "handle_leave")
            else:
                self._await(result, lambda _res, exc: self._leave_done(channel, exc))

    def _leave_done(self, channel: Channel, exc: BaseException | None) -> None:
        if exc is not None:
            log.error("conn=%s handle_leave raised topic=%s", self.id, esc(channel.topic),
                      exc_info=(type(exc), exc, exc.__traceback__))

    def terminate(self, reason: str = "closed") -> None:
        """The connection is gone: every channel leaves without frames; presence leaves reach the others.

        Queued messages are dropped; callbacks still being awaited finish into the void (their channel is
        cleaned up when they return).
        """
        self.closed = True
        if self._inbox:
            self._inbox.clear()
        for channel in list(self.channels.values()):
            self._remove(channel, reason)


def _internal(socket: PhoenixSocket) -> tuple[int, str]:
    log.exception("conn=%s internal error while handling a queued frame", socket.id)
    return CloseCode.INTERNAL_ERROR, "internal error"
