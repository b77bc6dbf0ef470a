"""Server-wide and per-socket limits: the outbound byte budget, the message rate, and loop fairness.

Pure bookkeeping, no I/O: the WebSocket transport asks and acts on the answer (issue 10, defects 8 and 9).

Outbound budget. Every socket whose client reads slower than the server writes queues bytes in user space.
One socket may queue at most `TP_MAX_PENDING_BYTES` (default 8 MiB); all sockets together at most
`TP_MAX_PENDING_BYTES_TOTAL` (default 64 MiB). Over the total, the largest queues are closed first, with
1011, until the total is back under; each close logs one line:

    conn=12 close code=1011 reason='slow consumer: 31457280 bytes queued, server total 67112960 over
    TP_MAX_PENDING_BYTES_TOTAL=67108864 (largest queue closed first); 31452000 queued bytes dropped'

The queue of a closed socket is dropped (the frame being sent is finished, so the close frame that follows
is well-formed) and the close frame goes ahead of the dropped data.

Defaults, sized for the deployed container's 256 MiB memory limit: the process starts at ~40-48 MiB and each
joined socket costs ~9 KiB (README, connection limits), so 10,000 sockets (TP_MAX_CONNECTIONS) are ~130 MiB;
64 MiB of queued bytes plus the allocator's slack on them (~25 %) adds at most ~80 MiB, leaving ~45 MiB for
decoding frames (up to `TP_MAX_FRAME_SIZE`, 8 MB) and the kernel's socket buffers. 8 MiB per socket is twice
the largest `fault:*` storm (4 MiB); 8 such queues fill the total.

Message rate. A token bucket per socket: `TP_MAX_MESSAGES_PER_SECOND` (default 1000) tokens a second, at most
`TP_MESSAGE_BURST` (default 2000) saved up. A message with no token left closes the socket with 1008 (policy
violation) and one log line. Phoenix has no such limit; a real client sends a few messages a second.

Fairness. `FAIR_SLICE` messages in a row from one socket's read buffer, then the socket yields to the loop,
so other sockets' frames are read and answered between the slices of a flood.
"""

from __future__ import annotations

from typing import Protocol

__all__ = ["OutboundBudget", "TokenBucket", "FaultBudget", "FAIR_SLICE", "Queue"]

FAIR_SLICE = 32


class Queue(Protocol):
    """A socket as the budget sees it."""

    def pending_bytes(self) -> int:
        """Bytes queued in user space right now (0 once closed)."""
        ...


class OutboundBudget:
    """Tracks queued outbound bytes per socket and in total; says which sockets to close when over."""

    def __init__(self, total: int, per_socket: int) -> None:
        self.total_limit = total
        self.per_socket_limit = per_socket
        self._queued: dict[Queue, int] = {}  # only sockets last seen with something queued
        self._total = 0  # sum of _queued; may be stale high (queues drain unseen), refreshed when over

    @property
    def total(self) -> int:
        return self._total

    def update(self, owner: Queue, pending: int) -> list[tuple[Queue, int, str]]:
        """`owner` now has `pending` bytes queued. Returns the sockets to close, largest queue first, each
        with its queued bytes and the reason; the caller closes them (and calls `forget`)."""
        old = self._queued.get(owner, 0)
        if pending:
            self._queued[owner] = pending
        elif old:
            del self._queued[owner]
        self._total += pending - old
        if pending > self.per_socket_limit:
            self.forget(owner)
            return [(owner, pending, f"slow consumer: {pending} bytes queued, over "
                                     f"TP_MAX_PENDING_BYTES={self.per_socket_limit}")]
        if self._total <= self.total_limit:
            return []
        return self._over_total()

    def _over_total(self) -> list[tuple[Queue, int, str]]:
        self._refresh()
        victims: list[tuple[Queue, int, str]] = []
        if self._total <= self.total_limit:
            return victims
        over_at = self._total
        for owner, pending in sorted(self._queued.items(), key=lambda item: item[1], reverse=True):
            if self._total <= self.total_limit:
                break
            victims.append((owner, pending, f"slow consumer: {pending} bytes queued, server total {over_at} over "
                                            f"TP_MAX_PENDING_BYTES_TOTAL={self.total_limit} "
                                            "(largest queue closed first)"))
            self.forget(owner)
        return victims

    def _refresh(self) -> None:
        """Re-read every tracked queue: some have drained since they were last seen."""
        queued: dict[Queue, int] = {}
        for owner in self._queued:
            pending = owner.pending_bytes()
            if pending:
                queued[owner] = pending
        self._queued = queued
        self._total = sum(queued.values())

    def forget(self, owner: Queue) -> None:
        """The socket is closed (or closing): its queue no longer counts."""
        self._total -= self._queued.pop(owner, 0)


class TokenBucket:
    """`rate` tokens a second, at most `burst` saved; `take(now)` spends one or says there was none."""

    __slots__ = ("rate", "burst", "tokens", "stamp")

    def __init__(self, rate: float, burst: float, now: float) -> None:
        self.rate = rate
        self.burst = burst
        self.tokens = burst
        self.stamp = now

    def take(self, now: float) -> bool:
        tokens = self.tokens + (now - self.stamp) * self.rate
        self.stamp = now
        if tokens > self.burst:
            tokens = self.burst
        if tokens < 1.0:
            self.tokens = tokens
            return False
        self.tokens = tokens - 1.0
        return True


class FaultBudget:
    """What `fault:*` may hold at once, per socket and per server (issue 10, defect 13): timers (`delay`,
    `push_after`), the bytes `push_after` payloads keep alive, and running `broadcast_storm`s.

    `acquire(...)` returns None when granted, else the reason for the error reply; every grant is given back
    with `release(...)` (when the timer fires or is cancelled, when the storm ends or stops)."""

    TIMERS_PER_SOCKET = 100
    TIMERS_PER_SERVER = 10_000
    HELD_BYTES_PER_SOCKET = 1024 * 1024
    HELD_BYTES_PER_SERVER = 16 * 1024 * 1024
    STORMS_PER_SOCKET = 1
    STORMS_PER_SERVER = 4

    def __init__(self) -> None:
        self.timers = 0
        self.held_bytes = 0
        self.storms = 0
        self._sockets: dict[object, list[int]] = {}  # socket -> [timers, held bytes, storms]

    def acquire_timer(self, socket: object, held: int) -> str | None:
        mine = self._sockets.get(socket) or [0, 0, 0]
        if mine[0] >= self.TIMERS_PER_SOCKET:
            return f"too many fault timers on this socket (at most {self.TIMERS_PER_SOCKET} pending)"
        if self.timers >= self.TIMERS_PER_SERVER:
            return f"too many fault timers on this server (at most {self.TIMERS_PER_SERVER} pending)"
        if mine[1] + held > self.HELD_BYTES_PER_SOCKET:
            return f"pending push_after payloads on this socket would exceed {self.HELD_BYTES_PER_SOCKET} bytes"
        if self.held_bytes + held > self.HELD_BYTES_PER_SERVER:
            return f"pending push_after payloads on this server would exceed {self.HELD_BYTES_PER_SERVER} bytes"
        mine[0] += 1
        mine[1] += held
        self._sockets[socket] = mine
        self.timers += 1
        self.held_bytes += held
        return None

    def release_timer(self, socket: object, held: int) -> None:
        self.timers -= 1
        self.held_bytes -= held
        self._adjust(socket, 0, -1, -held)

    def acquire_storm(self, socket: object) -> str | None:
        mine = self._sockets.get(socket) or [0, 0, 0]
        if mine[2] >= self.STORMS_PER_SOCKET:
            return "a broadcast_storm from this socket is still running"
        if self.storms >= self.STORMS_PER_SERVER:
            return f"too many broadcast_storms running on this server (at most {self.STORMS_PER_SERVER})"
        mine[2] += 1
        self._sockets[socket] = mine
        self.storms += 1
        return None

    def release_storm(self, socket: object) -> None:
        self.storms -= 1
        self._adjust(socket, 2, -1, 0)

    def _adjust(self, socket: object, index: int, delta: int, held: int) -> None:
        mine = self._sockets.get(socket)
        if mine is None:
            return
        mine[index] += delta
        mine[1] += held
        if not any(mine):
            del self._sockets[socket]
