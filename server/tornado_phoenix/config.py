"""Settings: one frozen dataclass; every field is also a `TP_*` environment variable (CLI flags win).

This is the only module that reads the environment.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

__all__ = ["Settings", "SettingsError", "OPTIONS"]


class SettingsError(ValueError):
    """A bad setting; the message names the variable, the bad value and what is expected."""


@dataclass(frozen=True)
class Option:
    name: str
    env: str
    default: Any
    kind: type
    help: str


OPTIONS: tuple[Option, ...] = (
    Option("host", "TP_HOST", "127.0.0.1", str, "address to listen on (0.0.0.0 for all interfaces)"),
    Option("port", "TP_PORT", 4000, int, "TCP port to listen on"),
    Option("socket_path", "TP_SOCKET_PATH", "/socket", str, "socket mount; WebSocket at <path>/websocket"),
    Option("log_level", "TP_LOG_LEVEL", "info", str, "debug, info, warning or error"),
    Option("idle_timeout", "TP_IDLE_TIMEOUT", 60.0, float, "seconds without a frame before close 1002"),
    Option("max_frame_size", "TP_MAX_FRAME_SIZE", 8_000_000, int, "largest message in bytes (close 1009)"),
    Option("max_channels", "TP_MAX_CHANNELS", 100, int, "channels one socket may join"),
    Option("max_pending_bytes", "TP_MAX_PENDING_BYTES", 8 * 1024 * 1024, int,
           "unsent bytes a slow client may queue before it is closed with 1011"),
    Option("max_pending_bytes_total", "TP_MAX_PENDING_BYTES_TOTAL", 96 * 1024 * 1024, int,
           "unsent bytes all clients together may queue; over it the largest queues are closed with 1011"),
    Option("max_messages_per_second", "TP_MAX_MESSAGES_PER_SECOND", 1000.0, float,
           "messages one socket may send per second, on average (close 1008 when over)"),
    Option("message_burst", "TP_MESSAGE_BURST", 2000, int,
           "messages one socket may send in a burst above TP_MAX_MESSAGES_PER_SECOND"),
    Option("check_origin", "TP_CHECK_ORIGIN", "", str,
           "comma-separated allowed Origin hosts (empty: allow all, like check_origin: false)"),
    Option("shutdown_timeout", "TP_SHUTDOWN_TIMEOUT", 4.0, float, "seconds to close sockets on SIGTERM"),
    Option("faults", "TP_FAULTS", True, bool, "route the fault:* channel (on/off)"),
)


@dataclass(frozen=True)
class Settings:
    host: str = "127.0.0.1"
    port: int = 4000
    socket_path: str = "/socket"
    log_level: str = "info"
    idle_timeout: float = 60.0
    max_frame_size: int = 8_000_000
    max_channels: int = 100
    max_pending_bytes: int = 8 * 1024 * 1024
    max_pending_bytes_total: int = 96 * 1024 * 1024
    max_messages_per_second: float = 1000.0
    message_burst: int = 2000
    check_origin: str = ""
    shutdown_timeout: float = 4.0
    faults: bool = True

    def __post_init__(self) -> None:
        if not 0 <= self.port <= 65535:
            raise SettingsError(f"TP_PORT/--port={self.port}: must be 0..65535")
        if self.log_level.lower() not in ("debug", "info", "warning", "error"):
            raise SettingsError(f"TP_LOG_LEVEL/--log-level={self.log_level!r}: use debug, info, warning or error")
        for name in ("idle_timeout", "max_frame_size", "max_channels", "max_pending_bytes",
                     "max_pending_bytes_total", "max_messages_per_second", "message_burst"):
            if getattr(self, name) <= 0:
                raise SettingsError(f"TP_{name.upper()}/--{name.replace('_', '-')}: must be greater than 0")
        if not self.socket_path.startswith("/") or self.socket_path.endswith("/"):
            raise SettingsError(f"TP_SOCKET_PATH={self.socket_path!r}: must start with '/' and not end with '/'")

    @property
    def allowed_origins(self) -> frozenset[str]:
        return frozenset(part.strip().lower() for part in self.check_origin.split(",") if part.strip())

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        """Defaults, then TP_* variables, then explicit overrides (CLI flags that were given)."""
        environ = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for option in OPTIONS:
            raw = environ.get(option.env)
            if raw is not None and raw != "":
                values[option.name] = _convert(option, raw)
        values.update({key: value for key, value in overrides.items() if value is not None})
        known = {field.name for field in fields(cls)}
        return cls(**{key: value for key, value in values.items() if key in known})


_BOOLEANS = {"1": True, "true": True, "on": True, "yes": True, "0": False, "false": False, "off": False, "no": False}


def parse_bool(raw: str) -> bool:
    try:
        return _BOOLEANS[raw.strip().lower()]
    except KeyError:
        raise ValueError(raw) from None


def _convert(option: Option, raw: str) -> Any:
    if option.kind is bool:
        try:
            return parse_bool(raw)
        except ValueError:
            raise SettingsError(f"{option.env}={raw!r}: expected on/off, true/false, 1/0 ({option.help})") from None
    try:
        return option.kind(raw)
    except ValueError:
        raise SettingsError(
            f"{option.env}={raw!r}: expected {option.kind.__name__} ({option.help}); fix or unset the variable"
        ) from None
