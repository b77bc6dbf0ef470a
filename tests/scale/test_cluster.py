"""Two server nodes (separate processes) sharing a real redis-server: broadcasts, presence, node death,
Redis outages (issue 11 §1). Raw clients; phoenix.js runs the same story in tests/clients."""

from __future__ import annotations

import json
import signal
import time

from tests.support.live_server import LiveServer, free_port
from tests.support.redis_server import RedisServer

from .conftest import DOWN_AFTER, Member, connected, wait_for

ODD = {"big": 2**70, "neg": -(2**65), "f": 1e3, "tiny": 5e-324, "third": 1 / 3, "z": -0.0, "s": "é\u2028"}


def test_broadcast_and_presence_across_nodes(make_node):
    one, two = make_node(), make_node()
    alice = Member(one.port, "test:x", "alice")
    bob = Member(two.port, "test:x", "bob")
    alice.wait_keys(["alice", "bob"])  # the join on node 2 reached node 1 as presence_diff
    bob.wait_keys(["alice", "bob"])  # and the other way round
    dave = Member(two.port, "test:x", "dave")
    assert sorted(dave.state) == ["alice", "bob", "dave"]  # presence_state on join lists both nodes' members
    alice.wait_keys(["alice", "bob", "dave"])
    dave.close()
    alice.wait_keys(["alice", "bob"])

    bob.shout(ODD)
    got_bob = bob.next_event("shout")
    got_alice = alice.next_event("shout")
    assert got_alice == got_bob
    # byte-exact after crossing Redis: big integers, Erlang floats, raw non-ASCII
    text = json.dumps(got_alice[4], sort_keys=True)
    assert '"big": 1180591620717411303424' in text and '"neg": -36893488147419103232' in text

    # the sender's node delivers its own broadcast once (its envelope comes back from Redis and is skipped)
    alice.shout({"once": 1})
    assert alice.next_event("shout")[4] == {"once": 1}
    assert bob.next_event("shout")[4] == {"once": 1}
    alice.next_event("phx_reply")
    alice.ws.expect_silence(0.5)
    bob.ws.expect_silence(0.2)

    bob.close()
    alice.wait_keys(["alice"])
    alice.close()
    # each node counts the other as a live peer (it hears its pings)
    for node in (one, two):
        wait_for(lambda node=node: node.health()["pubsub"]["peers"] == 1, "one live peer in /health")


def test_raw_shout_frame_is_identical_on_both_nodes(make_node):
    one, two = make_node(), make_node()
    alice = Member(one.port, "test:y", "alice")
    bob = Member(two.port, "test:y", "bob")
    alice.wait_keys(["alice", "bob"])
    raw = '["1","2","test:y","shout",{"big":1180591620717411303424,"f":1.0e3,"g":0.1,"e":1.0e-7}]'
    bob.ws.send_text(raw)
    frames = {}
    for name, member in (("alice", alice), ("bob", bob)):
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            text = member.ws.recv_text(5)
            if '"shout"' in text:
                frames[name] = text
                break
    expected = '[null,null,"test:y","shout",{"big":1180591620717411303424,"e":1.0e-7,"f":1.0e3,"g":0.1}]'
    assert frames == {"alice": expected, "bob": expected}


def test_killed_node_members_leave_everywhere_within_down_period(make_node):
    one, two = make_node(), make_node()
    alice = Member(one.port, "test:k", "alice")
    bob = Member(two.port, "test:k", "bob")
    carol = Member(two.port, "test:k", "carol")
    alice.wait_keys(["alice", "bob", "carol"])
    two.stop(signal.SIGKILL)
    # TP_PRESENCE_DOWN_AFTER=2: the leaves arrive after ~2 s of silence (bounded wait, no timing assertion)
    alice.wait_keys(["alice"], timeout=15)
    wait_for(lambda: any("silent for" in line and "2 member(s) leave" in line for line in one.log_lines()),
             "node 1's log line about node 2 going down")
    # a fresh joiner on node 1 sees only the living
    dave = Member(one.port, "test:k", "dave")
    assert sorted(dave.state) == ["alice", "dave"]
    for member in (alice, bob, carol, dave):
        member.close()


def test_clean_stop_makes_members_leave_at_once(make_node):
    one = make_node(env={"TP_PRESENCE_DOWN_AFTER": "30"})
    two = make_node(env={"TP_PRESENCE_DOWN_AFTER": "30"})
    alice = Member(one.port, "test:c", "alice")
    bob = Member(two.port, "test:c", "bob")
    alice.wait_keys(["alice", "bob"])
    started = time.monotonic()
    assert two.stop(signal.SIGTERM) == 0
    alice.wait_keys(["alice"], timeout=10)  # well inside the 30 s down period
    assert time.monotonic() - started < 25
    alice.close()
    bob.close()


def test_redis_outage_local_delivery_continues_and_cross_node_resumes(redis, make_node):
    one, two = make_node(), make_node()
    alice = Member(one.port, "test:o", "alice")
    bob = Member(two.port, "test:o", "bob")
    alice.wait_keys(["alice", "bob"])

    redis.stop()
    for node in (one, two):
        wait_for(lambda node=node: not connected(node), "health to report pubsub disconnected")
        health = node.health()
        assert health["status"] == "degraded"
        assert health["pubsub"]["backend"] == "redis" and health["pubsub"]["connected"] is False
    # local delivery goes on: a second member on node 1 gets alice's shout
    alice2 = Member(one.port, "test:o", "alice2")
    alice.shout({"during": "outage"})
    assert alice2.next_event("shout")[4] == {"during": "outage"}
    # carol joins node 2 during the outage: node 1 cannot know yet
    carol = Member(two.port, "test:o", "carol")
    time.sleep(1.0)  # several reconnect attempts happen meanwhile; they must not log a line each
    lost = [line for line in one.log_lines() if "pubsub: lost" in line]
    assert len(lost) == 1, lost

    redis.start()  # same port
    for node in (one, two):
        wait_for(lambda node=node: connected(node), "pubsub to reconnect", timeout=20)
        assert node.health()["status"] == "ok"
    # presence republished after the reconnect: node 1's members see carol, node 2's see alice2
    alice.wait_keys(["alice", "alice2", "bob", "carol"], timeout=15)
    carol.wait_keys(["alice", "alice2", "bob", "carol"], timeout=15)
    # and cross-node delivery resumes without restarting anything
    bob.shout({"after": "outage"})
    assert alice.next_event("shout")[4] == {"after": "outage"}
    connected_lines = [line for line in one.log_lines() if "pubsub: connected" in line]
    assert len(connected_lines) == 2, connected_lines
    for member in (alice, alice2, bob, carol):
        member.close()


def test_redis_unreachable_at_start():
    port = free_port()
    node = LiveServer(env={"TP_PUBSUB": f"redis://127.0.0.1:{port}/0"}).start()
    try:
        health = node.health()
        assert health["status"] == "degraded"
        assert health["pubsub"]["connected"] is False and health["pubsub"]["backend"] == "redis"
        alice = Member(node.port, "test:u", "alice")
        bob = Member(node.port, "test:u", "bob")
        alice.wait_keys(["alice", "bob"])
        bob.shout({"local": True})
        assert alice.next_event("shout")[4] == {"local": True}
        wait_for(lambda: any("cannot reach" in line for line in node.log_lines()), "the unreachable log line")
        with RedisServer(port=port):
            wait_for(lambda: connected(node), "pubsub to connect once Redis is up", timeout=20)
            assert node.health()["status"] == "ok"
        alice.close()
        bob.close()
    finally:
        node.stop()
    assert sum("cannot reach" in line for line in node.log_lines()) == 1


def test_down_after_setting_reaches_health(make_node):
    node = make_node(env={"TP_PRESENCE_DOWN_AFTER": DOWN_AFTER})
    assert node.health()["pubsub"]["backend"] == "redis"


def test_silent_redis_is_detected_by_the_canary_and_recovered(redis, make_node):
    """CLIENT PAUSE: Redis keeps the TCP connections open but answers nothing (like a half-open connection
    or a hung failover). The node notices that not even its own pings come back, reports degraded, and
    reconnects once Redis answers again."""
    import socket as socketlib

    one, two = make_node(), make_node()
    alice = Member(one.port, "test:p", "alice")
    bob = Member(two.port, "test:p", "bob")
    alice.wait_keys(["alice", "bob"])
    with socketlib.create_connection(("127.0.0.1", redis.port), timeout=5) as sock:
        sock.sendall(b"CLIENT PAUSE 9000 ALL\r\n")
        assert sock.recv(16).startswith(b"+OK")
    wait_for(lambda: not connected(one), "node 1 to notice the silent Redis", timeout=15)
    assert one.health()["status"] == "degraded"
    wait_for(lambda: any("pubsub: lost" in line for line in one.log_lines()), "the log line about the lost Redis")
    wait_for(lambda: connected(one) and connected(two), "both nodes to reconnect after the pause", timeout=30)
    bob.shout({"after": "pause"})
    assert alice.next_event("shout", timeout=15)[4] == {"after": "pause"}
    alice.close()
    bob.close()


def test_password_in_url_is_used_and_never_shown():
    with RedisServer(password="s3cret-pw") as redis:
        good = LiveServer(env={"TP_PUBSUB": redis.url}).start()
        bad = LiveServer(env={"TP_PUBSUB": redis.url.replace("s3cret-pw", "wrong-pw")}).start()
        try:
            wait_for(lambda: connected(good), "the node with the right password to connect")
            health = good.health()
            assert health["pubsub"]["url"] == f"redis://:***@127.0.0.1:{redis.port}/0"
            wait_for(lambda: any("cannot reach" in line for line in bad.log_lines()), "the auth failure log line")
            assert bad.health()["status"] == "degraded"
            for node in (good, bad):
                assert "s3cret-pw" not in node.output() and "wrong-pw" not in node.output()
        finally:
            good.stop()
            bad.stop()
