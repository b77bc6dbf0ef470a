"""Signed tokens in Phoenix.Token's shape (Plug.Crypto.MessageVerifier, HS256), for long-poll sessions.

    SFMyNTY.eyJkYXRhIjpbInYxIiwicGh4OmxwOi4uLiJdLCJtYXhfYWdlIjoxMjA5NjAwLCJzaWduZWQiOjE3NjQ1...}.q0Xb...
    ^ base64url("HS256")  ^ base64url(JSON {"data","max_age","signed"})                     ^ base64url(HMAC)

The key is derived from `TP_SECRET_KEY_BASE` and a salt with PBKDF2-HMAC-SHA256 (1000 iterations, 32 bytes),
as Plug.Crypto.KeyGenerator does; the MAC is HMAC-SHA256 over `protected.payload` and is compared in constant
time. The payload is JSON instead of Erlang's term format (only this server reads it). Only the standard
library's hashlib/hmac/secrets are used.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
from typing import Any

__all__ = ["Signer", "random_secret"]

_PROTECTED = b"SFMyNTY"  # base64url("HS256") without padding, Phoenix.Token's first segment
DEFAULT_MAX_AGE = 1_209_600  # Phoenix.Transports.LongPoll's crypto: [max_age: 1_209_600] (two weeks)


def random_secret() -> str:
    """64 random bytes, URL-safe base64: what `mix phx.gen.secret` prints."""
    return secrets.token_urlsafe(64)


def _b64(data: bytes) -> bytes:
    return base64.urlsafe_b64encode(data).rstrip(b"=")


def _unb64(data: str) -> bytes:
    return base64.urlsafe_b64decode(data + "=" * (-len(data) % 4))


class Signer:
    def __init__(self, secret_key_base: str, salt: str) -> None:
        self._key = hashlib.pbkdf2_hmac("sha256", secret_key_base.encode(), salt.encode(), 1000, 32)

    def sign(self, data: Any, *, max_age: int = DEFAULT_MAX_AGE, now: float | None = None) -> str:
        signed = int((time.time() if now is None else now) * 1000)
        payload = _b64(json.dumps({"data": data, "max_age": max_age, "signed": signed},
                                  separators=(",", ":")).encode())
        signing_input = _PROTECTED + b"." + payload
        mac = _b64(hmac.new(self._key, signing_input, hashlib.sha256).digest())
        return (signing_input + b"." + mac).decode()

    def verify(self, token: str, *, now: float | None = None) -> Any | None:
        """The signed data, or None when the token is malformed, forged or older than its max_age."""
        parts = token.split(".")
        if len(parts) != 3 or parts[0] != _PROTECTED.decode():
            return None
        signing_input = f"{parts[0]}.{parts[1]}".encode()
        expected = _b64(hmac.new(self._key, signing_input, hashlib.sha256).digest()).decode()
        if not hmac.compare_digest(expected, parts[2]):
            return None
        try:
            body = json.loads(_unb64(parts[1]))
            signed_ms, max_age = int(body["signed"]), int(body["max_age"])
        except (ValueError, KeyError, TypeError):
            return None
        current = time.time() if now is None else now
        if signed_ms / 1000 + max_age < current:
            return None
        return body.get("data")
