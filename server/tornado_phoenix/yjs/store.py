"""Where room documents live between loads: `memory` or one SQLite file (`TP_YJS_STORE`).

A store keeps, per room, a list of Yjs v1 updates. Two operations write it, always in batches (one
transaction per batch, so many rooms' updates share one commit):

    ("append",  "room:notes", b"\\x01\\x02...")   one more update row
    ("replace", "room:notes", b"\\x01\\x05...")   the whole document as one row: every older row is deleted

`replace` is compaction: the room writes its full state (`Doc.get_update()`, garbage-collected) after
enough appended rows, so the file follows the documents' size, not their edit history. Loading a room
reads its rows in order and applies them.

SQLite runs in one dedicated thread (the event loop never waits on disk): WAL journal, `synchronous=FULL`,
so a batch whose commit returned survives `kill -9` and a power cut.

    sqlite:///data/yjs.sqlite3        relative to the working directory
    sqlite:////var/lib/tp/yjs.db      absolute
    memory                            nothing survives a restart
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Protocol

__all__ = ["Store", "MemoryStore", "SQLiteStore", "open_store", "parse_store_url", "Op"]

Op = tuple[str, str, bytes]  # (kind "append" | "replace", room, data)


class Store(Protocol):
    description: str

    async def load(self, room: str) -> list[bytes]: ...

    async def write(self, ops: Sequence[Op]) -> None:
        """Apply every op in order, atomically; raise on failure (the caller retries the same batch)."""
        ...

    async def close(self) -> None: ...


def parse_store_url(url: str) -> Path | None:
    """None for `memory`, else the SQLite file's path; ValueError names the accepted forms."""
    if url == "memory":
        return None
    prefix = "sqlite:///"
    if not url.startswith(prefix) or len(url) == len(prefix):
        raise ValueError(
            f"{url!r}: expected memory, sqlite:///relative/file.db or sqlite:////absolute/file.db"
        )
    return Path(url[len(prefix):])


def open_store(url: str) -> Store:
    path = parse_store_url(url)
    return MemoryStore() if path is None else SQLiteStore(path)


class MemoryStore:
    description = "memory (no persistence)"

    def __init__(self) -> None:
        self.rooms: dict[str, list[bytes]] = {}
        self.fail_writes: Exception | None = None  # tests set it to see a failing store

    async def load(self, room: str) -> list[bytes]:
        return list(self.rooms.get(room, ()))

    async def write(self, ops: Sequence[Op]) -> None:
        if self.fail_writes is not None:
            raise self.fail_writes
        for kind, room, data in ops:
            if kind == "replace":
                self.rooms[room] = [data]
            else:
                self.rooms.setdefault(room, []).append(data)

    async def close(self) -> None:
        pass


_SCHEMA = """
CREATE TABLE IF NOT EXISTS yjs_updates (
    id   INTEGER PRIMARY KEY AUTOINCREMENT,
    room TEXT NOT NULL,
    data BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS yjs_updates_room ON yjs_updates (room, id);
"""


class SQLiteStore:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.description = f"sqlite {path}"
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="yjs-store")
        self._conn: sqlite3.Connection | None = None

    # Everything below `_` runs in the store thread.
    def _connect(self) -> sqlite3.Connection:
        if self._conn is None:
            if self.path.parent != Path(""):
                self.path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=FULL")
            conn.executescript(_SCHEMA)
            self._conn = conn
        return self._conn

    def _load(self, room: str) -> list[bytes]:
        conn = self._connect()
        return [bytes(row[0]) for row in conn.execute("SELECT data FROM yjs_updates WHERE room=? ORDER BY id", (room,))]

    def _write(self, ops: Sequence[Op]) -> None:
        conn = self._connect()
        conn.execute("BEGIN IMMEDIATE")
        try:
            for kind, room, data in ops:
                if kind == "replace":
                    conn.execute("DELETE FROM yjs_updates WHERE room=?", (room,))
                conn.execute("INSERT INTO yjs_updates (room, data) VALUES (?, ?)", (room, data))
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise

    def _close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    async def _run(self, fn, *args):
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    async def load(self, room: str) -> list[bytes]:
        return await self._run(self._load, room)

    async def write(self, ops: Sequence[Op]) -> None:
        await self._run(self._write, ops)

    async def close(self) -> None:
        await self._run(self._close)
        self._executor.shutdown(wait=True)

    def stats(self) -> tuple[int, int]:
        """(rows, bytes) in the file, for tests and the bench; call from the event loop only when idle."""
        conn = sqlite3.connect(self.path)
        try:
            rows, size = conn.execute("SELECT count(*), coalesce(sum(length(data)), 0) FROM yjs_updates").fetchone()
            return rows, size
        finally:
            conn.close()
