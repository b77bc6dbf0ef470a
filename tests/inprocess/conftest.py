from __future__ import annotations

import asyncio

import pytest
import tornado.ioloop


@pytest.fixture
def io_loop():
    """pytest-tornado's own fixture predates Tornado 6 on asyncio: it creates the test coroutine on a loop
    other than the one it runs. Make the IOLoop's asyncio loop the current one first."""
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    io_loop = tornado.ioloop.IOLoop.current()
    yield io_loop
    io_loop.close(all_fds=True)
    asyncio.set_event_loop(None)
