"""auth.Authenticator without sockets: configuration errors at start, the phoenix.js 1.8 bearer entry, JWT
claims to assigns, join authorization; and metrics.Metrics' flush."""

from __future__ import annotations

import base64
import time

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from prometheus_client.parser import text_string_to_metric_families
from tornado_phoenix.auth import EXPIRES_AT, Authenticator, AuthError, Refused, bearer_from_protocols
from tornado_phoenix.config import Settings
from tornado_phoenix.metrics import Metrics

SECRET = "unit-secret-0123456789abcdef012345"


def accept(params):
    return {}


def test_bearer_entry_is_phoenix_js_18_btoa_without_padding():
    token = "eyJ.a?b>c"  # characters whose base64 has + and / and padding
    encoded = base64.b64encode(token.encode()).decode().rstrip("=")
    assert bearer_from_protocols(f"phoenix, base64url.bearer.phx.{encoded}") == token
    assert bearer_from_protocols("phoenix") is None
    assert bearer_from_protocols(None) is None
    assert bearer_from_protocols("phoenix, base64url.bearer.phx.!!!") == ""


def test_jwt_claims_become_assigns_with_user_id_and_expiry():
    auth = Authenticator(Settings(auth="jwt", jwt_secret=SECRET))
    exp = int(time.time()) + 60
    assigns = auth.connect({"token": jwt.encode({"user_id": 7, "exp": exp, "role": "x"}, SECRET)}, None, accept)
    assert assigns["user_id"] == "7" and assigns["role"] == "x" and assigns[EXPIRES_AT] == exp
    no_expiry = Authenticator(Settings(auth="jwt", jwt_secret=SECRET, jwt_enforce_expiry=False))
    assert EXPIRES_AT not in no_expiry.connect({"token": jwt.encode({"sub": "a", "exp": exp}, SECRET)}, None, accept)


def test_hook_sees_no_secret_params_and_can_refuse():
    auth = Authenticator(Settings(auth="token", auth_tokens="t1"))
    seen = []
    assert auth.connect({"token": "t1", "faults_token": "f", "room": "r"}, None, lambda p: seen.append(p) or {}) == {}
    assert seen == [{"room": "r"}]
    assert auth.connect({"token": "t1"}, None, lambda p: None) == Refused("connect refused")
    # auth off: the hook gets every param, as before
    assert Authenticator(Settings()).connect({"token": "x"}, None, lambda p: dict(p)) == {"token": "x"}


def test_may_join_channels_patterns_and_faults():
    auth = Authenticator(Settings(auth="jwt", jwt_secret=SECRET))
    assert auth.may_join({"channels": ["room:*", "echo:one"]}, "room:a")
    assert auth.may_join({"channels": ["room:*", "echo:one"]}, "echo:one")
    assert not auth.may_join({"channels": ["room:*", "echo:one"]}, "echo:two")
    assert auth.may_join({}, "echo:two")
    assert not auth.may_join({}, "fault:x")
    assert auth.may_join({"faults": True}, "fault:x")
    assert not auth.may_join({"faults": True, "channels": ["room:*"]}, "fault:x")
    assert Authenticator(Settings()).may_join({}, "fault:x")


def _pem(public_key) -> bytes:
    return public_key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def test_public_key_that_cannot_verify_the_algorithm_refuses_to_start(tmp_path):
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    (tmp_path / "rsa.pem").write_bytes(_pem(rsa_key.public_key()))
    with pytest.raises(AuthError, match="cannot verify ES256"):
        Authenticator(Settings(auth="jwt", jwt_algorithms="ES256", jwt_public_key_file=str(tmp_path / "rsa.pem")))
    ec_key = ec.generate_private_key(ec.SECP256R1())
    (tmp_path / "ec.pem").write_bytes(_pem(ec_key.public_key()))
    Authenticator(Settings(auth="jwt", jwt_algorithms="ES256", jwt_public_key_file=str(tmp_path / "ec.pem")))
    with pytest.raises(AuthError, match="mixes HS"):
        Authenticator(Settings(auth="jwt", jwt_algorithms="HS256,ES256", jwt_secret=SECRET))
    with pytest.raises(AuthError, match="TP_AUTH_TOKENS"):
        Authenticator(Settings(auth="token"))


def test_metrics_flush_moves_plain_counters_and_fanout_buckets():
    metrics = Metrics(multiprocess_dir="")
    metrics.messages_in += 5
    metrics.broadcast(3, 10)
    metrics.broadcast(700, 10)
    metrics.joined("room:*", "ok")
    metrics.add_gauge("yjs_rooms", "open Yjs rooms", lambda: 4)
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value
               for f in text_string_to_metric_families(metrics.render().decode()) for s in f.samples}
    assert samples[("tornado_phoenix_messages_in_total", ())] == 5
    assert samples[("tornado_phoenix_messages_out_total", ())] == 703
    assert samples[("tornado_phoenix_bytes_out_total", ())] == 7030
    assert samples[("tornado_phoenix_broadcast_fanout_count", ())] == 2
    assert samples[("tornado_phoenix_broadcast_fanout_sum", ())] == 703
    assert samples[("tornado_phoenix_broadcast_fanout_bucket", (("le", "5.0"),))] == 1
    assert samples[("tornado_phoenix_broadcast_fanout_bucket", (("le", "500.0"),))] == 1
    assert samples[("tornado_phoenix_broadcast_fanout_bucket", (("le", "1000.0"),))] == 2
    assert samples[("tornado_phoenix_joins_total", (("pattern", "room:*"), ("result", "ok")))] == 1
    assert samples[("tornado_phoenix_yjs_rooms", ())] == 4
    metrics.messages_in += 1  # a second flush adds only the delta
    again = {(s.name, tuple(sorted(s.labels.items()))): s.value
             for f in text_string_to_metric_families(metrics.render().decode()) for s in f.samples}
    assert again[("tornado_phoenix_messages_in_total", ())] == 6
    assert again[("tornado_phoenix_broadcast_fanout_count", ())] == 2


def test_metrics_multiprocess_dir(tmp_path, monkeypatch):
    # prometheus_client picks its mmap value class from the env at import; here only the scrape side is checked:
    # a registry reading PROMETHEUS_MULTIPROC_DIR renders (empty dir = no samples yet) without error.
    metrics = Metrics(multiprocess_dir=str(tmp_path))
    assert metrics.registry is not metrics._own
    metrics.render()
