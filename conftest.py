"""For the doctests in rclaude_infra/: a private ~/.rclaude per example, so examples that
run local tasks leave nothing in the user's home."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(autouse=True)
def _doctest_home(request: pytest.FixtureRequest, tmp_path: Path,
                  monkeypatch: pytest.MonkeyPatch) -> None:
    if isinstance(request.node, pytest.DoctestItem):
        monkeypatch.setenv("RCLAUDE_HOME", str(tmp_path / "rclaude-home"))
