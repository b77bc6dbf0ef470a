"""Settings: one frozen dataclass; every field is also a `TP_*` environment variable (CLI flags win).

This is the only module that reads the environment.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
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
    Option("max_pending_bytes_total", "TP_MAX_PENDING_BYTES_TOTAL", 64 * 1024 * 1024, int,
           "unsent bytes all clients together may queue; over it the largest queues are closed with 1011"),
    Option("max_messages_per_second", "TP_MAX_MESSAGES_PER_SECOND", 1000.0, float,
           "messages one socket may send per second, on average (close 1008 when over)"),
    Option("message_burst", "TP_MESSAGE_BURST", 2000, int,
           "messages one socket may send in a burst above TP_MAX_MESSAGES_PER_SECOND"),
    Option("check_origin", "TP_CHECK_ORIGIN", "", str,
           "comma-separated allowed Origin hosts (empty: allow all, like check_origin: false)"),
    Option("shutdown_timeout", "TP_SHUTDOWN_TIMEOUT", 4.0, float, "seconds to close sockets on SIGTERM"),
    Option("faults", "TP_FAULTS", True, bool, "route the fault:* channel (on/off)"),
    Option("pubsub", "TP_PUBSUB", "local", str,
           "local (one process) or redis://[:password@]host:port/db to share broadcasts and presence"),
    Option("presence_down_after", "TP_PRESENCE_DOWN_AFTER", 30.0, float,
           "seconds of silence after which another node's presences leave"),
    Option("workers", "TP_WORKERS", 1, int, "processes serving the port (0: one per core; >1 needs TP_PUBSUB=redis)"),
    Option("log_format", "TP_LOG_FORMAT", "text", str, "text, or json (one object per line)"),
    Option("log_protocol_errors", "TP_LOG_PROTOCOL_ERRORS", "short", str,
           "short (one line, rate-limited), verbose (longer excerpt, tracebacks) or off"),
    Option("header_timeout", "TP_HEADER_TIMEOUT", 10.0, float,
           "seconds a connection may take to send its complete request headers"),
    Option("max_connections", "TP_MAX_CONNECTIONS", 10000, int,
           "open WebSocket connections in total (HTTP 503 beyond); 0 for no limit"),
    Option("max_connections_per_ip", "TP_MAX_CONNECTIONS_PER_IP", 1000, int,
           "open WebSocket connections per client address (HTTP 429 beyond); 0 for no limit"),
    Option("yjs_store", "TP_YJS_STORE", "sqlite:///data/yjs.sqlite3", str,
           "where room:* documents are kept: sqlite:///relative.db, sqlite:////absolute.db or memory"),
    Option("yjs_room_ttl", "TP_YJS_ROOM_TTL", 60.0, float,
           "seconds a room:* document stays loaded after its last member left"),
    Option("yjs_max_update_bytes", "TP_YJS_MAX_UPDATE_BYTES", 1024 * 1024, int,
           "largest room:* update or y-protocols message in bytes (error 'update too large')"),
    Option("yjs_max_doc_bytes", "TP_YJS_MAX_DOC_BYTES", 64 * 1024 * 1024, int,
           "largest room:* document in bytes (error 'document too large')"),
    Option("auth", "TP_AUTH", "none", str, "connect authentication: none, token or jwt"),
    Option("auth_tokens", "TP_AUTH_TOKENS", "", str, "TP_AUTH=token: comma-separated accepted tokens"),
    Option("auth_tokens_file", "TP_AUTH_TOKENS_FILE", "", str, "TP_AUTH=token: file with one token a line"),
    Option("auth_param", "TP_AUTH_PARAM", "token", str, "connect param that carries the token"),
    Option("jwt_secret", "TP_JWT_SECRET", "", str, "TP_AUTH=jwt: HMAC secret for HS256/384/512"),
    Option("jwt_public_key_file", "TP_JWT_PUBLIC_KEY_FILE", "", str,
           "TP_AUTH=jwt: PEM public key for RS*/PS*/ES*/EdDSA"),
    Option("jwt_algorithms", "TP_JWT_ALGORITHMS", "HS256", str, "accepted JWT algorithms, comma-separated"),
    Option("jwt_audience", "TP_JWT_AUDIENCE", "", str, "required JWT aud (empty: aud not checked)"),
    Option("jwt_issuer", "TP_JWT_ISSUER", "", str, "required JWT iss (empty: iss not checked)"),
    Option("jwt_leeway", "TP_JWT_LEEWAY", 0.0, float, "seconds of clock skew allowed on exp/nbf/iat"),
    Option("jwt_enforce_expiry", "TP_JWT_ENFORCE_EXPIRY", True, bool,
           "close a socket with 4001 when its JWT expires (on/off)"),
    Option("faults_token", "TP_FAULTS_TOKEN", "", str,
           "with auth on: connect param faults_token equal to this unlocks fault:*"),
    Option("metrics", "TP_METRICS", True, bool, "serve /metrics in Prometheus format (on/off)"),
    Option("metrics_bind", "TP_METRICS_BIND", "", str,
           "host:port for a separate /metrics listener (empty: on the main port)"),
    # Driving it from your backend (api.py, backend.py, channels/backend.py)
    Option("api_secret", "TP_API_SECRET", "", str,
           "shared secret: turns on /api/* (Authorization: Bearer) and signs every callback (empty: off)"),
    Option("api_bind", "TP_API_BIND", "", str,
           "serve /api/* only on this HOST:PORT (e.g. 127.0.0.1:4100) instead of the main port"),
    Option("connect_url", "TP_CONNECT_URL", "", str, "POST each connect here; the answer allows it (empty: off)"),
    Option("join_topics", "TP_JOIN_TOPICS", "", str,
           "comma-separated topic patterns (chat:*,support:*) routed to the backend-driven channel"),
    Option("join_url", "TP_JOIN_URL", "", str, "POST each join of TP_JOIN_TOPICS here; the answer is the join reply"),
    Option("event_url", "TP_EVENT_URL", "", str, "POST each push to TP_JOIN_TOPICS here; the answer replies/broadcasts"),
    Option("event_joins", "TP_EVENT_JOINS", False, bool, "also report joins and leaves to TP_EVENT_URL (on/off)"),
    Option("callback_timeout", "TP_CALLBACK_TIMEOUT", 5.0, float, "seconds to wait for the backend's answer"),
    Option("callback_concurrency", "TP_CALLBACK_CONCURRENCY", 100, int,
           "callbacks in flight at once; more wait their turn (within TP_CALLBACK_TIMEOUT)"),
    Option("websocket", "TP_WEBSOCKET", True, bool,
           "serve <path>/websocket (off: upgrades get 403, clients must use long-poll)"),
    Option("longpoll", "TP_LONGPOLL", True, bool, "serve <path>/longpoll, phoenix.js's LongPoll transport (on/off)"),
    Option("longpoll_window", "TP_LONGPOLL_WINDOW", 10.0, float,
           "seconds a long-poll GET waits for messages (204 after); a session ends after 1.5x without a poll"),
    Option("secret_key_base", "TP_SECRET_KEY_BASE", "", str,
           "secret that signs long-poll session tokens (empty: a random one per start; set it for several workers)"),
    Option("supabase", "TP_SUPABASE", True, bool, "serve the supabase realtime dialect at /realtime/v1 (on/off)"),
    Option("supabase_apikeys", "TP_SUPABASE_APIKEYS", "", str,
           "comma-separated apikey values /realtime/v1 accepts (empty: any non-empty apikey)"),
    Option("supabase_jwt_secret", "TP_SUPABASE_JWT_SECRET", "", str,
           "HS256 secret that realtime:* access_tokens must be signed with (empty: tokens are not checked)"),
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
    max_pending_bytes_total: int = 64 * 1024 * 1024
    max_messages_per_second: float = 1000.0
    message_burst: int = 2000
    check_origin: str = ""
    shutdown_timeout: float = 4.0
    faults: bool = True
    pubsub: str = "local"
    presence_down_after: float = 30.0
    workers: int = 1
    log_format: str = "text"
    log_protocol_errors: str = "short"
    header_timeout: float = 10.0
    max_connections: int = 10000
    max_connections_per_ip: int = 1000
    yjs_store: str = "sqlite:///data/yjs.sqlite3"
    yjs_room_ttl: float = 60.0
    yjs_max_update_bytes: int = 1024 * 1024
    yjs_max_doc_bytes: int = 64 * 1024 * 1024
    auth: str = "none"
    auth_tokens: str = field(default="", repr=False)  # a secret: never in logs or reprs
    auth_tokens_file: str = ""
    auth_param: str = "token"
    jwt_secret: str = field(default="", repr=False)  # a secret: never in logs or reprs
    jwt_public_key_file: str = ""
    jwt_algorithms: str = "HS256"
    jwt_audience: str = ""
    jwt_issuer: str = ""
    jwt_leeway: float = 0.0
    jwt_enforce_expiry: bool = True
    faults_token: str = field(default="", repr=False)  # a secret: never in logs or reprs
    metrics: bool = True
    metrics_bind: str = ""
    api_secret: str = field(default="", repr=False)  # never in logs or reprs
    api_bind: str = ""
    connect_url: str = ""
    join_topics: str = ""
    join_url: str = ""
    event_url: str = ""
    event_joins: bool = False
    callback_timeout: float = 5.0
    callback_concurrency: int = 100
    websocket: bool = True
    longpoll: bool = True
    longpoll_window: float = 10.0
    secret_key_base: str = ""
    supabase: bool = True
    supabase_apikeys: str = ""
    supabase_jwt_secret: str = ""

    def __post_init__(self) -> None:
        if not 0 <= self.port <= 65535:
            raise SettingsError(f"TP_PORT/--port={self.port}: must be 0..65535")
        if self.log_level.lower() not in ("debug", "info", "warning", "error"):
            raise SettingsError(f"TP_LOG_LEVEL/--log-level={self.log_level!r}: use debug, info, warning or error")
        for name in ("idle_timeout", "max_frame_size", "max_channels", "max_pending_bytes", "callback_timeout",
                     "callback_concurrency", "longpoll_window", "max_pending_bytes_total", "max_messages_per_second",
                     "message_burst"):
            if getattr(self, name) <= 0:
                raise SettingsError(f"TP_{name.upper()}/--{name.replace('_', '-')}: must be greater than 0")
        if self.pubsub != "local" and not self.pubsub.startswith(("redis://", "rediss://")):
            raise SettingsError(f"TP_PUBSUB/--pubsub={self.pubsub!r}: use local or redis://[:password@]host:port/db")
        if self.presence_down_after <= 0:
            raise SettingsError("TP_PRESENCE_DOWN_AFTER/--presence-down-after: must be greater than 0")
        if self.workers < 0:
            raise SettingsError(f"TP_WORKERS/--workers={self.workers}: must be 0 (one per core) or more")
        if self.worker_count() > 1 and self.pubsub == "local":
            raise SettingsError(
                f"TP_WORKERS/--workers={self.workers} runs {self.worker_count()} processes, which need shared "
                "pub/sub: set TP_PUBSUB/--pubsub=redis://host:port/0 (TP_PUBSUB=local serves one process)")
        if self.worker_count() > 1 and self.port == 0:
            raise SettingsError("TP_PORT/--port=0 with several workers: give a fixed port they can share")
        if self.log_format not in ("text", "json"):
            raise SettingsError(f"TP_LOG_FORMAT/--log-format={self.log_format!r}: use text or json")
        if self.log_protocol_errors not in ("short", "verbose", "off"):
            raise SettingsError(
                f"TP_LOG_PROTOCOL_ERRORS/--log-protocol-errors={self.log_protocol_errors!r}: use short, verbose or off"
            )
        if self.header_timeout <= 0:
            raise SettingsError("TP_HEADER_TIMEOUT/--header-timeout: must be greater than 0")
        for name in ("max_connections", "max_connections_per_ip"):
            if getattr(self, name) < 0:
                raise SettingsError(f"TP_{name.upper()}/--{name.replace('_', '-')}: must be 0 (no limit) or more")
        for name in ("yjs_max_update_bytes", "yjs_max_doc_bytes"):
            if getattr(self, name) <= 0:
                raise SettingsError(f"TP_{name.upper()}/--{name.replace('_', '-')}: must be greater than 0")
        if self.yjs_room_ttl < 0:
            raise SettingsError("TP_YJS_ROOM_TTL/--yjs-room-ttl: must be 0 or more seconds")
        from .yjs.store import parse_store_url

        try:
            parse_store_url(self.yjs_store)
        except ValueError as exc:
            raise SettingsError(f"TP_YJS_STORE/--yjs-store={exc}") from None
        if self.auth not in ("none", "token", "jwt"):
            raise SettingsError(f"TP_AUTH/--auth={self.auth!r}: use none, token or jwt")
        if self.metrics_bind and not _host_port(self.metrics_bind):
            raise SettingsError(f"TP_METRICS_BIND={self.metrics_bind!r}: expected host:port, e.g. 127.0.0.1:9100")
        # Long-poll tokens minted by one worker must verify on the others: several workers need a shared secret.
        # (`workers` comes with the scale-out settings; until then this is a single process.)
        workers = self.worker_count() if hasattr(self, "worker_count") else getattr(self, "workers", 1)
        if workers > 1 and self.longpoll and not self.secret_key_base:
            raise SettingsError(
                f"TP_WORKERS/--workers runs {workers} processes but TP_SECRET_KEY_BASE is not set: long-poll "
                "session tokens must be signed with one shared secret. Set TP_SECRET_KEY_BASE to the output of "
                "`python -c 'import secrets; print(secrets.token_urlsafe(64))'`, or TP_LONGPOLL=off"
            )
        if not self.socket_path.startswith("/") or self.socket_path.endswith("/"):
            raise SettingsError(f"TP_SOCKET_PATH={self.socket_path!r}: must start with '/' and not end with '/'")
        for name in ("connect_url", "join_url", "event_url"):
            url = getattr(self, name)
            if url and not url.startswith(("http://", "https://")):
                raise SettingsError(f"TP_{name.upper()}={url!r}: must be an http:// or https:// URL")
            if url and not self.api_secret:
                raise SettingsError(f"TP_{name.upper()} is set but TP_API_SECRET is not: callbacks are signed with "
                                    "it so the backend can trust them; set TP_API_SECRET (the same on both sides)")
        if self.api_bind:
            _ = self.api_address  # validates HOST:PORT
            if not self.api_secret:
                raise SettingsError("TP_API_BIND is set but TP_API_SECRET is not: the API is off without a secret")
        for pattern in self.join_topic_patterns:
            if "*" in pattern[:-1]:
                raise SettingsError(f"TP_JOIN_TOPICS: {pattern!r}: '*' is only allowed at the end, as in 'chat:*'")

    @property
    def join_topic_patterns(self) -> list[str]:
        return [part.strip() for part in self.join_topics.split(",") if part.strip()]

    @property
    def api_address(self) -> tuple[str, int] | None:
        """TP_API_BIND as (host, port), or None when the API shares the main port."""
        if not self.api_bind:
            return None
        host, sep, port = self.api_bind.rpartition(":")
        if not sep or not host or not port.isdigit() or not 0 < int(port) <= 65535:
            raise SettingsError(f"TP_API_BIND={self.api_bind!r}: expected HOST:PORT, e.g. 127.0.0.1:4100")
        return host.strip("[]"), int(port)

    @property
    def allowed_apikeys(self) -> frozenset[str]:
        return frozenset(part.strip() for part in self.supabase_apikeys.split(",") if part.strip())

    def worker_count(self) -> int:
        return self.workers if self.workers > 0 else (os.cpu_count() or 1)

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


def _host_port(raw: str) -> tuple[str, int] | None:
    host, sep, port = raw.rpartition(":")
    if not sep or not port.isdigit() or not 0 < int(port) <= 65535:
        return None
    return host.strip("[]") or "0.0.0.0", int(port)


def metrics_address(raw: str) -> tuple[str, int]:
    """TP_METRICS_BIND "host:port" as (host, port); validated in Settings."""
    address = _host_port(raw)
    assert address is not None
    return address


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
