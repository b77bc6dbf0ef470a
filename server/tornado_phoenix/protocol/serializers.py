"""V1 and V2 JSON serializers: client frames in, Phoenix messages out, and back.

Mirrors lib/phoenix/socket/serializers/v1_json_serializer.ex and v2_json_serializer.ex (plus the binary
layouts of assets/js/phoenix/serializer.js). Pure functions: bytes in, objects out.
"""

from __future__ import annotations

import struct
from typing import Any

from . import jsoncodec
from .errors import DecodeError, EncodeError
from .messages import PHX_REPLY, Broadcast, Message, Outgoing, Push, Reply

__all__ = ["Frame", "Serializer", "V1JsonSerializer", "V2JsonSerializer", "negotiate"]

# V2 binary frame kinds (first byte).
_PUSH, _REPLY, _BROADCAST = 0, 1, 2
_FIELD_MAX = 255


class Frame:
    """One encoded WebSocket message. `wire` caches the transport's framing so a broadcast frames once."""

    __slots__ = ("binary", "data", "wire")

    def __init__(self, data: bytes, binary: bool = False) -> None:
        self.data = data
        self.binary = binary
        self.wire: bytes | None = None

    def __repr__(self) -> str:
        kind = "binary" if self.binary else "text"
        return f"Frame({kind}, {self.data[:80]!r})"


class Serializer:
    """Interface shared by both versions. `vsn` is the major version it answers to."""

    vsn = 0

    def decode_text(self, text: str) -> Message:
        raise NotImplementedError

    def decode_binary(self, data: bytes) -> Message:
        raise NotImplementedError

    def encode(self, message: Outgoing) -> Frame:
        raise NotImplementedError


def _loads(text: str | bytes) -> Any:
    try:
        return jsoncodec.loads(text)
    except ValueError as exc:
        raise DecodeError(f"invalid JSON: {exc}") from None


class V2JsonSerializer(Serializer):
    """`[join_ref, ref, topic, event, payload]` text frames, plus the binary layouts of §3."""

    vsn = 2

    def decode_text(self, text: str) -> Message:
        value = _loads(text)
        if not isinstance(value, list) or len(value) < 5:
            raise DecodeError(f"expected a JSON array of 5 elements, got {_describe(value)}")
        join_ref, ref, topic, event, payload = value[:5]
        return Message(join_ref, ref, topic, event, payload)

    def decode_binary(self, data: bytes) -> Message:
        if len(data) < 5:
            raise DecodeError(f"binary frame of {len(data)} bytes is shorter than the 5-byte push header")
        if data[0] != _PUSH:
            raise DecodeError(f"binary frame kind {data[0]} is not a client push (kind 0)")
        (join_ref, ref, topic, event), end = read_binary_fields(data, data[1:5], 5, "binary push")
        return Message(join_ref, ref, topic, event, data[end:])

    def encode(self, message: Outgoing) -> Frame:
        if type(message) is Broadcast:
            return self.encode_broadcast(message)
        if type(message) is Reply:
            if isinstance(message.response, bytes):
                return Frame(
                    _binary(_REPLY, message.join_ref, message.ref, message.topic, message.status)
                    + message.response,
                    binary=True,
                )
            body = [
                message.join_ref,
                message.ref,
                message.topic,
                PHX_REPLY,
                {"response": message.response, "status": message.status},
            ]
            return Frame(jsoncodec.dumps(body))
        assert type(message) is Push, message
        if isinstance(message.payload, bytes):
            header = _binary(_PUSH, message.join_ref, message.topic, message.event)
            return Frame(header + message.payload, binary=True)
        body = [message.join_ref, message.ref, message.topic, message.event, message.payload]
        return Frame(jsoncodec.dumps(body))

    def encode_broadcast(self, message: Broadcast) -> Frame:
        if isinstance(message.payload, bytes):
            return Frame(_binary(_BROADCAST, message.topic, message.event) + message.payload, binary=True)
        return Frame(jsoncodec.dumps([None, None, message.topic, message.event, message.payload]))


class V1JsonSerializer(Serializer):
    """`{"topic","event","payload","ref"[,"join_ref"]}` objects in; `{event,payload,ref,topic}` out."""

    vsn = 1
    _REQUIRED = ("topic", "event", "payload", "ref")

    def decode_text(self, text: str) -> Message:
        value = _loads(text)
        if not isinstance(value, dict):
            raise DecodeError(f"expected a JSON object, got {_describe(value)}")
        missing = [key for key in self._REQUIRED if key not in value]
        if missing:
            raise DecodeError(f"message object lacks {', '.join(missing)}")
        return Message(value.get("join_ref"), value["ref"], value["topic"], value["event"], value["payload"])

    def decode_binary(self, data: bytes) -> Message:
        # Phoenix's V1 serializer JSON-decodes whatever arrives, binary opcode included.
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            raise DecodeError("binary frame on a V1 socket is not a JSON message") from None
        return self.decode_text(text)

    def encode(self, message: Outgoing) -> Frame:
        if type(message) is Reply:
            body = {
                "event": PHX_REPLY,
                "payload": {"response": message.response, "status": message.status},
                "ref": message.ref,
                "topic": message.topic,
            }
            if isinstance(message.response, bytes):
                raise EncodeError("binary payloads need the V2 serializer (vsn=2.0.0)")
        else:
            if isinstance(message.payload, bytes):
                raise EncodeError("binary payloads need the V2 serializer (vsn=2.0.0)")
            ref = message.ref if type(message) is Push else None
            body = {"event": message.event, "payload": message.payload, "ref": ref, "topic": message.topic}
        return Frame(jsoncodec.dumps(body))

    encode_broadcast = encode


def read_binary_fields(data: bytes, sizes: bytes, offset: int, what: str) -> tuple[list[str], int]:
    """The UTF-8 header fields of a binary frame, whose byte sizes are `sizes`, starting at `offset`; returns
    them and where the payload starts. Shared by Phoenix's kind 0 push and supabase's kind 3 broadcast."""
    end = offset + sum(sizes)
    if end > len(data):
        raise DecodeError(f"{what} header announces {end} bytes, frame has {len(data)}")
    fields = []
    for size in sizes:
        try:
            fields.append(data[offset : offset + size].decode("utf-8"))
        except UnicodeDecodeError:
            raise DecodeError(f"{what} field is not valid UTF-8") from None
        offset += size
    return fields, end


def _binary(kind: int, *fields: Any) -> bytes:
    encoded = [b"" if field is None else str(field).encode("utf-8") for field in fields]
    for field in encoded:
        if len(field) > _FIELD_MAX:
            raise EncodeError(f"binary frame field of {len(field)} bytes exceeds the 255-byte limit")
    return struct.pack(f"{len(encoded) + 1}B", kind, *map(len, encoded)) + b"".join(encoded)


def _describe(value: Any) -> str:
    if isinstance(value, list):
        return f"an array of {len(value)}"
    return type(value).__name__ if value is not None else "null"


V1 = V1JsonSerializer()
V2 = V2JsonSerializer()


def negotiate(vsn: str | None) -> Serializer | None:
    """Pick a serializer like Phoenix's `~> 1.0.0` / `~> 2.0.0` requirements; None means HTTP 403."""
    if vsn is None:
        return V1
    parts = vsn.split(".")
    # ASCII digits only: "²" and fullwidth "２" are digits to str.isdigit(); Phoenix refuses them (HTTP 403).
    if len(parts) != 3 or not all(part.isascii() and part.isdigit() for part in parts):
        return None
    major, minor, _patch = (int(part) for part in parts)
    if minor != 0:
        return None
    return {1: V1, 2: V2}.get(major)
