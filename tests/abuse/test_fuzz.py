"""Frame fuzzer: hypothesis-generated valid Phoenix frames, mutated ones and binary frames against one real
server, while witness sockets on a `test:` presence topic check that every shout still arrives and none of
them is disconnected (issue 10 §4).

Each case is one WebSocket frame on a fuzz socket, followed by a heartbeat: the case is over when the
heartbeat's reply comes back (the server handled it) or the server closes the fuzz socket with a code for
bad input (then the next case reconnects). A connection that ends without a close frame fails the case.
Cases: `FUZZ_CASES` per test (x TP_ABUSE_SCALE); 3 tests, so ~4,500 in CI and ~22,500 under `make abuse`.
"""

from __future__ import annotations

import collections
import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.abuse.support import Witnesses, rss_kib, scaled, tracebacks
from tests.support.live_server import LiveServer
from tests.support.rawws import RawWebSocket

FUZZ_CASES = 1500
BAD_INPUT_CLOSES = {1007, 1008, 1009, 1011}
V2 = "/socket/websocket?vsn=2.0.0"


class Fuzzer:
    def __init__(self, port: int) -> None:
        self.port = port
        self.ws: RawWebSocket | None = None
        self.cases = 0
        self.closes: collections.Counter[int | None] = collections.Counter()
        self.heartbeat = 0

    def case(self, opcode: int, data: bytes) -> None:
        if self.ws is None:
            self.ws = RawWebSocket(self.port, V2)
        ws = self.ws
        self.cases += 1
        self.heartbeat += 1
        marker = f"hb{self.heartbeat}"
        try:
            ws.send_frame(opcode, data)
            ws.send_text(json.dumps([None, marker, "phoenix", "heartbeat", {}]))
        except OSError:
            pass  # closed while we wrote: the close frame is read below
        needle = f'"{marker}","phoenix","phx_reply"'.encode()
        while True:
            got = ws.recv(10)
            if got.kind == "close":
                assert got.code in BAD_INPUT_CLOSES, f"closed with {got.code} after {data[:200]!r}"
                self.closes[got.code] += 1
                ws.close()
                self.ws = None
                return
            assert got.kind != "eof", f"connection dropped without a close frame after {data[:200]!r}"
            if got.kind == "text" and needle in got.data:
                return


@pytest.fixture(scope="module")
def fuzz():
    # The message rate limit has tests of its own; here every case must reach the decoder.
    server = LiveServer(env={"TP_MAX_MESSAGES_PER_SECOND": "1000000", "TP_MESSAGE_BURST": "1000000",
                             "TP_LOG_LEVEL": "info"}).start()
    baseline = rss_kib(server.proc.pid)
    with Witnesses(server.port) as witnesses:
        fuzzer = Fuzzer(server.port)
        yield fuzzer
    witnesses.check()
    assert tracebacks(server) == []
    assert server.proc.poll() is None
    rss = rss_kib(server.proc.pid)
    print(f"\nfuzz: {fuzzer.cases} cases, closes {dict(fuzzer.closes)}, witness shouts {witnesses.sent} "
          f"all received, RSS {baseline // 1024} -> {rss // 1024} MiB")
    assert rss < baseline + 64 * 1024
    server.stop()


# ---- strategies -------------------------------------------------------------------------------------------

scalars = (st.none() | st.booleans() | st.integers() | st.integers(min_value=10**18, max_value=10**60)
           | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=20))
json_values = st.recursive(scalars, lambda c: st.lists(c, max_size=4) | st.dictionaries(st.text(max_size=6), c,
                                                                                       max_size=4), max_leaves=20)
topics = st.sampled_from(["echo:fz", "test:fz", "bench:fz", "phoenix", "nope:x", "echo:", ""]) | st.text(max_size=12)
events = st.sampled_from(["phx_join", "phx_leave", "heartbeat", "shout", "e", "phx_reply"]) | st.text(max_size=8)
refs = st.none() | st.text(max_size=4) | st.integers(-5, 10**20)
valid_frames = st.tuples(refs, refs, topics, events, json_values | st.dictionaries(st.text(max_size=4), json_values))


def _nest(depth: int) -> bytes:
    return b"[" * depth + b"1" + b"]" * depth


SPLICES = [b"1e400", b"-1e400", b'"\\ud800"', b'"\\udfff"', b"123456789012345678901234567890", b"9" * 5000,
           b"NaN", b"Infinity", b"[", b"}", b"\xff\xfe", b"\x00", b'"\xc3"', _nest(300), _nest(1000), _nest(1100),
           b'{"a":1,"a":2}', b"\"" + b"\\" * 7 + b"\""]


@st.composite
def mutated_frames(draw) -> bytes:
    data = bytearray(json.dumps(list(draw(valid_frames))).encode())
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["flip", "cut", "splice", "insert", "dup"]))
        at = draw(st.integers(0, len(data)))
        if kind == "flip" and data:
            data[min(at, len(data) - 1)] = draw(st.integers(0, 255))
        elif kind == "cut":
            data = data[:at]
        elif kind == "splice":
            data[at:at + draw(st.integers(0, 3))] = draw(st.sampled_from(SPLICES))
        elif kind == "insert":
            data[at:at] = draw(st.binary(max_size=8))
        else:
            data += data[at:]
    return bytes(data)


@st.composite
def binary_frames(draw) -> bytes:
    # V2 binary: kind (0 push, 1 reply, 2 broadcast), then length-prefixed fields, then the payload bytes.
    kind = draw(st.integers(0, 255) | st.sampled_from([0, 0, 0, 1, 2]))
    fields = [draw(st.binary(max_size=6) | st.sampled_from([b"1", b"echo:fz", b"test:fz", b"e", b"phx_join"]))
              for _ in range(draw(st.integers(0, 4)))]
    head = bytes([kind]) + bytes(len(f) % 256 for f in fields) + b"".join(fields)
    data = bytearray(head + draw(st.binary(max_size=64)))
    if draw(st.booleans()) and data:
        data[draw(st.integers(0, len(data) - 1))] = draw(st.integers(0, 255))
    return bytes(data)


_settings = settings(max_examples=scaled(FUZZ_CASES), deadline=None, derandomize=False, database=None,
                     suppress_health_check=list(HealthCheck))


@_settings
@given(frame=valid_frames)
def test_fuzz_valid_frames(fuzz, frame):
    fuzz.case(0x1, json.dumps(list(frame)).encode())


@_settings
@given(data=mutated_frames())
def test_fuzz_mutated_text_frames(fuzz, data):
    fuzz.case(0x1, data)


@_settings
@given(data=binary_frames())
def test_fuzz_binary_frames(fuzz, data):
    fuzz.case(0x2, data)
