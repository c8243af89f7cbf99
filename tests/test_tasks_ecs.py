"""The ECS provider against moto's server: a cluster with a registered container instance,
a capacity provider, the results bucket and the log group, created the way the stack
would, reached through Deployment.from_outputs. Status mapping is checked on DescribeTasks
shapes from the ECS API reference (moto sets no stopCode, see emulator-gaps.md)."""

from __future__ import annotations

import datetime as dt
import json
import time
from pathlib import Path
from typing import Any

import pytest
from moto_stack import EcsReports, answer, attempts, run_folder

from rclaude_infra import (
    ConfigError,
    Deployment,
    DeploymentConfig,
    EngineError,
    StackOutputs,
    TaskSpec,
    TaskStatus,
    TaskTimeoutError,
)
from rclaude_infra._aws.container import run_from_s3
from rclaude_infra._aws.ecs import EcsProvider, map_task


def test_run_task_puts_the_spec_first_then_one_run_task(deployment: Deployment, aws: Any,
                                                         stack: StackOutputs) -> None:
    spec = TaskSpec(prompt="Fix the failing tests " * 400, repo="https://github.com/me/app",
                    cpu=512, memory=1024)
    task = deployment.run_task(spec)
    s3 = aws.client("s3")
    stored = json.loads(s3.get_object(Bucket=stack.bucket,
                                      Key=f"tasks/{spec.task_id}/spec.json")["Body"].read())
    assert TaskSpec.from_mapping(stored) == spec  # the 9 KB prompt rides in S3, not overrides
    attempts = json.loads(s3.get_object(Bucket=stack.bucket,
                                        Key=f"tasks/{spec.task_id}/attempts.json")["Body"].read())
    assert [a["attempt"] for a in attempts] == [1]
    ecs = aws.client("ecs")
    (described,) = ecs.describe_tasks(cluster=stack.cluster_arn, tasks=[attempts[0]["arn"]],
                                      include=["TAGS"])["tasks"]
    assert described["startedBy"] == spec.task_id
    assert described["capacityProviderName"] == stack.capacity_provider
    assert {"key": "rclaude:task-id", "value": spec.task_id} in described["tags"]
    assert task.status is TaskStatus.RUNNING


def test_no_secret_value_reaches_s3_or_the_container_overrides(
    deployment: Deployment, aws: Any, stack: StackOutputs, monkeypatch: pytest.MonkeyPatch,
) -> None:
    key = "sk-ant-api03-PLANTED-ecs-hygiene-3Kx"
    monkeypatch.setenv("ANTHROPIC_API_KEY", key)
    monkeypatch.setenv("GITHUB_TOKEN", key)
    spec = TaskSpec(command="true", secrets=["GITHUB_TOKEN"])
    deployment.run_task(spec)
    s3 = aws.client("s3")
    for name in ("spec.json", "attempts.json"):
        body = s3.get_object(Bucket=stack.bucket, Key=f"tasks/{spec.task_id}/{name}")["Body"]
        assert key not in body.read().decode()
    arns = aws.client("ecs").list_tasks(cluster=stack.cluster_arn,
                                        startedBy=spec.task_id)["taskArns"]
    (described,) = aws.client("ecs").describe_tasks(cluster=stack.cluster_arn,
                                                    tasks=arns)["tasks"]
    assert key not in json.dumps(described, default=str)
    overrides = described["overrides"]["containerOverrides"][0]
    assert {e["name"] for e in overrides["environment"]} == {"RCLAUDE_TASK_ID",
                                                             "RCLAUDE_ATTEMPT"}


def test_resubmission_and_reattach_use_the_s3_record(deployment: Deployment, aws: Any,
                                                      stack: StackOutputs) -> None:
    spec = TaskSpec(command="true")
    first = deployment.run_task(spec)
    again = deployment.run_task(spec)
    assert again.task_id == first.task_id
    ecs = aws.client("ecs")
    assert len(ecs.list_tasks(cluster=stack.cluster_arn, startedBy=spec.task_id)["taskArns"]) == 1
    # Another process: a new Deployment from the same outputs finds it.
    other = Deployment.from_outputs("dev", stack.to_dict(), session=aws)
    assert other.task(spec.task_id).status is TaskStatus.RUNNING
    assert spec.task_id in {t.task_id for t in other.tasks(limit=None)}


def test_a_task_runs_end_to_end_through_s3_and_logs(
    deployment: Deployment, aws: Any, stack: StackOutputs, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    spec = TaskSpec(command="echo hello from the task; echo x > $RCLAUDE_ARTIFACTS/out.txt")
    task = deployment.run_task(spec)
    # What the container does: the runner in S3 mode (here against moto's server).
    _as_the_container(monkeypatch, aws, stack, spec.task_id)
    assert run_from_s3(stack.bucket or "", spec.task_id, tmp_path / "work") == 0
    # The container's awslogs stream: task/<container>/<ecs task id>.
    arn = json.loads(aws.client("s3").get_object(
        Bucket=stack.bucket, Key=f"tasks/{spec.task_id}/attempts.json")["Body"].read())[0]["arn"]
    stream = f"task/runner/{arn.rsplit('/', 1)[-1]}"
    logs = aws.client("logs")
    logs.create_log_stream(logGroupName=stack.log_group, logStreamName=stream)
    now = int(dt.datetime.now(dt.UTC).timestamp() * 1000)
    logs.put_log_events(logGroupName=stack.log_group, logStreamName=stream, logEvents=[
        {"timestamp": now + i, "message": f"line {i}"} for i in range(250)])
    aws.client("ecs").stop_task(cluster=stack.cluster_arn, task=arn, reason="Essential container "
                                "in task exited")
    lines = [str(x) for x in task.logs()]
    assert lines == [f"line {i}" for i in range(250)]
    state = task.wait(timeout=30, poll=0.05)
    assert state.status in (TaskStatus.SUCCEEDED, TaskStatus.STOPPED)
    result = task.result()
    assert result.status == "succeeded" and result.exit_code == 0
    files = result.download(tmp_path / "out")
    names = {p.relative_to(tmp_path / "out" / spec.task_id).as_posix() for p in files}
    assert {"result.json", "transcript.jsonl", "log.jsonl", "artifacts/out.txt"} <= names
    # One file by its name: one object read from S3, one file written.
    reads: list[str] = []
    task._provider.s3.meta.events.register(  # type: ignore[attr-defined]
        "before-parameter-build.s3.GetObject", lambda params, **_: reads.append(params["Key"]))
    one = result.download(tmp_path / "one", names={"artifacts/out.txt"})
    assert [p.relative_to(tmp_path / "one").as_posix() for p in one] == [
        f"{spec.task_id}/artifacts/out.txt"]
    assert len(reads) == 1 and reads[0].endswith("/artifacts/out.txt")


def test_status_of_many_tasks_is_shared_and_batched(aws: Any, stack: StackOutputs) -> None:
    calls: list[str] = []
    aws.events.register("before-call.ecs.DescribeTasks", lambda **_: calls.append("x"))
    # Long enough that 150 reads on a loaded 2-core machine end before a refreshed task
    # is due again (a refresh is stamped up to a quarter interval early, for jitter).
    interval = 3.0
    deployment = Deployment("dev", DeploymentConfig(), tasks=EcsProvider(
        aws, stack, deployment="dev", poll_interval=interval))
    tasks = deployment.run_tasks([TaskSpec(command="true") for _ in range(150)])
    time.sleep(interval * 1.5)  # every task is due for a refresh, as after one poll
    before = len(calls)
    statuses = [task.status for task in tasks]  # 150 readers
    assert statuses == [TaskStatus.RUNNING] * 150
    assert len(calls) - before == 2  # shared: ceil(150 / 100) DescribeTasks


def test_the_poll_interval_is_how_long_a_status_read_is_reused(aws: Any,
                                                                stack: StackOutputs) -> None:
    calls: list[str] = []
    aws.events.register("before-call.ecs.DescribeTasks", lambda **_: calls.append("x"))
    looked = {}
    for interval in (60.0, 0.0):
        d = Deployment.from_outputs("dev", stack, session=aws, poll_interval=interval)
        task = d.run_task(TaskSpec(command="sleep 600"))
        calls.clear()
        assert [task.state().status for _ in range(3)] == [TaskStatus.RUNNING] * 3
        looked[interval] = len(calls)
    # RunTask's answer serves reads for a minute; with no interval, each read looks.
    assert looked == {60.0: 0, 0.0: 3}
    for bad in (-1, "2", True, 7200):
        with pytest.raises(ConfigError, match="poll_interval: got"):
            Deployment("dev", poll_interval=bad)  # type: ignore[arg-type]


def test_stop(deployment: Deployment) -> None:
    task = deployment.run_task(TaskSpec(command="sleep 600"))
    task.stop("user asked")
    state = task.state()
    # moto sets no stopCode and keeps exit code 0 (emulator-gaps.md): the provider's own
    # record of the stop decides, as it would on ECS.
    assert state.status is TaskStatus.STOPPED and state.reason == "user asked"


# -- status mapping from DescribeTasks shapes (ECS API reference) ----------------------

STARTED = dt.datetime(2026, 11, 27, 12, 0, tzinfo=dt.UTC)
STOPPED_AT = dt.datetime(2026, 11, 27, 12, 15, tzinfo=dt.UTC)


def described(last: str, *, stop_code: str | None = None, stopped_reason: str | None = None,
              exit_code: int | None = None, container_reason: str | None = None) -> dict:
    container: dict[str, Any] = {"name": "runner", "lastStatus": last,
                                 "containerArn": "arn:aws:ecs:us-east-1:1:container/c/x"}
    if exit_code is not None:
        container["exitCode"] = exit_code
    if container_reason:
        container["reason"] = container_reason
    task: dict[str, Any] = {
        "taskArn": "arn:aws:ecs:us-east-1:111122223333:task/c/0f3e", "lastStatus": last,
        "desiredStatus": "STOPPED" if last == "STOPPED" else "RUNNING",
        "containers": [container], "capacityProviderName": "rclaude-dev-cp",
        "startedBy": "t-1", "createdAt": STARTED,
    }
    if last in ("RUNNING", "STOPPED"):
        task["startedAt"] = STARTED
    if last == "STOPPED":
        task.update(stoppedAt=STOPPED_AT, stopCode=stop_code, stoppedReason=stopped_reason)
    return task


def ecs_reports(reported: tuple[Deployment, EcsReports], aws: Any, stack: StackOutputs,
                task_id: str, *args: Any, **fields: Any) -> str:
    """ECS describes the task's latest attempt as ``described(*args, **fields)`` from now
    on (stop codes and reasons moto cannot give); returns that attempt's ARN."""
    arn = attempts(aws, stack.bucket or "", task_id)[-1]["arn"]
    reported[1].report(arn, described(*args, **fields))
    return arn


@pytest.mark.parametrize(("task", "status", "reason"), [
    (described("PROVISIONING"), TaskStatus.PENDING, "waiting for capacity"),
    (described("PENDING"), TaskStatus.PENDING, "pending"),
    (described("RUNNING"), TaskStatus.RUNNING, None),
    (described("STOPPED", stop_code="EssentialContainerExited",
               stopped_reason="Essential container in task exited", exit_code=0),
     TaskStatus.SUCCEEDED, None),
    (described("STOPPED", stop_code="EssentialContainerExited",
               stopped_reason="Essential container in task exited", exit_code=2),
     TaskStatus.FAILED, "exit code 2"),
    (described("STOPPED", stop_code="EssentialContainerExited", exit_code=137,
               stopped_reason="Essential container in task exited",
               container_reason="OutOfMemoryError: Container killed due to memory usage"),
     TaskStatus.FAILED, "out of memory"),
    (described("STOPPED", stop_code="TaskFailedToStart",
               stopped_reason="CannotPullContainerError: pull image manifest has been retried "
               "5 time(s): failed to resolve ref runner:1: not found"),
     TaskStatus.FAILED, "image pull failed"),
    (described("STOPPED", stop_code="UserInitiated", stopped_reason="user asked",
               exit_code=143), TaskStatus.STOPPED, "user asked"),
    (described("STOPPED", stop_code="SpotInterruption",
               stopped_reason="Your Spot Task was interrupted.", exit_code=143),
     TaskStatus.PREEMPTED, "spot interruption"),
    (described("STOPPED", stop_code="TerminationNotice",
               stopped_reason="Task stopped due to instance termination"),
     TaskStatus.PREEMPTED, "spot interruption"),
    (described("STOPPED", stop_code="EssentialContainerExited",
               stopped_reason="Host EC2 (instance i-0abc123def4567890) terminated."),
     TaskStatus.PREEMPTED, "Host EC2"),
])
def test_status_mapping(task: dict, status: TaskStatus, reason: str | None) -> None:
    state = map_task(task, "runner")
    assert state.status is status
    if reason is None:
        assert state.reason is None
    else:
        assert reason in (state.reason or "")
    if task["lastStatus"] == "STOPPED":
        assert state.stopped_at == STOPPED_AT


def test_a_preempted_task_is_submitted_again(reported: tuple[Deployment, EcsReports],
                                             aws: Any, stack: StackOutputs) -> None:
    deployment = reported[0]
    spec = TaskSpec(command="true", max_retries_on_preemption=1)
    task = deployment.run_task(spec)
    # ECS reported the spot interruption (moto cannot: it sets no stopCode).
    first_arn = ecs_reports(reported, aws, stack, spec.task_id, "STOPPED",
                            stop_code="SpotInterruption",
                            stopped_reason="Your Spot Task was interrupted.")
    ecs = aws.client("ecs")
    # Reading changes nothing: no RunTask from a state, a status, a repr or the history.
    state = task.state()
    assert state.status is TaskStatus.PREEMPTED and "submitted again" in (state.reason or "")
    assert "PREEMPTED" in repr(task) and task.status is TaskStatus.PREEMPTED
    assert deployment.tasks(status=TaskStatus.PREEMPTED)[0].task_id == spec.task_id
    assert len(ecs.list_tasks(cluster=stack.cluster_arn, startedBy=spec.task_id)["taskArns"]) == 1
    # Waiting takes the step.
    with pytest.raises(TaskTimeoutError):
        task.wait(timeout=0.3)
    state = task.state()
    assert not state.status.done and state.attempt == 2  # moto starts it at once
    started = attempts(aws, stack.bucket or "", spec.task_id)
    assert [a["attempt"] for a in started] == [1, 2] and started[0]["arn"] == first_arn
    # Out of retries: the second interruption is the end, however one waits.
    ecs_reports(reported, aws, stack, spec.task_id, "STOPPED", stop_code="SpotInterruption",
                stopped_reason="Your Spot Task was interrupted.")
    assert task.wait(timeout=5).status is TaskStatus.PREEMPTED
    assert deployment.reconcile() == []
    assert len(ecs.list_tasks(cluster=stack.cluster_arn, startedBy=spec.task_id)["taskArns"]) == 2


def test_a_task_that_died_with_its_spot_host_is_preempted_and_reconciled(
        reported: tuple[Deployment, EcsReports], aws: Any, stack: StackOutputs) -> None:
    """RunTask tasks are not drained on a spot notice: they die with the host, and ECS says
    only "Host EC2 (instance i-...) terminated." (shared/reference/ecs-runtime-facts.md,
    from AWS's "Spot Instance draining" documentation); moto has no such stop."""
    deployment = reported[0]
    spec = TaskSpec(command="true", max_retries_on_preemption=2)
    deployment.run_task(spec)
    ecs_reports(reported, aws, stack, spec.task_id, "STOPPED",
                stop_code="EssentialContainerExited",
                stopped_reason="Host EC2 (instance i-0abc123def4567890) terminated.")
    assert deployment.task(spec.task_id).status is TaskStatus.PREEMPTED
    [again] = deployment.reconcile()
    assert again.task_id == spec.task_id and again.state().attempt == 2


def test_a_preemption_seen_by_two_processes_is_submitted_again_once(
    reported: tuple[Deployment, EcsReports], aws: Any, stack: StackOutputs,
) -> None:
    spec = TaskSpec(command="true", max_retries_on_preemption=1)
    mine = reported[0].run_task(spec)
    # Another process: its own provider, reading the same ECS and S3.
    other = Deployment("dev", DeploymentConfig(), tasks=EcsProvider(
        aws, stack, deployment="dev", poll_interval=0.0))
    ecs_reports(reported, aws, stack, spec.task_id, "STOPPED", stop_code="SpotInterruption",
                stopped_reason="Your Spot Task was interrupted.")
    assert other.task(spec.task_id).status is TaskStatus.PREEMPTED
    assert mine.status is TaskStatus.PREEMPTED  # this one knows attempt 1 only
    assert [t.task_id for t in other.reconcile()] == [spec.task_id]  # the other resubmits
    with pytest.raises(TaskTimeoutError):
        mine.wait(timeout=0.3)  # this one's step finds attempt 2 there: no third
    assert mine.state().attempt == 2
    ecs = aws.client("ecs")
    assert len(ecs.list_tasks(cluster=stack.cluster_arn, startedBy=spec.task_id)["taskArns"]) == 2


def test_task_cost_is_runtime_times_share_times_price(
        reported: tuple[Deployment, EcsReports], aws: Any, stack: StackOutputs) -> None:
    spec = TaskSpec(command="true")
    task = reported[0].run_task(spec)
    arn = aws.client("ecs").list_tasks(cluster=stack.cluster_arn,
                                       startedBy=spec.task_id)["taskArns"][0]
    (placed,) = aws.client("ecs").describe_tasks(cluster=stack.cluster_arn,
                                                 tasks=[arn])["tasks"]
    # moto's DescribeTasks has no startedAt / stoppedAt: the times come from a recorded
    # shape; the container instance and its EC2 instance (a t3.medium) come from moto.
    reported[1].report(arn, {
        **described("STOPPED", stop_code="EssentialContainerExited", exit_code=0,
                    stopped_reason="Essential container in task exited"),
        "containerInstanceArn": placed["containerInstanceArn"], "cpu": "1024",
        "memory": "2048"})
    hours = (STOPPED_AT - STARTED).total_seconds() / 3600  # 15 minutes
    # 1024 CPU units of t3.medium's 2048, 2048 MiB of the 3840 ECS gives tasks: 2048/3840.
    cost = task.cost()
    assert cost.compute_usd == pytest.approx(hours * (2048 / 3840) * 0.0416)
    assert cost.model_usd is None and cost.total_usd == cost.compute_usd  # a command task


def _throttle(client: Any, operations: list[str], share: float, seed: int) -> dict[str, int]:
    """Answer a share of the client's calls with ThrottlingException before they are sent
    (so no throttled call reached the server: see emulator-gaps.md on clientToken)."""
    import random

    rng = random.Random(seed)
    injected = {"count": 0}

    def maybe_throttle(_request: Any) -> tuple[int, dict[str, Any]] | None:
        if rng.random() >= share:
            return None
        injected["count"] += 1
        return 400, {"__type": "ThrottlingException", "message": "Rate exceeded"}

    answer(client, operations, maybe_throttle)
    return injected


def test_throttling_loses_and_duplicates_nothing(aws: Any, stack: StackOutputs) -> None:
    """Correctness under throttling, not the rate limiter's pace: the provider is given
    standard retries (the library's default, adaptive mode, slows the whole process down
    after throttles: a minute of this test for nothing it checks)."""
    from botocore.config import Config

    provider = EcsProvider(aws, stack, deployment="dev", botocore_config=Config(
        retries={"mode": "standard", "max_attempts": 12}, max_pool_connections=32))
    deployment = Deployment("dev", tasks=provider)
    ecs_injected = _throttle(provider.ecs, ["RunTask", "DescribeTasks"], 0.1, seed=7)
    # The first two GetLogEvents calls are throttled, then every fourth: the read must
    # retry through at its start and in its middle (a fixed pattern, so the backoff stays
    # short: a random half throttled made this test take from 20 s to 40 s).
    logs_injected = {"count": 0, "calls": 0}

    def every_fourth(_request: Any) -> tuple[int, dict[str, Any]] | None:
        logs_injected["calls"] += 1
        if logs_injected["calls"] > 2 and logs_injected["calls"] % 4:
            return None
        logs_injected["count"] += 1
        return 400, {"__type": "ThrottlingException", "message": "Rate exceeded"}

    answer(provider.logs, ["GetLogEvents"], every_fourth)
    specs = [TaskSpec(command="true") for _ in range(200)]
    tasks = deployment.run_tasks(specs)
    statuses = [task.status for task in tasks]
    assert statuses == [TaskStatus.RUNNING] * 200
    assert ecs_injected["count"] >= 10  # the hook really throttled a share of the calls
    ecs = aws.client("ecs")
    arns = [arn for page in ecs.get_paginator("list_tasks").paginate(cluster=stack.cluster_arn)
            for arn in page["taskArns"]]
    started_by = [task["startedBy"] for i in range(0, len(arns), 100)
                  for task in ecs.describe_tasks(cluster=stack.cluster_arn,
                                                 tasks=arns[i:i + 100])["tasks"]]
    # Exactly one ECS task per task id: none lost, none duplicated.
    assert sorted(started_by) == sorted(spec.task_id for spec in specs)
    # A followed log read end to end through throttled GetLogEvents: no gaps, no repeats.
    arn = attempts(aws, stack.bucket or "", specs[0].task_id)[0]["arn"]
    stream = f"task/runner/{arn.rsplit('/', 1)[-1]}"
    logs = aws.client("logs")
    logs.create_log_stream(logGroupName=stack.log_group, logStreamName=stream)
    base = int(dt.datetime.now(dt.UTC).timestamp() * 1000)
    for batch in range(3):
        logs.put_log_events(logGroupName=stack.log_group, logStreamName=stream, logEvents=[
            {"timestamp": base + batch * 1000 + i, "message": f"{batch}-{i}"} for i in range(100)])
    read = [str(x) for x in tasks[0].logs()]
    assert read == [f"{b}-{i}" for b in range(3) for i in range(100)]
    assert logs_injected["count"] >= 2


def test_run_tasks_reports_what_did_not_start_and_a_rerun_starts_only_that(
    deployment: Deployment, aws: Any, stack: StackOutputs,
) -> None:
    specs = [TaskSpec(command="true") for _ in range(12)]
    refused = {specs[3].task_id, specs[8].task_id}
    state = {"refuse": True}

    def refuse_some(request: Any) -> tuple[int, dict[str, Any]] | None:
        if state["refuse"] and json.loads(request.body)["startedBy"] in refused:
            return 400, {"__type": "ClientException", "message": "no capacity for you"}
        return None

    answer(aws, ["RunTask"], refuse_some, service="ecs")  # before the deployment's client
    with pytest.raises(EngineError, match="2 of 12 tasks could not start") as err:
        deployment.run_tasks(specs)
    assert all(task_id in str(err.value) for task_id in refused)
    ecs = aws.client("ecs")

    def started(task_id: str) -> int:
        return len(ecs.list_tasks(cluster=stack.cluster_arn, startedBy=task_id)["taskArns"])

    assert [started(s.task_id) for s in specs] == [0 if s.task_id in refused else 1
                                                   for s in specs]
    state["refuse"] = False
    tasks = deployment.run_tasks(specs)  # again: only the two missing ones start
    assert [started(s.task_id) for s in specs] == [1] * 12
    assert [t.task_id for t in tasks] == [s.task_id for s in specs]


def test_a_submitter_that_died_after_the_spec_is_picked_up(
    deployment: Deployment, aws: Any, stack: StackOutputs,
) -> None:
    spec = TaskSpec(command="true")
    # Another process wrote the spec and started the task, then died before recording it.
    aws.client("s3").put_object(Bucket=stack.bucket, Key=f"tasks/{spec.task_id}/spec.json",
                                Body=json.dumps(spec.to_dict()).encode())
    arn = aws.client("ecs").run_task(
        cluster=stack.cluster_arn, taskDefinition=stack.task_definition_arn,
        startedBy=spec.task_id, capacityProviderStrategy=[
            {"capacityProvider": stack.capacity_provider, "weight": 1}])["tasks"][0]["taskArn"]
    task = deployment.run_task(spec)
    assert [a["arn"] for a in attempts(aws, stack.bucket or "", spec.task_id)] == [arn]
    assert len(aws.client("ecs").list_tasks(cluster=stack.cluster_arn,
                                            startedBy=spec.task_id)["taskArns"]) == 1
    assert task.status is TaskStatus.RUNNING


def test_an_ended_task_is_not_asked_about_again(
        reported: tuple[Deployment, EcsReports]) -> None:
    """Its provider asks ECS on every read of a task not ended (no status cache)."""
    deployment, reports = reported
    task = deployment.run_task(TaskSpec(command="sleep 600"))
    seen = reports.describe_calls
    assert task.status is TaskStatus.RUNNING
    assert reports.describe_calls > seen  # a running task is asked about
    task.stop("enough")
    assert task.status is TaskStatus.STOPPED
    seen = reports.describe_calls
    assert [task.status for _ in range(5)] == [TaskStatus.STOPPED] * 5
    assert reports.describe_calls == seen


def test_the_cli_reconciles_on_request_only(reported: tuple[Deployment, EcsReports],
                                            aws: Any, stack: StackOutputs, tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """``tasks`` reads; ``reconcile`` is the step. Run in-process: the spot stop is
    injected into the provider the CLI's Deployment uses."""
    from rclaude_infra.cli import _tasks, main

    deployment = reported[0]
    spec = TaskSpec(command="true", max_retries_on_preemption=1)
    deployment.run_task(spec)
    ecs_reports(reported, aws, stack, spec.task_id, "STOPPED", stop_code="SpotInterruption",
                stopped_reason="Your Spot Task was interrupted.")
    monkeypatch.setattr(_tasks, "deployment", lambda args, **kw: deployment)
    ecs = aws.client("ecs")
    assert main(["tasks", "--json"]) == 0
    assert len(ecs.list_tasks(cluster=stack.cluster_arn, startedBy=spec.task_id)["taskArns"]) == 1
    assert main(["reconcile", "--json"]) == 0
    assert len(ecs.list_tasks(cluster=stack.cluster_arn, startedBy=spec.task_id)["taskArns"]) == 2


def _as_the_container(monkeypatch: pytest.MonkeyPatch, aws: Any, stack: StackOutputs,
                      task_id: str) -> None:
    """The environment the task definition gives the runner, with the credentials the ECS
    agent gives it: a session of the task role named after the ECS task's id."""
    arn = json.loads(aws.client("s3").get_object(
        Bucket=stack.bucket, Key=f"tasks/{task_id}/attempts.json")["Body"].read())[-1]["arn"]
    granted = aws.client("sts").assume_role(
        RoleArn=stack.task_role_arn, RoleSessionName=arn.rsplit("/", 1)[-1])["Credentials"]
    for name, value in (("AWS_DEFAULT_REGION", "us-east-1"),
                        ("AWS_ACCESS_KEY_ID", granted["AccessKeyId"]),
                        ("AWS_SECRET_ACCESS_KEY", granted["SecretAccessKey"]),
                        ("AWS_SESSION_TOKEN", granted["SessionToken"]),
                        ("RCLAUDE_DEPLOYMENT", "dev"), ("RCLAUDE_RUN_SCOPED", "1")):
        monkeypatch.setenv(name, value)


def test_per_task_secrets_reach_the_task_and_nothing_else(
    deployment: Deployment, aws: Any, stack: StackOutputs, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    token = "ghp_PLANTEDtaskSecret0123456789abcdefABCD"
    monkeypatch.setenv("GITHUB_TOKEN", token)
    import hashlib

    digest = hashlib.sha256(token.encode()).hexdigest()  # the spec must not hold the token
    spec = TaskSpec(command='test "$(printf %s "$GITHUB_TOKEN" | sha256sum | cut -c1-64)" = '
                    f'{digest} && echo the token arrived', secrets=["GITHUB_TOKEN"])
    deployment.run_task(spec)
    secrets = aws.client("secretsmanager")
    name = f"rclaude/dev/tasks/{spec.task_id}"
    assert json.loads(secrets.get_secret_value(SecretId=name)["SecretString"]) == {
        "GITHUB_TOKEN": token}
    tags = {t["Key"]: t["Value"] for t in secrets.describe_secret(SecretId=name)["Tags"]}
    # Readable by the run it was tagged for only (the task role's policy requires the tag).
    run = run_folder(aws, stack.bucket or "", spec.task_id).split("/runs/")[1][:-1]
    assert tags == {"rclaude:deployment": "dev", "rclaude:task-id": spec.task_id,
                    "rclaude:run": run}
    assert run == f"{stack.task_role_id}:" + json.loads(aws.client("s3").get_object(
        Bucket=stack.bucket, Key=f"tasks/{spec.task_id}/attempts.json")["Body"].read()
    )[0]["arn"].rsplit("/", 1)[-1]
    # The container: the value comes from the secret, not from this process.
    monkeypatch.delenv("GITHUB_TOKEN")
    _as_the_container(monkeypatch, aws, stack, spec.task_id)
    assert run_from_s3(stack.bucket or "", spec.task_id, tmp_path / "work") == 0
    task = deployment.task(spec.task_id)
    assert task.result().status == "succeeded"
    log = (tmp_path / "work" / spec.task_id / "log.jsonl").read_text()
    assert "the token arrived" in log
    # Gone once the task is done, and in no record of it.
    with pytest.raises(secrets.exceptions.ResourceNotFoundException):
        secrets.get_secret_value(SecretId=name)
    s3 = aws.client("s3")
    for item in s3.list_objects_v2(Bucket=stack.bucket, Prefix=f"tasks/{spec.task_id}/")[
            "Contents"]:
        body = s3.get_object(Bucket=stack.bucket, Key=item["Key"])["Body"].read()
        assert token.encode() not in body, item["Key"]


def test_a_secret_not_in_the_environment_is_refused_before_any_call(
    deployment: Deployment, aws: Any, stack: StackOutputs, monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("DEPLOY_KEY", raising=False)
    spec = TaskSpec(command="true", secrets=["DEPLOY_KEY"])
    with pytest.raises(ConfigError) as info:
        deployment.run_task(spec)
    assert info.value.field == "secrets" and info.value.value == ["DEPLOY_KEY"]
    listed = aws.client("s3").list_objects_v2(Bucket=stack.bucket, Prefix="tasks/")
    assert listed.get("KeyCount", 0) == 0


def test_the_secret_of_a_task_that_never_ran_is_deleted_when_it_ends(
    reported: tuple[Deployment, EcsReports], aws: Any, stack: StackOutputs,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("GITHUB_TOKEN", "ghp_never_ran")
    spec = TaskSpec(command="true", secrets=["GITHUB_TOKEN"])
    task = reported[0].run_task(spec)
    ecs_reports(reported, aws, stack, spec.task_id, "STOPPED", stop_code="TaskFailedToStart",
                stopped_reason="CannotPullContainerError: pull image manifest has been retried")
    assert task.status is TaskStatus.FAILED  # a read: the secret is still there
    secrets = aws.client("secretsmanager")
    secrets.describe_secret(SecretId=f"rclaude/dev/tasks/{spec.task_id}")
    assert task.wait(timeout=5).status is TaskStatus.FAILED
    with pytest.raises(secrets.exceptions.ResourceNotFoundException):
        secrets.describe_secret(SecretId=f"rclaude/dev/tasks/{spec.task_id}")


def test_destroy_stops_the_tasks_in_flight_first(aws: Any, stack: StackOutputs,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """ECS refuses to detach a capacity provider that tasks use
    (shared/reference/ecs-runtime-facts.md): destroy stops them and waits, then destroys."""
    from fake_pulumi import FakePulumi

    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-api03-destroy-test")
    order: list[str] = []
    fake = FakePulumi(stack_exists=True, overrides={
        "stack output": lambda call: (json.dumps(stack.to_dict()), "", 0),
        "destroy": lambda call: order.append("destroy") or ("destroyed\n", "", 0),
    })
    # Seen by every ECS client the session makes from now on, the Deployment's included.
    aws.events.register("before-call.ecs.StopTask", lambda **kw: order.append("StopTask"))
    d = Deployment("dev", pulumi_command=fake, aws_session=aws)
    tasks = [d.run_task(TaskSpec(command="sleep 600")) for _ in range(3)]
    ecs = aws.client("ecs")
    # A task of the hosted service (mode="service") as an ECS service starts it: ECS
    # would start another for each stopped, and destroy removes the service itself.
    [service_task] = ecs.run_task(
        cluster=stack.cluster_arn, taskDefinition=stack.task_definition_arn,
        group="service:rclaude-dev-service-api", startedBy="ecs-svc/1234567890123456789",
    )["tasks"]
    # The deployment's status lists its tasks, not the service's.
    assert set(Deployment.from_outputs("dev", stack, session=aws).status().tasks) == {
        t.task_id for t in tasks}
    d.destroy(progress=False)
    assert order == ["StopTask"] * 3 + ["destroy"]
    assert ecs.list_tasks(cluster=stack.cluster_arn, desiredStatus="RUNNING")[
        "taskArns"] == [service_task["taskArn"]]
    # Nothing was recorded for it: its startedBy is no task id of ours.
    listed = aws.client("s3").list_objects_v2(Bucket=stack.bucket, Prefix="tasks/ecs-svc")
    assert listed.get("KeyCount", 0) == 0
    for task in tasks:
        state = Deployment.from_outputs("dev", stack, session=aws).task(task.task_id).state()
        assert state.status is TaskStatus.STOPPED
        assert state.reason == "the deployment 'dev' is being destroyed"


def test_a_final_result_is_read_from_s3_once(deployment: Deployment, aws: Any,
                                             stack: StackOutputs) -> None:
    """``tasks``, ``spend`` and ``result`` each ask for a task's result: S3 is asked once
    for a final one, and again for a preempted attempt's (the next attempt replaces it)."""
    from rclaude_infra._aws import s3_tasks

    reads: list[str] = []
    aws.events.register("before-parameter-build.s3.GetObject", lambda params, **_: reads.append(
        params["Key"]) if params["Key"].endswith("/result.json") else None)
    task = deployment.run_task(TaskSpec(command="true"))  # its clients see the hook
    s3 = aws.client("s3")
    run = run_folder(aws, stack.bucket or "", task.task_id).split("/runs/")[1].rstrip("/")
    s3_tasks.write_json(s3, stack.bucket, task.task_id, "result.json",
                        {"status": "preempted", "reason": "spot"}, run=run)
    task.result()
    task.result()
    assert len(reads) == 2  # not final: asked each time
    s3_tasks.write_json(s3, stack.bucket, task.task_id, "result.json",
                        {"status": "succeeded", "exit_code": 0}, run=run)
    assert task.result().status == "succeeded"
    assert task.agent is None and task.result().exit_code == 0
    assert len(reads) == 3


def test_the_provider_makes_a_client_when_it_first_needs_it(aws: Any, stack: Any) -> None:
    """Reading a task's records needs S3 alone: no ECS, Logs, Secrets Manager or EC2
    client is made for it (each costs tens of milliseconds)."""
    from rclaude_infra.tasks.model import TaskNotFoundError

    made: list[str] = []
    aws.events.register("creating-client-class",
                        lambda class_attributes, base_classes, **kw: made.append(
                            kw["event_name"].rsplit(".", 1)[-1]))
    provider = EcsProvider(aws, stack, deployment="dev")
    assert made == []
    with pytest.raises(TaskNotFoundError):
        provider.spec("t-never-submitted")
    assert made == ["s3"]
