"""`tornado-phoenix probe ws://HOST:PORT/socket`: check a live Phoenix Channels server end to end.

Works against any Phoenix Channels server with the `echo:*` and `test:*` channels (this one, or the Phoenix
reference app); `fault:*` is optional. Speaks V2 JSON (vsn=2.0.0) over Tornado's WebSocket client. Steps:

    connect           open the WebSocket (socket A)
    heartbeat         [null, ref, "phoenix", "heartbeat", {}] answered ok
    join echo         join echo:probe-<nonce>
    echo round trip   push "probe" {nonce}: the reply is ok with the same payload
    presence          socket B; A and B join test:probe-<nonce>; each sees both in presence
    shout             A shouts; A and B both receive it; A's push is answered ok
    leave             A leaves test:probe-<nonce>: reply ok, then phx_close; B sees A leave
    fault disconnect  join fault:probe-<nonce>, push disconnect {code: 4000}: the server closes with 4000
                      ("skip" when the server has no fault:* channel: the join is refused, unmatched topic)
    reconnect+rejoin  a new connection, join echo:probe-<nonce> again
    close             every socket closed by the client with 1000, the server answering the close

Every wait is bounded by --timeout. Output: a table (one line per step: name, ok/FAIL/skip, latency in ms,
detail) or, with --json, the same as one JSON object. Exit status 0 when no step failed, 1 otherwise.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import secrets
import socket
import ssl
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from tornado.httpclient import HTTPClientError, HTTPRequest
from tornado.websocket import WebSocketClientConnection, websocket_connect

from . import __version__

__all__ = ["Step", "run_probe", "socket_url", "add_arguments", "main"]

OK, FAIL, SKIP = "ok", "FAIL", "skip"


@dataclass
class Step:
    name: str
    status: str  # ok | FAIL | skip
    ms: float | None
    detail: str


class ProbeError(Exception):
    """A step failed; the message is the step's detail."""


class Skipped(Exception):
    """A step does not apply to this server; the message is the step's detail."""


def socket_url(base: str, params: dict[str, str]) -> str:
    """ws://host:port/socket -> ws://host:port/socket/websocket?<params>&vsn=2.0.0 (http(s) becomes ws(s))."""
    parts = urlsplit(base)
    scheme = {"http": "ws", "https": "wss"}.get(parts.scheme, parts.scheme)
    if scheme not in ("ws", "wss") or not parts.netloc:
        raise ValueError(f"expected a ws://HOST:PORT/socket URL, got {base!r}")
    path = parts.path.rstrip("/") or "/socket"
    if not path.endswith("/websocket"):
        path += "/websocket"
    query = [(k, v) for k, v in parse_qsl(parts.query) if k != "vsn"] + list(params.items()) + [("vsn", "2.0.0")]
    return urlunsplit((scheme, parts.netloc, path, urlencode(query), ""))


def _describe_connect_error(exc: BaseException, timeout: float, netloc: str) -> str:
    if isinstance(exc, ConnectionRefusedError):
        return f"connection refused by {netloc} (is the server running? right host and port?)"
    if isinstance(exc, socket.gaierror):
        return f"cannot resolve host: {exc.strerror or exc}"
    if isinstance(exc, HTTPClientError) and exc.code == 599:  # Tornado's code for "no HTTP response"
        if "timeout" in str(exc).lower():
            return f"no answer from {netloc} within {timeout:g}s"
        return f"connection to {netloc} failed: {exc.message or exc}"
    if isinstance(exc, HTTPClientError):
        hints = {403: " (upgrade refused: unsupported vsn, origin, or params/token rejected by connect)",
                 404: " (no socket at this path: check the URL's path, e.g. /socket)"}
        return f"HTTP {exc.code} instead of 101 Switching Protocols{hints.get(exc.code, '')}"
    if isinstance(exc, TimeoutError):
        return f"no answer from {netloc} within {timeout:g}s"
    if isinstance(exc, ssl.SSLError):
        return f"TLS error: {exc.reason or exc}"
    if isinstance(exc, OSError):
        return f"{exc.strerror or type(exc).__name__} (errno {exc.errno})" if exc.errno else str(exc) or repr(exc)
    return f"{type(exc).__name__}: {exc}"


class ProbeSocket:
    """One V2 WebSocket connection: a reader task records every frame; waits scan them, bounded in time."""

    def __init__(self, label: str, conn: WebSocketClientConnection, timeout: float) -> None:
        self.label = label
        self.conn = conn
        self.timeout = timeout
        self.frames: list[list[Any]] = []
        self.closed: tuple[int | None, str | None] | None = None
        self._ref = 0
        self._changed = asyncio.Event()
        self._reader = asyncio.ensure_future(self._read())

    @classmethod
    async def open(cls, label: str, url: str, timeout: float) -> ProbeSocket:
        request = HTTPRequest(url, connect_timeout=timeout, request_timeout=timeout,
                              headers={"User-Agent": f"tornado-phoenix-probe/{__version__}"})
        conn = await asyncio.wait_for(websocket_connect(request, ping_interval=None), timeout)
        return cls(label, conn, timeout)

    async def _read(self) -> None:
        while True:
            message = await self.conn.read_message()
            if message is None:
                self.closed = (self.conn.close_code, self.conn.close_reason)
                self._changed.set()
                return
            if isinstance(message, bytes):
                self.frames.append(["<binary>", None, None, None, message])
            else:
                try:
                    decoded = json.loads(message)
                except ValueError:
                    decoded = ["<not json>", None, None, None, message]
                self.frames.append(decoded if isinstance(decoded, list) and len(decoded) == 5 else
                                   ["<not a V2 message>", None, None, None, decoded])
            self._changed.set()

    def send(self, join_ref: str | None, topic: str, event: str, payload: Any) -> str:
        self._ref += 1
        ref = str(self._ref)
        self.conn.write_message(json.dumps([join_ref, ref, topic, event, payload], separators=(",", ":")))
        return ref

    async def wait(self, what: str, predicate: Callable[[list[Any]], bool]) -> list[Any]:
        """The first frame received so far or within the timeout for which predicate is true."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.timeout
        while True:
            self._changed.clear()
            for frame in self.frames:
                if predicate(frame):
                    return frame
            if self.closed is not None:
                code, reason = self.closed
                raise ProbeError(f"socket {self.label} closed (code {code}{f' {reason!r}' if reason else ''}) "
                                 f"while waiting for {what}")
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise ProbeError(f"no {what} within {self.timeout:g}s")
            try:
                await asyncio.wait_for(self._changed.wait(), remaining)
            except TimeoutError:
                pass

    async def until(self, what: str, condition: Callable[[], bool]) -> None:
        """Wait until condition() holds, re-checked on every frame, bounded by the timeout."""
        await self.wait(what, lambda _frame: condition())

    async def request(self, join_ref: str | None, topic: str, event: str, payload: Any) -> tuple[str, Any]:
        ref = self.send(join_ref, topic, event, payload)
        frame = await self.wait(f"reply to {event} on {topic}",
                                lambda f: f[1] == ref and f[2] == topic and f[3] == "phx_reply")
        body = frame[4] if isinstance(frame[4], dict) else {}
        return body.get("status"), body.get("response")

    async def join(self, topic: str, payload: dict[str, Any]) -> tuple[str, str, Any]:
        join_ref = str(self._ref + 1)  # request() takes this ref: join_ref == ref, as phoenix.js does
        status, response = await self.request(join_ref, topic, "phx_join", payload)
        return join_ref, status, response

    async def close(self) -> tuple[int | None, str | None]:
        if self.closed is None:
            self.conn.close(1000)
            try:
                await asyncio.wait_for(asyncio.shield(self._reader), self.timeout)
            except TimeoutError:
                self.conn.close()
                self._reader.cancel()
                raise ProbeError(f"socket {self.label}: the server did not answer the close within "
                                 f"{self.timeout:g}s") from None
        assert self.closed is not None
        return self.closed

    def abort(self) -> None:
        if self.closed is None:
            self.conn.close()
        self._reader.cancel()


def presence_keys(frames: list[list[Any]], topic: str) -> set[str]:
    """The presence keys a client of `topic` sees: presence_state, then presence_diff joins/leaves."""
    refs: dict[str, set[str]] = {}
    for frame in frames:
        if frame[2] != topic or not isinstance(frame[4], dict):
            continue
        if frame[3] == "presence_state":
            refs = {key: {m.get("phx_ref") for m in entry.get("metas", [])} for key, entry in frame[4].items()}
        elif frame[3] == "presence_diff":
            for key, entry in (frame[4].get("joins") or {}).items():
                refs.setdefault(key, set()).update(m.get("phx_ref") for m in entry.get("metas", []))
            for key, entry in (frame[4].get("leaves") or {}).items():
                left = {m.get("phx_ref") for m in entry.get("metas", [])}
                remaining = refs.get(key, set()) - left
                if remaining:
                    refs[key] = remaining
                else:
                    refs.pop(key, None)
    return set(refs)


def _status_error(what: str, status: Any, response: Any) -> ProbeError:
    return ProbeError(f"{what}: {status} {json.dumps(response, separators=(',', ':'))[:200]}")


class Probe:
    def __init__(self, base_url: str, params: dict[str, str], timeout: float) -> None:
        self.base_url = base_url
        self.url = socket_url(base_url, params)
        shown = {**params, "token": "MASKED"} if "token" in params else params  # --param values are shown
        self.shown_url = socket_url(base_url, shown).replace("token=MASKED", "token=***")
        self.timeout = timeout
        self.nonce = secrets.token_hex(4)
        self.steps: list[Step] = []
        self.sockets: dict[str, ProbeSocket] = {}
        self.echo_topic = f"echo:probe-{self.nonce}"
        self.room = f"test:probe-{self.nonce}"
        self.fault_topic = f"fault:probe-{self.nonce}"
        self.joins: dict[tuple[str, str], str] = {}  # (socket, topic) -> join_ref

    async def step(self, name: str, action: Callable[[], Awaitable[str]], needs: tuple[str, ...] = ()) -> bool:
        missing = [label for label in needs if label not in self.sockets or self.sockets[label].closed]
        if missing:
            self.steps.append(Step(name, SKIP, None, f"needs socket {', '.join(missing)}, which is not open"))
            return False
        started = time.perf_counter()
        try:
            detail = await action()
            status = OK
        except Skipped as exc:
            status, detail = SKIP, str(exc)
        except ProbeError as exc:
            status, detail = FAIL, str(exc)
        except Exception as exc:  # a step must never take the whole probe down
            status, detail = FAIL, f"{type(exc).__name__}: {exc}"
        ms = round((time.perf_counter() - started) * 1000, 1)
        self.steps.append(Step(name, status, ms, detail))
        return status == OK

    async def _open(self, label: str) -> ProbeSocket:
        try:
            sock = await ProbeSocket.open(label, self.url, self.timeout)
        except Exception as exc:
            raise ProbeError(_describe_connect_error(exc, self.timeout, urlsplit(self.url).netloc)) from None
        self.sockets[label] = sock
        return sock

    async def _join(self, label: str, topic: str, payload: dict[str, Any]) -> Any:
        join_ref, status, response = await self.sockets[label].join(topic, payload)
        if status != "ok":
            raise _status_error(f"join {topic} refused", status, response)
        self.joins[(label, topic)] = join_ref
        return response

    # ---- the steps ------------------------------------------------------------------------------------

    async def connect(self) -> str:
        await self._open("A")
        return self.shown_url

    async def heartbeat(self) -> str:
        status, response = await self.sockets["A"].request(None, "phoenix", "heartbeat", {})
        if status != "ok":
            raise _status_error("heartbeat", status, response)
        return "phx_reply ok"

    async def join_echo(self) -> str:
        await self._join("A", self.echo_topic, {"probe": self.nonce})
        return self.echo_topic

    async def echo(self) -> str:
        a = self.sockets["A"]
        payload = {"nonce": self.nonce, "n": 1}
        status, response = await a.request(self.joins[("A", self.echo_topic)], self.echo_topic, "probe", payload)
        if status != "ok" or response != payload:
            raise _status_error("echo reply", status, response)
        pushed = any(f[2] == self.echo_topic and f[3] == "probe" and f[4] == payload for f in a.frames)
        return "reply ok, payload echoed" + (" (and pushed)" if pushed else "")

    async def presence(self) -> str:
        await self._open("B")
        a, b = self.sockets["A"], self.sockets["B"]
        key_a, key_b = f"probe-{self.nonce}-a", f"probe-{self.nonce}-b"
        await self._join("A", self.room, {"user_id": key_a})
        await self._join("B", self.room, {"user_id": key_b})
        want = {key_a, key_b}
        for sock in (a, b):
            await sock.until(f"presence of both sockets on {sock.label}",
                             lambda s=sock: want <= presence_keys(s.frames, self.room))
        return f"{self.room}: A and B each see {key_a}, {key_b}"

    async def shout(self) -> str:
        a, b = self.sockets["A"], self.sockets["B"]
        payload = {"probe": self.nonce, "shout": 1}
        status, response = await a.request(self.joins[("A", self.room)], self.room, "shout", payload)
        if status != "ok":
            raise _status_error("shout", status, response)
        for sock in (a, b):
            await sock.wait(f"shout broadcast on socket {sock.label}",
                            lambda f: f[2] == self.room and f[3] == "shout" and f[4] == payload)
        return "reply ok; A and B received the broadcast"

    async def leave(self) -> str:
        a, b = self.sockets["A"], self.sockets["B"]
        join_ref = self.joins.pop(("A", self.room))
        status, response = await a.request(join_ref, self.room, "phx_leave", {})
        if status != "ok":
            raise _status_error("leave", status, response)
        await a.wait("phx_close after the leave",
                     lambda f: f[0] == join_ref and f[2] == self.room and f[3] == "phx_close")
        key_a = f"probe-{self.nonce}-a"
        await b.until("A's presence leave on B", lambda: key_a not in presence_keys(b.frames, self.room))
        return "reply ok, phx_close; B saw A leave"

    async def fault_disconnect(self) -> str:
        a = self.sockets["A"]
        join_ref, status, response = await a.join(self.fault_topic, {})
        if status != "ok":
            if isinstance(response, dict) and response.get("reason") == "unmatched topic":
                raise Skipped("server has no fault:* channel")
            raise _status_error(f"join {self.fault_topic} refused", status, response)
        a.send(join_ref, self.fault_topic, "disconnect", {"code": 4000, "reason": "probe"})
        try:
            await a.wait("server close", lambda f: False)
        except ProbeError:
            pass
        if a.closed is None:
            raise ProbeError(f"the server did not close the socket within {self.timeout:g}s")
        code, reason = a.closed
        if code != 4000:
            raise ProbeError(f"closed with {code} {reason!r}, expected 4000")
        return f"server closed the socket: {code} {reason!r}"

    async def reconnect(self) -> str:
        old = self.sockets.pop("A", None)
        if old is not None and old.closed is None:
            await old.close()  # no fault:* channel: the client closes it instead
        await self._open("A")
        await self._join("A", self.echo_topic, {"probe": self.nonce, "rejoin": True})
        return f"new connection, {self.echo_topic} rejoined"

    async def close(self) -> str:
        codes = []
        for label in sorted(self.sockets):
            code, _reason = await self.sockets[label].close()
            codes.append(f"{label}:{code}")
            if code != 1000:
                raise ProbeError(f"socket {label} closed with {code}, expected the server to answer 1000")
        return "closed by the client, the server answered " + " ".join(codes)

    async def run(self) -> list[Step]:
        try:
            if not await self.step("connect", self.connect):
                for name in ("heartbeat", "join echo", "echo round trip", "presence", "shout", "leave",
                             "fault disconnect", "reconnect+rejoin", "close"):
                    self.steps.append(Step(name, SKIP, None, "not connected"))
                return self.steps
            await self.step("heartbeat", self.heartbeat, ("A",))
            joined = await self.step("join echo", self.join_echo, ("A",))
            if joined:
                await self.step("echo round trip", self.echo, ("A",))
            else:
                self.steps.append(Step("echo round trip", SKIP, None, "echo channel not joined"))
            if await self.step("presence", self.presence, ("A",)):
                await self.step("shout", self.shout, ("A", "B"))
                await self.step("leave", self.leave, ("A", "B"))
            else:
                self.steps.append(Step("shout", SKIP, None, "presence step failed"))
                self.steps.append(Step("leave", SKIP, None, "presence step failed"))
            await self.step("fault disconnect", self.fault_disconnect, ("A",))
            await self.step("reconnect+rejoin", self.reconnect)
            await self.step("close", self.close)
            return self.steps
        finally:
            for sock in self.sockets.values():
                sock.abort()


async def run_probe(url: str, *, params: dict[str, str] | None = None, timeout: float = 5.0) -> list[Step]:
    return await Probe(url, params or {}, timeout).run()


# ---- command line -----------------------------------------------------------------------------------------


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("url", help="the socket endpoint, as a phoenix.js app is given it: ws://HOST:PORT/socket")
    parser.add_argument("--token", default=None, help="sent as the `token` connect param (query string)")
    parser.add_argument("--param", action="append", default=[], metavar="KEY=VALUE",
                        help="another connect param (repeatable; shown in the output, unlike --token)")
    parser.add_argument("--json", action="store_true", help="print the result as one JSON object")
    parser.add_argument("--timeout", type=float, default=5.0, help="seconds each wait may take [default 5]")


def format_table(url: str, steps: list[Step]) -> str:
    width = max(len(s.name) for s in steps)
    lines = [f"tornado-phoenix probe {url}", f"  {'step':<{width}}  {'result':<6}  {'ms':>8}  detail"]
    for s in steps:
        ms = f"{s.ms:.1f}" if s.ms is not None else "-"
        lines.append(f"  {s.name:<{width}}  {s.status:<6}  {ms:>8}  {s.detail}")
    counts = {status: sum(1 for s in steps if s.status == status) for status in (OK, FAIL, SKIP)}
    verdict = "ok" if counts[FAIL] == 0 else "FAIL"
    lines.append(f"result: {verdict} ({counts[OK]} ok, {counts[FAIL]} FAIL, {counts[SKIP]} skip)")
    return "\n".join(lines)


def main(args: argparse.Namespace) -> int:
    params: dict[str, str] = {}
    for item in args.param:
        key, sep, value = item.partition("=")
        if not sep or not key:
            print(f"tornado-phoenix probe: --param expects KEY=VALUE, got {item!r}", file=sys.stderr)
            return 2
        params[key] = value
    if args.token is not None:
        params["token"] = args.token
    if args.timeout <= 0:
        print("tornado-phoenix probe: --timeout must be greater than 0", file=sys.stderr)
        return 2
    try:
        probe = Probe(args.url, params, args.timeout)
    except ValueError as exc:
        print(f"tornado-phoenix probe: {exc}", file=sys.stderr)
        return 2
    steps = asyncio.run(probe.run())
    failed = any(s.status == FAIL for s in steps)
    if args.json:
        counts = {status: sum(1 for s in steps if s.status == status) for status in (OK, FAIL, SKIP)}
        print(json.dumps({"url": args.url, "socket_url": probe.shown_url, "ok": not failed,
                          "counts": counts, "steps": [asdict(s) for s in steps]}, indent=2))
    else:
        print(format_table(args.url, steps))
    return 1 if failed else 0
