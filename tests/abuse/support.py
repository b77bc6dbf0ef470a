"""Shared pieces of the abuse suite: scale, server RSS, the traceback check and witness sockets.

`TP_ABUSE_SCALE` (default 1, the CI size) multiplies case counts and socket counts; `make abuse` sets 5.
Witnesses are real WebSocket clients (Tornado's) joined on a `test:` presence topic in a thread of their
own: one shouts every `interval` seconds and each must receive every shout and never be disconnected.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import threading
import time

from tornado.websocket import websocket_connect

SCALE = float(os.environ.get("TP_ABUSE_SCALE", "1") or 1)


def scaled(n: int) -> int:
    return max(1, int(n * SCALE))


def rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for pid {pid}")


def tracebacks(server) -> list[str]:
    """Tracebacks in the server log other than a channel's own crash report (a channel that raises is logged
    with its traceback on purpose, like Phoenix's crash report; fuzzed `shout` payloads do that)."""
    lines = server.log_lines()
    return [lines[n - 1] + " | " + line for n, line in enumerate(lines)
            if "Traceback" in line and not (n and ("channel crashed" in lines[n - 1] or "join crashed" in lines[n - 1]))]


class Witnesses:
    """`count` sockets on one `test:` topic; `sent` shouts and what each witness received, measured live."""

    def __init__(self, port: int, count: int = 3, interval: float = 0.05) -> None:
        self.port = port
        self.count = count
        self.interval = interval
        self.topic = f"test:witness-{secrets.token_hex(4)}"
        self.sent = 0
        self.received = [0] * count
        self.closed: list[tuple[int, object]] = []
        self.rtts: list[float] = []  # shout -> own copy back at the shouter, seconds
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=lambda: asyncio.run(self._main()), daemon=True)
        self.error: BaseException | None = None

    def __enter__(self) -> Witnesses:
        self._thread.start()
        if not self._ready.wait(15):
            raise AssertionError(f"witnesses did not join: {self.error!r}")
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(15)

    async def _main(self) -> None:
        try:
            url = f"ws://127.0.0.1:{self.port}/socket/websocket?vsn=2.0.0"
            conns = [await websocket_connect(url) for _ in range(self.count)]
            for n, conn in enumerate(conns):
                await conn.write_message(json.dumps(["1", "1", self.topic, "phx_join", {"user_id": f"w{n}"}]))
            readers = [asyncio.ensure_future(self._read(n, conn)) for n, conn in enumerate(conns)]
            await asyncio.sleep(0.3)
            self._ready.set()
            shouter = conns[0]
            self._stamps: dict[int, float] = {}
            beat_at = time.monotonic() + 5
            while not self._stop.is_set():
                if time.monotonic() >= beat_at:  # the quiet witnesses must not reach TP_IDLE_TIMEOUT
                    beat_at = time.monotonic() + 5
                    for conn in conns:
                        await conn.write_message('[null,"hb","phoenix","heartbeat",{}]')
                seq = self.sent
                self._stamps[seq] = time.monotonic()
                await shouter.write_message(json.dumps(["1", str(seq + 10), self.topic, "shout", {"seq": seq}]))
                self.sent += 1
                await asyncio.sleep(self.interval)
            deadline = time.monotonic() + 5
            while min(self.received) < self.sent and time.monotonic() < deadline:
                await asyncio.sleep(0.02)
            for conn in conns:
                conn.close()
            for reader in readers:
                reader.cancel()
        except BaseException as exc:  # reported by the test through .error
            self.error = exc
            self._ready.set()

    async def _read(self, n: int, conn) -> None:
        while True:
            message = await conn.read_message()
            if message is None:
                if not self._stop.is_set():
                    self.closed.append((n, conn.close_code))
                return
            frame = json.loads(message)
            if frame[3] == "shout":
                self.received[n] += 1
                if n == 0:
                    stamp = self._stamps.pop(frame[4]["seq"], None)
                    if stamp is not None:
                        self.rtts.append(time.monotonic() - stamp)

    def check(self) -> None:
        """Every witness got every shout and none was disconnected."""
        assert self.error is None, f"witness error: {self.error!r}"
        assert self.closed == [], f"witnesses disconnected: {self.closed}"
        assert self.sent > 0
        assert self.received == [self.sent] * self.count, f"sent {self.sent}, received {self.received}"

    def p50_ms(self) -> float:
        rtts = sorted(self.rtts)
        return 1000 * rtts[len(rtts) // 2] if rtts else float("nan")
