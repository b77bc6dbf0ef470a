"""Upgrade request checks done before Tornado sees the request, with the answers Phoenix/Bandit give.

websock_adapter's UpgradeValidation (RFC 6455 §4.2.1), run by Phoenix after the origin check and connect:

    GET /socket/websocket?vsn=2.0.0 HTTP/1.0 ...        -> 400 "HTTP version HTTP/1.0 unsupported"
    ... Sec-WebSocket-Version: 8                         -> 400 "'sec-websocket-version' header must equal '13', got [\\"8\\"]"
    ... Transfer-Encoding: chunked                       -> 400 (a body on an upgrade request is never read)

Every function here is pure: it gets the request line and headers, and returns a problem or None.
"""

from __future__ import annotations

import json
from urllib.parse import urlsplit

from tornado.httputil import HTTPHeaders

__all__ = ["upgrade_problem", "query_vsn", "origin_host"]


def _values(headers: HTTPHeaders, name: str) -> list[str]:
    return headers.get_list(name)


def _tokens(values: list[str]) -> list[str]:
    return [token.strip().lower() for value in values for token in value.split(",")]


def upgrade_problem(method: str, version: str, headers: HTTPHeaders) -> str | None:
    """websock_adapter's validate_upgrade message for a request that is not a valid upgrade, or None."""
    if version != "HTTP/1.1":
        return f"HTTP version {version} unsupported"
    if method != "GET":
        return f"HTTP method {method} unsupported"
    if not _values(headers, "Host"):
        return "'host' header is absent"
    for header, needle in (("Connection", "upgrade"), ("Upgrade", "websocket")):
        if needle not in _tokens(_values(headers, header)):
            got = json.dumps(_values(headers, header), ensure_ascii=False).replace(", ", ",")
            return f"'{header.lower()}' header must contain '{needle}', got {got}"
    if not _values(headers, "Sec-WebSocket-Key"):
        return "'sec-websocket-key' header is absent"
    versions = [value.lower() for value in _values(headers, "Sec-WebSocket-Version")]
    if versions != ["13"]:
        got = json.dumps(versions, ensure_ascii=False).replace(", ", ",")
        return f"'sec-websocket-version' header must equal '13', got {got}"
    if "Transfer-Encoding" in headers or headers.get("Content-Length", "0").strip() not in ("", "0"):
        return "an upgrade request must not have a body"
    return None


def query_vsn(query_arguments: dict[str, list[bytes]]) -> tuple[bool, str | None]:
    """(ok, vsn): the last `vsn` query value decoded as UTF-8; ok is False when it is not valid UTF-8."""
    values = query_arguments.get("vsn")
    if not values:
        return True, None
    try:
        return True, values[-1].decode("utf-8")
    except UnicodeDecodeError:
        return False, None


def origin_host(origin: str) -> str | None:
    """The lower-cased host of an Origin header, or None when it cannot be parsed (e.g. `http://[::1`)."""
    try:
        return (urlsplit(origin).hostname or "").lower()
    except ValueError:
        return None
