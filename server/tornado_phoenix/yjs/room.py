"""Rooms: one pycrdt Doc (+ Awareness) per `room:*` topic, its members, persistence and unloading.

`RoomManager.get("room:notes")` loads the room from the store once (every concurrent joiner awaits the
same load; nobody sees the document before it is complete). Members apply updates and awareness through
the room; every change goes out through the endpoint's pubsub on the internal topic `yjs:<topic>`, to
which every loaded copy of the room subscribes (on this node today; on every node once a Redis pubsub
sits behind the same interface). Each copy then sends it to its own members, each in its protocol:

    y-protocols member:  [null,null,"room:notes","yjs",<binary [0,2,update] | [1,awareness]>]   (V2 kind 2)
    JSON member:         [null,null,"room:notes","update",{"data":[1,2,...]}]

The member the change came from is skipped. The relay payload is
`kind(1) node_id(8) member_id(8) data`; a copy on another node applies the update to its own Doc.

Persistence: every update the Doc accepts is appended to the store by one writer task (group commit,
a batch per write; failed batches are retried with backoff, never dropped). After `COMPACT_ROWS` appended
rows (or as many bytes as the document itself) the room writes its whole state as one row instead
(`replace`), which deletes the older rows. A room with no members is unloaded `TP_YJS_ROOM_TTL` seconds
later, only once its state is durable; a rejoin before that cancels the unload.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Callable
from typing import Any

import orjson
from pycrdt import Awareness, Doc

from ..protocol.messages import Broadcast
from ..protocol.serializers import Frame
from . import codec
from .store import Op, Store, open_store

__all__ = ["RoomManager", "Room", "Member", "RoomError", "JSON", "YJS"]

log = logging.getLogger("tornado_phoenix.yjs")

JSON = "json"  # the seeds' protocol: `update` {"data": [...]} pushes and broadcasts
YJS = "yjs"  # y-protocols over binary `yjs_sync` / `yjs` events (y_ex's Phoenix provider)

COMPACT_ROWS = 200
COMPACT_MIN_BYTES = 64 * 1024
_KIND_UPDATE, _KIND_AWARENESS = 0, 1
_RELAY_EVENT = "yjs_relay"


class RoomError(Exception):
    """A refused request; `reason` goes to the client as {"reason": ...}."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class _RelaySerializer:
    """What a Room 'decodes' pubsub broadcasts with: the relay payload itself, untouched."""

    vsn = 0

    def encode_broadcast(self, message: Broadcast) -> Frame:
        return Frame(message.payload, binary=True)

    encode = encode_broadcast


_RELAY = _RelaySerializer()


class Member:
    __slots__ = ("id", "channel", "protocol", "client_ids")

    def __init__(self, member_id: int, channel: Any, protocol: str) -> None:
        self.id = member_id
        self.channel = channel
        self.protocol = protocol
        self.client_ids: set[int] = set()  # awareness client ids this member introduced


class Room:
    serializer = _RELAY  # as a pubsub Subscriber

    def __init__(self, manager: RoomManager, topic: str) -> None:
        self.manager = manager
        self.topic = topic
        self.relay_topic = "yjs:" + topic
        self.doc: Doc = Doc()
        self.awareness = Awareness(self.doc)
        self.awareness.set_local_state(None)  # the server is not a collaborator
        self.members: dict[Any, Member] = {}
        self.size = 0  # upper bound of the encoded document's size in bytes
        self.loading: asyncio.Future | None = None
        self.closed = False
        self.unload_handle: asyncio.TimerHandle | None = None
        self.seq = 0  # store ops enqueued
        self.durable = 0  # store ops committed
        self.compacted_seq = -1  # seq of the last `replace` (nothing to flush while seq == compacted_seq)
        self.rows_since_compact = 0
        self.bytes_since_compact = 0
        self._waiters: list[tuple[int, asyncio.Future]] = []
        self.version = 0  # bumped on every change of the document
        self._json_state: tuple[int, orjson.Fragment] | None = None
        self._changes: list[bytes] = []
        self._subscription = self.doc.observe(lambda event: self._changes.append(event.update))

    # ---- loading ------------------------------------------------------------------------------------

    def _load_rows(self, rows: list[bytes]) -> None:
        for row in rows:
            self.doc.apply_update(row)
        self._changes.clear()
        self.size = len(self.doc.get_update())
        self.rows_since_compact = len(rows)
        self.compacted_seq = 0 if len(rows) <= 1 else -1

    # ---- members ------------------------------------------------------------------------------------

    def add_member(self, channel: Any, protocol: str) -> Member:
        self.prune()
        member = Member(self.manager.next_member_id(), channel, protocol)
        self.members[channel] = member
        if self.unload_handle is not None:
            self.unload_handle.cancel()
            self.unload_handle = None
        log.info("member joined room=%s conn=%s protocol=%s members=%d", self.topic, _conn(channel), protocol,
                 len(self.members))
        return member

    def remove_member(self, channel: Any, reason: str = "left") -> None:
        member = self.members.pop(channel, None)
        if member is None:
            return
        gone = [cid for cid in member.client_ids if cid in self.awareness.states]
        if gone:
            self.awareness.remove_awareness_states(gone, member)
            self._relay(_KIND_AWARENESS, self.awareness.encode_awareness_update(gone), member.id)
        log.info("member left room=%s conn=%s reason=%s members=%d", self.topic, _conn(channel), reason,
                 len(self.members))
        if not self.members:
            self.manager.schedule_unload(self)

    def prune(self) -> None:
        """Forget members whose channel died without a leave (a crashed channel gets no handle_leave)."""
        for channel in [channel for channel in self.members if not getattr(channel, "alive", True)]:
            self.remove_member(channel, "crashed")

    # ---- changes from members -----------------------------------------------------------------------

    def apply_update(self, update: bytes, member: Member | None) -> None:
        """Apply a Yjs v1 update from a member; RoomError on a refused one (nothing applied)."""
        limits = self.manager
        if len(update) > limits.max_update_bytes:
            raise RoomError("update too large")
        if self.size + len(update) > limits.max_doc_bytes:
            self.size = len(self.doc.get_update())  # the running estimate only grows: measure before refusing
            if self.size + len(update) > limits.max_doc_bytes:
                raise RoomError("document too large")
        self._changes.clear()
        try:
            self.doc.apply_update(update)
        except BaseException as exc:  # pyo3 panics are BaseException
            if isinstance(exc, (KeyboardInterrupt, SystemExit, asyncio.CancelledError)):
                raise
            self._changes.clear()
            raise RoomError("invalid update") from None
        changes, self._changes = self._changes, []
        if changes:
            self.version += 1
            self._json_state = None  # a 1 MiB document is 3.7 MB as JSON: keep it only while it is current
        for change in changes:
            self.size += len(change)
            self.manager.persist(self, "append", change)
            self._relay(_KIND_UPDATE, change, member.id if member else 0)

    def apply_awareness(self, message: codec.AwarenessMessage, member: Member) -> None:
        if len(message.update) > self.manager.max_update_bytes:
            raise RoomError("update too large")
        self.awareness.apply_awareness_update(message.update, member)
        for client_id, _clock, state in message.entries:
            if state is None:
                member.client_ids.discard(client_id)
            else:
                member.client_ids.add(client_id)
        self._relay(_KIND_AWARENESS, message.update, member.id)

    def json_state(self) -> orjson.Fragment:
        """The whole document as a JSON array of byte values (the seeds' join reply), encoded once per version."""
        if self._json_state is None or self._json_state[0] != self.version:
            self._json_state = (self.version, orjson.Fragment(orjson.dumps(list(self.doc.get_update()))))
        return self._json_state[1]

    def sync_replies(self, state_vector: bytes) -> list[bytes]:
        """Answer a SyncStep1: SyncStep2 (what the client lacks), our SyncStep1, then all awareness."""
        try:
            diff = self.doc.get_update(state_vector)
        except BaseException as exc:  # pyo3 panics are BaseException
            if isinstance(exc, (KeyboardInterrupt, SystemExit, asyncio.CancelledError)):
                raise
            raise RoomError("invalid update") from None
        replies = [codec.sync_step2(diff), codec.sync_step1(self.doc.get_state())]
        awareness = self.full_awareness()
        if awareness is not None:
            replies.append(awareness)
        return replies

    def full_awareness(self) -> bytes | None:
        ids = list(self.awareness.states)
        if not ids:
            return None
        return codec.awareness_message(self.awareness.encode_awareness_update(ids))

    # ---- relay (through pubsub) and local fan-out ----------------------------------------------------

    def _relay(self, kind: int, data: bytes, member_id: int) -> None:
        payload = bytes([kind]) + self.manager.node_id + member_id.to_bytes(8, "big") + data
        self.manager.pubsub.broadcast(self.relay_topic, _RELAY_EVENT, payload)

    def write_frame(self, frame: Frame) -> None:
        """A relayed change arrives (pubsub Subscriber): apply it if it came from another node, fan it out."""
        if self.closed:
            return
        payload = frame.data
        kind, node, member_id, data = payload[0], payload[1:9], int.from_bytes(payload[9:17], "big"), payload[17:]
        if node != self.manager.node_id:
            member_id = -1
            try:
                if kind == _KIND_UPDATE:
                    self._changes.clear()
                    self.doc.apply_update(data)
                    self._changes.clear()
                    self.size += len(data)
                    self.version += 1
                    self._json_state = None
                else:
                    self.awareness.apply_awareness_update(data, "remote")
            except Exception as exc:  # validated on its node; a bad one must not break this node's sender
                log.error("relayed change refused room=%s kind=%d bytes=%d: %s", self.topic, kind, len(data), exc)
                return
        self.fan_out(kind, data, member_id)

    def fan_out(self, kind: int, data: bytes, exclude_member: int) -> None:
        frames: dict[tuple[str, Any], Frame] = {}
        for channel, member in list(self.members.items()):
            if not getattr(channel, "alive", True):
                self.remove_member(channel, "crashed")
                continue
            if member.id == exclude_member or (kind == _KIND_AWARENESS and member.protocol != YJS):
                continue
            serializer = channel.socket.serializer
            key = (member.protocol, serializer)
            frame = frames.get(key)
            if frame is None:
                if member.protocol == YJS:
                    wire = codec.update_message(data) if kind == _KIND_UPDATE else codec.awareness_message(data)
                    message = Broadcast(self.topic, "yjs", wire)
                else:
                    message = Broadcast(self.topic, "update", {"data": list(data)})
                frame = frames[key] = serializer.encode_broadcast(message)
            channel.socket.write_frame(frame)

    # ---- durability -----------------------------------------------------------------------------------

    def durable_reached(self) -> None:
        waiters, self._waiters = self._waiters, []
        for seq, future in waiters:
            if seq <= self.durable:
                if not future.done():
                    future.set_result(None)
            else:
                self._waiters.append((seq, future))

    def wait_durable(self, seq: int) -> asyncio.Future:
        future = asyncio.get_running_loop().create_future()
        self._waiters.append((seq, future))
        self.durable_reached()
        return future

    def close(self) -> None:
        self.closed = True
        if self.unload_handle is not None:
            self.unload_handle.cancel()
            self.unload_handle = None
        self.manager.pubsub.unsubscribe(self.relay_topic, self)
        self.doc.unobserve(self._subscription)


def _conn(channel: Any) -> Any:
    socket = getattr(channel, "socket", None)
    return getattr(socket, "id", "-")


class RoomManager:
    """Every loaded room of this process, the store and its writer task."""

    def __init__(
        self,
        pubsub: Any,
        *,
        store: Store | str = "memory",
        ttl: float = 60.0,
        max_update_bytes: int = 1024 * 1024,
        max_doc_bytes: int = 64 * 1024 * 1024,
    ) -> None:
        self.pubsub = pubsub
        self._store_spec = store
        self._store: Store | None = store if not isinstance(store, str) else None
        self.ttl = ttl
        self.max_update_bytes = max_update_bytes
        self.max_doc_bytes = max_doc_bytes
        self.rooms: dict[str, Room] = {}
        self.node_id = os.urandom(8)
        self._member_ids = 0
        self._pending: list[tuple[Room, int, Op]] = []
        self._writer: asyncio.Task | None = None
        self.writes = 0  # store ops committed (bench, tests)
        self._sweeper: asyncio.TimerHandle | None = None
        self.on_unload: Callable[[Room], None] | None = None

    @property
    def store(self) -> Store:
        if self._store is None:  # opened on first use: a server that never serves a room touches no file
            assert isinstance(self._store_spec, str)
            self._store = open_store(self._store_spec)
            log.info("yjs store: %s", self._store.description)
        return self._store

    def next_member_id(self) -> int:
        self._member_ids += 1
        return self._member_ids

    # ---- load / unload --------------------------------------------------------------------------------

    async def get(self, topic: str) -> Room:
        """The loaded room (loading it first if needed); RoomError("room unavailable") if the store fails."""
        room = self.rooms.get(topic)
        if room is None:
            room = self.rooms[topic] = Room(self, topic)
            room.loading = asyncio.ensure_future(self._load(room))
        assert room.loading is not None
        await asyncio.shield(room.loading)
        return room

    async def _load(self, room: Room) -> None:
        started = time.perf_counter()
        try:
            rows = await self.store.load(room.topic)
            room._load_rows(rows)
        except Exception as exc:
            self.rooms.pop(room.topic, None)
            room.close()
            log.error("room load failed room=%s store=%s: %s (check that the store file is readable and not "
                      "corrupt; joins are refused until it loads)", room.topic, self.store.description, exc)
            raise RoomError("room unavailable") from None
        self.pubsub.subscribe(room.relay_topic, room)
        log.info("room loaded room=%s bytes=%d updates=%d ms=%.1f", room.topic, room.size, len(rows),
                 (time.perf_counter() - started) * 1000)
        self.schedule_unload(room)  # unloads after the TTL unless someone joins
        if self._sweeper is None:
            self._sweeper = asyncio.get_running_loop().call_later(self.sweep_interval, self._sweep)

    @property
    def sweep_interval(self) -> float:
        return min(max(self.ttl, 1.0), 30.0)

    def _sweep(self) -> None:
        """A crashed channel gets no handle_leave: forget such members, so their room can still unload."""
        self._sweeper = None
        for room in list(self.rooms.values()):
            if room.loading is not None and room.loading.done() and not room.closed:
                room.prune()
        if self.rooms:
            self._sweeper = asyncio.get_running_loop().call_later(self.sweep_interval, self._sweep)

    def schedule_unload(self, room: Room) -> None:
        if room.closed or room.members:
            return
        if room.unload_handle is not None:
            room.unload_handle.cancel()
        loop = asyncio.get_running_loop()
        room.unload_handle = loop.call_later(self.ttl, lambda: asyncio.ensure_future(self._unload(room)))

    async def _unload(self, room: Room) -> None:
        room.unload_handle = None
        room.prune()
        if room.closed or room.members or self.rooms.get(room.topic) is not room:
            return
        await self.flush(room)
        if room.closed or room.members or room.unload_handle is not None or room.durable < room.seq:
            self.schedule_unload(room)  # someone joined meanwhile (a no-op while members are in) or it changed
            return
        del self.rooms[room.topic]
        room.close()
        log.info("room unloaded room=%s bytes=%d", room.topic, room.size)
        if self.on_unload is not None:
            self.on_unload(room)

    # ---- persistence ----------------------------------------------------------------------------------

    def persist(self, room: Room, kind: str, data: bytes) -> int:
        room.seq += 1
        self._pending.append((room, room.seq, (kind, room.topic, data)))
        if kind == "replace":
            room.compacted_seq = room.seq
            room.rows_since_compact = 1
            room.bytes_since_compact = 0
        else:
            room.rows_since_compact += 1
            room.bytes_since_compact += len(data)
            if room.rows_since_compact >= COMPACT_ROWS or room.bytes_since_compact > max(COMPACT_MIN_BYTES, room.size):
                self.compact(room)
        if self._writer is None or self._writer.done():
            self._writer = asyncio.ensure_future(self._write_loop())
        return room.seq

    def compact(self, room: Room) -> int:
        """Queue the whole document as one row (deleting the older ones); returns its seq."""
        state = room.doc.get_update()
        room.size = len(state)
        return self.persist(room, "replace", state)

    async def flush(self, room: Room) -> None:
        """Make the room's current state durable as one row; waits (retrying) until the store has it."""
        started = time.perf_counter()
        seq = room.seq if room.seq == room.compacted_seq else self.compact(room)
        await room.wait_durable(seq)
        log.info("room flushed room=%s bytes=%d ms=%.1f", room.topic, room.size, (time.perf_counter() - started) * 1000)

    async def _write_loop(self) -> None:
        delay = 0.2
        while self._pending:
            batch, self._pending = self._pending, []
            try:
                await self.store.write(_coalesce([op for _, _, op in batch]))
            except Exception as exc:
                self._pending[:0] = batch
                rooms = sorted({room.topic for room, _, _ in batch})
                log.error("yjs store write failed (%d ops, rooms %s) store=%s: %s; retrying in %.1fs (check disk "
                          "space and permissions; rooms with unsaved changes stay loaded)", len(batch),
                          " ".join(rooms[:5]) + (" ..." if len(rooms) > 5 else ""), self.store.description, exc,
                          delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
                continue
            delay = 0.2
            self.writes += len(batch)
            touched = {}
            for room, seq, _ in batch:
                room.durable = max(room.durable, seq)
                touched[id(room)] = room
            for room in touched.values():
                room.durable_reached()

    async def close(self, timeout: float = 10.0) -> None:
        """SIGTERM: flush every loaded room (bounded), then close the store."""
        rooms = [room for room in self.rooms.values() if room.loading is not None and room.loading.done()
                 and not room.loading.exception()]
        if rooms:
            results = await asyncio.gather(
                *(asyncio.wait_for(self.flush(room), timeout) for room in rooms), return_exceptions=True
            )
            for room, result in zip(rooms, results, strict=False):
                if isinstance(result, BaseException):
                    log.error("room NOT flushed at shutdown room=%s: %s (changes since the last write are lost)",
                              room.topic, type(result).__name__)
        for room in list(self.rooms.values()):
            room.close()
        self.rooms.clear()
        if self._sweeper is not None:
            self._sweeper.cancel()
            self._sweeper = None
        if self._writer is not None and not self._writer.done():
            self._writer.cancel()  # only a failing store gets here; what it could not write is logged above
        if self._store is not None:
            await self._store.close()


def _coalesce(ops: list[Op]) -> list[Op]:
    """Drop the ops of a room that a later `replace` of the same room in the batch makes redundant."""
    last_replace = {room: n for n, (kind, room, _) in enumerate(ops) if kind == "replace"}
    if not last_replace:
        return ops
    return [op for n, op in enumerate(ops) if n >= last_replace.get(op[1], -1)]
