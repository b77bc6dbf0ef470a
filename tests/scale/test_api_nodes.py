"""The server HTTP API (issue 13) across two nodes (separate processes) sharing a real redis-server: a
broadcast on node A reaches node B's members exactly once, a disconnect on node A closes the user's sockets on
node B with 1000, presence on either node lists both nodes' members; /api/topics is each node's own view."""

from __future__ import annotations

import time

import pytest

from tests.integration.test_api import SECRET, V2, api, join
from tests.support.backend import TestBackend
from tests.support.rawws import RawWebSocket

from .conftest import Member, wait_for


@pytest.fixture
def backend():
    server = TestBackend(SECRET).start()
    yield server
    server.stop()


def _frames_for(member: Member, seconds: float) -> list[str]:
    """Every text frame `member` receives for `seconds` (bounded), raw."""
    texts = []
    deadline = time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        try:
            texts.append(member.ws.recv_text(min(left, 0.5)))
        except TimeoutError:
            pass
    return texts


def test_api_broadcast_on_one_node_reaches_both_nodes_once(make_node):
    one = make_node({"TP_API_SECRET": SECRET})
    two = make_node({"TP_API_SECRET": SECRET})
    alice = Member(one.port, "test:api", "alice")
    bob = Member(two.port, "test:api", "bob")
    carol = Member(two.port, "test:api", "carol")
    for member in (alice, bob, carol):
        member.wait_keys(["alice", "bob", "carol"])  # presence settled: nothing else is in flight
    status, body = api(one.port, "POST", "/api/broadcast",
                       {"topic": "test:api", "event": "new_msg", "payload": {"body": "saved", "big": 2**70}})
    assert status == 200 and body == {"ok": True, "published": 1, "local_recipients": 1}
    expected = '[null,null,"test:api","new_msg",{"big":1180591620717411303424,"body":"saved"}]'
    for member in (alice, bob, carol):
        assert member.ws.recv_text(10) == expected  # exact (big integer intact), local and across Redis
    # a batch from the other node: in order, and nothing else arrives (the first message came exactly once)
    status, body = api(two.port, "POST", "/api/broadcast", {"messages": [
        {"topic": "test:api", "event": "a", "payload": {"n": 1}},
        {"topic": "test:api", "event": "b", "payload": {"n": 2}}]})
    assert status == 200 and body == {"ok": True, "published": 2, "local_recipients": 4}
    for member in (alice, bob, carol):
        texts = _frames_for(member, 1.5)
        assert texts == ['[null,null,"test:api","a",{"n":1}]', '[null,null,"test:api","b",{"n":2}]'], texts


def test_api_disconnect_on_one_node_closes_the_users_sockets_on_the_other(make_node, backend):
    env = backend.env(join=False, event=False)
    one, two = make_node(env), make_node(env)
    alice_b1 = RawWebSocket(two.port, V2 + "&token=good&user=alice")
    alice_b2 = RawWebSocket(two.port, V2 + "&token=good&user=alice")
    alice_a = RawWebSocket(one.port, V2 + "&token=good&user=alice")
    bob_b = RawWebSocket(two.port, V2 + "&token=good&user=bob")
    for ws in (alice_b1, alice_b2, alice_a, bob_b):
        join(ws, "test:d")
    status, body = api(one.port, "POST", "/api/disconnect", {"user_id": "alice"})
    assert status == 200 and body == {"ok": True, "socket_id": "user_socket:alice", "local_connections": 1}
    for ws in (alice_a, alice_b1, alice_b2):
        frame = ws.recv()
        while frame.kind == "text":  # presence diffs may come first
            frame = ws.recv()
        assert (frame.kind, frame.code) == ("close", 1000)
    two.wait_log("disconnect socket_id=user_socket:alice: closing 2 connection(s) with 1000")
    # bob, on the same node, is untouched
    bob_b.send_text('[null,"9","phoenix","heartbeat",{}]')
    deadline = time.monotonic() + 5
    while True:
        text = bob_b.recv_text(max(0.1, deadline - time.monotonic()))
        if '"phoenix"' in text:
            break
    assert text == '[null,"9","phoenix","phx_reply",{"response":{},"status":"ok"}]'
    bob_b.close()


def test_api_presence_is_cluster_wide_and_topics_per_node(make_node):
    one = make_node({"TP_API_SECRET": SECRET})
    two = make_node({"TP_API_SECRET": SECRET})
    alice = Member(one.port, "test:p", "alice")
    bob = Member(two.port, "test:p", "bob")
    carol = Member(two.port, "test:p", "carol")
    for node in (one, two):
        wait_for(lambda node=node: sorted(api(node.port, "GET", "/api/presence?topic=test:p")[1]["presence"])
                 == ["alice", "bob", "carol"], f"both nodes' members in /api/presence on port {node.port}")
    status, body = api(one.port, "GET", "/api/presence?topic=test:p")
    assert status == 200 and all(len(value["metas"]) == 1 and "phx_ref" in value["metas"][0]
                                 for value in body["presence"].values())
    # /api/topics counts this node's joined channels only
    assert api(one.port, "GET", "/api/topics")[1] == {"topics": {"test:p": 1}}
    assert api(two.port, "GET", "/api/topics")[1] == {"topics": {"test:p": 2}}
    carol.close()
    for node in (one, two):
        wait_for(lambda node=node: sorted(api(node.port, "GET", "/api/presence?topic=test:p")[1]["presence"])
                 == ["alice", "bob"], f"carol gone from /api/presence on port {node.port}")
    alice.close()
    bob.close()
