"""`fault:*` — make the server misbehave once, on demand, exactly as a real Phoenix server or network would.

For testing a client's failure paths (rejoin, reconnect, push timeouts, heartbeat watchdog, back-pressure).
Join any `fault:<name>` topic (reply ok {"faults": [...]}), then push one of these events; each one acts once,
on this join or this socket only (a storm goes to every member of the topic). `jr` is the join's join_ref,
`r` the push's ref.

    crash                      <- [jr, jr, T, "phx_error", {}]        no reply for r; the client rejoins
    close                      <- [jr, r, T, "phx_reply", ok {}]  then [jr, jr, T, "phx_close", {}]  (no rejoin)
    delay {ms}                 <- [jr, r, T, "phx_reply", ok {"delayed_ms": ms}]   after ms (0..30000)
    drop_reply                 nothing: the client's own push timeout fires
    silence {ms}               <- [jr, r, T, "phx_reply", ok {"silent_ms": ms}], then for ms (0..60000) every
                               frame the client sends is dropped unread (heartbeats too) and nothing is sent;
                               the socket stays open (see transport.websocket.PhoenixWebSocketHandler.silence)
    disconnect {code, reason}  <- [jr, r, T, "phx_reply", ok {}], then WebSocket close `code` `reason`
                               (code 1000, 1001, 1011 or 4000..4999; reason at most 123 UTF-8 bytes)
    push_after {ms, event, payload}
                               <- [jr, r, T, "phx_reply", ok {}] now, [jr, null, T, event, payload] after ms
                               (event default "after", not phx_*; payload an object, default {})
    broadcast_storm {count, bytes}
                               <- count x [null, null, T, "storm", {"seq": i, "count": count, "data": "xx.."}]
                               (data is `bytes` ASCII characters), then [jr, r, T, "phx_reply", ok {"sent": count}]
                               (count 1..10000, bytes 0..65536, count * bytes at most 4 MiB)

Bad parameters give an error reply {"reason": "<what is wrong>"}; any other event error {"reason":"unknown
event"}. Every fault triggered logs one line on `tornado_phoenix.fault`.

Bounded per socket and per server (issue 10, defect 13; the numbers are limits.FaultBudget's): at most 100
pending `delay`/`push_after` timers per socket and 10,000 per server; `push_after` payloads at most 64 KiB each,
1 MiB per socket and 16 MiB per server held; one running storm per socket and 4 per server. Over a limit the
push gets an error reply naming it. A storm is sent in slices (`STORM_SLICE_DELIVERIES` frames or
`STORM_SLICE_BYTES` bytes to all members together) with a return to the loop between them, so other sockets
are served meanwhile, and it stops when its channel goes. Every timer is cancelled when its channel goes
(leave, socket closed, duplicate join, crash fault): no fault outlives its socket.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from ..logs import esc
from ..protocol import jsoncodec
from .base import Channel, NoReply, Reply, Stop, _NoReply, error, ok

__all__ = ["FaultChannel", "FAULTS", "MAX_DELAY_MS", "MAX_SILENCE_MS", "MAX_STORM_COUNT", "MAX_STORM_BYTES"]

log = logging.getLogger("tornado_phoenix.fault")

MAX_DELAY_MS = 30_000  # delay and push_after
MAX_SILENCE_MS = 60_000  # one default phoenix.js heartbeat interval + its timeout
MAX_STORM_COUNT = 10_000
MAX_STORM_BYTES = 65_536
MAX_STORM_TOTAL = 4 * 1024 * 1024  # half of TP_MAX_PENDING_BYTES' default (8 MiB)
MAX_PUSH_AFTER_BYTES = 64 * 1024  # one push_after payload, encoded
STORM_SLICE_DELIVERIES = 500  # frames to all members together between two returns to the loop
STORM_SLICE_BYTES = 1024 * 1024
MAX_REASON_BYTES = 123  # a close frame payload is at most 125 bytes, 2 of them the code

_UNKNOWN = {"reason": "unknown event"}

Result = Reply | Stop | _NoReply


class BadParams(ValueError):
    """A fault's parameters are invalid; the message is the error reply's reason."""


def _integer(payload: dict[str, Any], key: str, low: int, high: int, default: int | None = None) -> int:
    value = payload.get(key, default)
    if value is None:
        raise BadParams(f"{key} is required: an integer from {low} to {high}")
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if type(value) is not int or not low <= value <= high:
        raise BadParams(f"{key} must be an integer from {low} to {high}, got {value!r}")
    return value


def _close_code_allowed(code: int) -> bool:
    return code in (1000, 1001, 1011) or 4000 <= code <= 4999


class FaultChannel(Channel):
    def join(self, payload: Any) -> Reply:
        self._timers: dict[Any, int] = {}  # pending call_later handle -> payload bytes it holds
        self._storming = False
        return ok({"faults": list(FAULTS)})

    def handle_leave(self, reason: str) -> None:
        self._cancel_all()

    @property
    def _budget(self) -> Any:
        return self.socket.endpoint.fault_budget

    def _later(self, ms: int, held: int, callback: Callable[[], None]) -> None:
        """A bounded timer: counted per socket and per server until it fires or its channel goes."""
        refused = self._budget.acquire_timer(self.socket, held)
        if refused is not None:
            raise BadParams(refused)
        handle: Any = None

        def fire() -> None:
            if self._timers.pop(handle, None) is not None:  # not already given back by _cancel_all
                self._budget.release_timer(self.socket, held)
            self.socket.run_guarded(self, callback, in_order=False)

        handle = self.socket.call_later(ms / 1000, fire)
        self._timers[handle] = held

    def _cancel_all(self) -> None:
        timers, self._timers = self._timers, {}
        for handle, held in timers.items():
            self.socket.cancel_later(handle)
            self._budget.release_timer(self.socket, held)
        self._storming = False  # a running storm sees this and stops (and gives back its slot)

    def handle_in(self, event: str, payload: Any) -> Result:
        handler = _HANDLERS.get(event) if type(event) is str else None
        if handler is None:
            return error(_UNKNOWN)
        if payload is None:
            payload = {}
        if not isinstance(payload, dict):
            return self._refuse(event, "payload must be a JSON object")
        try:
            return handler(self, payload)
        except BadParams as exc:
            return self._refuse(event, str(exc))

    # ---- the faults -----------------------------------------------------------------------------------

    def _crash(self, payload: dict[str, Any]) -> Result:
        self._log("crash", "phx_error, no reply")
        self._cancel_all()  # a crashed channel gets no handle_leave; its timers go with it
        self.socket._crash(self, "fault injected: crash")  # the socket's own crash path: phx_error, presence leave
        return NoReply

    def _close(self, payload: dict[str, Any]) -> Result:
        self._log("close", "reply ok, then phx_close")
        return Stop("normal", ok({}))

    def _delay(self, payload: dict[str, Any]) -> Result:
        ms = _integer(payload, "ms", 0, MAX_DELAY_MS)
        ref = self.reply_ref()
        self._later(ms, 0, lambda: self.reply(ref, ok({"delayed_ms": ms})))
        self._log("delay", f"ms={ms}")
        return NoReply

    def _drop_reply(self, payload: dict[str, Any]) -> Result:
        self._log("drop_reply", "no reply")
        return NoReply

    def _silence(self, payload: dict[str, Any]) -> Result:
        ms = _integer(payload, "ms", 0, MAX_SILENCE_MS)
        silence = getattr(self.socket.transport, "silence", None)
        if silence is None:
            raise BadParams("this transport cannot be silenced")
        self._log("silence", f"ms={ms}")
        self.reply(self.reply_ref(), ok({"silent_ms": ms}))  # before the silence starts, or it would be lost
        silence(ms / 1000)
        return NoReply

    def _disconnect(self, payload: dict[str, Any]) -> Result:
        code = payload.get("code", 1000)
        if type(code) is not int or not _close_code_allowed(code):
            raise BadParams(f"code must be 1000, 1001, 1011 or 4000..4999, got {code!r}")
        reason = payload.get("reason", "")
        if not isinstance(reason, str):
            raise BadParams(f"reason must be a string, got {reason!r}")
        if len(reason.encode("utf-8")) > MAX_REASON_BYTES:
            raise BadParams(f"reason must be at most {MAX_REASON_BYTES} UTF-8 bytes (a close frame's limit)")
        shutdown = getattr(self.socket.transport, "shutdown", None)
        if shutdown is None:
            raise BadParams("this transport cannot be disconnected")
        self._log("disconnect", f"code={code} reason={reason!r}")
        self.reply(self.reply_ref(), ok({}))
        shutdown(code, reason)
        return NoReply

    def _push_after(self, payload: dict[str, Any]) -> Result:
        ms = _integer(payload, "ms", 0, MAX_DELAY_MS)
        event = payload.get("event", "after")
        if not isinstance(event, str) or not event or event.startswith("phx_"):
            raise BadParams(f"event must be a non-empty string not starting with phx_, got {event!r}")
        body = payload.get("payload", {})
        if not isinstance(body, dict):
            raise BadParams("payload must be a JSON object")
        held = len(jsoncodec.dumps(body))
        if held > MAX_PUSH_AFTER_BYTES:
            raise BadParams(f"payload must be at most {MAX_PUSH_AFTER_BYTES} bytes as JSON, got {held}")
        self._later(ms, held, lambda: self.push(event, body))
        self._log("push_after", f"ms={ms} event={event}")
        return ok({})

    def _broadcast_storm(self, payload: dict[str, Any]) -> Result:
        count = _integer(payload, "count", 1, MAX_STORM_COUNT)
        size = _integer(payload, "bytes", 0, MAX_STORM_BYTES, default=0)
        if count * size > MAX_STORM_TOTAL:
            raise BadParams(f"count * bytes must be at most {MAX_STORM_TOTAL}, got {count * size}")
        refused = self._budget.acquire_storm(self.socket)
        if refused is not None:
            raise BadParams(refused)
        self._log("broadcast_storm", f"count={count} bytes={size}")
        ref = self.reply_ref()
        self._storming = True
        self._storm_slice(ref, count, "x" * size, 0)
        return NoReply

    def _storm_slice(self, ref: Any, count: int, data: str, start: int) -> None:
        """Send one slice of the storm, then come back through the loop for the next (or reply at the end)."""
        if not self._storming or not self.alive:
            self._budget.release_storm(self.socket)
            return
        members = max(1, self.pubsub.subscriber_count(self.topic))
        per_slice = max(1, min(STORM_SLICE_DELIVERIES // members, STORM_SLICE_BYTES // ((len(data) + 64) * members)))
        end = min(count, start + per_slice)
        try:
            for seq in range(start, end):
                self.broadcast("storm", {"seq": seq, "count": count, "data": data})
        except Exception:
            self._storming = False
            self._budget.release_storm(self.socket)
            log.exception("conn=%s broadcast_storm raised topic=%s", self.socket.id, self.topic)
            self.socket._crash(self, "broadcast_storm raised")
            return
        if end < count:
            self.socket.call_later(0, lambda: self._storm_slice(ref, count, data, end))
            return
        self._storming = False
        self._budget.release_storm(self.socket)
        self.reply(ref, ok({"sent": count}))

    # ---- helpers --------------------------------------------------------------------------------------

    def _log(self, fault: str, detail: str) -> None:
        log.info("conn=%s fault=%s topic=%s join_ref=%s %s", self.socket.id, fault, esc(self.topic), esc(self.join_ref),
                 detail)

    def _refuse(self, fault: str, reason: str) -> Reply:
        log.info("conn=%s fault=%s topic=%s refused: %s", self.socket.id, fault, esc(self.topic), esc(reason))
        return error({"reason": reason})


_HANDLERS: dict[str, Callable[[FaultChannel, dict[str, Any]], Result]] = {
    "crash": FaultChannel._crash,
    "close": FaultChannel._close,
    "delay": FaultChannel._delay,
    "drop_reply": FaultChannel._drop_reply,
    "silence": FaultChannel._silence,
    "disconnect": FaultChannel._disconnect,
    "push_after": FaultChannel._push_after,
    "broadcast_storm": FaultChannel._broadcast_storm,
}

FAULTS: tuple[str, ...] = tuple(_HANDLERS)
