"""Limits on the real server (issue 10, defects 8 and 9): the close frame of a slow consumer goes ahead of its
dropped queue; the rate limit closes 1008; both log one line with code and reason."""

from __future__ import annotations

import json
import socket

from tests.support.live_server import LiveServer
from tests.support.rawws import RawWebSocket

V2 = "/socket/websocket?vsn=2.0.0"
MIB = 1024 * 1024


def join(ws: RawWebSocket, topic: str) -> None:
    ws.send_text(json.dumps(["1", "1", topic, "phx_join", {}]))
    assert json.loads(ws.recv_text())[4]["status"] == "ok"


def test_slow_consumer_gets_its_1011_ahead_of_the_queued_data():
    server = LiveServer(env={"TP_MAX_PENDING_BYTES": str(16 * MIB), "TP_LOG_LEVEL": "info"}).start()
    try:
        with RawWebSocket(server.port, V2) as stalled, RawWebSocket(server.port, V2) as driver:
            stalled.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)  # no receive autotuning
            join(stalled, "fault:q")
            join(driver, "fault:q")
            for n in range(6):  # 24 MiB to the stalled reader: over its 16 MiB cap
                driver.send_text(json.dumps(["1", str(n + 2), "fault:q", "broadcast_storm",
                                             {"count": 64, "bytes": 65536}]))
                while json.loads(driver.recv_text(30))[3] != "phx_reply":
                    pass
            before = 0
            while True:
                got = stalled.recv(20)
                if got.kind != "text":
                    break
                before += len(got.data)
            assert (got.kind, got.code) == ("close", 1011)
            # Only what the kernel already held (<= 4 MiB send buffer + 64 KiB) came first, not the 16 MiB
            # queue: without dropping it, the close frame would come after at least 16 MiB.
            assert before < 8 * MIB, before
        lines = [line for line in server.log_lines() if "close code=1011" in line]
        assert len(lines) == 1 and "over TP_MAX_PENDING_BYTES=16777216" in lines[0]
        assert "queued bytes dropped" in lines[0]
    finally:
        server.stop()


def test_rate_limit_closes_1008_with_a_log_line():
    server = LiveServer(env={"TP_MAX_MESSAGES_PER_SECOND": "5", "TP_MESSAGE_BURST": "10",
                             "TP_LOG_LEVEL": "info"}).start()
    try:
        with RawWebSocket(server.port, V2) as ws:
            for n in range(11):  # a burst of 10 is allowed, the 11th message is over
                ws.send_text(json.dumps([None, str(n), "phoenix", "heartbeat", {}]))
            replies = []
            while True:
                got = ws.recv()
                if got.kind != "text":
                    break
                replies.append(json.loads(got.data)[1])
            assert replies == [str(n) for n in range(10)]
            assert (got.kind, got.code) == ("close", 1008)
        server.wait_log("close code=1008 reason='message rate over TP_MAX_MESSAGES_PER_SECOND=5 (burst TP_MESSAGE_BURST=10)")
    finally:
        server.stop()
