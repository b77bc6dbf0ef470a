"""In-process tests (pytest-tornado): the app runs on the test's IOLoop with user-defined channels, which is
how a user checks their own channel classes. Covers checklist items 5, 19, 20, 29 and 36."""

from __future__ import annotations

import asyncio
import json

import pytest
import tornado.httpclient
import tornado.websocket
from tornado_phoenix.app import make_app
from tornado_phoenix.channels import Channel, NoReply, Router, Stop, error, ok
from tornado_phoenix.config import Settings

router = Router()


@router.channel("private:*")
class PrivateChannel(Channel):
    def join(self, payload):
        if payload.get("password") != "sesame":
            return error({"reason": "unauthorized"})
        return ok({"welcome": self.socket.assigns["user"]})

    def handle_in(self, event, payload):
        if event == "quiet":
            return NoReply
        if event == "bye":
            return Stop("normal", ok({"see": "you"}))
        if event == "later":
            ref = self.reply_ref()
            self.call_later(0.05, lambda: self.reply(ref, ok({"late": True})))
            return NoReply
        return error({"reason": "unknown event"})


@router.channel("crashy:*")
class CrashyChannel(Channel):
    def join(self, payload):
        raise RuntimeError("boom in join")


@router.channel("store:*")
class StoreChannel(Channel):
    """An async channel as a user writes one: the join awaits a (simulated) store, handle_in awaits too."""

    async def join(self, payload):
        await asyncio.sleep(0.05)
        self.assigns["items"] = ["loaded"]
        return ok({"items": self.assigns["items"]})

    async def handle_in(self, event, payload):
        await asyncio.sleep(0.01 if event == "slow" else 0)
        self.assigns["items"].append(event)
        return ok({"items": list(self.assigns["items"])})


def connect(params):
    if params.get("token") != "good":
        return None
    return {"user": params.get("user", "anon")}


@pytest.fixture
def app():
    application, _endpoint = make_app(Settings(), router=router, connect=connect)
    return application


async def open_ws(port: int, query: str = "token=good&user=ann&vsn=2.0.0"):
    return await tornado.websocket.websocket_connect(f"ws://127.0.0.1:{port}/socket/websocket?{query}")


async def exchange(ws, frame: list, replies: int = 1) -> list:
    await ws.write_message(json.dumps(frame))
    return [json.loads(await ws.read_message()) for _ in range(replies)]


@pytest.mark.gen_test
async def test_connect_refused_is_403(http_server, http_port):  # 5
    with pytest.raises(tornado.httpclient.HTTPClientError) as refused:
        await open_ws(http_port, "token=bad&vsn=2.0.0")
    assert refused.value.code == 403


@pytest.mark.gen_test
async def test_join_rejected_then_push_unmatched(http_server, http_port):  # 19
    ws = await open_ws(http_port)
    assert await exchange(ws, ["1", "1", "private:x", "phx_join", {}]) == [
        ["1", "1", "private:x", "phx_reply", {"response": {"reason": "unauthorized"}, "status": "error"}]]
    assert await exchange(ws, ["1", "2", "private:x", "hi", {}]) == [
        [None, "2", "private:x", "phx_reply", {"response": {"reason": "unmatched topic"}, "status": "error"}]]
    ws.close()


@pytest.mark.gen_test
async def test_join_sees_connect_assigns(http_server, http_port):
    ws = await open_ws(http_port)
    assert await exchange(ws, ["1", "1", "private:x", "phx_join", {"password": "sesame"}]) == [
        ["1", "1", "private:x", "phx_reply", {"response": {"welcome": "ann"}, "status": "ok"}]]
    ws.close()


@pytest.mark.gen_test
async def test_join_crash_replies_join_crashed(http_server, http_port):  # 20
    ws = await open_ws(http_port)
    assert await exchange(ws, ["1", "1", "crashy:x", "phx_join", {}]) == [
        ["1", "1", "crashy:x", "phx_reply", {"response": {"reason": "join crashed"}, "status": "error"}]]
    assert await exchange(ws, [None, "2", "phoenix", "heartbeat", {}]) == [
        [None, "2", "phoenix", "phx_reply", {"response": {}, "status": "ok"}]]
    ws.close()


@pytest.mark.gen_test
async def test_noreply_sends_nothing_and_stop_closes(http_server, http_port):  # 29, 36
    ws = await open_ws(http_port)
    await exchange(ws, ["1", "1", "private:x", "phx_join", {"password": "sesame"}])
    await ws.write_message(json.dumps(["1", "2", "private:x", "quiet", {}]))
    # the next frame we see answers the heartbeat sent after "quiet": nothing came for "quiet"
    assert await exchange(ws, [None, "3", "phoenix", "heartbeat", {}]) == [
        [None, "3", "phoenix", "phx_reply", {"response": {}, "status": "ok"}]]
    assert await exchange(ws, ["1", "4", "private:x", "bye", {}], replies=2) == [
        ["1", "4", "private:x", "phx_reply", {"response": {"see": "you"}, "status": "ok"}],
        ["1", "1", "private:x", "phx_close", {}],
    ]
    ws.close()


@pytest.mark.gen_test
async def test_reply_later_with_reply_ref(http_server, http_port):
    ws = await open_ws(http_port)
    await exchange(ws, ["1", "1", "private:x", "phx_join", {"password": "sesame"}])
    assert await exchange(ws, ["1", "5", "private:x", "later", {}]) == [
        ["1", "5", "private:x", "phx_reply", {"response": {"late": True}, "status": "ok"}]]
    ws.close()


@pytest.mark.gen_test
async def test_async_channel_over_a_real_websocket_keeps_order(http_server, http_port):
    ws = await open_ws(http_port)
    # sent back to back: the pushes must wait for the awaited join, then run in order (slow before fast)
    for frame in (["1", "1", "store:x", "phx_join", {}], ["1", "2", "store:x", "slow", {}],
                  ["1", "3", "store:x", "fast", {}]):
        await ws.write_message(json.dumps(frame))
    replies = [json.loads(await ws.read_message()) for _ in range(3)]
    assert replies == [
        ["1", "1", "store:x", "phx_reply", {"response": {"items": ["loaded"]}, "status": "ok"}],
        ["1", "2", "store:x", "phx_reply", {"response": {"items": ["loaded", "slow"]}, "status": "ok"}],
        ["1", "3", "store:x", "phx_reply", {"response": {"items": ["loaded", "slow", "fast"]}, "status": "ok"}],
    ]
    ws.close()
