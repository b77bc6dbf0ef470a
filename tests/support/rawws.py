"""A raw WebSocket client over a plain socket, for tests that must control every byte (bad UTF-8, reserved
opcodes, fragments, oversized frames) and see exactly what the server sends, close frames included.

Only for talking to our own test server on loopback.
"""

from __future__ import annotations

import base64
import os
import socket
import struct
import time
from dataclasses import dataclass

__all__ = ["RawWebSocket", "Received", "http_get", "HandshakeRefused"]


class HandshakeRefused(Exception):
    def __init__(self, status: int, headers: dict[str, str], body: bytes):
        super().__init__(f"HTTP {status}")
        self.status = status
        self.headers = headers
        self.body = body


@dataclass
class Received:
    kind: str  # "text", "binary", "close", "pong", "ping", "eof"
    data: bytes = b""
    code: int | None = None

    @property
    def text(self) -> str:
        return self.data.decode("utf-8")


def _read_http_response(sock: socket.socket) -> tuple[int, dict[str, str], bytes]:
    buf = b""
    while b"\r\n\r\n" not in buf:
        chunk = sock.recv(4096)
        if not chunk:
            break
        buf += chunk
    head, _, rest = buf.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {}
    for line in lines[1:]:
        key, _, value = line.partition(":")
        headers[key.strip().lower()] = value.strip()
    length = int(headers.get("content-length", "0") or 0)
    while status != 101 and len(rest) < length:
        chunk = sock.recv(4096)
        if not chunk:
            break
        rest += chunk
    return status, headers, rest


def http_get(port: int, path: str, method: str = "GET", headers: dict[str, str] | None = None):
    """A bare HTTP/1.1 request; returns (status, headers, body)."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        extra = "".join(f"{k}: {v}\r\n" for k, v in (headers or {}).items())
        sock.sendall(f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n{extra}Connection: close\r\n\r\n".encode())
        return _read_http_response(sock)


class RawWebSocket:
    def __init__(self, port: int, path: str = "/socket/websocket?vsn=2.0.0", headers: dict[str, str] | None = None,
                 timeout: float = 5.0):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        key = base64.b64encode(os.urandom(16)).decode()
        extra = "".join(f"{k}: {v}\r\n" for k, v in (headers or {}).items())
        request = (
            f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n{extra}\r\n"
        )
        self.sock.sendall(request.encode())
        status, self.headers, rest = _read_http_response(self.sock)
        if status != 101:
            self.sock.close()
            raise HandshakeRefused(status, self.headers, rest)
        self._buf = rest

    # ---- sending -------------------------------------------------------------------------------------

    def send_frame(self, opcode: int, payload: bytes, fin: bool = True, rsv: int = 0) -> None:
        first = (0x80 if fin else 0) | rsv | opcode
        size = len(payload)
        if size < 126:
            header = struct.pack("!BB", first, 0x80 | size)
        elif size <= 0xFFFF:
            header = struct.pack("!BBH", first, 0x80 | 126, size)
        else:
            header = struct.pack("!BBQ", first, 0x80 | 127, size)
        mask = os.urandom(4)
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload)) if size < 65536 else _mask_fast(payload, mask)
        self.sock.sendall(header + mask + masked)

    def send_text(self, text: str | bytes) -> None:
        self.send_frame(0x1, text.encode() if isinstance(text, str) else text)

    def send_binary(self, data: bytes) -> None:
        self.send_frame(0x2, data)

    def send_close(self, code: int = 1000, reason: bytes = b"") -> None:
        self.send_frame(0x8, struct.pack("!H", code) + reason)

    # ---- receiving -----------------------------------------------------------------------------------

    def _read(self, n: int, deadline: float) -> bytes | None:
        while len(self._buf) < n:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"no complete frame within the timeout (have {len(self._buf)} bytes)")
            self.sock.settimeout(remaining)
            try:
                chunk = self.sock.recv(65536)
            except TimeoutError:
                raise TimeoutError("no complete frame within the timeout") from None
            except ConnectionResetError:
                return None
            if not chunk:
                return None
            self._buf += chunk
        data, self._buf = self._buf[:n], self._buf[n:]
        return data

    def recv(self, timeout: float = 5.0) -> Received:
        deadline = time.monotonic() + timeout
        head = self._read(2, deadline)
        if head is None:
            return Received("eof")
        first, second = head
        opcode = first & 0x0F
        size = second & 0x7F
        assert not second & 0x80, "server frames must not be masked"
        if size == 126:
            size = struct.unpack("!H", self._read(2, deadline))[0]
        elif size == 127:
            size = struct.unpack("!Q", self._read(8, deadline))[0]
        payload = self._read(size, deadline) if size else b""
        if payload is None:
            return Received("eof")
        kind = {0x1: "text", 0x2: "binary", 0x8: "close", 0x9: "ping", 0xA: "pong"}.get(opcode, f"op{opcode}")
        if kind == "close":
            code = struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else None
            return Received("close", payload[2:], code)
        return Received(kind, payload)

    def recv_text(self, timeout: float = 5.0) -> str:
        frame = self.recv(timeout)
        assert frame.kind == "text", f"expected a text frame, got {frame}"
        return frame.text

    def expect_silence(self, seconds: float = 0.2) -> None:
        """Assert the server sends nothing for `seconds`."""
        try:
            frame = self.recv(seconds)
        except TimeoutError:
            return
        raise AssertionError(f"expected no frame, got {frame}")

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self) -> RawWebSocket:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _mask_fast(payload: bytes, mask: bytes) -> bytes:
    n = len(payload)
    key = int.from_bytes((mask * (n // 4 + 1))[:n], "big")
    return (int.from_bytes(payload, "big") ^ key).to_bytes(n, "big")
