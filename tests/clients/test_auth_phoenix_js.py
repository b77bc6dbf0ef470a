"""phoenix.js against TP_AUTH=jwt: 1.7 and 1.8 with `params: {token}`, 1.8 with `authToken` (the
Sec-WebSocket-Protocol bearer entry, answered `phoenix`); the join of an allowed topic works with the token's
sub as presence key, a topic outside the `channels` claim is refused `unauthorized`."""

from __future__ import annotations

import os
import subprocess
import time

import jwt
import pytest

from tests.clients import test_phoenix_js as pj
from tests.clients.test_phoenix_js import JS_DIR, NODE_TIMEOUT, SCENARIOS, _explain, _parse_result
from tests.support.live_server import LiveServer

node_clients = pj.node_clients  # the same session fixture (node + tests/js/node_modules installed)

pytestmark = pytest.mark.clients

SECRET = "clients-secret-0123456789abcdef0123"


@pytest.fixture(scope="module")
def auth_server():
    server = LiveServer(env={"TP_AUTH": "jwt", "TP_JWT_SECRET": SECRET}).start()
    yield server
    server.stop()


@pytest.mark.parametrize(("client", "mode"), [("1.7", "params"), ("1.8", "params"), ("1.8", "authToken")])
def test_phoenix_js_connects_with_a_jwt_and_the_channels_claim_limits_joins(node_clients, auth_server, client, mode):
    now = int(time.time())
    token = jwt.encode({"sub": f"js-{client}-{mode}", "iat": now, "exp": now + 300, "channels": ["test:*"]},
                       SECRET, algorithm="HS256")
    env = {**os.environ, "AUTH_TOKEN": token, "AUTH_MODE": mode, "ALLOWED_TOPIC": f"test:js-{mode}",
           "FORBIDDEN_TOPIC": "echo:nope"}
    proc = subprocess.run([node_clients, str(SCENARIOS / "auth.js"), client, auth_server.ws_url], cwd=JS_DIR,
                          env=env, capture_output=True, text=True, timeout=NODE_TIMEOUT, stdin=subprocess.DEVNULL)
    result = _parse_result(proc.stdout)
    assert result is not None and result["error"] is None, _explain("auth.js failed", proc.stdout, proc.stderr,
                                                                     auth_server)
    assert result["join"] == ["ok", {}]
    assert result["presence_keys"] == [f"js-{client}-{mode}"]
    assert result["refused"] == ["error", {"reason": "unauthorized"}]
    assert result["protocol"] == ("phoenix" if mode == "authToken" else "")
    connects = [e for e in result["entries"] if e["kind"] == "connect"]
    if mode == "authToken":
        assert "token=" not in connects[0]["url"]  # the token stays out of the URL
    assert token not in auth_server.output()
