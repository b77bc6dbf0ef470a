"""Pub/sub across nodes over one Redis PUB/SUB channel (phoenix_pubsub_redis's design), redis.asyncio.

Every node subscribes to one channel, `tp:<namespace>`; a broadcast is delivered to this node's own
subscribers at once (the same `LocalPubSub` fast path, one encode per serializer) and published once to
Redis as an orjson envelope naming the sender's node id. Every other node decodes it and delivers it to its
own subscribers, encoding once per serializer; the sender skips its own envelope, so nothing arrives twice.

    PUBLISH tp:default {"k":"b","n":"host:4242:9f2c","t":"test:lobby","e":"shout","p":{"n":18446744073709551616}}
    PUBLISH tp:default {"k":"b","n":"host:4242:9f2c","t":"room:a","e":"update","x":"AAEC"}   (binary payload, base64)

The payload is JSON as Jason writes it (`jsoncodec.dumps`: exact big integers, shortest round-trip floats)
and decoded with `jsoncodec.loads`, so it reaches clients on other nodes byte for byte as it would locally.
Other envelope kinds (`"k"`) belong to cross-node presence (presence/cluster.py) and are handed to the
handler registered for them.

Redis trouble: publishing and subscribing are at-most-once. While Redis is unreachable local delivery goes
on, envelopes meant for other nodes are dropped (counted in `lost`), the subscriber reconnects with
exponential backoff (0.1 s doubling to 5 s), resubscribes, and runs the `on_connect` callbacks (presence
republishes its state). One log line per state change.
"""

from __future__ import annotations

import asyncio
import base64
import collections
import logging
import os
import socket
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import orjson
import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from ..protocol import jsoncodec
from .base import Subscriber
from .local import LocalPubSub

__all__ = ["RedisPubSub", "new_node_id", "redact_url", "encode_broadcast", "decode_envelope"]

log = logging.getLogger("tornado_phoenix.pubsub")

_BACKOFF_FIRST = 0.1
_BACKOFF_CAP = 5.0
_OUTBOX_MAX = 100_000  # envelopes waiting for the publisher; beyond this the oldest are dropped
_BATCH = 512


def new_node_id() -> str:
    """Unique per process start: host, pid and a random suffix (a restarted node is a new node)."""
    return f"{socket.gethostname()}:{os.getpid()}:{os.urandom(3).hex()}"


def redact_url(url: str) -> str:
    """The URL for logs and /health: the password replaced by `***`."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = f"{parts.username or ''}:***@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def encode_broadcast(node: str, topic: str, event: str, payload: Any) -> bytes:
    envelope: dict[str, Any] = {"k": "b", "n": node, "t": topic, "e": event}
    if isinstance(payload, (bytes, bytearray, memoryview)):
        envelope["x"] = base64.b64encode(bytes(payload)).decode()
    else:
        envelope["p"] = orjson.Fragment(jsoncodec.dumps(payload))
    return orjson.dumps(envelope)


def decode_envelope(data: bytes) -> dict[str, Any]:
    envelope = jsoncodec.loads(data)
    if not isinstance(envelope, dict) or "k" not in envelope or "n" not in envelope:
        raise ValueError("not a tornado-phoenix envelope")
    if envelope["k"] == "b" and "x" in envelope:
        envelope["p"] = base64.b64decode(envelope["x"])
    return envelope


class RedisPubSub:
    """`PubSub` across nodes. `start()` inside the running loop; `aclose()` flushes and disconnects."""

    backend = "redis"

    def __init__(self, url: str, *, namespace: str = "default", node_id: str | None = None,
                 canary_timeout: float = 15.0) -> None:
        self.url = url
        # A connection that looks fine but delivers nothing (half-open TCP, a paused or failed-over Redis):
        # we publish a tiny `ping` envelope every canary_timeout/4 s and reconnect when not even our own
        # envelopes came back for canary_timeout s (Centrifuge's probe publish).
        self.canary_timeout = canary_timeout
        self._last_heard = time.monotonic()
        self._peers_seen: dict[str, float] = {}  # other node id -> when we last heard from it
        self.node_id = node_id or new_node_id()
        self.channel = f"tp:{namespace}"
        self._ping = jsoncodec.dumps({"k": "ping", "n": self.node_id})
        self.local = LocalPubSub()
        self.connected = False
        self.lost = 0  # envelopes that could not be published (Redis down): at-most-once
        self.received = 0
        self.published = 0
        self.since = time.time()
        self.last_error = ""
        self._handlers: dict[str, Callable[[dict[str, Any]], None]] = {}
        self._on_connect: list[Callable[[], None]] = []
        self._state_listeners: list[Callable[[bool], None]] = []
        self._outbox: collections.deque[bytes] = collections.deque()
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._closing = False
        self._client: aioredis.Redis | None = None
        # Direct delegation keeps the local hot path exactly LocalPubSub's.
        self.subscribe = self.local.subscribe
        self.unsubscribe = self.local.unsubscribe
        self.subscriber_count = self.local.subscriber_count
        self.local_broadcast = self.local.broadcast

    # ---- PubSub interface ---------------------------------------------------------------------------------

    def broadcast(self, topic: str, event: str, payload: Any, *, exclude: Subscriber | None = None) -> int:
        delivered = self.local.broadcast(topic, event, payload, exclude=exclude)
        self.publish(encode_broadcast(self.node_id, topic, event, payload))
        return delivered

    # ---- for presence and the server ----------------------------------------------------------------------

    def on(self, kind: str, handler: Callable[[dict[str, Any]], None]) -> None:
        """Route envelopes of `kind` from other nodes to `handler`."""
        self._handlers[kind] = handler

    def on_connect(self, callback: Callable[[], None]) -> None:
        """Run after every (re)connection and resubscription."""
        self._on_connect.append(callback)

    def on_state(self, callback: Callable[[bool], None]) -> None:
        self._state_listeners.append(callback)

    def send(self, kind: str, body: dict[str, Any]) -> None:
        """Publish an envelope of `kind` (presence deltas, heartbeats...) to every other node."""
        self.publish(jsoncodec.dumps({**body, "k": kind, "n": self.node_id}))

    def publish(self, data: bytes) -> None:
        if not self.connected:
            self.lost += 1
            return
        if len(self._outbox) >= _OUTBOX_MAX:
            self._outbox.popleft()
            self.lost += 1
        self._outbox.append(data)
        self._wake.set()

    def peers(self) -> list[str]:
        """Other nodes heard from lately (each pings every canary_timeout/4 s); empty while disconnected."""
        if not self.connected:
            return []
        horizon = time.monotonic() - self.canary_timeout
        for node in [node for node, seen in self._peers_seen.items() if seen < horizon]:
            del self._peers_seen[node]
        return list(self._peers_seen)

    def health(self) -> dict[str, Any]:
        return {
            "backend": "redis",
            "url": redact_url(self.url),
            "connected": self.connected,
            "node": self.node_id,
            "since": round(self.since, 3),
            "lost": self.lost,
            "peers": len(self.peers()),
        }

    # ---- lifecycle ----------------------------------------------------------------------------------------

    def start(self) -> None:
        # No retries inside redis-py: a failed command surfaces at once and our loop owns the backoff.
        self._client = aioredis.from_url(
            self.url,
            retry=Retry(NoBackoff(), 0),
            socket_connect_timeout=2.0,
            socket_timeout=5.0,
            health_check_interval=2,
            client_name=f"tornado-phoenix:{self.node_id}",
        )
        loop = asyncio.get_running_loop()
        self._tasks = [loop.create_task(self._subscriber()), loop.create_task(self._publisher())]

    async def aclose(self, flush_timeout: float = 1.0) -> None:
        """Publish what is queued (bounded), then stop and disconnect."""
        deadline = time.monotonic() + flush_timeout
        while self._outbox and self.connected and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        self._closing = True
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            try:
                await task
            except (asyncio.CancelledError, Exception):
                pass
        if self._client is not None:
            try:
                await self._client.aclose()
            except (RedisError, OSError):
                pass

    # ---- internals ----------------------------------------------------------------------------------------

    def _set_connected(self, connected: bool, error: BaseException | None = None) -> None:
        if connected == self.connected:
            return
        self.connected = connected
        self.since = time.time()
        if connected:
            log.info("pubsub: connected to %s, subscribed to %s as node %s",
                     redact_url(self.url), self.channel, self.node_id)
        else:
            self.last_error = _describe(error)
            self._outbox.clear()
            log.warning("pubsub: lost %s (%s); local delivery continues, cross-node messages are dropped "
                        "until it is back, reconnecting with backoff", redact_url(self.url), self.last_error)
        for listener in self._state_listeners:
            listener(connected)

    async def _subscriber(self) -> None:
        assert self._client is not None
        delay = _BACKOFF_FIRST
        first = True
        while not self._closing:
            pubsub = self._client.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(self.channel)
                await self._client.ping()
                self._set_connected(True)
                delay = _BACKOFF_FIRST
                for callback in self._on_connect:
                    callback()
                self._last_heard = last_ping = time.monotonic()
                unanswered: float | None = None  # when a ping went out that we have not heard anything since
                while True:
                    message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=0.5)
                    if message is not None and message.get("type") == "message":
                        self._last_heard = time.monotonic()
                        unanswered = None
                        self._dispatch(message["data"])
                    now = time.monotonic()
                    if now - last_ping >= self.canary_timeout / 4:
                        # Published from this loop and timed after PUBLISH returned, so a starved event loop
                        # (a busy machine) delays the ping and its reading alike instead of looking like Redis.
                        await self._client.publish(self.channel, self._ping)
                        last_ping = time.monotonic()
                        if unanswered is None:
                            unanswered = last_ping
                    if unanswered is not None and now - unanswered > self.canary_timeout:
                        raise ConnectionError(f"nothing received, not even our own ping, for "
                                              f"{now - unanswered:.0f} s")
            except asyncio.CancelledError:
                raise
            except (RedisError, OSError) as exc:
                if first and not self.connected:
                    log.warning("pubsub: cannot reach %s (%s); serving local members only, retrying with "
                                "backoff (check TP_PUBSUB and that Redis is running)",
                                redact_url(self.url), _describe(exc))
                    self.last_error = _describe(exc)
                self._set_connected(False, exc)
            finally:
                first = False
                try:
                    await pubsub.aclose()
                except (RedisError, OSError):
                    pass
            await asyncio.sleep(delay)
            delay = min(delay * 2, _BACKOFF_CAP)

    def _dispatch(self, data: bytes) -> None:
        try:
            envelope = decode_envelope(data)
        except (ValueError, TypeError) as exc:
            log.warning("pubsub: dropped a malformed envelope on %s (%s): %r", self.channel, exc, data[:80])
            return
        if envelope["n"] == self.node_id:
            return  # our own: already delivered locally
        self.received += 1
        self._peers_seen[envelope["n"]] = time.monotonic()
        kind = envelope["k"]
        try:
            if kind == "ping":
                return
            if kind == "b":
                self.local.broadcast(envelope["t"], envelope["e"], envelope["p"])
                return
            handler = self._handlers.get(kind)
            if handler is not None:
                handler(envelope)
        except Exception:
            log.exception("pubsub: failed to handle a %r envelope from node %s", kind, envelope["n"])

    async def _publisher(self) -> None:
        assert self._client is not None
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._outbox:
                batch = [self._outbox.popleft() for _ in range(min(_BATCH, len(self._outbox)))]
                try:
                    if len(batch) == 1:
                        await self._client.publish(self.channel, batch[0])
                    else:
                        async with self._client.pipeline(transaction=False) as pipe:
                            for data in batch:
                                pipe.publish(self.channel, data)
                            await pipe.execute()
                    self.published += len(batch)
                except asyncio.CancelledError:
                    raise
                except (RedisError, OSError) as exc:
                    # No retry: a pipeline that broke halfway may have been published, and a retry could deliver
                    # twice. (redis-py's pool already replaces a connection that died while idle, at checkout.)
                    self.lost += len(batch)
                    log.debug("pubsub: publish of %d envelope(s) failed: %s", len(batch), _describe(exc))


def _describe(exc: BaseException | None) -> str:
    if exc is None:
        return "unknown error"
    text = str(exc) or type(exc).__name__
    return text if len(text) <= 200 else text[:200] + "..."
