"""The import contract ([tool.importlinter] in pyproject.toml): the layers of DESIGN.md,
boto3 only in _aws/, pulumi only in _pulumi/, rich only in the faces and the live display.
A new upward import fails here, with the chain that breaks it."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_the_import_contract_holds() -> None:
    command = shutil.which("lint-imports", path=str(Path(sys.executable).parent))
    assert command, "import-linter is a dev dependency: pip install -e '.[dev]'"
    done = subprocess.run([command, "--no-cache"], cwd=ROOT, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stdout[-3000:]
    assert "4 kept, 0 broken" in done.stdout
