"""The cross-node envelope (pubsub/redis.py) and the scale-out settings: pure, no Redis needed."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from tornado_phoenix.config import Settings, SettingsError
from tornado_phoenix.protocol import jsoncodec
from tornado_phoenix.pubsub.redis import decode_envelope, encode_broadcast, redact_url

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-(2**100), max_value=2**100)
    | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)


@given(st.dictionaries(st.text(max_size=8), json_values, max_size=5))
def test_payload_crosses_redis_byte_exact(payload):
    envelope = decode_envelope(encode_broadcast("n1", "test:x", "shout", payload))
    assert (envelope["k"], envelope["n"], envelope["t"], envelope["e"]) == ("b", "n1", "test:x", "shout")
    # what a client on the other node gets is exactly what a local client gets
    assert jsoncodec.dumps(envelope["p"]) == jsoncodec.dumps(payload)


def test_big_integers_and_erlang_floats_survive():
    payload = {"big": 2**70, "neg": -(2**65), "f": 1e3, "z": -0.0, "tiny": 5e-324}
    envelope = decode_envelope(encode_broadcast("n1", "t", "e", payload))
    assert envelope["p"] == payload and type(envelope["p"]["big"]) is int
    assert jsoncodec.dumps(envelope["p"]) == b'{"big":1180591620717411303424,"f":1.0e3,"neg":-36893488147419103232,' \
        b'"tiny":5.0e-324,"z":-0.0}'


@given(st.binary(max_size=300))
def test_binary_payload_round_trips(data):
    assert decode_envelope(encode_broadcast("n1", "room:a", "update", data))["p"] == data


@pytest.mark.parametrize("data", [b"[]", b"{}", b'{"k":"b"}', b"not json", b'"x"'])
def test_malformed_envelopes_are_rejected(data):
    with pytest.raises(ValueError):
        decode_envelope(data)


def test_redact_url_hides_the_password():
    assert redact_url("redis://:s3cret@10.0.0.5:6380/2") == "redis://:***@10.0.0.5:6380/2"
    assert redact_url("redis://127.0.0.1:6379/0") == "redis://127.0.0.1:6379/0"


def test_workers_need_redis_pubsub():
    with pytest.raises(SettingsError) as err:
        Settings.from_env({"TP_WORKERS": "3"})
    assert "TP_PUBSUB" in str(err.value)
    env = {"TP_WORKERS": "3", "TP_PUBSUB": "redis://127.0.0.1:6379/0", "TP_SECRET_KEY_BASE": "k" * 64}
    assert Settings.from_env(env).worker_count() == 3
    assert Settings.from_env({"TP_WORKERS": "1"}).worker_count() == 1


@pytest.mark.parametrize("env,needle", [
    ({"TP_PUBSUB": "memcached://x"}, "TP_PUBSUB"),
    ({"TP_PRESENCE_DOWN_AFTER": "0"}, "TP_PRESENCE_DOWN_AFTER"),
    ({"TP_WORKERS": "-1"}, "TP_WORKERS"),
    ({"TP_WORKERS": "2", "TP_PUBSUB": "redis://h:1/0", "TP_PORT": "0", "TP_SECRET_KEY_BASE": "k" * 64}, "TP_PORT"),
])
def test_bad_scale_settings_name_the_variable(env, needle):
    with pytest.raises(SettingsError) as err:
        Settings.from_env(env)
    assert needle in str(err.value)
