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

from rclaude_infra import Deployment, DeploymentConfig, StackOutputs, TaskSpec, TaskStatus
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
