"""A task's processes end with it: on timeout, on stop, when its command ends, and when
its runner is killed, also those that left the command's process group (``setsid``)
and hold its output open."""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from pathlib import Path

import pytest

from rclaude_infra import Deployment, TaskSpec, TaskStatus

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"),
                                reason="child subreapers and parent-death signals are Linux's")


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def _pid_left(tmp_path: Path, task_id: str, name: str = "pid", timeout: float = 30) -> int:
    found = tmp_path / "home" / "local" / "dev" / "tasks" / task_id / "artifacts" / name
    deadline = time.monotonic() + timeout
    while not found.is_file() or not found.read_text().strip():
        assert time.monotonic() < deadline, f"the task never wrote {name}"
        time.sleep(0.05)
    return int(found.read_text())


def _gone(pid: int, timeout: float = 15) -> bool:
    deadline = time.monotonic() + timeout
    while _alive(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


@pytest.fixture(name="local")
def _local(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Deployment:
    monkeypatch.setenv("RCLAUDE_HOME", str(tmp_path / "home"))
    return Deployment("dev", provider="local")


#: A child in a session of its own that keeps the command's output open.
ESCAPER = 'setsid sleep 300 & echo $! > "$RCLAUDE_ARTIFACTS/pid"; '


def test_a_timeout_ends_what_left_the_process_group(local: Deployment,
                                                    tmp_path: Path) -> None:
    task = local.run_task(TaskSpec(command=ESCAPER + "sleep 60", timeout=2,
                                   task_id="t-escape-timeout"))
    escaped = _pid_left(tmp_path, task.task_id)
    state = task.wait(timeout=40)
    assert state.status is TaskStatus.FAILED and state.exit_code == 124
    assert "timed out" in (state.reason or "")
    assert _gone(escaped), "the setsid child outlived the task's timeout"


def test_a_stop_ends_what_left_the_process_group(local: Deployment, tmp_path: Path) -> None:
    task = local.run_task(TaskSpec(command=ESCAPER + "sleep 60", task_id="t-escape-stop"))
    escaped = _pid_left(tmp_path, task.task_id)
    task.stop("enough")
    state = task.wait(timeout=40)
    assert state.status is TaskStatus.STOPPED and state.reason == "enough"
    assert _gone(escaped), "the setsid child outlived stop()"


def test_what_a_finished_command_left_running_ends_with_it(local: Deployment,
                                                           tmp_path: Path) -> None:
    task = local.run_task(TaskSpec(command=ESCAPER + "echo done", task_id="t-daemon"))
    state = task.wait(timeout=40)  # not the daemon's 300 s
    assert state.status is TaskStatus.SUCCEEDED
    assert "done" in [line.text for line in task.logs()]
    assert _gone(_pid_left(tmp_path, task.task_id)), "the daemon outlived its task"


def test_a_killed_runner_takes_its_command_with_it(local: Deployment, tmp_path: Path) -> None:
    task = local.run_task(TaskSpec(command='echo $$ > "$RCLAUDE_ARTIFACTS/pid"; exec sleep 300',
                                   task_id="t-orphaned"))
    command = _pid_left(tmp_path, task.task_id)
    record = tmp_path / "home" / "local" / "dev" / "tasks" / task.task_id / "process.json"
    os.kill(json.loads(record.read_text())["pid"], signal.SIGKILL)
    assert _gone(command), "the command outlived its runner"
    assert task.wait(timeout=30).status is TaskStatus.FAILED  # and the state says so
