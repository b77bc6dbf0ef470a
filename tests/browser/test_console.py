"""The browser console at `/` in headless Chromium (Debian's /usr/bin/chromium, driven by playwright-core from
tests/browser/package-lock.json): load, connect, join echo and test:lobby, push and see the reply, see both tabs
in the presence list, crash the fault channel and see it rejoin, disconnect faults (red badge after 1000,
reconnect after 4000), amber badge while retrying. Screenshots go to tests/artifacts/console/."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.support.live_server import LiveServer

pytestmark = pytest.mark.clients

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
ARTIFACTS = REPO / "tests" / "artifacts" / "console"
CHROMIUM = os.environ.get("TP_CHROMIUM", "/usr/bin/chromium")


@pytest.fixture(scope="module")
def node() -> str:
    node = shutil.which("node")
    assert node, "node is not installed (the console test needs Node.js >= 20 and npm)"
    assert Path(CHROMIUM).exists(), (
        f"{CHROMIUM} is missing: `make system-deps` (or apt-get install -y chromium) installs Debian's chromium"
    )
    if not (HERE / "node_modules" / "playwright-core" / "package.json").is_file():
        npm = shutil.which("npm")
        assert npm, "npm is not installed and tests/browser/node_modules is missing"
        done = subprocess.run([npm, "ci", "--no-audit", "--no-fund", "--loglevel=error"], cwd=HERE,
                              capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, f"npm ci in tests/browser failed:\n{done.stdout}\n{done.stderr}"
    return node


def test_console_in_headless_chromium(node):
    server = LiveServer().start()
    try:
        if ARTIFACTS.exists():
            shutil.rmtree(ARTIFACTS)
        page = f"http://127.0.0.1:{server.port}/"
        try:
            done = subprocess.run([node, str(HERE / "console.spec.js"), page, str(ARTIFACTS), CHROMIUM], cwd=HERE,
                                  capture_output=True, text=True, timeout=90, stdin=subprocess.DEVNULL)
        except subprocess.TimeoutExpired as exc:
            pytest.fail(f"console.spec.js did not exit within 90 s\n{exc.stdout}\n{exc.stderr}")
        lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
        assert lines, f"no RESULT line (exit {done.returncode})\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
        result = json.loads(lines[-1][len("RESULT "):])
        log_tail = "\n".join(server.log_lines()[-40:])
        assert result["error"] is None and done.returncode == 0, (
            f"{result['error']}\nsteps: {result['steps']}\n{done.stderr[-2000:]}\n--- server ---\n{log_tail}")
    finally:
        server.stop()

    assert result["default_url"] == f"ws://127.0.0.1:{server.port}/socket"  # derived from the page's location
    assert result["initial_badge"]["text"] == "not connected"
    assert result["connected_badge"]["color"] == "rgb(31, 143, 78)"  # green
    assert result["closed_badge"]["color"] == "rgb(194, 53, 43)"  # red, with the close code and reason
    assert result["retry_badge"]["color"] == "rgb(194, 124, 14)"  # amber
    assert result["presence"] == ["browser-1", "browser-2"]
    assert result["fault_join_refs"][0] != result["fault_join_refs"][1]
    assert result["longpoll_requests"] > 0  # the transport switch: the second tab ran over /socket/longpoll
    assert result["page_errors"] == []
    # The only console errors: Chromium reporting the refused connections to the unreachable URL.
    unexpected = [e for e in result["console_errors"] if result["unreachable_url"] not in e]
    assert unexpected == [], unexpected
    # Everything the page loaded came from the server itself (no CDN).
    http = [url for url in result["requests"] if url.startswith("http")]
    assert http and all(url.startswith(f"http://127.0.0.1:{server.port}/") for url in http), http
    assert {Path(p).name for p in result["screenshots"]} >= {
        "01-connected.png", "02-push-reply-presence.png", "03-crash-errored.png", "04-crash-rejoined.png",
        "05-disconnected-1000.png", "06-unreachable-amber.png"}
    for shot in result["screenshots"]:
        assert Path(shot).stat().st_size > 10_000, shot
    server.wait_log("tornado_phoenix.fault", "fault=crash topic=fault:browser")
    server.wait_log("tornado_phoenix.fault", "fault=disconnect topic=fault:browser", "code=1000")
