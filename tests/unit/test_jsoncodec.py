"""JSON written the way Phoenix's Jason writes it."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st
from tornado_phoenix.protocol.jsoncodec import LongInteger, dumps, erlang_float, loads


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


# ---- issue 10 defect 2: one decoder, one set of rules ---------------------------------------------------

def _nest(depth: int, leaf=1):
    value = leaf
    for _ in range(depth):
        value = [value]
    return value


@pytest.mark.parametrize("text", [
    "[1e400]", "[-1e400]", '["\\ud800"]', '["\\udc00x"]', "[NaN]", "[Infinity]",
    "[" * 1025 + "]" * 1025,
])
@pytest.mark.parametrize("with_long_integer", [False, True])
def test_same_rules_with_or_without_a_long_integer(text, with_long_integer):
    # A 19+ digit integer used to switch to the stdlib parser, which took 1e400 as inf, lone surrogates as
    # text and 1,000 levels as a RecursionError.
    if with_long_integer:
        text = "[12345678901234567890123," + text + "]"
    with pytest.raises(ValueError):
        loads(text)


@pytest.mark.parametrize("depth", [253, 254, 255, 600, 1000, 1023])
def test_deep_nesting_decodes_and_encodes_back(depth):
    text = "[" * depth + "1" + "]" * depth
    assert dumps(loads(text)) == text.encode()
    # what a reply wraps around an echoed payload, as the echo channel does
    assert dumps({"response": loads(text), "status": "ok"}) == b'{"response":' + text.encode() + b',"status":"ok"}'


def test_deep_nesting_with_floats_and_big_integers():
    text = "[" * 700 + "[1.0e3,123456789012345678901234567890]" + "]" * 700
    assert dumps(loads(text)) == text.encode()


def test_integers_beyond_python_digit_limit_round_trip_exactly():
    digits = "9" * 5000
    value = loads(f'{{"n":-{digits}}}')
    assert isinstance(value["n"], LongInteger) and value["n"].digits == "-" + digits
    assert dumps(value) == f'{{"n":-{digits}}}'.encode()
    assert loads("[" + "1" * 4300 + "]") == [int("1" * 4300)]


def test_long_digits_inside_strings_stay_strings():
    assert loads('["12345678901234567890123", "a\\"12345678901234567890123"]') == [
        "12345678901234567890123", 'a"12345678901234567890123']
    assert loads("[1234567890123456789012.5, 12345678901234567890123e2]") == [
        1234567890123456789012.5, 12345678901234567890123e2]


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.integers(min_value=10**18, max_value=10**400)
    | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
    lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=5), c, max_size=3))


@given(json_values)
def test_any_json_value_round_trips_exactly(value):
    text = json.dumps(value, ensure_ascii=False)
    assert loads(text) == value
    assert loads(dumps(value)) == value


@given(st.binary(max_size=64) | st.text(alphabet='[]{}",:0123456789.eE-+\\u tfnrlasNI', max_size=64))
def test_any_input_decodes_or_raises_value_error(data):
    try:
        loads(data)
    except ValueError:
        pass


@given(st.integers(min_value=1, max_value=1023), st.none() | st.integers(min_value=-10**60, max_value=10**60)
       | st.floats(allow_nan=False, allow_infinity=False) | st.text())
def test_any_depth_up_to_the_limit_round_trips(depth, leaf):
    value = _nest(depth, leaf)
    assert loads(dumps(value)) == value
