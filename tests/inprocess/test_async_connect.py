"""An `async def` connect hook (make_app(connect=...)): awaited in the handshake before the 101/403, its assigns
reach the channels, an exception answers 503, and a `user_id` assign gives the socket an id that
Endpoint.disconnect closes with 1000 (Phoenix's id/1 + "disconnect" broadcast)."""

from __future__ import annotations

import asyncio
import json
import logging
import time

import pytest
import tornado.httpclient
import tornado.websocket
from tornado_phoenix.app import default_router, make_app
from tornado_phoenix.config import Settings

ENDPOINT = {}


async def connect(params):
    await asyncio.sleep(0.01)  # e.g. a session store
    if params.get("token") == "slow":
        await asyncio.sleep(0.3)
        return {"user_id": "slowpoke"}
    if params.get("token") == "explode":
        raise RuntimeError("session store down")
    if params.get("token") != "good":
        return None
    return {"user_id": params.get("user", "anon")}


@pytest.fixture
def app():
    application, endpoint = make_app(Settings(), router=default_router(), connect=connect)
    ENDPOINT["current"] = endpoint
    return application


async def open_ws(port: int, query: str):
    return await tornado.websocket.websocket_connect(f"ws://127.0.0.1:{port}/socket/websocket?vsn=2.0.0&{query}")


@pytest.mark.gen_test
async def test_async_connect_refuses_with_403_and_errors_with_503(http_server, http_port):
    for token, code in (("bad", 403), ("explode", 503)):
        with pytest.raises(tornado.httpclient.HTTPClientError) as refused:
            await open_ws(http_port, f"token={token}")
        assert refused.value.code == code


@pytest.mark.gen_test
async def test_async_connect_assigns_give_the_socket_id_used_by_disconnect(http_server, http_port):
    endpoint = ENDPOINT["current"]
    ann = await open_ws(http_port, "token=good&user=ann")
    bob = await open_ws(http_port, "token=good&user=bob")
    await ann.write_message(json.dumps([None, "1", "phoenix", "heartbeat", {}]))
    assert json.loads(await ann.read_message())[3] == "phx_reply"
    assert endpoint.disconnect("user_socket:ann") == 1
    assert await ann.read_message() is None and ann.close_code == 1000
    await bob.write_message(json.dumps([None, "1", "phoenix", "heartbeat", {}]))
    assert json.loads(await bob.read_message())[3] == "phx_reply"  # only ann's socket was closed
    bob.close()


@pytest.mark.gen_test
async def test_a_client_that_leaves_during_the_hook_leaves_nothing_behind(http_server, http_port):
    endpoint = ENDPOINT["current"]
    lines: list[str] = []
    handler = logging.Handler()
    handler.emit = lambda record: lines.append(record.getMessage())
    logger = logging.getLogger("tornado_phoenix.transport")
    logger.addHandler(handler)
    level = logger.level
    logger.setLevel(logging.INFO)
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", http_port)
        writer.write(b"GET /socket/websocket?vsn=2.0.0&token=slow HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
                     b"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                     b"Sec-WebSocket-Version: 13\r\n\r\n")
        await writer.drain()
        writer.close()  # before the hook answers
        # Tornado notices the close either during the hook (the upgrade is abandoned) or when it writes the 101
        # (the connection opens and closes at once); either way nothing stays registered.
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline and not (
            any("abandoned by the client" in line for line in lines)
            or any("disconnect code=" in line for line in lines)
        ):
            await asyncio.sleep(0.02)
        assert any("abandoned by the client" in line or "disconnect code=" in line for line in lines), lines
        assert not endpoint.connections and not endpoint._by_socket_id
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
