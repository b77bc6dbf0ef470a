"""The Endpoint: the one object that holds a server's router, pub/sub, presence, settings and counters.

Built once by app.make_app and passed to every connection; no module-level registries anywhere.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .auth import Authenticator
from .config import Settings
from .limits import FaultBudget, OutboundBudget
from .metrics import Metrics
from .presence.base import Presence
from .pubsub.base import PubSub
from .transport.limits import ConnectionLimits

if TYPE_CHECKING:
    from .channels.router import Router
    from .transport.websocket import PhoenixWebSocketHandler

__all__ = ["Endpoint"]


def accept_all(params: dict[str, Any]) -> dict[str, Any] | None:
    return {}


class Endpoint:
    """`connect(params)` is Phoenix's UserSocket.connect/3: return the socket's assigns, or None to refuse
    the connection (HTTP 403, as Phoenix answers `:error`)."""

    def __init__(
        self,
        settings: Settings,
        router: Router,
        pubsub: PubSub,
        presence: Presence,
        connect: Callable[[dict[str, Any]], dict[str, Any] | None] = accept_all,
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

    def channel_joined(self) -> None:
        self.channels += 1

    def channel_left(self) -> None:
        self.channels -= 1

    def uptime(self) -> float:
        return time.monotonic() - self.started
