"""The supabase realtime dialect, mounted at `/realtime/v1/websocket` (and `/realtime/v1/longpoll`).

What `@supabase/realtime-js` (supabase-js's `client.channel(...)`) speaks: Phoenix V1/V2 frames plus two binary
kinds for user broadcasts, on `realtime:<name>` topics (see channels/realtime.py for the channel):

    ws://host/realtime/v1/websocket?apikey=anon&vsn=2.0.0
    -> ["1","1","realtime:room1","phx_join",{"config":{"broadcast":{"ack":false,"self":false},
                                              "presence":{"key":"","enabled":false},"postgres_changes":[],
                                              "private":false}}]
    <- ["1","1","realtime:room1","phx_reply",{"response":{"postgres_changes":[]},"status":"ok"}]
    -> 03 len(jr) len(ref) len(topic) len(event) len(meta) enc  jr ref topic event meta payload   (kind 3)
    <- 04 len(topic) len(event) len(meta) enc  topic event meta payload                           (kind 4)

vsn 1.0.0 sockets get the text form `{"event":"broadcast","payload":{"event":..,"payload":..,"type":"broadcast"},..}`.
The `apikey` query parameter is required (any value unless TP_SUPABASE_APIKEYS lists the accepted ones). These
sockets never get a Phoenix binary frame (kinds 0/1/2): realtime-js cannot decode them. The Phoenix mount
(`TP_SOCKET_PATH`) is not affected by anything here.
"""

from __future__ import annotations

import copy
import logging
import struct
import time
from typing import Any

import jwt
import tornado.web

from .channels.router import Router
from .endpoint import Endpoint
from .logs import esc
from .protocol import jsoncodec
from .protocol.errors import DecodeError, EncodeError
from .protocol.messages import Broadcast, Message, Outgoing, Reply
from .protocol.serializers import Frame, Serializer, V1JsonSerializer, V2JsonSerializer, read_binary_fields
from .protocol.serializers import negotiate as phoenix_negotiate
from .transport.longpoll import LongPollSessions, PhoenixLongPollHandler
from .transport.websocket import PhoenixWebSocketHandler

__all__ = ["SupabaseV1Serializer", "SupabaseV2Serializer", "supabase_routes", "verify_access_token"]

log = logging.getLogger("tornado_phoenix.supabase")

MOUNT = "/realtime/v1"
_USER_BROADCAST_PUSH, _USER_BROADCAST = 3, 4
_JSON, _RAW = 1, 0


def _is_user_broadcast(event: str, payload: Any) -> bool:
    return event == "broadcast" and isinstance(payload, dict) and isinstance(payload.get("event"), str)


class SupabaseV2Serializer(V2JsonSerializer):
    """V2 text frames; binary kind 3 in, kind 4 out for user broadcasts; never Phoenix's binary kinds 0/1/2."""

    def decode_binary(self, data: bytes) -> Message:
        if not data or data[0] != _USER_BROADCAST_PUSH:
            kind = data[0] if data else None
            raise DecodeError(f"binary frame kind {kind} is not a supabase user broadcast push (kind 3)")
        if len(data) < 7:
            raise DecodeError(f"kind 3 frame of {len(data)} bytes is shorter than its 7-byte header")
        encoding = data[6]
        (join_ref, ref, topic, event, meta), end = read_binary_fields(data, data[1:6], 7, "kind 3")
        body = data[end:]
        if encoding == _JSON:
            try:
                user_payload: Any = jsoncodec.loads(body)
            except ValueError as exc:
                raise DecodeError(f"kind 3 JSON payload is invalid: {exc}") from None
        else:
            user_payload = bytes(body)
        payload: dict[str, Any] = {"type": "broadcast", "event": event, "payload": user_payload}
        if meta:
            try:
                payload["meta"] = jsoncodec.loads(meta)
            except ValueError:
                raise DecodeError("kind 3 metadata is not JSON") from None
        return Message(join_ref or None, ref or None, topic, "broadcast", payload)

    def encode(self, message: Outgoing) -> Frame:
        if type(message) is Broadcast:
            return self.encode_broadcast(message)
        if isinstance(message.response if type(message) is Reply else message.payload, bytes):  # type: ignore[union-attr]
            raise EncodeError("supabase sockets cannot receive Phoenix binary frames (kinds 0/1/2)")
        return super().encode(message)

    def encode_broadcast(self, message: Broadcast) -> Frame:
        payload = message.payload
        if _is_user_broadcast(message.event, payload):
            user = payload.get("payload")
            if isinstance(user, bytes):
                encoding, body = _RAW, user
            else:
                encoding, body = _JSON, jsoncodec.dumps({} if user is None else user)
            meta = jsoncodec.dumps(payload["meta"]) if payload.get("meta") else b""
            topic, event = message.topic.encode(), payload["event"].encode()
            if max(len(topic), len(event), len(meta)) > 255:
                raise EncodeError("kind 4 header field exceeds 255 bytes")
            header = struct.pack("5B", _USER_BROADCAST, len(topic), len(event), len(meta), encoding)
            return Frame(header + topic + event + meta + body, binary=True)
        if isinstance(payload, bytes):
            raise EncodeError("supabase sockets cannot receive Phoenix binary frames (kinds 0/1/2)")
        return super().encode_broadcast(message)


class SupabaseV1Serializer(V1JsonSerializer):
    """Plain V1 objects. A binary user payload has no text form: it travels as null (documented)."""

    def encode(self, message: Outgoing) -> Frame:
        if type(message) is Broadcast and _is_user_broadcast(message.event, message.payload):
            payload = message.payload
            if isinstance(payload.get("payload"), bytes):
                message = Broadcast(message.topic, message.event, {**payload, "payload": None})
        return super().encode(message)

    encode_broadcast = encode


class SupabaseTextSerializer(SupabaseV2Serializer):
    """V2 for long-poll: user broadcasts as text frames (long-poll carries no binary from the server)."""

    def encode_broadcast(self, message: Broadcast) -> Frame:
        payload = message.payload
        if _is_user_broadcast(message.event, payload) and isinstance(payload.get("payload"), bytes):
            message = Broadcast(message.topic, message.event, {**payload, "payload": None})
        return V2JsonSerializer.encode_broadcast(self, message)


SUPA_V1 = SupabaseV1Serializer()
SUPA_V2 = SupabaseV2Serializer()
SUPA_TEXT = SupabaseTextSerializer()


def negotiate(vsn: str | None) -> Serializer | None:
    found = phoenix_negotiate(vsn)
    if found is None:
        return None
    return SUPA_V2 if found.vsn == 2 else SUPA_V1


def negotiate_text(vsn: str | None) -> Serializer | None:
    found = negotiate(vsn)
    return SUPA_TEXT if found is SUPA_V2 else found


def verify_access_token(token: Any, secret: str) -> str | None:
    """None when the token is acceptable, else the reason in the real server's words.

    With no secret configured (TP_SUPABASE_JWT_SECRET empty) any token is accepted, as tokens are not checked.
    """
    if not secret:
        return None
    if not isinstance(token, str) or not token:
        return "InvalidJWTToken: access_token is missing or not a string"
    try:
        jwt.decode(token, secret, algorithms=["HS256", "HS384", "HS512"], options={"verify_aud": False})
    except jwt.ExpiredSignatureError:
        try:
            exp = jwt.decode(token, options={"verify_signature": False}).get("exp", 0)
        except jwt.PyJWTError:
            exp = 0
        return f"Token has expired {max(0, int(time.time() - float(exp)))} seconds ago"
    except jwt.PyJWTError as exc:
        return f"InvalidJWTToken: {exc}"
    return None


def _apikey_refusal(handler: tornado.web.RequestHandler, allowed: frozenset[str]) -> str | None:
    apikey = handler.get_query_argument("apikey", None)
    if not apikey:
        return "the apikey query parameter is missing (supabase-js sends it; add ?apikey=<key>)"
    if allowed and apikey not in allowed:
        return "apikey is not one of TP_SUPABASE_APIKEYS"
    return None


class SupabaseWebSocketHandler(PhoenixWebSocketHandler):
    """The Phoenix WebSocket transport with the apikey check and the supabase serializers."""

    async def get(self, *args: Any, **kwargs: Any) -> None:
        refusal = _apikey_refusal(self, self.settings_.allowed_apikeys)
        if refusal is not None:
            log.warning("refuse status=403 reason=%s peer=%s (supabase mount)", esc(refusal), self._peer())
            self._empty(403)
            return
        await super().get(*args, **kwargs)

    def open(self, *args: Any, **kwargs: Any) -> None:
        self.serializer = negotiate(self.get_query_argument("vsn", None)) or SUPA_V1
        super().open(*args, **kwargs)


def supabase_endpoint(endpoint: Endpoint) -> Endpoint:
    """The same Endpoint (pub/sub, presence, auth, metrics, limits, connections) routing only `realtime:*`."""
    from .channels.realtime import RealtimeChannel

    sub = copy.copy(endpoint)  # shares every attribute; only the router differs
    sub.router = Router([("realtime:*", RealtimeChannel)])
    return sub


def supabase_routes(endpoint: Endpoint, sessions: LongPollSessions) -> list[Any]:
    sub = supabase_endpoint(endpoint)
    allowed = endpoint.settings.allowed_apikeys
    lp_sessions = LongPollSessions(sub, signer=sessions.signer)  # one secret for both mounts
    if sessions.router is not None:  # several nodes: this mount's sessions are routed too
        sessions.router.attach(lp_sessions)
    return [
        (rf"{MOUNT}/websocket/?", SupabaseWebSocketHandler, {"endpoint": sub}),
        (rf"{MOUNT}/longpoll/?", PhoenixLongPollHandler,
         {"endpoint": sub, "sessions": lp_sessions, "negotiate": negotiate_text,
          "admit": lambda handler: _apikey_refusal(handler, allowed)}),
    ]
