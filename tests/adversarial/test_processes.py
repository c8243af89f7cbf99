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


def _cgroups_writable() -> bool:
    from rclaude_infra.tasks.processes import Cgroup

    probe = Cgroup.create(f"rclaude-probe-{os.getpid()}")
    if probe is None:
        return False
    probe.remove()
    return True


needs_cgroups = pytest.mark.skipif(
    not _cgroups_writable(),
    reason="the cgroup v2 hierarchy is not writable here (not root, no delegated slice): "
           "tasks end by process group, subreaper and parent-death signal only")


@needs_cgroups
def test_what_outlived_a_killed_runner_ends_at_the_next_look(local: Deployment,
                                                              tmp_path: Path) -> None:
    """SIGKILL of the runner: the parent-death signal ends the command, but a child in a
    session of its own is re-parented to init; the task's cgroup still holds it."""
    task = local.run_task(TaskSpec(command=ESCAPER + "sleep 300", task_id="t-cgroup-kill"))
    escaped = _pid_left(tmp_path, task.task_id)
    folder = tmp_path / "home" / "local" / "dev" / "tasks" / task.task_id
    cgroup = Path((folder / "cgroup").read_text())
    assert escaped in [int(p) for p in (cgroup / "cgroup.procs").read_text().split()]
    os.kill(json.loads((folder / "process.json").read_text())["pid"], signal.SIGKILL)
    time.sleep(0.5)
    assert _alive(escaped)  # nothing has looked yet
    assert task.wait(timeout=30).status is TaskStatus.FAILED
    assert _gone(escaped), "the setsid child outlived its killed runner"
    assert not cgroup.exists()


@needs_cgroups
def test_a_finished_task_leaves_no_cgroup(local: Deployment, tmp_path: Path) -> None:
    task = local.run_task(TaskSpec(command="true", task_id="t-cgroup-gone"))
    assert task.wait(timeout=30).status is TaskStatus.SUCCEEDED
    recorded = tmp_path / "home" / "local" / "dev" / "tasks" / task.task_id / "cgroup"
    assert not Path(recorded.read_text()).exists()


def test_a_planted_cgroup_record_names_nothing_to_kill(tmp_path: Path) -> None:
    """The record is in the task's reach: only a task's own cgroup is ever killed."""
    from rclaude_infra.tasks.processes import Cgroup

    for planted in ("/sys/fs/cgroup", "/sys/fs/cgroup/unified", "/", "/proc/1",
                    "/sys/fs/cgroup/unified/rclaude-other-task-12",
                    "/sys/fs/cgroup/unified/../unified/rclaude-t-x-1",
                    "/sys/fs/cgroup/unified/rclaude-t-x-notapid", "relative/rclaude-t-x-1"):
        assert Cgroup.found(planted, "t-x") is None, planted


_CHECK_ESCAPER = ('setsid sleep 300 > /dev/null 2>&1 < /dev/null & '
                  'echo $! > "$RCLAUDE_ARTIFACTS/check-pid"; ')


def test_the_check_ends_as_the_command_does(local: Deployment, tmp_path: Path,
                                            bare: Path) -> None:
    """What the check leaves running ends with it; a check that holds its output open past
    its timeout ends then, with all it started."""
    task = local.run_task(TaskSpec(command="true", repo=str(bare),
                                   check=_CHECK_ESCAPER + "echo checked",
                                   task_id="t-check-daemon"))
    assert task.wait(timeout=60).status is TaskStatus.SUCCEEDED
    assert _gone(_pid_left(tmp_path, task.task_id, "check-pid"))
    task = local.run_task(TaskSpec(
        command="true", repo=str(bare), timeout=3,
        check='setsid sleep 300 & echo $! > "$RCLAUDE_ARTIFACTS/check-pid"; sleep 300',
        task_id="t-check-hang"))
    state = task.wait(timeout=60)
    assert state.status is TaskStatus.FAILED and "the check failed" in (state.reason or "")
    assert task.result().data["check"]["output"][-1] == "the check did not end within 3s"
    assert _gone(_pid_left(tmp_path, task.task_id, "check-pid"))
