"""Faults around an ECS start: a record write that fails after RunTask started the task,
a submitter that died between its spec and RunTask. S3 and ECS are moto's server; the
failing S3 write is answered at the botocore boundary with S3's documented 500
``InternalError`` body (Amazon S3 API Reference, "Error responses"), to a submitter whose
botocore gives up at once (the library's clients retry 12 times with backoff first)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from moto_stack import QUICK_POLL, answer, attempts, hold_tasks_running, run_folder

from rclaude_infra import (
    ConfigError,
    Deployment,
    DeploymentClosedError,
    DeploymentConfig,
    StackOutputs,
    TaskSpec,
    TaskStatus,
)
from rclaude_infra._aws.ecs import EcsProvider

S3_INTERNAL_ERROR = ("<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>InternalError"
                     "</Code><Message>We encountered an internal error. Please try again."
                     "</Message></Error>")


@pytest.fixture(name="held")
def _held(moto_endpoint: str, request: pytest.FixtureRequest) -> None:
    """Tasks stay RUNNING until stopped (moto would move them on by itself)."""
    hold_tasks_running(moto_endpoint)
    request.addfinalizer(lambda: hold_tasks_running(moto_endpoint, hold=False))


def _process(aws: Any, stack: StackOutputs) -> Deployment:
    """A process holding the deployment, whose failed calls are not retried."""
    from botocore.config import Config

    provider = EcsProvider(aws, stack, deployment="dev", poll_interval=QUICK_POLL,
                           botocore_config=Config(retries={"mode": "standard",
                                                           "max_attempts": 1}))
    return Deployment("dev", DeploymentConfig(), tasks=provider)


def _started(aws: Any, stack: StackOutputs, task_id: str) -> list[str]:
    ecs = aws.client("ecs")
    return [arn for desired in ("RUNNING", "STOPPED") for arn in ecs.list_tasks(
        cluster=stack.cluster_arn, startedBy=task_id, desiredStatus=desired)["taskArns"]]


def _fail_writes_of(aws: Any, name: str) -> dict[str, bool]:
    """Every PutObject of a key ending in ``name`` fails while ``["on"]``."""
    failing = {"on": True}

    def respond(request: Any) -> tuple[int, str] | None:
        path = request.url.split("?", 1)[0]
        if failing["on"] and request.method == "PUT" and path.endswith("/" + name):
            return 500, S3_INTERNAL_ERROR
        return None

    answer(aws, ["PutObject"], respond, service="s3")
    return failing


def test_a_start_whose_record_failed_is_found_by_its_started_by_and_confirmed(
        aws: Any, stack: StackOutputs, held: None) -> None:
    failing = _fail_writes_of(aws, "attempts.json")
    submitter = _process(aws, stack)
    spec = TaskSpec(command="true", secrets=[])
    task = submitter.run_task(spec)  # RunTask started it: a handle, not an error
    arns = _started(aws, stack, spec.task_id)
    assert len(arns) == 1
    s3 = aws.client("s3")
    listed = s3.list_objects_v2(Bucket=stack.bucket, Prefix=f"tasks/{spec.task_id}/")
    assert [o["Key"].rsplit("/", 1)[1] for o in listed.get("Contents", [])] == ["spec.json"]
    failing["on"] = False
    # Another process, with nothing in memory: it finds the task and confirms it.
    other = _process(aws, stack)
    assert other.task(spec.task_id).status is TaskStatus.RUNNING
    assert [a["arn"] for a in attempts(aws, stack.bucket or "", spec.task_id)] == arns
    # Its run is staged as the submitter would have: the runner finds its inputs.
    inputs = json.loads(s3.get_object(Bucket=stack.bucket, Key=run_folder(
        aws, stack.bucket or "", spec.task_id) + "inputs.json")["Body"].read())
    assert inputs["spec"]["task_id"] == spec.task_id
    assert task.status is TaskStatus.RUNNING
    assert other.reconcile() == [] and submitter.reconcile() == []
    assert _started(aws, stack, spec.task_id) == arns  # found, never started again


def test_a_failed_staging_is_done_again_by_the_next_read(
        aws: Any, stack: StackOutputs, held: None) -> None:
    failing = _fail_writes_of(aws, "inputs.json")
    d = _process(aws, stack)
    spec = TaskSpec(command="true")
    task = d.run_task(spec)
    folder = run_folder(aws, stack.bucket or "", spec.task_id)
    s3 = aws.client("s3")
    assert "Contents" not in s3.list_objects_v2(Bucket=stack.bucket, Prefix=folder + "inputs")
    failing["on"] = False
    assert task.status is TaskStatus.RUNNING
    assert s3.head_object(Bucket=stack.bucket, Key=folder + "inputs.json")


def test_a_spec_whose_submitter_died_before_run_task_reads_pending_then_failed(
        aws: Any, stack: StackOutputs, monkeypatch: pytest.MonkeyPatch) -> None:
    import rclaude_infra._aws.ecs as ecs_module

    spec = TaskSpec(command="true")
    aws.client("s3").put_object(Bucket=stack.bucket, Key=f"tasks/{spec.task_id}/spec.json",
                                Body=json.dumps(spec.to_dict()).encode())
    d = Deployment.from_outputs("dev", stack, session=aws, poll_interval=QUICK_POLL)
    state = d.task(spec.task_id).state()
    assert state.status is TaskStatus.PENDING and "not confirmed" in (state.reason or "")
    monkeypatch.setattr(ecs_module, "UNSTARTED_GRACE_SECONDS", 0.0)
    state = d.task(spec.task_id).state()
    assert state.status is TaskStatus.FAILED and "never started" in (state.reason or "")
    assert [t.task_id for t in d.tasks(limit=None)] == [spec.task_id]
    d.run_task(spec)  # the same spec again: it starts now, once
    assert len(_started(aws, stack, spec.task_id)) == 1
    assert d.task(spec.task_id).status is not TaskStatus.FAILED


# -- destroy closes the deployment first -----------------------------------------------


def _destroying(aws: Any, stack: StackOutputs, monkeypatch: pytest.MonkeyPatch,
                order: list[str]) -> Deployment:
    """A Deployment whose engine is the fake Pulumi CLI (its destroy only says so)."""
    from fake_pulumi import FakePulumi

    import rclaude_infra._aws.ecs as ecs_module

    monkeypatch.setattr(ecs_module, "CLOSE_SETTLE_SECONDS", 0.1, raising=False)
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-api03-destroy-test")
    fake = FakePulumi(stack_exists=True, overrides={
        "stack output": lambda call: (json.dumps(stack.to_dict()), "", 0),
        "destroy": lambda call: order.append("destroy") or ("destroyed\n", "", 0),
    })
    return Deployment("dev", pulumi_command=fake, aws_session=aws)


def _running(aws: Any, stack: StackOutputs) -> list[str]:
    return list(aws.client("ecs").list_tasks(cluster=stack.cluster_arn,
                                             desiredStatus="RUNNING")["taskArns"])


def test_a_closed_deployment_refuses_new_tasks_before_anything_is_written(
        aws: Any, stack: StackOutputs, monkeypatch: pytest.MonkeyPatch, held: None) -> None:
    order: list[str] = []
    destroyer = _destroying(aws, stack, monkeypatch, order)
    submitter = Deployment.from_outputs("dev", stack, session=aws, poll_interval=QUICK_POLL)
    destroyer.destroy(progress=False)
    runs: list[str] = []
    aws.events.register("before-call.ecs.RunTask", lambda **kw: runs.append("run"))
    spec = TaskSpec(command="true")
    with pytest.raises(DeploymentClosedError) as info:
        submitter.run_task(spec)
    assert info.value.reason == "the deployment 'dev' is being destroyed"
    assert "up() opens it again" in str(info.value)
    assert runs == [] and "Contents" not in aws.client("s3").list_objects_v2(
        Bucket=stack.bucket, Prefix=f"tasks/{spec.task_id}/")
    assert order == ["destroy"]


def test_a_run_task_that_raced_the_close_is_stopped_by_its_submitter(
        aws: Any, stack: StackOutputs, monkeypatch: pytest.MonkeyPatch, held: None) -> None:
    """The submitter read the marker before destroy wrote it; its RunTask lands after
    destroy looked at the cluster (here: the whole destroy runs in between)."""
    order: list[str] = []
    destroyer = _destroying(aws, stack, monkeypatch, order)
    submitter = _process(aws, stack)
    raced = {"done": False}

    def destroy_now(**_: Any) -> None:
        if not raced["done"]:
            raced["done"] = True
            destroyer.destroy(progress=False)
            order.append("RunTask")

    submitter._tasks().ecs.meta.events.register(
        "before-call.ecs.RunTask", destroy_now)
    spec = TaskSpec(command="sleep 600")
    with pytest.raises(DeploymentClosedError):
        submitter.run_task(spec)
    assert order == ["destroy", "RunTask"]
    assert _running(aws, stack) == []
    state = _process(aws, stack).task(spec.task_id).state()
    assert state.status is TaskStatus.STOPPED
    assert state.reason == "the deployment 'dev' is being destroyed"


def test_a_task_that_appears_while_destroy_stops_the_others_is_stopped_too(
        aws: Any, stack: StackOutputs, monkeypatch: pytest.MonkeyPatch, held: None) -> None:
    """A submitter that died between RunTask and its second read of the marker: its task
    appears after destroy's first look, and a later look stops it."""
    order: list[str] = []
    destroyer = _destroying(aws, stack, monkeypatch, order)
    first = destroyer.run_task(TaskSpec(command="sleep 600"))
    ecs = aws.client("ecs")
    looks = {"n": 0, "look": False}

    def is_look(params: dict[str, Any], **_: Any) -> None:
        looks["look"] = "startedBy" not in params and params.get("desiredStatus") == "RUNNING"

    def late_start(**_: Any) -> None:  # once the first look has its answer
        if looks["look"]:
            looks["n"] += 1
            if looks["n"] == 1:
                ecs.run_task(cluster=stack.cluster_arn,
                             taskDefinition=stack.task_definition_arn,
                             startedBy="t-orphan-start", capacityProviderStrategy=[
                                 {"capacityProvider": stack.capacity_provider, "weight": 1}])

    events = destroyer._tasks().ecs.meta.events
    events.register("before-parameter-build.ecs.ListTasks", is_look)
    events.register("after-call.ecs.ListTasks", late_start)
    destroyer.destroy(progress=False)
    assert order == ["destroy"] and _running(aws, stack) == []
    assert looks["n"] >= 2
    assert _process(aws, stack).task(first.task_id).status is TaskStatus.STOPPED


def test_destroy_drains_before_it_stops(aws: Any, stack: StackOutputs,
                                        monkeypatch: pytest.MonkeyPatch, held: None) -> None:
    order: list[str] = []
    destroyer = _destroying(aws, stack, monkeypatch, order)
    task = destroyer.run_task(TaskSpec(command="sleep 600"))
    arn = attempts(aws, stack.bucket or "", task.task_id)[0]["arn"]
    stops: list[float] = []
    import time

    began = time.monotonic()
    destroyer._tasks().ecs.meta.events.register(
        "before-call.ecs.StopTask", lambda **kw: stops.append(time.monotonic() - began))
    destroyer.destroy(progress=False, drain=1.0)
    assert stops and stops[0] >= 1.0  # it had its second to end by itself
    assert arn not in _running(aws, stack)
    with pytest.raises(ConfigError, match="drain"):
        destroyer.destroy(drain=-1)


def test_a_result_the_run_wrote_that_is_not_json_is_no_result(
        aws: Any, stack: StackOutputs, held: None) -> None:
    """A run's folder is its task's to write: a result.json that is not JSON reads as no
    result (the library's error), never a JSON parser's traceback."""
    from rclaude_infra.tasks.model import TaskNotFoundError

    d = _process(aws, stack)
    task = d.run_task(TaskSpec(command="true"))
    folder = run_folder(aws, stack.bucket or "", task.task_id)
    aws.client("s3").put_object(Bucket=stack.bucket, Key=folder + "result.json",
                                Body=b"{not json")
    with pytest.raises(TaskNotFoundError, match="no result"):
        task.result()
