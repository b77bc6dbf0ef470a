"""A Phoenix Channels client probe, run from the control machine against a deployed server.

It proves what a real client needs: the WebSocket upgrade through the published port, a heartbeat reply, a join
of `echo:probe`, and a push answered by the echo and by the reply. (A later `tornado-phoenix probe` command will
replace this.)

    python tests/infra/verify/ws_probe.py ws://203.0.113.10:4000/socket
"""

from __future__ import annotations

import asyncio
import json
import sys
import time

from tornado.websocket import websocket_connect

__all__ = ["ProbeError", "probe"]


class ProbeError(AssertionError):
    pass


async def _recv_until(conn, wanted, deadline: float, seen: list) -> list:
    """Read frames until `wanted(frame)` is true for one; every frame read is appended to `seen`."""
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise ProbeError(f"timed out; frames received so far: {seen}")
        raw = await asyncio.wait_for(conn.read_message(), timeout=left)
        if raw is None:
            raise ProbeError(f"server closed the connection; frames received so far: {seen}")
        frame = json.loads(raw)
        seen.append(frame)
        if wanted(frame):
            return frame


async def _probe(url: str, timeout: float) -> dict:
    deadline = time.monotonic() + timeout
    ws_url = url.rstrip("/") + "/websocket?vsn=2.0.0"
    started = time.monotonic()
    conn = await asyncio.wait_for(websocket_connect(ws_url), timeout=timeout)
    seen: list = []
    try:
        conn.write_message(json.dumps([None, "1", "phoenix", "heartbeat", {}]))
        hb = await _recv_until(conn, lambda f: f[1] == "1", deadline, seen)
        if hb != [None, "1", "phoenix", "phx_reply", {"response": {}, "status": "ok"}]:
            raise ProbeError(f"unexpected heartbeat reply {hb}")

        conn.write_message(json.dumps(["10", "10", "echo:probe", "phx_join", {"probe": True}]))
        join = await _recv_until(conn, lambda f: f[1] == "10", deadline, seen)
        if join[2:4] != ["echo:probe", "phx_reply"] or join[4].get("status") != "ok":
            raise ProbeError(f"join of echo:probe was not ok: {join}")

        payload = {"body": "hello from the control machine", "n": 42}
        conn.write_message(json.dumps(["10", "11", "echo:probe", "probe", payload]))
        echo = reply = None
        while echo is None or reply is None:
            frame = await _recv_until(conn, lambda f: f[2] == "echo:probe", deadline, seen)
            if frame[3] == "probe" and frame[4] == payload:
                echo = frame
            elif frame[1] == "11" and frame[3] == "phx_reply":
                reply = frame
        if reply[4] != {"response": payload, "status": "ok"}:
            raise ProbeError(f"push reply was {reply[4]}, expected ok with the payload")
        return {"url": ws_url, "seconds": round(time.monotonic() - started, 3), "join": join, "echo": echo,
                "reply": reply}
    finally:
        conn.close()


def probe(url: str, timeout: float = 20.0) -> dict:
    """Run the probe against `ws://host:port/socket`; raises ProbeError (an AssertionError) on any failure."""
    return asyncio.run(_probe(url, timeout))


if __name__ == "__main__":
    result = probe(sys.argv[1] if len(sys.argv) > 1 else "ws://127.0.0.1:4000/socket")
    print(f"ok: {result['url']} heartbeat, join, echo and reply in {result['seconds']} s")
