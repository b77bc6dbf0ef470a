"""The console's Document panel (room:*) in headless Chromium: two pages on one room type in the shared text
and converge; each shows the other's name (Yjs awareness) and the member count; a closed page's name goes away.
Yjs comes from the server's own /static/yjs.min.js (bundled by `make console`)."""

from __future__ import annotations

import json
import subprocess

from tests.browser.test_console import ARTIFACTS, CHROMIUM, HERE, node  # noqa: F401  (node is a fixture)
from tests.support.live_server import LiveServer


def test_document_panel_two_pages_converge(node):  # noqa: F811
    server = LiveServer(env={"TP_YJS_STORE": "memory"}).start()
    try:
        done = subprocess.run([node, str(HERE / "document.spec.js"), f"http://127.0.0.1:{server.port}/",
                               str(ARTIFACTS), CHROMIUM], cwd=HERE, capture_output=True, text=True, timeout=90,
                              stdin=subprocess.DEVNULL)
        lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
        assert lines, f"no RESULT line (exit {done.returncode})\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
        result = json.loads(lines[-1][len("RESULT "):])
        assert result["error"] is None and done.returncode == 0, (
            f"{result['error']}\n{done.stderr[-2000:]}\n--- server ---\n" + "\n".join(server.log_lines()[-40:]))
    finally:
        server.stop()
    ta, tb = result["texts"]
    assert ta == tb and "hello from ada. " in ta and "bob was here. " in ta and "ada again." in ta
    assert result["peers"] == [["ada", "bob"], ["ada", "bob"]]
    assert result["members"] == ["2", "2"]
    assert result["after_close"] == ["ada"]
    assert result["page_errors"] == []
