"""The one place that reaches into Tornado's WebSocket internals (tested against the pinned Tornado 6.5).

Stock Tornado tears the TCP connection down without a close frame on invalid UTF-8 and on reserved opcodes
(the client sees 1006), and echoes the client's own close code. Phoenix on Bandit sends 1007, 1002 and
always 1000. Clients decide whether to reconnect by that code, so we send Bandit's.
"""

from __future__ import annotations

import struct
from typing import TYPE_CHECKING, Any

from tornado.websocket import WebSocketProtocol13

from ..protocol.errors import CloseCode
from ..protocol.serializers import Frame

if TYPE_CHECKING:
    from tornado.concurrent import Future

__all__ = ["PhoenixWebSocketProtocol", "frame_bytes"]

_TEXT = 0x81  # FIN + opcode 1
_BINARY = 0x82  # FIN + opcode 2


def frame_bytes(frame: Frame) -> bytes:
    """The complete server-to-client WebSocket frame (unmasked, uncompressed), built once per Frame."""
    wire = frame.wire
    if wire is None:
        data = frame.data
        size = len(data)
        first = _BINARY if frame.binary else _TEXT
        if size < 126:
            header = struct.pack("BB", first, size)
        elif size <= 0xFFFF:
            header = struct.pack("!BBH", first, 126, size)
        else:
            header = struct.pack("!BBQ", first, 127, size)
        wire = frame.wire = header + data
    return wire


class PhoenixWebSocketProtocol(WebSocketProtocol13):
    """WebSocketProtocol13 with Bandit's close codes for bad UTF-8, reserved opcodes and client closes."""

    def _handle_message(self, opcode: int, data: bytes) -> Future[None] | None:
        if self.client_terminated:
            return None
        if opcode == 0x1:
            self._message_bytes_in += len(data)
            try:
                decoded = data.decode("utf-8")
            except UnicodeDecodeError:
                self.handler.reject(CloseCode.INVALID_PAYLOAD, "text frame is not valid UTF-8")  # type: ignore[attr-defined]
                return None
            return self._run_callback(self.handler.on_message, decoded)
        if opcode == 0x8:
            self.client_terminated = True
            if len(data) >= 2:
                self.close_code = struct.unpack(">H", data[:2])[0]
            if len(data) > 2:
                self.close_reason = data[2:].decode("utf-8", "replace")
            self.close(CloseCode.NORMAL)  # Bandit answers every client close with 1000
            return None
        if opcode in (0x2, 0x9, 0xA):
            return super()._handle_message(opcode, data)
        self.handler.reject(CloseCode.PROTOCOL_ERROR, f"reserved opcode {opcode:#x}")  # type: ignore[attr-defined]
        return None

    def write_wire(self, wire: bytes) -> Any:
        """Write pre-framed bytes: a broadcast frames once, not once per subscriber."""
        self._wire_bytes_out += len(wire)
        return self.stream.write(wire)
