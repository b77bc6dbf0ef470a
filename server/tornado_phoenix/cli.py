"""`tornado-phoenix serve | probe | broadcast`: parses flags (each serve flag also a TP_* variable), configures logging, runs."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys

from . import __version__, gcpolicy
from .config import OPTIONS, Settings, SettingsError, parse_bool

__all__ = ["main"]

log = logging.getLogger("tornado_phoenix")


def _serve_parser(sub: argparse._SubParsersAction) -> None:
    serve = sub.add_parser("serve", help="run the Phoenix Channels server")
    for option in OPTIONS:
        serve.add_argument(
            "--" + option.name.replace("_", "-"),
            type=parse_bool if option.kind is bool else option.kind,
            default=None,
            metavar="on|off" if option.kind is bool else None,
            help=f"{option.help} [env {option.env}, default {option.default!r}]",
        )
    # Internal: set by the --workers supervisor on the processes it starts (workers.py).
    serve.add_argument("--worker-index", type=int, default=None, help=argparse.SUPPRESS)
    serve.add_argument("--worker-stats-dir", default=None, help=argparse.SUPPRESS)


def _probe_parser(sub: argparse._SubParsersAction) -> None:
    from .probe import add_arguments

    probe = sub.add_parser(
        "probe",
        help="check a live Phoenix Channels server end to end (exit 1 if a step fails)",
        description="Connect, heartbeat, echo round trip, presence and shout on two sockets, leave, a "
        "server-side disconnect through fault:* (skipped when the server has none), reconnect and rejoin, "
        "clean close. One line per step: ok/FAIL/skip, latency, detail.",
    )
    add_arguments(probe)


def _broadcast_parser(sub: argparse._SubParsersAction) -> None:
    cmd = sub.add_parser(
        "broadcast",
        help="broadcast one event to a topic through the server API (POST /api/broadcast)",
        description="POST /api/broadcast on a running server: every member of TOPIC, on every node, gets EVENT "
        "with PAYLOAD. Needs the server's TP_API_SECRET. Exit 0 when the server accepted it, 1 otherwise.",
    )
    cmd.add_argument("topic", metavar="TOPIC")
    cmd.add_argument("event", metavar="EVENT")
    cmd.add_argument("payload", metavar="PAYLOAD", nargs="?", default="{}", help="a JSON object (default {})")
    cmd.add_argument("--url", required=True, help="the server's (or TP_API_BIND's) base URL, e.g. http://127.0.0.1:4000")
    cmd.add_argument("--secret", default=None, help="the API secret [env TP_API_SECRET; prefer the variable: "
                     "a flag shows in the process list]")
    cmd.add_argument("--timeout", type=float, default=10.0, help="seconds to wait for the server (default 10)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tornado-phoenix", description="Phoenix Channels server on Tornado")
    parser.add_argument("--version", action="version", version=f"tornado-phoenix {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    _serve_parser(sub)
    _probe_parser(sub)
    _broadcast_parser(sub)
    _token_parser(sub)
    return parser


def _token_parser(sub: argparse._SubParsersAction) -> None:
    token = sub.add_parser(
        "token",
        help="print a JWT signed with TP_JWT_SECRET, for testing clients",
        description="Prints one HS* JWT (TP_JWT_ALGORITHMS' first, default HS256) signed with TP_JWT_SECRET, "
        "with sub, iat, exp and, when set, TP_JWT_AUDIENCE as aud and TP_JWT_ISSUER as iss.",
    )
    token.add_argument("--sub", required=True, help="the subject (user id; the presence key)")
    token.add_argument("--ttl", default="1h", help="lifetime: 90s, 15m, 1h, 2d (default 1h)")
    token.add_argument("--channels", action="append", default=None, metavar="PATTERN",
                       help="topic pattern the token may join, e.g. 'room:*' (repeat or comma-separate)")
    token.add_argument("--claim", action="append", default=[], metavar="K=V",
                       help="extra claim; V is parsed as JSON when it can be (faults=true), else a string")


def configure_logging(level: str, fmt: str = "text", protocol_errors: str = "short",
                      worker: int | None = None) -> None:
    from .logs import configure

    configure(level, fmt, protocol_errors)
    if worker is not None:  # a --workers process: its index after the logger name, e.g. tornado_phoenix.pubsub[w2]
        tag = f"[w{worker}]"

        def add_tag(record: logging.LogRecord) -> bool:
            if not record.name.endswith(tag):
                record.name += tag
            return True

        for handler in logging.getLogger().handlers:
            handler.addFilter(add_tag)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = build_parser().parse_args(argv)
    if args.command == "serve":
        overrides = {option.name: getattr(args, option.name) for option in OPTIONS}
        try:
            settings = Settings.from_env(**overrides)
        except SettingsError as exc:
            print(f"tornado-phoenix: bad setting: {exc}", file=sys.stderr)
            return 2
        configure_logging(settings.log_level, settings.log_format, settings.log_protocol_errors, args.worker_index)
        if args.worker_index is None and settings.worker_count() > 1:
            from .workers import supervise

            return supervise(settings, argv)
        gcpolicy.install()  # full GC passes over many idle sockets cost a third of the CPU of a join ramp
        return asyncio.run(serve(settings, args.worker_index, args.worker_stats_dir))
    if args.command == "probe":
        from .probe import main as probe_main

        return probe_main(args)
    if args.command == "broadcast":
        return broadcast(args)
    if args.command == "token":
        return _token(args)
    return 2


def broadcast(args: argparse.Namespace) -> int:
    import json
    import os
    import urllib.error
    import urllib.request

    try:
        payload = json.loads(args.payload)
    except ValueError as exc:
        print(f"tornado-phoenix broadcast: PAYLOAD is not valid JSON: {exc}", file=sys.stderr)
        return 2
    secret = args.secret if args.secret is not None else os.environ.get("TP_API_SECRET", "")
    if not secret:
        print("tornado-phoenix broadcast: no secret: set TP_API_SECRET (the server's) or pass --secret",
              file=sys.stderr)
        return 2
    url = args.url.rstrip("/") + "/api/broadcast"
    body = json.dumps({"topic": args.topic, "event": args.event, "payload": payload}).encode()
    request = urllib.request.Request(url, data=body, method="POST", headers={
        "Content-Type": "application/json", "Authorization": f"Bearer {secret}"})
    try:
        with urllib.request.urlopen(request, timeout=args.timeout) as response:
            print(response.read().decode())
            return 0
    except urllib.error.HTTPError as exc:
        detail = exc.read().decode("utf-8", "replace")[:500]
        hint = {401: " (wrong secret? it must equal the server's TP_API_SECRET)",
                404: " (is TP_API_SECRET set on the server? with TP_API_BIND the API has its own address)"}
        print(f"tornado-phoenix broadcast: {url}: HTTP {exc.code} {detail}{hint.get(exc.code, '')}", file=sys.stderr)
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        print(f"tornado-phoenix broadcast: {url}: {reason} (is the server running at --url?)", file=sys.stderr)
    return 1


def _token(args: argparse.Namespace) -> int:
    import json

    from .auth import issue_token, parse_duration

    try:
        settings = Settings.from_env()
        ttl = parse_duration(args.ttl)
    except (SettingsError, ValueError) as exc:
        print(f"tornado-phoenix token: {exc}", file=sys.stderr)
        return 2
    if not settings.jwt_secret:
        print("tornado-phoenix token: set TP_JWT_SECRET (the server's HMAC secret) to sign tokens", file=sys.stderr)
        return 2
    algorithm = settings.jwt_algorithms.split(",")[0].strip()
    if not algorithm.startswith("HS"):
        print(f"tornado-phoenix token: TP_JWT_ALGORITHMS={settings.jwt_algorithms} is not HS*: this command signs "
              "with TP_JWT_SECRET only", file=sys.stderr)
        return 2
    claims = {}
    for item in args.claim:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            print(f"tornado-phoenix token: --claim {item!r}: expected key=value", file=sys.stderr)
            return 2
        try:
            claims[key] = json.loads(raw)
        except ValueError:
            claims[key] = raw
    channels = [c.strip() for group in args.channels or [] for c in group.split(",") if c.strip()] or None
    print(issue_token(settings.jwt_secret, args.sub, ttl, algorithm=algorithm, channels=channels, claims=claims,
                      audience=settings.jwt_audience, issuer=settings.jwt_issuer))
    return 0


async def serve(settings: Settings, worker_index: int | None = None, stats_dir: str | None = None) -> int:
    from .server import ApiBindError, Server

    try:
        server = Server(settings)
    except SettingsError as exc:  # auth.AuthError: a key, secret or algorithm list that cannot work
        log.error("bad setting: %s", exc)
        return 2
    try:
        server.start(reuse_port=worker_index is not None)
    except ApiBindError as exc:
        log.error("%s", exc)
        return 1
    except OSError as exc:
        log.error("cannot listen on %s:%s: %s (is another process using the port? set TP_PORT/--port)",
                  settings.host, settings.port, exc.strerror or exc)
        return 1
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    if worker_index is not None and stats_dir:
        from .workers import WorkerBoard

        server.endpoint.workers = WorkerBoard(stats_dir, worker_index, server.endpoint)
        server.endpoint.workers.start()
    await stop.wait()
    if server.endpoint.workers is not None:
        server.endpoint.workers.stop()
    await server.shutdown()
    return 0
