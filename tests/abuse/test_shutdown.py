"""SIGTERM with 1,000 members on one presence topic (issue 10, defect 10): the server closes everything with
1001 and sends no presence leave per departing socket, so it exits well within the README's 5 s."""

from __future__ import annotations

import json
import selectors
import signal
import struct
import time

from tests.abuse.support import tracebacks
from tests.support.live_server import LiveServer
from tests.support.rawws import RawWebSocket

V2 = "/socket/websocket?vsn=2.0.0"
CLOSE_1000 = struct.pack("!BB", 0x88, 0x82) + b"\x00\x00\x00\x00" + struct.pack("!H", 1000)


def drain(sockets: list[RawWebSocket], quiet: float = 0.5, limit: float = 60) -> None:
    selector = selectors.DefaultSelector()
    for ws in sockets:
        ws.sock.setblocking(False)
        selector.register(ws.sock, selectors.EVENT_READ)
    last = time.monotonic()
    deadline = last + limit
    while time.monotonic() - last < quiet and time.monotonic() < deadline:
        for key, _ in selector.select(0.1):
            if key.fileobj.recv(1 << 20):
                last = time.monotonic()
    selector.close()


def test_sigterm_with_1000_presence_members_is_quick_and_sends_no_leaves():
    members = 1000  # the figure; joins are O(n^2) presence diffs, so not scaled
    server = LiveServer(env={"TP_LOG_LEVEL": "info"}).start()
    sockets = []
    try:
        for n in range(members):
            ws = RawWebSocket(server.port, V2)
            ws.send_text(json.dumps(["1", "1", "test:crowd", "phx_join", {"user_id": f"m{n}"}]))
            assert json.loads(ws.recv_text(30))[4]["status"] == "ok"
            sockets.append(ws)
        drain(sockets)  # every presence_diff of the joins, read and discarded
        selector = selectors.DefaultSelector()
        for ws in sockets:
            selector.register(ws.sock, selectors.EVENT_READ, ws)
        after: dict[int, bytes] = {}
        started = time.monotonic()
        server.proc.send_signal(signal.SIGTERM)
        while len(after) < members and time.monotonic() - started < 20:
            for key, _ in selector.select(0.1):
                ws = key.data
                try:
                    data = ws.sock.recv(1 << 16)
                except OSError:
                    data = b""
                if id(ws) not in after:
                    after[id(ws)] = data
                    try:
                        ws.sock.sendall(CLOSE_1000)  # answer the server's close, as a client does
                    except OSError:
                        pass
                selector.unregister(ws.sock)
        server.proc.wait(20)
        took = time.monotonic() - started
        selector.close()
        # after SIGTERM every member got exactly one frame: the 1001 close (no presence_diff before it)
        closes = [data for data in after.values() if data[:4] == b"\x88\x02\x03\xe9"]
        print(f"\nSIGTERM with {members} presence members: exit after {took:.2f}s, {len(closes)} clean 1001 closes")
        assert len(after) == members and len(closes) == members, sorted({d[:8] for d in after.values()})
        assert server.proc.returncode == 0
        assert took < 5.0
        assert tracebacks(server) == []
    finally:
        for ws in sockets:
            ws.close()
        server.stop()
