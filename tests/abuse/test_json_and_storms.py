"""JSON edge input on the wire (issue 10, defect 2) and the stall a maximal storm causes (defect 13).

JSON: every input either echoes exactly (as Phoenix/Jason would) or closes only its own socket with a clean
1011 and one short log line; never a traceback. Storm stall: while a maximal `broadcast_storm` runs, a
witness's shouts keep being answered between its slices (counted, not timed; the p50 is printed)."""

from __future__ import annotations

import json
import time

import pytest

from tests.abuse.support import Witnesses, tracebacks
from tests.support.live_server import LiveServer
from tests.support.rawws import RawWebSocket
from tests.support.waiting import wait_for

V2 = "/socket/websocket?vsn=2.0.0"


@pytest.fixture(scope="module")
def server():
    server = LiveServer(env={"TP_LOG_LEVEL": "info"}).start()
    yield server
    server.stop()


def nest(depth: int) -> str:
    return "[" * depth + "1" + "]" * depth


@pytest.mark.parametrize("payload", [
    '{"deep":' + nest(253) + "}", '{"deep":' + nest(254) + "}", '{"deep":' + nest(1000) + "}",
    '{"n":123456789012345678901234567890}', '{"n":' + "7" * 5000 + "}", '{"n":-' + "1" * 4301 + "}",
    '{"big":18446744073709551616,"f":1.0e3}',
])
def test_edge_json_is_echoed_exactly(server, payload):
    with RawWebSocket(server.port, V2) as ws:
        ws.send_text('["1","1","echo:json","phx_join",{}]')
        json.loads(ws.recv_text())
        ws.send_text(f'["1","2","echo:json","e",{payload}]')
        push, reply = ws.recv_text(), ws.recv_text()
        assert push == f'["1",null,"echo:json","e",{payload}]'
        assert reply == f'["1","2","echo:json","phx_reply",{{"response":{payload},"status":"ok"}}]'
    assert tracebacks(server) == []


@pytest.mark.parametrize("frame", [
    '["1","2","echo:json","e",{"x":1e400}]',
    '["1","2","echo:json","e",{"x":1e400,"n":12345678901234567890123}]',
    '["1","2","echo:json","e",{"x":"\\ud800"}]',
    '["1","2","echo:json","e",{"x":"\\ud800","n":12345678901234567890123}]',
    '["1","2","echo:json","e",{"x":' + nest(1100) + "}]",
    '["1","2","echo:json","e",{"x":' + nest(1100) + ',"n":12345678901234567890123}]',
    '["1","2","echo:json","e",{"x":NaN}]',
])
def test_what_jason_rejects_closes_1011_cleanly(frame):
    # A server of its own: protocol-error lines are rate-limited per server (5 alike per 10 s).
    server = LiveServer(env={"TP_LOG_LEVEL": "info"}).start()
    try:
        _rejected_cleanly(server, frame)
    finally:
        server.stop()


def _rejected_cleanly(server, frame):
    with RawWebSocket(server.port, V2) as ws:
        ws.send_text('["1","1","echo:json","phx_join",{}]')
        json.loads(ws.recv_text())
        before = len(server.log_lines())
        ws.send_text(frame)
        got = ws.recv()
        assert (got.kind, got.code) == ("close", 1011)
    new = wait_for(lambda: [x for x in server.log_lines()[before:] if "close code=1011" in x], 5, "the 1011 line")
    assert len(new) == 1 and len(new[0]) < 400
    assert tracebacks(server) == []


def test_maximal_storm_does_not_stall_other_sockets(server):
    topic = "fault:maxstorm"
    with Witnesses(server.port, interval=0.01) as witnesses, RawWebSocket(server.port, V2) as driver:
        members = [RawWebSocket(server.port, V2) for _ in range(4)]
        for ws in [driver, *members]:
            ws.send_text(json.dumps(["1", "1", topic, "phx_join", {}]))
            assert json.loads(ws.recv_text())[4]["status"] == "ok"
        time.sleep(0.3)
        before = len(witnesses.rtts)
        driver.send_text(json.dumps(["1", "2", topic, "broadcast_storm", {"count": 10000, "bytes": 400}]))
        seen = 0
        while True:
            frame = json.loads(driver.recv_text(60))
            if frame[3] == "phx_reply":
                assert frame[4] == {"response": {"sent": 10000}, "status": "ok"}
                break
            seen += 1
        during = sorted(witnesses.rtts[before:])
        for ws in members:
            ws.close()
    witnesses.check()
    assert seen == 10000
    assert len(during) >= 3  # witnesses' shouts were answered while the storm ran, between its slices
    print(f"\nmaximal storm (10,000 x 400 B to 5 members): witness shouts answered during it {len(during)}, "
          f"p50 {1000 * during[len(during) // 2]:.1f} ms, max {1000 * during[-1]:.1f} ms")
    assert tracebacks(server) == []
