"""Callbacks to the app's backend (server -> backend): signed JSON POSTs over Tornado's AsyncHTTPClient.

Each callback is opt-in by URL (TP_CONNECT_URL, TP_JOIN_URL, TP_EVENT_URL). The body is one JSON object
with a `type`; the answer is one JSON object. Every request is signed with TP_API_SECRET so the backend can
trust it, and carries a timestamp so a captured request cannot be replayed later:

    POST /phoenix/join HTTP/1.1
    Content-Type: application/json
    X-TP-Event: join
    X-TP-Timestamp: 1795458074
    X-TP-Signature: sha256=<hex of HMAC-SHA256(TP_API_SECRET, "1795458074." + body)>

    {"type":"join","topic":"chat:42","payload":{"x":1},"assigns":{"user_id":"alice"},"socket_id":"user_socket:alice"}
    <- 200 {"allow":true,"response":{"history":[]}}

The event loop never blocks on a callback: at most TP_CALLBACK_CONCURRENCY are in flight (more wait their
turn), each has TP_CALLBACK_TIMEOUT seconds from the moment it is made (waiting included). A backend that
fails (connection refused, timeout, non-2xx, an answer that is not a JSON object) raises BackendError; the
callers turn it into `{"reason":"backend unavailable"}` (join, event) or HTTP 503 (connect). One log line per
callback says its kind, status and latency.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import time
from typing import Any

import orjson
import tornado.httpclient

from . import __version__
from .config import Settings

__all__ = ["BackendClient", "BackendError", "sign", "verify", "SIGNATURE_HEADER", "TIMESTAMP_HEADER"]

log = logging.getLogger("tornado_phoenix.backend")

SIGNATURE_HEADER = "X-TP-Signature"
TIMESTAMP_HEADER = "X-TP-Timestamp"
EVENT_HEADER = "X-TP-Event"
UNAVAILABLE = {"reason": "backend unavailable"}


class BackendError(Exception):
    """The backend did not give a usable answer; the message says why (for the log line)."""


def sign(secret: str, timestamp: str, body: bytes) -> str:
    """The X-TP-Signature value: `sha256=` + hex HMAC-SHA256 over `<timestamp>.<body>`."""
    mac = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


def verify(secret: str, timestamp: str | None, signature: str | None, body: bytes, *, tolerance: float = 300.0,
           now: float | None = None) -> bool:
    """What a backend does with a callback (a Python backend can import this): a constant-time signature check
    and a timestamp no older (or newer) than `tolerance` seconds."""
    if not timestamp or not signature:
        return False
    try:
        age = abs((time.time() if now is None else now) - int(timestamp))
    except ValueError:
        return False
    return age <= tolerance and hmac.compare_digest(sign(secret, timestamp, body), signature)


class BackendClient:
    """The server's side of the callbacks. One per Endpoint; `stats` counts outcomes per kind."""

    def __init__(self, settings: Settings, *, client: tornado.httpclient.AsyncHTTPClient | None = None,
                 metrics: Any = None) -> None:
        self.settings = settings
        self.metrics = metrics  # metrics.Metrics: tornado_phoenix_callbacks_total, tornado_phoenix_callback_seconds
        self.secret = settings.api_secret
        self.timeout = settings.callback_timeout
        self._slots = asyncio.Semaphore(settings.callback_concurrency)
        self._client = client
        self.stats: dict[str, dict[str, int]] = {}
        self.in_flight = 0

    @property
    def client(self) -> tornado.httpclient.AsyncHTTPClient:
        if self._client is None:
            # Our own instance (not the per-IOLoop shared one), as many connections as slots.
            self._client = tornado.httpclient.AsyncHTTPClient(
                force_instance=True, max_clients=self.settings.callback_concurrency
            )
        return self._client

    def _count(self, kind: str, outcome: str, seconds: float | None = None) -> None:
        counts = self.stats.setdefault(kind, {})
        counts[outcome] = counts.get(outcome, 0) + 1
        if self.metrics is not None:
            self.metrics.callbacks.labels(kind, outcome).inc()
            if seconds is not None:
                self.metrics.callback_seconds.labels(kind).observe(seconds)

    async def call(self, kind: str, url: str, body: dict[str, Any], *, what: str = "") -> dict[str, Any]:
        """POST `body` to `url` signed; return the JSON object answered, or raise BackendError."""
        data = orjson.dumps(body)
        started = time.monotonic()
        status: Any = "-"
        try:
            async with asyncio.timeout(self.timeout):
                async with self._slots:
                    self.in_flight += 1
                    try:
                        timestamp = str(int(time.time()))
                        request = tornado.httpclient.HTTPRequest(
                            url,
                            method="POST",
                            body=data,
                            headers={
                                "Content-Type": "application/json",
                                "User-Agent": f"tornado-phoenix/{__version__}",
                                EVENT_HEADER: kind,
                                TIMESTAMP_HEADER: timestamp,
                                SIGNATURE_HEADER: sign(self.secret, timestamp, data),
                            },
                            connect_timeout=self.timeout,
                            request_timeout=self.timeout,
                            follow_redirects=False,
                        )
                        try:
                            response = await self.client.fetch(request, raise_error=False)
                        except Exception as exc:  # refused, reset, DNS, TLS: raise_error=False covers only HTTP
                            raise BackendError(f"no answer: {_describe_error(exc)}") from None
                    finally:
                        self.in_flight -= 1
            status = response.code
            if response.code == 599:
                raise BackendError(f"no answer: {_describe_error(response.error)}")
            if not 200 <= response.code < 300:
                raise BackendError(f"HTTP {response.code} (the backend must answer 2xx with a JSON object)")
            try:
                answer = orjson.loads(response.body or b"")
            except orjson.JSONDecodeError:
                raise BackendError("the answer is not JSON (expected a JSON object)") from None
            if not isinstance(answer, dict):
                raise BackendError(f"the answer is a JSON {type(answer).__name__}, expected an object")
        except TimeoutError:
            self._count(kind, "timeout", time.monotonic() - started)
            log.warning("callback %s %s%s failed: no answer within %.1fs (TP_CALLBACK_TIMEOUT) ms=%.1f", kind, url,
                        what, self.timeout, (time.monotonic() - started) * 1000)
            raise BackendError(f"no answer within {self.timeout}s") from None
        except BackendError as exc:
            self._count(kind, "error", time.monotonic() - started)
            log.warning("callback %s %s%s failed: status=%s %s ms=%.1f", kind, url, what, status, exc,
                        (time.monotonic() - started) * 1000)
            raise
        self._count(kind, "ok", time.monotonic() - started)
        log.info("callback %s%s status=%s ms=%.1f", kind, what, status, (time.monotonic() - started) * 1000)
        return answer

    # ---- connect (the handshake) -------------------------------------------------------------------------

    async def connect(self, params: dict[str, Any], assigns: dict[str, Any],
                      claims: dict[str, Any] | None = None) -> dict[str, Any] | None:
        """TP_CONNECT_URL: the params (without the token) and what auth and the app's hook assigned (a JWT's
        claims, also under `claims`); returns the merged assigns, or None when the backend refuses."""
        body: dict[str, Any] = {"type": "connect", "params": params, "assigns": assigns}
        if claims is not None:
            body["claims"] = claims
        answer = await self.call("connect", self.settings.connect_url, body)
        if answer.get("allow") is not True:
            log.info("callback connect refused by the backend params=%s", ",".join(sorted(params)) or "-")
            return None
        extra = answer.get("assigns")
        if extra is not None and not isinstance(extra, dict):
            self._count("connect", "error")
            raise BackendError(f"connect answer's assigns is a JSON {type(extra).__name__}, expected an object")
        return {**assigns, **(extra or {})}


def _describe_error(error: BaseException | None) -> str:
    if error is None:
        return "unknown error"
    if isinstance(error, ConnectionRefusedError):
        return "connection refused (is the backend running? check the callback URL)"
    text = str(error) or type(error).__name__
    if "Timeout" in type(error).__name__ or "Timeout" in text:
        return f"{text} (TP_CALLBACK_TIMEOUT)"
    return text
