"""`/metrics` in Prometheus text format (prometheus-client, its own CollectorRegistry; TP_METRICS=on|off).

    GET /metrics  -> 200 text/plain; version=0.0.4
    # TYPE tornado_phoenix_connections gauge
    tornado_phoenix_connections 3.0
    tornado_phoenix_messages_in_total 1042.0
    tornado_phoenix_joins_total{pattern="test:*",result="ok"} 7.0

Hot paths (every frame in, every reply out, every broadcast) only bump plain int attributes of `Metrics`;
`flush()` moves the deltas into the prometheus objects before each scrape (and every few seconds when
PROMETHEUS_MULTIPROC_DIR is set, so each worker's files are current when another worker is scraped). Cold
events (connect, join, close, auth failure) call the prometheus objects directly. Gauges that another
module owns (Yjs rooms, documents...) register a callback with `add_gauge`; it is read at each flush.
"""

from __future__ import annotations

import os
from bisect import bisect_left
from collections.abc import Callable
from typing import TYPE_CHECKING

import tornado.web
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

if TYPE_CHECKING:
    from .endpoint import Endpoint

__all__ = ["Metrics", "MetricsHandler", "PREFIX"]

PREFIX = "tornado_phoenix_"
FANOUT_BUCKETS = (0, 1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000)


class Metrics:
    """Every metric of one server process. `registry` is what /metrics renders."""

    def __init__(self, *, multiprocess_dir: str | None = None) -> None:
        self.multiprocess_dir = multiprocess_dir if multiprocess_dir is not None else os.environ.get(
            "PROMETHEUS_MULTIPROC_DIR") or None
        # Metrics live in their own registry (never the global one); in multi-process mode the scrape
        # registry reads every worker's files instead.
        self._own = CollectorRegistry(auto_describe=True)
        if self.multiprocess_dir:
            from prometheus_client import multiprocess

            self.registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(self.registry, path=self.multiprocess_dir)
        else:
            self.registry = self._own
        r = self._own
        mode = {"multiprocess_mode": "livesum"}
        self.connections_gauge = Gauge(PREFIX + "connections", "open WebSocket connections", registry=r, **mode)
        self.channels_gauge = Gauge(PREFIX + "channels", "joined channels", registry=r, **mode)
        self.pending_gauge = Gauge(PREFIX + "pending_outbound_bytes", "bytes queued to clients, not yet sent",
                                   registry=r, **mode)
        self.connects = Counter(PREFIX + "connects", "WebSocket connect attempts by result", ["result"], registry=r)
        self.joins = Counter(PREFIX + "joins", "channel joins by route pattern and result",
                             ["pattern", "result"], registry=r)
        self.closes = Counter(PREFIX + "closes", "closed connections by close code", ["code"], registry=r)
        self.rejected = Counter(PREFIX + "rejected_frames", "frames that closed their socket, by reason",
                                ["reason"], registry=r)
        self.auth_failures = Counter(PREFIX + "auth_failures", "refused connects by auth reason", ["reason"],
                                     registry=r)
        self.rate_limited_sockets = Counter(PREFIX + "rate_limited_sockets", "sockets closed for their message rate",
                                            registry=r)
        self._messages_in = Counter(PREFIX + "messages_in", "messages received from clients", registry=r)
        self._bytes_in = Counter(PREFIX + "bytes_in", "payload bytes received (text frames: characters)",
                                 registry=r)
        self._messages_out = Counter(PREFIX + "messages_out", "messages sent to clients (fan-out included)",
                                     registry=r)
        self._bytes_out = Counter(PREFIX + "bytes_out", "payload bytes sent to clients (fan-out included)",
                                  registry=r)
        self._broadcasts = Counter(PREFIX + "broadcasts", "broadcasts published", registry=r)
        self.fanout = Histogram(PREFIX + "broadcast_fanout", "subscribers one broadcast was delivered to",
                                buckets=FANOUT_BUCKETS, registry=r)
        # callbacks to the app's backend (backend.py): outcome ok, error (refused, non-2xx, bad answer), timeout
        self.callbacks = Counter(PREFIX + "callbacks", "callbacks to the backend by kind and outcome",
                                 ["kind", "outcome"], registry=r)
        self.callback_seconds = Histogram(PREFIX + "callback_seconds", "callback latency to the backend by kind",
                                          ["kind"], registry=r)
        # plain ints bumped on the hot paths; flush() moves them into the counters above
        self.messages_in = 0
        self.bytes_in = 0
        self.messages_out = 0
        self.bytes_out = 0
        self.broadcasts = 0
        # fan-out sizes tallied per bucket (a bisect and two int adds per broadcast), folded in at flush
        self._fanout_counts = [0] * (len(FANOUT_BUCKETS) + 1)
        self._fanout_sum = 0
        self._flushed = [0, 0, 0, 0, 0]
        self._join_children: dict[tuple[str, str], Counter] = {}
        self._gauges: list[tuple[Gauge, Callable[[], float]]] = []
        self.endpoint: Endpoint | None = None

    def broadcast(self, delivered: int, size: int) -> None:
        """One broadcast reached `delivered` subscribers with frames of `size` bytes (called once per broadcast)."""
        self.broadcasts += 1
        self.messages_out += delivered
        self.bytes_out += delivered * size
        self._fanout_counts[bisect_left(FANOUT_BUCKETS, delivered)] += 1
        self._fanout_sum += delivered

    def joined(self, pattern: str, result: str) -> None:
        child = self._join_children.get((pattern, result))
        if child is None:  # labels() takes a lock and builds a key: once per (pattern, result) only
            child = self._join_children[(pattern, result)] = self.joins.labels(pattern, result)
        child.inc()

    def add_gauge(self, name: str, help: str, callback: Callable[[], float]) -> None:
        """A gauge whose value another module owns, read at each flush (e.g. Yjs rooms: `yjs_rooms`)."""
        gauge = Gauge(PREFIX + name, help, registry=self._own, multiprocess_mode="livesum")
        self._gauges.append((gauge, callback))

    def flush(self) -> None:
        current = (self.messages_in, self.bytes_in, self.messages_out, self.bytes_out, self.broadcasts)
        for counter, now, before in zip(
            (self._messages_in, self._bytes_in, self._messages_out, self._bytes_out, self._broadcasts),
            current, self._flushed, strict=True,
        ):
            if now > before:
                counter.inc(now - before)
        self._flushed = list(current)
        counts, self._fanout_counts = self._fanout_counts, [0] * len(self._fanout_counts)
        total, self._fanout_sum = self._fanout_sum, 0
        if total or any(counts):
            # prometheus_client's Histogram has no bulk observe; its bucket and sum values are its documented
            # building blocks (ValueClass, mmap-backed in multi-process mode), so add to them directly.
            for index, count in enumerate(counts):
                if count:
                    self.fanout._buckets[index].inc(count)
            self.fanout._sum.inc(total)
        endpoint = self.endpoint
        if endpoint is not None:
            self.connections_gauge.set(len(endpoint.connections))
            self.channels_gauge.set(endpoint.channels)
            self.pending_gauge.set(sum(handler.pending_bytes() for handler in endpoint.connections))
        for gauge, callback in self._gauges:
            gauge.set(callback())

    def render(self) -> bytes:
        self.flush()
        return generate_latest(self.registry)


class MetricsHandler(tornado.web.RequestHandler):
    def initialize(self, metrics: Metrics) -> None:
        self.metrics = metrics

    def get(self) -> None:
        self.set_header("Content-Type", CONTENT_TYPE_LATEST)
        self.set_header("Cache-Control", "no-store")
        self.finish(self.metrics.render())
