from __future__ import annotations

import pytest

from tests.support.live_server import LiveServer


@pytest.fixture
def live_server():
    """A fresh real server process on a free loopback port, stopped after the test."""
    server = LiveServer().start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def shared_server():
    """One real server for a whole module, for tests that only need a live endpoint."""
    server = LiveServer().start()
    yield server
    server.stop()
