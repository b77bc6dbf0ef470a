"""ruff is part of the test run, so `make test` fails on lint errors like any other failure."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_ruff_clean():
    result = subprocess.run([sys.executable, "-m", "ruff", "check", "server", "tests", "bench"], cwd=REPO,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
