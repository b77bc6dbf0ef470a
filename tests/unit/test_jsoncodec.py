"""JSON written the way Phoenix's Jason writes it."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st
from tornado_phoenix.protocol.jsoncodec import dumps, erlang_float, loads


@pytest.mark.parametrize("value,text", [
    (1000.0, "1.0e3"), (100.0, "100.0"), (1.0, "1.0"), (1.5, "1.5"), (0.001, "0.001"), (0.0001, "1.0e-4"),
    (12345.0, "12345.0"), (120000.0, "1.2e5"), (-0.0, "-0.0"), (0.0, "0.0"), (1e22, "1.0e22"),
    (0.1, "0.1"), (float(2**53), "9.007199254740992e15"), (-2.5e-7, "-2.5e-7"),
])
def test_erlang_float_format(value, text):
    assert erlang_float(value) == text


@given(st.floats(allow_nan=False, allow_infinity=False))
def test_erlang_float_round_trips(value):
    assert float(erlang_float(value)) == value


def test_compact_sorted_raw_unicode():
    assert dumps({"b": 1, "a": ["é☃", "/", "\x01"]}) == '{"a":["é☃","/","\\u0001"],"b":1}'.encode()


def test_big_integers_stay_exact_both_ways():
    assert loads("[123456789012345678901234567890]") == [123456789012345678901234567890]
    assert dumps([2**70, -(2**64)]) == b"[1180591620717411303424,-18446744073709551616]"


def test_strings_that_look_like_floats_are_untouched():
    assert dumps({"v": "1.5e3", "n": 1.5e3}) == b'{"n":1.5e3,"v":"1.5e3"}'


@pytest.mark.parametrize("text", ["NaN", "[Infinity]", "[1,]", "{'a':1}"])
def test_rejects_what_jason_rejects(text):
    with pytest.raises(ValueError):
        loads(text + " " * 0)
    with pytest.raises(ValueError):
        loads(text.replace("[", "[12345678901234567890,", 1) if "[" in text else text)


@given(st.recursive(st.none() | st.booleans() | st.integers() | st.text(),
                    lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=5), c, max_size=3)))
def test_round_trip(value):
    assert loads(dumps(value)) == value
    assert json.loads(dumps(value)) == value
