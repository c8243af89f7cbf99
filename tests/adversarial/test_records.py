"""A local task cannot forge its records, nor turn the runner's writes against files
outside its run: it runs as the user, so it can write every name of its folder, but its
result counts only once the runner (which writes it last, over whatever is there) has
exited, and every record is written to a fresh file renamed into place, never through a
link the task left."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from waiting import wait_for_file

from rclaude_infra import Deployment, TaskSpec, TaskStatus
from rclaude_infra.cli import main

FORGED = json.dumps({"status": "succeeded", "exit_code": 0, "task_id": "forged",
                     "reason": None, "cost_usd": 0})


@pytest.fixture(name="local")
def _local(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Deployment:
    monkeypatch.setenv("RCLAUDE_HOME", str(tmp_path / "home"))
    return Deployment("dev", provider="local")


def _folder(tmp_path: Path, task_id: str) -> Path:
    return tmp_path / "home" / "local" / "dev" / "tasks" / task_id


def test_a_result_the_task_writes_while_it_runs_is_not_its_outcome(
        local: Deployment, tmp_path: Path) -> None:
    signal = tmp_path / "forged"
    task = local.run_task(TaskSpec(
        command=f"printf '%s' '{FORGED}' > ../result.json; touch {signal}; sleep 2; exit 3",
        task_id="t-forge-result"))
    wait_for_file(signal)
    # The forged file is there, and reads as nothing: the runner has not ended.
    assert (_folder(tmp_path, "t-forge-result") / "result.json").is_file()
    assert task.status in (TaskStatus.RUNNING, TaskStatus.PENDING)
    state = task.wait(timeout=60)
    assert state.status is TaskStatus.FAILED and state.exit_code == 3
    assert task.result().data["task_id"] == "t-forge-result"


@pytest.mark.parametrize("planted", ["result.json", "result.json.tmp"])
def test_a_link_at_a_record_is_replaced_never_written_through(
        planted: str, local: Deployment, tmp_path: Path) -> None:
    """``result.json.tmp``: the name the runner once wrote its result to first."""
    outside = tmp_path / "outside.txt"
    outside.write_text("the user's file\n")
    task = local.run_task(TaskSpec(command=f"ln -sf {outside} ../{planted}",
                                   task_id="t-link-record"))
    assert task.wait(timeout=60).status is TaskStatus.SUCCEEDED
    assert outside.read_text() == "the user's file\n"
    result = _folder(tmp_path, "t-link-record") / "result.json"
    assert result.is_file() and not result.is_symlink()


def test_a_folder_at_the_result_does_not_lose_the_result(local: Deployment,
                                                          tmp_path: Path) -> None:
    task = local.run_task(TaskSpec(command="mkdir -p ../result.json/inside; exit 4",
                                   task_id="t-dir-result"))
    state = task.wait(timeout=60)
    assert state.status is TaskStatus.FAILED and state.exit_code == 4
    assert task.result().data["exit_code"] == 4


def test_a_link_at_the_stop_record_does_not_overwrite_what_it_names(
        local: Deployment, tmp_path: Path) -> None:
    outside = tmp_path / "outside.txt"
    outside.write_text("the user's file\n")
    signal = tmp_path / "linked"
    task = local.run_task(TaskSpec(
        command=f"ln -sf {outside} ../stop_reason; touch {signal}; sleep 60",
        task_id="t-link-stop"))
    wait_for_file(signal)
    task.stop("enough")
    state = task.wait(timeout=60)
    assert state.status is TaskStatus.STOPPED and state.reason == "enough"
    assert outside.read_text() == "the user's file\n"


@pytest.mark.parametrize("forged", [
    {"status": "succeeded", "exit_code": "0"},
    {"status": ["succeeded"]},
    {"status": "succeeded", "started_at": "yesterday"},
    {"status": "succeeded", "attempt": -1},
    ["not", "an", "object"],
])
def test_a_malformed_result_reads_failed_saying_so(
        forged: object, local: Deployment, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    task = local.run_task(TaskSpec(command="true", task_id="t-bad-result"))
    assert task.wait(timeout=60).status is TaskStatus.SUCCEEDED
    # Left after the runner ended (by something the task started that escaped it).
    (_folder(tmp_path, "t-bad-result") / "result.json").write_text(json.dumps(forged))
    state = local.task("t-bad-result").state()
    assert state.status is TaskStatus.FAILED
    assert state.reason is not None and (
        "malformed" in state.reason or "without a result" in state.reason)
    for verb in (["tasks"], ["result", "t-bad-result", "--download", str(tmp_path / "out")]):
        assert main([*verb, "--provider", "local"]) in (0, 1)
        out, err = capsys.readouterr()
        assert "Traceback" not in err and "t-bad-result" in out + err
