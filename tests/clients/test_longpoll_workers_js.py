"""phoenix.js 1.7 and 1.8 over LongPoll against `--workers 2` on a real redis-server, one port (issue 12).

With SO_REUSEPORT each of the client's requests (a fresh TCP connection each, lib/xhr.js) goes to either
worker; one that does not hold the session forwards the request over pub/sub to the one that does
(transport/longpoll_routing.py). Join, presence, 20 push/reply/broadcast rounds and a leave must all work, and
the workers' log must show that forwarding happened (otherwise this would prove nothing).
"""

from __future__ import annotations

import pytest

from tests.clients.test_phoenix_js import CLIENT_PARAMS, run_scenario
from tests.clients.test_phoenix_js import node_clients as node_clients  # noqa: F401 (fixture)
from tests.support.live_server import LiveServer
from tests.support.redis_server import RedisServer
from tests.support.waiting import wait_for

pytestmark = pytest.mark.clients


@pytest.fixture
def workers(monkeypatch):
    monkeypatch.setenv("PHX_TRANSPORT", "longpoll")
    with RedisServer() as redis:
        env = {"TP_PUBSUB": redis.url, "TP_SECRET_KEY_BASE": "lp-workers-" + "s" * 48, "TP_LONGPOLL_WINDOW": "2"}
        server = LiveServer(env=env, args=["--workers", "2"]).start(timeout=30)
        try:
            def ready() -> bool:
                workers = server.health().get("workers", [])
                return len(workers) == 2 and all(w["pubsub"]["connected"] for w in workers)

            wait_for(ready, 20, "two workers connected to Redis")
            yield server
        finally:
            server.stop()


@pytest.mark.parametrize("client", CLIENT_PARAMS)
def test_longpoll_across_two_workers(node_clients, workers, client):  # noqa: F811
    result = run_scenario(node_clients, "longpoll_workers.js", client, workers)
    assert [e.get("transport") for e in result["entries"] if e["kind"] == "connect"] == ["longpoll", "longpoll"]
    assert result["replies"] == [["ok", {}]] * 20
    assert result["gotA"] == result["gotB"] == list(range(20))
    assert [s["name"] for s in result["steps"]][-1] == "A sees only alice"
    # Forwarding happened: a worker answered requests for a session the other one holds.
    assert workers.wait_logs("long-poll session reached through node=", timeout=5)
    forwards = [line for line in workers.log_lines() if "long-poll forward " in line]
    assert forwards, "no request reached the other worker: the test proved nothing"
    # No request was answered as for an unknown session (that would have been a lost session).
    assert not [line for line in workers.log_lines() if "gave no answer" in line]
