"""JSON the way Phoenix's Jason library reads and writes it, on top of orjson: one decoder, one set of rules.

Clients do not depend on these details, but a byte-for-byte comparison with a real Phoenix server does
(research/phoenix-protocol.md §2.3): compact output, keys sorted (Erlang small-map order), floats in Erlang's
shortest round-trip form (`1e3` -> `1.0e3`), integers of any size kept exact, non-ASCII written raw.

    loads(b'[1e3, 123456789012345678901234567890]') == [1000.0, 123456789012345678901234567890]
    dumps([1000.0, 2**70]) == b'[1.0e3,1180591620717411303424]'

Decoding is always orjson's parser, so every input meets the same rules (issue 10, defect 2):
* `NaN`, `Infinity`, a number beyond a double (`1e400`), a lone surrogate (`"\\ud800"`): ValueError, which
  the transport turns into a clean close 1011, as Phoenix does when Jason raises.
* Integers orjson would round to a double (beyond 64 bits) are cut out of the text before parsing and put
  back exactly: up to 4,300 digits (Python's `int` string limit) as `int`, longer ones as `LongInteger`, which
  keeps the digits and is written back unchanged (Jason reads any size; converting 1 MB of digits to an `int`
  would stall the loop for seconds, quadratic in Python 3.11).
* Nesting: up to 1,024 levels decode (orjson's parser limit; Jason has none, so deeper input is the one
  difference from Phoenix: close 1011). Everything that decodes can be encoded again: orjson's encoder stops at
  254 levels, so deeper values are written in slices of `_SLICE` levels, each one pre-rendered.
"""

from __future__ import annotations

import os
import re
from decimal import Decimal
from typing import Any

import orjson

__all__ = ["loads", "dumps", "erlang_float", "LongInteger", "MAX_INT_DIGITS", "MAX_DEPTH"]

_SORT = orjson.OPT_SORT_KEYS
MAX_INT_DIGITS = 4300  # sys.get_int_max_str_digits()'s default; longer integers stay LongInteger
MAX_DEPTH = 1024  # orjson's parser limit (arrays and objects)
_SLICE = 200  # levels per pre-rendered slice; orjson's encoder allows 254

# An integer token of 19+ digits outside strings (strings are matched first and left alone). Not preceded by
# what would make it part of another token, not followed by a fraction or exponent (a float stays orjson's).
_TOKENS = re.compile(rb'"(?:[^"\\]|\\.)*"|(?<![\w.+-])-?[1-9][0-9]{18,}(?![0-9.eE])')
_LONG_DIGITS = re.compile(rb"[0-9]{19}")
# Marks a cut-out integer inside the rewritten text: a NUL (never valid outside a JSON string, so a rewrite of
# invalid input stays invalid) and a per-process random tag no client can guess.
_MARK = "\x00tp-int-" + os.urandom(8).hex() + ":"
_MARK_JSON = b'"\\u0000' + _MARK[1:].encode()
# orjson's float output always has a digit next to '.', 'e' or 'E'; strings can match too, which only costs
# a slower exact pass. Same match as rb"\d[.eE]", written so that the scan jumps between '.', 'e' and 'E'
# (3-4x faster on a large frame such as a 1 MiB Yjs document as a JSON byte array).
_MAYBE_FLOAT = re.compile(rb"[.eE](?<=\d[.eE])")


class LongInteger:
    """An integer of more than MAX_INT_DIGITS digits, kept as its decimal text and written back unchanged."""

    __slots__ = ("digits",)

    def __init__(self, digits: str) -> None:
        self.digits = digits

    def __eq__(self, other: object) -> bool:
        if isinstance(other, LongInteger):
            return self.digits == other.digits
        return NotImplemented

    def __hash__(self) -> int:
        return hash(self.digits)

    def __repr__(self) -> str:
        return f"LongInteger({len(self.digits)} digits)"


def loads(data: bytes | str) -> Any:
    """Decode JSON; raises ValueError (orjson.JSONDecodeError is one) on anything Jason would reject."""
    raw = data.encode() if isinstance(data, str) else data
    if _LONG_DIGITS.search(raw) is None:
        return orjson.loads(raw)
    found = False

    def cut(match: re.Match[bytes]) -> bytes:
        nonlocal found
        token = match.group()
        if token[0] == 0x22:  # a string: unchanged
            return token
        found = True
        return _MARK_JSON + token + b'"'

    rewritten = _TOKENS.sub(cut, raw)
    value = orjson.loads(rewritten)
    return _restore(value) if found else value


def _integer(text: str) -> int | LongInteger:
    digits = text[len(_MARK):]
    return int(digits) if len(digits.lstrip("-")) <= MAX_INT_DIGITS else LongInteger(digits)


def _restore(value: Any) -> Any:
    """Put the cut-out integers back, iteratively (the value may be 1,024 levels deep)."""
    if type(value) is str:
        return _integer(value) if value.startswith(_MARK) else value
    stack = [value]
    while stack:
        node = stack.pop()
        items = node.items() if type(node) is dict else enumerate(node)
        for key, item in list(items):
            kind = type(item)
            if kind is str:
                if item.startswith(_MARK):
                    node[key] = _integer(item)
            elif kind is list or kind is dict:
                stack.append(item)
    return value


def dumps(value: Any) -> bytes:
    """Encode like Jason: compact, sorted keys, Erlang float format, exact big integers, any depth."""
    try:
        out = orjson.dumps(value, option=_SORT)
    except TypeError:  # JSONEncodeError: integers beyond 64 bits, LongInteger, or deeper than 254 levels
        return orjson.dumps(_prepare(value), option=_SORT)
    if _MAYBE_FLOAT.search(out) is None:
        return out
    return orjson.dumps(_prepare(value), option=_SORT)


def _leaf(value: Any) -> Any:
    kind = type(value)
    if kind is float:
        return orjson.Fragment(erlang_float(value))
    if kind is int:
        return value if -(2**63) <= value < 2**64 else orjson.Fragment(str(value))
    if kind is LongInteger:
        return orjson.Fragment(value.digits)
    if isinstance(value, float):
        return orjson.Fragment(erlang_float(float(value)))
    if isinstance(value, int) and not isinstance(value, bool) and not -(2**63) <= value < 2**64:
        return orjson.Fragment(str(int(value)))
    return value


def _prepare(value: Any) -> Any:
    """A copy of `value` orjson can write as Jason would: floats and big integers pre-rendered, and every
    container `_SLICE` levels down pre-rendered, so no single orjson call goes deeper than its limit.

    Iterative: containers are copied top-down (a list of (copy, parent, key, depth) in creation order), then
    sliced bottom-up (reverse order), so a slice is rendered after every deeper slice inside it."""
    if not isinstance(value, (dict, list, tuple)):
        return _leaf(value)
    root: list[Any] = [None]
    created: list[tuple[Any, Any, Any, int]] = []
    stack: list[tuple[Any, Any, Any, int]] = [(value, root, 0, 0)]
    while stack:
        node, parent, key, depth = stack.pop()
        if depth > 4 * MAX_DEPTH:
            raise ValueError(f"value nested deeper than {4 * MAX_DEPTH} levels (a cycle?) cannot be encoded")
        if isinstance(node, dict):
            copy: Any = {}
            for name, item in node.items():
                if isinstance(item, (dict, list, tuple)):
                    copy[name] = None
                    stack.append((item, copy, name, depth + 1))
                else:
                    copy[name] = _leaf(item)
        else:
            copy = [None] * len(node)
            for index, item in enumerate(node):
                if isinstance(item, (dict, list, tuple)):
                    stack.append((item, copy, index, depth + 1))
                else:
                    copy[index] = _leaf(item)
        parent[key] = copy
        created.append((copy, parent, key, depth))
    for copy, parent, key, depth in reversed(created):
        if depth and depth % _SLICE == 0:
            parent[key] = orjson.Fragment(orjson.dumps(copy, option=_SORT))
    return root[0]


def erlang_float(value: float) -> str:
    """Render a float as Erlang's io_lib_format:fwrite_g/1 does (which Jason uses)."""
    if value != value or value in (float("inf"), float("-inf")):
        raise ValueError(f"{value!r} cannot be encoded as JSON")
    if value == 0.0:
        return "-0.0" if str(value).startswith("-") else "0.0"
    sign, digits_tuple, exponent = Decimal(repr(value)).as_tuple()
    digits = "".join(map(str, digits_tuple)).rstrip("0")
    place = int(exponent) + (len(digits_tuple) - len(digits))  # value == int(digits) * 10**place
    length = len(digits)
    exp = place + length - 1
    exp_text = str(exp)
    exp_cost = len(exp_text) + 2
    if place < 0:
        if exp >= 0:
            text = digits[: length + place] + "." + digits[length + place :]
        elif 2 - place - length <= exp_cost:
            text = "0." + "0" * (-place - length) + digits
        else:
            text = _with_exponent(exp_text, digits)
    else:
        dot = 1 if length == 1 else 0
        if exp_cost + dot >= place + 2 and abs(value) < float(1 << 53):
            text = digits + "0" * place + ".0"
        else:
            text = _with_exponent(exp_text, digits)
    return "-" + text if sign else text


def _with_exponent(exp_text: str, digits: str) -> str:
    if len(digits) == 1:
        return digits + ".0e" + exp_text
    return digits[0] + "." + digits[1:] + "e" + exp_text
