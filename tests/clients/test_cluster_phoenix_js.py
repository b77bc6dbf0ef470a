"""phoenix.js `Presence` across two server nodes sharing a real redis-server (issue 11): both nodes' members
listed, a shout crosses nodes, and after `kill -9` of node 2 its members leave on node 1's client."""

from __future__ import annotations

import json
import signal
import subprocess
import threading

import pytest

from tests.clients.test_phoenix_js import CLIENT_PARAMS, CLIENTS, JS_DIR, SCENARIOS, _parse_result
from tests.clients.test_phoenix_js import node_clients as node_clients  # noqa: F401 (fixture)
from tests.support.live_server import LiveServer
from tests.support.redis_server import RedisServer

pytestmark = pytest.mark.clients


@pytest.mark.parametrize("client", CLIENT_PARAMS)
def test_presence_across_nodes_and_node_death(node_clients, client):  # noqa: F811
    with RedisServer() as redis:
        env = {"TP_PUBSUB": redis.url, "TP_PRESENCE_DOWN_AFTER": "2"}
        one, two = LiveServer(env=env).start(), LiveServer(env=env).start()
        try:
            cmd = [node_clients, str(SCENARIOS / "cluster_presence.js"), client, one.ws_url, two.ws_url]
            proc = subprocess.Popen(cmd, cwd=JS_DIR, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                    stderr=subprocess.PIPE, text=True)
            lines: list[str] = []
            ready = threading.Event()

            def pump() -> None:
                assert proc.stdout is not None
                for line in proc.stdout:
                    lines.append(line)
                    if line.strip() == "READY_FOR_KILL":
                        ready.set()

            reader = threading.Thread(target=pump, daemon=True)
            reader.start()
            assert ready.wait(40), "".join(lines) + (proc.stderr.read() if proc.poll() is not None else "")
            two.stop(signal.SIGKILL)
            assert proc.stdin is not None
            proc.stdin.write("KILLED\n")
            proc.stdin.flush()
            proc.wait(45)
            reader.join(5)
            result = _parse_result("".join(lines))
            assert result is not None and result["error"] is None and proc.returncode == 0, (
                "".join(lines)[-4000:] + (proc.stderr.read() if proc.stderr else "") + one.output()[-3000:]
            )
            assert result["version"] == CLIENTS[client]
            assert result["shouts"] == [{"from": "bob", "f": 1000.5}]
            names = [step["name"] for step in result["steps"]]
            assert names[-1] == "A sees only alice after node 2 died", json.dumps(result["steps"])
        finally:
            one.stop()
            two.stop()
