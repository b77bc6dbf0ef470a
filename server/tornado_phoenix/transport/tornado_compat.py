"""The one place that reaches into Tornado's internals (written against, and tested to be, Tornado 6.5.2).

Stock Tornado tears the TCP connection down without a close frame on every WebSocket protocol error (RSV bits,
a ping over 125 bytes, a fragmented control frame, a stray continuation, invalid UTF-8, a reserved opcode: the
client sees 1006), accepts unmasked client frames, and echoes the client's own close code. Phoenix on Bandit
sends 1002, 1007 and 1000/1002. Clients decide whether to reconnect by that code, so we send Bandit's:

    client: c1 80 <mask>          (RSV1 set, empty text frame)
    server: 88 02 03 ea           (close 1002), then FIN; log: conn=7 close code=1002 reason='RSV bits set ...'
"""

from __future__ import annotations

import asyncio
import collections
import errno
import logging
import re
import socket
import struct
import sys
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from tornado import gen
from tornado.http1connection import HTTP1Connection
from tornado.httpserver import HTTPServer
from tornado.httputil import HTTPHeaders
from tornado.ioloop import IOLoop
from tornado.iostream import IOStream, StreamClosedError, _StreamBuffer
from tornado.util import _websocket_mask
from tornado.websocket import WebSocketProtocol13

from ..logs import PROTOCOL_LOGGER, esc
from ..protocol.errors import CloseCode
from ..protocol.serializers import Frame

if TYPE_CHECKING:
    from tornado.concurrent import Future

__all__ = ["PhoenixWebSocketProtocol", "frame_bytes", "TORNADO_VERSION", "close_reply_code", "HardenedHTTPServer",
           "accept_with_backoff", "head_problem"]

# The frame parser below replaces WebSocketProtocol13._receive_frame of this exact release; the unit test
# tests/unit/test_tornado_compat.py fails when the installed Tornado differs, so the copy is re-checked.
TORNADO_VERSION = "6.5.2"


def close_reply_code(payload: bytes) -> tuple[int, str | None]:
    """Bandit's answer to a client's close frame: (code to send, why it is a protocol error or None).

    Valid codes (RFC 6455 §7.4): 1000-1003, 1007-1011 and the registered/private range 3000-4999; no code at
    all is fine too. 1004-1006, 1012-2999, anything below 1000 or above 4999, a 1-byte payload and a reason
    that is not UTF-8 are protocol errors, answered 1002.
    """
    if not payload:
        return CloseCode.NORMAL, None
    if len(payload) == 1:
        return CloseCode.PROTOCOL_ERROR, "close frame with a 1-byte payload"
    code = struct.unpack(">H", payload[:2])[0]
    if not (1000 <= code <= 1003 or 1007 <= code <= 1011 or 3000 <= code <= 4999):
        return CloseCode.PROTOCOL_ERROR, f"invalid close code {code}"
    try:
        payload[2:].decode("utf-8")
    except UnicodeDecodeError:
        return CloseCode.PROTOCOL_ERROR, "close reason is not valid UTF-8"
    return CloseCode.NORMAL, None

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
        try:
            self._shed_handshake_state()
        finally:
            # Always read frames: on a stream that is already closed the loop ends at once and on_close runs,
            # so the connection is never left counted.
            self._frame_task = asyncio.ensure_future(self._frame_loop())

    async def _frame_loop(self) -> None:
        try:
            await super()._receive_frame_loop()
        except (asyncio.CancelledError, ValueError):
            self._abort()  # what accept_connection does with these when it runs the loop itself
        except Exception:
            self.handler.log_exception(*sys.exc_info())
            self._abort()
        finally:
            # A stream that closed before its close callback was set never calls it: close the handler here
            # (a no-op when on_close already ran).
            handler = self.handler
            if handler is not None and not getattr(handler, "_on_close_called", True):
                handler.on_connection_close()

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
        if stream is None or stream.closed() or getattr(stream, "_write_buffer", None) is None:
            return
        if not stream._write_futures and not stream._write_buffer._buffers:
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
            code, problem = close_reply_code(data)
            if problem is not None:
                self.handler.closing(code, problem, excerpt=data)  # type: ignore[attr-defined]
            self.close(code)  # Bandit answers a valid client close with 1000, an invalid one with 1002
            return None
        if opcode in (0x2, 0x9, 0xA):
            return super()._handle_message(opcode, data)
        self._protocol_error(f"reserved opcode {opcode:#x}")
        return None

    def _protocol_error(self, reason: str, excerpt: bytes | None = None) -> None:
        """Close 1002 for a frame that breaks RFC 6455, then FIN and drain: the byte stream cannot be trusted
        any more, so no further frame is read (Bandit closes the connection the same way)."""
        self.handler.reject(CloseCode.PROTOCOL_ERROR, reason, excerpt=excerpt)  # type: ignore[attr-defined]
        self._linger = True
        self._abort()

    async def _receive_frame(self) -> None:
        """WebSocketProtocol13._receive_frame of Tornado 6.5.2 with every protocol error answered by a close
        frame (1002, or 1009 for an oversized message, logged with its size and the limit) instead of a bare
        TCP abort, and unmasked client frames refused (RFC 6455 §5.1). Compression is never negotiated
        (get_compression_options returns None), so the RSV1/decompressor branch is gone."""
        header, mask_payloadlen = struct.unpack("BB", await self._read_bytes(2))
        is_final_frame = header & self.FIN
        opcode = header & self.OPCODE_MASK
        opcode_is_control = opcode & 0x8
        if opcode not in (0x0, 0x1, 0x2, 0x8, 0x9, 0xA):
            self._protocol_error(f"reserved opcode {opcode:#x}")
            return
        if header & self.RSV_MASK:
            self._protocol_error(f"RSV bits set (first byte {header:#04x}) but no extension was negotiated")
            return
        if not mask_payloadlen & 0x80:
            self._protocol_error("unmasked client frame (RFC 6455 section 5.1)")
            return
        payloadlen = mask_payloadlen & 0x7F
        if opcode_is_control and payloadlen >= 126:
            self._protocol_error(f"control frame (opcode {opcode:#x}) with a payload over 125 bytes")
            return
        if opcode_is_control and not is_final_frame:
            self._protocol_error(f"fragmented control frame (opcode {opcode:#x})")
            return
        if opcode == 0 and self._fragmented_message_buffer is None:
            self._protocol_error("continuation frame with no message to continue")
            return
        if opcode in (0x1, 0x2) and self._fragmented_message_buffer is not None:
            self._protocol_error("new data frame inside a fragmented message")
            return
        if payloadlen == 126:
            payloadlen = struct.unpack("!H", await self._read_bytes(2))[0]
        elif payloadlen == 127:
            payloadlen = struct.unpack("!Q", await self._read_bytes(8))[0]
        new_len = payloadlen
        if self._fragmented_message_buffer is not None:
            new_len += len(self._fragmented_message_buffer)
        if new_len > self.params.max_message_size:
            self.handler.closing(  # type: ignore[attr-defined]
                CloseCode.MESSAGE_TOO_BIG,
                f"message of {new_len} bytes exceeds TP_MAX_FRAME_SIZE={self.params.max_message_size}",
            )
            self.close(CloseCode.MESSAGE_TOO_BIG)
            self._abort()
            return
        self._frame_mask = await self._read_bytes(4)
        data = _websocket_mask(self._frame_mask, await self._read_bytes(payloadlen))
        if opcode_is_control:
            pass  # may come between the fragments of a data message; never touches the fragment buffer
        elif opcode == 0:
            self._fragmented_message_buffer.extend(data)
            if is_final_frame:
                opcode = self._fragmented_message_opcode
                data = bytes(self._fragmented_message_buffer)
                self._fragmented_message_buffer = None
        elif not is_final_frame:
            self._fragmented_message_opcode = opcode
            self._fragmented_message_buffer = bytearray(data)
        if is_final_frame:
            handled_future = self._handle_message(opcode, data)
            if handled_future is not None:
                await handled_future

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


# ---- HTTP/1.1 request limits ------------------------------------------------------------------------------

http_log = logging.getLogger(PROTOCOL_LOGGER)
accept_log = logging.getLogger("tornado_phoenix.server")

MAX_REQUEST_LINE = 10_000  # Bandit's max_request_line_length: 414 beyond
MAX_HEADER_LINE = 10_000  # Bandit's max_header_length: 431 beyond
MAX_HEADER_COUNT = 50  # Bandit's max_header_count: 431 beyond
MAX_HEAD_BYTES = 65_536  # the whole request head (Tornado's max_header_size default): 431 beyond
_HEAD_END = re.compile(rb"\r?\n\r?\n")


def head_problem(head: bytes, complete: bool) -> tuple[int, str] | None:
    """(status, why) when a request head breaks Bandit's limits, judged on what has arrived so far."""
    if complete and len(head) <= MAX_HEADER_LINE and head.count(b"\n") <= MAX_HEADER_COUNT + 1:
        # The common case, a small complete head: no line can be too long and there are not too many.
        lowered = head.lower()
        if b"websocket" not in lowered or (b"transfer-encoding" not in lowered and b"content-length" not in lowered):
            return None
    head = head.lstrip(b"\r\n")
    lines = head.split(b"\n")
    if not complete:
        lines_done, partial = lines[:-1], lines[-1]
    else:
        lines_done, partial = lines, b""
    request_line = lines[0].rstrip(b"\r")
    if len(request_line) > MAX_REQUEST_LINE:
        return 414, f"request line of {len(request_line)}+ bytes (limit {MAX_REQUEST_LINE})"
    headers = [line.rstrip(b"\r") for line in lines_done[1:] if line.rstrip(b"\r")]
    if len(lines_done) > 1 or not complete:
        longest = max([len(line) for line in headers] + [len(partial) if len(lines) > 1 else 0])
        if longest > MAX_HEADER_LINE:
            return 431, f"header line of {longest}+ bytes (limit {MAX_HEADER_LINE})"
    if len(headers) > MAX_HEADER_COUNT:
        return 431, f"{len(headers)}+ header lines (limit {MAX_HEADER_COUNT})"
    if len(head) > MAX_HEAD_BYTES:
        return 431, f"request head of {len(head)}+ bytes (limit {MAX_HEAD_BYTES})"
    if complete:
        fields = [line.split(b":", 1) for line in headers]
        values = {name.strip().lower(): value.strip().lower() for name, value in (f for f in fields if len(f) == 2)}
        has_body = b"transfer-encoding" in values or values.get(b"content-length", b"0") not in (b"0", b"")
        if has_body and b"websocket" in values.get(b"upgrade", b""):
            return 400, "WebSocket upgrade request with a body (Transfer-Encoding/Content-Length)"
    return None


_REASONS = {400: "Bad Request", 414: "URI Too Long", 431: "Request Header Fields Too Large"}


class _LimitedHTTP1Connection(HTTP1Connection):
    """HTTP1Connection that first reads the request head itself, under TP_HEADER_TIMEOUT and Bandit's size
    limits, answers 414/431/400 and closes when they are broken, and otherwise puts the bytes back in the
    stream's read buffer for Tornado's own parser (Tornado 6.5.2 IOStream: `_read_buffer` is a bytearray of
    `_read_buffer_size` bytes). Stock Tornado waits up to an hour for headers and closes silently past
    max_header_size."""

    async def _read_message(self, delegate: Any) -> bool:
        stream = self.stream
        timeout = getattr(self.params, "tp_header_timeout", None) or 10.0
        deadline = stream.io_loop.time() + timeout
        buf = bytearray()
        while True:
            end = _HEAD_END.search(buf)
            if end is not None:
                problem = head_problem(bytes(buf[: end.end()]), True)
                break
            problem = head_problem(bytes(buf), False)
            if problem is not None:
                break
            try:
                chunk = await gen.with_timeout(deadline, stream.read_bytes(65536, partial=True),
                                               quiet_exceptions=StreamClosedError)
            except gen.TimeoutError:
                http_log.info("close reason=%s peer=%s received=%d", esc(f"no complete request head within "
                              f"{timeout:g} s (TP_HEADER_TIMEOUT)"), _peer(self), len(buf))
                self.close()
                return False
            except StreamClosedError:
                self.close()
                return False
            buf += chunk
        if problem is None:
            # Hand the head (and whatever followed it) back to Tornado's parser.
            stream._read_buffer[:0] = buf
            stream._read_buffer_size += len(buf)
            return await super()._read_message(delegate)
        status, why = problem
        http_log.warning("refuse status=%d reason=%s peer=%s", status, esc(why), _peer(self))
        try:
            await stream.write(f"HTTP/1.1 {status} {_REASONS[status]}\r\nContent-Length: 0\r\n"
                               "Connection: close\r\n\r\n".encode())
        except StreamClosedError:
            pass
        self.close()
        return False


def _peer(connection: HTTP1Connection) -> str:
    return getattr(connection.context, "remote_ip", None) or "-"


class HardenedHTTPServer(HTTPServer):
    """Tornado's HTTPServer with the request-head limits above and an accept loop that backs off at the
    descriptor limit (EMFILE/ENFILE) instead of spinning."""

    def initialize(self, *args: Any, header_timeout: float = 10.0, **kwargs: Any) -> None:  # Configurable's init
        super().initialize(*args, **kwargs)
        self.conn_params.tp_header_timeout = header_timeout  # type: ignore[attr-defined]

    def start_request(self, server_conn: object, request_conn: Any) -> Any:
        if type(request_conn) is HTTP1Connection:
            # One request per HTTP1Connection, created by HTTP1ServerConnection._server_request_loop just
            # before this call; the subclass adds no state, only the _read_message above.
            request_conn.__class__ = _LimitedHTTP1Connection
        return super().start_request(server_conn, request_conn)

    def add_sockets(self, sockets: Any) -> None:
        for sock in sockets:  # TCPServer.add_sockets with our accept handler
            self._sockets[sock.fileno()] = sock
            self._handlers[sock.fileno()] = accept_with_backoff(sock, self._handle_connection)


_DESCRIPTOR_ERRORS = (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM)
ACCEPT_PAUSE_FIRST = 0.1
ACCEPT_PAUSE_MAX = 1.0


def accept_with_backoff(sock: socket.socket, callback: Any) -> Any:
    """netutil.add_accept_handler, except that when accept() fails for lack of descriptors or memory, accepting
    pauses (0.1 s, doubling up to 1 s) with one log line per episode, and one more when accepts work again.
    Tornado's handler lets the error escape on every loop iteration: a busy loop logging a traceback each time.
    Returns the function that removes the handler."""
    io_loop = IOLoop.current()
    state = {"removed": False, "paused": False, "delay": ACCEPT_PAUSE_FIRST, "since": 0.0, "pauses": 0}

    def accept_handler(fd: Any, events: int) -> None:
        for _ in range(128):
            if state["removed"]:
                return
            try:
                connection, address = sock.accept()
            except BlockingIOError:
                return
            except ConnectionAbortedError:
                continue
            except OSError as exc:
                if exc.errno not in _DESCRIPTOR_ERRORS:
                    raise
                pause(exc)
                return
            if state["pauses"]:
                accept_log.warning("accepting connections again after %.1f s at the limit (%d pauses)",
                                   io_loop.time() - state["since"], state["pauses"])
                state["pauses"] = 0
                state["delay"] = ACCEPT_PAUSE_FIRST
            callback(connection, address)

    def pause(exc: OSError) -> None:
        if not state["pauses"]:
            state["since"] = io_loop.time()
            accept_log.error(
                "cannot accept connections: %s; pausing accepts for %g s, doubling up to %g s, until descriptors "
                "free up (raise the limit: `ulimit -n`, docker --ulimit nofile, LimitNOFILE; or lower "
                "TP_MAX_CONNECTIONS below it)", exc.strerror or exc, state["delay"], ACCEPT_PAUSE_MAX)
        state["pauses"] += 1
        io_loop.remove_handler(sock)
        state["paused"] = True
        io_loop.call_later(state["delay"], resume)
        state["delay"] = min(state["delay"] * 2, ACCEPT_PAUSE_MAX)

    def resume() -> None:
        state["paused"] = False
        if not state["removed"]:
            io_loop.add_handler(sock, accept_handler, IOLoop.READ)

    def remove_handler() -> None:
        if not state["paused"] and not state["removed"]:
            io_loop.remove_handler(sock)
        state["removed"] = True

    io_loop.add_handler(sock, accept_handler, IOLoop.READ)
    return remove_handler
