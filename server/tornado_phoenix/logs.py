"""Logging: client strings escaped and truncated, text or JSON lines, repeated protocol errors rate-limited.

Every string a client controls (topic, event, join_ref, origin, vsn, a close reason, a frame excerpt) is logged
through `esc()`, so it can neither forge a log line nor fill the disk:

    log.info("conn=%s join topic=%s", conn, esc(topic))
    text: 2026-12-01 10:00:00,000 INFO tornado_phoenix.socket conn=7 join topic='room:1\\n2026-12-01 FAKE'
    json: {"ts":"2026-12-01T10:00:00.000Z","level":"info","logger":"tornado_phoenix.socket","event":"join",
           "conn":7,"topic":"room:1\\n2026-12-01 FAKE","code":null,"reason":null,"msg":"conn=7 join topic=..."}

A plain token (letters, digits and `:_-./@*+,`) is written bare, anything else repr-style in quotes; over 200
characters it is cut with a `…(+N chars)` marker. The JSON fields come from the `key=%s` pairs of the format
string, the event is its first bare word. Lines of the `tornado_phoenix.protocol` logger (what a client did
wrong) and Tornado's own per-request lines are rate-limited per message template: a few per 10 s, then one
`… (and 532 more like this in the last 10 s)` line.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import sys
import time
from typing import Any

__all__ = [
    "esc",
    "Escaped",
    "configure",
    "PROTOCOL_LOGGER",
    "protocol_log",
    "excerpt",
    "verbose_protocol_errors",
    "TextFormatter",
    "JsonFormatter",
    "Throttle",
]

LIMIT = 200  # characters of one client string kept in a log line
PROTOCOL_LOGGER = "tornado_phoenix.protocol"
protocol_log = logging.getLogger(PROTOCOL_LOGGER)

_BARE = re.compile(r"[A-Za-z0-9:_\-./@*+,]+")
# C0/C1 controls, DEL, and the characters str.splitlines() also breaks on.
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")
_verbose = False


def verbose_protocol_errors() -> bool:
    """True with TP_LOG_PROTOCOL_ERRORS=verbose: longer excerpts and tracebacks for protocol errors."""
    return _verbose


class Escaped:
    """A client value, formatted lazily: bare when it is a plain token, else repr-style; truncated."""

    __slots__ = ("value", "limit")

    def __init__(self, value: Any, limit: int = LIMIT) -> None:
        self.value = value
        self.limit = limit

    def raw(self) -> Any:
        """The value for a JSON field: scalars as they are, strings and bytes truncated, the rest repr'd."""
        value = self.value
        if value is None or isinstance(value, (bool, int, float)):
            return value
        if isinstance(value, bytes):
            value = value.decode("utf-8", "backslashreplace")
        elif not isinstance(value, str):
            value = repr(value)
        if len(value) > self.limit:
            return value[: self.limit] + f"…(+{len(value) - self.limit} chars)"
        return value

    def __str__(self) -> str:
        value = self.value
        if value is None or isinstance(value, (bool, int, float)):
            return str(value)
        unit = "bytes" if isinstance(value, bytes) else "chars"
        if isinstance(value, (str, bytes)):
            cut = len(value) - self.limit
            head = value[: self.limit] if cut > 0 else value
            if isinstance(head, str) and _BARE.fullmatch(head):
                text = head
            else:
                text = repr(head)
        else:
            text = repr(value)
            cut = len(text) - self.limit
            text = text[: self.limit] if cut > 0 else text
        if cut > 0:
            text += f"…(+{cut} {unit})"
        return text

    __repr__ = __str__


def esc(value: Any, limit: int = LIMIT) -> Escaped:
    """Wrap a client-controlled value for logging (escaped, truncated to `limit` characters)."""
    return Escaped(value, limit)


def excerpt(data: str | bytes) -> Escaped:
    """The start of a bad frame for a protocol-error line: 40 characters (200 with verbose)."""
    return Escaped(data, LIMIT if _verbose else 40)


FOREIGN_LIMIT = 600  # characters of a message from a library logger (Tornado logs whole request URIs)


def _scrub(text: str) -> str:
    """Escape control characters left in a formatted message (defence for lines we did not write)."""
    if _CONTROL.search(text) is None:
        return text
    return _CONTROL.sub(lambda m: repr(m.group())[1:-1], text)


def _bounded(record: logging.LogRecord, message: str) -> str:
    """Our own lines are bounded by esc(); a library's line (Tornado's `400 GET <uri>`) is cut here."""
    message = _scrub(message)
    if not record.name.startswith("tornado_phoenix") and len(message) > FOREIGN_LIMIT:
        message = message[:FOREIGN_LIMIT] + f"…(+{len(message) - FOREIGN_LIMIT} chars)"
    return message


# ---- structured fields ----------------------------------------------------------------------------------

_CONVERSION = re.compile(r"%(?:\([^)]*\))?[-#0 +]*(?:\*|\d+)?(?:\.(?:\*|\d+))?[hlL]?([diouxXeEfFgGcrsa%])")
_KEY = re.compile(r"(\w+)=$")
_FIRST_WORD = re.compile(r"(?:^|\s)([A-Za-z_][\w-]*)(?=\s|$|:)")
_template_cache: dict[str, tuple[str | None, tuple[str | None, ...]]] = {}


def _template(msg: str) -> tuple[str | None, tuple[str | None, ...]]:
    """(event, key per positional argument) parsed once per format string."""
    cached = _template_cache.get(msg)
    if cached is not None:
        return cached
    keys: list[str | None] = []
    bare = msg
    for match in _CONVERSION.finditer(msg):
        if match.group(1) == "%":
            continue
        key = _KEY.search(msg, 0, match.start())
        keys.append(key.group(1) if key and key.end() == match.start() else None)
    bare = re.sub(r"\S*%\S*", " ", msg)
    bare = re.sub(r"\S+=\S*", " ", bare)
    first = _FIRST_WORD.search(bare)
    result = (first.group(1) if first else None, tuple(keys))
    if len(_template_cache) < 4096:
        _template_cache[msg] = result
    return result


def _json_value(value: Any) -> Any:
    if isinstance(value, Escaped):
        return value.raw()
    if value is None or isinstance(value, (bool, float)):
        return value
    if isinstance(value, int):
        return int(value)  # an IntEnum (CloseCode) as its number
    return _scrub(str(value))[:LIMIT]


class TextFormatter(logging.Formatter):
    """`<time> <LEVEL> <logger> <message>`; control characters escaped, traceback lines indented."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s %(message)s")

    def formatMessage(self, record: logging.LogRecord) -> str:  # noqa: N802 (logging's name)
        record.message = _bounded(record, record.message)
        return super().formatMessage(record)

    def formatException(self, ei: Any) -> str:  # noqa: N802
        return "\n".join("  " + _scrub(line) for line in super().formatException(ei).splitlines())

    def formatStack(self, stack_info: str) -> str:  # noqa: N802
        return "\n".join("  " + _scrub(line) for line in stack_info.splitlines())


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ts, level, logger, event, conn, topic, code, reason, msg (+ other key=value)."""

    def format(self, record: logging.LogRecord) -> str:
        try:
            message = record.getMessage()
        except Exception:  # a bad format string in a library: keep what we have
            message = f"{record.msg} {record.args}"
        out: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "event": None,
            "conn": None,
            "topic": None,
            "code": None,
            "reason": None,
        }
        if isinstance(record.msg, str):
            event, keys = _template(record.msg)
            out["event"] = event
            args = record.args if isinstance(record.args, tuple) else ()
            for key, value in zip(keys, args, strict=False):
                if key is not None and key not in ("ts", "level", "logger", "msg"):
                    out[key] = _json_value(value)
        explicit = getattr(record, "event", None)
        if explicit:
            out["event"] = explicit
        out["msg"] = _bounded(record, message)
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        # ensure_ascii: every non-ASCII character (U+2028 too) is a \\u escape, so a line is always one line.
        return json.dumps(out, ensure_ascii=True, default=str, separators=(",", ":"))


# ---- rate limiting --------------------------------------------------------------------------------------

THROTTLED_LOGGERS = (PROTOCOL_LOGGER, "tornado.general", "tornado.access", "tornado.application",
                     "tornado_phoenix.limits")


def _throttle_key(record: logging.LogRecord) -> tuple[Any, ...]:
    """What makes two lines "the same": logger, format string and the code/status arguments. Not the other
    arguments: a client could vary a reason or an excerpt forever to get past the limit."""
    msg = record.msg
    if not isinstance(msg, str) or not isinstance(record.args, tuple):
        return (record.name, str(msg))
    _event, keys = _template(msg)
    picked = tuple(value for key, value in zip(keys, record.args, strict=False) if key in ("code", "status"))
    return (record.name, msg, *picked)


class Throttle(logging.Filter):
    """Let `burst` records per message template through every `window` seconds; count the rest and log one
    summary line when the window ends: `<last message> (and N more like this in the last 10 s)`."""

    def __init__(self, window: float = 10.0, burst: int = 5, loggers: tuple[str, ...] = THROTTLED_LOGGERS) -> None:
        super().__init__()
        self.window = window
        self.burst = burst
        self.loggers = loggers
        self._windows: dict[tuple[Any, ...], list[Any]] = {}  # key -> [start, passed, suppressed, last record]
        self._timer: Any = None
        self.suppressed_total = 0

    def _throttled(self, record: logging.LogRecord) -> bool:
        if getattr(record, "tp_summary", False):
            return False
        name = record.name
        return any(name == prefix or name.startswith(prefix + ".") for prefix in self.loggers)

    def filter(self, record: logging.LogRecord) -> bool:
        if not self._throttled(record):
            return True
        now = time.monotonic()
        self.flush(now)
        key = _throttle_key(record)
        state = self._windows.get(key)
        if state is None:
            self._windows[key] = [now, 1, 0, None]
            return True
        if state[1] < self.burst:
            state[1] += 1
            return True
        state[2] += 1
        state[3] = record
        self.suppressed_total += 1
        self._schedule(state[0] + self.window - now)
        return False

    def _schedule(self, delay: float) -> None:
        if self._timer is not None:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return  # no loop: the summary goes out with the next record after the window
        self._timer = loop.call_later(max(delay, 0.01), self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        self.flush(time.monotonic())
        if any(state[2] for state in self._windows.values()):
            start = min(state[0] for state in self._windows.values() if state[2])
            self._schedule(start + self.window - time.monotonic())

    def flush(self, now: float) -> None:
        """End the windows that are over, logging one summary line for each that suppressed records."""
        expired = [key for key, state in self._windows.items() if now - state[0] >= self.window]
        for key in expired:
            _start, _passed, suppressed, last = self._windows.pop(key)
            if suppressed and last is not None:
                summary = logging.makeLogRecord(dict(last.__dict__))
                summary.tp_summary = True
                summary.msg = str(last.msg) + f" (and {suppressed} more like this in the last {self.window:g} s)"
                summary.exc_info = None
                summary.exc_text = None
                logging.getLogger(last.name).handle(summary)


# ---- set-up ------------------------------------------------------------------------------------------------

_throttle: Throttle | None = None


def configure(level: str = "info", fmt: str = "text", protocol_errors: str = "short",
              stream: Any = None) -> Throttle:
    """Root logging for the server: one handler on stdout, the chosen format, the throttle, the levels."""
    global _verbose, _throttle
    handler = logging.StreamHandler(stream or sys.stdout)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    _throttle = Throttle()
    handler.addFilter(_throttle)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # Tornado's access log is one line per HTTP request; ours already says what happened.
    logging.getLogger("tornado.access").setLevel(logging.ERROR)
    _verbose = protocol_errors == "verbose"
    quiet = logging.CRITICAL + 1
    protocol_log.setLevel(quiet if protocol_errors == "off" else logging.NOTSET)
    # Tornado's "Malformed HTTP message" lines are protocol errors too.
    logging.getLogger("tornado.general").setLevel(quiet if protocol_errors == "off" else logging.NOTSET)
    return _throttle
