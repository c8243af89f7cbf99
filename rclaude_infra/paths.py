"""Where the library keeps things on this machine: ``$RCLAUDE_HOME``, by default ``~/.rclaude``.

Under it: ``state/`` (the default Pulumi backend), ``passphrase``, ``workspaces/``,
``local/`` (local tasks), ``cache/`` (live prices) and ``pulumi/`` (an installed CLI).
"""

from __future__ import annotations

import os
from pathlib import Path


def rclaude_home() -> Path:
    """``$RCLAUDE_HOME``, by default ``~/.rclaude``."""
    return Path(os.environ.get("RCLAUDE_HOME") or Path.home() / ".rclaude")


def local_tasks_dir(deployment: str) -> Path:
    """Where the local provider keeps a deployment's tasks: ``<home>/local/<name>/tasks``."""
    return rclaude_home() / "local" / deployment / "tasks"
