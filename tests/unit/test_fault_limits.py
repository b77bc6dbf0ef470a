"""fault:* bounds (issue 10, defect 13) on PhoenixSocket with a fake transport whose timers the test runs."""

from __future__ import annotations

import itertools
import json

from tornado_phoenix.app import default_router
from tornado_phoenix.channels.fault import MAX_PUSH_AFTER_BYTES
from tornado_phoenix.channels.socket import PhoenixSocket
from tornado_phoenix.config import Settings
from tornado_phoenix.endpoint import Endpoint
from tornado_phoenix.limits import FaultBudget
from tornado_phoenix.presence import LocalPresence
from tornado_phoenix.protocol.messages import Message
from tornado_phoenix.protocol.serializers import V2
from tornado_phoenix.pubsub import LocalPubSub

_handles = itertools.count(1)


class TimerTransport:
    serializer = V2

    def __init__(self):
        self.frames = []
        self.timers = {}  # handle -> callback

    def send(self, frame):
        self.frames.append(json.loads(frame.data))

    def call_later(self, delay, callback):
        handle = next(_handles)
        self.timers[handle] = callback
        return handle

    def cancel_later(self, handle):
        self.timers.pop(handle, None)

    def run_timers(self):
        """Run every due timer (and the ones they schedule) until none is left."""
        ran = 0
        while self.timers:
            handle = min(self.timers)
            self.timers.pop(handle)()
            ran += 1
        return ran


def make(endpoint=None):
    if endpoint is None:
        pubsub = LocalPubSub()
        endpoint = Endpoint(Settings(), default_router(), pubsub, LocalPresence(pubsub))
    transport = TimerTransport()
    socket = PhoenixSocket(endpoint, transport, {})
    socket.handle_message(Message("1", "1", "fault:t", "phx_join", {}))
    transport.frames.clear()
    return socket, transport, endpoint


def push(socket, ref, event, payload):
    socket.handle_message(Message("1", str(ref), "fault:t", event, payload))


def test_timers_per_socket_are_capped_and_given_back_when_they_fire():
    socket, transport, endpoint = make()
    for ref in range(FaultBudget.TIMERS_PER_SOCKET):
        push(socket, ref, "delay", {"ms": 30000})
    assert transport.frames == []
    push(socket, "over", "delay", {"ms": 1})
    assert transport.frames[-1][4] == {
        "response": {"reason": "too many fault timers on this socket (at most 100 pending)"}, "status": "error"}
    assert endpoint.fault_budget.timers == 100
    transport.run_timers()
    assert endpoint.fault_budget.timers == 0 and endpoint.fault_budget.held_bytes == 0


def test_timers_and_held_payloads_go_with_the_socket():
    # 100 x 2 MiB push_after held 213 MiB for 30 s after the client left; now payloads are capped and the
    # timers are cancelled when the socket goes.
    socket, transport, endpoint = make()
    push(socket, 1, "push_after", {"ms": 30000, "payload": {"d": "x" * MAX_PUSH_AFTER_BYTES}})
    assert "payload must be at most 65536 bytes" in transport.frames[-1][4]["response"]["reason"]
    for ref in range(2, 12):
        push(socket, ref, "push_after", {"ms": 30000, "payload": {"d": "x" * 60000}})
    assert endpoint.fault_budget.held_bytes > 500_000 and len(transport.timers) == 10
    socket.terminate("closed")
    assert transport.timers == {}
    assert (endpoint.fault_budget.timers, endpoint.fault_budget.held_bytes) == (0, 0)


def test_held_bytes_per_socket_are_capped():
    socket, transport, endpoint = make()
    for ref in range(18):
        push(socket, ref, "push_after", {"ms": 30000, "payload": {"d": "x" * 60000}})
    assert "would exceed 1048576 bytes" in transport.frames[-1][4]["response"]["reason"]
    assert endpoint.fault_budget.held_bytes <= FaultBudget.HELD_BYTES_PER_SOCKET


def test_timers_per_server_are_capped():
    pubsub = LocalPubSub()
    endpoint = Endpoint(Settings(), default_router(), pubsub, LocalPresence(pubsub))
    sockets = [make(endpoint) for _ in range(FaultBudget.TIMERS_PER_SERVER // FaultBudget.TIMERS_PER_SOCKET)]
    for socket, _transport, _ in sockets:
        for ref in range(FaultBudget.TIMERS_PER_SOCKET):
            push(socket, ref, "delay", {"ms": 30000})
    socket, transport, _ = make(endpoint)
    push(socket, 1, "delay", {"ms": 10})
    assert "too many fault timers on this server" in transport.frames[-1][4]["response"]["reason"]


def test_crash_fault_cancels_its_timers():
    socket, transport, endpoint = make()
    push(socket, 1, "delay", {"ms": 30000})
    push(socket, 2, "crash", {})
    assert transport.timers == {} and endpoint.fault_budget.timers == 0


def test_storm_is_sent_in_slices_through_the_loop_then_replies():
    socket, transport, endpoint = make()
    push(socket, 2, "broadcast_storm", {"count": 1200})
    first_slice = len(transport.frames)
    assert 0 < first_slice < 1200  # the rest waits for the loop
    slices = transport.run_timers()
    assert slices >= 2
    storm = [f for f in transport.frames if f[3] == "storm"]
    assert [f[4]["seq"] for f in storm] == list(range(1200))
    assert transport.frames[-1] == ["1", "2", "fault:t", "phx_reply", {"response": {"sent": 1200}, "status": "ok"}]
    assert endpoint.fault_budget.storms == 0


def test_one_storm_per_socket_and_a_storm_stops_with_its_socket():
    socket, transport, endpoint = make()
    push(socket, 2, "broadcast_storm", {"count": 5000})
    push(socket, 3, "broadcast_storm", {"count": 1})
    assert transport.frames[-1][4]["response"] == {"reason": "a broadcast_storm from this socket is still running"}
    socket.terminate("closed")
    sent = len(transport.frames)
    transport.run_timers()
    assert len(transport.frames) == sent  # nothing more after the socket went
    assert endpoint.fault_budget.storms == 0


def test_storms_per_server_are_capped():
    pubsub = LocalPubSub()
    endpoint = Endpoint(Settings(), default_router(), pubsub, LocalPresence(pubsub))
    running = [make(endpoint) for _ in range(FaultBudget.STORMS_PER_SERVER)]
    for socket, _transport, _ in running:
        push(socket, 2, "broadcast_storm", {"count": 5000})
    socket, transport, _ = make(endpoint)
    push(socket, 2, "broadcast_storm", {"count": 1})
    assert "too many broadcast_storms running on this server" in transport.frames[-1][4]["response"]["reason"]
