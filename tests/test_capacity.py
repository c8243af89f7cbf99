"""Capacity: no task fails for lack of room. Tasks beyond what the group holds wait
QUEUED in S3 and start, oldest first, as others end; a task whose start timed out waiting
for capacity is submitted again.

ECS facts (shared/reference/ecs-runtime-facts.md; AWS, "Deep dive on Amazon ECS cluster
auto scaling", quoted in aws/containers-roadmap#2381): a task that finds no room waits
PROVISIONING for 10 to 30 minutes, then stops; at most 100 tasks may be PROVISIONING in a
cluster. moto places every task at once, so the timed-out start is injected at the
botocore boundary in DescribeTasks' shape: STOPPED, never placed (no container instance,
no startedAt).
"""

from __future__ import annotations

from typing import Any

import pytest
from moto_stack import QUICK_POLL, EcsReports, attempts, hold_tasks_running

from rclaude_infra import (
    Deployment,
    DeploymentConfig,
    StackOutputs,
    TaskSpec,
    TaskStatus,
    TaskTimeoutError,
)
from rclaude_infra._aws.ecs import EcsProvider


@pytest.fixture(name="held")
def _held(moto_endpoint: str, request: pytest.FixtureRequest) -> None:
    """Tasks stay RUNNING until stopped (moto would move them on by itself)."""
    hold_tasks_running(moto_endpoint)
    request.addfinalizer(lambda: hold_tasks_running(moto_endpoint, hold=False))


def running(aws: Any, stack: StackOutputs) -> list[str]:
    return list(aws.client("ecs").list_tasks(cluster=stack.cluster_arn,
                                             desiredStatus="RUNNING")["taskArns"])


def test_beyond_the_groups_capacity_tasks_wait_queued_and_start_in_turn(
        aws: Any, stack: StackOutputs, held: None) -> None:
    config = DeploymentConfig(max_instances=2)  # t3.medium x 2: room for 2 tasks of 2 GiB
    assert config.task_capacity == 2
    d = Deployment.from_outputs("dev", stack, session=aws, poll_interval=QUICK_POLL, config=config)
    # One after another, so the order of arrival is known (run_tasks submits at once).
    tasks = [d.run_task(TaskSpec(command="sleep 600", task_id=f"t-cap-{i}"))
             for i in range(5)]
    assert len(running(aws, stack)) == 2  # never more than the group holds
    states = [t.state() for t in tasks]
    assert [s.status for s in states[:2]] == [TaskStatus.RUNNING] * 2
    assert [s.status for s in states[2:]] == [TaskStatus.QUEUED] * 3
    assert "the group holds 2 tasks" in (states[2].reason or "")
    # Durable and visible from another process.
    other = Deployment.from_outputs("dev", stack, session=aws, poll_interval=QUICK_POLL,
                                    config=config)
    assert other.task("t-cap-4").status is TaskStatus.QUEUED
    assert {k: v for k, v in other.status().tasks.items() if v == "QUEUED"} == {
        "t-cap-2": "QUEUED", "t-cap-3": "QUEUED", "t-cap-4": "QUEUED"}
    assert other.reconcile() == []  # no room: nothing moves
    # One ends: the oldest queued task takes its place, whoever waits.
    tasks[0].stop("done")
    with pytest.raises(TaskTimeoutError):  # past one poll interval: room is seen again
        tasks[4].wait(timeout=1)  # waiting on the newest starts the oldest
    assert tasks[2].state().status is TaskStatus.RUNNING
    assert tasks[3].state().status is TaskStatus.QUEUED
    assert tasks[4].state().status is TaskStatus.QUEUED
    assert len(running(aws, stack)) == 2


def test_the_hosted_services_own_tasks_take_no_room_of_the_groups(
        aws: Any, stack: StackOutputs, held: None) -> None:
    """A service stack (mode="service") runs its API and workers as ECS services on
    Fargate in the same cluster: ECS groups them ``service:<name>``. They use no instance
    of the group, so they do not count against its room."""
    ecs = aws.client("ecs")
    for part in ("api", "api", "worker"):
        ecs.run_task(cluster=stack.cluster_arn, taskDefinition=stack.task_definition_arn,
                     group=f"service:rclaude-dev-service-{part}",
                     startedBy="ecs-svc/1234567890123456789")
    config = DeploymentConfig(max_instances=2)
    d = Deployment.from_outputs("dev", stack, session=aws, poll_interval=QUICK_POLL,
                                config=config)
    tasks = [d.run_task(TaskSpec(command="sleep 600", task_id=f"t-room-{i}"))
             for i in range(2)]
    assert [t.state().status for t in tasks] == [TaskStatus.RUNNING] * 2
    assert len(running(aws, stack)) == 5


def test_a_start_that_timed_out_waiting_for_capacity_is_submitted_again(
        reported: tuple[Deployment, EcsReports], aws: Any, stack: StackOutputs) -> None:
    d, reports = reported
    spec = TaskSpec(command="true", max_retries_on_preemption=0)
    task = d.run_task(spec)
    [attempt] = attempts(aws, stack.bucket or "", spec.task_id)
    # ECS gave up waiting for capacity (moto places every task at once).
    reports.report(attempt["arn"], {
        "lastStatus": "STOPPED", "desiredStatus": "STOPPED",
        "stopCode": "TaskFailedToStart", "stoppedReason": "Timeout waiting for capacity",
        "containers": [{"name": "runner", "lastStatus": "STOPPED"}]})
    state = task.state()  # a read: reported, not resubmitted
    assert state.status is TaskStatus.QUEUED and "timed out waiting for capacity" in (
        state.reason or "")
    assert len(attempts(aws, stack.bucket or "", spec.task_id)) == 1
    [again] = d.reconcile()
    assert again.task_id == spec.task_id
    assert [a["why"] for a in attempts(aws, stack.bucket or "", spec.task_id)] == [
        "submitted", "capacity"]
    # A capacity retry is not a preemption retry: none of those were allowed, none used.
    assert task.state().attempt == 2 and not task.state().status.done


def test_new_tasks_queue_behind_older_ones_and_a_queued_task_can_be_stopped(
        aws: Any, stack: StackOutputs, held: None) -> None:
    config = DeploymentConfig(max_instances=1)
    d = Deployment.from_outputs("dev", stack, session=aws, poll_interval=QUICK_POLL, config=config)
    first, second, third = (d.run_task(TaskSpec(command="sleep 600", task_id=f"t-fifo-{i}"))
                            for i in range(3))
    assert second.status is TaskStatus.QUEUED and third.status is TaskStatus.QUEUED
    third.stop("not needed after all")
    assert third.status is TaskStatus.STOPPED and third.reason == "not needed after all"
    first.stop("done")
    import time

    time.sleep(QUICK_POLL * 2)  # past one poll interval: the room is seen again
    late = d.run_task(TaskSpec(command="sleep 600", task_id="t-fifo-late"))
    # The room went to the task that had waited, not to the newcomer.
    assert second.status is TaskStatus.RUNNING
    assert late.status is TaskStatus.QUEUED


def test_destroy_empties_the_queue(aws: Any, stack: StackOutputs, held: None,
                                   monkeypatch: pytest.MonkeyPatch) -> None:
    import json

    from fake_pulumi import FakePulumi

    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-api03-queue-destroy")
    fake = FakePulumi(stack_exists=True, overrides={
        "stack output": lambda call: (json.dumps(stack.to_dict()), "", 0)})
    d = Deployment("dev", DeploymentConfig(max_instances=1), pulumi_command=fake,
                   aws_session=aws)
    tasks = d.run_tasks([TaskSpec(command="sleep 600", task_id=f"t-qd-{i}") for i in range(3)])
    assert [t.status for t in tasks].count(TaskStatus.QUEUED) == 2
    d.destroy(progress=False)
    assert all(t.status is TaskStatus.STOPPED for t in tasks)
    listed = aws.client("s3").list_objects_v2(Bucket=stack.bucket, Prefix="queue/")
    assert listed.get("KeyCount", 0) == 0


def test_a_burst_never_starts_more_than_the_group_holds(
        aws: Any, stack: StackOutputs, held: None) -> None:
    d = Deployment.from_outputs("dev", stack, session=aws, poll_interval=QUICK_POLL,
                                config=DeploymentConfig(max_instances=3))
    tasks = d.run_tasks([TaskSpec(command="sleep 600") for _ in range(12)], workers=8)
    assert len(running(aws, stack)) == 3
    statuses = [t.status for t in tasks]
    assert statuses.count(TaskStatus.RUNNING) == 3 and statuses.count(TaskStatus.QUEUED) == 9


def test_the_capacity_is_known_only_from_the_stacks_config(stack: StackOutputs, aws: Any,
                                                           tmp_path: Any) -> None:
    """The queue needs the group's real size: a Deployment made from outputs alone does
    not guess it (every task starts), one given the config (or attached) does; so does the
    CLI, which claims a config only when a file or a flag gave one."""
    import argparse

    from rclaude_infra.cli._common import deployment as from_cli

    assert Deployment.from_outputs("dev", stack, session=aws).task_capacity is None
    assert Deployment.from_outputs("dev", stack, session=aws, config=DeploymentConfig(
        max_instances=3)).task_capacity == 3
    outputs = tmp_path / "outputs.json"
    outputs.write_text(__import__("json").dumps(stack.to_dict()))
    given = tmp_path / "rclaude.toml"
    given.write_text("max_instances = 6\n")
    assert from_cli(argparse.Namespace(outputs=outputs, config=given),
                    for_tasks=True).task_capacity == 6
    bare = argparse.Namespace(outputs=outputs, config=None)  # no file, no flag
    assert from_cli(bare, for_tasks=True).task_capacity is None


def test_a_full_group_costs_the_queue_no_requests(aws: Any, stack: StackOutputs,
                                                  held: None) -> None:
    """Waiting on queued tasks while nothing has ended: the only S3 request is the queue
    listing the status reads share (one per poll interval); pump() reads no queued task's
    record and lists nothing itself."""
    calls: list[str] = []
    # Seen by the clients the session makes from now on: the provider's.
    aws.events.register("before-call.s3", lambda model, **_: calls.append(model.name))
    config = DeploymentConfig(max_instances=1)
    provider = EcsProvider(aws, stack, deployment="dev", capacity=config.task_capacity)
    d = Deployment("dev", config, tasks=provider)
    tasks = [d.run_task(TaskSpec(command="sleep 600", task_id=f"t-quiet-{i}")) for i in range(6)]
    calls.clear()
    for task in tasks[1:]:
        assert provider.advance(task.task_id).status is TaskStatus.QUEUED
    assert provider.pump() == []
    assert calls == ["ListObjectsV2"]


def test_a_queued_task_stopped_takes_its_secrets_with_it(
        aws: Any, stack: StackOutputs, held: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("QUEUED_TOKEN", "tok-queued-never-ran")
    d = Deployment.from_outputs("dev", stack, session=aws, poll_interval=QUICK_POLL,
                                config=DeploymentConfig(max_instances=1))
    d.run_task(TaskSpec(command="sleep 600", task_id="t-qs-run"))
    queued = d.run_task(TaskSpec(command="true", task_id="t-qs-wait", secrets=["QUEUED_TOKEN"]))
    secrets = aws.client("secretsmanager")
    secrets.describe_secret(SecretId="rclaude/dev/tasks/t-qs-wait")  # put at submission
    queued.stop("not needed")
    assert queued.status is TaskStatus.STOPPED
    with pytest.raises(secrets.exceptions.ResourceNotFoundException):
        secrets.describe_secret(SecretId="rclaude/dev/tasks/t-qs-wait")


def test_a_claim_counts_while_its_run_task_is_on_its_way(
        aws: Any, stack: StackOutputs, held: None) -> None:
    """Two submitters, one free slot, interleaved on purpose: the first has claimed the
    slot and its RunTask has not answered yet when the second looks at the cluster (a
    fresh look: ECS does not list the first task yet). The second must not take the slot
    too; it waits QUEUED, and starts once the first ends."""
    import threading

    entered, answer_now = threading.Event(), threading.Event()
    calls = {"n": 0}

    def first_run_task_hangs(**_: Any) -> None:
        calls["n"] += 1
        if calls["n"] == 1:
            entered.set()
            assert answer_now.wait(30), "the test never let RunTask answer"

    aws.events.register("before-call.ecs.RunTask", first_run_task_hangs)
    # poll_interval 0: every claim looks at the cluster afresh, the worst case.
    provider = EcsProvider(aws, stack, deployment="dev", poll_interval=0.0, capacity=1)
    d = Deployment("dev", DeploymentConfig(max_instances=1), tasks=provider)
    first: list[Any] = []
    submitter = threading.Thread(target=lambda: first.append(
        d.run_task(TaskSpec(command="sleep 600", task_id="t-claim-1"))))
    submitter.start()
    try:
        assert entered.wait(30), "the first RunTask was never sent"
        assert running(aws, stack) == []  # ECS knows no task yet
        second = d.run_task(TaskSpec(command="sleep 600", task_id="t-claim-2"))
    finally:
        answer_now.set()
        submitter.join(30)
    assert second.status is TaskStatus.QUEUED
    assert len(running(aws, stack)) == 1 and first[0].status is TaskStatus.RUNNING
    # The claim turned into a started task: it still counts after the answer, until a
    # look at the cluster sees it.
    assert provider.pump() == []
    first[0].stop("done")
    assert provider.pump() == ["t-claim-2"]
    assert len(running(aws, stack)) == 1


def test_a_claim_whose_run_task_fails_gives_its_room_back(
        aws: Any, stack: StackOutputs, held: None) -> None:
    from moto_stack import answer

    from rclaude_infra import EngineError

    refusals = {"n": 1}

    def refuse_once(_: Any) -> tuple[int, dict[str, Any]] | None:
        if refusals["n"]:
            refusals["n"] -= 1
            return 400, {"__type": "InvalidParameterException",
                         "message": "No Container Instances were found in your capacity "
                         "provider."}
        return None

    answer(aws, ["RunTask"], refuse_once, service="ecs")
    provider = EcsProvider(aws, stack, deployment="dev", poll_interval=0.0, capacity=1)
    d = Deployment("dev", DeploymentConfig(max_instances=1), tasks=provider)
    with pytest.raises(EngineError, match="could not start task t-refused"):
        d.run_task(TaskSpec(command="sleep 600", task_id="t-refused"))
    later = d.run_task(TaskSpec(command="sleep 600", task_id="t-after-refusal"))
    assert later.status is TaskStatus.RUNNING


def test_no_more_tasks_start_than_ecs_lets_wait_provisioning(
        aws: Any, stack: StackOutputs, held: None, monkeypatch: pytest.MonkeyPatch) -> None:
    """ECS refuses RunTask beyond its quota of PROVISIONING tasks per cluster (100; here
    3, the same rule): a group with room to spare still holds the rest QUEUED while that
    many wait to be placed, and starts them as tasks get placed."""
    from rclaude_infra._aws import ecs

    monkeypatch.setattr(ecs, "PROVISIONING_QUOTA", 3)
    waiting: set[str] = set()

    def still_provisioning(parsed: dict[str, Any], **_: Any) -> None:
        for task in parsed.get("tasks", []):
            if task["taskArn"] in waiting:
                task.update(lastStatus="PROVISIONING")

    aws.events.register("after-call.ecs.DescribeTasks", still_provisioning)
    aws.events.register("after-call.ecs.RunTask", lambda parsed, **_: waiting.update(
        t["taskArn"] for t in parsed.get("tasks", [])))
    provider = EcsProvider(aws, stack, deployment="dev", poll_interval=0.0, capacity=50)
    d = Deployment("dev", DeploymentConfig(max_instances=50), tasks=provider)
    tasks = [d.run_task(TaskSpec(command="sleep 600", task_id=f"t-prov-{i}"))
             for i in range(5)]
    assert [t.status for t in tasks] == [TaskStatus.PENDING] * 3 + [TaskStatus.QUEUED] * 2
    waiting.clear()  # placed: they run, and the PROVISIONING line moves on
    assert provider.pump() == ["t-prov-3", "t-prov-4"]
