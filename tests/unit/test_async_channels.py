"""Channels may await (issue 9 §4): async join/handle_in/handle_leave/after_join on a PhoenixSocket with a fake
transport. One socket's messages stay in order while a callback is awaited; other sockets are not delayed; a
connection that goes away mid-await drops the result and still cleans up; a raise in a coroutine crashes only
its channel."""

from __future__ import annotations

import asyncio
import json

from tornado_phoenix.channels import Channel, NoReply, Stop, error, ok
from tornado_phoenix.channels.router import Router
from tornado_phoenix.channels.socket import PhoenixSocket
from tornado_phoenix.config import Settings
from tornado_phoenix.endpoint import Endpoint
from tornado_phoenix.presence import LocalPresence
from tornado_phoenix.protocol.messages import Message
from tornado_phoenix.protocol.serializers import V2
from tornado_phoenix.pubsub import LocalPubSub


class FakeTransport:
    serializer = V2

    def __init__(self):
        self.frames = []
        self.rejected = None

    def send(self, frame):
        self.frames.append(json.loads(frame.data))

    def call_later(self, delay, callback):
        return asyncio.get_running_loop().call_later(delay, callback)

    def reject(self, code, reason):
        self.rejected = (code, reason)

    def take(self):
        frames, self.frames = self.frames, []
        return frames


class Gate:
    """An asyncio.Event per name, created on first use, so a test can hold a coroutine at a chosen point."""

    def __init__(self):
        self.events: dict[str, asyncio.Event] = {}
        self.log: list[str] = []

    def __getitem__(self, name):
        return self.events.setdefault(name, asyncio.Event())


GATE: Gate


class SlowChannel(Channel):
    async def join(self, payload):
        GATE.log.append(f"join start {self.topic}")
        if payload.get("wait"):
            await GATE[payload["wait"]].wait()
        if payload.get("raise"):
            raise RuntimeError("join failed on purpose")
        GATE.log.append(f"join end {self.topic}")
        return ok({"joined": self.topic}) if not payload.get("refuse") else error({"reason": "refused"})

    async def after_join(self):
        GATE.log.append(f"after_join {self.topic}")
        self.push("welcome", {})

    async def handle_in(self, event, payload):
        if payload.get("wait"):
            await GATE[payload["wait"]].wait()
        if event == "boom":
            raise ValueError("handle_in failed on purpose")
        if event == "later":
            ref = self.reply_ref()
            await asyncio.sleep(0)
            self.reply(ref, ok({"later": True}))
            return NoReply
        if event == "stop":
            return Stop("done", ok({}))
        GATE.log.append(f"in {event}")
        return ok({"event": event})

    async def handle_leave(self, reason):
        await asyncio.sleep(0)
        GATE.log.append(f"leave {self.topic} {reason}")


class SyncChannel(Channel):
    def handle_in(self, event, payload):
        GATE.log.append(f"sync {event}")
        return ok({})


def make_endpoint():
    pubsub = LocalPubSub()
    router = Router([("slow:*", SlowChannel), ("sync:*", SyncChannel)])
    return Endpoint(Settings(), router, pubsub, LocalPresence(pubsub))


def make_socket(endpoint):
    transport = FakeTransport()
    return PhoenixSocket(endpoint, transport, {}), transport


async def settle(predicate, what, timeout=5.0):
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        assert loop.time() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.001)


def run(coro):
    global GATE
    GATE = Gate()
    asyncio.run(coro)


def test_async_join_reply_then_after_join_then_queued_messages_in_order():
    async def main():
        socket, transport = make_socket(make_endpoint())
        socket.handle_message(Message("1", "1", "slow:a", "phx_join", {"wait": "load"}))
        socket.handle_message(Message("1", "2", "slow:a", "first", {}))
        socket.handle_message(Message(None, "3", "phoenix", "heartbeat", {}))
        socket.handle_message(Message("1", "4", "slow:a", "second", {}))
        await asyncio.sleep(0.01)
        assert transport.take() == []  # the join is still awaited: nothing overtakes it
        GATE["load"].set()
        await settle(lambda: len(transport.frames) == 5, "5 frames")
        assert transport.take() == [
            ["1", "1", "slow:a", "phx_reply", {"response": {"joined": "slow:a"}, "status": "ok"}],
            ["1", None, "slow:a", "welcome", {}],
            ["1", "2", "slow:a", "phx_reply", {"response": {"event": "first"}, "status": "ok"}],
            [None, "3", "phoenix", "phx_reply", {"response": {}, "status": "ok"}],
            ["1", "4", "slow:a", "phx_reply", {"response": {"event": "second"}, "status": "ok"}],
        ]
        assert GATE.log == ["join start slow:a", "join end slow:a", "after_join slow:a", "in first", "in second"]

    run(main())


def test_a_slow_callback_on_one_socket_does_not_delay_another_socket():
    async def main():
        endpoint = make_endpoint()
        slow, slow_t = make_socket(endpoint)
        fast, fast_t = make_socket(endpoint)
        slow.handle_message(Message("1", "1", "slow:a", "phx_join", {"wait": "never"}))
        fast.handle_message(Message("1", "1", "sync:b", "phx_join", {}))
        fast.handle_message(Message("1", "2", "sync:b", "go", {}))
        assert fast_t.take() == [
            ["1", "1", "sync:b", "phx_reply", {"response": {}, "status": "ok"}],
            ["1", "2", "sync:b", "phx_reply", {"response": {}, "status": "ok"}],
        ]
        assert slow_t.take() == []
        slow.terminate()
        GATE["never"].set()
        await asyncio.sleep(0.01)
        assert slow_t.take() == []

    run(main())


def test_reply_ref_inside_async_handle_in_and_stop():
    async def main():
        socket, transport = make_socket(make_endpoint())
        socket.handle_message(Message("1", "1", "slow:a", "phx_join", {}))
        socket.handle_message(Message("1", "2", "slow:a", "later", {}))
        socket.handle_message(Message("1", "3", "slow:a", "stop", {}))
        await settle(lambda: len(transport.frames) == 5, "5 frames")
        frames = transport.take()
        assert frames[2] == ["1", "2", "slow:a", "phx_reply", {"response": {"later": True}, "status": "ok"}]
        assert frames[3] == ["1", "3", "slow:a", "phx_reply", {"response": {}, "status": "ok"}]
        assert frames[4] == ["1", "1", "slow:a", "phx_close", {}]
        await settle(lambda: "leave slow:a done" in GATE.log, "the async handle_leave")
        assert "slow:a" not in socket.channels

    run(main())


def test_raise_in_async_callbacks_crashes_only_that_channel():
    async def main():
        socket, transport = make_socket(make_endpoint())
        socket.handle_message(Message("1", "1", "slow:a", "phx_join", {}))
        socket.handle_message(Message("2", "2", "slow:b", "phx_join", {}))
        socket.handle_message(Message("1", "3", "slow:a", "boom", {}))
        socket.handle_message(Message("2", "4", "slow:b", "still", {}))
        socket.handle_message(Message("3", "5", "slow:c", "phx_join", {"raise": True}))
        await settle(lambda: len(transport.frames) == 7, "7 frames")
        frames = transport.take()
        assert ["1", "1", "slow:a", "phx_error", {}] in frames
        assert ["2", "4", "slow:b", "phx_reply", {"response": {"event": "still"}, "status": "ok"}] in frames
        assert frames[-1] == ["3", "5", "slow:c", "phx_reply", {"response": {"reason": "join crashed"},
                                                                  "status": "error"}]
        assert set(socket.channels) == {"slow:b"}
        assert transport.rejected is None

    run(main())


def test_connection_closed_during_async_join_drops_the_reply_and_cleans_up():
    async def main():
        endpoint = make_endpoint()
        socket, transport = make_socket(endpoint)
        socket.handle_message(Message("1", "1", "slow:a", "phx_join", {"wait": "load"}))
        socket.handle_message(Message("1", "2", "slow:a", "queued", {}))
        socket.terminate()
        GATE["load"].set()
        await settle(lambda: "leave slow:a closed" in GATE.log, "the cleanup leave")
        assert transport.take() == []
        assert "in queued" not in GATE.log
        assert endpoint.channels == 0 and socket.channels == {}

    run(main())


def test_refused_async_join_is_not_registered():
    async def main():
        endpoint = make_endpoint()
        socket, transport = make_socket(endpoint)
        socket.handle_message(Message("1", "1", "slow:a", "phx_join", {"refuse": True}))
        await settle(lambda: transport.frames, "the join reply")
        assert transport.take() == [["1", "1", "slow:a", "phx_reply", {"response": {"reason": "refused"},
                                                                       "status": "error"}]]
        assert endpoint.channels == 0

    run(main())


def test_duplicate_async_join_sends_old_close_after_new_reply():
    async def main():
        socket, transport = make_socket(make_endpoint())
        socket.handle_message(Message("1", "1", "slow:a", "phx_join", {}))
        await settle(lambda: len(transport.frames) == 2, "first join")
        transport.take()
        socket.handle_message(Message("2", "2", "slow:a", "phx_join", {"wait": "load"}))
        GATE["load"].set()
        await settle(lambda: len(transport.frames) == 3, "second join")
        assert transport.take() == [
            ["2", "2", "slow:a", "phx_reply", {"response": {"joined": "slow:a"}, "status": "ok"}],
            ["1", "1", "slow:a", "phx_close", {}],
            ["2", None, "slow:a", "welcome", {}],
        ]
        await settle(lambda: "leave slow:a duplicate_join" in GATE.log, "old instance's leave")

    run(main())
