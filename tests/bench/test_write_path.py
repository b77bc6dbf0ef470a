"""The fan-out write path (transport/tornado_compat.py `write_wire`): frames go straight to the socket while
nothing is queued, and through IOStream.write once the kernel pushes back. These tests push a subscriber past
its socket buffers so both paths and the switch between them run, and check what a client can see: every
frame, in order, intact; and a subscriber that stops reading is closed with 1011 at TP_MAX_PENDING_BYTES."""

from __future__ import annotations

import json
import threading
import time

import pytest

from tests.support.live_server import LiveServer
from tests.support.rawws import RawWebSocket

TOPIC = "bench:writepath"


def _join(ws: RawWebSocket, topic: str = TOPIC) -> None:
    ws.send_text(json.dumps(["1", "1", topic, "phx_join", {}]))
    reply = json.loads(ws.recv_text())
    assert reply[3] == "phx_reply" and reply[4]["status"] == "ok", reply


def _drain(ws: RawWebSocket, stop: threading.Event) -> None:
    """The shouter reads its own copies and replies so that it never backs up itself."""
    while not stop.is_set():
        try:
            if ws.recv(timeout=0.5).kind == "eof":
                return
        except TimeoutError:
            continue
        except OSError:
            return


@pytest.fixture
def server(request):
    env = getattr(request, "param", {})
    srv = LiveServer(env={"TP_LOG_LEVEL": "warning", **env}).start()
    yield srv
    srv.stop()


# 18 MB queued for one reader: over the default TP_MAX_PENDING_BYTES (8 MiB), so raise it for this test.
@pytest.mark.parametrize("server", [{"TP_MAX_PENDING_BYTES": str(64 * 1024 * 1024)}], indirect=True)
def test_backlogged_subscriber_receives_every_frame_in_order(server):
    shouts, size = 300, 60_000  # 18 MB: far past the loopback socket buffers, so sends block part way
    with RawWebSocket(server.port) as slow, RawWebSocket(server.port) as shouter:
        _join(slow)
        _join(shouter)
        stop = threading.Event()
        reader = threading.Thread(target=_drain, args=(shouter, stop), daemon=True)
        reader.start()
        pad = "x" * size
        for n in range(1, shouts + 1):
            shouter.send_text(json.dumps(["1", str(n + 1), TOPIC, "shout", {"n": n, "pad": pad}]))
        got = []
        deadline = time.monotonic() + 60
        while len(got) < shouts and time.monotonic() < deadline:
            frame = json.loads(slow.recv_text(timeout=20))
            assert frame[:4] == [None, None, TOPIC, "shout"], frame[:4]
            assert frame[4]["pad"] == pad
            got.append(frame[4]["n"])
        stop.set()
        reader.join(5)
    assert got == list(range(1, shouts + 1))


@pytest.mark.parametrize("server", [{"TP_MAX_PENDING_BYTES": "1000000"}], indirect=True)
def test_subscriber_that_stops_reading_is_closed_1011(server):
    size = 60_000
    with RawWebSocket(server.port) as stalled, RawWebSocket(server.port) as shouter:
        _join(stalled)
        _join(shouter)
        stop = threading.Event()
        reader = threading.Thread(target=_drain, args=(shouter, stop), daemon=True)
        reader.start()
        pad = "y" * size
        for n in range(1, 200):  # 12 MB offered to a reader that takes nothing
            shouter.send_text(json.dumps(["1", str(n + 1), TOPIC, "shout", {"n": n, "pad": pad}]))
        time.sleep(0.5)
        kinds = []
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            frame = stalled.recv(timeout=10)
            kinds.append(frame.kind)
            if frame.kind in ("close", "eof"):
                break
        stop.set()
        reader.join(5)
    assert kinds[-1] == "close", kinds[-5:]
    assert frame.code == 1011
    assert server.health()["status"] == "ok"
    assert "slow consumer" in server.output()
