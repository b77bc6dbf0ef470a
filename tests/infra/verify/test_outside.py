"""From the control machine, not the host: `tornado-phoenix probe` (what `make probe` runs) through the
published port — connect, heartbeat, join echo and round trip, presence and shout on two sockets, leave, a
server-side disconnect and the reconnect + rejoin, clean close."""

from __future__ import annotations

import json
import subprocess
import sys

REQUIRED = ("connect", "heartbeat", "join echo", "echo round trip", "presence", "shout", "leave", "close")


def test_probe_from_outside(app, public_host):
    url = f"ws://{public_host}:{app['port']}/socket"
    result = subprocess.run([sys.executable, "-m", "tornado_phoenix", "probe", url, "--json", "--timeout", "30"],
                            capture_output=True, text=True, timeout=600)
    assert result.stdout, f"probe printed nothing; stderr: {result.stderr}"
    report = json.loads(result.stdout)
    statuses = {step["name"]: step["status"] for step in report["steps"]}
    assert result.returncode == 0 and report["ok"], json.dumps(report["steps"], indent=2)
    assert all(statuses.get(name) == "ok" for name in REQUIRED), statuses
