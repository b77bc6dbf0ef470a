"""Long-poll across nodes (issue 12): a session opened on node A is used through node B's port.

Two real server processes share one redis-server and one TP_SECRET_KEY_BASE; every POST and GET for the
session goes to the port chosen by the test (deterministic cross-node routing). B forwards each request over
pub/sub to A, which owns the session (transport/longpoll_routing.py), and answers with A's status and frames.
TP_LONGPOLL_WINDOW=2 keeps the 204 and expiry waits short.
"""

from __future__ import annotations

import json
import socket
import threading
import time
import urllib.request

import pytest

from tests.scale.conftest import Member, connected, wait_for
from tests.support.live_server import LiveServer

WINDOW = 2.0
SECRET = "lp-routing-test-secret-" + "x" * 40


@pytest.fixture
def nodes(make_node):
    env = {"TP_LONGPOLL_WINDOW": str(WINDOW), "TP_SECRET_KEY_BASE": SECRET}
    a, b = make_node(env), make_node(env)
    wait_for(lambda: connected(a) and connected(b), "both nodes connected to Redis")
    return a, b


def request(node: LiveServer, method: str, token: str | None = None, lines: list[str] | None = None) -> bytes:
    query = "vsn=2.0.0" + (f"&token={token}" if token else "")
    body = "\n".join(lines).encode() if lines is not None else None
    headers = {"Content-Type": "application/x-ndjson"} if lines is not None else {}
    req = urllib.request.Request(f"{node.http_url}/socket/longpoll?{query}", data=body, method=method,
                                 headers=headers)
    with urllib.request.urlopen(req, timeout=WINDOW + 8) as resp:
        assert resp.status == 200
        assert resp.headers["Content-Type"] == "application/json; charset=utf-8"
        return resp.read()


def open_session(node: LiveServer) -> str:
    body = request(node, "GET")
    token = json.loads(body)["token"]
    assert body == b'{"messages":[],"status":410,"token":"%s"}' % token.encode()
    return token


def post(node: LiveServer, token: str, *frames: list) -> bytes:
    return request(node, "POST", token, [json.dumps(f, separators=(",", ":")) for f in frames])


def poll(node: LiveServer, token: str) -> tuple[bytes, dict]:
    body = request(node, "GET", token)
    return body, json.loads(body)


def poll_until(node: LiveServer, token: str, want: int, timeout: float = 10.0) -> list[list]:
    got: list[list] = []
    deadline = time.monotonic() + timeout
    while len(got) < want:
        assert time.monotonic() < deadline, f"only {got} within {timeout}s"
        body, answer = poll(node, token)
        assert answer["status"] in (200, 204) and answer["token"] == token, body
        got += [json.loads(m) for m in answer["messages"]]
    return got


def routing(node: LiveServer) -> dict:
    return node.health()["longpoll"]


def test_a_session_on_node_a_is_used_through_node_b(nodes):
    a, b = nodes
    base_a, base_b = routing(a), routing(b)
    assert base_a["forwarding"] == base_b["forwarding"] == base_a["held"] == base_b["held"] == 0

    # echo:* is deterministic: the same frames through B (forwarded) and on A (local) must be the same bytes.
    script = [["1", "1", "echo:lp", "phx_join", {"n": 1}], ["1", "2", "echo:lp", "ping", {"big": 2**70, "s": "é"}]]
    remote, local = open_session(a), open_session(a)
    for token, node in ((remote, b), (local, a)):
        assert post(node, token, *script) == b'{"status":200}'
    remote_body, remote_answer = poll(b, remote)
    local_body, local_answer = poll(a, local)
    assert remote_answer["status"] == 200 and len(remote_answer["messages"]) == 3
    assert remote_body == local_body.replace(local.encode(), remote.encode())

    # A WebSocket member on A and the long-poll session (owned by A, reached only through B) in one room.
    room = "test:lp-routing"
    member = Member(a.port, room, "wsuser")
    assert post(b, remote, ["2", "2", room, "phx_join", {"user_id": "lpuser"}]) == b'{"status":200}'
    frames = poll_until(b, remote, 3)
    assert frames[0] == ["2", "2", room, "phx_reply", {"response": {}, "status": "ok"}]
    state = next(f for f in frames if f[3] == "presence_state")[4]
    assert sorted(state) == ["lpuser", "wsuser"]
    member.wait_keys(["lpuser", "wsuser"])

    # push -> reply through B; its broadcast reaches the WebSocket member; the member's broadcast reaches us.
    assert post(b, remote, ["2", "3", room, "shout", {"from": "lp"}]) == b'{"status":200}'
    assert member.next_event("shout")[4] == {"from": "lp"}
    member.shout({"from": "ws"})
    got = poll_until(b, remote, 2)
    assert ["2", "3", room, "phx_reply", {"response": {}, "status": "ok"}] in got
    assert [None, None, room, "shout", {"from": "ws"}] in got

    # A poll held by the owner (nothing buffered) is answered as soon as a frame arrives, not after the window.
    started = time.monotonic()
    threading.Timer(0.5, member.shout, ({"from": "late"},)).start()
    _body, answer = poll(b, remote)
    assert answer["status"] == 200 and json.loads(answer["messages"][0])[4] == {"from": "late"}
    assert time.monotonic() - started < WINDOW
    # Nothing within the window: 204 with the same token, the bytes a local poll answers.
    body, _ = poll(b, remote)
    assert body == b'{"messages":[],"status":204,"token":"%s"}' % remote.encode()

    # Alternate the ports: POST on one node, GET on the other.
    for i in range(6):
        to, back = (a, b) if i % 2 else (b, a)
        assert post(to, remote, ["1", str(10 + i), "echo:lp", "n", {"i": i}]) == b'{"status":200}'
        got = poll_until(back, remote, 2)
        assert got == [["1", None, "echo:lp", "n", {"i": i}],
                       ["1", str(10 + i), "echo:lp", "phx_reply", {"response": {"i": i}, "status": "ok"}]]

    # Leaving (presence leave) through B.
    assert post(b, remote, ["2", "20", room, "phx_leave", {}]) == b'{"status":200}'
    diff = member.next_event("presence_diff")[4]
    assert list(diff["leaves"]) == ["lpuser"]

    a.wait_log("long-poll session reached through node=", "forwarded over pub/sub")
    # Every forwarded request and held poll has ended: the subscriptions are back to the baseline.
    wait_for(lambda: routing(b)["forwarding"] == 0 and routing(a)["held"] == 0, "no forward left in flight", 5)
    assert routing(b)["forwarded"] >= 12 and routing(a)["served"] >= 12
    assert routing(b)["sessions"] == base_b["sessions"]
    member.close()


def test_a_client_that_goes_away_mid_poll_releases_the_owners_hold(nodes):
    a, b = nodes
    token = open_session(a)
    assert post(b, token, ["1", "1", "echo:x", "phx_join", {}]) == b'{"status":200}'
    assert len(poll_until(b, token, 1)) == 1
    # A raw GET through B, dropped while A holds it.
    sock = socket.create_connection(("127.0.0.1", b.port))
    sock.sendall(f"GET /socket/longpoll?vsn=2.0.0&token={token} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    wait_for(lambda: routing(a)["held"] == 1, "A holding the forwarded poll", 3)
    sock.close()
    wait_for(lambda: routing(a)["held"] == 0 and routing(b)["forwarding"] == 0, "the hold released on cancel", 1.5)
    # The frames that come later are still there for the next poll.
    assert post(a, token, ["1", "2", "echo:x", "e", {}]) == b'{"status":200}'
    assert [f[3] for f in poll_until(b, token, 2)] == ["e", "phx_reply"]


def test_owner_session_ended_or_owner_killed_is_410_with_a_new_token(nodes):
    a, b = nodes
    token = open_session(a)
    assert post(b, token, ["1", "1", "echo:x", "phx_join", {}]) == b'{"status":200}'
    assert len(poll_until(b, token, 1)) == 1

    # The session expires on A (no poll for 1.5 windows): A says so at once, B answers as for an unknown session.
    a.wait_log("long-poll session expired", timeout=10)
    started = time.monotonic()
    body, answer = poll(b, token)
    assert answer["status"] == 410 and answer["messages"] == [] and answer["token"] != token, body
    assert time.monotonic() - started < 1.0
    assert post(b, token, ["1", "2", "echo:x", "e", {}]) == b'{"status":410}'

    # A new session on A, then A is killed: B waits at most 2 s for an answer, then 410 (GET: a new session on B).
    token = open_session(a)
    assert post(b, token, ["1", "1", "echo:x", "phx_join", {}]) == b'{"status":200}'
    assert len(poll_until(b, token, 1)) == 1
    assert a.proc is not None
    a.proc.kill()
    a.proc.wait(5)
    started = time.monotonic()
    assert post(b, token, ["1", "2", "echo:x", "e", {}]) == b'{"status":410}'
    body, answer = poll(b, token)
    assert answer["status"] == 410 and answer["token"] != token, body
    assert time.monotonic() - started < 6
    b.wait_log("gave no answer within 2s", "answering as for an unknown session")
    # The new token belongs to B: it works on B without forwarding.
    fresh = answer["token"]
    assert post(b, fresh, ["1", "1", "echo:y", "phx_join", {}]) == b'{"status":200}'
    assert poll_until(b, fresh, 1)[0][3] == "phx_reply"
    assert routing(b)["forwarding"] == 0


def test_the_supabase_long_poll_mount_is_routed_too_and_kept_apart(nodes):
    from tests.integration import test_longpoll as lp

    a, b = nodes
    path = "/realtime/v1/longpoll"
    join = ('["1","1","realtime:room","phx_join",{"config":{"broadcast":{"self":true},"presence":{"key":"",'
            '"enabled":true},"postgres_changes":[],"private":false}}]')
    token = lp.open_session(a, "vsn=2.0.0&apikey=anon", path=path)
    shout = '["1","2","realtime:room","broadcast",{"type":"broadcast","event":"e","payload":{}}]'
    assert lp.post(b, token, [join, shout], path=path) == {"status": 200}
    got = lp.poll_until(b, token, 3, path=path)
    assert got[2] == '[null,null,"realtime:room","broadcast",{"event":"e","payload":{},"type":"broadcast"}]'
    # The same secret signs both mounts, but a /realtime/v1 session is not reachable through /socket.
    assert lp.post(b, token, [shout]) == {"status": 410}
    assert routing(b)["forwarding"] == 0
