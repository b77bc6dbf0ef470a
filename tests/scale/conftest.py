"""Fixtures for scale-out tests: a real redis-server and server nodes (separate processes) sharing it."""

from __future__ import annotations

import json
import time
from collections.abc import Callable

import pytest

from tests.support.live_server import LiveServer
from tests.support.rawws import RawWebSocket
from tests.support.redis_server import RedisServer, redis_available

DOWN_AFTER = "2"  # TP_PRESENCE_DOWN_AFTER for the tests: a killed node's members leave within ~2 s


@pytest.fixture
def redis():
    assert redis_available(), "redis-server is not installed (apt-get install redis-server; scripts/system-deps.sh)"
    with RedisServer() as server:
        yield server


@pytest.fixture
def make_node(redis):
    nodes: list[LiveServer] = []

    def make(env: dict[str, str] | None = None, args: list[str] | None = None) -> LiveServer:
        base = {"TP_PUBSUB": redis.url, "TP_PRESENCE_DOWN_AFTER": DOWN_AFTER}
        node = LiveServer(env={**base, **(env or {})}, args=args).start()
        nodes.append(node)
        return node

    yield make
    for node in nodes:
        node.stop()


def wait_for(condition: Callable[[], object], what: str, timeout: float = 10.0) -> object:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def connected(node: LiveServer) -> bool:
    try:
        return node.health()["pubsub"]["connected"]
    except OSError:
        return False


class Member:
    """A raw V2 client joined to one topic; collects every frame it gets."""

    def __init__(self, port: int, topic: str, user: str) -> None:
        self.topic = topic
        self.ws = RawWebSocket(port)
        self.ws.send_text(json.dumps(["1", "1", topic, "phx_join", {"user_id": user}]))
        self.frames: list[list] = []
        self.presence: dict[str, set[str]] = {}  # key -> phx_refs, kept from presence_state/presence_diff
        self.next_event("phx_reply")
        self.state = self.next_event("presence_state")[4]

    def recv(self, timeout: float = 5.0) -> list:
        frame = json.loads(self.ws.recv_text(timeout))
        self.frames.append(frame)
        event, payload = frame[3], frame[4]
        if event == "presence_state":
            self.presence = {key: {m["phx_ref"] for m in value["metas"]} for key, value in payload.items()}
        elif event == "presence_diff":
            for key, value in payload["joins"].items():
                self.presence.setdefault(key, set()).update(m["phx_ref"] for m in value["metas"])
            for key, value in payload["leaves"].items():
                refs = self.presence.get(key, set()) - {m["phx_ref"] for m in value["metas"]}
                if refs:
                    self.presence[key] = refs
                else:
                    self.presence.pop(key, None)
        return frame

    def keys(self) -> list[str]:
        return sorted(self.presence)

    def wait_keys(self, keys: list[str], timeout: float = 10.0) -> None:
        """Read frames until the presence list (as a client's Presence would show it) equals `keys`."""
        deadline = time.monotonic() + timeout
        while self.keys() != sorted(keys):
            left = deadline - time.monotonic()
            assert left > 0, f"presence list is {self.keys()}, expected {sorted(keys)} within {timeout}s"
            try:
                self.recv(min(left, 0.5))
            except TimeoutError:
                pass

    def next_event(self, event: str, timeout: float = 10.0) -> list:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            frame = self.recv(max(0.05, deadline - time.monotonic()))
            if frame[3] == event:
                return frame
        raise AssertionError(f"no {event} within {timeout}s")

    def shout(self, payload: dict) -> None:
        self.ws.send_text(json.dumps(["1", "2", self.topic, "shout", payload]))

    def close(self) -> None:
        self.ws.close()

