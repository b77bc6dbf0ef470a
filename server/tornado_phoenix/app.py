"""make_app: the only place where the router, pub/sub, presence and handlers are wired together."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import tornado.web

from .channels.bench import BenchChannel
from .channels.echo import EchoChannel
from .channels.router import Router
from .channels.test import TestChannel
from .config import Settings
from .endpoint import Endpoint, accept_all
from .presence.base import Presence
from .presence.local import LocalPresence
from .pubsub.base import PubSub
from .pubsub.local import LocalPubSub
from .transport.http import HealthHandler, NotFoundHandler
from .transport.websocket import PhoenixWebSocketHandler

__all__ = ["default_router", "make_app"]


def default_router() -> Router:
    """The built-in channels. `room:*` is reserved for collaborative Yjs documents (not routed yet)."""
    return Router(
        [
            ("echo:*", EchoChannel),
            ("test:*", TestChannel),
            ("bench:*", BenchChannel),
        ]
    )


def make_app(
    settings: Settings,
    *,
    router: Router | None = None,
    pubsub: PubSub | None = None,
    presence: Presence | None = None,
    connect: Callable[[dict[str, Any]], dict[str, Any] | None] | None = None,
) -> tuple[tornado.web.Application, Endpoint]:
    pubsub = pubsub or LocalPubSub()
    endpoint = Endpoint(
        settings,
        router or default_router(),
        pubsub,
        presence or LocalPresence(pubsub),
        connect or accept_all,
    )
    base = settings.socket_path.rstrip("/")
    app = tornado.web.Application(
        [
            (rf"{base}/websocket/?", PhoenixWebSocketHandler, {"endpoint": endpoint}),
            (r"/health", HealthHandler, {"endpoint": endpoint}),
        ],
        default_handler_class=NotFoundHandler,
        websocket_max_message_size=settings.max_frame_size,
    )
    return app, endpoint
