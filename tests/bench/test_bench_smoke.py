"""`make bench-smoke` in CI: the harness runs end to end with tiny rooms and writes its JSON and PNG.

Proves the load generator, both servers, every phase and the report work; asserts completeness (every
member joined, every round delivered to every member, the echo and rate phases produced samples), never
timings: CI machines are shared and their numbers mean nothing.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
BENCH = REPO / "bench"

pytestmark = pytest.mark.skipif(shutil.which("node") is None, reason="the load generator needs Node 18+")


@pytest.fixture(scope="module")
def bench_node_modules() -> None:
    if not (BENCH / "node_modules" / "ws").is_dir():
        subprocess.run(["npm", "ci", "--no-audit", "--no-fund", "--loglevel=error"], cwd=BENCH, check=True,
                       timeout=300)


@pytest.mark.timeout(300)
def test_bench_smoke_run_writes_a_complete_report(tmp_path, bench_node_modules):
    proc = subprocess.run(
        [sys.executable, str(BENCH / "run.py"), "--smoke", "--targets", "phx,relay", "--out", str(tmp_path),
         "--name", "smoke"],
        cwd=REPO, capture_output=True, text=True, timeout=280,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "result: bench wrote" in proc.stdout
    report = json.loads((tmp_path / "smoke.json").read_text())
    assert (tmp_path / "smoke.png").stat().st_size > 10_000
    results = report["results"]
    assert {(r["kind"], r["members"]) for r in results} == {("phx", 50), ("phx", 200), ("raw", 50), ("raw", 200)}
    for r in results:
        n = r["members"]
        assert r["connect"]["ok"] == n and r["connect"]["failed"] == 0, r["connect"]
        assert r["idle"]["rss_after_kib"] > 0
        assert r["echo"]["count"] == 50 and r["echo"]["error"] is None, r["echo"]
        fan = r["fanout"]
        assert fan["complete_rounds"] == fan["rounds"] == 3, fan["per_round"]
        assert all(x["delivered"] == n for x in fan["per_round"])
        assert fan["round_median_ms"] is not None and fan["delivery_p99_ms"] is not None
        assert r["server_alive"] and r["generator"]["closed_members"] == 0
    rated = [r for r in results if "rate" in r]
    assert len(rated) == 2 and all(r["rate"]["deliveries"] > 0 for r in rated)
    assert "protocol overhead" in proc.stdout
