"""The tools the tests install on first use, into a cache outside the repository: the
pinned Claude Code CLI (npm) and the pinned Checkov (pip, in a venv of its own).

The fixtures in conftest.py call these functions; ``.ci/run`` runs this file in the
background while the project installs, so the suite finds them ready. Each install takes
a lock, so concurrent callers (xdist workers, that background run) wait for one install
instead of making several. Standard library only: it runs before the project's venv
exists (``python3 tests/tools.py``).
"""

from __future__ import annotations

import ast
import contextlib
import fcntl
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

#: The Checkov the scan tests pin. It pins older boto3 and botocore than the project
#: needs, so it lives in a virtualenv of its own, not in the dev extra.
CHECKOV_VERSION = "3.3.30"

_AGENT = Path(__file__).resolve().parent.parent / "rclaude_infra" / "tasks" / "agent.py"


class ToolUnavailable(RuntimeError):
    """A tool could not be installed here; the message says why (tests skip with it)."""


def cache_root() -> Path:
    """Where the tools are installed once for the tests: world-readable, so a test can run
    them as another user too (``RCLAUDE_TEST_CACHE`` to move it)."""
    return Path(os.environ.get("RCLAUDE_TEST_CACHE")
                or Path(tempfile.gettempdir()) / "rclaude-infra-test-cache")


def claude_code_version() -> str:
    """``CLAUDE_CODE_VERSION`` of ``rclaude_infra/tasks/agent.py``, read without importing
    the package (this file runs before the package is installed)."""
    for node in ast.parse(_AGENT.read_text()).body:
        targets = (node.targets if isinstance(node, ast.Assign)
                   else [node.target] if isinstance(node, ast.AnnAssign) else [])
        if (any(isinstance(t, ast.Name) and t.id == "CLAUDE_CODE_VERSION" for t in targets)
                and isinstance(node.value, ast.Constant)):
            return str(node.value.value)
    raise ToolUnavailable(f"no CLAUDE_CODE_VERSION in {_AGENT}")


@contextlib.contextmanager
def _locked(name: str) -> Iterator[Path]:
    root = cache_root()
    root.mkdir(parents=True, exist_ok=True)
    os.chmod(root, 0o755)
    with open(root / f".{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
        yield root


def _staged_install(root: Path, target: Path, install: list[list[str]], what: str,
                    *, in_staging: str = "") -> None:
    """Run ``install`` (``{dir}`` standing for the staging directory) and rename the result
    into ``target``, so nobody ever sees half an install."""
    staging = Path(tempfile.mkdtemp(dir=root, prefix="installing-"))
    try:
        built = staging / in_staging if in_staging else staging
        # npm and pip read the machine's settings (a registry, a mirror) from its home;
        # the suite gives tests an empty one (conftest.py) and keeps this one here.
        real_home = os.environ.get("RCLAUDE_TEST_REAL_HOME")
        env = {**os.environ, "HOME": real_home} if real_home else None
        for command in install:
            done = subprocess.run([part.replace("{dir}", str(built)) for part in command],
                                  capture_output=True, text=True, timeout=900, env=env)
            if done.returncode != 0:
                raise ToolUnavailable(f"could not install {what}: "
                                      f"{(done.stderr or done.stdout).strip()[-300:]}")
        os.chmod(built, 0o755)
        shutil.rmtree(target, ignore_errors=True)  # an install left incomplete, if any
        built.rename(target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def claude_code() -> Path:
    """The directory holding the real ``claude`` of the pinned version."""
    version = claude_code_version()
    with _locked("claude-code") as root:
        target = root / f"claude-code-{version}"
        binary = target / "node_modules" / ".bin" / "claude"
        if not binary.exists():
            npm = shutil.which("npm")
            if npm is None:
                raise ToolUnavailable(
                    "npm is not installed: the real Claude Code CLI cannot be installed")
            _staged_install(root, target, [[
                npm, "install", "--no-audit", "--no-fund", "--loglevel=error", "--prefix",
                "{dir}", f"@anthropic-ai/claude-code@{version}"]],
                f"@anthropic-ai/claude-code@{version} with npm")
    return binary.parent


def checkov() -> list[str]:
    """The command that runs Checkov of the pinned version."""
    with _locked("checkov") as root:
        target = root / f"checkov-{CHECKOV_VERSION}"
        if not (target / "bin" / "python").exists():
            # A venv's scripts name the path it was made at, so Checkov runs as a module
            # of the venv's python, which works after the rename.
            _staged_install(root, target, [
                [sys.executable, "-m", "venv", "{dir}"],
                ["{dir}/bin/pip", "install", "--quiet", "--disable-pip-version-check",
                 f"checkov=={CHECKOV_VERSION}"],
            ], f"checkov=={CHECKOV_VERSION} with pip", in_staging=target.name)
    return [str(target / "bin" / "python"), "-m", "checkov.main"]


def main() -> int:
    """Install every tool; say what each took, or why it could not be had (the tests
    that need it skip, saying the same)."""
    for name, install in (("Claude Code", claude_code), ("Checkov", checkov)):
        started = time.monotonic()
        try:
            install()
            print(f"tests/tools.py: {name} ready in {time.monotonic() - started:.0f} s",
                  file=sys.stderr)
        except ToolUnavailable as exc:
            print(f"tests/tools.py: {name}: {exc}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
