"""Replay every raw-client scenario recorded from Phoenix 1.7.24 and compare our frames byte for byte."""

from __future__ import annotations

import posixpath
import time

import pytest

from tests.support.golden import Scenario, load_edge_cases, normalise
from tests.support.live_server import LiveServer
from tests.support.rawws import HandshakeRefused, RawWebSocket

SCENARIOS = load_edge_cases()
IDLE = [s for s in SCENARIOS if "idle" in s.title]
REGULAR = [s for s in SCENARIOS if s not in IDLE]


def test_transcripts_were_parsed():
    assert len(SCENARIOS) >= 14
    assert all(s.steps for s in SCENARIOS), [s.title for s in SCENARIOS if not s.steps]


def replay(server: LiveServer, scenario: Scenario, recv_timeout: float = 5.0) -> None:
    path = posixpath.normpath(scenario.path.split("?")[0]) + ("?" + scenario.path.split("?", 1)[1]
                                                              if "?" in scenario.path else "")
    if scenario.steps[0].action == "http":
        expected = scenario.steps[0]
        with pytest.raises(HandshakeRefused) as refused:
            RawWebSocket(server.port, path)
        assert refused.value.status == expected.code
        assert refused.value.body.decode() == expected.body
        return
    with RawWebSocket(server.port, path) as ws:
        steps = scenario.steps
        for index, step in enumerate(steps):
            if step.action == "send":
                ws.send_text(step.text)
            elif step.action == "client_close":
                ws.send_close(step.code)
            elif step.action == "recv":
                got = ws.recv(recv_timeout)
                assert got.kind == "text", f"step {index}: expected {step.text}, got {got}"
                assert normalise(got.text) == normalise(step.text), f"step {index}"
            elif step.action == "close":
                got = ws.recv(recv_timeout)
                assert (got.kind, got.code, got.data.decode()) == ("close", step.code, step.text), f"step {index}"
            next_step = steps[index + 1] if index + 1 < len(steps) else None
            if step.action == "recv" and (next_step is None or next_step.action == "send"):
                ws.expect_silence(0.15)  # nothing more than Phoenix sent


@pytest.mark.parametrize("scenario", REGULAR, ids=[s.title for s in REGULAR])
def test_edge_case_transcript(shared_server: LiveServer, scenario: Scenario) -> None:
    replay(shared_server, scenario)


@pytest.mark.parametrize("scenario", IDLE, ids=[s.title for s in IDLE])
def test_idle_transcript_with_short_timeout(scenario: Scenario) -> None:
    """The recording waited Phoenix's 60 s; the same close happens after TP_IDLE_TIMEOUT (1 s here)."""
    server = LiveServer(env={"TP_IDLE_TIMEOUT": "1"}).start()
    try:
        replay(server, scenario, recv_timeout=4.0)
        # The client saw the close; the server writes its log line just after, on a loaded machine later.
        # Wait for the line (bounded) instead of racing it.
        deadline = time.monotonic() + 10.0
        while not any("idle for" in line and "1002" in line for line in server.log_lines()):
            assert time.monotonic() < deadline, "no 'idle for … 1002' log line within 10 s:\n" + server.output()
            time.sleep(0.05)
    finally:
        server.stop()
