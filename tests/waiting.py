"""Waiting in tests for what a task does on its own time (a file it leaves, a state)."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path


def wait_until(ready: Callable[[], bool], what: str, timeout: float = 30) -> None:
    """Poll ``ready`` until it holds; fail naming ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not ready():
        assert time.monotonic() < deadline, f"{what} did not happen within {timeout:.0f}s"
        time.sleep(0.05)


def wait_for_file(path: Path, timeout: float = 30) -> None:
    """Until ``path`` exists (a task's signal that it got where the test waits for)."""
    wait_until(path.exists, f"{path} to appear", timeout)
