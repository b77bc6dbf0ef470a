"""`room:*` Yjs documents across two nodes on Redis (issue 11): an update made on one node reaches members on
the other, and a room loaded later on a node starts from the full document (state from the other copies),
each node keeping its own store (TP_YJS_STORE=memory: nothing shared but Redis)."""

from __future__ import annotations

from pycrdt import Doc, Text

from tests.integration.test_yjs_rooms import join, recv_app, send, until_reply, update_of
from tests.support.rawws import RawWebSocket

V2 = "/socket/websocket?vsn=2.0.0"


def text_of(state: list[int]) -> str:
    doc = Doc()
    doc.apply_update(bytes(state))
    return str(doc.get("text", type=Text))


def test_updates_cross_nodes_and_a_late_node_starts_from_the_full_document(make_node):
    one = make_node(env={"TP_YJS_STORE": "memory"})
    two = make_node(env={"TP_YJS_STORE": "memory"})
    three = make_node(env={"TP_YJS_STORE": "memory"})
    topic = "room:shared"
    with RawWebSocket(one.port, V2) as a, RawWebSocket(two.port, V2) as b:
        join(a, topic)
        join(b, topic)
        doc, first = update_of("hello ")
        send(a, "1", "2", topic, "update", {"data": list(first)})
        until_reply(a, "2")
        assert recv_app(b, 10) == [None, None, topic, "update", {"data": list(first)}]  # node 1 -> node 2
        doc_b = Doc()
        doc_b.apply_update(bytes(first))
        doc_b, second = update_of("world", doc_b)
        send(b, "1", "3", topic, "update", {"data": list(second)})
        until_reply(b, "3")
        assert recv_app(a, 10) == [None, None, topic, "update", {"data": list(second)}]  # node 2 -> node 1

        # node 3 never saw this room: its first joiner gets the whole document in the join reply
        with RawWebSocket(three.port, V2) as c:
            state = join(c, topic)["state"]
            assert text_of(state) == "hello world"


def test_updates_made_during_a_redis_outage_reach_the_other_node_after_it(redis, make_node):
    from .conftest import connected, wait_for

    one = make_node(env={"TP_YJS_STORE": "memory"})
    two = make_node(env={"TP_YJS_STORE": "memory"})
    topic = "room:outage"
    with RawWebSocket(one.port, V2) as a, RawWebSocket(two.port, V2) as b:
        join(a, topic)
        join(b, topic)
        redis.stop()
        wait_for(lambda: not connected(one) and not connected(two), "both nodes to notice the outage")
        doc, during = update_of("written during the outage")
        send(a, "1", "2", topic, "update", {"data": list(during)})
        until_reply(a, "2")  # accepted by node 1 while Redis is down
        redis.start()
        wait_for(lambda: connected(one) and connected(two), "both nodes back on Redis", timeout=20)
        # node 2's copy asked node 1's for what it missed; its member gets it as an update
        frame = recv_app(b, 15)
        assert frame[3] == "update"
        got = Doc()
        got.apply_update(bytes(frame[4]["data"]))
        assert str(got.get("text", type=Text)) == "written during the outage"
