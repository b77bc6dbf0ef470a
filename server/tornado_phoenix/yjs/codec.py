"""y-protocols messages (sync and awareness), parsed strictly before anything touches a document.

Framing is lib0's: a varUint message type, then a varUint8Array body. pycrdt's own helpers build the
outgoing messages (`create_sync_message`, `create_update_message`, `create_awareness_message`); parsing is
ours only because pycrdt's `Decoder` does not reject a truncated or trailing-garbage message, and a bad
message must be refused whole (nothing applied) with the reason `invalid update`.

    [0, 0, varUint8Array(stateVector)]        sync step 1   (client -> server on `yjs_sync`)
    [0, 1, varUint8Array(update)]             sync step 2   (server -> client reply, or client -> server)
    [0, 2, varUint8Array(update)]             update
    [1, varUint8Array(n, {clientID, clock, varString(JSON state | "null")} x n)]   awareness
    [3]                                       query awareness
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from pycrdt import YMessageType, YSyncMessageType, create_awareness_message, create_update_message
from pycrdt._sync import create_sync_step1_message, create_sync_step2_message  # not re-exported by pycrdt

__all__ = [
    "InvalidMessage",
    "SyncMessage",
    "AwarenessMessage",
    "QueryAwareness",
    "parse_message",
    "parse_awareness",
    "sync_step1",
    "sync_step2",
    "update_message",
    "awareness_message",
    "MESSAGE_QUERY_AWARENESS",
]

MESSAGE_QUERY_AWARENESS = 3
_MAX_VARUINT_BYTES = 8  # 2**56: far beyond any length or client id a sane client sends


class InvalidMessage(ValueError):
    """The bytes are not a y-protocols message we accept."""


@dataclass(frozen=True, slots=True)
class SyncMessage:
    kind: int  # YSyncMessageType: 0 step1 (body = state vector), 1 step2, 2 update (body = update)
    body: bytes


@dataclass(frozen=True, slots=True)
class AwarenessMessage:
    update: bytes  # the awareness update (the varUint8Array body), ready for Awareness.apply_awareness_update
    entries: tuple[tuple[int, int, object], ...]  # (clientID, clock, state or None)


@dataclass(frozen=True, slots=True)
class QueryAwareness:
    pass


class _Reader:
    __slots__ = ("data", "pos")

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def var_uint(self) -> int:
        value = 0
        shift = 0
        for _ in range(_MAX_VARUINT_BYTES):
            if self.pos >= len(self.data):
                raise InvalidMessage("truncated varUint")
            byte = self.data[self.pos]
            self.pos += 1
            value |= (byte & 0x7F) << shift
            if byte < 0x80:
                return value
            shift += 7
        raise InvalidMessage("varUint too long")

    def var_bytes(self) -> bytes:
        length = self.var_uint()
        end = self.pos + length
        if end > len(self.data):
            raise InvalidMessage(f"announces {length} bytes, {len(self.data) - self.pos} left")
        chunk = self.data[self.pos : end]
        self.pos = end
        return chunk

    def end(self) -> None:
        if self.pos != len(self.data):
            raise InvalidMessage(f"{len(self.data) - self.pos} trailing bytes")


def parse_message(data: bytes) -> SyncMessage | AwarenessMessage | QueryAwareness:
    """One y-protocols message, validated whole; raises InvalidMessage."""
    reader = _Reader(bytes(data))
    kind = reader.var_uint()
    if kind == YMessageType.SYNC:
        sub = reader.var_uint()
        if sub not in (YSyncMessageType.SYNC_STEP1, YSyncMessageType.SYNC_STEP2, YSyncMessageType.SYNC_UPDATE):
            raise InvalidMessage(f"unknown sync message type {sub}")
        body = reader.var_bytes()
        reader.end()
        return SyncMessage(sub, body)
    if kind == YMessageType.AWARENESS:
        update = reader.var_bytes()
        reader.end()
        return AwarenessMessage(update, parse_awareness(update))
    if kind == MESSAGE_QUERY_AWARENESS:
        reader.end()
        return QueryAwareness()
    raise InvalidMessage(f"unknown message type {kind}")


def parse_awareness(update: bytes) -> tuple[tuple[int, int, object], ...]:
    reader = _Reader(update)
    count = reader.var_uint()
    if count > len(update):
        raise InvalidMessage(f"awareness update announces {count} clients in {len(update)} bytes")
    entries = []
    for _ in range(count):
        client_id = reader.var_uint()
        clock = reader.var_uint()
        raw = reader.var_bytes()
        try:
            state = json.loads(raw.decode("utf-8")) if raw else None
        except (UnicodeDecodeError, ValueError):
            raise InvalidMessage("awareness state is not JSON") from None
        if state is not None and not isinstance(state, dict):
            raise InvalidMessage("awareness state is not a JSON object or null")
        entries.append((client_id, clock, state))
    reader.end()
    return tuple(entries)


def sync_step1(state_vector: bytes) -> bytes:
    return create_sync_step1_message(state_vector)


def sync_step2(update: bytes) -> bytes:
    return create_sync_step2_message(update)


def update_message(update: bytes) -> bytes:
    return create_update_message(update)


def awareness_message(awareness_update: bytes) -> bytes:
    return create_awareness_message(awareness_update)
