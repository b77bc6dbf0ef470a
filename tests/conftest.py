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


def pytest_ignore_collect(collection_path, config):
    """tests/infra/verify is the testinfra suite of a deployed host, run by `make verify` with --hosts; a plain
    `pytest tests` leaves it out rather than test this machine (or report it as skipped)."""
    if collection_path.name == "verify" and collection_path.parent.name == "infra":
        return None if config.getoption("hosts", None) else True
    return None
