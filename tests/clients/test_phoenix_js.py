"""The official Phoenix JS client (npm `phoenix` 1.7.x and 1.8.x over `ws`) against the real server.

Each test starts the real server (`live_server`), runs one Node scenario from tests/js/scenarios/ with
`node <script> <client> <url>` and asserts on the JSON it prints (every raw frame both ways plus what the
client library surfaced). The clients are pinned in tests/js/package-lock.json (`make install` runs
`npm ci`; this module runs it too when tests/js/node_modules is missing). A client that cannot connect
fails its test; nothing here is skipped.
"""

from __future__ import annotations

import collections
import difflib
import json
import re
import shutil
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.support.live_server import LiveServer

pytestmark = pytest.mark.clients

REPO = Path(__file__).resolve().parents[2]
JS_DIR = REPO / "tests" / "js"
SCENARIOS = JS_DIR / "scenarios"
GOLDEN = REPO / "tests" / "golden" / "phoenix-1.7.24" / "js-client.txt"

# client name on the node command line -> the npm version the golden transcript recorded for it
CLIENTS = {"1.7": "1.7.23", "1.8": "1.8.16"}
CLIENT_PARAMS = [pytest.param(name, id=f"phoenix-{name}") for name in CLIENTS]

NODE_TIMEOUT = 45.0  # each script has its own global timeout (20-30 s) below this


# --------------------------------------------------------------------------------------------- node runner


@pytest.fixture(scope="session")
def node_clients() -> str:
    """The node binary, with tests/js/node_modules installed from the lock file (npm ci) if missing."""
    node = shutil.which("node")
    assert node, "node is not installed (the official JS client tests need Node.js >= 18 and npm)"
    installed = all(
        (JS_DIR / "node_modules" / pkg / "package.json").is_file() for pkg in ("phoenix", "phoenix18", "ws")
    )
    if not installed:
        npm = shutil.which("npm")
        assert npm, "npm is not installed and tests/js/node_modules is missing"
        proc = subprocess.run(
            [npm, "ci", "--no-audit", "--no-fund", "--loglevel=error"],
            cwd=JS_DIR,
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert proc.returncode == 0, f"npm ci in tests/js failed:\n{proc.stdout}\n{proc.stderr}"
    for pkg, want in (("phoenix", CLIENTS["1.7"]), ("phoenix18", CLIENTS["1.8"]), ("ws", "8.23.0")):
        got = json.loads((JS_DIR / "node_modules" / pkg / "package.json").read_text())["version"]
        assert got == want, (
            f"tests/js/node_modules/{pkg} is {got}, the lock pins {want}: run `npm ci` in tests/js"
        )
    return node


def _parse_result(stdout: str) -> dict | None:
    for line in reversed(stdout.splitlines()):
        if line.startswith("RESULT "):
            return json.loads(line[len("RESULT ") :])
    return None


def _explain(what: str, proc_out: str, proc_err: str, server: LiveServer) -> str:
    return (
        f"{what}\n--- node stdout (tail) ---\n{proc_out[-6000:]}\n--- node stderr ---\n{proc_err[-4000:]}"
        f"\n--- server log (tail) ---\n" + "\n".join(server.log_lines()[-60:])
    )


def run_scenario(node: str, script: str, client: str, server: LiveServer) -> dict:
    """Run one scenario to completion; fail (with node's and the server's output) unless it succeeded."""
    cmd = [node, str(SCENARIOS / script), client, server.ws_url]
    try:
        proc = subprocess.run(
            cmd, cwd=JS_DIR, capture_output=True, text=True, timeout=NODE_TIMEOUT, stdin=subprocess.DEVNULL
        )
    except subprocess.TimeoutExpired as exc:
        pytest.fail(
            _explain(
                f"{script} did not exit within {NODE_TIMEOUT}s",
                str(exc.stdout or ""),
                str(exc.stderr or ""),
                server,
            )
        )
    result = _parse_result(proc.stdout)
    assert result is not None, _explain(
        f"{script} printed no RESULT line (exit {proc.returncode})", proc.stdout, proc.stderr, server
    )
    assert result["error"] is None and proc.returncode == 0, _explain(
        f"{script} failed (exit {proc.returncode}): {result['error']}", proc.stdout, proc.stderr, server
    )
    assert result["version"] == CLIENTS[client], result["version"]
    return result


# ------------------------------------------------------------------------------------------ frame helpers


def frames(result: dict, socket: str | None = None, kind: str | None = None) -> list[dict]:
    """Recorded send/recv entries (optionally of one socket and one direction), each with a parsed `f`."""
    out = []
    for e in result["entries"]:
        if (
            e["kind"] not in ("send", "recv")
            or (socket and e["socket"] != socket)
            or (kind and e["kind"] != kind)
        ):
            continue
        e = dict(e)
        try:
            e["f"] = json.loads(e["data"]) if "data" in e else None
        except ValueError:
            e["f"] = None
        out.append(e)
    return out


def texts(result: dict, socket: str | None = None, kind: str | None = None) -> list[str]:
    return [e["data"] for e in frames(result, socket, kind) if "data" in e]


def entries_of(result: dict, kind: str, socket: str | None = None) -> list[dict]:
    return [e for e in result["entries"] if e["kind"] == kind and (socket is None or e["socket"] == socket)]


def is_frame(e: dict, topic: str | None = None, event: str | None = None) -> bool:
    f = e.get("f")
    return (
        isinstance(f, list)
        and len(f) == 5
        and (topic is None or f[2] == topic)
        and (event is None or f[3] == event)
    )


# --------------------------------------------------------------------------------------- golden transcript

PHX_REF = re.compile(r'"phx_ref":"([^"]*)"')
ONLINE_AT = re.compile(r'"online_at":"([^"]*)"')
PHX_REF_FORMAT = re.compile(r"^[A-Za-z0-9_-]{16}$")  # url-safe base64 of 12 bytes, as Phoenix.Tracker makes


@dataclass
class Transcript:
    client_version: str
    wire: list[tuple[str, str]] = field(default_factory=list)  # (CONNECT|HTTP|SEND|RECV|CLOSE|ERROR, text)
    js: list[str] = field(default_factory=list)  # what the client library surfaced ("JS ..." lines)


def load_golden() -> dict[str, Transcript]:
    """The runs in tests/golden/phoenix-1.7.24/js-client.txt, keyed by client version (e.g. '1.7.23')."""
    runs: dict[str, Transcript] = {}
    current: Transcript | None = None
    line_re = re.compile(r"^\[\+\s*\d+ms\] (.*)$")
    for raw in GOLDEN.read_text().splitlines():
        header = re.match(r"^#+ Run \d+: phoenix@(\S+)", raw)
        if header:
            current = runs.setdefault(header.group(1), Transcript(header.group(1)))
            continue
        m = line_re.match(raw)
        if not m or current is None:
            continue
        body = m.group(1)
        if body.startswith("CONNECT "):
            current.wire.append(("CONNECT", _norm_url(body[len("CONNECT ") :])))
        elif body.startswith("HTTP "):
            current.wire.append(("HTTP", body[len("HTTP ") :]))
        elif body.startswith(">>> SEND "):
            current.wire.append(("SEND", body[len(">>> SEND ") :]))
        elif body.startswith("<<< RECV "):
            current.wire.append(("RECV", body[len("<<< RECV ") :]))
        elif body.startswith("CLOSE "):
            current.wire.append(("CLOSE", body[len("CLOSE ") :]))
        elif body.startswith("JS "):
            current.js.append(body[len("JS ") :])
        elif body == "socket.onOpen":
            current.js.append(body)
        else:
            raise AssertionError(f"unparsed golden line: {raw!r}")
    return runs


def _norm_url(url: str) -> str:
    return re.sub(r"^ws://[^/]+", "ws://HOST", url)


def transcript_of(result: dict) -> Transcript:
    t = Transcript(result["version"])
    for e in result["entries"]:
        kind = e["kind"]
        if kind == "connect":
            t.wire.append(("CONNECT", _norm_url(e["url"])))
        elif kind == "upgrade":
            t.wire.append(("HTTP", f"{e['status']} upgrade"))
        elif kind in ("send", "recv"):
            text = e["data"] if "data" in e else f"<binary {e['hex']}>"
            t.wire.append(("SEND" if kind == "send" else "RECV", text))
        elif kind == "close":
            t.wire.append(("CLOSE", f"code={e['code']} reason={json.dumps(e['reason'])}"))
        elif kind in ("error", "http"):
            t.wire.append(("ERROR", json.dumps(e)))
    t.js = [j["line"] for j in result["js"]]
    return t


def normalise(lines: list[str]) -> list[str]:
    """Replace presence phx_ref values by their order of first appearance (so equal refs stay equal and
    different refs stay different) and online_at values by a placeholder. Nothing else changes."""
    refs: dict[str, str] = {}

    def ref(m: re.Match) -> str:
        return f'"phx_ref":"<ref{refs.setdefault(m.group(1), str(len(refs) + 1))}>"'

    return [ONLINE_AT.sub('"online_at":"<online_at>"', PHX_REF.sub(ref, line)) for line in lines]


def _diff(want: list[str], got: list[str]) -> str:
    return "\n".join(
        difflib.unified_diff(want, got, "golden (Phoenix 1.7.24)", "tornado-phoenix", lineterm="", n=50)
    )


GOLDEN_RUNS = load_golden()


def test_golden_transcript_parsed():
    assert set(GOLDEN_RUNS) == set(CLIENTS.values())
    for run in GOLDEN_RUNS.values():
        kinds = collections.Counter(k for k, _ in run.wire)
        assert kinds["CONNECT"] == 1 and kinds["CLOSE"] == 1 and kinds["SEND"] == 7 and kinds["RECV"] == 13, (
            kinds
        )
        assert len(run.js) >= 12


# ------------------------------------------------------------------------------------------------- tests


@pytest.mark.parametrize("client", CLIENT_PARAMS)
def test_golden_script_frames_match_phoenix(node_clients, live_server, client):
    """Scenario 1: the exact js-client.txt run; every raw frame (and the connect URL and close code) equals
    the golden run for this client version, except presence phx_ref and online_at values."""
    result = run_scenario(node_clients, "golden.js", client, live_server)
    golden = GOLDEN_RUNS[CLIENTS[client]]
    ours = transcript_of(result)

    want = normalise([f"{k} {v}" for k, v in golden.wire])
    got = normalise([f"{k} {v}" for k, v in ours.wire])
    assert got == want, "frame sequence differs from the golden run:\n" + _diff(want, got)

    # What the client library surfaced (join/push results, on-event payloads), as a multiset: the order
    # of callbacks relative to each other is the recorder's, not the server's.
    want_js = collections.Counter(normalise(golden.js))
    got_js = collections.Counter(normalise(ours.js))
    assert got_js == want_js, (
        f"client callbacks differ:\nmissing {want_js - got_js}\nextra {got_js - want_js}"
    )

    # The normalised values are still well-formed: phx_ref like Phoenix.Tracker's, online_at unix seconds now.
    received = "\n".join(texts(result, kind="recv"))
    refs = PHX_REF.findall(received)
    assert refs and all(PHX_REF_FORMAT.match(r) for r in refs), refs
    for value in ONLINE_AT.findall(received):
        assert value.isdigit() and abs(int(value) - time.time()) < 300, value


@pytest.mark.parametrize("client", CLIENT_PARAMS)
def test_connect_join_push_and_heartbeat(node_clients, live_server, client):
    """Scenario 2: join echo:* and test:lobby, push -> echo event + reply, shout, and heartbeats every
    200 ms, each answered with its own ref before the client's 200 ms heartbeat timeout; the socket stays
    open throughout (one connection, no close)."""
    r = run_scenario(node_clients, "heartbeat.js", client, live_server)
    payload = {"n": 1, "s": "héllo", "f": 1.5}
    assert r["echo_join"] == ["ok", {"who": "hb"}]
    assert r["echo_push"] == ["ok", payload]
    assert r["echoed"] == [payload, {"late": True}]
    assert r["test_join"] == ["ok", {}]
    assert r["shout"] == ["ok", {}] and r["shouts"] == [{"msg": "hi"}]
    assert r["late"] == ["ok", {"late": True}]

    hb = frames(r, "hb")
    beats = [i for i, e in enumerate(hb) if e["kind"] == "send" and is_frame(e, "phoenix", "heartbeat")]
    assert len(beats) >= 4, texts(r, "hb")
    for i in beats:
        ref = hb[i]["f"][1]
        assert hb[i]["data"] == f'[null,"{ref}","phoenix","heartbeat",{{}}]'
        reply = f'[null,"{ref}","phoenix","phx_reply",{{"response":{{}},"status":"ok"}}]'
        # the reply is the next frame received after the heartbeat
        nxt = next(e for e in hb[i + 1 :] if e["kind"] == "recv")
        assert nxt["data"] == reply, (hb[i]["data"], nxt["data"])

    assert r["state"] == {
        "connection_state": "open",
        "is_connected": True,
        "opens": 1,
        "closes": 0,
        "echo_state": "joined",
        "test_state": "joined",
    }
    assert len(entries_of(r, "connect")) == 1
    assert entries_of(r, "close") == []


@pytest.mark.parametrize("client", CLIENT_PARAMS)
def test_presence_sync_across_sockets(node_clients, live_server, client):
    """Scenario 3: phoenix.js Presence on socket A lists the right users through B's join, leave, rejoin,
    socket disconnect, and an abrupt TCP drop of another socket C."""
    r = run_scenario(node_clients, "presence.js", client, live_server)
    ids = lambda snapshot: [p["id"] for p in snapshot]  # noqa: E731
    a, ab = ["alice"], ["alice", "bob"]
    assert [ids(s) for s in r["syncs"]["A"]] == [a, ab, a, ab, a, ab, a]
    for label in ("B", "B2", "C"):
        assert [ids(s) for s in r["syncs"][label]] == [ab], label
    for snapshots in r["syncs"].values():
        assert all(p["metas"] == 1 for s in snapshots for p in s), snapshots
    assert [s["reply"] for s in r["steps"] if "reply" in s] == [["ok", {}]] * 5

    # On A's wire: every presence_diff is a broadcast (null join_ref and ref) with both keys; each of bob's
    # three departures is a `leaves` diff carrying the meta (same phx_ref) that his join announced.
    room = r["room"]
    bob_ref = None
    departures = 0
    for e in frames(r, "A", "recv"):
        if not is_frame(e, room, "presence_diff"):
            continue
        jr, ref, _, _, diff = e["f"]
        assert (jr, ref) == (None, None) and set(diff) == {"joins", "leaves"}, e["data"]
        if "bob" in diff["joins"]:
            bob_ref = diff["joins"]["bob"]["metas"][0]["phx_ref"]
        if "bob" in diff["leaves"]:
            assert diff["joins"] == {}, e["data"]
            assert [m["phx_ref"] for m in diff["leaves"]["bob"]["metas"]] == [bob_ref], e["data"]
            departures += 1
    assert departures == 3


@pytest.mark.parametrize("client", CLIENT_PARAMS)
def test_non_map_shout_crashes_only_the_senders_channel(node_clients, live_server, client):
    """Scenario 4: shout with a string payload -> phx_error to the sender's channel only (no reply to that
    push); the client rejoins by itself after its 1 s rejoin timer; the other member is unaffected, sees the
    crashed member leave and come back in Presence, and keeps getting shouts."""
    r = run_scenario(node_clients, "crash.js", client, live_server)
    room, jr1, jr2, crash_ref = r["room"], r["join_ref_a1"], r["join_ref_a2"], r["crash_ref"]
    assert r["join_a"] == ["ok", {}] and r["join_b"] == ["ok", {}]

    a_recv = frames(r, "A", "recv")
    errors = [e["data"] for e in a_recv if is_frame(e, event="phx_error")]
    assert errors == [f'["{jr1}","{jr1}","{room}","phx_error",{{}}]']
    assert not [e for e in a_recv if is_frame(e) and e["f"][1] == crash_ref], "the crashing push got a reply"
    assert r["crash_reply"] is None

    a_events = [e["what"] for e in r["events"] if e["who"] == "A"]
    assert a_events[:3] == ["pushed non-map shout", "onError", "rejoined"], r["events"]
    assert r["state_after_error"] == "errored"
    assert jr2 != jr1 and r["state_a"] == "joined"
    # the rejoin came from the client's own rejoin timer (1 s after the phx_error)
    err_t = next(e["t"] for e in a_recv if is_frame(e, event="phx_error"))
    rejoin_t = next(
        e["t"] for e in frames(r, "A", "send") if is_frame(e, room, "phx_join") and e["f"][0] == jr2
    )
    assert 800 <= rejoin_t - err_t <= 3000, rejoin_t - err_t
    assert [e["data"] for e in frames(r, "A", "send") if is_frame(e, room, "phx_join")] == [
        f'["{jr1}","{jr1}","{room}","phx_join",{{"user_id":"alice"}}]',
        f'["{jr2}","{jr2}","{room}","phx_join",{{"user_id":"alice"}}]',
    ]

    # B: never errored, never reconnected, still joined, got both later shouts.
    assert not [e for e in frames(r, "B", "recv") if is_frame(e, event="phx_error")]
    assert not [e for e in r["events"] if e["who"] == "B"], r["events"]
    assert len(entries_of(r, "connect", "B")) == 1 and r["state_b"] == "joined"
    later = [{"after": "rejoin", "from": "alice"}, {"from": "bob"}]
    assert r["shout_a"] == ["ok", {}] and r["shout_b"] == ["ok", {}]
    assert r["shouts_b"] == later and r["shouts_a"] == later
    assert r["syncs_b"] == [["alice", "bob"], ["bob"], ["alice", "bob"]]


@pytest.mark.parametrize("client", CLIENT_PARAMS)
def test_reconnect_and_rejoin_after_server_restart(node_clients, live_server, client):
    """Scenario 5: the server process restarts on the same port; the client reconnects by itself (backoff
    10, 50, 100, ... ms), rejoins echo:r with a new join_ref, and a push round-trips."""
    cmd = [node_clients, str(SCENARIOS / "restart.js"), client, live_server.ws_url]
    proc = subprocess.Popen(
        cmd, cwd=JS_DIR, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    out_lines: list[str] = []
    ready = threading.Event()

    def pump() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            out_lines.append(line)
            if line.strip() == "READY_FOR_RESTART":
                ready.set()

    reader = threading.Thread(target=pump, daemon=True)
    reader.start()
    try:
        if not ready.wait(20):
            proc.kill()
            reader.join(5)
            pytest.fail(
                _explain(
                    "restart.js never printed READY_FOR_RESTART",
                    "".join(out_lines),
                    proc.stderr.read() if proc.stderr else "",
                    live_server,
                )
            )
        restarted_at = time.monotonic()
        live_server.restart()
        restart_s = time.monotonic() - restarted_at
        assert proc.stdin is not None
        proc.stdin.write("RESTARTED\n")
        proc.stdin.flush()
        proc.wait(NODE_TIMEOUT)
    except subprocess.TimeoutExpired:
        proc.kill()
        pytest.fail(_explain("restart.js did not exit in time", "".join(out_lines), "", live_server))
    finally:
        if proc.poll() is None:
            proc.kill()
    reader.join(5)
    stderr = proc.stderr.read() if proc.stderr else ""
    result = _parse_result("".join(out_lines))
    assert result is not None, _explain(
        "restart.js printed no RESULT", "".join(out_lines), stderr, live_server
    )
    assert result["error"] is None and proc.returncode == 0, _explain(
        f"restart.js failed: {result['error']}", "".join(out_lines), stderr, live_server
    )
    r = result
    assert r["version"] == CLIENTS[client]

    assert r["join1"] == ["ok", {"phase": "any"}]
    assert r["before"] == ["ok", {"n": "before"}] and r["after"] == ["ok", {"n": "after"}]
    assert r["echoed"] == [{"n": "before"}, {"n": "after"}]
    assert r["join_ref_2"] != r["join_ref_1"] and r["state"] == "joined" and r["connected"]
    assert r["opens"] >= 2
    # The old server closed our socket on SIGTERM with 1001 ("going away"): not 1000, after which
    # phoenix.js would never reconnect.
    assert r["closes"][0]["code"] == 1001, (r["closes"], restart_s)
    joins = [e["data"] for e in frames(r, "R", "send") if is_frame(e, "echo:r", "phx_join")]
    j1, j2 = r["join_ref_1"], r["join_ref_2"]
    assert joins == [
        f'["{j1}","{j1}","echo:r","phx_join",{{"phase":"any"}}]',
        f'["{j2}","{j2}","echo:r","phx_join",{{"phase":"any"}}]',
    ]
    replies = [
        e["data"]
        for e in frames(r, "R", "recv")
        if is_frame(e, "echo:r", "phx_reply") and e["f"][0] == e["f"][1]
    ]
    assert replies == [
        f'["{j}","{j}","echo:r","phx_reply",{{"response":{{"phase":"any"}},"status":"ok"}}]' for j in (j1, j2)
    ]
    assert len({e["url"] for e in entries_of(r, "connect")}) == 1


@pytest.mark.parametrize("client", CLIENT_PARAMS)
def test_leave_then_push_is_unmatched(node_clients, live_server, client):
    """Scenario 6: leave -> ok reply then phx_close (channel removed client-side); a raw push to the left
    topic afterwards -> unmatched topic with join_ref null; a second raw leave -> ok reply, no phx_close."""
    r = run_scenario(node_clients, "leave.js", client, live_server)
    jr, lref, rref, rlref = r["join_ref"], r["leave_ref"], r["raw_ref"], r["raw_leave_ref"]
    assert (
        r["join"] == ["ok", {"x": 1}]
        and r["push"] == ["ok", {"before": "leave"}]
        and r["leave"] == ["ok", {}]
    )
    wire = [(e["kind"], e["data"]) for e in frames(r, "L")]
    i = wire.index(("send", f'["{jr}","{lref}","echo:l","phx_leave",{{}}]'))
    assert wire[i + 1 :] == [
        ("recv", f'["{jr}","{lref}","echo:l","phx_reply",{{"response":{{}},"status":"ok"}}]'),
        ("recv", f'["{jr}","{jr}","echo:l","phx_close",{{}}]'),
        ("send", f'["{jr}","{rref}","echo:l","ping",{{"after":"leave"}}]'),
        (
            "recv",
            f'[null,"{rref}","echo:l","phx_reply",{{"response":{{"reason":"unmatched topic"}},"status":"error"}}]',
        ),
        ("send", f'["{rlref}","{rlref}","echo:l","phx_leave",{{}}]'),
        ("recv", f'["{rlref}","{rlref}","echo:l","phx_reply",{{"response":{{}},"status":"ok"}}]'),
    ]
    assert r["closed"] == 1 and r["state"] == "closed" and r["channels_left"] == 0 and r["connected"]


@pytest.mark.parametrize("client", CLIENT_PARAMS)
def test_close_1011_makes_the_client_reconnect_and_rejoin(node_clients, live_server, client):
    """Checklist 79, the half the server can trigger without fault injection: a malformed frame makes the
    server close with 1011; phoenix.js treats that as unclean, reconnects within its first backoff steps and
    rejoins. (The other half, a server-initiated close 1000 after which phoenix.js must NOT reconnect, needs
    a server-side disconnect the server does not offer yet.)"""
    r = run_scenario(node_clients, "close_1011.js", client, live_server)
    assert r["closes"] == [1011]
    assert r["opens"] == 2 and r["reconnect_ms"] < 1000, r["reconnect_ms"]
    assert r["join_ref_2"] != r["join_ref_1"]
    assert r["after"] == ["ok", {"after": "1011"}]
    close = entries_of(r, "close", "K")[0]
    assert (close["code"], close["reason"]) == (1011, "")


@pytest.mark.parametrize("client", CLIENT_PARAMS)
def test_idle_close_1002_makes_the_client_reconnect_and_rejoin(node_clients, client):
    """Close-code mapping, second case: a silent socket is closed by the server's idle timeout (1 s here,
    TP_IDLE_TIMEOUT) with Bandit's 1002; phoenix.js reconnects by itself and rejoins."""
    server = LiveServer(env={"TP_IDLE_TIMEOUT": "1"}).start()
    try:
        r = run_scenario(node_clients, "idle_close.js", client, server)
    finally:
        server.stop()
    assert r["first_close"] == 1002
    assert 800 <= r["idle_ms"] <= 3000, r["idle_ms"]
    assert r["opens"] == 2 and r["reconnect_ms"] < 1000, r["reconnect_ms"]
    assert r["join1"] == ["ok", {}] and r["join_ref_2"] != r["join_ref_1"]
    assert r["after"] == ["ok", {"after": "idle"}]
    close = entries_of(r, "close", "I")[0]
    assert (close["code"], close["reason"]) == (1002, "")
