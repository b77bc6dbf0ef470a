"""Driving it from your backend: callback latency and server-API broadcast throughput, measured side by side.

    .venv/bin/python bench/backend_api.py [--pushes 2000] [--members 20] [--messages 10000] [--batch 100]

Starts a real server (subprocess) with TP_EVENT_URL pointing at a minimal real backend (a second subprocess, a
Tornado app that checks each signature and answers `{"reply": <payload>}`), then:

  1. latency, one socket, closed loop: push -> reply on `echo:*` (no callback) and on `chat:*` (one signed
     callback per push); p50/p99 of each, their difference (what a callback adds), and the backend's HTTP
     round trip measured directly from this process (AsyncHTTPClient, same body) for comparison;
  2. throughput: `--members` sockets join `bench:api`; POST /api/broadcast `--messages` messages, in batches
     of `--batch` (sequential requests), then one message per request (8 requests in flight); time from the
     first request until every member has received every message: messages/s and deliveries/s, and the
     server's CPU time per message (/proc), since the Python members and the HTTP client share this process
     and are usually the limit on one machine.

Loopback only; every wait has a deadline. Writes bench/results/backend-api-<stamp>.json and prints a table.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import hmac
import json
import os
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
SECRET = "bench-secret"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q / 100 * (len(ordered) - 1))))]


# ---- the backend (subprocess) -----------------------------------------------------------------------------


def serve_backend(port: int) -> None:
    import tornado.ioloop
    import tornado.web

    class Event(tornado.web.RequestHandler):
        def post(self) -> None:
            ts = self.request.headers["X-TP-Timestamp"]
            want = "sha256=" + hmac.new(SECRET.encode(), ts.encode() + b"." + self.request.body,
                                        hashlib.sha256).hexdigest()
            if not hmac.compare_digest(want, self.request.headers["X-TP-Signature"]):
                self.set_status(401)
                self.finish()
                return
            body = json.loads(self.request.body)
            self.set_header("Content-Type", "application/json")
            self.finish(json.dumps({"reply": body.get("payload", {})}))

    app = tornado.web.Application([(r"/event", Event)])
    app.listen(port, "127.0.0.1")
    tornado.ioloop.IOLoop.current().start()


# ---- processes ---------------------------------------------------------------------------------------------


def wait_http(url: str, deadline: float) -> None:
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(url, timeout=1)
            return
        except urllib.error.HTTPError:
            return  # it answers
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"{url} did not answer")


def start(opts: argparse.Namespace) -> tuple[subprocess.Popen, subprocess.Popen, int, int]:
    backend_port, port = free_port(), free_port()
    backend = subprocess.Popen([sys.executable, __file__, "--serve-backend", str(backend_port)])
    env = {**os.environ, "TP_API_SECRET": SECRET, "TP_JOIN_TOPICS": "chat:*", "TP_LOG_LEVEL": opts.log_level,
           "TP_EVENT_URL": f"http://127.0.0.1:{backend_port}/event", "TP_FAULTS": "off"}
    server = subprocess.Popen([sys.executable, "-m", "tornado_phoenix", "serve", "--port", str(port)], env=env,
                              cwd=REPO, stdout=subprocess.DEVNULL)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:  # the backend: its port accepts
        try:
            socket.create_connection(("127.0.0.1", backend_port), timeout=1).close()
            break
        except OSError:
            time.sleep(0.05)
    wait_http(f"http://127.0.0.1:{port}/health", deadline)
    return server, backend, port, backend_port


# ---- clients -------------------------------------------------------------------------------------------------


async def connect(port: int):
    import tornado.websocket

    return await tornado.websocket.websocket_connect(f"ws://127.0.0.1:{port}/socket/websocket?vsn=2.0.0",
                                                     max_message_size=16 * 1024 * 1024)


async def call(ws, frame: list, timeout: float = 10.0) -> list:
    await ws.write_message(json.dumps(frame))
    while True:
        message = await asyncio.wait_for(ws.read_message(), timeout)
        if message is None:
            raise RuntimeError("socket closed")
        decoded = json.loads(message)
        if decoded[3] == "phx_reply" and decoded[1] == frame[1]:
            return decoded


async def latency(port: int, backend_port: int, pushes: int) -> dict:
    import tornado.httpclient

    ws = await connect(port)
    results: dict[str, dict] = {}
    for topic in ("echo:bench", "chat:bench"):
        joined = await call(ws, ["1", "1", topic, "phx_join", {}])
        assert joined[4]["status"] == "ok", joined
        samples = []
        for i in range(pushes + 100):
            t0 = time.perf_counter()
            reply = await call(ws, ["1", str(i + 10), topic, "ping", {"i": i}])
            if i >= 100:  # warm-up
                samples.append((time.perf_counter() - t0) * 1e6)
            assert reply[4] == {"response": {"i": i}, "status": "ok"}, reply
        await call(ws, ["1", "9", topic, "phx_leave", {}])
        results[topic] = {"p50_us": pct(samples, 50), "p99_us": pct(samples, 99), "mean_us": statistics.mean(samples)}
    ws.close()
    client = tornado.httpclient.AsyncHTTPClient(force_instance=True)
    samples = []
    for i in range(pushes + 100):
        body = json.dumps({"type": "event", "topic": "chat:bench", "event": "ping", "payload": {"i": i}}).encode()
        ts = str(int(time.time()))
        sig = "sha256=" + hmac.new(SECRET.encode(), ts.encode() + b"." + body, hashlib.sha256).hexdigest()
        t0 = time.perf_counter()
        await client.fetch(f"http://127.0.0.1:{backend_port}/event", method="POST", body=body,
                           headers={"X-TP-Timestamp": ts, "X-TP-Signature": sig, "Content-Type": "application/json"})
        if i >= 100:
            samples.append((time.perf_counter() - t0) * 1e6)
    results["direct HTTP to the backend"] = {"p50_us": pct(samples, 50), "p99_us": pct(samples, 99),
                                             "mean_us": statistics.mean(samples)}
    return results


async def throughput(port: int, members: int, messages: int, batch: int, server_pid: int) -> dict:
    import tornado.httpclient

    sockets = [await connect(port) for _ in range(members)]
    for ws in sockets:
        joined = await call(ws, ["1", "1", "bench:api", "phx_join", {}])
        assert joined[4]["status"] == "ok"
    client = tornado.httpclient.AsyncHTTPClient(force_instance=True, max_clients=16)
    url = f"http://127.0.0.1:{port}/api/broadcast"
    headers = {"Authorization": f"Bearer {SECRET}", "Content-Type": "application/json"}
    out = {}

    async def drain(ws, expect: int) -> None:
        got = 0
        while got < expect:
            message = await asyncio.wait_for(ws.read_message(), 60)
            if message is None:
                raise RuntimeError("member closed")
            if '"m"' in message:
                got += 1

    for mode in ("batched", "single"):
        readers = [asyncio.ensure_future(drain(ws, messages)) for ws in sockets]
        cpu0 = cpu_seconds(server_pid)
        t0 = time.perf_counter()
        if mode == "batched":
            for start in range(0, messages, batch):
                body = json.dumps({"messages": [{"topic": "bench:api", "event": "m", "payload": {"i": i}}
                                                for i in range(start, min(messages, start + batch))]})
                response = await client.fetch(url, method="POST", body=body, headers=headers)
                assert json.loads(response.body)["ok"]
            requests = (messages + batch - 1) // batch
        else:
            queue = iter(range(messages))

            async def sender(queue=queue) -> None:
                for i in queue:
                    body = json.dumps({"topic": "bench:api", "event": "m", "payload": {"i": i}})
                    await client.fetch(url, method="POST", body=body, headers=headers)

            await asyncio.gather(*(sender() for _ in range(8)))
            requests = messages
        sent = time.perf_counter() - t0
        await asyncio.gather(*readers)
        elapsed = time.perf_counter() - t0
        cpu = cpu_seconds(server_pid) - cpu0
        out[mode] = {"server_cpu_s": round(cpu, 3), "server_cpu_us_per_message": round(cpu / messages * 1e6, 1),
                     "server_bound_messages_per_s": round(messages / cpu) if cpu else None,"requests": requests, "messages": messages, "members": members, "api_s": round(sent, 3),
                     "all_delivered_s": round(elapsed, 3), "messages_per_s": round(messages / elapsed),
                     "deliveries_per_s": round(messages * members / elapsed),
                     "requests_per_s": round(requests / sent)}
    for ws in sockets:
        ws.close()
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--serve-backend", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--pushes", type=int, default=2000)
    parser.add_argument("--members", type=int, default=20)
    parser.add_argument("--messages", type=int, default=10000)
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--log-level", default="warning", help="the server's TP_LOG_LEVEL (info logs every callback)")
    opts = parser.parse_args(argv)
    if opts.serve_backend:
        serve_backend(opts.serve_backend)
        return 0
    server, backend, port, backend_port = start(opts)
    try:
        lat = asyncio.run(latency(port, backend_port, opts.pushes))
        thr = asyncio.run(throughput(port, opts.members, opts.messages, opts.batch, server.pid))
    finally:
        for proc in (server, backend):
            proc.terminate()
            proc.wait(10)
    print(f"callback latency, one socket, closed loop, {opts.pushes} pushes (TP_LOG_LEVEL={opts.log_level}):")
    for name, row in lat.items():
        print(f"  {name:28s} p50 {row['p50_us'] / 1000:6.2f} ms   p99 {row['p99_us'] / 1000:6.2f} ms")
    added50 = lat["chat:bench"]["p50_us"] - lat["echo:bench"]["p50_us"]
    added99 = lat["chat:bench"]["p99_us"] - lat["echo:bench"]["p99_us"]
    print(f"  a callback adds              p50 {added50 / 1000:6.2f} ms   p99 {added99 / 1000:6.2f} ms "
          f"(push with callback / echo push, p50: {lat['chat:bench']['p50_us'] / lat['echo:bench']['p50_us']:.1f}x)")
    print(f"API broadcast into bench:api with {opts.members} members:")
    for mode, row in thr.items():
        print(f"  {mode:8s} {row['requests']:6d} requests  {row['messages_per_s']:7d} messages/s  "
              f"{row['deliveries_per_s']:8d} deliveries/s  ({row['requests_per_s']} requests/s); server CPU "
              f"{row['server_cpu_us_per_message']} us/message -> {row['server_bound_messages_per_s']} messages/s "
              "if the server alone were the limit")
    results = BENCH / "results"
    results.mkdir(exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    path = results / f"backend-api-{stamp}.json"
    path.write_text(json.dumps({"opts": vars(opts), "latency": lat, "throughput": thr,
                                "loadavg": os.getloadavg()}, indent=2))
    print(f"wrote {path.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
