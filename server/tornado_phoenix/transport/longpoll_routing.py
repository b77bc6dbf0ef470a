"""Long-poll requests that reach another node than their session's, routed to it over pub/sub (as Phoenix does).

A session lives in one process (one `--workers` worker, one node), but with SO_REUSEPORT or a load balancer its
GETs and POSTs land anywhere. As Phoenix.Transports.LongPoll does across nodes, the session's token names its
private topic (`phx:lp:…`, the session key) and, here, its owner node: `["v1", "phx:lp:…", "host:4242:9f2c"]`.
The owner answers requests for that topic; a node that gets a request for a session it does not hold verifies
the token (the same TP_SECRET_KEY_BASE everywhere) and forwards it over the Redis pub/sub as an envelope
(pubsub/redis.py), then answers its client with the owner's status and frames, byte for byte what a local
poll answers:

    B <- POST /socket/longpoll?vsn=2.0.0&token=T      ["3","3","test:lobby","shout",{"a":1}]
    B -> PUBLISH tp:default {"b":"[\\"3\\",\\"3\\",\\"test:lobby\\",\\"shout\\",{\\"a\\":1}]","k":"lp","mt":0,"n":"B","nd":1,
                             "o":"post","r":"7","t":"phx:lp:…","to":"A"}
    A -> PUBLISH tp:default {"k":"lpr","n":"A","r":"7","s":200,"to":"B"}          B answers {"status":200}
    B <- GET  /socket/longpoll?vsn=2.0.0&token=T
    B -> PUBLISH tp:default {"k":"lp","mt":0,"n":"B","o":"poll","r":"8","t":"phx:lp:…","to":"A"}
    A -> PUBLISH tp:default {"a":1,"k":"lpr","n":"A","r":"8","to":"B"}      (nothing buffered yet: A holds the poll)
    A -> PUBLISH tp:default {"k":"lpr","m":["[\\"3\\",\\"3\\",…,\\"phx_reply\\",…]"],"n":"A","r":"8","s":200,"to":"B"}
                                            B answers {"messages":["[\\"3\\",…]"],"status":200,"token":"T"}
    ("mt": which long-poll mount, /socket or /realtime/v1; "n": the sending node's id; "a": ack; "g": gone)

The owner holds a forwarded poll as it holds a local one (up to TP_LONGPOLL_WINDOW, then `"s":204,"m":[]`);
a poll whose client went away sends `"o":"cancel"` and the frames stay buffered. The owner answers at once
(an ack, frames or a status); no answer within 2 s (Phoenix's pubsub_timeout_ms) means the owner is gone (session
expired, worker died): the GET opens a new session (410 and a new token) and the POST answers 410, as Phoenix
does for an unknown session. A held poll whose final answer never comes answers 204 after the window + 2 s.
Every forwarded request is bounded and its entry dropped when it ends (`/health` `longpoll.forwarding` and
`longpoll.held` go back to 0). With the local pub/sub there is no router: nothing changes and nothing is paid.
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import logging
import time
from typing import TYPE_CHECKING, Any

from ..logs import esc
from .longpoll import dispatch_body

if TYPE_CHECKING:
    from .longpoll import LongPollSession, LongPollSessions

__all__ = ["LongPollRouter", "OWNER_TIMEOUT"]

log = logging.getLogger("tornado_phoenix.transport")

OWNER_TIMEOUT = 2.0  # Phoenix's pubsub_timeout_ms: how long a forwarded request waits for the owner's first answer
_KIND, _REPLY = "lp", "lpr"


class LongPollRouter:
    """One per process on a cross-node pub/sub (anything with `node_id`, `on` and `send`, i.e. RedisPubSub)."""

    def __init__(self, pubsub: Any) -> None:
        self.pubsub = pubsub
        self.node_id: str = pubsub.node_id
        self.registries: list[LongPollSessions] = []  # one per long-poll mount (/socket, /realtime/v1)
        self.forwarding: dict[str, asyncio.Queue[dict[str, Any]]] = {}  # our requests waiting for their owners
        self.held: dict[tuple[str, str], asyncio.Future[None]] = {}  # (node, ref) -> other nodes' polls held here
        self.forwarded = 0  # requests this node forwarded
        self.served = 0  # requests this node answered for other nodes
        self._refs = itertools.count(1)
        self._down_logged = float("-inf")
        pubsub.on(_KIND, self._on_request)
        pubsub.on(_REPLY, self._on_reply)

    @classmethod
    def for_pubsub(cls, pubsub: Any) -> LongPollRouter | None:
        """A router when the pub/sub spans nodes, else None (the local pub/sub: long-poll stays as it was)."""
        if all(hasattr(pubsub, name) for name in ("node_id", "on", "send")):
            return cls(pubsub)
        return None

    def attach(self, sessions: LongPollSessions) -> None:
        sessions.router = self
        self.registries.append(sessions)

    def health(self) -> dict[str, int]:
        return {"sessions": sum(len(r.by_key) for r in self.registries), "forwarding": len(self.forwarding),
                "held": len(self.held), "forwarded": self.forwarded, "served": self.served}

    # ---- the node that got the request ------------------------------------------------------------------

    def _owner(self, sessions: LongPollSessions, token: str) -> tuple[str, str] | None:
        """(key, owner node) when the token is genuine and names another, possibly live, node; else None."""
        verified = sessions.verify(token)
        if verified is None:
            return None
        key, owner = verified
        if not owner or owner == self.node_id:
            return None  # ours (or a one-process token): not in by_key, so it is gone
        if not self.pubsub.connected:
            now = time.monotonic()
            if now - self._down_logged >= 10.0:  # one line per 10 s while Redis is down, not one per request
                self._down_logged = now
                log.info("long-poll session of node=%s unreachable: pub/sub is down; answering as for an "
                         "unknown session until Redis is back", esc(owner))
            return None
        return key, owner

    async def forward_poll(self, sessions: LongPollSessions, token: str,
                           gone: asyncio.Future[None]) -> tuple[int, list[str]] | None:
        """The owner's (status, messages) for a GET, or None when the owner is gone (or the client went away)."""
        route = self._owner(sessions, token)
        if route is None:
            return None
        answer = await self._forward(sessions, route, {"o": "poll"}, gone, final=sessions.window + OWNER_TIMEOUT)
        if answer is None or "s" not in answer:
            return None if answer is None or answer.get("g") else (204, [])
        return int(answer["s"]), [str(m) for m in answer.get("m", [])]

    async def forward_post(self, sessions: LongPollSessions, token: str, body: bytes, ndjson: bool) -> int | None:
        """The owner's status for a POST (200, 408, 410), or None when the owner is gone."""
        route = self._owner(sessions, token)
        if route is None:
            return None
        try:
            request: dict[str, Any] = {"o": "post", "b": body.decode("utf-8")}
        except UnicodeDecodeError:
            request = {"o": "post", "x": base64.b64encode(body).decode()}  # the owner rejects it as it would locally
        if ndjson:
            request["nd"] = 1
        answer = await self._forward(sessions, route, request, None, final=OWNER_TIMEOUT)
        return None if answer is None or answer.get("g") or "s" not in answer else int(answer["s"])

    async def _forward(self, sessions: LongPollSessions, route: tuple[str, str], request: dict[str, Any],
                       gone: asyncio.Future[None] | None, final: float) -> dict[str, Any] | None:
        """Send `request` to the owner; its final answer, `{}` if it acked but never finished, None if gone."""
        key, owner = route
        ref = str(next(self._refs))
        replies: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.forwarding[ref] = replies
        self.forwarded += 1
        log.debug("long-poll forward %s to node=%s ref=%s", request["o"], esc(owner), ref)
        self.pubsub.send(_KIND, {**request, "to": owner, "t": key, "mt": self.registries.index(sessions), "r": ref})
        loop = asyncio.get_running_loop()
        deadline = loop.time() + OWNER_TIMEOUT
        acked = False
        try:
            while True:
                get = asyncio.ensure_future(replies.get())
                waits: set[asyncio.Future[Any]] = {get} if gone is None else {get, gone}
                await asyncio.wait(waits, timeout=max(0.0, deadline - loop.time()), return_when=asyncio.FIRST_COMPLETED)
                if not get.done():
                    get.cancel()
                    if gone is not None and gone.done():  # our client went away: the owner keeps the frames
                        self.pubsub.send(_KIND, {"o": "cancel", "to": owner, "t": key, "r": ref})
                        return None
                    if acked:
                        return {}
                    log.info("long-poll session of node=%s gave no answer within %.0fs (session ended or node "
                             "gone): answering as for an unknown session", esc(owner), OWNER_TIMEOUT)
                    return None
                answer = get.result()
                if "a" in answer and "s" not in answer and not answer.get("g"):
                    acked = True  # the owner holds the poll: wait for its frames up to the window
                    deadline = loop.time() + final
                    continue
                return answer
        finally:
            del self.forwarding[ref]

    def _on_reply(self, envelope: dict[str, Any]) -> None:
        if envelope.get("to") != self.node_id:
            return
        replies = self.forwarding.get(str(envelope.get("r")))
        if replies is not None:  # else late (the request timed out): dropped
            replies.put_nowait(envelope)

    # ---- the owner --------------------------------------------------------------------------------------

    def _on_request(self, envelope: dict[str, Any]) -> None:
        if envelope.get("to") != self.node_id:
            return
        node, ref, op = str(envelope["n"]), str(envelope.get("r")), envelope.get("o")
        if op == "cancel":
            held = self.held.get((node, ref))
            if held is not None and not held.done():
                held.set_result(None)
            return
        mount = envelope.get("mt")
        sessions = self.registries[mount] if isinstance(mount, int) and 0 <= mount < len(self.registries) else None
        session = sessions.by_key.get(str(envelope.get("t"))) if sessions is not None else None
        if session is None or session.closed:
            self._reply(node, ref, {"g": 1})  # gone: the requester answers as for an unknown session, now
            return
        self.served += 1
        if node not in session.reached_from:
            session.reached_from.add(node)
            log.info("conn=%s long-poll session reached through node=%s: its requests are forwarded over pub/sub",
                     session._conn(), esc(node))
        if op == "post":
            body = envelope["b"].encode("utf-8") if "b" in envelope else base64.b64decode(envelope.get("x", ""))
            self._reply(node, ref, {"s": dispatch_body(session, body, bool(envelope.get("nd")))})
        elif op == "poll":
            # Registered now, not when the task starts: a "cancel" right behind the poll must find it.
            cancelled = asyncio.get_running_loop().create_future()  # set by "cancel"; distinct from a newer poll
            self.held[(node, ref)] = cancelled
            asyncio.get_running_loop().create_task(self._hold(session, node, ref, cancelled))

    async def _hold(self, session: LongPollSession, node: str, ref: str, cancelled: asyncio.Future[None]) -> None:
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        try:
            if cancelled.done():
                return
            session.touch()
            if not session.buffer:
                self._reply(node, ref, {"a": 1})
                cancelled.add_done_callback(lambda _: waiter.done() or waiter.set_result(None))
                await session.wait_for_frames(waiter)
                if cancelled.done():
                    return  # its client went away: the frames stay for the next poll
            messages = session.take()
            self._reply(node, ref, {"s": 200 if messages else 204, "m": messages})
        finally:
            del self.held[(node, ref)]
            if not cancelled.done():
                cancelled.cancel()

    def _reply(self, node: str, ref: str, body: dict[str, Any]) -> None:
        self.pubsub.send(_REPLY, {**body, "to": node, "r": ref})
