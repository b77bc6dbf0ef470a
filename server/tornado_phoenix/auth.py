"""Connect authentication (`TP_AUTH=none|token|jwt`) and join authorization, Phoenix's UserSocket.connect/3.

The token comes from the connect param `token` (TP_AUTH_PARAM) or, for phoenix.js 1.8's `authToken`, from the
`Sec-WebSocket-Protocol` entry `base64url.bearer.phx.<base64 of the token, no padding>` offered next to
`phoenix` (the server then answers the subprotocol `phoenix`). A refusal is HTTP 403 with an empty body, as
Phoenix answers `:error`; the log line names the reason and never the token.

    GET /socket/websocket?vsn=2.0.0&token=eyJhbGciOiJIUzI1NiJ9...          -> 101, assigns = the JWT claims
    GET /socket/websocket?vsn=2.0.0                                         -> 403  "reason=missing token"
    Sec-WebSocket-Protocol: phoenix, base64url.bearer.phx.ZXlKaGJHY2l...     -> 101, Sec-WebSocket-Protocol: phoenix

JWT rules: `exp` is required and enforced (a token without one is refused: "missing exp"); `aud`/`iss` are
checked when TP_JWT_AUDIENCE/TP_JWT_ISSUER are set; the algorithm must be in TP_JWT_ALGORITHMS ("none" is never
accepted). The claims become the socket's assigns; `sub` (else `user_id`) is also assigned as `user_id`, the
presence key of `test:*`. A `channels` claim (list of topic patterns, fnmatch-style: `room:*`) limits joins;
`fault:*` needs a `faults: true` claim or the connect param `faults_token` equal to TP_FAULTS_TOKEN. A refused
join replies `{"reason":"unauthorized"}`.
"""

from __future__ import annotations

import base64
import binascii
import fnmatch
import hmac
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt

from .config import Settings, SettingsError

__all__ = ["Authenticator", "AuthError", "Refused", "AUTH_TOKEN_PREFIX", "bearer_from_protocols",
           "issue_token", "EXPIRES_AT"]

log = logging.getLogger("tornado_phoenix.auth")

AUTH_TOKEN_PREFIX = "base64url.bearer.phx."  # phoenix.js 1.8 AUTH_TOKEN_PREFIX
EXPIRES_AT = "__tp_expires_at"  # assigns key (float unix time) the transport uses to close at expiry
UNAUTHORIZED = {"reason": "unauthorized"}

_HMAC = ("HS256", "HS384", "HS512")
_PUBLIC = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES256K", "ES384", "ES512", "EdDSA")


class AuthError(SettingsError):
    """The auth settings cannot work (the server refuses to start); the message says what to fix."""


@dataclass(frozen=True, slots=True)
class Refused:
    """A refused connect: `reason` is short and safe to log (never contains the token)."""

    reason: str


def bearer_from_protocols(header: str | None) -> str | None:
    """The token phoenix.js 1.8 puts in Sec-WebSocket-Protocol (`btoa(token)` without `=`), or None."""
    if not header:
        return None
    for entry in header.split(","):
        entry = entry.strip()
        if entry.startswith(AUTH_TOKEN_PREFIX):
            encoded = entry[len(AUTH_TOKEN_PREFIX):].replace("-", "+").replace("_", "/")
            try:
                return base64.b64decode(encoded + "=" * (-len(encoded) % 4), validate=True).decode("utf-8")
            except (binascii.Error, UnicodeDecodeError, ValueError):
                return ""  # present but undecodable: refused as a bad token, not as a missing one
    return None


# The reason a refused token is logged with; first match wins (several errors subclass DecodeError).
_JWT_REASONS: tuple[tuple[type[jwt.PyJWTError], str], ...] = (
    (jwt.ExpiredSignatureError, "expired"),
    (jwt.InvalidAudienceError, "wrong audience"),
    (jwt.InvalidIssuerError, "wrong issuer"),
    (jwt.ImmatureSignatureError, "not yet valid"),
    (jwt.InvalidSignatureError, "bad signature"),
    (jwt.InvalidAlgorithmError, "algorithm not allowed"),
    (jwt.DecodeError, "malformed token"),
)


def _jwt_reason(exc: jwt.PyJWTError) -> str:
    if isinstance(exc, jwt.MissingRequiredClaimError):
        return f"missing {exc.claim}"
    return next((reason for kind, reason in _JWT_REASONS if isinstance(exc, kind)), "invalid token")


class Authenticator:
    """Built once from Settings (raises AuthError on a configuration that cannot work)."""

    def __init__(self, settings: Settings) -> None:
        self.mode = settings.auth
        self.param = settings.auth_param
        self.enforce_expiry = settings.jwt_enforce_expiry
        self._faults_token = settings.faults_token.encode()
        self._tokens: tuple[bytes, ...] = ()
        self._key: Any = None
        self._algorithms: list[str] = []
        self._options: dict[str, Any] = {}
        if self.mode == "token":
            self._tokens = self._load_tokens(settings)
        elif self.mode == "jwt":
            self._configure_jwt(settings)

    @property
    def enabled(self) -> bool:
        return self.mode != "none"

    # ---- configuration --------------------------------------------------------------------------------

    @staticmethod
    def _load_tokens(settings: Settings) -> tuple[bytes, ...]:
        tokens = [t.strip() for t in settings.auth_tokens.split(",") if t.strip()]
        if settings.auth_tokens_file:
            try:
                text = Path(settings.auth_tokens_file).read_text()
            except OSError as exc:
                raise AuthError(f"TP_AUTH_TOKENS_FILE={settings.auth_tokens_file!r}: cannot read it "
                                f"({exc.strerror or exc})") from None
            tokens += [line.strip() for line in text.splitlines() if line.strip() and not line.startswith("#")]
        if not tokens:
            raise AuthError("TP_AUTH=token needs TP_AUTH_TOKENS (comma-separated) or TP_AUTH_TOKENS_FILE")
        return tuple(t.encode() for t in tokens)

    def _configure_jwt(self, settings: Settings) -> None:
        algorithms = [a.strip() for a in settings.jwt_algorithms.split(",") if a.strip()]
        if not algorithms:
            raise AuthError("TP_JWT_ALGORITHMS is empty: name at least one, e.g. HS256 or ES256")
        for name in algorithms:
            if name.lower() == "none":
                raise AuthError("TP_JWT_ALGORITHMS must not contain 'none' (unsigned tokens are never accepted)")
            if name not in _HMAC + _PUBLIC:
                raise AuthError(f"TP_JWT_ALGORITHMS: unknown algorithm {name!r} (use {', '.join(_HMAC + _PUBLIC)})")
        hmac_algs = [a for a in algorithms if a in _HMAC]
        if hmac_algs and len(hmac_algs) != len(algorithms):
            raise AuthError("TP_JWT_ALGORITHMS mixes HS* with public-key algorithms: use one kind")
        if hmac_algs:
            if settings.jwt_public_key_file:
                raise AuthError(f"TP_JWT_ALGORITHMS={','.join(algorithms)} is HMAC but TP_JWT_PUBLIC_KEY_FILE is "
                                "set: use TP_JWT_SECRET for HS*, or an RS*/ES*/EdDSA algorithm with the key file")
            if not settings.jwt_secret:
                raise AuthError(f"TP_AUTH=jwt with {','.join(algorithms)} needs TP_JWT_SECRET")
            self._key = settings.jwt_secret
        else:
            if settings.jwt_secret:
                raise AuthError(f"TP_JWT_ALGORITHMS={','.join(algorithms)} verifies with a public key, but "
                                "TP_JWT_SECRET is set: use TP_JWT_PUBLIC_KEY_FILE (or an HS* algorithm)")
            if not settings.jwt_public_key_file:
                raise AuthError(f"TP_AUTH=jwt with {','.join(algorithms)} needs TP_JWT_PUBLIC_KEY_FILE (PEM)")
            try:
                pem = Path(settings.jwt_public_key_file).read_bytes()
            except OSError as exc:
                raise AuthError(f"TP_JWT_PUBLIC_KEY_FILE={settings.jwt_public_key_file!r}: cannot read it "
                                f"({exc.strerror or exc})") from None
            from cryptography.hazmat.primitives.serialization import load_pem_public_key

            try:
                self._key = load_pem_public_key(pem)
            except ValueError:
                raise AuthError(f"TP_JWT_PUBLIC_KEY_FILE={settings.jwt_public_key_file!r} is not a PEM public "
                                "key (a private key or certificate will not do)") from None
            for name in algorithms:  # an ES256 key with RS256 configured would refuse every token: say so now
                try:
                    jwt.get_algorithm_by_name(name).prepare_key(self._key)
                except Exception:
                    raise AuthError(f"TP_JWT_PUBLIC_KEY_FILE holds a {type(self._key).__name__}, which cannot "
                                    f"verify {name}: fix TP_JWT_ALGORITHMS or the key") from None
        self._algorithms = algorithms
        self._options = {
            "algorithms": algorithms,
            "leeway": settings.jwt_leeway,
            "options": {"require": ["exp"]},
        }
        if settings.jwt_audience:
            self._options["audience"] = settings.jwt_audience
            self._options["options"]["require"].append("aud")
        if settings.jwt_issuer:
            self._options["issuer"] = settings.jwt_issuer
            self._options["options"]["require"].append("iss")

    # ---- connect --------------------------------------------------------------------------------------

    def connect(
        self,
        params: dict[str, str],
        protocols: str | None,
        hook: Callable[[dict[str, Any]], dict[str, Any] | None],
    ) -> dict[str, Any] | Refused:
        """The handshake's one call: the socket's assigns, or why it is refused (HTTP 403)."""
        assigns: dict[str, Any] = {}
        if self.mode != "none":
            token = bearer_from_protocols(protocols)
            if token == "":
                return Refused("malformed token")
            if token is None:
                token = params.get(self.param)
            if not token:
                return Refused("missing token")
            outcome = self.verify(token)
            if isinstance(outcome, Refused):
                return outcome
            assigns = outcome
            faults_token = params.get("faults_token")
            if faults_token and self._faults_token and hmac.compare_digest(faults_token.encode(), self._faults_token):
                assigns["faults"] = True
            # the hook (make_app(connect=...)) never sees the secrets
            params = {k: v for k, v in params.items() if k != self.param and k != "faults_token"}
        extra = hook(params)
        if extra is None:
            return Refused("connect refused")
        assigns.update(extra)
        return assigns

    def verify(self, token: str) -> dict[str, Any] | Refused:
        if self.mode == "token":
            presented = token.encode()
            matched = False
            for known in self._tokens:  # every entry compared: the time does not say which one matched
                matched |= hmac.compare_digest(presented, known)
            return {} if matched else Refused("unknown token")
        try:
            claims = jwt.decode(token, self._key, **self._options)
        except jwt.PyJWTError as exc:
            return Refused(_jwt_reason(exc))
        subject = claims.get("sub", claims.get("user_id"))
        if subject is not None:
            claims["user_id"] = str(subject)
        channels = claims.get("channels")
        if channels is not None and not (isinstance(channels, list) and all(isinstance(c, str) for c in channels)):
            return Refused("bad channels claim (a list of topic patterns)")
        if self.enforce_expiry:
            claims[EXPIRES_AT] = float(claims["exp"]) + self._options["leeway"]  # the same leeway as at connect
        return claims

    # ---- join -----------------------------------------------------------------------------------------

    def may_join(self, assigns: Mapping[str, Any], topic: str) -> bool:
        """With auth on: the `channels` claim (when present) must match, and fault:* needs `faults`."""
        if self.mode == "none":
            return True
        if topic.startswith("fault:") and assigns.get("faults") is not True:
            return False
        patterns = assigns.get("channels")
        if patterns is None:
            return True
        return any(fnmatch.fnmatchcase(topic, pattern) for pattern in patterns)


def issue_token(secret: str, subject: str, ttl: float, *, algorithm: str = "HS256",
                channels: list[str] | None = None, claims: Mapping[str, Any] | None = None,
                audience: str = "", issuer: str = "") -> str:
    """A JWT for testing clients (`tornado-phoenix token`)."""
    now = int(time.time())
    payload: dict[str, Any] = {"sub": subject, "iat": now, "exp": now + int(ttl)}
    if audience:
        payload["aud"] = audience
    if issuer:
        payload["iss"] = issuer
    if channels:
        payload["channels"] = channels
    payload.update(claims or {})
    return jwt.encode(payload, secret, algorithm=algorithm)


def parse_duration(raw: str) -> float:
    """`90`, `90s`, `15m`, `1h`, `2d` as seconds."""
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    raw = raw.strip().lower()
    scale = units.get(raw[-1:], None)
    number = raw[:-1] if scale else raw
    try:
        value = float(number) * (scale or 1)
    except ValueError:
        raise ValueError(f"bad duration {raw!r}: use e.g. 90s, 15m, 1h, 2d") from None
    if value <= 0:
        raise ValueError(f"bad duration {raw!r}: must be positive")
    return value
