"""A real app backend for the callback tests: a small Tornado app on a free loopback port, in its own thread.

It checks every callback's signature itself (plain hmac, independent of the server's code), records every
request, and answers by what the request asks for, so one server configuration covers every case:

- POST /connect: `token` param `good` -> allow with assigns {"user_id": <user param>}; `bad` -> refuse;
  `slow` -> answers after `slow_delay` s; `broken` -> HTTP 500.
- POST /join: a topic containing `refuse` -> {"allow": false, "reason": "not a member"}; `slow`; `broken`;
  `nopresence` -> allowed, not tracked; else allow with {"welcome": topic, "user": <assigns.user_id>}.
- POST /event (type event): event `echo` -> reply the payload; `shout` -> broadcast it; `both` -> broadcast
  and reply {"stored": true}; `refuse` -> status error; `seq` -> reply {"n": payload.n} after a varying
  delay (later ones faster, so out-of-order delivery would show); `slow`; `broken`; `garbage` -> a JSON list;
  `hold` -> answers after 0.1 s, counting how many are in flight at once (`max_active`).
  Types join/leave (TP_EVENT_JOINS) -> {}.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import threading
import time
from typing import Any

import tornado.httpserver
import tornado.web

from tests.support.live_server import free_port
from tests.support.waiting import wait_for

__all__ = ["TestBackend"]


class _Handler(tornado.web.RequestHandler):
    def initialize(self, backend: TestBackend) -> None:
        self.backend = backend

    async def post(self, kind: str) -> None:
        backend = self.backend
        timestamp = self.request.headers.get("X-TP-Timestamp", "")
        signature = self.request.headers.get("X-TP-Signature", "")
        expected = "sha256=" + hmac.new(backend.secret.encode(), timestamp.encode() + b"." + self.request.body,
                                        hashlib.sha256).hexdigest()
        fresh = timestamp.isdigit() and abs(time.time() - int(timestamp)) < 300
        body = json.loads(self.request.body)
        record = {"path": kind, "body": body, "event_header": self.request.headers.get("X-TP-Event"),
                  "signed": hmac.compare_digest(expected, signature) and fresh, "t": time.monotonic()}
        backend.requests.append(record)
        if not record["signed"]:
            self.set_status(401)
            self.finish({"error": "bad signature"})
            return
        answer = await getattr(self, "_" + kind)(body)
        if answer is None:
            return
        if isinstance(answer, int):
            self.set_status(answer)
            self.finish("backend error")
            return
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps(answer))

    async def _stall(self) -> None:
        await asyncio.sleep(self.backend.slow_delay)

    async def _connect(self, body: dict[str, Any]) -> Any:
        token = body["params"].get("token")
        if token == "slow":
            await self._stall()
        if token == "broken":
            return 500
        if token in ("good", "slow"):
            return {"allow": True, "assigns": {"user_id": body["params"].get("user", "anon"), "role": "member"}}
        return {"allow": False}

    async def _join(self, body: dict[str, Any]) -> Any:
        topic = body["topic"]
        if "slow" in topic:
            await self._stall()
        if "broken" in topic:
            return 500
        if "refuse" in topic:
            return {"allow": False, "reason": "not a member"}
        answer: dict[str, Any] = {"allow": True,
                                  "response": {"welcome": topic, "user": body["assigns"].get("user_id")}}
        if "nopresence" in topic:
            answer["presence"] = False
        return answer

    async def _event(self, body: dict[str, Any]) -> Any:
        if body["type"] in ("join", "leave"):
            return {}
        event, payload = body["event"], body["payload"]
        if event == "echo":
            return {"reply": payload}
        if event == "shout":
            return {"broadcast": {"event": "shout", "payload": payload}}
        if event == "both":
            return {"reply": {"stored": True}, "broadcast": {"event": "new_msg", "payload": payload}}
        if event == "others":
            return {"broadcast": {"event": "new_msg", "payload": payload, "exclude_self": True}}
        if event == "refuse":
            return {"status": "error", "reply": {"reason": "read only"}}
        if event == "seq":
            await asyncio.sleep(max(0.0, 0.05 - 0.0025 * payload["n"]))  # later pushes answer faster
            return {"reply": {"n": payload["n"]}}
        if event == "slow":
            await self._stall()
            return {"reply": {}}
        if event == "broken":
            return 500
        if event == "hold":  # measures how many callbacks are in flight at once
            self.backend.active += 1
            self.backend.max_active = max(self.backend.max_active, self.backend.active)
            await asyncio.sleep(0.1)
            self.backend.active -= 1
            return {"reply": {}}
        if event == "garbage":
            return ["not", "an", "object"]
        return {"reply": {"unhandled": event}}


class TestBackend:
    __test__ = False

    def __init__(self, secret: str, *, slow_delay: float = 3.0) -> None:
        self.secret = secret
        self.slow_delay = slow_delay
        self.port = free_port()
        self.requests: list[dict[str, Any]] = []
        self.active = self.max_active = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._started = threading.Event()
        self._stop: asyncio.Event | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def env(self, *, connect: bool = True, join: bool = True, event: bool = True) -> dict[str, str]:
        env = {"TP_API_SECRET": self.secret}
        if connect:
            env["TP_CONNECT_URL"] = self.url + "/connect"
        if join:
            env["TP_JOIN_URL"] = self.url + "/join"
        if event:
            env["TP_EVENT_URL"] = self.url + "/event"
        return env

    def start(self) -> TestBackend:
        self._thread = threading.Thread(target=lambda: asyncio.run(self._main()), daemon=True)
        self._thread.start()
        assert self._started.wait(10), "the test backend did not start"
        return self

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        app = tornado.web.Application([(r"/(connect|join|event)", _Handler, {"backend": self})])
        server = tornado.httpserver.HTTPServer(app)
        server.listen(self.port, "127.0.0.1")
        self._started.set()
        await self._stop.wait()
        server.stop()
        await server.close_all_connections()

    def stop(self) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        if self._thread is not None:
            self._thread.join(5)

    def of(self, path: str, type_: str | None = None) -> list[dict[str, Any]]:
        return [r for r in list(self.requests) if r["path"] == path and (type_ is None or r["body"]["type"] == type_)]

    def wait_for(self, predicate, what: str, timeout: float = 5.0) -> Any:
        return wait_for(predicate, timeout, what, detail=lambda: f"backend saw: {self.requests[-10:]}")
