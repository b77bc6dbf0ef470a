"""Message and connection floods (issue 10, defect 9): a socket over TP_MAX_MESSAGES_PER_SECOND is closed with
1008 and a log line; while one socket floods, the witnesses (bystanders on a presence topic) still get every
shout. The witnesses' shout round-trip p50 is printed for the report, not asserted (timings are noisy)."""

from __future__ import annotations

import json
import os
import struct
import threading
import time

from tests.abuse.support import Witnesses, scaled, tracebacks
from tests.support.live_server import LiveServer
from tests.support.rawws import RawWebSocket
from tests.support.waiting import wait_for

V2 = "/socket/websocket?vsn=2.0.0"


def masked_frame(payload: bytes) -> bytes:
    mask = os.urandom(4)
    body = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    assert len(payload) < 126
    return struct.pack("!BB", 0x81, 0x80 | len(payload)) + mask + body


class Flooder:
    """Pipelines echo pushes as fast as the socket takes them, draining replies in a thread of its own."""

    def __init__(self, port: int, seconds: float) -> None:
        self.ws = RawWebSocket(port, V2)
        self.ws.send_text('["1","1","echo:flood","phx_join",{}]')
        assert json.loads(self.ws.recv_text())[4]["status"] == "ok"
        self.seconds = seconds
        self.sent = 0
        self.close_code: int | None = None
        self.replies = 0
        batch = b"".join(masked_frame(f'["1","{n}","echo:flood","e",{{}}]'.encode()) for n in range(100))
        self._batch = batch

    def run(self) -> None:
        reader = threading.Thread(target=self._drain, daemon=True)
        reader.start()
        deadline = time.monotonic() + self.seconds
        try:
            while time.monotonic() < deadline and self.close_code is None:
                self.ws.sock.sendall(self._batch)
                self.sent += 100
        except OSError:
            pass
        reader.join(10)
        self.ws.close()

    def _drain(self) -> None:
        while True:
            try:
                got = self.ws.recv(5)
            except (TimeoutError, OSError):
                return
            if got.kind == "close":
                self.close_code = got.code
                return
            if got.kind == "eof":
                return
            self.replies += 1


def test_message_flood_is_closed_1008_and_bystanders_lose_nothing():
    server = LiveServer(env={"TP_LOG_LEVEL": "info"}).start()
    try:
        with Witnesses(server.port) as witnesses:
            time.sleep(0.5)
            quiet = witnesses.p50_ms()
            flooder = Flooder(server.port, seconds=10)
            started = time.monotonic()
            flooder.run()
            took = time.monotonic() - started
        witnesses.check()
        assert flooder.close_code == 1008, (flooder.close_code, flooder.sent)
        line = wait_for(lambda: [x for x in server.log_lines() if "close code=1008" in x], 5, "the 1008 line")
        assert "message rate over TP_MAX_MESSAGES_PER_SECOND=1000 (burst TP_MESSAGE_BURST=2000)" in line[0]
        assert tracebacks(server) == []
        print(f"\nflood (rate limit on): {flooder.sent} pushes sent, closed 1008 after {took:.2f}s; "
              f"witness p50 quiet {quiet:.1f} ms, overall {witnesses.p50_ms():.1f} ms")
    finally:
        server.stop()


def test_unlimited_flood_does_not_starve_bystanders():
    # Rate limit off: only fairness (a yield every FAIR_SLICE messages) keeps the witnesses served.
    server = LiveServer(env={"TP_LOG_LEVEL": "info", "TP_MAX_MESSAGES_PER_SECOND": "1000000",
                             "TP_MESSAGE_BURST": "1000000"}).start()
    try:
        with Witnesses(server.port) as witnesses:
            time.sleep(0.5)
            quiet = witnesses.p50_ms()
            before = len(witnesses.rtts)
            flooder = Flooder(server.port, seconds=3)
            flooder.run()
            during = sorted(witnesses.rtts[before:])
        witnesses.check()
        assert flooder.close_code is None and flooder.replies > 0
        assert len(during) >= 10  # shouts kept being answered during the flood
        p50 = 1000 * during[len(during) // 2]
        print(f"\nflood (rate limit off): {flooder.sent} pushes in 3 s ({flooder.sent / 3:.0f}/s), "
              f"{flooder.replies} frames back; witness p50 quiet {quiet:.1f} ms, during flood {p50:.1f} ms")
        assert tracebacks(server) == []
    finally:
        server.stop()


def test_connection_flood_leaves_bystanders_alone():
    # Every socket comes from 127.0.0.1: the per-address cap (tested in tests/integration/test_hardening_wire.py)
    # would refuse the flood at `make abuse` size; this test is about cleaning up what was let in.
    server = LiveServer(env={"TP_LOG_LEVEL": "info", "TP_MAX_CONNECTIONS_PER_IP": "0"}).start()
    count = scaled(600)
    try:
        with Witnesses(server.port) as witnesses:
            opened = []
            for n in range(count):
                ws = RawWebSocket(server.port, V2)
                ws.send_text(json.dumps(["1", "1", f"test:crowd{n % 5}", "phx_join", {"user_id": f"c{n}"}]))
                opened.append(ws)
            for ws in opened:
                assert json.loads(ws.recv_text())[4]["status"] == "ok"
            assert server.health()["connections"] >= count
            for ws in opened:
                ws.close()  # abruptly, no close frame: every one is cleaned up
            wait_for(lambda: server.health()["connections"] <= witnesses.count, 30, "the flood's sockets cleaned up")
        witnesses.check()
        assert tracebacks(server) == []
    finally:
        server.stop()
