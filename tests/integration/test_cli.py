"""The `serve` command's failure modes: clear messages and exit codes."""

from __future__ import annotations

import os
import subprocess
import sys

from tests.support.live_server import LiveServer


def run_serve(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "tornado_phoenix", "serve", *args], capture_output=True,
                          text=True, timeout=20, env={**os.environ, **(env or {})})


def test_bad_env_value_exits_2_naming_the_variable():
    result = run_serve(env={"TP_MAX_CHANNELS": "many"})
    assert result.returncode == 2
    assert "TP_MAX_CHANNELS='many'" in result.stderr and "fix or unset" in result.stderr


def test_port_in_use_exits_1_with_the_fix(live_server: LiveServer):
    result = run_serve("--port", str(live_server.port))
    assert result.returncode == 1
    assert "cannot listen" in result.stdout and "TP_PORT" in result.stdout


def test_version_flag():
    result = subprocess.run([sys.executable, "-m", "tornado_phoenix", "--version"], capture_output=True, text=True)
    assert result.stdout.startswith("tornado-phoenix ")


def test_faults_can_be_turned_off():
    from tests.support.rawws import RawWebSocket

    server = LiveServer(env={"TP_FAULTS": "off"}).start()
    try:
        with RawWebSocket(server.port) as ws:
            ws.send_text('["1","1","fault:x","phx_join",{}]')
            assert ws.recv_text() == ('[null,"1","fault:x","phx_reply",'
                                      '{"response":{"reason":"unmatched topic"},"status":"error"}]')
    finally:
        server.stop()
    result = run_serve(env={"TP_FAULTS": "maybe"})
    assert result.returncode == 2 and "TP_FAULTS='maybe'" in result.stderr
