"""Repositories for tests: a bare repository seeded with files (what a task clones and
pushes to), and git run with a fixed identity."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from fake_anthropic import Reply

GIT_ENV = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@e",
           "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@e"}
#: The repository most tests give the agent: an ``add`` that subtracts.
BUGGY_ADD = {"app.py": "def add(a, b):\n    return a - b\n"}
#: The agent's edit that fixes it, as Claude Code's Edit tool takes it.
FIX_ADD = Reply.call("Edit", {"file_path": "{cwd}/app.py", "old_string": "a - b",
                              "new_string": "a + b"})


def git(*args: str, cwd: Path) -> str:
    return subprocess.run(["git", *args], cwd=cwd, env=GIT_ENV, check=True,
                          capture_output=True, text=True).stdout


def bare_repository(path: Path, files: dict[str, str] | None = None) -> Path:
    """A bare repository at ``path`` whose ``main`` has ``files`` in one commit."""
    work = path.parent / f"{path.name}.seed"
    work.mkdir(parents=True)
    for name, text in (files or BUGGY_ADD).items():
        (work / name).write_text(text)
    git("init", "--quiet", "--initial-branch", "main", cwd=work)
    git("add", ".", cwd=work)
    git("commit", "--quiet", "-m", "first", cwd=work)
    subprocess.run(["git", "clone", "--quiet", "--bare", str(work), str(path)], check=True)
    return path
