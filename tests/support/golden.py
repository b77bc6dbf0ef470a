"""Parse the transcripts recorded from a real Phoenix 1.7.24 server (tests/golden/phoenix-1.7.24/)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["Scenario", "Step", "load_edge_cases", "normalise", "GOLDEN_DIR"]

GOLDEN_DIR = Path(__file__).resolve().parents[1] / "golden" / "phoenix-1.7.24"

_PHX_REF = re.compile(r'"phx_ref":"[^"]*"')
_ONLINE_AT = re.compile(r'"online_at":"[^"]*"')
_LINE = re.compile(r"^\[\+\s*\d+ms\] (.*)$")


def normalise(frame: str) -> str:
    """Blank out the only values that legitimately differ between runs (presence refs and timestamps)."""
    return _ONLINE_AT.sub('"online_at":"*"', _PHX_REF.sub('"phx_ref":"*"', frame))


@dataclass
class Step:
    action: str  # send, recv, client_close, close, http
    text: str = ""
    code: int | None = None
    body: str | None = None


@dataclass
class Scenario:
    title: str
    url: str = ""
    steps: list[Step] = field(default_factory=list)

    @property
    def path(self) -> str:
        return "/" + self.url.split("/", 3)[3]


def load_edge_cases(path: Path = GOLDEN_DIR / "edge-cases.txt") -> list[Scenario]:
    scenarios: list[Scenario] = []
    for raw in path.read_text().splitlines():
        if raw.startswith("=== "):
            scenarios.append(Scenario(raw[4:].strip()))
            continue
        if not scenarios:
            continue
        current = scenarios[-1]
        if raw.startswith("--- url: "):
            current.url = raw[len("--- url: "):].strip()
            continue
        match = _LINE.match(raw)
        if not match:
            continue
        event = match.group(1)
        if event.startswith(">>> SEND text "):
            current.steps.append(Step("send", event[len(">>> SEND text "):]))
        elif event.startswith("<<< RECV text "):
            current.steps.append(Step("recv", event[len("<<< RECV text "):]))
        elif event.startswith(">>> client close "):
            current.steps.append(Step("client_close", code=int(event.split()[-1])))
        elif event.startswith("CLOSE code="):
            m = re.match(r'CLOSE code=(\d+) reason="(.*)"', event)
            assert m, event
            current.steps.append(Step("close", code=int(m.group(1)), text=m.group(2)))
        elif event.startswith("HTTP ") and "no upgrade" in event:
            m = re.match(r'HTTP (\d+) \(no upgrade\) body="(.*)"', event)
            assert m, event
            current.steps.append(Step("http", code=int(m.group(1)), body=m.group(2)))
    return scenarios
