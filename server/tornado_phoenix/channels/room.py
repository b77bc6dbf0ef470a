"""`room:*` — a collaborative Yjs document per topic, for the seeds' JSON protocol and y-protocols clients.

Join params: `user_id` (Presence key, a random id when absent, like `test:*`; with TP_AUTH=jwt the token's `sub`), `protocol`: `"yjs"` for a
y-protocols client (reply `{}`; the client syncs with `yjs_sync`); otherwise the reply carries the whole
document. The join awaits the room's load from the store.

Seeds' protocol (vsn 1 or 2):

    -> ["3","3","room:notes","phx_join",{"user_id":"alice"}]
    <- ["3","3","room:notes","phx_reply",{"response":{"state":[1,1,242,...]},"status":"ok"}]
    -> ["3","4","room:notes","update",{"data":[1,1,242,...]}]       (or a base64 string, or a V2 binary push)
    <- ["3","4","room:notes","phx_reply",{"response":{},"status":"ok"}]
       every other member: [null,null,"room:notes","update",{"data":[...]}]

y-protocols (vsn 2.0.0, binary frames both ways, as y_ex's Phoenix provider speaks it):

    -> binary push "yjs_sync" [0,0,sv]     <- push "yjs" [0,1,diff], push "yjs" [0,0,sv'], push "yjs" [1,awareness]
    -> binary push "yjs" [0,2,update]      -> others: broadcast "yjs" [0,2,update]   (no reply, like y_ex)
    -> binary push "yjs" [1,awareness]     -> others: broadcast "yjs" [1,awareness]
    -> binary push "yjs" [3]               <- push "yjs" [1,all awareness]

Refused input gets an error reply and changes nothing: `invalid update`, `update too large`,
`document too large`.
"""

from __future__ import annotations

import base64
import binascii
import secrets
import time
from typing import Any

from ..yjs import codec
from ..yjs.room import JSON, YJS, Member, Room, RoomError
from .base import Channel, NoReply, Reply, _NoReply, error, ok

__all__ = ["RoomChannel"]

_INVALID = {"reason": "invalid update"}


class RoomChannel(Channel):
    room: Room | None = None
    member: Member | None = None

    async def join(self, payload: Any) -> Reply:
        params = payload if isinstance(payload, dict) else {}
        protocol = YJS if params.get("protocol") in ("yjs", "y-protocols") else JSON
        if protocol == YJS and self.socket.serializer.vsn != 2:
            return error({"reason": "y-protocols needs vsn=2.0.0 (binary frames)"})
        user_id = self.socket.assigns.get("user_id")  # TP_AUTH=jwt: the token's sub, not the join param
        if user_id is None:
            user_id = params.get("user_id")
        self.assigns["user_id"] = str(user_id) if user_id is not None else secrets.token_hex(8)
        try:
            room = await self.socket.endpoint.yjs.get(self.topic)
        except RoomError as exc:
            return error({"reason": exc.reason})
        self.room = room
        self.member = room.add_member(self, protocol)
        if protocol == YJS:
            return ok({})
        return ok({"state": room.json_state()})

    def after_join(self) -> None:
        self.presence.track(self, self.topic, self.assigns["user_id"], {"online_at": str(int(time.time()))})
        self.push("presence_state", self.presence.list(self.topic))

    def handle_in(self, event: str, payload: Any) -> Reply | _NoReply:
        room, member = self.room, self.member
        assert room is not None and member is not None
        try:
            if event == "update":
                room.apply_update(_update_bytes(payload), member)
                return ok({})
            if event in ("yjs_sync", "yjs"):
                return self._y_protocols(room, member, payload)
        except RoomError as exc:
            return error({"reason": exc.reason})
        return error({"reason": "unknown event"})

    def _y_protocols(self, room: Room, member: Member, payload: Any) -> Reply | _NoReply:
        if not isinstance(payload, bytes):
            return error(_INVALID)
        if len(payload) > room.manager.max_update_bytes:
            raise RoomError("update too large")
        try:
            message = codec.parse_message(payload)
        except codec.InvalidMessage:
            return error(_INVALID)
        member.protocol = YJS  # from now on it gets `yjs` relays, not JSON `update`s
        if isinstance(message, codec.SyncMessage):
            if message.kind == 0:
                for reply in room.sync_replies(message.body):
                    self.push("yjs", reply)
            else:
                room.apply_update(message.body, member)
        elif isinstance(message, codec.AwarenessMessage):
            room.apply_awareness(message, member)
        else:
            awareness = room.full_awareness()
            if awareness is not None:
                self.push("yjs", awareness)
        return NoReply

    def handle_leave(self, reason: str) -> None:
        if self.room is not None:
            self.room.remove_member(self, reason)


def _update_bytes(payload: Any) -> bytes:
    """The seeds' `update` payload: {"data": [bytes] | "base64"}, or a V2 binary push of the raw update."""
    if isinstance(payload, bytes):
        return payload
    data = payload.get("data") if isinstance(payload, dict) else None
    if isinstance(data, str):
        try:
            return base64.b64decode(data, validate=True)
        except (binascii.Error, ValueError):
            raise RoomError("invalid update") from None
    if isinstance(data, list):
        try:
            return bytes(data)
        except (TypeError, ValueError):
            raise RoomError("invalid update") from None
    raise RoomError("invalid update")
