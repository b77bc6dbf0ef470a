"""The WebSocket transport: `GET <socket_path>/websocket`, bytes in and out of a PhoenixSocket.

Mirrors lib/phoenix/transports/websocket.ex plus Bandit's connection handling: serializer negotiation by
`vsn` (HTTP 403 when unsupported), the idle timeout (close 1002), the frame size limit (close 1009) and the
close codes for bad input (1011, 1007). Everything Phoenix-specific happens in channels.socket.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import tornado.web
import tornado.websocket
from tornado.ioloop import IOLoop
from tornado.websocket import _WebSocketParams

from ..channels.socket import PhoenixSocket
from ..endpoint import Endpoint
from ..limits import FAIR_SLICE, TokenBucket
from ..protocol.errors import CloseCode, ProtocolError
from ..protocol.serializers import Frame, Serializer, negotiate
from .tornado_compat import PhoenixWebSocketProtocol, frame_bytes

__all__ = ["PhoenixWebSocketHandler"]

log = logging.getLogger("tornado_phoenix.transport")


class PhoenixWebSocketHandler(tornado.websocket.WebSocketHandler):
    serializer: Serializer

    def initialize(self, endpoint: Endpoint) -> None:
        self.endpoint = endpoint
        self.settings_ = endpoint.settings
        self.phx: PhoenixSocket | None = None
        self.rejected = False
        self._protocol: PhoenixWebSocketProtocol | None = None
        self._last_seen = 0.0
        self._idle_timer: Any = None
        self._opened_at = 0.0
        self._params: dict[str, str] = {}
        self._assigns: dict[str, Any] = {}
        self._silent_until = 0.0  # fault:* silence (see silence())
        self._bucket: TokenBucket | None = None  # TP_MAX_MESSAGES_PER_SECOND (limits.py)
        self._in_a_row = 0  # messages handled since this socket last yielded to the loop

    # ---- handshake ------------------------------------------------------------------------------------

    def set_default_headers(self) -> None:
        self.clear_header("Server")  # Phoenix/Bandit send none

    async def get(self, *args: Any, **kwargs: Any) -> None:
        vsn = self.get_query_argument("vsn", None)
        serializer = negotiate(vsn)
        if serializer is None:
            log.warning("refused upgrade from %s: unsupported vsn=%r (use 1.0.0 or 2.0.0)", self._peer(), vsn)
            self._empty(403)
            return
        if not self._origin_allowed():
            log.warning("refused upgrade from %s: origin %r not in TP_CHECK_ORIGIN", self._peer(),
                        self.request.headers.get("Origin"))
            self._empty(403)
            return
        params = {key: values[-1].decode("utf-8", "replace")
                  for key, values in self.request.query_arguments.items() if key != "vsn"}
        assigns = self.endpoint.connect(params)
        if assigns is None:
            log.warning("refused upgrade from %s: connect refused params=%s", self._peer(), ",".join(sorted(params)))
            self._empty(403)
            return
        self.serializer = serializer
        self._params = params
        self._assigns = assigns
        self.set_header("Cache-Control", "max-age=0, private, must-revalidate")
        await super().get(*args, **kwargs)

    def _empty(self, status: int) -> None:
        self.set_status(status)
        self.finish()

    def _bad_method(self, *args: Any, **kwargs: Any) -> None:
        self._empty(400)

    post = put = patch = delete = options = _bad_method

    def check_origin(self, origin: str) -> bool:
        return True  # decided in get(), before the upgrade, with Phoenix's empty-body 403

    def _origin_allowed(self) -> bool:
        allowed = self.settings_.allowed_origins
        origin = self.request.headers.get("Origin")
        if not allowed or origin is None:
            return True  # no Origin header (native/mobile clients) is always allowed, as in Phoenix
        host = (urlsplit(origin).hostname or "").lower()
        return any(host == entry or (entry.startswith("*.") and (host == entry[2:] or host.endswith(entry[1:])))
                   for entry in allowed)

    def select_subprotocol(self, subprotocols: list[str]) -> str | None:
        return None  # Phoenix 1.7 ignores offered subprotocols and answers none

    def get_compression_options(self) -> dict[str, Any] | None:
        return None  # compress: false, as Phoenix's default

    @property
    def max_message_size(self) -> int:
        return self.settings_.max_frame_size

    def get_websocket_protocol(self) -> PhoenixWebSocketProtocol | None:
        if self.request.headers.get("Sec-WebSocket-Version") not in ("7", "8", "13"):
            return None
        params = _WebSocketParams(max_message_size=self.max_message_size, compression_options=None)
        self._protocol = PhoenixWebSocketProtocol(self, False, params)
        return self._protocol

    # ---- connection lifetime ----------------------------------------------------------------------------

    def open(self, *args: Any, **kwargs: Any) -> None:
        self.set_nodelay(True)
        params = self._params
        self.phx = PhoenixSocket(self.endpoint, self, params, peer=self._peer())
        self.phx.assigns.update(self._assigns)
        self.endpoint.connections.add(self)
        loop = IOLoop.current()
        self._opened_at = self._last_seen = loop.time()
        self._bucket = TokenBucket(self.settings_.max_messages_per_second, self.settings_.message_burst, loop.time())
        self._idle_timer = loop.call_later(self.settings_.idle_timeout, self._check_idle)
        log.info("conn=%s connect peer=%s vsn=%s params=%s", self.phx.id, self.phx.peer,
                 self.serializer.vsn, ",".join(sorted(params)) or "-")

    def on_message(self, message: str | bytes) -> Any:
        if self.rejected or self.phx is None:
            return None
        self._last_seen = now = IOLoop.current().time()
        if now < self._silent_until:
            return None  # fault:* silence: dropped unread, as a network partition would lose it
        if not self._bucket.take(now):  # type: ignore[union-attr]
            self.reject(CloseCode.POLICY_VIOLATION, f"message rate over TP_MAX_MESSAGES_PER_SECOND="
                        f"{self.settings_.max_messages_per_second:g} (burst TP_MESSAGE_BURST="
                        f"{self.settings_.message_burst})")
            return None
        try:
            if type(message) is str:
                decoded = self.serializer.decode_text(message)
            else:
                decoded = self.serializer.decode_binary(message)
            self.phx.handle_message(decoded)
        except ProtocolError as exc:
            self.reject(exc.close_code, str(exc))
        except Exception:
            # Same as a crashed Phoenix socket process: this connection closes 1011, nothing else is affected.
            log.exception("conn=%s internal error while handling a frame", self.phx.id)
            self.reject(CloseCode.INTERNAL_ERROR, "internal error")
        self._in_a_row += 1
        if self._in_a_row >= FAIR_SLICE:
            # Fairness: Tornado reads the next frame from the buffer without returning to the loop; after a
            # slice of messages, let other sockets' frames and timers run first.
            self._in_a_row = 0
            return asyncio.sleep(0)
        return None

    def on_ping(self, data: bytes) -> None:
        self._last_seen = IOLoop.current().time()

    def on_pong(self, data: bytes) -> None:
        self._last_seen = IOLoop.current().time()

    def reject(self, code: int, reason: str) -> None:
        """Close this connection for what its peer did, logging why; Phoenix sends an empty close reason."""
        if self.rejected:
            return
        self.rejected = True
        conn = self.phx.id if self.phx else "-"
        log.warning("conn=%s rejected frame, closing with %d: %s", conn, code, reason)
        self.close(code)

    def _check_idle(self) -> None:
        loop = IOLoop.current()
        idle = loop.time() - self._last_seen
        timeout = self.settings_.idle_timeout
        if idle >= timeout:
            self._idle_timer = None
            if not self.rejected:
                self.rejected = True
                log.info("conn=%s idle for %.0fs, closing with 1002", self.phx.id if self.phx else "-", idle)
                self.close(CloseCode.PROTOCOL_ERROR)
        else:
            self._idle_timer = loop.call_later(timeout - idle, self._check_idle)

    def on_close(self) -> None:
        self.endpoint.outbound.forget(self)
        if self._idle_timer is not None:
            IOLoop.current().remove_timeout(self._idle_timer)
            self._idle_timer = None
        self.endpoint.connections.discard(self)
        if self.phx is not None:
            phx, self.phx = self.phx, None
            phx.terminate("closed")
            log.info("conn=%s disconnect code=%s after %.1fs", phx.id, self.close_code,
                     IOLoop.current().time() - self._opened_at)

    # ---- Transport interface for PhoenixSocket --------------------------------------------------------

    def send(self, frame: Frame) -> None:
        # The fan-out hot path (once per subscriber per broadcast): keep it to attribute reads and one call.
        protocol = self._protocol
        if protocol is None or self.rejected or protocol.server_terminated:
            return
        pending = protocol.write_wire(frame.wire or frame_bytes(frame))  # 0 if the stream is closed
        if pending or self._queued:
            self._queued = bool(pending)
            for handler, queued, reason in self.endpoint.outbound.update(self, pending):
                handler.overflow(queued, reason)

    _queued = False  # last seen with bytes queued (then every send reports to the budget)

    def pending_bytes(self) -> int:
        protocol = self._protocol
        return 0 if protocol is None or self.rejected else protocol.pending_bytes()

    def overflow(self, queued: int, reason: str) -> None:
        """Over TP_MAX_PENDING_BYTES(_TOTAL): drop the queue, close 1011 ahead of the dropped data."""
        if self.rejected:
            return
        self.rejected = True
        protocol = self._protocol
        dropped = protocol.drop_queue() if protocol is not None else 0
        log.warning("conn=%s closing with 1011: %s (%d queued bytes dropped)",
                    self.phx.id if self.phx else "-", reason, dropped)
        self.close(CloseCode.INTERNAL_ERROR)

    def call_later(self, delay: float, callback: Callable[[], Any]) -> Any:
        return IOLoop.current().call_later(delay, callback)

    def cancel_later(self, handle: Any) -> None:
        IOLoop.current().remove_timeout(handle)

    def shutdown(self, code: int = CloseCode.GOING_AWAY, reason: str | None = None) -> None:
        """Close from the server side with `code` (and `reason`, for fault:* disconnect); sends nothing more."""
        if not self.rejected:
            self.rejected = True
            self.close(code, reason)

    def silence(self, seconds: float) -> None:
        """fault:* silence: for `seconds`, drop every frame this client sends unread (heartbeats included) and
        send it nothing (pushes, broadcasts, presence diffs are lost), without closing: a network partition.

        Dropped frames still count as activity for the idle timeout, so a client that keeps sending is not
        closed with 1002 because of the silence. WebSocket control frames are still handled by the protocol
        layer (a ping is ponged, a close is answered), so a client that gives up can still close cleanly.
        """
        phx = self.phx
        if phx is None or self.rejected:
            return
        loop = IOLoop.current()
        self._silent_until = until = loop.time() + seconds
        phx.transport = _Muted(self)  # every outgoing frame of the PhoenixSocket goes through .transport

        def unsilence() -> None:
            if self.phx is phx and self._silent_until == until:  # not superseded by a later silence
                phx.transport = self

        loop.call_later(seconds, unsilence)

    def _peer(self) -> str:
        return self.request.remote_ip or "-"

    def log_exception(self, typ: Any, value: Any, tb: Any) -> None:
        log.error("unexpected error in the WebSocket handler", exc_info=(typ, value, tb))


class _Muted:
    """The PhoenixSocket's transport while silenced: sends go nowhere, timers still run."""

    __slots__ = ("handler", "serializer")  # reject: a queued message's protocol error still closes

    def __init__(self, handler: PhoenixWebSocketHandler) -> None:
        self.handler = handler
        self.serializer = handler.serializer

    def send(self, frame: Frame) -> None:
        pass

    def reject(self, code: int, reason: str) -> None:
        self.handler.reject(code, reason)

    def call_later(self, delay: float, callback: Callable[[], Any]) -> Any:
        return self.handler.call_later(delay, callback)

    def cancel_later(self, handle: Any) -> None:
        self.handler.cancel_later(handle)
