"""JSON the way Phoenix's Jason library writes it, on top of orjson.

Clients do not depend on these details, but a byte-for-byte comparison with a real Phoenix server does
(research/phoenix-protocol.md §2.3): compact output, keys sorted (Erlang small-map order), floats in Erlang's
shortest round-trip form (`1e3` -> `1.0e3`), integers of any size kept exact, non-ASCII written raw.
orjson does the common case at C speed; only frames that hold floats or integers beyond 64 bits take the
slow path.
"""

from __future__ import annotations

import json
import re
from decimal import Decimal
from typing import Any

import orjson

__all__ = ["loads", "dumps", "erlang_float"]

_SORT = orjson.OPT_SORT_KEYS
# A run of 19+ digits may be an integer orjson would turn into a float; decode such text exactly instead.
_LONG_DIGITS = re.compile(rb"\d{19}")
# orjson's float output always has a digit next to '.', 'e' or 'E'; strings can match too, which only costs
# a slower exact pass. Same match as rb"\d[.eE]", written so that the scan jumps between '.', 'e' and 'E'
# (3-4x faster on a large frame such as a 1 MiB Yjs document as a JSON byte array).
_MAYBE_FLOAT = re.compile(rb"[.eE](?<=\d[.eE])")


def loads(data: bytes | str) -> Any:
    """Decode JSON; raises ValueError (orjson.JSONDecodeError is one) on anything Jason would reject."""
    raw = data.encode() if isinstance(data, str) else data
    if _LONG_DIGITS.search(raw) is None:
        return orjson.loads(raw)
    # stdlib json keeps big integers exact; reject what Jason rejects (NaN, Infinity) like orjson does.
    return json.loads(raw, parse_constant=_reject_constant)


def _reject_constant(name: str) -> Any:
    raise ValueError(f"invalid JSON constant {name}")


def dumps(value: Any) -> bytes:
    """Encode like Jason: compact, sorted keys, Erlang float format, exact big integers."""
    try:
        out = orjson.dumps(value, option=_SORT)
    except TypeError:  # orjson raises JSONEncodeError (a TypeError) on integers beyond 64 bits
        return orjson.dumps(_erlangify(value), option=_SORT)
    if _MAYBE_FLOAT.search(out) is None:
        return out
    return orjson.dumps(_erlangify(value), option=_SORT)


def _erlangify(value: Any) -> Any:
    """Replace floats and big integers with pre-rendered JSON fragments, recursively."""
    if isinstance(value, float):
        return orjson.Fragment(erlang_float(value))
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return value if -(2**63) <= value < 2**64 else orjson.Fragment(str(value))
    if isinstance(value, dict):
        return {key: _erlangify(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_erlangify(item) for item in value]
    return value


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
