"""The WebSocket transport: `GET <socket_path>/websocket`, bytes in and out of a PhoenixSocket.

Mirrors lib/phoenix/transports/websocket.ex plus Bandit's connection handling: serializer negotiation by
`vsn` (HTTP 403 when unsupported), the idle timeout (close 1002), the frame size limit (close 1009) and the
close codes for bad input (1011, 1007). Everything Phoenix-specific happens in channels.socket.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import time
from collections.abc import Callable
from typing import Any

import tornado.web
import tornado.websocket
from tornado.httputil import responses
from tornado.ioloop import IOLoop
from tornado.websocket import _WebSocketParams

from .. import auth
from ..channels.socket import PhoenixSocket
from ..endpoint import Endpoint
from ..limits import FAIR_SLICE, TokenBucket
from ..logs import esc, protocol_log, verbose_protocol_errors
from ..logs import excerpt as frame_excerpt
from ..protocol.errors import CloseCode, ProtocolError
from ..protocol.serializers import Frame, Serializer, negotiate
from .handshake import origin_host, query_vsn, upgrade_problem
from .tornado_compat import PhoenixWebSocketProtocol, frame_bytes

__all__ = ["PhoenixWebSocketHandler"]

log = logging.getLogger("tornado_phoenix.transport")
limits_log = logging.getLogger("tornado_phoenix.limits")


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
        self._socket_id: str | None = None  # Phoenix's id/1, from the assigns (see Endpoint.socket_opened)
        self._silent_until = 0.0  # fault:* silence (see silence())
        self._bucket: TokenBucket | None = None  # TP_MAX_MESSAGES_PER_SECOND (limits.py)
        self._in_a_row = 0  # messages handled since this socket last yielded to the loop
        self._bearer = False
        self._expiry_timer: Any = None
        self._counted = False  # holds a slot in endpoint.limits

    # ---- handshake ------------------------------------------------------------------------------------

    def set_default_headers(self) -> None:
        self.clear_header("Server")  # Phoenix/Bandit send none

    async def get(self, *args: Any, **kwargs: Any) -> None:
        request = self.request
        ok, vsn = query_vsn(request.query_arguments)
        serializer = negotiate(vsn) if ok else None
        if serializer is None:
            protocol_log.warning("refuse status=403 reason=%s vsn=%s peer=%s",
                                 esc("unsupported vsn (use 1.0.0 or 2.0.0)"), esc(vsn if ok else request.query_arguments["vsn"][-1]),
                                 self._peer())
            self._refuse(403)
            return
        if not self._origin_allowed():
            protocol_log.warning("refuse status=403 reason=%s origin=%s peer=%s", esc("origin not in TP_CHECK_ORIGIN"),
                                 esc(request.headers.get("Origin")), self._peer())
            self._refuse(403)
            return
        params = {key: values[-1].decode("utf-8", "replace")
                  for key, values in request.query_arguments.items() if key != "vsn"}
        protocols = request.headers.get("Sec-WebSocket-Protocol")
        # The chain: token auth (sync) -> the app's connect hook (sync or async) -> TP_CONNECT_URL (async).
        pending: dict[str, Any] = {}

        def hook(hook_params: dict[str, Any]) -> dict[str, Any] | None:
            pending["params"] = hook_params  # without the token: auth strips it
            result = self.endpoint.connect(hook_params)
            if inspect.isawaitable(result):
                pending["awaitable"] = result
                return {}
            return result

        assigns = self.endpoint.auth.connect(params, protocols, hook)
        backend = self.endpoint.backend if self.settings_.connect_url else None
        if not isinstance(assigns, auth.Refused) and ("awaitable" in pending or backend is not None):
            try:  # answered before the 101/403; other connections are served meanwhile
                if "awaitable" in pending:
                    extra = await pending["awaitable"]
                    assigns = auth.Refused("connect refused") if extra is None else {**assigns, **extra}
                if backend is not None and not isinstance(assigns, auth.Refused):
                    claims = dict(assigns) if self.endpoint.auth.mode == "jwt" else None
                    allowed = await backend.connect(pending.get("params", params), assigns, claims)
                    assigns = auth.Refused("refused by the backend") if allowed is None else allowed
            except Exception as exc:  # the backend is down or answered nonsense: not the client's fault
                log.warning("refuse status=503 reason=%s peer=%s", esc(f"connect hook failed: {exc}"), self._peer())
                self._refuse(503)
                return
            if self._on_close_called:  # the client left while the hook was awaited: nothing to upgrade
                log.info("upgrade abandoned by the client during the connect hook peer=%s", self._peer())
                return
        if isinstance(assigns, auth.Refused):  # the reason is ours (never the token); params: names only
            self.endpoint.auth_refused(assigns.reason)
            log.warning("refuse status=403 reason=%s auth=%s params=%s peer=%s", esc(assigns.reason),
                        self.endpoint.auth.mode, esc(",".join(sorted(params))), self._peer())
            self._empty(403)
            return
        # auth off: 1.7.24 answers no subprotocol; auth on: 1.8's auth_token answers "phoenix" (research 1.4)
        self._bearer = self.endpoint.auth.enabled and protocols is not None and auth.AUTH_TOKEN_PREFIX in protocols
        problem = upgrade_problem(request.method or "", request.version, request.headers)
        if problem is not None:  # Phoenix answers websock_adapter's UpgradeError with 400 and its message
            protocol_log.warning("refuse status=400 reason=%s peer=%s", esc(problem), self._peer())
            self._refuse(400, problem)
            return
        limits = self.endpoint.limits
        refusal = limits.refusal(self._peer())
        if refusal is not None:
            status, why = refusal
            limits_log.warning("refuse status=%d reason=%s peer=%s", status, esc(why), self._peer())
            self._refuse(status)
            return
        self.serializer = serializer
        self._params = params
        self._assigns = assigns
        self.set_header("Cache-Control", "max-age=0, private, must-revalidate")
        await super().get(*args, **kwargs)

    def _empty(self, status: int, body: str = "") -> None:
        self.set_status(status)
        self.finish(body)

    def _refuse(self, status: int, body: str = "") -> None:
        """The answer to a refused upgrade (empty, or websock_adapter's message), counted in
        connects_total{result="refused"} (auth refusals are counted by endpoint.auth_refused, with their reason)."""
        self.endpoint.metrics.connects.labels("refused").inc()
        self._empty(status, body)

    def _bad_method(self, *args: Any, **kwargs: Any) -> None:
        self._refuse(400)

    post = put = patch = delete = options = head = _bad_method

    def check_origin(self, origin: str) -> bool:
        return True  # decided in get(), before the upgrade, with Phoenix's empty-body 403

    def _origin_allowed(self) -> bool:
        allowed = self.settings_.allowed_origins
        origin = self.request.headers.get("Origin")
        if not allowed or origin is None:
            return True  # no Origin header (native/mobile clients) is always allowed, as in Phoenix
        host = origin_host(origin)
        if host is None:
            return False  # an Origin that does not parse matches no allowed host
        return any(host == entry or (entry.startswith("*.") and (host == entry[2:] or host.endswith(entry[1:])))
                   for entry in allowed)

    def select_subprotocol(self, subprotocols: list[str]) -> str | None:
        # Phoenix 1.7 ignores offered subprotocols and answers none; with TP_AUTH on, a phoenix.js 1.8 authToken
        # handshake (["phoenix", "base64url.bearer.phx.<token>"]) is answered "phoenix" like Phoenix 1.8's
        # auth_token: true (the ws client rejects a handshake that answers none).
        if self._bearer and "phoenix" in subprotocols:
            return "phoenix"
        return None

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
        self.endpoint.limits.opened(self._peer())
        self._counted = True
        self._socket_id = self.endpoint.socket_opened(self, self.phx.assigns)
        loop = IOLoop.current()
        self._opened_at = self._last_seen = loop.time()
        self._bucket = TokenBucket(self.settings_.max_messages_per_second, self.settings_.message_burst, loop.time())
        self._idle_timer = loop.call_later(self.settings_.idle_timeout, self._check_idle)
        expires_at = self._assigns.get(auth.EXPIRES_AT)
        if expires_at is not None:
            self._expiry_timer = loop.call_later(max(0.0, expires_at - time.time()), self._token_expired)
        self.endpoint.metrics.connects.labels("ok").inc()
        log.info("conn=%s connect peer=%s vsn=%s params=%s", self.phx.id, self.phx.peer,
                 self.serializer.vsn, esc(",".join(sorted(params)) or "-"))

    def on_message(self, message: str | bytes) -> Any:
        if self.rejected or self.phx is None:
            return None
        self._last_seen = now = IOLoop.current().time()
        metrics = self.endpoint.metrics
        metrics.messages_in += 1
        metrics.bytes_in += len(message)
        if now < self._silent_until:
            return None  # fault:* silence: dropped unread, as a network partition would lose it
        if not self._bucket.take(now):  # type: ignore[union-attr]
            self.endpoint.metrics.rate_limited_sockets.inc()
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
            self.reject(exc.close_code, str(exc), excerpt=message)
        except Exception as exc:
            # Same as a crashed Phoenix socket process: this connection closes 1011, nothing else is affected.
            if verbose_protocol_errors():
                log.exception("conn=%s internal error while handling a frame", self.phx.id)
            self.reject(CloseCode.INTERNAL_ERROR, f"internal error: {type(exc).__name__}", excerpt=message)
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

    def reject(self, code: int, reason: str, excerpt: str | bytes | None = None) -> None:
        """Close this connection for what its peer did, logging why; Phoenix sends an empty close reason."""
        if self.rejected:
            return
        self.rejected = True
        self.closing(code, reason, excerpt)
        self.endpoint.metrics.rejected.labels(_reason_label(code)).inc()
        self.close(code)

    def closing(self, code: int, reason: str, excerpt: str | bytes | None = None) -> None:
        """The one log line of a close caused by what the client sent (TP_LOG_PROTOCOL_ERRORS, rate-limited)."""
        conn = self.phx.id if self.phx else "-"
        if excerpt is None:
            protocol_log.warning("conn=%s close code=%d reason=%s peer=%s", conn, code, esc(reason), self._peer())
        else:
            protocol_log.warning("conn=%s close code=%d reason=%s peer=%s frame=%s", conn, code, esc(reason),
                                 self._peer(), frame_excerpt(excerpt))

    def _check_idle(self) -> None:
        loop = IOLoop.current()
        idle = loop.time() - self._last_seen
        timeout = self.settings_.idle_timeout
        if idle >= timeout:
            self._idle_timer = None
            if not self.rejected:
                self.rejected = True
                log.info("conn=%s close code=%d reason=%s", self.phx.id if self.phx else "-",
                         CloseCode.PROTOCOL_ERROR, f"idle for {idle:.0f}s (TP_IDLE_TIMEOUT={timeout:g})")
                self.close(CloseCode.PROTOCOL_ERROR)
        else:
            self._idle_timer = loop.call_later(timeout - idle, self._check_idle)

    def _token_expired(self) -> None:
        self._expiry_timer = None
        if not self.rejected and self.phx is not None:
            self.rejected = True
            log.info("conn=%s close code=%d reason=%s", self.phx.id, 4001, "token expired (TP_JWT_ENFORCE_EXPIRY)")
            self.close(4001, "token expired")

    def on_close(self) -> None:
        self.endpoint.outbound.forget(self)
        if self._idle_timer is not None:
            IOLoop.current().remove_timeout(self._idle_timer)
            self._idle_timer = None
        if self._expiry_timer is not None:
            IOLoop.current().remove_timeout(self._expiry_timer)
            self._expiry_timer = None
        if self.phx is not None:
            self.endpoint.metrics.closes.labels(str(self.close_code)).inc()
        self.endpoint.connections.discard(self)
        if self._counted:
            self._counted = False
            self.endpoint.limits.closed(self._peer())
        self.endpoint.socket_closed(self, self._socket_id)
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
        """Bytes queued on this connection's stream, not yet taken by the kernel (0 once it is closed)."""
        protocol = self._protocol
        return 0 if protocol is None else protocol.pending_bytes()

    def overflow(self, queued: int, reason: str) -> None:
        """Over TP_MAX_PENDING_BYTES(_TOTAL): drop the queue, close 1011 ahead of the dropped data."""
        if self.rejected:
            return
        self.rejected = True
        protocol = self._protocol
        dropped = protocol.drop_queue() if protocol is not None else 0
        log.warning("conn=%s close code=%d reason=%s", self.phx.id if self.phx else "-", CloseCode.INTERNAL_ERROR,
                    esc(f"{reason}; {dropped} queued bytes dropped", 400))
        self.close(CloseCode.INTERNAL_ERROR)

    def call_later(self, delay: float, callback: Callable[[], Any]) -> Any:
        return IOLoop.current().call_later(delay, callback)

    def cancel_later(self, handle: Any) -> None:
        IOLoop.current().remove_timeout(handle)

    def shutdown(self, code: int = CloseCode.GOING_AWAY, reason: str | None = None) -> None:
        """Close from the server side with `code` (and `reason`, for fault:* disconnect); sends nothing more."""
        if not self.rejected:
            self.rejected = True
            # One line per close; at shutdown (1001, no reason) the server already logged one line for all.
            level = logging.DEBUG if code == CloseCode.GOING_AWAY and reason is None else logging.INFO
            log.log(level, "conn=%s close code=%d reason=%s", self.phx.id if self.phx else "-", code,
                    esc(reason or "server shutting down"))
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
        if isinstance(value, tornado.web.HTTPError):  # an answer to a bad request, not a server fault
            protocol_log.warning("refuse status=%d reason=%s peer=%s", value.status_code,
                                 esc(value.log_message or value.reason or responses.get(value.status_code, "")),
                                 self._peer())
            return
        log.error("unexpected error in the WebSocket handler", exc_info=(typ, value, tb))


def _reason_label(code: int) -> str:
    try:
        return CloseCode(code).name.lower()
    except ValueError:
        return str(code)


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
