"""The Endpoint: the one object that holds a server's router, pub/sub, presence, settings and counters.

Built once by app.make_app and passed to every connection; no module-level registries anywhere.

Socket ids (Phoenix's `id/1`): a connection whose assigns carry `socket_id`, or a user id (`user_id`, else
`sub`, e.g. from TP_CONNECT_URL's answer or a token's claims), is registered under that id
(`user_socket:<user id>`) and subscribed to it as a pub/sub topic. A `disconnect` broadcast on that topic,
from any node, closes every such connection with 1000, as Phoenix 1.7.24 on Bandit does:

    POST /api/disconnect {"user_id": "42"}  ->  broadcast(topic "user_socket:42", event "disconnect")
                                            ->  every socket of user 42 on every node: close 1000
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from .auth import Authenticator
from .config import Settings
from .limits import FaultBudget, OutboundBudget
from .logs import esc
from .metrics import Metrics
from .presence.base import Presence
from .protocol.messages import Broadcast
from .pubsub.base import PubSub
from .transport.limits import ConnectionLimits

if TYPE_CHECKING:
    from .backend import BackendClient
    from .channels.router import Router
    from .transport.websocket import PhoenixWebSocketHandler

__all__ = ["Endpoint", "socket_id_for", "user_socket_id", "DISCONNECT"]

log = logging.getLogger("tornado_phoenix.endpoint")

DISCONNECT = "disconnect"

ConnectResult = dict[str, Any] | None
Connect = Callable[[dict[str, Any]], ConnectResult | Awaitable[ConnectResult]]


def user_socket_id(user_id: Any) -> str:
    return f"user_socket:{user_id}"


def socket_id_for(assigns: dict[str, Any]) -> str | None:
    """Phoenix's `id/1`: `assigns["socket_id"]`, else `user_socket:<user_id or sub>`, else None (anonymous)."""
    explicit = assigns.get("socket_id")
    if isinstance(explicit, str) and explicit:
        return explicit
    for key in ("user_id", "sub"):
        value = assigns.get(key)
        if isinstance(value, (str, int)) and not isinstance(value, bool) and str(value):
            return user_socket_id(value)
    return None


def accept_all(params: dict[str, Any]) -> dict[str, Any] | None:
    return {}


class _ControlSerializer:
    """Stands in for a wire serializer on socket-id topics: hands the Broadcast itself to the subscriber."""

    vsn = 0

    def encode_broadcast(self, message: Broadcast) -> Any:
        return _ControlFrame(message.event)


class _ControlFrame:
    """What a socket-id topic subscriber receives: the event only (no wire bytes; counted as 0 bytes)."""

    __slots__ = ("event",)
    data = b""
    binary = False
    wire = None

    def __init__(self, event: str) -> None:
        self.event = event


_CONTROL = _ControlSerializer()


class _SocketIdTopic:
    """The pub/sub subscriber of one socket id topic on this node: a `disconnect` closes its connections."""

    serializer = _CONTROL

    def __init__(self, endpoint: Endpoint, socket_id: str) -> None:
        self.endpoint = endpoint
        self.socket_id = socket_id

    def write_frame(self, frame: Any) -> None:
        if getattr(frame, "event", None) == DISCONNECT:
            self.endpoint.disconnect_local(self.socket_id)


class Endpoint:
    """`connect(params)` is Phoenix's UserSocket.connect/3: return the socket's assigns, or None to refuse
    the connection (HTTP 403, as Phoenix answers `:error`). It may be a coroutine function: the handshake
    awaits it before answering 101 or 403 (TP_CONNECT_URL's callback is one)."""

    def __init__(
        self,
        settings: Settings,
        router: Router,
        pubsub: PubSub,
        presence: Presence,
        connect: Connect = accept_all,
        *,
        auth: Authenticator | None = None,
        metrics: Metrics | None = None,
    ) -> None:
        self.settings = settings
        self.connect = connect
        self.auth = auth or Authenticator(settings)  # raises AuthError on a configuration that cannot work
        self.metrics = metrics or Metrics()
        self.metrics.endpoint = self
        self.router = router
        self.pubsub = pubsub
        self.presence = presence
        self.started = time.monotonic()
        self.connections: set[PhoenixWebSocketHandler] = set()
        self.channels = 0
        self.workers: Any = None  # workers.WorkerBoard in a --workers process
        self.longpoll_router: Any = None  # transport/longpoll_routing.LongPollRouter on a cross-node pub/sub
        self.outbound = OutboundBudget(settings.max_pending_bytes_total, settings.max_pending_bytes)
        self.fault_budget = FaultBudget()  # what fault:* may hold at once (channels/fault.py)
        self.draining = False  # set by Server.shutdown: no presence leave broadcasts while everyone leaves
        self.limits = ConnectionLimits(settings.max_connections, settings.max_connections_per_ip)
        from .yjs.room import RoomManager

        # room:* documents (yjs/); relays go through this endpoint's pubsub, the store opens on first use.
        self.yjs = RoomManager(
            pubsub,
            store=settings.yjs_store,
            ttl=settings.yjs_room_ttl,
            max_update_bytes=settings.yjs_max_update_bytes,
            max_doc_bytes=settings.yjs_max_doc_bytes,
        )
        self.backend: BackendClient | None = None  # TP_CONNECT_URL / TP_JOIN_URL / TP_EVENT_URL callbacks
        self._by_socket_id: dict[str, dict[Any, None]] = {}  # socket id -> its connections on this node
        self._id_topics: dict[str, _SocketIdTopic] = {}

        rooms = self.yjs.rooms
        self.metrics.add_gauge("yjs_rooms", "room:* documents loaded in memory", lambda: len(rooms))
        self.metrics.add_gauge("yjs_room_members", "members of the loaded room:* documents",
                               lambda: sum(len(room.members) for room in list(rooms.values())))
        self.metrics.add_gauge("yjs_document_bytes", "encoded size of the loaded room:* documents (upper bound)",
                               lambda: sum(room.size for room in list(rooms.values())))

    def auth_refused(self, reason: str) -> None:
        self.metrics.connects.labels("refused").inc()
        if self.auth.enabled:
            self.metrics.auth_failures.labels(reason).inc()

    # ---- socket ids (Phoenix's id/1) and disconnect ---------------------------------------------------

    def socket_opened(self, connection: Any, assigns: dict[str, Any]) -> str | None:
        """Register a connection under its socket id (if its assigns give one); returns the id."""
        socket_id = socket_id_for(assigns)
        if socket_id is None:
            return None
        connections = self._by_socket_id.setdefault(socket_id, {})
        connections[connection] = None
        if socket_id not in self._id_topics:
            topic = self._id_topics[socket_id] = _SocketIdTopic(self, socket_id)
            self.pubsub.subscribe(socket_id, topic)
        return socket_id

    def socket_closed(self, connection: Any, socket_id: str | None) -> None:
        if socket_id is None:
            return
        connections = self._by_socket_id.get(socket_id)
        if connections is None:
            return
        connections.pop(connection, None)
        if not connections:
            del self._by_socket_id[socket_id]
            topic = self._id_topics.pop(socket_id, None)
            if topic is not None:
                self.pubsub.unsubscribe(socket_id, topic)

    def disconnect(self, socket_id: str) -> int:
        """Close every connection with this socket id on every node (a `disconnect` broadcast on the id
        topic, through pub/sub); returns how many were on this node."""
        here = len(self._by_socket_id.get(socket_id, ()))
        self.pubsub.broadcast(socket_id, DISCONNECT, {})
        return here

    def disconnect_local(self, socket_id: str) -> int:
        connections = list(self._by_socket_id.get(socket_id, ()))
        if connections:
            log.info("disconnect socket_id=%s: closing %d connection(s) with 1000", esc(socket_id), len(connections))
        for connection in connections:
            connection.shutdown(1000)  # Phoenix 1.7.24 on Bandit: {:shutdown, :disconnected} -> 1000
        return len(connections)

    def topics(self) -> dict[str, int]:
        """Joined topics on this node with their member counts (channels joined), busiest first."""
        counts: dict[str, int] = {}
        for handler in self.connections:
            phx = getattr(handler, "phx", None)
            if phx is None:
                continue
            for topic in phx.channels:
                counts[topic] = counts.get(topic, 0) + 1
        return dict(sorted(counts.items(), key=lambda item: (-item[1], item[0])))

    def channel_joined(self) -> None:
        self.channels += 1

    def channel_left(self) -> None:
        self.channels -= 1

    def uptime(self) -> float:
        return time.monotonic() - self.started
