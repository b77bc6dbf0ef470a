"""From the control machine, not the host: a real Phoenix client session through the published port."""

from __future__ import annotations

from ws_probe import probe


def test_websocket_join_echo_and_heartbeat_from_outside(app, public_host):
    result = probe(f"ws://{public_host}:{app['port']}/socket", timeout=30)
    assert result["echo"][4]["n"] == 42
