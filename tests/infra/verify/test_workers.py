"""From the control machine, through the published port: every worker is up with its pub/sub connected, and with
several workers a broadcast from one worker reaches the members on the others (through Redis).

    GET /health  -> {"status":"ok","workers":[{"index":0,"connections":5,"pubsub":{"backend":"redis","connected":true}},
                                              {"index":1,"connections":7,...}],...}
    12 sockets:  -> ["1","1","test:verify-3f2a","phx_join",{"user_id":"verify-0"}]   (until two workers hold some)
    socket 0:    -> ["1","2","test:verify-3f2a","shout",{"verify":"9c1e..."}]
    every one:   <- [null,null,"test:verify-3f2a","shout",{"verify":"9c1e..."}]

SO_REUSEPORT spreads new connections over the workers by a hash of their addresses, so the sockets are opened in
rounds (at most ROUNDS x BATCH) until /health shows new connections on at least two workers.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import time
import urllib.request

import pytest
from tornado_phoenix.probe import ProbeSocket, socket_url

BATCH = 12
ROUNDS = 3
TIMEOUT = 20.0


def health(public_host: str, port: int) -> dict:
    with urllib.request.urlopen(f"http://{public_host}:{port}/health", timeout=10) as resp:
        assert resp.status == 200
        return json.loads(resp.read())


def settled_health(public_host: str, port: int, workers: int, seconds: float = 30.0) -> dict:
    """/health once it lists every worker with its pub/sub connected, or the last answer after `seconds`."""
    deadline = time.monotonic() + seconds
    while True:
        body = health(public_host, port)
        listed = body.get("workers") or []
        if (body["status"] == "ok" and (workers == 1 or len(listed) == workers)) or time.monotonic() > deadline:
            return body
        time.sleep(1)


def per_worker(body: dict) -> dict[int, int]:
    return {worker["index"]: worker["connections"] for worker in body.get("workers") or []}


def test_every_worker_is_up_with_its_pubsub_connected(app, public_host):
    workers = int(app.get("workers", 1))
    body = settled_health(public_host, app["port"], workers)
    assert body["status"] == "ok", json.dumps(body, indent=2)
    if workers == 1:
        return
    listed = body["workers"]
    assert sorted(worker["index"] for worker in listed) == list(range(workers)), json.dumps(listed, indent=2)
    assert all(worker["pubsub"]["backend"] == "redis" for worker in listed), listed
    assert all(worker["pubsub"]["connected"] for worker in listed), listed
    assert len({worker["pid"] for worker in listed}) == workers


async def _broadcast_across_workers(public_host: str, port: int, workers: int) -> tuple[int, dict[int, int]]:
    topic = f"test:verify-{secrets.token_hex(4)}"
    url = socket_url(f"ws://{public_host}:{port}/socket", {})
    before = per_worker(await asyncio.to_thread(settled_health, public_host, port, workers))
    sockets: list[tuple[ProbeSocket, str]] = []
    gained: dict[int, int] = {}
    try:
        for _round in range(ROUNDS):
            for _ in range(BATCH):
                sock = await ProbeSocket.open(f"s{len(sockets)}", url, TIMEOUT)
                join_ref, status, response = await sock.join(topic, {"user_id": f"verify-{len(sockets)}"})
                assert status == "ok", f"join {topic} on {sock.label}: {status} {response}"
                sockets.append((sock, join_ref))
            # Each worker publishes its figures every 0.5 s: a few reads of /health see the new sockets.
            for _ in range(10):
                now = per_worker(await asyncio.to_thread(health, public_host, port))
                gained = {index: count - before.get(index, 0) for index, count in now.items()}
                if sum(1 for delta in gained.values() if delta > 0) >= 2:
                    break
                await asyncio.sleep(0.5)
            if sum(1 for delta in gained.values() if delta > 0) >= 2:
                break
        assert sum(1 for delta in gained.values() if delta > 0) >= 2, (
            f"all {len(sockets)} sockets landed on one worker (new connections per worker: {gained}); "
            "SO_REUSEPORT should spread them")
        nonce = secrets.token_hex(8)
        sender, join_ref = sockets[0]
        status, response = await sender.request(join_ref, topic, "shout", {"verify": nonce})
        assert status == "ok", f"shout: {status} {response}"
        for sock, _ref in sockets:
            await sock.wait(f"the shout on {sock.label}",
                            lambda f: f[2] == topic and f[3] == "shout" and f[4] == {"verify": nonce})
        return len(sockets), gained
    finally:
        for sock, _ref in sockets:
            sock.abort()


def test_a_broadcast_reaches_the_members_on_every_worker(app, public_host):
    if int(app.get("workers", 1)) < 2:
        pytest.skip(f"one worker (pub/sub {app.get('pubsub', 'local')}): no broadcast crosses workers here")
    count, gained = asyncio.run(_broadcast_across_workers(public_host, app["port"], int(app["workers"])))
    print(f"{count} sockets over the workers {gained}: every one received the shout")
