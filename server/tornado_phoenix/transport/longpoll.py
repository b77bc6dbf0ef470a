"""The long-poll transport: `GET|POST|OPTIONS <socket_path>/longpoll`, as Phoenix.Transports.LongPoll 1.7.24.

Every answer is HTTP 200 with the real status in a JSON body (keys sorted, as Jason sends them):

    GET  /socket/longpoll?vsn=2.0.0                 -> {"messages":[],"status":410,"token":"SFMyNTY.…"}   new session
    POST /socket/longpoll?vsn=2.0.0&token=…  (application/x-ndjson, one frame a line; base64 lines are binary)
         ["1","1","echo:lp","phx_join",{}]          -> {"status":200}          (replies wait for the next GET)
    GET  /socket/longpoll?vsn=2.0.0&token=…         -> {"messages":["[\"1\",\"1\",\"echo:lp\",\"phx_reply\",…]"],
                                                        "status":200,"token":"…"}
         nothing within TP_LONGPOLL_WINDOW (10 s)   -> {"messages":[],"status":204,"token":"…"}
         session gone (15 s without a GET)          -> a new session: 410 with a new token
    refused connect / vsn / origin                  -> {"status":403};  POST with a bad token -> {"status":410}

A session is one PhoenixSocket (the same state machine as the WebSocket's) whose frames are buffered until the
next GET; the buffer is handed over when a GET answers. Frames are the WebSocket's text frames, byte for byte.
Binary frames from the server cannot travel (Phoenix would put raw bytes into JSON): a channel that sends one
is crashed with a logged error naming the cause, and the client gets `phx_error` for it.

The token signs `["v1", "phx:lp:<session key>"]`, plus the owner node's id on a Redis pub/sub; there a request
for a session this process does not hold goes to its owner (longpoll_routing.py) before it counts as unknown.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import logging
import secrets
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import tornado.web
from tornado.ioloop import IOLoop

from .. import auth
from ..channels.socket import PhoenixSocket
from ..logs import esc
from ..protocol import jsoncodec
from ..protocol.errors import CloseCode, ProtocolError
from ..protocol.serializers import Frame, Serializer, negotiate
from ..tokens import Signer, random_secret
from .websocket import PhoenixWebSocketHandler

if TYPE_CHECKING:
    from ..endpoint import Endpoint
    from .longpoll_routing import LongPollRouter

__all__ = ["LongPollSession", "LongPollSessions", "PhoenixLongPollHandler", "dispatch_body"]

log = logging.getLogger("tornado_phoenix.transport")

_MAX_LINES = 100  # phoenix.js MAX_LONGPOLL_BATCH_SIZE; Phoenix splits the body without a cap


class LongPollSession:
    """The Transport of one long-poll PhoenixSocket: frames wait in `buffer` until a GET takes them."""

    def __init__(self, sessions: LongPollSessions, key: str, serializer: Serializer) -> None:
        self.sessions = sessions
        self.key = key
        self.serializer = serializer
        self.phx: PhoenixSocket | None = None
        self.buffer: list[str] = []
        self.waiter: asyncio.Future[None] | None = None
        self.last_poll = IOLoop.current().time()
        self.closed = False
        self._expiry: Any = None
        self._silent_until = 0.0
        self.opened_at = self.last_poll
        self.reached_from: set[str] = set()  # other nodes whose requests were forwarded here (logged once each)

    # ---- Transport interface for PhoenixSocket --------------------------------------------------------

    def send(self, frame: Frame) -> None:
        if self.closed or self.silent():
            return
        if frame.binary:
            self._binary_refused(frame)
            return
        self.buffer.append(frame.data.decode("utf-8"))
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def call_later(self, delay: float, callback: Callable[[], Any]) -> Any:
        return IOLoop.current().call_later(delay, callback)

    def shutdown(self, code: int = CloseCode.GOING_AWAY, reason: str | None = None) -> None:
        """Server-side close (fault:* disconnect, SIGTERM): the session ends; the next GET gets 410."""
        self.close(f"shutdown {code}")

    def on_connection_close(self) -> None:
        self.close("server stopping")

    def silence(self, seconds: float) -> None:
        """fault:* silence: for `seconds`, frames both ways are dropped (polls still answer 204, POSTs 200)."""
        self._silent_until = IOLoop.current().time() + seconds

    def silent(self) -> bool:
        return self._silent_until > 0 and IOLoop.current().time() < self._silent_until

    def reject(self, code: int, reason: str) -> None:
        log.warning("conn=%s long-poll rejected frame, ending the session: reason=%s", self._conn(), esc(reason))
        self.close("protocol error")

    # ---- lifetime -------------------------------------------------------------------------------------

    def touch(self) -> None:
        self.last_poll = IOLoop.current().time()

    async def wait_for_frames(self, waiter: asyncio.Future[None]) -> None:
        """Hold a poll (local, or forwarded from another node) until frames arrive, a newer poll takes over, the
        session ends, `waiter` is set by the caller (its client went away) or the window passes."""
        self.touch()
        if self.buffer:
            return
        previous = self.waiter
        if previous is not None and not previous.done():
            previous.set_result(None)  # a newer poll takes over; the older one answers now (204)
        self.waiter = waiter
        try:
            await asyncio.wait_for(asyncio.shield(waiter), self.sessions.window)
        except TimeoutError:
            pass
        if self.waiter is waiter:
            self.waiter = None
        self.touch()

    def take(self) -> list[str]:
        """The buffered frames, handed over (Phoenix keeps no copy: a lost response loses them)."""
        messages, self.buffer = self.buffer, []
        return messages

    def arm_expiry(self) -> None:
        self._expiry = IOLoop.current().call_later(self.sessions.lifetime, self._check_expiry)

    def _check_expiry(self) -> None:
        self._expiry = None
        if self.closed:
            return
        idle = IOLoop.current().time() - self.last_poll
        polling = self.waiter is not None and not self.waiter.done()
        if idle >= self.sessions.lifetime and not polling:
            log.info("conn=%s long-poll session expired: no poll for %.0fs", self._conn(), idle)
            self.close("expired")
        else:
            delay = self.sessions.lifetime if polling else self.sessions.lifetime - idle
            self._expiry = IOLoop.current().call_later(delay, self._check_expiry)

    def close(self, why: str) -> None:
        if self.closed:
            return
        self.closed = True
        if self._expiry is not None:
            IOLoop.current().remove_timeout(self._expiry)
            self._expiry = None
        self.sessions.forget(self)
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)
        if self.phx is not None:
            phx, self.phx = self.phx, None
            phx.terminate("closed")
            log.info("conn=%s long-poll disconnect (%s) after %.1fs", phx.id, why,
                     IOLoop.current().time() - self.opened_at)

    def _conn(self) -> str:
        return str(self.phx.id) if self.phx is not None else "-"

    def _binary_refused(self, frame: Frame) -> None:
        topic = binary_frame_topic(frame.data)
        log.error("conn=%s binary frame for topic=%s cannot travel over long-poll (Phoenix cannot either); "
                  "crashing that channel: use the WebSocket transport for binary payloads", self._conn(), esc(topic))
        phx = self.phx
        channel = phx.channels.get(topic) if phx is not None and topic is not None else None
        if channel is not None:
            IOLoop.current().add_callback(phx._crash, channel, "binary frame over long-poll")


def binary_frame_topic(data: bytes) -> str | None:
    """The topic named in a V2 binary frame (kinds 0 push, 1 reply, 2 broadcast), or None."""
    try:
        kind = data[0]
        if kind == 0:  # kind, len(join_ref), len(topic), len(event)
            start = 4 + data[1]
            return data[start : start + data[2]].decode("utf-8")
        if kind == 1:  # kind, len(join_ref), len(ref), len(topic), len(status)
            start = 5 + data[1] + data[2]
            return data[start : start + data[3]].decode("utf-8")
        if kind == 2:  # kind, len(topic), len(event)
            return data[3 : 3 + data[1]].decode("utf-8")
    except (IndexError, UnicodeDecodeError):
        return None
    return None


def dispatch_body(session: LongPollSession, raw: bytes, ndjson: bool) -> int:
    """Hand a POST body's frames to the session's socket; the status the POST answers (200, 408 or 410)."""
    try:
        body = raw.decode("utf-8")
    except UnicodeDecodeError:
        session.reject(CloseCode.INVALID_PAYLOAD, "POST body is not valid UTF-8")
        return 408
    lines = [line for line in body.replace("\r\n", "\n").split("\n") if line][:_MAX_LINES] if ndjson else [body]
    if session.silent():
        lines = []  # fault:* silence: dropped unread, as a network partition would lose them
    for line in lines:
        phx = session.phx
        if phx is None:
            return 410
        try:
            if line.startswith("[") or not ndjson:
                message = session.serializer.decode_text(line)
            else:
                try:
                    data = base64.b64decode(line, validate=True)
                except binascii.Error:
                    raise ProtocolError("an NDJSON line is neither a JSON array nor base64") from None
                message = session.serializer.decode_binary(data)
            phx.handle_message(message)
        except ProtocolError as exc:
            # Phoenix's session process crashes on a bad frame; the POST answers 408 and the session is gone.
            session.reject(CloseCode.INTERNAL_ERROR, str(exc)[:200])
            return 408
        except Exception:
            log.exception("conn=%s internal error while handling a long-poll frame", session._conn())
            session.close("internal error")
            return 408
    return 200


class LongPollSessions:
    """Every long-poll session of one server, and the signer of their tokens."""

    def __init__(self, endpoint: Endpoint, secret_key_base: str = "", signer: Signer | None = None) -> None:
        self.endpoint = endpoint
        if signer is not None:
            self.signer = signer
        elif not secret_key_base:
            secret_key_base = random_secret()
            log.info("TP_SECRET_KEY_BASE is not set: long-poll tokens are signed with a random key generated "
                     "at this start (sessions do not survive a restart; set it when several workers serve)")
        if signer is None:
            self.signer = Signer(secret_key_base or random_secret(), "tornado_phoenix long-poll")
        self.window = endpoint.settings.longpoll_window
        self.lifetime = self.window * 1.5
        self.by_key: dict[str, LongPollSession] = {}
        # Set by longpoll_routing.LongPollRouter.attach when the pub/sub spans nodes; None: one process, and
        # tokens stay ["v1", key] as before.
        self.router: LongPollRouter | None = None

    def open(self, serializer: Serializer, params: dict[str, Any], assigns: dict[str, Any],
             peer: str, make_socket: Callable[..., PhoenixSocket] = PhoenixSocket) -> tuple[LongPollSession, str]:
        key = f"phx:lp:{base64.b64encode(secrets.token_bytes(16)).decode()}{int(time.time() * 1000)}"
        session = LongPollSession(self, key, serializer)
        session.phx = make_socket(self.endpoint, session, params, peer=peer)
        session.phx.assigns.update(assigns)
        self.by_key[key] = session
        self.endpoint.connections.add(session)
        session.arm_expiry()
        expires_at = assigns.get(auth.EXPIRES_AT)
        if expires_at is not None:  # TP_AUTH=jwt: the session ends when its token expires, as the WebSocket closes
            IOLoop.current().call_later(max(0.0, expires_at - time.time()), session.close, "token expired")
        log.info("conn=%s long-poll connect peer=%s vsn=%s params=%s", session.phx.id, peer, serializer.vsn,
                 esc(",".join(sorted(params))) if params else "-")
        owner = [self.router.node_id] if self.router is not None else []
        return session, self.signer.sign(["v1", key, *owner])

    def verify(self, token: str | None) -> tuple[str, str] | None:
        """(session key = its private topic, owner node or "") from a token this secret signed, else None."""
        if not token:
            return None
        data = self.signer.verify(token)
        if not (isinstance(data, list) and len(data) in (2, 3) and data[0] == "v1"
                and all(isinstance(item, str) for item in data)):
            return None
        return data[1], data[2] if len(data) == 3 else ""

    def find(self, token: str | None) -> tuple[LongPollSession, str] | None:
        verified = self.verify(token)
        if verified is None:
            return None
        session = self.by_key.get(verified[0])
        return None if session is None or session.closed else (session, token)  # type: ignore[return-value]

    def forget(self, session: LongPollSession) -> None:
        if self.by_key.get(session.key) is session:
            del self.by_key[session.key]
        self.endpoint.connections.discard(session)


class PhoenixLongPollHandler(tornado.web.RequestHandler):
    """One HTTP request of the long-poll transport. `negotiate`/`admit` let another mount (supabase) reuse it."""

    def initialize(self, endpoint: Endpoint, sessions: LongPollSessions,
                   negotiate: Callable[[str | None], Serializer | None] = negotiate,
                   admit: Callable[[tornado.web.RequestHandler], str | None] | None = None,
                   make_socket: Callable[..., PhoenixSocket] = PhoenixSocket) -> None:
        self.endpoint = endpoint
        self.settings_ = endpoint.settings
        self.sessions = sessions
        self._negotiate = negotiate
        self._admit = admit
        self._make_socket = make_socket
        self._gone = False
        self._waiter: asyncio.Future[None] | None = None

    def set_default_headers(self) -> None:
        self.clear_header("Server")
        self.set_header("Access-Control-Allow-Origin", "*")
        self.set_header("Cache-Control", "max-age=0, private, must-revalidate")

    def _status(self, status: int, token: str | None = None, messages: list[str] | None = None) -> None:
        body: dict[str, Any] = {}
        if messages is not None:
            body["messages"] = messages
        body["status"] = status
        if token is not None:
            body["token"] = token
        self.set_header("Content-Type", "application/json; charset=utf-8")
        self.finish(jsoncodec.dumps(body))

    def _token(self) -> str | None:
        return self.request.headers.get("X-Phoenix-Longpoll-Token") or self.get_query_argument("token", None)

    def _peer(self) -> str:
        return self.request.remote_ip or "-"

    # ---- GET: open a session or poll it -----------------------------------------------------------------

    async def get(self) -> None:
        serializer = self._negotiate(self.get_query_argument("vsn", None))
        if serializer is None:
            log.warning("long-poll refuse status=403 reason=%s vsn=%s peer=%s", esc("unsupported vsn (use 1.0.0 or "
                        "2.0.0)"), esc(self.get_query_argument("vsn", None)), self._peer())
            self._status(403)
            return
        if not PhoenixWebSocketHandler._origin_allowed(self):  # type: ignore[arg-type]
            log.warning("long-poll refuse status=403 reason=%s origin=%s peer=%s", esc("origin not in TP_CHECK_ORIGIN"),
                        esc(self.request.headers.get("Origin")), self._peer())
            self._status(403)
            return
        token = self._token()
        found = self.sessions.find(token)
        if found is None:
            router = self.sessions.router
            if router is not None and token:  # several nodes: the session may live on another one
                self._waiter = asyncio.get_running_loop().create_future()
                answer = await router.forward_poll(self.sessions, token, self._waiter)
                if self._gone:
                    return
                if answer is not None:
                    self._status(answer[0], token, answer[1])
                    return
            self._open(serializer)
            return
        session, token = found
        waiter = self._waiter = asyncio.get_running_loop().create_future()
        await session.wait_for_frames(waiter)
        if self._gone:
            return  # the client went away: the frames stay for its next poll
        messages = session.take()
        # A session that ended while this GET waited answers 204; the next GET gets 410 and a new session.
        self._status(200 if messages else 204, token, messages)

    def _open(self, serializer: Serializer) -> None:
        # phoenix.js appends the session token as a second `token` after the app's params (`?token=<app's>&vsn=2.0.0
        # &token=<session>`): the session lookup takes the last value, the connect params the first.
        params = {key: values[0 if key == "token" else -1].decode("utf-8", "replace")
                  for key, values in self.request.query_arguments.items() if key != "vsn"}
        refusal = self._admit(self) if self._admit is not None else None
        # The WebSocket's connect path (TP_AUTH and the connect hook); phoenix.js 1.8 sends its authToken in
        # X-Phoenix-AuthToken here, passed on as the subprotocol the WebSocket would have carried it in.
        header = self.request.headers.get("X-Phoenix-AuthToken")
        protocols = None
        if header is not None:
            protocols = "phoenix, " + auth.AUTH_TOKEN_PREFIX + base64.b64encode(header.encode()).decode().rstrip("=")
        assigns = (self.endpoint.auth.connect(params, protocols, self.endpoint.connect) if refusal is None
                   else auth.Refused(refusal))
        if isinstance(assigns, auth.Refused):
            self.endpoint.auth_refused(assigns.reason)
            log.warning("long-poll refuse status=403 reason=%s auth=%s params=%s peer=%s", esc(assigns.reason),
                        self.endpoint.auth.mode, esc(",".join(sorted(params))), self._peer())
            self._status(403)
            return
        _session, token = self.sessions.open(serializer, params, assigns, self._peer(), self._make_socket)
        self._status(410, token, [])

    def on_connection_close(self) -> None:
        self._gone = True
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    # ---- POST: client frames ----------------------------------------------------------------------------

    async def post(self) -> None:
        if self._negotiate(self.get_query_argument("vsn", None)) is None:
            self._status(403)
            return
        ndjson = self.request.headers.get("Content-Type", "").startswith("application/x-ndjson")
        token = self._token()
        found = self.sessions.find(token)
        if found is not None:
            self._status(dispatch_body(found[0], self.request.body, ndjson))
            return
        router = self.sessions.router
        status = await router.forward_post(self.sessions, token, self.request.body, ndjson) if router and token else None
        self._status(410 if status is None else status)

    # ---- OPTIONS and the rest -----------------------------------------------------------------------------

    def options(self) -> None:
        self.clear_header("Content-Type")  # Plug's send_resp(200, "") names none
        self.set_header("Access-Control-Allow-Headers", self.request.headers.get("Access-Control-Request-Headers", ""))
        self.set_header("Access-Control-Allow-Methods", "get, post, options")
        self.set_header("Access-Control-Max-Age", "3600")
        self.finish()

    def _bad_method(self, *args: Any, **kwargs: Any) -> None:
        self.set_status(400)
        self.finish()

    put = patch = delete = head = _bad_method

    def check_xsrf_cookie(self) -> None:
        pass

    def log_exception(self, typ: Any, value: Any, tb: Any) -> None:
        log.error("unexpected error in the long-poll handler", exc_info=(typ, value, tb))
