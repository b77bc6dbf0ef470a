"""The room:* channel on a real PhoenixSocket (fake transport, no network): joins await the room's load (the
reply carries the stored document, never an empty one), a join still in flight when the connection goes away
leaves no member behind, and a member's drop removes its awareness for the others."""

from __future__ import annotations

import asyncio
import json

from pycrdt import Awareness, Doc, Text, create_awareness_message
from tornado_phoenix.app import default_router
from tornado_phoenix.channels.socket import PhoenixSocket
from tornado_phoenix.config import Settings
from tornado_phoenix.endpoint import Endpoint
from tornado_phoenix.presence import LocalPresence
from tornado_phoenix.protocol.messages import Message
from tornado_phoenix.protocol.serializers import V2
from tornado_phoenix.pubsub import LocalPubSub
from tornado_phoenix.yjs import MemoryStore, RoomManager, codec


class FakeTransport:
    serializer = V2

    def __init__(self):
        self.frames = []

    def send(self, frame):
        self.frames.append(frame.data if frame.binary else json.loads(frame.data))

    def call_later(self, delay, callback):
        return asyncio.get_running_loop().call_later(delay, callback)

    def reject(self, code, reason):
        pass


class GatedStore(MemoryStore):
    """A store whose loads wait until the test opens the gate."""

    def __init__(self):
        super().__init__()
        self.gate = asyncio.Event()

    async def load(self, room):
        await self.gate.wait()
        return await super().load(room)


def stored_text(text: str) -> bytes:
    doc = Doc()
    doc.get("text", type=Text).insert(0, text)
    return doc.get_update()


async def settle():
    for _ in range(20):
        await asyncio.sleep(0)


def make(store):
    pubsub = LocalPubSub()
    endpoint = Endpoint(Settings(yjs_store="memory"), default_router(), pubsub, LocalPresence(pubsub))
    endpoint.yjs = RoomManager(pubsub, store=store, ttl=3600)
    return endpoint


def connect(endpoint):
    transport = FakeTransport()
    return PhoenixSocket(endpoint, transport, {}), transport


def replies(transport):
    return [f for f in transport.frames if isinstance(f, list) and f[3] == "phx_reply"]


def test_joins_wait_for_the_load_and_get_the_stored_document():
    async def main():
        store = GatedStore()
        store.rooms["room:a"] = [stored_text("stored before")]
        endpoint = make(store)
        (one, t1), (two, t2) = connect(endpoint), connect(endpoint)
        one.handle_message(Message("1", "1", "room:a", "phx_join", {"user_id": "u1"}))
        two.handle_message(Message("1", "1", "room:a", "phx_join", {"user_id": "u2"}))
        await settle()
        assert replies(t1) == [] and replies(t2) == []  # nothing before the load completes
        store.gate.set()
        await settle()
        for transport in (t1, t2):
            (reply,) = replies(transport)
            doc = Doc()
            doc.apply_update(bytes(reply[4]["response"]["state"]))
            assert str(doc.get("text", type=Text)) == "stored before"
        assert len(endpoint.yjs.rooms["room:a"].members) == 2

    asyncio.run(main())


def test_a_join_in_flight_when_the_connection_goes_away_leaves_no_member():
    async def main():
        store = GatedStore()
        endpoint = make(store)
        socket, transport = connect(endpoint)
        socket.handle_message(Message("1", "1", "room:b", "phx_join", {}))
        await settle()
        socket.terminate("closed")
        store.gate.set()
        await settle()
        room = endpoint.yjs.rooms["room:b"]
        assert room.members == {} and transport.frames == []
        assert room.unload_handle is not None  # no member: the unload is scheduled

    asyncio.run(main())


def test_a_dropped_member_s_awareness_is_removed_for_the_others():
    async def main():
        store = GatedStore()
        store.gate.set()
        endpoint = make(store)
        (alice, _ta), (bob, tb) = connect(endpoint), connect(endpoint)
        for sock in (alice, bob):
            sock.handle_message(Message("1", "1", "room:c", "phx_join", {"protocol": "yjs"}))
        await settle()
        doc = Doc()
        awareness = Awareness(doc)
        awareness.set_local_state({"user": {"name": "alice"}})
        alice.handle_message(Message("1", "2", "room:c", "yjs",
                                     create_awareness_message(awareness.encode_awareness_update([doc.client_id]))))
        await settle()
        room = endpoint.yjs.rooms["room:c"]
        assert list(room.awareness.states) == [doc.client_id]
        tb.frames.clear()
        alice.terminate("closed")
        await settle()
        assert room.awareness.states == {}
        removal = [f for f in tb.frames if isinstance(f, bytes)]
        header = bytes([2, len("room:c"), len("yjs")]) + b"room:cyjs"  # a V2 binary broadcast of `yjs`
        assert len(removal) == 1 and removal[0].startswith(header)
        message = codec.parse_message(removal[0][len(header):])
        assert message.entries == ((doc.client_id, 1, None),)  # alice's state, now null

    asyncio.run(main())
