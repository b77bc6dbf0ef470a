"""Plain HTTP handlers: /health and the 404 for everything unknown."""

from __future__ import annotations

import orjson
import tornado.web

from .. import __version__
from ..endpoint import Endpoint

__all__ = ["HealthHandler", "NotFoundHandler"]


class HealthHandler(tornado.web.RequestHandler):
    def initialize(self, endpoint: Endpoint) -> None:
        self.endpoint = endpoint

    def get(self) -> None:
        self.set_header("Content-Type", "application/json")
        self.set_header("Cache-Control", "no-store")
        body = {
            "status": "ok",
            "version": __version__,
            "uptime_s": round(self.endpoint.uptime(), 3),
            "connections": len(self.endpoint.connections),
            "channels": self.endpoint.channels,
            "limits": self.endpoint.limits.snapshot(),
        }
        self.finish(orjson.dumps(body))


class NotFoundHandler(tornado.web.RequestHandler):
    def prepare(self) -> None:
        self.set_status(404)
        self.set_header("Content-Type", "text/plain; charset=utf-8")
        self.finish("not found")
