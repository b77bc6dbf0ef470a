"""/metrics on the real server: scraped and parsed with prometheus_client's parser after real traffic; the
counters move by what the traffic did; TP_METRICS=off is a 404; TP_METRICS_BIND serves it on its own port."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.support.live_server import LiveServer, free_port
from tests.support.rawws import HandshakeRefused, RawWebSocket, http_get
from tests.support.waiting import wait_for as wait_until


def scrape(port: int) -> dict[tuple[str, tuple], float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
        assert resp.headers["Content-Type"].startswith("text/plain")
        text = resp.read().decode()
    samples = {}
    for family in text_string_to_metric_families(text):
        assert family.name.startswith("tornado_phoenix_"), family.name
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def value(samples, name: str, **labels) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def send(ws, *frame):
    ws.send_text(json.dumps(list(frame)))


@pytest.fixture(scope="module")
def server():
    s = LiveServer(env={"TP_AUTH": "token", "TP_AUTH_TOKENS": "good"}).start()
    yield s
    s.stop()


def test_counters_move_with_traffic(server):
    before = scrape(server.port)
    with pytest.raises(HandshakeRefused):
        RawWebSocket(server.port, "/socket/websocket?vsn=2.0.0&token=bad")
    with pytest.raises(HandshakeRefused):  # refused before auth (unsupported vsn): counted too, not as auth
        RawWebSocket(server.port, "/socket/websocket?vsn=3.0.0&token=good")
    members = [RawWebSocket(server.port, "/socket/websocket?vsn=2.0.0&token=good") for _ in range(3)]
    try:
        for ws in members:
            send(ws, "1", "1", "bench:m", "phx_join", {})
            assert json.loads(ws.recv_text())[4]["status"] == "ok"
        send(members[0], "1", "2", "bench:m", "shout", {"x": 1})  # bench:* broadcasts shout to all 3
        for ws in members:
            while json.loads(ws.recv_text())[3] != "shout":
                pass
        assert json.loads(members[0].recv_text())[3] == "phx_reply"  # the shout's reply follows the broadcast
        send(members[0], "1", "3", "nope:x", "phx_join", {})
        assert json.loads(members[0].recv_text())[4]["response"] == {"reason": "unmatched topic"}
        members[1].send_text("not json")  # rejected: closes that socket
        assert members[1].recv().kind == "close"
        now = scrape(server.port)
        assert value(now, "tornado_phoenix_connections") == 2 or value(now, "tornado_phoenix_connections") == 3
    finally:
        for ws in members:
            ws.close()
    after = wait_until(lambda: (s := scrape(server.port)) and value(s, "tornado_phoenix_connections") == 0 and s)

    def delta(name, **labels):
        return value(after, name, **labels) - value(before, name, **labels)

    assert delta("tornado_phoenix_connects_total", result="ok") == 3
    assert delta("tornado_phoenix_connects_total", result="refused") == 2
    assert delta("tornado_phoenix_auth_failures_total", reason="unknown token") == 1
    assert delta("tornado_phoenix_joins_total", pattern="bench:*", result="ok") == 3
    assert delta("tornado_phoenix_joins_total", pattern="-", result="unmatched") == 1
    assert delta("tornado_phoenix_messages_in_total") == 6  # 3 joins, 1 shout, 1 bad join, 1 bad frame
    assert delta("tornado_phoenix_broadcasts_total") == 1  # the shout (bench:* has no presence broadcasts)
    assert delta("tornado_phoenix_broadcast_fanout_count") == 1
    assert delta("tornado_phoenix_broadcast_fanout_sum") == 3
    assert delta("tornado_phoenix_broadcast_fanout_bucket", le="2.0") == 0
    assert delta("tornado_phoenix_broadcast_fanout_bucket", le="5.0") == 1
    assert delta("tornado_phoenix_messages_out_total") >= 3 + 3 + 1  # join replies, fan-out, shout reply
    assert delta("tornado_phoenix_bytes_in_total") > 0 and delta("tornado_phoenix_bytes_out_total") > 0
    assert delta("tornado_phoenix_rejected_frames_total", reason="internal_error") == 1
    assert sum(v for (name, _), v in after.items() if name == "tornado_phoenix_closes_total") - sum(
        v for (name, _), v in before.items() if name == "tornado_phoenix_closes_total") == 3
    assert ("tornado_phoenix_pending_outbound_bytes", ()) in after


def test_metrics_off_is_404():
    s = LiveServer(env={"TP_METRICS": "off"}).start()
    try:
        status, _, _ = http_get(s.port, "/metrics")
        assert status == 404
    finally:
        s.stop()


def test_metrics_bind_serves_on_its_own_port():
    port = free_port()
    s = LiveServer(env={"TP_METRICS_BIND": f"127.0.0.1:{port}"}).start()
    try:
        assert http_get(s.port, "/metrics")[0] == 404
        assert ("tornado_phoenix_connections", ()) in wait_until(lambda: _try_scrape(port))
    finally:
        s.stop()


def _try_scrape(port):
    try:
        return scrape(port)
    except (urllib.error.URLError, OSError):
        return None


def test_multiprocess_dir_is_honoured(tmp_path):
    """With PROMETHEUS_MULTIPROC_DIR set (as a unit file would), values live in that directory's files and the
    scrape aggregates them; the fan-out histogram's bulk flush works on the mmap-backed values too."""
    s = LiveServer(env={"PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}).start()
    try:
        members = [RawWebSocket(s.port) for _ in range(2)]
        for ws in members:
            send(ws, "1", "1", "bench:mp", "phx_join", {})
            assert json.loads(ws.recv_text())[4]["status"] == "ok"
        send(members[0], "1", "2", "bench:mp", "shout", {})
        for ws in members:
            assert json.loads(ws.recv_text())[3] == "shout"
        samples = scrape(s.port)
        assert value(samples, "tornado_phoenix_joins_total", pattern="bench:*", result="ok") == 2
        assert value(samples, "tornado_phoenix_broadcast_fanout_sum") == 2
        assert value(samples, "tornado_phoenix_connections") == 2
        assert list(tmp_path.glob("*.db")), "no multi-process value files written"
        for ws in members:
            ws.close()
    finally:
        s.stop()


def test_yjs_room_gauges(tmp_path):
    s = LiveServer(env={"TP_YJS_STORE": "memory"}).start()
    try:
        with RawWebSocket(s.port) as ws:
            send(ws, "1", "1", "room:metrics", "phx_join", {"user_id": "m"})
            assert json.loads(ws.recv_text())[4]["status"] == "ok"
            samples = wait_until(lambda: (x := scrape(s.port)) and value(x, "tornado_phoenix_yjs_rooms") == 1 and x)
            assert value(samples, "tornado_phoenix_yjs_room_members") == 1
            assert value(samples, "tornado_phoenix_joins_total", pattern="room:*", result="ok") == 1
    finally:
        s.stop()
