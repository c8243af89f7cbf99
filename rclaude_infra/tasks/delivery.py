"""Delivering a task's work where developers want it (``TaskSpec.output``): committed on
its own branch and pushed to the repository (any git host, the token from a credential
helper), and for ``"pull-request"`` a pull request opened through GitHub's REST API.

Nothing here raises: what failed is the delivery record's ``error``, and the runner keeps
the diff either way.
"""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from .agent import AgentResult
from .git import git, git_env
from .spec import TaskSpec

#: Who commits the work, unless the task's environment names someone (GIT_AUTHOR_*).
COMMITTER = ("rclaude-infra", "rclaude-infra@users.noreply.github.com")
_SUBJECT_CHARS = 72
#: The most of the agent's final text a pull request's description carries.
_BODY_CHARS = 60_000


def commit_message(spec: TaskSpec) -> str:
    """The prompt's first line as the subject (cut to fit), the task id and the prompt.

    >>> print(commit_message(TaskSpec(prompt="Fix the failing tests\\nin tests/", task_id="t-1",
    ...                               repo="https://github.com/me/app", output="branch")))
    Fix the failing tests
    <BLANKLINE>
    rclaude-infra task t-1:
    <BLANKLINE>
    Fix the failing tests
    in tests/
    """
    text = spec.description or (spec.prompt if spec.prompt is not None
                                else " ".join(spec.argv()))
    first = next((line.strip() for line in text.splitlines() if line.strip()), spec.task_id)
    subject = first if len(first) <= _SUBJECT_CHARS else first[:_SUBJECT_CHARS - 3] + "..."
    return f"{subject}\n\nrclaude-infra task {spec.task_id}:\n\n{text.strip()[:4000]}"


def _identity(spec: TaskSpec) -> list[str]:
    name = spec.env.get("GIT_AUTHOR_NAME") or COMMITTER[0]
    email = spec.env.get("GIT_AUTHOR_EMAIL") or COMMITTER[1]
    return ["-c", f"user.name={name}", "-c", f"user.email={email}"]


def deliver(spec: TaskSpec, repo: Path, agent: AgentResult | None,
            diff: Path) -> dict[str, Any]:
    """Commit the work (exactly ``diff``, the task's ``diff.patch``: nothing a check left
    behind) on ``spec.branch_name``, push it, and with ``"pull-request"`` open the pull
    request; the record of what happened (``error`` when something failed)."""
    record: dict[str, Any] = {"output": spec.output, "branch": spec.branch_name,
                              "pushed": False}
    token = os.environ[spec.git_token_secret] if spec.git_token_secret else None
    try:
        base = git(["symbolic-ref", "--quiet", "--short", "HEAD"], cwd=repo).strip()
    except RuntimeError:
        base = None  # a tag or commit is checked out
    try:
        if not diff.is_file() or not diff.stat().st_size:
            record["error"] = "the agent changed nothing: there is nothing to push"
            return record
        if base != spec.branch_name:  # else a resumed task goes on on its branch
            git(["checkout", "--quiet", "-b", spec.branch_name], cwd=repo)
        git(["reset", "--quiet", "--hard", "HEAD"], cwd=repo)
        git(["clean", "--quiet", "-d", "--force", "-x"], cwd=repo)
        git(["apply", "--index", "--whitespace=nowarn", str(diff)], cwd=repo)
        git([*_identity(spec), "commit", "--quiet", "--no-verify", "-m",
             commit_message(spec)], cwd=repo)
        record["commit"] = git(["rev-parse", "HEAD"], cwd=repo).strip()
        git(["push", "--quiet", "origin", f"HEAD:refs/heads/{spec.branch_name}"], cwd=repo,
            env=git_env(token))
        record["pushed"] = True
    except RuntimeError as exc:
        record["error"] = f"the branch could not be pushed: {exc}"
        return record
    if spec.output == "pull-request":
        if base is None:
            record["error"] = (f"a pull request needs a branch to merge into; ref {spec.ref!r} "
                               "is not a branch (the branch is pushed)")
            return record
        record["base"] = base
        try:
            record["pull_request"] = _open_pull_request(spec, base, agent, token or "")
        except (OSError, ValueError) as exc:
            record["error"] = f"the pull request could not be opened: {exc} (the branch is pushed)"
    return record


def _repository(spec: TaskSpec) -> str:
    """``owner/name`` from the repository URL."""
    assert spec.repo is not None
    path = spec.repo.split("://", 1)[-1].split("/", 1)[-1].removesuffix("/")
    return "/".join(path.removesuffix(".git").split("/")[-2:])


def _open_pull_request(spec: TaskSpec, base: str, agent: AgentResult | None,
                       token: str) -> str:
    api = (spec.github_api_url or "https://api.github.com").rstrip("/")
    done = (agent.text if agent is not None and agent.text
            else spec.description or "(no final text)")
    cost = ("" if agent is None or agent.cost_usd is None
            else f"; model cost ${agent.cost_usd:.4f} (Claude Code's estimate)")
    body = (f"{done[:_BODY_CHARS]}\n\n---\nOpened by rclaude-infra for task "
            f"`{spec.task_id}`{cost}.")
    request = urllib.request.Request(
        f"{api}/repos/{_repository(spec)}/pulls", method="POST",
        data=json.dumps({"title": commit_message(spec).split("\n", 1)[0],
                         "head": spec.branch_name, "base": base, "body": body}).encode(),
        headers={"Authorization": f"Bearer {token}", "Accept": "application/vnd.github+json",
                 "X-GitHub-Api-Version": "2022-11-28", "Content-Type": "application/json",
                 "User-Agent": "rclaude-infra"})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            url: str = json.loads(response.read())["html_url"]
            return url
    except urllib.error.HTTPError as exc:
        try:
            detail = json.loads(exc.read())
            reason = detail.get("message", "") + "".join(
                f"; {e.get('message') or e}" for e in detail.get("errors", []))
        except ValueError:
            reason = exc.reason
        raise ValueError(f"GitHub answered {exc.code}: {reason}") from exc
