"""`bench/yjs_bench.py --smoke`: the room:* benchmark runs end to end (ours and the y-websocket server, the
1 MiB-join, RSS and store phases) and writes a complete report. Asserts completeness, never timings."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.skipif(shutil.which("node") is None, reason="the load generator needs Node 18+")


@pytest.mark.timeout(200)
def test_yjs_bench_smoke_writes_a_complete_report(tmp_path):
    proc = subprocess.run([sys.executable, str(REPO / "bench" / "yjs_bench.py"), "--smoke", "--out", str(tmp_path)],
                          cwd=REPO, capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    report = json.loads((tmp_path / "yjs-smoke.json").read_text())
    assert {run["target"] for run in report["relay"]} == {"phx", "yws", "phx-sqlite"}
    assert all(run["complete"] for run in report["relay"])  # every member got every update, on both servers
    assert len(report["join"]["yjs_ms"]) == 2 and report["join"]["state_bytes"] > 64 * 1024
    assert report["store"]["grouped_per_s"] > 0 and report["rss_small_kib"] >= 0
    assert len(report["table"]) == 4  # one relay row (one size), join, RSS, store
