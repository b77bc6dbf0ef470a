"""The server HTTP API (backend -> server), on when TP_API_SECRET is set: broadcast, disconnect, presence, topics.

Every request needs `Authorization: Bearer <TP_API_SECRET>` (compared in constant time); anything else is
refused with 401 and one log line. Without TP_API_SECRET every /api route answers 404. With TP_API_BIND the
routes are served only on that address (a second listener in the same process), not on the main port.

    POST /api/broadcast  {"topic":"chat:42","event":"new_msg","payload":{"body":"hi"}}
                         or {"messages":[{"topic":...,"event":...,"payload":{...}}, ...]}
      <- 200 {"ok":true,"published":1,"local_recipients":3}
         every member of the topic on every node (through pub/sub) gets [null,null,"chat:42","new_msg",{...}]
    POST /api/disconnect {"user_id":"42"} | {"sub":"42"} | {"socket_id":"user_socket:42"}
      <- 200 {"ok":true,"socket_id":"user_socket:42","local_connections":1}   (closed with 1000 everywhere)
    GET  /api/presence?topic=chat:42   <- 200 {"topic":"chat:42","presence":{"alice":{"metas":[...]}}}
    GET  /api/topics                   <- 200 {"topics":{"chat:42":3,"chat:7":1}}

A bad body (not JSON, a missing or mistyped field, a message over TP_MAX_FRAME_SIZE once encoded) is answered
400 `{"error":"<reason>"}` and nothing of the batch is delivered: every message is checked before any goes out.
"""

from __future__ import annotations

import hmac
import logging
from typing import Any

import orjson
import tornado.web

from .endpoint import Endpoint, user_socket_id
from .logs import esc
from .protocol import jsoncodec
from .protocol.messages import Broadcast
from .protocol.serializers import V2JsonSerializer

__all__ = ["api_routes", "MAX_BATCH", "MAX_BODY"]

log = logging.getLogger("tornado_phoenix.api")

MAX_BATCH = 10_000  # messages in one /api/broadcast request
MAX_BODY = 64 * 1024 * 1024  # an authorized request's body; unauthorized ones are refused before it is read
_V2 = V2JsonSerializer()


class ApiError(Exception):
    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


class ApiHandler(tornado.web.RequestHandler):
    _streams_body = False

    def initialize(self, endpoint: Endpoint) -> None:
        self.endpoint = endpoint
        self._chunks: list[bytes] = []

    def data_received(self, chunk: bytes) -> None:  # @stream_request_body handlers: after prepare's auth check
        self._chunks.append(chunk)

    def set_default_headers(self) -> None:
        self.clear_header("Server")
        self.set_header("Content-Type", "application/json")
        self.set_header("Cache-Control", "no-store")

    def prepare(self) -> None:
        secret = self.endpoint.settings.api_secret
        if not secret:
            self.set_status(404)
            self.set_header("Content-Type", "text/plain; charset=utf-8")
            self.finish("not found")
            return
        header = self.request.headers.get("Authorization", "")
        scheme, _, given = header.partition(" ")
        if not header:
            why = "no Authorization header"
        elif scheme.lower() != "bearer":
            why = "Authorization is not 'Bearer <secret>'"
        elif not hmac.compare_digest(given.strip().encode(), secret.encode()):
            why = "wrong secret"
        else:
            if self._streams_body:
                # The server's own body limit is TP_MAX_FRAME_SIZE (nothing else takes bodies); a batch may
                # be bigger, and a message over the frame size must be read to be refused with a reason.
                self.request.connection.set_max_body_size(max(MAX_BODY, self.endpoint.settings.max_frame_size * 2))
            return
        log.warning("api refused %s %s from %s: %s (send Authorization: Bearer <TP_API_SECRET>)",
                    self.request.method, esc(self.request.path), self.request.remote_ip, why)
        self.set_status(401)
        self.set_header("WWW-Authenticate", 'Bearer realm="tornado-phoenix api"')
        self.finish(orjson.dumps({"error": "unauthorized"}))

    def _json_body(self) -> dict[str, Any]:
        try:
            # jsoncodec, as for frames from clients: big integers and floats reach members exactly as sent.
            body = jsoncodec.loads(b"".join(self._chunks) if self._streams_body else self.request.body or b"")
        except ValueError as exc:
            raise ApiError(400, f"body is not valid JSON: {exc}") from None
        if not isinstance(body, dict):
            raise ApiError(400, f"body must be a JSON object, got {_kind(body)}")
        return body

    def _answer(self, body: dict[str, Any]) -> None:
        self.finish(orjson.dumps(body))

    def _fail(self, exc: ApiError) -> None:
        log.warning("api %s %s from %s: %d %s", self.request.method, esc(self.request.path), self.request.remote_ip,
                    exc.status, esc(exc.reason))
        self.set_status(exc.status)
        self.finish(orjson.dumps({"error": exc.reason}))


@tornado.web.stream_request_body
class BroadcastHandler(ApiHandler):
    _streams_body = True

    def post(self) -> None:
        try:
            messages = self._validate(self._json_body())
        except ApiError as exc:
            self._fail(exc)
            return
        pubsub = self.endpoint.pubsub
        recipients = 0
        for topic, event, payload in messages:
            recipients += pubsub.broadcast(topic, event, payload)
        log.info("api broadcast %d message(s) to %s; %d local recipient(s)", len(messages),
                 esc(",".join(sorted({topic for topic, _, _ in messages}))), recipients)
        self._answer({"ok": True, "published": len(messages), "local_recipients": recipients})

    def _validate(self, body: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
        if "messages" in body:
            items = body["messages"]
            if not isinstance(items, list) or not items:
                raise ApiError(400, "messages must be a non-empty list of {topic, event, payload} objects")
            if len(items) > MAX_BATCH:
                raise ApiError(400, f"messages has {len(items)} items, at most {MAX_BATCH} per request")
            return [self._message(item, f"messages[{index}].") for index, item in enumerate(items)]
        return [self._message(body, "")]

    def _message(self, item: Any, where: str) -> tuple[str, str, dict[str, Any]]:
        if not isinstance(item, dict):
            raise ApiError(400, f"{where or 'body'} must be an object with topic, event, payload")
        topic, event, payload = item.get("topic"), item.get("event"), item.get("payload", {})
        if not isinstance(topic, str) or not topic:
            raise ApiError(400, f"{where}topic is required (a non-empty string)")
        if not isinstance(event, str) or not event:
            raise ApiError(400, f"{where}event is required (a non-empty string)")
        if event.startswith("phx_"):
            raise ApiError(400, f"{where}event {event!r} is reserved by the Phoenix protocol")
        if not isinstance(payload, dict):
            raise ApiError(400, f"{where}payload must be a JSON object, got {_kind(payload)}")
        size = len(_V2.encode_broadcast(Broadcast(topic, event, payload)).data)
        limit = self.endpoint.settings.max_frame_size
        if size > limit:
            raise ApiError(400, f"{where}message is {size} bytes encoded, over TP_MAX_FRAME_SIZE={limit}")
        return topic, event, payload


@tornado.web.stream_request_body
class DisconnectHandler(ApiHandler):
    _streams_body = True

    def post(self) -> None:
        try:
            body = self._json_body()
            socket_id = body.get("socket_id")
            user = body.get("user_id", body.get("sub"))
            if isinstance(socket_id, str) and socket_id:
                pass
            elif isinstance(user, (str, int)) and not isinstance(user, bool) and str(user):
                socket_id = user_socket_id(user)
            else:
                raise ApiError(400, "give user_id (or sub): a non-empty string, or socket_id")
        except ApiError as exc:
            self._fail(exc)
            return
        here = self.endpoint.disconnect(socket_id)
        log.info("api disconnect socket_id=%s (%d connection(s) on this node)", esc(socket_id), here)
        self._answer({"ok": True, "socket_id": socket_id, "local_connections": here})


class PresenceHandler(ApiHandler):
    def get(self) -> None:
        topic = self.get_query_argument("topic", "")
        if not topic:
            self._fail(ApiError(400, "the topic query parameter is required: /api/presence?topic=chat:42"))
            return
        self._answer({"topic": topic, "presence": self.endpoint.presence.list(topic)})


class TopicsHandler(ApiHandler):
    def get(self) -> None:
        self._answer({"topics": self.endpoint.topics()})


def api_routes(endpoint: Endpoint) -> list[tuple[str, type[ApiHandler], dict[str, Any]]]:
    args = {"endpoint": endpoint}
    return [
        (r"/api/broadcast", BroadcastHandler, args),
        (r"/api/disconnect", DisconnectHandler, args),
        (r"/api/presence", PresenceHandler, args),
        (r"/api/topics", TopicsHandler, args),
    ]


def _kind(value: Any) -> str:
    return "null" if value is None else {dict: "an object", list: "a list", str: "a string", bool: "a boolean"}.get(
        type(value), "a number")
