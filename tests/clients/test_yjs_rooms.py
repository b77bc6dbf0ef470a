"""`room:*` collaborative documents with real clients: npm yjs + y-protocols + lib0 over phoenix.js 1.7/1.8.

The Node scripts in tests/js/yjs/ speak the seeds' JSON protocol (vsn 1 and 2; array, base64 and binary
updates) and y-protocols exactly as y_ex's Phoenix provider does. Each test starts the real server.
"""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.support.live_server import LiveServer

pytestmark = pytest.mark.clients

REPO = Path(__file__).resolve().parents[2]
JS_DIR = REPO / "tests" / "js"
YJS_DIR = JS_DIR / "yjs"


@pytest.fixture(scope="module")
def node() -> str:
    node = shutil.which("node")
    assert node, "node is not installed (the Yjs client tests need Node.js >= 18)"
    for pkg in ("phoenix", "phoenix18", "ws", "yjs", "y-protocols", "lib0"):
        assert (JS_DIR / "node_modules" / pkg / "package.json").is_file(), f"run `npm ci` in tests/js ({pkg})"
    return node


def run_js(node: str, script: str, *args: str, server: LiveServer, timeout: float = 60) -> dict:
    proc = subprocess.run([node, str(YJS_DIR / script), *args], cwd=JS_DIR, capture_output=True, text=True,
                          timeout=timeout, stdin=subprocess.DEVNULL)
    result = None
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith("RESULT "):
            result = json.loads(line[len("RESULT "):])
            break
    explain = (f"{script} {args} exit {proc.returncode}\n--- stdout ---\n{proc.stdout[-3000:]}\n--- stderr ---\n"
               f"{proc.stderr[-3000:]}\n--- server log ---\n" + "\n".join(server.log_lines()[-40:]))
    assert result is not None and "error" not in result and proc.returncode == 0, explain
    return result


@pytest.fixture
def memory_server():
    server = LiveServer(env={"TP_YJS_STORE": "memory"}).start()
    yield server
    server.stop()


@pytest.mark.parametrize("mode", ["json", "yjs", "mixed"])
def test_three_clients_converge_and_late_joiner_gets_everything(node, memory_server, mode):
    result = run_js(node, "converge.js", memory_server.ws_url, f"room:converge-{mode}", mode, "15",
                    server=memory_server)
    assert result["converged"] is True
    assert result["missing"] == []  # every edit of every client is in the converged text, exactly once
    assert all(result["late"])
    if mode == "json":
        assert result["acked"] == [result["acked"][0]] * 3 and result["acked"][0] >= 15  # every push got ok


def test_awareness_appears_and_is_removed_when_a_member_drops(node, memory_server):
    result = run_js(node, "awareness.js", memory_server.ws_url, "room:aware", server=memory_server)
    # SyncStep1 reply order, as y_ex: SyncStep2, then the server's SyncStep1, then the full awareness.
    assert result["firstThree"] == ["sync1", "sync0", "type1"]
    assert result["queried"] == "type1"
    assert result["bobSees"] == [] and result["carolSees"] == ["bob"]
    memory_server.wait_logs("member left room=room:aware")


def _edit(node, server, topic, proto, text):
    return run_js(node, "edit.js", server.ws_url, topic, proto, text, server=server)


def test_restart_with_sqlite_store_keeps_documents(node, tmp_path):
    db = tmp_path / "docs.sqlite3"
    server = LiveServer(env={"TP_YJS_STORE": f"sqlite:///{db}"}).start()
    try:
        _edit(node, server, "room:keep", "json", "hello ")
        _edit(node, server, "room:keep-y", "yjs", "from y-protocols")
        assert server.stop(signal.SIGTERM) == 0
        for room in ("room:keep", "room:keep-y"):  # SIGTERM wrote every loaded room
            assert any(f"room flushed room={room} " in line for line in server.log_lines()), room
        server.start()
        assert _edit(node, server, "room:keep", "yjs", "")["found"] == "hello "
        assert _edit(node, server, "room:keep-y", "json", "")["found"] == "from y-protocols"
        server.wait_logs("room loaded room=room:keep bytes=")
    finally:
        server.stop()


def test_kill_9_one_second_after_an_acknowledged_update_keeps_it(node, tmp_path):
    db = tmp_path / "docs.sqlite3"
    server = LiveServer(env={"TP_YJS_STORE": f"sqlite:///{db}"}).start()
    try:
        for proto, text in (("json", "acked-json "), ("yjs", "acked-yjs")):
            proc = subprocess.Popen([node, str(YJS_DIR / "edit.js"), server.ws_url, "room:crash", proto, text, "hold"],
                                    cwd=JS_DIR, stdout=subprocess.PIPE, text=True)
            try:
                assert proc.stdout is not None
                deadline = time.monotonic() + 30
                line = ""
                while time.monotonic() < deadline and not line.startswith("ACKED"):
                    line = proc.stdout.readline()
                    assert line, "edit.js exited before ACKED:\n" + server.output()[-3000:]
                time.sleep(1.0)  # the rule: durable within 1 s of the ack
                server.proc.send_signal(signal.SIGKILL)
                server.proc.wait(5)
            finally:
                proc.kill()
                proc.wait(5)
            assert not any("room flushed room=room:crash" in line for line in server.log_lines())
            server.start()
        assert _edit(node, server, "room:crash", "json", "")["found"] == "acked-json acked-yjs"
    finally:
        server.stop()


def test_room_unloads_after_ttl_and_reloads_from_the_store(node, tmp_path):
    db = tmp_path / "docs.sqlite3"
    server = LiveServer(env={"TP_YJS_STORE": f"sqlite:///{db}", "TP_YJS_ROOM_TTL": "0.5"}).start()
    try:
        _edit(node, server, "room:ttl", "json", "before unload")
        flushed = server.wait_logs("room flushed room=room:ttl ")
        unloaded = server.wait_logs("room unloaded room=room:ttl ")
        assert server.log_lines().index(flushed[0]) < server.log_lines().index(unloaded[0])
        assert _edit(node, server, "room:ttl", "yjs", "")["found"] == "before unload"
        loads = server.wait_logs("room loaded room=room:ttl ", count=2)
        assert "updates=1 " in loads[1]  # compacted at unload: one row
    finally:
        server.stop()
