"""`realtime:*` — a supabase realtime channel: broadcast (with `self`/`ack`) and presence, no database.

Only on the supabase mount (/realtime/v1, see supabase.py). Join config as realtime-js sends it:

    -> ["1","1","realtime:room1","phx_join",{"config":{"broadcast":{"ack":true,"self":false},
                                   "presence":{"key":"alice","enabled":true},"postgres_changes":[],"private":false},
                                   "access_token":"<jwt>"}]
    <- ["1","1","realtime:room1","phx_reply",{"response":{"postgres_changes":[]},"status":"ok"}]
    <- ["1",null,"realtime:room1","presence_state",{}]                        (presence enabled)
    -> ["1","2","realtime:room1","broadcast",{"type":"broadcast","event":"cursor","payload":{"x":1}}]  (or kind 3)
    <- ["1","2","realtime:room1","phx_reply",{"response":{},"status":"ok"}]   (ack: true only)
       others (and this client with self: true) get kind 4, or the text broadcast on vsn 1.0.0
    -> ["1","3","realtime:room1","presence",{"type":"presence","event":"track","payload":{"user":"a"}}]
    <- ["1","3","realtime:room1","phx_reply",{"response":{},"status":"ok"}]
    <- [null,null,"realtime:room1","presence_diff",{"joins":{"alice":{"metas":[{"phx_ref":"…","user":"a"}]}},"leaves":{}}]
    -> ["1","4","realtime:room1","access_token",{"access_token":"<expired jwt>"}]
    <- ["1",null,"realtime:room1","system",{"channel":"room1","extension":"system","message":"Token has expired 3 seconds ago","status":"error"}]
    <- ["1","1","realtime:room1","phx_close",{}]

`postgres_changes` bindings are refused: a `system` error, then an error reply (there is no database).
Access tokens are verified only when TP_SUPABASE_JWT_SECRET is set.
"""

from __future__ import annotations

import uuid
from typing import Any

from ..supabase import verify_access_token
from .base import Channel, NoReply, Reply, Stop, error, ok

__all__ = ["RealtimeChannel"]

_NO_DATABASE = ("postgres_changes is not supported by tornado-phoenix: there is no database behind it "
                "(use broadcast and presence)")


class RealtimeChannel(Channel):
    def join(self, payload: Any) -> Reply:
        payload = payload if isinstance(payload, dict) else {}
        config = payload.get("config") if isinstance(payload.get("config"), dict) else {}
        broadcast = config.get("broadcast") if isinstance(config.get("broadcast"), dict) else {}
        presence = config.get("presence") if isinstance(config.get("presence"), dict) else {}
        self.name = self.topic.removeprefix("realtime:")
        self.self_ = bool(broadcast.get("self", False))
        self.ack = bool(broadcast.get("ack", False))
        self.presence_key = str(presence.get("key") or "") or str(uuid.uuid1())
        self.presence_enabled = bool(presence.get("enabled", False))
        self.private = bool(config.get("private", False))
        self.tracked: dict[str, Any] | None = None
        refusal = verify_access_token(payload.get("access_token"), self.secret) if "access_token" in payload else None
        if refusal is not None:
            return error({"reason": refusal})
        if config.get("postgres_changes"):
            self.push("system", self._system("postgres_changes", "error", _NO_DATABASE))
            return error({"reason": _NO_DATABASE})
        return ok({"postgres_changes": []})

    @property
    def secret(self) -> str:
        return self.socket.endpoint.settings.supabase_jwt_secret

    def _system(self, extension: str, status: str, message: str) -> dict[str, Any]:
        return {"channel": self.name, "extension": extension, "message": message, "status": status}

    def after_join(self) -> None:
        if self.presence_enabled:
            self.push("presence_state", self.presence.list(self.topic))

    def handle_in(self, event: str, payload: Any) -> Reply | Stop | Any:
        if event == "broadcast":
            return self._broadcast(payload)
        if event == "presence":
            return self._presence(payload)
        if event == "access_token":
            token = payload.get("access_token") if isinstance(payload, dict) else None
            refusal = verify_access_token(token, self.secret)
            if refusal is not None:
                self.push("system", self._system("system", "error", refusal))
                return Stop("access token refused")
            return NoReply
        return NoReply  # the real server ignores events it does not know

    def _broadcast(self, payload: Any) -> Reply | Any:
        if not (isinstance(payload, dict) and isinstance(payload.get("event"), str)):
            return error({"reason": "broadcast payload needs a string event"}) if self.ack else NoReply
        out: dict[str, Any] = {"event": payload["event"], "payload": payload.get("payload", {}), "type": "broadcast"}
        if payload.get("meta"):
            out["meta"] = payload["meta"]
        if self.self_:
            self.broadcast("broadcast", out)
        else:
            self.broadcast_from("broadcast", out)
        return ok({}) if self.ack else NoReply

    def _presence(self, payload: Any) -> Reply:
        payload = payload if isinstance(payload, dict) else {}
        kind = payload.get("event")
        if kind == "track":
            meta = payload.get("payload", {})
            if not isinstance(meta, dict):
                return error({"reason": "presence payload must be an object"})
            self.presence_enabled = True
            if self.tracked == meta:
                return ok({})  # an unchanged re-track is a no-op, as Presence.update with the same meta
            if self.tracked is not None:
                self.presence.untrack(self)
            self.presence.track(self, self.topic, self.presence_key, dict(meta))
            self.tracked = dict(meta)
            return ok({})
        if kind == "untrack":
            if self.tracked is not None:
                self.presence.untrack(self)
                self.tracked = None
            return ok({})
        return error({"reason": f"unknown presence event {kind!r}"})
