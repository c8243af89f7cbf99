"""Attacks through a task's ``ref``: a ref that names no commit fails the task before
any work, naming the ref; it never runs on the default branch instead."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from rclaude_infra import Deployment, TaskSpec, TaskStatus


@pytest.fixture(name="repo")
def _repo(tmp_path: Path) -> Path:
    repo = tmp_path / "app"
    repo.mkdir()
    (repo / "README.md").write_text("the default branch\n")
    git = ["git", "-c", "user.email=t@example.com", "-c", "user.name=t"]
    subprocess.run([*git, "init", "-q", "-b", "main"], cwd=repo, check=True)
    subprocess.run([*git, "add", "."], cwd=repo, check=True)
    subprocess.run([*git, "commit", "-qm", "init"], cwd=repo, check=True)
    subprocess.run([*git, "tag", "v1"], cwd=repo, check=True)
    return repo


@pytest.mark.parametrize("ref", ["README.md", "no-such-branch", "0123abcd", "v1/README.md"])
def test_a_ref_that_names_no_commit_fails_before_any_work(
        ref: str, repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RCLAUDE_HOME", str(tmp_path / "home"))
    task = Deployment("dev", provider="local").run_task(TaskSpec(
        command=f"touch {tmp_path}/the-command-ran", repo=str(repo), ref=ref))
    state = task.wait(timeout=60)
    assert state.status is TaskStatus.FAILED
    assert ref in (state.reason or ""), state.reason
    assert not (tmp_path / "the-command-ran").exists()


def test_a_commit_and_a_tag_still_check_out(repo: Path, tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RCLAUDE_HOME", str(tmp_path / "home"))
    commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True,
                            text=True, check=True).stdout.strip()
    d = Deployment("dev", provider="local")
    for ref in (commit, commit[:10], "v1"):
        task = d.run_task(TaskSpec(command="git rev-parse HEAD", repo=str(repo), ref=ref))
        assert task.wait(timeout=60).status is TaskStatus.SUCCEEDED
        assert task.result().data["commit"] == commit
