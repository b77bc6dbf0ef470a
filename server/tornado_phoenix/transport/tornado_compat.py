"""The one place that reaches into Tornado's WebSocket internals (tested against the pinned Tornado 6.5).

Stock Tornado tears the TCP connection down without a close frame on invalid UTF-8 and on reserved opcodes
(the client sees 1006), and echoes the client's own close code. Phoenix on Bandit sends 1007, 1002 and
always 1000. Clients decide whether to reconnect by that code, so we send Bandit's.
"""

from __future__ import annotations

import asyncio
import collections
import socket
import struct
import sys
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from tornado.httputil import HTTPHeaders
from tornado.iostream import IOStream, StreamClosedError, _StreamBuffer
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


class _LazyDeque:
    """The part of collections.deque that IOStream and its _StreamBuffer use, holding no deque (and so no
    memory block) while empty: a deque is created on the first append and dropped when emptied again."""

    __slots__ = ("_items",)

    def __init__(self) -> None:
        self._items: collections.deque[Any] | None = None

    def append(self, item: Any) -> None:
        items = self._items
        if items is None:
            items = self._items = collections.deque()
        items.append(item)

    def popleft(self) -> Any:
        items = self._items
        if items is None:
            raise IndexError("pop from an empty deque")
        item = items.popleft()
        if not items:
            self._items = None
        return item

    def __getitem__(self, index: int) -> Any:
        if self._items is None:
            raise IndexError("deque index out of range")
        return self._items[index]

    def __len__(self) -> int:
        return 0 if self._items is None else len(self._items)

    def __bool__(self) -> bool:
        return self._items is not None and bool(self._items)

    def __iter__(self) -> Iterator[Any]:
        return iter(()) if self._items is None else iter(self._items)

    def clear(self) -> None:
        self._items = None


_LINGER_SECONDS = 2.0
_LINGER_BYTES = 64 * 1024 * 1024


class PhoenixWebSocketProtocol(WebSocketProtocol13):
    """WebSocketProtocol13 with Bandit's close codes for bad UTF-8, reserved opcodes and client closes."""

    _linger = False
    _lingering = False
    # Absolute stream positions where queued frames end (only frames with bytes still queued), so that
    # drop_queue() can finish the frame being sent and drop whole frames after it.
    _frame_ends: collections.deque[int] | None = None

    def _note_queued(self, stream: IOStream) -> None:
        buffer = stream._write_buffer  # None once the write closed the stream (connection reset)
        if buffer is not None and buffer._size:
            ends = self._frame_ends
            if ends is None:
                ends = self._frame_ends = collections.deque()
            ends.append(stream._total_write_index)
        else:
            self._frame_ends = None

    def _write_frame(self, fin: bool, opcode: int, data: bytes, flags: int = 0) -> Future[None]:
        future = super()._write_frame(fin, opcode, data, flags)
        if self.stream is not None:
            self._note_queued(self.stream)
        return future

    def pending_bytes(self) -> int:
        stream = self.stream
        if stream is None or stream._closed:
            return 0
        return stream._total_write_index - stream._total_write_done_index

    def drop_queue(self) -> int:
        """Drop every queued frame except the rest of the one being sent (so what follows, the close frame, is
        still well-formed on the wire); returns the bytes dropped."""
        stream = self.stream
        if stream is None or stream._closed:
            return 0
        buffer = stream._write_buffer
        done = stream._total_write_done_index
        ends = self._frame_ends or collections.deque()
        while ends and ends[0] <= done:
            ends.popleft()
        keep = min(ends[0] - done, buffer._size) if ends else 0
        dropped = buffer._size - keep
        if dropped <= 0:
            return 0
        head = bytearray()
        while len(head) < keep:
            view = buffer.peek(keep - len(head))
            head += view
            buffer.advance(len(view))
        fresh = _StreamBuffer()
        fresh.append(head)
        stream._write_buffer = fresh
        stream._total_write_index -= dropped
        self._frame_ends = collections.deque([stream._total_write_index]) if keep else None
        return dropped

    def close(self, code: int | None = None, reason: str | None = None) -> None:
        if code == CloseCode.MESSAGE_TOO_BIG:
            # Tornado closes an oversized message with 1009 and then aborts at once. Closing with the rest of
            # the client's frame unread makes the kernel send RST, which can destroy the close frame before
            # the client reads it; linger instead. Phoenix sends no reason text.
            reason = None
            self._linger = True
        super().close(code, reason)

    def _abort(self) -> None:
        stream = self.stream
        if self._lingering:
            return  # _discard_then_close closes the stream when it is done
        if not self._linger or stream is None or stream.closed():
            super()._abort()
            return
        self._linger = False
        self._lingering = True
        self.client_terminated = True
        self.server_terminated = True
        try:
            stream.socket.shutdown(socket.SHUT_WR)  # FIN right after the close frame
        except OSError:
            pass
        stream.io_loop.add_callback(self._discard_then_close)

    async def _discard_then_close(self) -> None:
        stream = self.stream
        deadline = stream.io_loop.time() + _LINGER_SECONDS
        discarded = 0
        try:
            while discarded < _LINGER_BYTES and stream.io_loop.time() < deadline:
                chunk = await stream.read_bytes(65536, partial=True)
                discarded += len(chunk)
        except StreamClosedError:
            pass
        finally:
            self._lingering = False
            super()._abort()

    async def _receive_frame_loop(self) -> None:
        """Tornado awaits the frame loop at the end of the handshake, so the handshake's chain of coroutines
        (RequestHandler._execute, both get()s, accept_connection, _accept_connection: their frames, arguments
        and Tasks) would stay alive as long as the connection, about 3 KiB and 40 GC-tracked objects per
        socket. Run the loop as a task of its own and return: the handshake finishes and is freed."""
        self._shed_handshake_state()
        self._frame_task = asyncio.ensure_future(self._frame_loop())

    async def _frame_loop(self) -> None:
        try:
            await super()._receive_frame_loop()
        except (asyncio.CancelledError, ValueError):
            self._abort()  # what accept_connection does with these when it runs the loop itself
        except Exception:
            self.handler.log_exception(*sys.exc_info())
            self._abort()

    def _shed_handshake_state(self) -> None:
        """Drop what only the handshake needed. Nothing here is read once the connection is open; what a
        handler may still want (request.headers, remote_ip, query arguments) stays."""
        handler = self.handler
        handler.ui = None  # template helpers, per request (Tornado's _break_cycles drops them at close)
        handler._headers = HTTPHeaders()  # the 101 response's headers, already written
        request = handler.request
        # The HTTP/1.1 connection objects and the finished request loop's Task (with its HTTP1Connection,
        # parameters and context) are only reachable through these two, once the stream is detached.
        request.connection = None
        request.server_connection = None
        # IOStream keeps two deques (~0.7 KiB each, allocated with their first block) that a socket written
        # to by write_wire's direct path never touches; lazy ones allocate only while writes are queued.
        stream = self.stream
        if stream is not None and not stream._write_futures and not stream._write_buffer._buffers:
            stream._write_futures = _LazyDeque()
            stream._write_buffer._buffers = _LazyDeque()

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

    def write_wire(self, wire: bytes) -> int:
        """Write pre-framed bytes (a broadcast frames once, not once per subscriber); returns the bytes still
        queued on the stream afterwards (0 when the kernel took everything, or the stream is closed).

        Fast path: with nothing queued, the bytes go straight to `socket.send`. `IOStream.write` would build a
        Future with a done-callback and append to the write buffer on every call, which is most of Python's
        cost per delivery in a fan-out. Whatever the kernel does not take (EAGAIN, a partial send, an error),
        and every write while something is already queued, goes through `IOStream.write`, so ordering, write
        readiness, error handling and closing stay Tornado's. The stream's write indexes are advanced for the
        bytes sent directly, so `_total_write_index - _total_write_done_index` stays the unsent byte count.
        """
        stream = self.stream
        if stream is None or stream._closed:
            return 0
        size = len(wire)
        self._wire_bytes_out += size
        if not stream._write_buffer._size and type(stream) is IOStream:
            try:
                sent = stream.socket.send(wire)
            except OSError:  # BlockingIOError included: IOStream.write retries, queues or closes
                sent = 0
            if sent:
                stream._total_write_index += sent
                stream._total_write_done_index += sent
                if sent == size:
                    return 0
                wire = wire[sent:]
        stream.write(wire)
        self._note_queued(stream)
        return stream._total_write_index - stream._total_write_done_index
