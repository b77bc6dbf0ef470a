"""make_app: the only place where the router, pub/sub, presence and handlers are wired together."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import tornado.web

from .api import api_routes
from .backend import BackendClient
from .channels.backend import BackendChannel
from .channels.base import Channel
from .channels.bench import BenchChannel
from .channels.echo import EchoChannel
from .channels.fault import FaultChannel
from .channels.room import RoomChannel
from .channels.router import Router
from .channels.test import TestChannel
from .config import Settings
from .endpoint import Endpoint, accept_all
from .metrics import MetricsHandler
from .presence.base import Presence
from .presence.local import LocalPresence
from .pubsub.base import PubSub
from .pubsub.local import LocalPubSub
from .transport.http import HealthHandler, NotFoundHandler
from .transport.longpoll import LongPollSessions, PhoenixLongPollHandler
from .transport.longpoll_routing import LongPollRouter
from .transport.websocket import PhoenixWebSocketHandler

__all__ = ["default_router", "make_app", "make_api_app", "STATIC_DIR"]

STATIC_DIR = Path(__file__).resolve().parent / "static"  # the browser console (index.html, phoenix.min.js)


def default_router(*, faults: bool = True, backend_topics: list[str] | None = None) -> Router:
    """The built-in channels; `room:*` serves collaborative Yjs documents (channels/room.py, yjs/).

    `fault:*` lets any client that can reach the server make it misbehave towards that client; turn it off
    (TP_FAULTS=off) on a server that is not only for testing clients. `backend_topics` (TP_JOIN_TOPICS) go to
    the backend-driven channel and come first, so they win over a built-in pattern they overlap.
    """
    routes: list[tuple[str, type[Channel]]] = [(pattern, BackendChannel) for pattern in backend_topics or []]
    routes += [
        ("echo:*", EchoChannel),
        ("test:*", TestChannel),
        ("bench:*", BenchChannel),
        ("room:*", RoomChannel),
    ]
    if faults:
        routes.append(("fault:*", FaultChannel))
    return Router(routes)


def make_app(
    settings: Settings,
    *,
    router: Router | None = None,
    pubsub: PubSub | None = None,
    presence: Presence | None = None,
    connect: Callable[[dict[str, Any]], Any] | None = None,
) -> tuple[tornado.web.Application, Endpoint]:
    """`connect` may be sync or async; it runs after token auth, and TP_CONNECT_URL decides after it."""
    if pubsub is None and settings.pubsub != "local":
        from .presence.cluster import ClusterPresence
        from .pubsub.redis import RedisPubSub

        pubsub = RedisPubSub(settings.pubsub, canary_timeout=max(3.0, min(15.0, settings.presence_down_after / 2)))
        presence = presence or ClusterPresence(pubsub, down_after=settings.presence_down_after)
    pubsub = pubsub or LocalPubSub()
    endpoint = Endpoint(
        settings,
        router or default_router(faults=settings.faults, backend_topics=settings.join_topic_patterns),
        pubsub,
        presence or LocalPresence(pubsub),
        connect or accept_all,
    )
    if settings.connect_url or settings.join_url or settings.event_url or settings.join_topic_patterns:
        endpoint.backend = BackendClient(settings, metrics=endpoint.metrics)  # TP_CONNECT_URL is asked in the handshake, after auth
    if getattr(pubsub, "metrics", False) is None:
        pubsub.metrics = endpoint.metrics  # type: ignore[attr-defined]  # broadcasts and fan-out sizes
    base = settings.socket_path.rstrip("/")
    sessions = LongPollSessions(endpoint, settings.secret_key_base)
    # Redis pub/sub: long-poll requests for a session another worker/node holds are forwarded to it.
    endpoint.longpoll_router = LongPollRouter.for_pubsub(pubsub)
    if endpoint.longpoll_router is not None:
        endpoint.longpoll_router.attach(sessions)
    transports: list[Any] = []
    if settings.websocket:  # TP_WEBSOCKET=off: upgrades get 404, clients fall back to long-poll
        transports.append((rf"{base}/websocket/?", PhoenixWebSocketHandler, {"endpoint": endpoint}))
    if settings.longpoll:
        transports.append((rf"{base}/longpoll/?", PhoenixLongPollHandler, {"endpoint": endpoint, "sessions": sessions}))
    if settings.supabase:
        from .supabase import supabase_routes

        transports += supabase_routes(endpoint, sessions)
    metrics_routes: list[Any] = []
    if settings.metrics and not settings.metrics_bind:
        metrics_routes.append((r"/metrics", MetricsHandler, {"metrics": endpoint.metrics}))
    app = tornado.web.Application(
        [
            *transports,
            (r"/health", HealthHandler, {"endpoint": endpoint}),
            *metrics_routes,
            # The browser console: the page at / and its files (phoenix.js is bundled, no CDN).
            (r"/()", tornado.web.StaticFileHandler, {"path": str(STATIC_DIR), "default_filename": "index.html"}),
            (r"/static/(.*)", tornado.web.StaticFileHandler, {"path": str(STATIC_DIR)}),
            # /api/* on the main port unless TP_API_BIND gives it its own listener (404 without TP_API_SECRET)
            *(api_routes(endpoint) if settings.api_address is None else []),
        ],
        default_handler_class=NotFoundHandler,
        websocket_max_message_size=settings.max_frame_size,
    )
    return app, endpoint


def make_api_app(endpoint: Endpoint) -> tornado.web.Application:
    """Only /api/* (for TP_API_BIND): everything else is 404."""
    return tornado.web.Application(api_routes(endpoint), default_handler_class=NotFoundHandler)


def make_metrics_app(endpoint: Endpoint) -> tornado.web.Application:
    """The separate listener of TP_METRICS_BIND: /metrics only."""
    return tornado.web.Application([(r"/metrics", MetricsHandler, {"metrics": endpoint.metrics})],
                                   default_handler_class=NotFoundHandler)
