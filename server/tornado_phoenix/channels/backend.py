"""The backend-driven channel: topics in TP_JOIN_TOPICS (e.g. `chat:*`) are broadcast rooms with Presence, like
`test:*`, whose decisions are the app backend's, asked over signed HTTP callbacks (see backend.py).

Join: TP_JOIN_URL answers `{"allow": true, "response": {...}}` (the ok reply) or `{"allow": false, "reason":
"..."}` (the error reply). Without TP_JOIN_URL every join is accepted. Presence key: the socket's user id
(`user_id`/`sub` assign), else the join payload's `user_id`, else random; the answer may set `"presence":
{"key": "...", "meta": {...}}` or `"presence": false` (not tracked).

Push: TP_EVENT_URL answers `{"reply": {...}, "status": "ok"|"error", "broadcast": {"event": E, "payload": P}}`
(every key optional; `broadcast` may be a list; `"exclude_self": true` in one skips the sender). Broadcasts go
out first, then the reply (ok `{}` when no `reply`). Without TP_EVENT_URL pushes get `unknown event`.
With TP_EVENT_JOINS=on, joins and leaves are reported to TP_EVENT_URL too (`"type": "join"|"leave"`).
A backend that fails or times out: error `{"reason":"backend unavailable"}`; the channel stays joined.

    -> ["1","1","chat:42","phx_join",{}]             POST TP_JOIN_URL {"type":"join","topic":"chat:42",...}
                                                     <- {"allow":true,"response":{"history":[]}}
    <- ["1","1","chat:42","phx_reply",{"response":{"history":[]},"status":"ok"}]
    -> ["1","2","chat:42","new_msg",{"body":"hi"}]   POST TP_EVENT_URL {"type":"event","event":"new_msg",...}
                                                     <- {"reply":{"id":7},"broadcast":{"event":"new_msg","payload":{"id":7}}}
    <- [null,null,"chat:42","new_msg",{"id":7}]      (every member)
    <- ["1","2","chat:42","phx_reply",{"response":{"id":7},"status":"ok"}]
"""

from __future__ import annotations

import base64
import logging
import secrets
import time
from typing import Any

from ..backend import UNAVAILABLE, BackendClient, BackendError
from ..endpoint import socket_id_for
from ..logs import esc
from .base import Channel, Reply, error, ok

__all__ = ["BackendChannel"]

log = logging.getLogger("tornado_phoenix.channels.backend")

_UNKNOWN = {"reason": "unknown event"}


class _BadAnswer(Exception):
    pass


class BackendChannel(Channel):
    _presence: tuple[str, dict[str, Any]] | None = None

    @property
    def backend(self) -> BackendClient:
        backend = self.socket.endpoint.backend
        assert backend is not None, "BackendChannel needs Endpoint.backend (make_app sets it for TP_JOIN_TOPICS)"
        return backend

    def _body(self, kind: str, **fields: Any) -> dict[str, Any]:
        assigns = self.socket.assigns
        return {"type": kind, "topic": self.topic, **fields, "assigns": assigns, "socket_id": socket_id_for(assigns)}

    async def join(self, payload: Any) -> Reply:
        settings = self.socket.endpoint.settings
        assigns = self.socket.assigns
        key = assigns.get("user_id", assigns.get("sub"))
        if key is None and isinstance(payload, dict):
            key = payload.get("user_id")
        self._presence = (str(key) if key is not None else secrets.token_hex(8), {"online_at": str(int(time.time()))})
        if not settings.join_url:
            return ok({})
        try:
            answer = await self.backend.call("join", settings.join_url, self._body("join", payload=_json(payload)),
                                             what=f" topic={esc(self.topic)}")
        except BackendError:
            return error(UNAVAILABLE)
        if answer.get("allow") is not True:
            reason = answer.get("reason")
            return error({"reason": reason if isinstance(reason, str) and reason else "unauthorized"})
        try:
            response = _object(answer.get("response"), "response")
            self._set_presence(answer.get("presence"))
        except _BadAnswer as exc:
            log.warning("callback join topic=%s: bad answer: %s", esc(self.topic), exc)
            return error(UNAVAILABLE)
        return ok(response)

    def _set_presence(self, spec: Any) -> None:
        if spec is None or spec is True:
            return
        if spec is False:
            self._presence = None
            return
        if not isinstance(spec, dict):
            raise _BadAnswer(f"presence is a JSON {type(spec).__name__}, expected an object or false")
        key, meta = self._presence or ("", {})
        if "key" in spec:
            if not isinstance(spec["key"], (str, int)) or isinstance(spec["key"], bool):
                raise _BadAnswer("presence.key must be a string")
            key = str(spec["key"])
        meta = {**meta, **_object(spec.get("meta"), "presence.meta")}
        self._presence = (key, meta)

    async def after_join(self) -> None:
        if self._presence is not None:
            key, meta = self._presence
            self.presence.track(self, self.topic, key, meta)
            self.push("presence_state", self.presence.list(self.topic))
        await self._report("join")

    async def handle_in(self, event: str, payload: Any) -> Reply:
        url = self.socket.endpoint.settings.event_url
        if not url:
            return error(_UNKNOWN)
        try:
            answer = await self.backend.call("event", url, self._body("event", event=event, payload=_json(payload)),
                                             what=f" topic={esc(self.topic)} event={esc(event)}")
        except BackendError:
            return error(UNAVAILABLE)
        try:
            broadcasts = _broadcasts(answer.get("broadcast"))
            reply = _object(answer.get("reply"), "reply")
            status = answer.get("status", "ok")
            if status not in ("ok", "error"):
                raise _BadAnswer(f"status must be \"ok\" or \"error\", got {status!r}")
        except _BadAnswer as exc:
            log.warning("callback event topic=%s event=%s: bad answer: %s", esc(self.topic), esc(event), exc)
            return error(UNAVAILABLE)
        for out_event, out_payload, exclude_self in broadcasts:
            if exclude_self:
                self.broadcast_from(out_event, out_payload)
            else:
                self.broadcast(out_event, out_payload)
        return Reply(status, reply)

    async def handle_leave(self, reason: str) -> None:
        await self._report("leave", reason=reason)

    async def _report(self, kind: str, **fields: Any) -> None:
        settings = self.socket.endpoint.settings
        if not (settings.event_joins and settings.event_url):
            return
        try:
            await self.backend.call(kind, settings.event_url, self._body(kind, **fields), what=f" topic={esc(self.topic)}")
        except BackendError:
            pass  # logged by the client; a report has nobody to answer


def _json(payload: Any) -> Any:
    """A V2 binary push's payload (bytes) travels base64-encoded: {"binary": "<base64>"}."""
    if isinstance(payload, (bytes, bytearray, memoryview)):
        return {"binary": base64.b64encode(bytes(payload)).decode()}
    return payload


def _object(value: Any, what: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise _BadAnswer(f"{what} is a JSON {type(value).__name__}, expected an object")
    return value


def _broadcasts(value: Any) -> list[tuple[str, dict[str, Any], bool]]:
    if value is None:
        return []
    items = value if isinstance(value, list) else [value]
    out = []
    for item in items:
        if not isinstance(item, dict):
            raise _BadAnswer(f"broadcast is a JSON {type(item).__name__}, expected an object")
        event = item.get("event")
        if not isinstance(event, str) or not event:
            raise _BadAnswer("broadcast.event must be a non-empty string")
        out.append((event, _object(item.get("payload"), "broadcast.payload"), item.get("exclude_self") is True))
    return out
