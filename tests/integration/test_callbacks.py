"""Callbacks to a real backend (tests/support/backend.py, a Tornado app on its own port that checks every
signature itself) from the real server over real sockets: connect, join and event allowed, refused, timing out
and failing; replies and broadcasts from the answer; the backend down; one socket's pushes in order."""

from __future__ import annotations

import time

import pytest

from tests.integration.test_api import SECRET, V2, api, join, recv, send
from tests.support.backend import TestBackend
from tests.support.live_server import LiveServer, free_port
from tests.support.rawws import HandshakeRefused, RawWebSocket

UNAVAILABLE = {"reason": "backend unavailable"}


def reply(jr, ref, topic, status, response) -> list:
    return [jr, ref, topic, "phx_reply", {"response": response, "status": status}]


@pytest.fixture(scope="module")
def backend():
    server = TestBackend(SECRET, slow_delay=3.0).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def server(backend):
    env = {**backend.env(), "TP_JOIN_TOPICS": "chat:*,support:*", "TP_CALLBACK_TIMEOUT": "1",
           "TP_EVENT_JOINS": "on"}
    live = LiveServer(env=env).start()
    yield live
    live.stop()


def connect(server: LiveServer, user: str = "alice", token: str = "good") -> RawWebSocket:
    return RawWebSocket(server.port, f"{V2}&token={token}&user={user}")


def next_not_presence(ws: RawWebSocket) -> list:
    frame = recv(ws)
    while frame[3] in ("presence_diff", "presence_state"):
        frame = recv(ws)
    return frame


# ---- connect -------------------------------------------------------------------------------------------


def test_connect_allowed_gets_the_backends_assigns_and_is_signed(server, backend):
    with connect(server, "carol") as ws:
        frames = join(ws, "chat:lobby")
        assert frames[0] == reply("1", "1", "chat:lobby", "ok", {"welcome": "chat:lobby", "user": "carol"})
        # presence key = the user id the backend assigned at connect
        assert "carol" in frames[-1][4]
    request = [r for r in backend.of("connect") if r["body"]["params"].get("user") == "carol"][-1]
    assert request["signed"] and request["event_header"] == "connect"
    assert request["body"] == {"type": "connect", "params": {"token": "good", "user": "carol"}, "assigns": {}}
    joined = [r for r in backend.of("join") if r["body"]["topic"] == "chat:lobby"][-1]["body"]
    assert joined["assigns"] == {"user_id": "carol", "role": "member"}
    assert joined["socket_id"] == "user_socket:carol" and joined["payload"] == {}


@pytest.mark.parametrize("token,status,log", [
    ("bad", 403, "connect refused by the backend"),
    ("broken", 503, "status=500 HTTP 500"),
    ("slow", 503, "no answer within 1.0s (TP_CALLBACK_TIMEOUT)"),
])
def test_connect_refused_failing_or_timing_out(server, token, status, log):
    started = time.monotonic()
    with pytest.raises(HandshakeRefused) as refused:
        connect(server, "mallory", token)
    assert refused.value.status == status and refused.value.body == b""
    if token == "slow":
        assert time.monotonic() - started < 2.9  # TP_CALLBACK_TIMEOUT=1, not the backend's 3 s
    server.wait_log(log)
    assert server.health()["status"] == "ok"


# ---- join ----------------------------------------------------------------------------------------------


def test_join_refused_and_timing_out_then_the_socket_still_works(server):
    with connect(server, "dave") as ws:
        send(ws, "1", "1", "chat:refuse-me", "phx_join", {"x": 1})
        assert recv(ws) == reply("1", "1", "chat:refuse-me", "error", {"reason": "not a member"})
        started = time.monotonic()
        send(ws, "2", "2", "chat:slow-room", "phx_join", {})
        send(ws, None, "3", "phoenix", "heartbeat", {})  # queued behind the awaited join: answered after it
        assert recv(ws, 4) == reply("2", "2", "chat:slow-room", "error", UNAVAILABLE)
        assert time.monotonic() - started < 2.9
        assert recv(ws) == reply(None, "3", "phoenix", "ok", {})
        send(ws, "4", "4", "chat:broken", "phx_join", {})
        assert recv(ws) == reply("4", "4", "chat:broken", "error", UNAVAILABLE)
        frames = join(ws, "chat:fine", jr="5")
        assert frames[0][4]["status"] == "ok"
    server.wait_log("callback join http://127.0.0.1")


# ---- events --------------------------------------------------------------------------------------------


def test_event_replies_broadcasts_or_both(server, backend):
    with connect(server, "erin") as a, connect(server, "frank") as b:
        join(a, "chat:ev")
        join(b, "chat:ev")
        send(a, "1", "10", "chat:ev", "echo", {"q": 1})
        assert next_not_presence(a) == reply("1", "10", "chat:ev", "ok", {"q": 1})
        send(a, "1", "11", "chat:ev", "shout", {"s": 2})
        assert next_not_presence(a) == [None, None, "chat:ev", "shout", {"s": 2}]
        assert next_not_presence(a) == reply("1", "11", "chat:ev", "ok", {})
        assert next_not_presence(b) == [None, None, "chat:ev", "shout", {"s": 2}]
        send(a, "1", "12", "chat:ev", "both", {"body": "hi"})
        assert next_not_presence(a) == [None, None, "chat:ev", "new_msg", {"body": "hi"}]
        assert next_not_presence(a) == reply("1", "12", "chat:ev", "ok", {"stored": True})
        assert next_not_presence(b) == [None, None, "chat:ev", "new_msg", {"body": "hi"}]
        send(a, "1", "13", "chat:ev", "others", {"body": "psst"})
        assert next_not_presence(a) == reply("1", "13", "chat:ev", "ok", {})  # not to the sender
        assert next_not_presence(b) == [None, None, "chat:ev", "new_msg", {"body": "psst"}]
        send(a, "1", "14", "chat:ev", "refuse", {})
        assert next_not_presence(a) == reply("1", "14", "chat:ev", "error", {"reason": "read only"})
        send(a, "1", "15", "chat:ev", "garbage", {})
        assert next_not_presence(a) == reply("1", "15", "chat:ev", "error", UNAVAILABLE)
        send(a, "1", "16", "chat:ev", "broken", {})
        assert next_not_presence(a) == reply("1", "16", "chat:ev", "error", UNAVAILABLE)
        send(a, "1", "17", "chat:ev", "slow", {})
        assert next_not_presence(a) == reply("1", "17", "chat:ev", "error", UNAVAILABLE)
        send(a, "1", "18", "chat:ev", "echo", {"after": "all that"})  # the channel is still joined
        assert next_not_presence(a) == reply("1", "18", "chat:ev", "ok", {"after": "all that"})
        b.expect_silence(0.2)
    event = [r for r in backend.of("event", "event") if r["body"]["payload"] == {"q": 1}][-1]
    assert event["signed"] and event["body"]["event"] == "echo" and event["body"]["topic"] == "chat:ev"
    assert event["body"]["assigns"]["user_id"] == "erin"
    server.wait_log("the answer is a JSON list, expected an object")


def test_joins_and_leaves_are_reported_with_TP_EVENT_JOINS(server, backend):
    with connect(server, "gina") as ws:
        join(ws, "support:t1")
        send(ws, "1", "2", "support:t1", "phx_leave", {})
        assert recv(ws)[3] == "phx_reply"
    reports = backend.wait_for(lambda: [r["body"]["type"] for r in backend.of("event")
                                        if r["body"]["topic"] == "support:t1"] == ["join", "leave"] or None,
                               "join then leave reports")
    assert reports
    leave = [r for r in backend.of("event", "leave") if r["body"]["topic"] == "support:t1"][-1]
    assert leave["body"]["reason"] == "left" and leave["event_header"] == "leave" and leave["signed"]


def test_one_sockets_pushes_reach_the_backend_in_order(server, backend):
    """The backend answers later pushes faster; the socket awaits each callback before the next push."""
    count = 20
    with connect(server, "hank") as ws:
        join(ws, "chat:order")
        for n in range(count):
            send(ws, "1", str(100 + n), "chat:order", "seq", {"n": n})
        replies = [next_not_presence(ws) for _ in range(count)]
    assert replies == [reply("1", str(100 + n), "chat:order", "ok", {"n": n}) for n in range(count)]
    seen = [r["body"]["payload"]["n"] for r in backend.of("event", "event") if r["body"]["event"] == "seq"
            and r["body"]["topic"] == "chat:order"]
    assert seen == list(range(count))


def test_other_sockets_are_not_delayed_by_a_slow_callback(server):
    with connect(server, "ivy") as slow, connect(server, "jack") as fast:
        join(slow, "chat:par")
        join(fast, "echo:par")
        send(slow, "1", "2", "chat:par", "slow", {})
        started = time.monotonic()
        send(fast, "1", "2", "echo:par", "ping", {})
        assert recv(fast)[3] == "ping" and recv(fast)[3] == "phx_reply"
        assert time.monotonic() - started < 0.9  # well before the slow callback's 1 s timeout
        assert next_not_presence(slow) == reply("1", "2", "chat:par", "error", UNAVAILABLE)


# ---- backend down --------------------------------------------------------------------------------------


def test_backend_down_clients_get_the_error_reply_and_the_server_stays_healthy():
    dead = f"http://127.0.0.1:{free_port()}"
    env = {"TP_API_SECRET": SECRET, "TP_JOIN_TOPICS": "chat:*", "TP_JOIN_URL": dead + "/join",
           "TP_EVENT_URL": dead + "/event", "TP_CALLBACK_TIMEOUT": "2"}
    live = LiveServer(env=env).start()
    try:
        with RawWebSocket(live.port, V2) as ws:
            send(ws, "1", "1", "chat:down", "phx_join", {})
            assert recv(ws) == reply("1", "1", "chat:down", "error", UNAVAILABLE)
            join(ws, "test:still-fine", jr="2")
            line = live.wait_log("callback join " + dead + "/join topic=chat:down failed")
            assert "connection refused" in line or "Connection refused" in line, line
        assert live.health()["status"] == "ok"
    finally:
        live.stop()
    # joins allowed without TP_JOIN_URL; the push's callback fails
    env.pop("TP_JOIN_URL")
    live = LiveServer(env=env).start()
    try:
        with RawWebSocket(live.port, V2) as ws:
            join(ws, "chat:down")
            send(ws, "1", "2", "chat:down", "new_msg", {"body": "lost?"})
            assert next_not_presence(ws) == reply("1", "2", "chat:down", "error", UNAVAILABLE)
            send(ws, None, "3", "phoenix", "heartbeat", {})
            assert recv(ws) == reply(None, "3", "phoenix", "ok", {})
        assert live.health()["status"] == "ok"
    finally:
        live.stop()


def test_callbacks_need_the_secret():
    from tests.integration.test_cli import run_serve

    result = run_serve(env={"TP_CONNECT_URL": "http://127.0.0.1:9/connect", "TP_API_SECRET": ""})
    assert result.returncode == 2 and "TP_CONNECT_URL is set but TP_API_SECRET is not" in result.stderr
    result = run_serve(env={"TP_JOIN_URL": "ftp://x", "TP_API_SECRET": "s"})
    assert result.returncode == 2 and "must be an http:// or https:// URL" in result.stderr


def test_api_broadcast_into_a_backend_topic_reaches_members(server):
    with connect(server, "kim") as ws:
        join(ws, "chat:api")
        status, body = api(server.port, "POST", "/api/broadcast",
                           {"topic": "chat:api", "event": "saved", "payload": {"id": 1}})
        assert status == 200 and body["local_recipients"] == 1
        assert next_not_presence(ws) == [None, None, "chat:api", "saved", {"id": 1}]


def test_callbacks_are_counted_in_metrics(server):
    import urllib.request

    with connect(server, "lena") as ws:
        join(ws, "chat:metrics")
        send(ws, "1", "2", "chat:metrics", "echo", {})
        assert next_not_presence(ws)[4]["status"] == "ok"
        send(ws, "1", "3", "chat:metrics", "broken", {})
        assert next_not_presence(ws)[4]["status"] == "error"
    text = urllib.request.urlopen(server.http_url + "/metrics", timeout=5).read().decode()
    counts = {line.split(" ")[0]: float(line.split(" ")[1]) for line in text.splitlines()
              if line.startswith("tornado_phoenix_callbacks_total{")}
    assert counts['tornado_phoenix_callbacks_total{kind="event",outcome="ok"}'] >= 1
    assert counts['tornado_phoenix_callbacks_total{kind="event",outcome="error"}'] >= 1
    assert counts['tornado_phoenix_callbacks_total{kind="connect",outcome="ok"}'] >= 1
    assert 'tornado_phoenix_callback_seconds_bucket{kind="join",le=' in text
