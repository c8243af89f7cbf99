"""Private repositories: the clone asks a git host on loopback that wants a token
(:mod:`git_server`); the token comes from a task secret through a credential helper and
appears in no URL, argument, file, log or result."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from git_server import GitServer

from rclaude_infra import ConfigError, Deployment, TaskSpec
from rclaude_infra.tasks.model import TaskStatus

TOKEN = "ghp_PLANTEDgitToken0123456789abcdefABCDEF"


pytestmark = pytest.mark.usefixtures("private_home")


@pytest.fixture(name="server")
def _server(tmp_path: Path) -> GitServer:
    root = tmp_path / "served"
    work = tmp_path / "seed"
    work.mkdir()
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@e",
           "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@e"}
    for args in (["init", "--quiet", "--initial-branch", "main"],
                 ["commit", "--quiet", "--allow-empty", "-m", "private work"]):
        subprocess.run(["git", *args], cwd=work, env=env, check=True)
    (work / "SECRET_PLAN.md").write_text("only for token holders\n")
    subprocess.run(["git", "add", "."], cwd=work, check=True)
    subprocess.run(["git", "commit", "--quiet", "-m", "plan"], cwd=work, env=env, check=True)
    subprocess.run(["git", "clone", "--quiet", "--bare", str(work), str(root / "app.git")],
                   check=True)
    with GitServer(root, TOKEN) as server:
        yield server


def test_a_private_repository_clones_with_the_token_from_a_secret(
        server: GitServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GIT_TOKEN", TOKEN)
    d = Deployment("dev", provider="local")
    task = d.run_task(TaskSpec(command="cat SECRET_PLAN.md; git remote get-url origin",
                               repo=f"{server.url}/app.git", secrets=["GIT_TOKEN"],
                               git_token_secret="GIT_TOKEN"))
    state = task.wait(timeout=60)
    assert state.status is TaskStatus.SUCCEEDED, state.reason
    lines = [line.text for line in task.logs()]
    assert "only for token holders" in lines
    assert f"{server.url}/app.git" in lines  # the remote URL carries no token
    assert any(not ok for _, _, ok in server.log)  # asked first: the helper answered
    assert any(ok for _, _, ok in server.log)
    from rclaude_infra.paths import rclaude_home

    root = rclaude_home() / "local" / "dev" / "tasks" / task.task_id
    for path in root.rglob("*"):
        if path.is_file():
            assert TOKEN not in path.read_text(errors="replace"), path


def test_without_the_token_the_clone_fails_saying_so(server: GitServer) -> None:
    d = Deployment("dev", provider="local")
    task = d.run_task(TaskSpec(command="true", repo=f"{server.url}/app.git"))
    state = task.wait(timeout=60)
    assert state.status is TaskStatus.FAILED
    assert state.reason is not None and "git clone" in state.reason
    assert "could not read Username" in state.reason or "Authentication" in state.reason


@pytest.mark.parametrize(("fields", "allowed"), [
    ({"repo": "https://github.com/me/app", "git_token_secret": "GIT_TOKEN"}, "one of secrets"),
    ({"repo": "git@github.com:me/app.git", "secrets": ["T"], "git_token_secret": "T"},
     "https://"),
    ({"repo": "http://example.com/app.git"}, "http:// to this machine only"),
])
def test_token_fields_are_validated(fields: dict[str, object], allowed: str) -> None:
    with pytest.raises(ConfigError, match=allowed):
        TaskSpec(command="true", **fields)  # type: ignore[arg-type]


def test_a_spot_notice_during_the_clone_still_ends_the_task_preempted(
        server: GitServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The notice (and SIGTERM) can come while the runner is still cloning: once the clone
    is done the command is stopped as preempted, not as a plain stop."""
    import json
    import signal
    import sys
    import time

    server.delay = 1.0  # each request of the clone waits: the signal lands during it
    task = tmp_path / "t-clone"
    task.mkdir()
    (task / "spec.json").write_text(json.dumps({
        "command": "sleep 30", "task_id": "t-clone", "repo": f"{server.url}/app.git",
        "secrets": ["GIT_TOKEN"], "git_token_secret": "GIT_TOKEN"}))
    notice = tmp_path / "spot-notice"
    runner = subprocess.Popen([sys.executable, "-m", "rclaude_infra.runner", "--task-dir",
                               str(task)], env={**os.environ, "GIT_TOKEN": TOKEN,
                                                "RCLAUDE_SPOT_NOTICE": str(notice)})
    while not any(ok for _, _, ok in server.log):  # the clone has begun
        time.sleep(0.05)
    notice.write_text("{}")
    runner.send_signal(signal.SIGTERM)
    assert runner.wait(timeout=60) == 75
    result = json.loads((task / "result.json").read_text())
    assert result["status"] == "preempted" and result["commit"]  # cloned, then stopped


def test_a_missing_secret_fails_the_task_before_anything_is_cloned(
        server: GitServer, tmp_path: Path) -> None:
    import json
    import sys

    task = tmp_path / "t-nosecret"
    task.mkdir()
    (task / "spec.json").write_text(json.dumps({
        "command": "true", "task_id": "t-nosecret", "repo": f"{server.url}/app.git",
        "secrets": ["GIT_TOKEN", "DEPLOY_KEY"], "git_token_secret": "GIT_TOKEN"}))
    env = {k: v for k, v in os.environ.items() if k != "DEPLOY_KEY"}
    done = subprocess.run([sys.executable, "-m", "rclaude_infra.runner", "--task-dir",
                           str(task)], env={**env, "GIT_TOKEN": TOKEN}, capture_output=True)
    assert done.returncode == 1
    result = json.loads((task / "result.json").read_text())
    assert result["status"] == "failed"
    assert result["reason"] == "secrets not provided to the task: DEPLOY_KEY"
    assert server.log == []  # the host was never asked
