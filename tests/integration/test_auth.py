"""TP_AUTH against the real server: real JWTs (HS256, and ES256 with a key pair made here), 403 reasons in the log
without the token, the channels and faults claims, 4001 at expiry, token mode, the `token` CLI."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
import time
from urllib.parse import quote

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from tests.support.live_server import REPO, LiveServer
from tests.support.rawws import HandshakeRefused, RawWebSocket

SECRET = "integration-secret-0123456789abcdef"
AUDIENCE = "tp-test"
FAULTS_TOKEN = "faults-key-42"


def make_jwt(sub: str = "alice", ttl: float = 600, key=SECRET, algorithm: str = "HS256", **claims) -> str:
    now = int(time.time())
    payload = {"sub": sub, "iat": now, "exp": now + ttl, "aud": AUDIENCE, **claims}
    payload = {k: v for k, v in payload.items() if v is not None}
    return jwt.encode(payload, key, algorithm=algorithm)


def connect(server: LiveServer, token: str | None = None, extra: str = "", headers: dict | None = None):
    query = "vsn=2.0.0" + (f"&token={quote(token)}" if token is not None else "") + extra
    return RawWebSocket(server.port, f"/socket/websocket?{query}", headers=headers)


def send(ws: RawWebSocket, *frame) -> None:
    ws.send_text(json.dumps(list(frame)))


def recv(ws: RawWebSocket) -> list:
    return json.loads(ws.recv_text())


def join(ws: RawWebSocket, topic: str, ref: str, payload: dict | None = None) -> list:
    send(ws, ref, ref, topic, "phx_join", payload or {})
    return recv(ws)


@pytest.fixture(scope="module")
def jwt_server():
    server = LiveServer(env={"TP_AUTH": "jwt", "TP_JWT_SECRET": SECRET, "TP_JWT_AUDIENCE": AUDIENCE,
                             "TP_FAULTS_TOKEN": FAULTS_TOKEN}).start()
    yield server
    server.stop()


def test_valid_hs256_token_connects_and_sub_is_the_presence_key(jwt_server):
    with connect(jwt_server, make_jwt("alice")) as ws:
        assert join(ws, "test:auth1", "1", {"user_id": "mallory"})[4] == {"status": "ok", "response": {}}
        frames = [recv(ws), recv(ws)]
        state = next(f for f in frames if f[3] == "presence_state")
        assert list(state[4]) == ["alice"]  # the token's sub, not the user_id join param


# Tokens are made when the test runs, not at collection: a suite that reaches this file more than a token's
# lifetime after it started would otherwise see every one of them "expired".
@pytest.mark.parametrize(
    ("make_token", "reason"),
    [
        (lambda: None, "missing token"),
        (lambda: make_jwt(key="another-secret-0123456789abcdef0"), "bad signature"),
        (lambda: make_jwt(ttl=-120), "expired"),
        (lambda: make_jwt(aud="someone-else"), "wrong audience"),
        (lambda: make_jwt(exp=None), "missing exp"),
        (lambda: "not.a.jwt", "malformed token"),
        (lambda: jwt.encode({"sub": "x", "exp": int(time.time()) + 60, "aud": AUDIENCE}, None, algorithm="none"),
         "algorithm not allowed"),
    ],
    ids=["missing", "bad-signature", "expired", "wrong-audience", "no-exp", "malformed", "alg-none"],
)
def test_refused_token_is_403_and_the_log_names_the_reason_not_the_token(jwt_server, make_token, reason):
    token = make_token()
    with pytest.raises(HandshakeRefused) as refused:
        connect(jwt_server, token)
    assert refused.value.status == 403
    assert refused.value.body == b""
    line = jwt_server.wait_log("refuse status=403 reason=", reason, "auth=jwt")
    if token:
        assert token not in jwt_server.output()
        for part in token.split("."):
            assert len(part) < 8 or part not in line


def test_channels_claim_limits_joins(jwt_server):
    with connect(jwt_server, make_jwt("bob", channels=["echo:allowed*", "test:*"])) as ws:
        assert join(ws, "echo:allowed-1", "1")[4]["status"] == "ok"
        assert join(ws, "echo:other", "2")[4] == {"status": "error", "response": {"reason": "unauthorized"}}
        jwt_server.wait_log("join refused topic=echo:other reason=unauthorized")


def test_fault_channel_needs_the_faults_claim_or_the_faults_token(jwt_server):
    with connect(jwt_server, make_jwt("carol")) as ws:
        assert join(ws, "fault:x", "1")[4] == {"status": "error", "response": {"reason": "unauthorized"}}
    with connect(jwt_server, make_jwt("carol", faults=True)) as ws:
        assert join(ws, "fault:x", "1")[4]["status"] == "ok"
    with connect(jwt_server, make_jwt("carol"), extra=f"&faults_token={FAULTS_TOKEN}") as ws:
        assert join(ws, "fault:x", "1")[4]["status"] == "ok"
    with connect(jwt_server, make_jwt("carol"), extra="&faults_token=wrong") as ws:
        assert join(ws, "fault:x", "1")[4]["response"] == {"reason": "unauthorized"}


def test_expired_token_closes_the_socket_with_4001(jwt_server):
    with connect(jwt_server, make_jwt("dave", ttl=2)) as ws:
        assert join(ws, "echo:e", "1")[4]["status"] == "ok"
        deadline = time.monotonic() + 8
        frame = ws.recv(8)
        while frame.kind != "close" and time.monotonic() < deadline:
            frame = ws.recv(8)
        assert (frame.kind, frame.code) == ("close", 4001)
    jwt_server.wait_log("close code=4001 reason=token expired")


def test_bearer_subprotocol_is_answered_phoenix(jwt_server):
    encoded = base64.b64encode(make_jwt("erin").encode()).decode().rstrip("=")
    headers = {"Sec-WebSocket-Protocol": f"phoenix, base64url.bearer.phx.{encoded}"}
    with connect(jwt_server, headers=headers) as ws:
        assert ws.headers.get("sec-websocket-protocol") == "phoenix"
        assert join(ws, "echo:sp", "1")[4]["status"] == "ok"


def test_es256_public_key(tmp_path):
    private = ec.generate_private_key(ec.SECP256R1())
    pem = private.public_key().public_bytes(serialization.Encoding.PEM,
                                            serialization.PublicFormat.SubjectPublicKeyInfo)
    (tmp_path / "pub.pem").write_bytes(pem)
    server = LiveServer(env={"TP_AUTH": "jwt", "TP_JWT_PUBLIC_KEY_FILE": str(tmp_path / "pub.pem"),
                             "TP_JWT_ALGORITHMS": "ES256", "TP_JWT_AUDIENCE": AUDIENCE}).start()
    try:
        with connect(server, make_jwt("frank", key=private, algorithm="ES256")) as ws:
            assert join(ws, "echo:es", "1")[4]["status"] == "ok"
        with pytest.raises(HandshakeRefused):  # an HS256 token made with the PEM as secret: key confusion
            connect(server, make_jwt("frank", key=SECRET, algorithm="HS256"))
        server.wait_log("algorithm not allowed")
    finally:
        server.stop()


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"TP_JWT_ALGORITHMS": "HS256,none", "TP_JWT_SECRET": SECRET}, "must not contain 'none'"),
        ({"TP_JWT_ALGORITHMS": "HS256"}, "needs TP_JWT_SECRET"),
        ({"TP_JWT_ALGORITHMS": "ES256"}, "needs TP_JWT_PUBLIC_KEY_FILE"),
        ({"TP_JWT_ALGORITHMS": "HS256", "TP_JWT_SECRET": SECRET, "TP_JWT_PUBLIC_KEY_FILE": "/etc/hostname"},
         "is HMAC but TP_JWT_PUBLIC_KEY_FILE is set"),
    ],
)
def test_misconfigured_jwt_refuses_to_start(env, message):
    proc = subprocess.run([sys.executable, "-m", "tornado_phoenix", "serve", "--port", "0"],
                          env={"PATH": "/usr/bin:/bin", "TP_AUTH": "jwt", **env}, cwd=REPO,
                          capture_output=True, text=True, timeout=30)
    assert proc.returncode == 2
    assert message in proc.stdout + proc.stderr


def test_static_token_mode():
    server = LiveServer(env={"TP_AUTH": "token", "TP_AUTH_TOKENS": "alpha,beta"}).start()
    try:
        with connect(server, "beta") as ws:
            assert join(ws, "echo:t", "1")[4]["status"] == "ok"
        with pytest.raises(HandshakeRefused) as refused:
            connect(server, "gamma")
        assert refused.value.status == 403
        server.wait_log("refuse status=403 reason=", "unknown token", "auth=token")
        assert "gamma" not in server.output()
    finally:
        server.stop()


def test_token_cli_output_verifies():
    env = {"PATH": "/usr/bin:/bin", "TP_JWT_SECRET": SECRET, "TP_JWT_AUDIENCE": AUDIENCE}
    proc = subprocess.run([sys.executable, "-m", "tornado_phoenix", "token", "--sub", "alice", "--ttl", "1h",
                           "--channels", "room:*", "--claim", "faults=true", "--claim", "team=blue"],
                          env=env, cwd=REPO, capture_output=True, text=True, timeout=30)
    assert proc.returncode == 0, proc.stderr
    claims = jwt.decode(proc.stdout.strip(), SECRET, algorithms=["HS256"], audience=AUDIENCE)
    assert claims["sub"] == "alice" and claims["channels"] == ["room:*"]
    assert claims["faults"] is True and claims["team"] == "blue"
    assert 3590 <= claims["exp"] - time.time() <= 3600
    missing = subprocess.run([sys.executable, "-m", "tornado_phoenix", "token", "--sub", "a"],
                             env={"PATH": "/usr/bin:/bin"}, cwd=REPO, capture_output=True, text=True, timeout=30)
    assert missing.returncode == 2 and "TP_JWT_SECRET" in missing.stderr
