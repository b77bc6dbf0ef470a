"""Server: listen, and shut down cleanly (every socket closed with 1001, then exit)."""

from __future__ import annotations

import asyncio
import logging
import resource

import tornado.httpserver
import tornado.ioloop

from . import __version__
from .app import make_api_app, make_app, make_metrics_app
from .config import Settings, metrics_address
from .protocol.errors import CloseCode
from .transport.tornado_compat import MAX_HEAD_BYTES, HardenedHTTPServer

__all__ = ["Server", "ApiBindError"]

log = logging.getLogger("tornado_phoenix.server")


class ApiBindError(Exception):
    """TP_API_BIND could not be listened on; the message says so and what to fix."""


class Server:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.app, self.endpoint = make_app(settings)
        self.http: HardenedHTTPServer | None = None
        self.api_http: HardenedHTTPServer | None = None
        self.metrics_http: tornado.httpserver.HTTPServer | None = None
        self._flusher: tornado.ioloop.PeriodicCallback | None = None

    def start(self, *, reuse_port: bool = False) -> None:
        """`reuse_port`: a --workers process; its siblings listen on the same ports (workers.py): the main port, and
        TP_METRICS_BIND / TP_API_BIND when set (any worker answers: /metrics reads every worker's figures, the API
        delivers through pub/sub to the members of every worker)."""
        settings = self.settings
        _raise_descriptor_limit(settings.max_connections)
        self.http = self._http_server(self.app)
        # Bandit's listen backlog; Tornado's default of 128 drops SYNs in a reconnect storm.
        self.http.listen(self.settings.port, self.settings.host, backlog=1024, reuse_port=reuse_port)
        for part in (self.endpoint.pubsub, self.endpoint.presence):  # Redis backends run tasks
            if hasattr(part, "start"):
                part.start()
        if self.settings.metrics and self.settings.metrics_bind:
            host, port = metrics_address(self.settings.metrics_bind)
            self.metrics_http = tornado.httpserver.HTTPServer(make_metrics_app(self.endpoint))
            self.metrics_http.listen(port, host, reuse_port=reuse_port)
            log.info("metrics on http://%s:%s/metrics", host, port)
        if self.endpoint.metrics.multiprocess_dir:
            # another worker's scrape reads this process's files: keep them current
            self._flusher = tornado.ioloop.PeriodicCallback(self.endpoint.metrics.flush, 5000)
            self._flusher.start()
        if self.endpoint.auth.enabled:
            log.info("auth=%s: connects need a token (param %r or phoenix.js authToken)",
                     self.endpoint.auth.mode, self.settings.auth_param)
        log.info(
            "tornado-phoenix %s listening on http://%s:%s (WebSocket at ws://%s:%s%s/websocket) channels=%s",
            __version__, self.settings.host, self.settings.port, self.settings.host, self.settings.port,
            self.settings.socket_path, " ".join(self.endpoint.router.patterns()),
        )
        api = self.settings.api_address
        if api is not None:
            self.api_http = self._http_server(make_api_app(self.endpoint))
            try:
                self.api_http.listen(api[1], api[0], reuse_port=reuse_port)
            except OSError as exc:
                self.http.stop()
                raise ApiBindError(f"cannot listen on {api[0]}:{api[1]} for the API: {exc.strerror or exc} "
                                   "(is another process using it? fix TP_API_BIND)") from exc
        if self.settings.api_secret:
            where = f"http://{api[0]}:{api[1]}" if api else f"http://{self.settings.host}:{self.settings.port}"
            log.info("server API on at %s/api (Authorization: Bearer <TP_API_SECRET>)", where)
        for name in ("connect_url", "join_url", "event_url"):
            if getattr(self.settings, name):
                log.info("callback %s: %s", name.removesuffix("_url"), getattr(self.settings, name))

    def _http_server(self, app) -> HardenedHTTPServer:
        settings = self.settings
        return HardenedHTTPServer(
            app,
            xheaders=False,
            header_timeout=settings.header_timeout,  # request head: Bandit's limits, then 414/431/400
            idle_connection_timeout=settings.header_timeout,  # Tornado's own header wait (default: 1 hour)
            body_timeout=60.0,  # Bandit's read_timeout
            max_header_size=MAX_HEAD_BYTES + 1024,
            max_body_size=settings.max_frame_size,  # default 100 MB, read into memory
        )

    async def shutdown(self) -> None:
        """Stop accepting, close every socket with 1001 (clients reconnect), wait for them, bounded."""
        if self.http is not None:
            self.http.stop()
        self.endpoint.draining = True
        if self.api_http is not None:
            self.api_http.stop()
        if self.metrics_http is not None:
            self.metrics_http.stop()
        if self._flusher is not None:
            self._flusher.stop()
        connections = list(self.endpoint.connections)
        log.info("shutting down: closing %d connection(s) with 1001", len(connections))
        for handler in connections:
            handler.shutdown(CloseCode.GOING_AWAY)
        deadline = asyncio.get_running_loop().time() + self.settings.shutdown_timeout
        while self.endpoint.connections and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.05)
        for handler in list(self.endpoint.connections):
            handler.on_connection_close()  # clients that never answered the close: drop them
        if hasattr(self.endpoint.presence, "stop"):
            await self.endpoint.presence.stop()  # other nodes: our members leave now, not after down_after
        if hasattr(self.endpoint.pubsub, "aclose"):
            await self.endpoint.pubsub.aclose()
        if self.http is not None:
            await self.http.close_all_connections()
        # Every loaded room:* document is written to the store before we exit (bounded like the sockets).
        await self.endpoint.yjs.close(timeout=max(self.settings.shutdown_timeout, 5.0))
        log.info("stopped")


def _raise_descriptor_limit(max_connections: int) -> None:
    """Raise the soft RLIMIT_NOFILE towards the hard one so TP_MAX_CONNECTIONS fits; warn when it cannot."""
    needed = max_connections + 64 if max_connections else 0
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if needed and soft < needed:
        target = needed if hard == resource.RLIM_INFINITY else min(needed, hard)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError):
            pass
    if needed and soft < needed:
        log.warning("descriptor limit %d is below TP_MAX_CONNECTIONS=%d (+64): accepts will pause at the limit; "
                    "raise it (ulimit -n, docker --ulimit nofile, LimitNOFILE) or lower TP_MAX_CONNECTIONS",
                    soft, max_connections)
