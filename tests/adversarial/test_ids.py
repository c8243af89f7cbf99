"""Attacks through task ids and the records a task can write: an id is never a path, and
``stop()`` signals only a process it can prove is the runner it started."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from waiting import wait_until

from rclaude_infra import ConfigError, Deployment, TaskSpec, TaskStatus
from rclaude_infra.tasks.model import TaskNotFoundError
from rclaude_infra.tasks.spec import check_task_id

_VALID = r"[A-Za-z0-9][A-Za-z0-9_-]{0,35}"
# What an id must never get through as: paths, line ends, NUL, look-alike letters
# (Cyrillic a U+0430, fullwidth zero U+FF10, the Kelvin sign U+212A), over-long.
_HOSTILE = ["../x", "..", "/etc", "a/b", "t-1\n", "t-1\r\n", "t\x001", "\u0430bc",
            "t-\uff10", "\u212a", "t-" + "a" * 40, "-t", "", " t", "t ", "t\t"]


@pytest.fixture(name="local")
def _local(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Deployment:
    monkeypatch.setenv("RCLAUDE_HOME", str(tmp_path / "home"))
    return Deployment("dev", provider="local")


@settings(max_examples=200, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(value=st.one_of(st.text(max_size=50), st.from_regex(_VALID, fullmatch=True),
                       st.sampled_from(_HOSTILE)))
@example(value="t-1\n")
def test_an_id_is_a_task_id_or_an_error_naming_it(local: Deployment, value: str) -> None:
    """Every id a user passes: a ConfigError naming task_id, or (a well-formed id that
    is no task) TaskNotFoundError; never another error, never a read outside the root."""
    import re

    well_formed = re.fullmatch(_VALID, value) is not None
    try:
        local.task(value)
    except ConfigError as exc:
        assert not well_formed and exc.field == "task_id"
    except TaskNotFoundError:
        assert well_formed
    else:
        raise AssertionError(f"{value!r} found a task")
    with pytest.raises(ConfigError) if not well_formed else _nothing():
        TaskSpec(command="true", task_id=value)


class _nothing:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *_: Any) -> None:
        return None


@pytest.mark.parametrize("value", _HOSTILE)
def test_hostile_ids_are_refused(value: str) -> None:
    with pytest.raises(ConfigError, match="task_id"):
        check_task_id(value)


def test_the_cli_refuses_an_id_that_is_a_path(local: Deployment, tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str],
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    from rclaude_infra.cli import main

    # Something at the path the id would name, outside the tasks' root.
    target = tmp_path / "home" / "local" / "dev" / "planted"
    target.mkdir(parents=True)
    (target / "spec.json").write_text(json.dumps({"command": "true", "task_id": "planted"}))
    monkeypatch.chdir(tmp_path)
    for verb in (["result", "../planted", "--download", "out"], ["logs", "../planted"],
                 ["stop", "../planted"]):
        assert main([*verb, "--provider", "local"]) == 2, verb
        assert "task_id: got '../planted'" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_stop_does_not_signal_a_process_a_task_names(local: Deployment,
                                                     tmp_path: Path) -> None:
    """A task rewrites its process record to name another process of the user, with
    that process's true start time: stop() must not signal it."""
    task = local.run_task(TaskSpec(command="true", task_id="t-planter"))
    assert task.wait(timeout=60).status is TaskStatus.SUCCEEDED
    victim = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"],
                              start_new_session=True)
    try:
        stat = Path(f"/proc/{victim.pid}/stat").read_text()
        ticks = int(stat.rsplit(")", 1)[1].split()[19])
        record = tmp_path / "home" / "local" / "dev" / "tasks" / "t-planter" / "process.json"
        record.write_text(json.dumps({"pid": victim.pid, "start_ticks": ticks,
                                      "submitted_at": "2026-01-01T00:00:00+00:00"}))
        fresh = Deployment("dev", provider="local")  # another process: no child handle
        fresh.task("t-planter").stop("planted")
        with pytest.raises(subprocess.TimeoutExpired):  # still alive a second later
            victim.wait(timeout=1)
        assert fresh.task("t-planter").status is TaskStatus.SUCCEEDED
    finally:
        os.kill(victim.pid, signal.SIGKILL)
        victim.wait()


def test_stop_from_another_process_still_stops_the_runner(local: Deployment) -> None:
    task = local.run_task(TaskSpec(command="sleep 60", task_id="t-stopped-elsewhere"))
    fresh = Deployment("dev", provider="local")

    wait_until(lambda: fresh.task(task.task_id).status is TaskStatus.RUNNING, "RUNNING")
    fresh.task(task.task_id).stop("from elsewhere")
    state = task.wait(timeout=60)
    assert state.status is TaskStatus.STOPPED and state.reason == "from elsewhere"
