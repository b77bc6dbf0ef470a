"""The callback client (backend.py) on its own: the signature format (a vector computed with openssl), verify's
replay window, bounded concurrency and the timeout against a real HTTP backend, and the new settings."""

from __future__ import annotations

import asyncio
import time

import pytest
from tornado_phoenix.backend import BackendClient, BackendError, sign, verify
from tornado_phoenix.config import Settings, SettingsError
from tornado_phoenix.endpoint import socket_id_for

from tests.support.backend import TestBackend

# printf '1700000000.{"a":1}' | openssl dgst -sha256 -hmac 'k3y'
VECTOR = "sha256=fd5a70e965043f7df6309c2c3b5ff5a8ffa99b1f5175e9a311459e73c4634d4a"


def test_signature_matches_openssl():
    assert sign("k3y", "1700000000", b'{"a":1}') == VECTOR


def test_verify_checks_body_secret_and_age():
    body = b'{"a":1}'
    assert verify("k3y", "1700000000", VECTOR, body, now=1700000100)
    assert not verify("k3y", "1700000000", VECTOR, b'{"a":2}', now=1700000100)
    assert not verify("other", "1700000000", VECTOR, body, now=1700000100)
    assert not verify("k3y", "1700000000", VECTOR, body, now=1700000000 + 301)  # replayed too late
    assert not verify("k3y", "1700000001", VECTOR, body, now=1700000001)  # timestamp is signed too
    assert not verify("k3y", None, VECTOR, body) and not verify("k3y", "x", VECTOR, body)


@pytest.fixture(scope="module")
def backend():
    server = TestBackend("sekret", slow_delay=2.0).start()
    yield server
    server.stop()


def event(n: str = "hold") -> dict:
    return {"type": "event", "topic": "chat:x", "event": n, "payload": {}, "assigns": {}, "socket_id": None}


def test_concurrency_is_bounded(backend):
    settings = Settings(api_secret="sekret", callback_concurrency=3, callback_timeout=10)

    async def main() -> list:
        client = BackendClient(settings)
        return await asyncio.gather(*(client.call("event", backend.url + "/event", event()) for _ in range(12)))

    backend.max_active = 0
    answers = asyncio.run(main())
    assert answers == [{"reply": {}}] * 12
    assert backend.max_active == 3


def test_timeout_and_bad_answers_raise_backend_error(backend):
    settings = Settings(api_secret="sekret", callback_timeout=0.5)

    async def main() -> tuple:
        client = BackendClient(settings)
        started = time.monotonic()
        with pytest.raises(BackendError, match="no answer within 0.5s"):
            await client.call("event", backend.url + "/event", event("slow"))
        elapsed = time.monotonic() - started
        with pytest.raises(BackendError, match="HTTP 500"):
            await client.call("event", backend.url + "/event", event("broken"))
        with pytest.raises(BackendError, match="JSON list, expected an object"):
            await client.call("event", backend.url + "/event", event("garbage"))
        wrong = BackendClient(Settings(api_secret="not-the-backends"))
        with pytest.raises(BackendError, match="HTTP 401"):  # the backend refuses a bad signature
            await wrong.call("event", backend.url + "/event", event("echo"))
        return elapsed, client.stats

    elapsed, stats = asyncio.run(main())
    assert elapsed < 1.9  # the client's timeout, not the backend's 2 s
    assert stats == {"event": {"timeout": 1, "error": 2}}


def test_settings_for_the_backend():
    with pytest.raises(SettingsError, match="TP_EVENT_URL is set but TP_API_SECRET is not"):
        Settings(event_url="http://x/e")
    with pytest.raises(SettingsError, match="expected HOST:PORT"):
        Settings(api_secret="s", api_bind="4100")
    with pytest.raises(SettingsError, match="TP_API_BIND is set but TP_API_SECRET is not"):
        Settings(api_bind="127.0.0.1:4100")
    with pytest.raises(SettingsError, match="only allowed at the end"):
        Settings(join_topics="chat:*:x")
    settings = Settings(api_secret="s", api_bind="[::1]:4100", join_topics=" chat:*, support:* ,")
    assert settings.api_address == ("::1", 4100)
    assert settings.join_topic_patterns == ["chat:*", "support:*"]
    assert "api_secret" not in repr(settings)  # never in a log line or traceback


def test_socket_id_from_assigns():
    assert socket_id_for({"user_id": "42"}) == "user_socket:42"
    assert socket_id_for({"sub": "u1"}) == "user_socket:u1"
    assert socket_id_for({"user_id": 7, "sub": "x"}) == "user_socket:7"
    assert socket_id_for({"socket_id": "admin:1", "user_id": "42"}) == "admin:1"
    assert socket_id_for({}) is None and socket_id_for({"user_id": True}) is None and socket_id_for({"sub": ""}) is None
