"""tokens.Signer: Phoenix.Token-shaped HMAC tokens for long-poll sessions."""

from __future__ import annotations

from tornado_phoenix.tokens import Signer


def test_round_trip_and_shape():
    signer = Signer("k" * 64, "salt")
    token = signer.sign(["v1", "phx:lp:abc"])
    assert token.startswith("SFMyNTY.") and token.count(".") == 2
    assert signer.verify(token) == ["v1", "phx:lp:abc"]


def test_forged_other_secret_other_salt_and_garbage_are_refused():
    signer = Signer("k" * 64, "salt")
    token = signer.sign({"a": 1})
    head, body, mac = token.split(".")
    assert signer.verify(f"{head}.{body}.{mac[:-2]}xx") is None
    assert Signer("other" * 13, "salt").verify(token) is None
    assert Signer("k" * 64, "pepper").verify(token) is None
    for bad in ("", "a.b", "a.b.c", "SFMyNTY.!!!.x", token + "."):
        assert signer.verify(bad) is None


def test_expired_after_max_age():
    signer = Signer("k" * 64, "salt")
    token = signer.sign("x", max_age=10, now=1000.0)
    assert signer.verify(token, now=1005.0) == "x"
    assert signer.verify(token, now=1011.0) is None
