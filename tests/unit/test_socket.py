"""PhoenixSocket without any network: decoded messages in, encoded frames out (a fake transport)."""

from __future__ import annotations

import json

from tornado_phoenix.app import default_router
from tornado_phoenix.channels.socket import PhoenixSocket
from tornado_phoenix.config import Settings
from tornado_phoenix.endpoint import Endpoint
from tornado_phoenix.presence import LocalPresence, PresenceTracker
from tornado_phoenix.protocol.messages import Message
from tornado_phoenix.protocol.serializers import V2
from tornado_phoenix.pubsub import LocalPubSub


class FakeTransport:
    serializer = V2

    def __init__(self):
        self.frames = []
        self.timers = []

    def send(self, frame):
        self.frames.append(json.loads(frame.data) if not frame.binary else frame.data)

    def call_later(self, delay, callback):
        self.timers.append((delay, callback))

    def take(self):
        frames, self.frames = self.frames, []
        return frames


def make_socket(endpoint=None):
    if endpoint is None:
        pubsub = LocalPubSub()
        endpoint = Endpoint(Settings(), default_router(), pubsub, LocalPresence(pubsub))
    transport = FakeTransport()
    socket = PhoenixSocket(endpoint, transport, {})
    return socket, transport, endpoint


def send(socket, *frame):
    socket.handle_message(Message(*frame))


def test_heartbeat_reply_has_null_join_ref():
    socket, transport, _ = make_socket()
    send(socket, "7", "2", "phoenix", "heartbeat", {"x": 1})
    assert transport.take() == [[None, "2", "phoenix", "phx_reply", {"response": {}, "status": "ok"}]]


def test_duplicate_join_reply_then_old_close():
    socket, transport, endpoint = make_socket()
    send(socket, "1", "1", "echo:1", "phx_join", {"first": True})
    send(socket, "2", "2", "echo:1", "phx_join", {"second": True})
    assert transport.take() == [
        ["1", "1", "echo:1", "phx_reply", {"response": {"first": True}, "status": "ok"}],
        ["2", "2", "echo:1", "phx_reply", {"response": {"second": True}, "status": "ok"}],
        ["1", "1", "echo:1", "phx_close", {}],
    ]
    assert endpoint.channels == 1 and endpoint.pubsub.subscriber_count("echo:1") == 1


def test_terminate_untracks_presence_and_counts():
    socket_a, transport_a, endpoint = make_socket()
    socket_b, transport_b, _ = make_socket(endpoint)
    send(socket_a, "1", "1", "test:t", "phx_join", {"user_id": "a"})
    send(socket_b, "1", "1", "test:t", "phx_join", {"user_id": "b"})
    transport_a.take()
    socket_b.terminate()
    diff = transport_a.take()
    assert diff[0][3] == "presence_diff" and list(diff[0][4]["leaves"]) == ["b"]
    assert endpoint.channels == 1
    assert list(endpoint.presence.list("test:t")) == ["a"]


def test_tracker_diffs_and_state():
    tracker = PresenceTracker()
    assert tracker.track("o1", "t", "k", {"m": 1}) == {"joins": {"k": {"metas": [{"m": 1}]}}, "leaves": {}}
    tracker.track("o2", "t", "k", {"m": 2})
    assert tracker.list("t") == {"k": {"metas": [{"m": 1}, {"m": 2}]}}
    assert tracker.untrack("o1") == [("t", {"joins": {}, "leaves": {"k": {"metas": [{"m": 1}]}}})]
    assert tracker.untrack("nobody") == []
    tracker.untrack("o2")
    assert tracker.list("t") == {} and tracker.count("t") == 0


def test_phx_ref_shape():
    from tornado_phoenix.presence.local import new_phx_ref

    refs = {new_phx_ref() for _ in range(100)}
    assert len(refs) == 100 and all(len(ref) == 16 for ref in refs)


def test_draining_server_sends_no_presence_leaves():
    # issue 10 defect 10: on SIGTERM every member leaves; n leave diffs to n members would be O(n^2) frames.
    socket_a, transport_a, endpoint = make_socket()
    socket_b, transport_b, _ = make_socket(endpoint)
    send(socket_a, "1", "1", "test:t", "phx_join", {"user_id": "a"})
    send(socket_b, "1", "1", "test:t", "phx_join", {"user_id": "b"})
    transport_a.take()
    endpoint.draining = True
    socket_b.terminate()
    assert transport_a.take() == []
    assert list(endpoint.presence.list("test:t")) == ["a"] and endpoint.channels == 1
