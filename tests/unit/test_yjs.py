"""yjs/ without sockets: the y-protocols codec, store compaction (SQLite and memory), write-failure retry,
TTL unload only after a successful flush, and the pubsub relay between two copies of a room."""

from __future__ import annotations

import asyncio
import logging

import pytest
from pycrdt import Awareness, Doc, Text, create_awareness_message, create_sync_message, create_update_message
from tornado_phoenix.pubsub import LocalPubSub
from tornado_phoenix.yjs import MemoryStore, RoomError, RoomManager, SQLiteStore, codec, parse_store_url
from tornado_phoenix.yjs.room import COMPACT_ROWS


def edit(doc: Doc, fn) -> bytes:
    before = doc.get_state()
    fn(doc.get("text", type=Text))
    return doc.get_update(before)


# ---- codec ------------------------------------------------------------------------------------------------


def test_codec_parses_what_pycrdt_builds():
    doc = Doc()
    update = edit(doc, lambda t: t.insert(0, "hello"))
    step1 = codec.parse_message(create_sync_message(doc))
    assert step1 == codec.SyncMessage(0, doc.get_state())
    assert codec.parse_message(create_update_message(update)) == codec.SyncMessage(2, update)
    awareness = Awareness(doc)
    awareness.set_local_state({"user": {"name": "ann"}})
    parsed = codec.parse_message(create_awareness_message(awareness.encode_awareness_update([doc.client_id])))
    assert parsed.entries == ((doc.client_id, 1, {"user": {"name": "ann"}}),)
    assert isinstance(codec.parse_message(b"\x03"), codec.QueryAwareness)


@pytest.mark.parametrize("data", [
    b"", b"\x02", b"\x03\x00", b"\x00", b"\x00\x05\x00", b"\x00\x02\x05ab", b"\x00\x02\x01ab", b"\x00\x02\xff",
    b"\x01\x03\x01\x01\x01", b"\x01\x06\x01\x01\x01\x02{x", b"\x01\x06\x01\x01\x01\x02[]", b"\xff" * 12,
])
def test_codec_refuses_malformed_messages(data):
    with pytest.raises(codec.InvalidMessage):
        codec.parse_message(data)


def test_store_urls():
    assert parse_store_url("memory") is None
    assert str(parse_store_url("sqlite:///data/yjs.sqlite3")) == "data/yjs.sqlite3"
    assert str(parse_store_url("sqlite:////var/lib/x.db")) == "/var/lib/x.db"
    for bad in ("sqlite://x.db", "sqlite:///", "postgres://x", ""):
        with pytest.raises(ValueError):
            parse_store_url(bad)


# ---- store compaction ----------------------------------------------------------------------------------------


def test_sqlite_store_compacts_so_its_size_follows_the_document(tmp_path):
    path = tmp_path / "yjs.db"

    async def main():
        manager = RoomManager(LocalPubSub(), store=SQLiteStore(path), ttl=3600)
        room = await manager.get("room:c")
        client = Doc()
        history = 0
        # 2000 edits that each insert 100 characters and delete them again: long history, tiny document.
        for n in range(2000):
            for update in (edit(client, lambda t, n=n: t.insert(0, f"{n:04d}" + "x" * 96)),
                           edit(client, lambda t: t.__delitem__(slice(0, 100)))):
                history += len(update)
                room.apply_update(update, None)
            if n % 100 == 0:
                await asyncio.sleep(0)  # let the writer run, as the event loop would between messages
        room.apply_update(edit(client, lambda t: t.insert(0, "final")), None)
        await manager.flush(room)
        rows, size = manager.store.stats()
        doc_size = len(room.doc.get_update())
        await manager.close()
        return rows, size, doc_size, history

    rows, size, doc_size, history = asyncio.run(main())
    assert rows == 1  # flush writes one merged row in place of everything
    assert size == doc_size  # the file holds the (garbage-collected) document, not its history
    assert size * 4 < history

    async def reload():
        manager = RoomManager(LocalPubSub(), store=SQLiteStore(path), ttl=3600)
        room = await manager.get("room:c")
        text = str(room.doc.get("text", type=Text))
        await manager.close()
        return text

    assert asyncio.run(reload()) == "final"


def test_rows_stay_bounded_while_editing_without_a_flush():
    async def main():
        store = MemoryStore()
        manager = RoomManager(LocalPubSub(), store=store, ttl=3600)
        room = await manager.get("room:r")
        client = Doc()
        most = 0
        for _n in range(5 * COMPACT_ROWS):
            room.apply_update(edit(client, lambda t: t.insert(0, "ab")), None)
            await asyncio.sleep(0)
            most = max(most, len(store.rooms.get("room:r", ())))
        while manager._pending:
            await asyncio.sleep(0.01)
        check = Doc()
        for row in store.rooms["room:r"]:
            check.apply_update(row)
        return most, str(check.get("text", type=Text))

    most, text = asyncio.run(main())
    assert most <= COMPACT_ROWS + 1
    assert text == "ab" * 5 * COMPACT_ROWS


# ---- failures and unloading -----------------------------------------------------------------------------------


def test_failed_writes_are_retried_and_the_room_is_not_unloaded_until_saved(caplog):
    caplog.set_level(logging.INFO, logger="tornado_phoenix.yjs")

    async def main():
        store = MemoryStore()
        manager = RoomManager(LocalPubSub(), store=store, ttl=0.05)
        room = await manager.get("room:f")
        store.fail_writes = OSError(28, "No space left on device")
        room.apply_update(edit(Doc(), lambda t: t.insert(0, "precious")), None)
        await asyncio.sleep(1.0)  # several TTLs and retries
        still_loaded = manager.rooms.get("room:f") is room
        store.fail_writes = None
        for _ in range(200):
            if "room:f" not in manager.rooms:
                break
            await asyncio.sleep(0.05)
        return still_loaded, "room:f" in manager.rooms, store.rooms.get("room:f")

    still_loaded, loaded_after, rows = asyncio.run(main())
    assert still_loaded and not loaded_after
    check = Doc()
    for row in rows:
        check.apply_update(row)
    assert str(check.get("text", type=Text)) == "precious"
    failures = [r.message for r in caplog.records if "store write failed" in r.message]
    assert len(failures) >= 2 and "No space left on device" in failures[0] and "retrying" in failures[0]
    messages = [r.message for r in caplog.records]
    assert [m.split()[1] for m in messages if m.startswith("room ")][-2:] == ["flushed", "unloaded"]


def test_rejoin_cancels_unload_and_refusals_change_nothing():
    async def main():
        manager = RoomManager(LocalPubSub(), store=MemoryStore(), ttl=0.2, max_update_bytes=150, max_doc_bytes=300)
        room = await manager.get("room:t")

        before = room.doc.get_update()
        for update, reason in ((b"\x01\x02", "invalid update"), (b"x" * 151, "update too large")):
            with pytest.raises(RoomError) as exc:
                room.apply_update(update, None)
            assert exc.value.reason == reason
        client = Doc()
        room.apply_update(edit(client, lambda t: t.insert(0, "a" * 60)), None)
        room.apply_update(edit(client, lambda t: t.insert(0, "b" * 60)), None)
        middle = room.doc.get_update()
        with pytest.raises(RoomError) as exc:
            for _ in range(5):
                room.apply_update(edit(client, lambda t: t.insert(0, "c" * 90)), None)
        assert exc.value.reason == "document too large"
        assert before != middle and len(room.doc.get_update()) <= 300

        class Channel:  # the room only looks at `alive` outside fan-out
            alive = True

        room.add_member(Channel(), "json")
        room.remove_member(next(iter(room.members)))
        await asyncio.sleep(0.1)
        channel = Channel()
        room.add_member(channel, "json")  # rejoin before the TTL
        await asyncio.sleep(0.3)
        assert manager.rooms.get("room:t") is room
        channel.alive = False  # crashed without a leave: the sweep (every second here) forgets it, then unload
        for _ in range(60):
            if "room:t" not in manager.rooms:
                break
            await asyncio.sleep(0.1)
        assert "room:t" not in manager.rooms and not room.members

    asyncio.run(main())


def test_concurrent_joiners_share_one_load():
    class SlowStore(MemoryStore):
        loads = 0

        async def load(self, room):
            SlowStore.loads += 1
            await asyncio.sleep(0.05)
            return [edit(Doc(), lambda t: t.insert(0, "stored"))]

    async def main():
        manager = RoomManager(LocalPubSub(), store=SlowStore(), ttl=3600)
        rooms = await asyncio.gather(*(manager.get("room:l") for _ in range(5)))
        return rooms

    rooms = asyncio.run(main())
    assert SlowStore.loads == 1 and all(room is rooms[0] for room in rooms)
    assert str(rooms[0].doc.get("text", type=Text)) == "stored"


def test_relay_through_pubsub_reaches_another_copy_of_the_room():
    """Two managers on one pubsub stand for two nodes: an update applied on one reaches the other's doc."""

    async def main():
        pubsub = LocalPubSub()
        node_a = RoomManager(pubsub, store=MemoryStore(), ttl=3600)
        node_b = RoomManager(pubsub, store=MemoryStore(), ttl=3600)
        room_a, room_b = await node_a.get("room:x"), await node_b.get("room:x")
        room_a.apply_update(edit(Doc(), lambda t: t.insert(0, "over the wire")), None)
        return str(room_b.doc.get("text", type=Text))

    assert asyncio.run(main()) == "over the wire"


def test_a_batch_skips_rows_that_a_later_replace_covers():
    from tornado_phoenix.yjs.room import _coalesce

    ops = [("append", "a", b"1"), ("append", "b", b"1"), ("replace", "a", b"A"), ("append", "a", b"2"),
           ("append", "b", b"2")]
    assert _coalesce(ops) == [("append", "b", b"1"), ("replace", "a", b"A"), ("append", "a", b"2"),
                              ("append", "b", b"2")]


def test_deleted_content_frees_room_under_the_document_limit():
    async def main():
        manager = RoomManager(LocalPubSub(), store=MemoryStore(), ttl=3600, max_doc_bytes=4000)
        room = await manager.get("room:d")
        client = Doc()
        for _ in range(5):  # write 1.5 kB and delete it again, five times: the estimate passes 4000, the doc does not
            room.apply_update(edit(client, lambda t: t.insert(0, "z" * 1500)), None)
            room.apply_update(edit(client, lambda t: t.__delitem__(slice(0, 1500))), None)
        return len(room.doc.get_update())

    assert asyncio.run(main()) < 4000
