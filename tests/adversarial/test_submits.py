"""Faults and races at submission: a full disk leaves nothing that blocks a retry, and
a submitter that loses the race for an id gets a handle that works at once."""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from rclaude_infra import Deployment, TaskSpec, TaskStatus
from rclaude_infra.tasks import local


def test_a_full_disk_at_submit_leaves_the_id_free_for_a_retry(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """ENOSPC where a full disk reports it (the data reaching the disk: fsync), once."""
    monkeypatch.setenv("RCLAUDE_HOME", str(tmp_path / "home"))
    fsync = os.fsync
    failures = {"left": 1}

    def disk_full(fd: int) -> None:
        if failures["left"]:
            failures["left"] -= 1
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        fsync(fd)

    monkeypatch.setattr(local.os, "fsync", disk_full)
    d = Deployment("dev", provider="local")
    spec = TaskSpec(command="echo done", task_id="t-disk-full")
    with pytest.raises(OSError, match="No space left"):
        d.run_task(spec)
    tasks = tmp_path / "home" / "local" / "dev" / "tasks"
    assert list(tasks.iterdir()) == []  # no half-written task, no staging left
    task = d.run_task(spec)  # the same id, once there is room
    assert task.wait(timeout=60).status is TaskStatus.SUCCEEDED
    assert json.loads((tasks / "t-disk-full" / "spec.json").read_text())["task_id"] == (
        "t-disk-full")


_SUBMIT = """
import sys
from rclaude_infra import Deployment, TaskSpec
task = Deployment("dev", provider="local").run_task(
    TaskSpec(command=f"echo once >> {sys.argv[2]}", task_id=sys.argv[1]))
print(task.wait(timeout=60).status.value)
"""


def test_two_processes_submitting_one_id_both_get_a_working_handle(
        tmp_path: Path) -> None:
    env = {**os.environ, "RCLAUDE_HOME": str(tmp_path / "home")}
    count = tmp_path / "count.txt"
    for round_ in range(8):
        task_id = f"t-race-{round_}"
        both = [subprocess.Popen([sys.executable, "-c", _SUBMIT, task_id, str(count)], env=env,
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                for _ in range(2)]
        seen = [p.communicate(timeout=120) for p in both]
        assert [out.strip() for out, _ in seen] == ["SUCCEEDED", "SUCCEEDED"], seen
    ran = count.read_text().split()
    assert len(ran) == 8  # each id ran once
    leftovers = [p.name for p in (tmp_path / "home" / "local" / "dev" / "tasks").iterdir()
                 if p.name.startswith(".")]
    assert leftovers == []


@pytest.mark.parametrize("planted", [b"not json at all", b'{"t": "soon", "line": 1}',
                                     b'{"t": 1e308, "line": "far"}', b'["a list"]',
                                     b'{"line": "no time"}', b"\xff\xfe broken utf-8"])
def test_a_malformed_log_line_is_shown_raw_never_a_crash(
        planted: bytes, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    from rclaude_infra.cli import main

    monkeypatch.setenv("RCLAUDE_HOME", str(tmp_path / "home"))
    task = Deployment("dev", provider="local").run_task(TaskSpec(
        command="echo before", task_id="t-log-forger"))
    assert task.wait(timeout=60).status is TaskStatus.SUCCEEDED
    log = tmp_path / "home" / "local" / "dev" / "tasks" / "t-log-forger" / "log.jsonl"
    with log.open("ab") as out:  # what the task, running as this user, may write
        out.write(planted + b"\n")
    texts = [line.text for line in task.logs()]
    assert "before" in texts and texts[-1] == planted.decode("utf-8", errors="replace")
    assert main(["logs", "t-log-forger", "--provider", "local"]) == 0
    assert "before" in capsys.readouterr().out


@pytest.mark.skipif(os.geteuid() != 0 or not sys.platform.startswith("linux"),
                    reason="needs root, to mount a small tmpfs that fills up")
def test_a_really_full_disk_at_submit_leaves_the_id_free(tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """The same on a file system that is really full (a 512 KiB tmpfs, filled): the
    submit fails with ENOSPC wherever the kernel says so, and once there is room again the
    same id runs."""
    home = tmp_path / "home"
    home.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=512k", "tmpfs", str(home)], check=True)
    try:
        monkeypatch.setenv("RCLAUDE_HOME", str(home))
        (home / "local" / "dev" / "tasks").mkdir(parents=True)
        pad = home / "pad"
        with pytest.raises(OSError), pad.open("wb") as out:
            while True:
                out.write(b"\0" * 4096)
                out.flush()
        d = Deployment("dev", provider="local")
        spec = TaskSpec(command="echo done", task_id="t-really-full",
                        env={"PADDING": "x" * 30_000})
        with pytest.raises(OSError) as info:
            d.run_task(spec)
        assert info.value.errno == errno.ENOSPC
        assert list((home / "local" / "dev" / "tasks").iterdir()) == []
        pad.unlink()
        task = d.run_task(spec)
        assert task.wait(timeout=60).status is TaskStatus.SUCCEEDED
        assert "done" in [line.text for line in task.logs()]
    finally:
        subprocess.run(["umount", "-l", str(home)], check=False)


def test_a_task_whose_runner_is_being_started_reads_pending_not_failed(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Between the folder's rename into place and the runner's record another process
    reads the task: PENDING (it counts at its cap in the budget), FAILED only once its
    submitter has had its time."""
    monkeypatch.setenv("RCLAUDE_HOME", str(tmp_path / "home"))
    folder = tmp_path / "home" / "local" / "dev" / "tasks" / "t-starting"
    folder.mkdir(parents=True)
    spec = TaskSpec(prompt="p", max_budget_usd=3.0, task_id="t-starting")
    (folder / "spec.json").write_text(json.dumps(spec.to_dict()))
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-api03-starting")
    d = Deployment("dev", provider="local")
    assert d.task("t-starting").state().status is TaskStatus.PENDING
    from rclaude_infra import BudgetExceededError, DeploymentConfig

    budgeted = Deployment("dev", DeploymentConfig(max_monthly_usd=5.0), provider="local")
    with pytest.raises(BudgetExceededError):
        budgeted.run_task(TaskSpec(prompt="q", max_budget_usd=3.0))
    old = os.stat(folder / "spec.json").st_mtime - local.START_GRACE_SECONDS - 1
    os.utime(folder / "spec.json", (old, old))
    assert d.task("t-starting").state().status is TaskStatus.FAILED
