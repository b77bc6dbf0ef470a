"""Plain HTTP handlers: /health and the 404 for everything unknown."""

from __future__ import annotations

import orjson
import tornado.web

from .. import __version__
from ..endpoint import Endpoint
from ..workers import pubsub_health

__all__ = ["HealthHandler", "NotFoundHandler"]


class HealthHandler(tornado.web.RequestHandler):
    def initialize(self, endpoint: Endpoint) -> None:
        self.endpoint = endpoint

    def get(self) -> None:
        self.set_header("Content-Type", "application/json")
        self.set_header("Cache-Control", "no-store")
        endpoint = self.endpoint
        pubsub = pubsub_health(endpoint)
        body = {
            "status": "ok" if pubsub["connected"] else "degraded",
            "version": __version__,
            "uptime_s": round(endpoint.uptime(), 3),
            "connections": len(endpoint.connections),
            "channels": endpoint.channels,
            "limits": endpoint.limits.snapshot(),
            "pubsub": pubsub,
        }
        router = endpoint.longpoll_router
        if router is not None:  # long-poll routing across nodes: this process's sessions and in-flight forwards
            body["longpoll"] = router.health()
        if endpoint.workers is not None:  # --workers: the sum over the live workers, and each one's state
            workers = endpoint.workers.all()
            body["connections"] = sum(worker["connections"] for worker in workers)
            body["channels"] = sum(worker["channels"] for worker in workers)
            body["workers"] = workers
            if not all(worker["pubsub"]["connected"] for worker in workers):
                body["status"] = "degraded"
        self.finish(orjson.dumps(body))


class NotFoundHandler(tornado.web.RequestHandler):
    def prepare(self) -> None:
        self.set_status(404)
        self.set_header("Content-Type", "text/plain; charset=utf-8")
        self.finish("not found")
