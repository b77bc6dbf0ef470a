"""Bounded waits for tests: poll a condition until it holds or a deadline passes (never sleep-then-assert)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")

__all__ = ["wait_for"]


def wait_for(predicate: Callable[[], T], timeout: float = 10.0, what: str = "condition",
             detail: Callable[[], Any] | None = None, interval: float = 0.02) -> T:
    """Return the first truthy value of predicate(); fail naming `what` (and `detail()`) after `timeout` s."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            extra = f"; {detail()}" if detail is not None else ""
            raise AssertionError(f"timed out after {timeout}s waiting for {what}{extra}")
        time.sleep(interval)
