"""Server: listen, and shut down cleanly (every socket closed with 1001, then exit)."""

from __future__ import annotations

import asyncio
import logging

import tornado.httpserver

from . import __version__
from .app import make_app
from .config import Settings
from .protocol.errors import CloseCode

__all__ = ["Server"]

log = logging.getLogger("tornado_phoenix.server")


class Server:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.app, self.endpoint = make_app(settings)
        self.http: tornado.httpserver.HTTPServer | None = None

    def start(self) -> None:
        self.http = tornado.httpserver.HTTPServer(self.app, xheaders=False)
        # Bandit's listen backlog; Tornado's default of 128 drops SYNs in a reconnect storm.
        self.http.listen(self.settings.port, self.settings.host, backlog=1024)
        log.info(
            "tornado-phoenix %s listening on http://%s:%s (WebSocket at ws://%s:%s%s/websocket) channels=%s",
            __version__, self.settings.host, self.settings.port, self.settings.host, self.settings.port,
            self.settings.socket_path, " ".join(self.endpoint.router.patterns()),
        )

    async def shutdown(self) -> None:
        """Stop accepting, close every socket with 1001 (clients reconnect), wait for them, bounded."""
        if self.http is not None:
            self.http.stop()
        self.endpoint.draining = True
        connections = list(self.endpoint.connections)
        log.info("shutting down: closing %d connection(s) with 1001", len(connections))
        for handler in connections:
            handler.shutdown(CloseCode.GOING_AWAY)
        deadline = asyncio.get_running_loop().time() + self.settings.shutdown_timeout
        while self.endpoint.connections and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.05)
        for handler in list(self.endpoint.connections):
            handler.on_connection_close()  # clients that never answered the close: drop them
        if self.http is not None:
            await self.http.close_all_connections()
        log.info("stopped")
