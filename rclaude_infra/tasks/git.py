"""git for the runner: commands that never prompt, and a token handed over by a
credential helper (any host), never in a URL, an argument or a file."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

#: Where the credential helper finds the token (the helper's text names the variable, so
#: the token is in no argument, URL or file).
GIT_TOKEN_ENV = "RCLAUDE_GIT_TOKEN"
_CREDENTIAL_HELPER = (
    '!f() { test "$1" = get || exit 0; echo username=x-access-token; '
    f'echo "password=${GIT_TOKEN_ENV}"; }}; f'
)


def git_env(token: str | None) -> dict[str, str]:
    """git's environment: never a prompt; with a token, a credential helper that answers
    with it for any host (git's own ``GIT_CONFIG_*`` settings, so nothing is written)."""
    env = {**os.environ, "GIT_TERMINAL_PROMPT": "0"}
    if token is not None:
        env.update({GIT_TOKEN_ENV: token, "GIT_CONFIG_COUNT": "1",
                    "GIT_CONFIG_KEY_0": "credential.helper",
                    "GIT_CONFIG_VALUE_0": _CREDENTIAL_HELPER})
    return env


def git(args: list[str], cwd: Path | None = None, timeout: float = 600,
         env: dict[str, str] | None = None) -> str:
    done = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=timeout, env=env)
    if done.returncode != 0:
        raise RuntimeError(f"git {' '.join(args)} failed: {done.stderr.strip()[-500:]}")
    return done.stdout
