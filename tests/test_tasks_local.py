"""Tasks on the local provider: real runner subprocesses, real git repositories."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from rclaude_infra import ConfigError, Deployment, EngineError, TaskSpec
from rclaude_infra.tasks.model import TaskNotFoundError, TaskStatus, TaskTimeoutError


@pytest.fixture(autouse=True)
def _home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "home"
    monkeypatch.setenv("RCLAUDE_HOME", str(home))
    return home


@pytest.fixture(name="local")
def _local() -> Deployment:
    return Deployment("dev", provider="local")


@pytest.fixture(name="repo")
def _repo(tmp_path: Path) -> Path:
    """A git repository with a main branch, a feature branch and two commits."""
    path = tmp_path / "origin"
    path.mkdir()

    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=path, check=True, capture_output=True,
                              text=True, env={**os.environ, "GIT_AUTHOR_NAME": "t",
                                              "GIT_AUTHOR_EMAIL": "t@e", "GIT_COMMITTER_NAME":
                                              "t", "GIT_COMMITTER_EMAIL": "t@e"}).stdout
    git("init", "--quiet", "--initial-branch", "main")
    (path / "app.py").write_text("def add(a, b):\n    return a - b\n")
    git("add", "."); git("commit", "--quiet", "-m", "first")  # noqa: E702
    (path / "README").write_text("v2\n")
    git("add", "."); git("commit", "--quiet", "-m", "second")  # noqa: E702
    git("branch", "feature")
    return path


def test_success_with_repo_diff_transcript_and_artifacts(local: Deployment, repo: Path,
                                                         tmp_path: Path) -> None:
    script = ("sed -i 's/a - b/a + b/' app.py && echo fixed > NEW.txt && "
              "echo '{\"type\": \"result\"}' && cp app.py $RCLAUDE_ARTIFACTS/")
    task = local.run_task(TaskSpec(command=script, repo=str(repo), ref="feature"))
    state = task.wait(timeout=60)
    assert state.status is TaskStatus.SUCCEEDED and state.exit_code == 0
    assert state.started_at and state.stopped_at and state.stopped_at >= state.started_at
    result = task.result()
    assert result.status == "succeeded" and result.data["repo"] == str(repo)
    assert len(result.data["commit"]) == 40
    files = result.download(tmp_path / "out")
    names = {p.relative_to(tmp_path / "out" / task.task_id).as_posix() for p in files}
    assert {"result.json", "transcript.jsonl", "diff.patch", "log.jsonl",
            "artifacts/app.py"} <= names
    diff = (tmp_path / "out" / task.task_id / "diff.patch").read_text()
    assert "-    return a - b" in diff and "+    return a + b" in diff
    assert "+fixed" in diff  # new files are in the diff too
    transcript = (tmp_path / "out" / task.task_id / "transcript.jsonl").read_text()
    assert transcript == '{"type": "result"}\n'
    # One file by its name: that one only is written.
    one = result.download(tmp_path / "one", names={"artifacts/app.py", "no-such-file"})
    assert [p.relative_to(tmp_path / "one").as_posix() for p in one] == [
        f"{task.task_id}/artifacts/app.py"]
    assert sorted(p.name for p in (tmp_path / "one" / task.task_id).rglob("*")) == [
        "app.py", "artifacts"]


def test_checkout_at_a_commit(local: Deployment, repo: Path) -> None:
    first = subprocess.run(["git", "rev-list", "--max-parents=0", "HEAD"], cwd=repo,
                           capture_output=True, text=True, check=True).stdout.strip()
    task = local.run_task(TaskSpec(command="test ! -e README", repo=str(repo), ref=first))
    assert task.wait(timeout=60).status is TaskStatus.SUCCEEDED
    assert task.result().data["commit"] == first


def test_failure_keeps_logs_status_and_result(local: Deployment) -> None:
    task = local.run_task(TaskSpec(command="echo working; echo broken >&2; exit 3"))
    state = task.wait(timeout=60)
    assert state.status is TaskStatus.FAILED and state.exit_code == 3
    assert state.reason == "exit code 3"
    lines = [str(line) for line in task.logs()]
    # Standard output and error are read apart (stderr.log): their order may interleave.
    assert lines[0] == "[runner] running bash in workspace"
    assert sorted(lines[1:3]) == ["broken", "working"]
    assert lines[3] == "[runner] failed: exit code 3"
    from rclaude_infra.paths import rclaude_home

    files = rclaude_home() / "local" / "dev" / "tasks" / task.task_id
    assert (files / "stderr.log").read_text() == "broken\n"
    assert (files / "transcript.jsonl").read_text() == "working\n"


def test_a_bad_repo_still_writes_a_result(local: Deployment, tmp_path: Path) -> None:
    task = local.run_task(TaskSpec(command="true", repo=str(tmp_path / "nowhere")))
    state = task.wait(timeout=60)
    assert state.status is TaskStatus.FAILED and "git clone" in (state.reason or "")
    assert task.result().status == "failed"


def test_missing_secret_is_refused_before_the_task_starts(local: Deployment) -> None:
    with pytest.raises(ConfigError, match="NOT_SET_ANYWHERE_42") as info:
        local.run_task(TaskSpec(command="true", secrets=["NOT_SET_ANYWHERE_42"]))
    assert info.value.field == "secrets"
    assert local.tasks() == []


def test_timeout(local: Deployment) -> None:
    task = local.run_task(TaskSpec(command="echo start; sleep 30", timeout=1))
    state = task.wait(timeout=60)
    assert state.status is TaskStatus.FAILED and state.exit_code == 124
    assert state.reason == "timed out after 1s"
    assert "start" in [str(line) for line in task.logs()]


def test_stop_ends_the_whole_process_group(local: Deployment, tmp_path: Path) -> None:
    marker = tmp_path / "grandchild.pid"
    task = local.run_task(TaskSpec(command=f"sleep 60 & echo $! > {marker}; wait"))
    deadline = time.monotonic() + 30
    while not marker.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert task.status is TaskStatus.RUNNING
    task.stop("no longer needed")
    state = task.wait(timeout=30)
    assert state.status is TaskStatus.STOPPED and state.reason == "no longer needed"
    grandchild = int(marker.read_text())
    deadline = time.monotonic() + 10
    while not _gone(grandchild) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _gone(grandchild)


def _gone(pid: int) -> bool:
    """Exited: no such process, or a zombie waiting for a parent that may never reap it."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rsplit(")", 1)[1].split()[0] == "Z"


def test_follow_reads_every_line_once_in_order(local: Deployment) -> None:
    task = local.run_task(TaskSpec(command="for i in $(seq 1 400); do echo line-$i; "
                                   "[ $((i % 50)) -eq 0 ] && sleep 0.05; done"))
    lines = [str(x) for x in task.logs(follow=True) if str(x).startswith("line-")]
    assert lines == [f"line-{i}" for i in range(1, 401)]
    assert task.status is TaskStatus.SUCCEEDED


def test_logs_since_a_time(local: Deployment) -> None:
    task = local.run_task(TaskSpec(command="echo early; sleep 0.5; echo late"))
    task.wait(timeout=60)
    all_lines = list(task.logs())
    late = next(x for x in all_lines if x.text == "late")
    assert next(x.text for x in task.logs(since=late.time)) == "late"


def test_reattach_from_another_process(local: Deployment, _home: Path) -> None:
    task = local.run_task(TaskSpec(command="sleep 0.5; echo done"))
    code = (
        "import json, sys; from rclaude_infra import Deployment;"
        f"t = Deployment('dev', provider='local').task({task.task_id!r});"
        "s = t.wait(timeout=60);"
        "print(json.dumps([s.status.value, [str(x) for x in t.logs()][-2]]))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env={**os.environ, "RCLAUDE_HOME": str(_home)}, check=True, timeout=90)
    assert json.loads(out.stdout) == ["SUCCEEDED", "done"]
    with pytest.raises(TaskNotFoundError):
        local.task("t-nope")


def test_a_runner_killed_without_a_result_is_failed(local: Deployment, _home: Path) -> None:
    task = local.run_task(TaskSpec(command="sleep 30"))
    process = _home / "local" / "dev" / "tasks" / task.task_id / "process.json"
    while not process.exists():
        time.sleep(0.05)
    os.kill(json.loads(process.read_text())["pid"], signal.SIGKILL)
    state = task.wait(timeout=30)
    assert state.status is TaskStatus.FAILED and "without a result" in (state.reason or "")


def test_resubmitting_a_task_id_never_starts_it_twice(local: Deployment, tmp_path: Path) -> None:
    counter = tmp_path / "runs"
    spec = TaskSpec(command=f"echo run >> {counter}", task_id="fixed-id-1")
    first = local.run_task(spec)
    again = local.run_task(spec)
    assert again.task_id == first.task_id
    first.wait(timeout=60)
    assert counter.read_text() == "run\n"


def test_run_tasks_and_history(local: Deployment) -> None:
    tasks = local.run_tasks([TaskSpec(command="true"), TaskSpec(command="false")])
    for task in tasks:
        task.wait(timeout=60)
    assert {t.task_id for t in local.tasks()} == {t.task_id for t in tasks}
    failed = local.tasks(status=TaskStatus.FAILED)
    assert [t.task_id for t in failed] == [tasks[1].task_id]
    assert len(local.tasks(limit=1)) == 1
    with pytest.raises(ConfigError, match="distinct task ids"):
        local.run_tasks([TaskSpec(command="true", task_id="same")] * 2)


def test_wait_timeout_leaves_the_task_running(local: Deployment) -> None:
    task = local.run_task(TaskSpec(command="sleep 5"))
    with pytest.raises(TaskTimeoutError, match="keeps running"):
        task.wait(timeout=0.3)
    task.stop()
    assert task.wait(timeout=30).status is TaskStatus.STOPPED


def test_ecs_tasks_need_a_deployed_stack() -> None:
    with pytest.raises(EngineError, match="outputs lack cluster_arn"):
        Deployment.from_outputs("dev", {"region": "us-east-1"}).run_task(TaskSpec(command="x"))
    with pytest.raises(ConfigError, match=r"^provider: "):
        Deployment("dev", provider="fargate")


@pytest.mark.parametrize(("fields", "field"), [
    ({}, "prompt/command"),
    ({"prompt": "a", "command": "b"}, "prompt/command"),
    ({"prompt": "  "}, "prompt"),
    ({"command": []}, "command"),
    ({"command": "x", "repo": "not a url"}, "repo"),
    ({"command": "x", "ref": "main"}, "ref"),
    ({"command": "x", "repo": "https://github.com/a/b", "ref": "../etc"}, "ref"),
    ({"command": "x", "task_id": "has space"}, "task_id"),
    ({"command": "x", "task_id": "x" * 37}, "task_id"),
    ({"command": "x", "env": {"1BAD": "v"}}, "env['1BAD']"),
    ({"command": "x", "env": {"RCLAUDE_TASK_ID": "v"}}, "env['RCLAUDE_TASK_ID']"),
    ({"command": "x", "secrets": ["sk-ant-value"]}, "secrets"),
    ({"command": "x", "timeout": 0}, "timeout"),
    ({"command": "x", "cpu": 64}, "cpu"),
    ({"command": "x", "max_retries_on_preemption": 9}, "max_retries_on_preemption"),
])
def test_task_spec_validation(fields: dict[str, Any], field: str) -> None:
    with pytest.raises(ConfigError) as info:
        TaskSpec(**fields)
    assert info.value.field == field


def test_task_spec_round_trip_and_argv() -> None:
    spec = TaskSpec(prompt="Fix the tests", repo="git@github.com:me/app.git", ref="main",
                    env={"CI": "1"}, secrets=["GITHUB_TOKEN"])
    assert TaskSpec.from_mapping(json.loads(json.dumps(spec.to_dict()))) == spec
    assert spec.argv()[:2] == ["claude", "-p"]
    assert "stream-json" in spec.argv() and "Fix the tests" not in spec.argv()  # on stdin
    assert TaskSpec(command="make test").argv() == ["bash", "-lc", "make test"]
    with pytest.raises(ConfigError, match="TaskSpec field"):
        TaskSpec.from_mapping({"comand": "x"})


def test_local_tasks_need_neither_pulumi_nor_boto3(_home: Path) -> None:
    code = (
        "import json, sys; from rclaude_infra import Deployment, TaskSpec;"
        "t = Deployment('dev', provider='local').run_task(TaskSpec(command='true'));"
        "t.wait(timeout=60);"
        "print(json.dumps([m for m in ('pulumi', 'pulumi_aws', 'boto3', 'botocore')"
        " if m in sys.modules]))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env={**os.environ, "RCLAUDE_HOME": str(_home)}, check=True, timeout=90)
    assert json.loads(out.stdout) == []


def test_spend_of_local_tasks_has_no_idle_stack(local: Deployment) -> None:
    import datetime as dt

    task = local.run_task(TaskSpec(command="true"))
    task.wait(timeout=60)
    assert task.cost().total_usd == 0.0  # a local command costs nothing on AWS
    month_ago = dt.datetime.now(dt.UTC) - dt.timedelta(hours=730)
    spend = local.spend(month_ago)
    assert spend.tasks == 1 and spend.tasks_usd == 0.0
    # Local tasks run here: no stack idles for them.
    assert spend.baseline_usd == 0.0 and spend.total_usd == 0.0
    with pytest.raises(ConfigError, match="since"):
        local.spend(dt.datetime(2026, 1, 1))


def test_a_task_stopped_while_its_runner_starts_is_stopped_not_failed(
    local: Deployment,
) -> None:
    task = local.run_task(TaskSpec(command="sleep 30"))
    task.stop("changed my mind")  # at once: the runner has not set its handlers yet
    state = task.wait(timeout=30)
    assert state.status is TaskStatus.STOPPED
    assert state.reason == "changed my mind"


def test_any_provider_can_be_injected(tmp_path: Path) -> None:
    """As httpx takes a transport: Deployment(tasks=...) runs its tasks on what it is given."""
    from rclaude_infra.tasks.local import LocalProvider

    provider = LocalProvider(tmp_path / "elsewhere")
    d = Deployment("dev", tasks=provider)
    task = d.run_task(TaskSpec(command="echo injected"))
    assert task.wait(timeout=60).status is TaskStatus.SUCCEEDED
    assert (tmp_path / "elsewhere" / task.task_id / "result.json").is_file()
    assert d.provider == "LocalProvider"
    assert [t.task_id for t in d.tasks()] == [task.task_id]
    assert d.status().provider == "LocalProvider" and d.status().tasks == {}
    with pytest.raises(ConfigError) as info:
        Deployment("dev", tasks=object())  # type: ignore[arg-type]
    assert info.value.field == "tasks"


def test_secret_values_given_reach_the_task_and_no_record(tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch
                                                           ) -> None:
    """``run_task(spec, secret_values=...)``: a service's per-user secrets, not this
    process's environment."""
    monkeypatch.setenv("RCLAUDE_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("DEPLOY_TOKEN", raising=False)
    d = Deployment("dev", provider="local")
    spec = TaskSpec(command='printf %s "$DEPLOY_TOKEN" | sha256sum', secrets=["DEPLOY_TOKEN"])
    with pytest.raises(ConfigError, match="secrets"):
        d.run_task(spec)  # neither given nor in the environment
    with pytest.raises(ConfigError, match="secret_values"):
        d.run_task(spec, secret_values={"OTHER": "x"})
    with pytest.raises(ConfigError, match=r"secret_values\.DEPLOY_TOKEN"):
        d.run_task(spec, secret_values={"DEPLOY_TOKEN": "a\x00b"})
    task = d.run_task(spec, secret_values={"DEPLOY_TOKEN": "tok-given-0042"})
    assert task.wait(timeout=60).status is TaskStatus.SUCCEEDED
    import hashlib

    digest = hashlib.sha256(b"tok-given-0042").hexdigest()
    assert any(line.text.startswith(digest) for line in task.logs())
    folder = tmp_path / "home" / "local" / "dev" / "tasks" / task.task_id
    for path in folder.rglob("*"):
        if path.is_file():
            assert b"tok-given-0042" not in path.read_bytes(), path
