"""The submitter's policy (``rclaude_infra.permissions``) allows every call the task verbs
make, and is scoped to the stack.

Every request a Deployment's clients send is recorded at the botocore boundary while the
task verbs run against moto's server (submit with a secret, queue, state, logs, stop,
reconcile, result, cost, status, history, a preempted task submitted again), mapped to
the IAM actions and resources AWS authorizes it as (the Service Authorization Reference:
S3's ListObjectsV2 is ``s3:ListBucket``, HeadObject ``s3:GetObject``, CopyObject reads
its source; RunTask also needs ``iam:PassRole`` for the task definition's roles and
``ecs:TagResource`` for its tags; CreateSecret with tags ``secretsmanager:TagResource``),
and checked against the policy with IAM's matching (:mod:`iam_eval`). moto enforces no
IAM: without this test a missing grant would show only in a real account.
"""

from __future__ import annotations

import datetime as dt
import json
import time
from collections.abc import Iterator
from typing import Any

import attrs
import pytest
from iam_eval import allowed, statements_of
from moto_stack import QUICK_POLL, EcsReports, attempts, hold_tasks_running

from rclaude_infra import (
    ConfigError,
    Deployment,
    DeploymentConfig,
    StackOutputs,
    TaskSpec,
    TaskStatus,
    submitter_policy,
)

Call = tuple[str, str, dict[str, Any]]


def _as_iam(service: str, operation: str, params: dict[str, Any],
            stack: StackOutputs) -> Iterator[tuple[str, str, dict[str, str]]]:
    """What IAM authorizes for one request: (action, resource ARN, condition keys)."""
    region, account = stack.region, (stack.cluster_arn or "").split(":")[4]
    cluster = {"ecs:cluster": stack.cluster_arn or ""}
    task = f"arn:aws:ecs:{region}:{account}:task/{stack.cluster_name}/"
    if service == "s3":
        assert "Bucket" in params, f"unmapped S3 call {operation}: map it here"
        bucket = f"arn:aws:s3:::{params['Bucket']}"
        if operation in ("ListObjectsV2", "ListObjects"):
            yield "s3:ListBucket", bucket, {}
            return
        obj = f"{bucket}/{params['Key']}"
        if operation in ("GetObject", "HeadObject"):
            yield "s3:GetObject", obj, {}
        elif operation in ("PutObject", "CreateMultipartUpload", "UploadPart",
                           "CompleteMultipartUpload"):
            yield "s3:PutObject", obj, {}
        elif operation == "CopyObject":
            yield "s3:PutObject", obj, {}
            source = params["CopySource"]
            source = (f"{source['Bucket']}/{source['Key']}" if isinstance(source, dict)
                      else source.lstrip("/"))
            yield "s3:GetObject", f"arn:aws:s3:::{source}", {}
        elif operation == "DeleteObject":
            yield "s3:DeleteObject", obj, {}
        else:
            raise AssertionError(f"unmapped S3 call {operation}: map it here")
    elif service == "ecs":
        if operation == "RunTask":
            yield "ecs:RunTask", params["taskDefinition"], {"ecs:cluster": params["cluster"]}
            for role in (stack.task_role_arn, stack.execution_role_arn):
                yield "iam:PassRole", str(role), {
                    "iam:PassedToService": "ecs-tasks.amazonaws.com"}
            if params.get("tags"):
                yield "ecs:TagResource", f"{task}new", {"ecs:CreateAction": "RunTask"}
        elif operation in ("DescribeTasks", "StopTask"):
            for arn in params.get("tasks") or [params["task"]]:
                yield f"ecs:{operation}", arn, cluster
        elif operation == "ListTasks":
            yield ("ecs:ListTasks", f"arn:aws:ecs:{region}:{account}:container-instance/"
                   f"{stack.cluster_name}/*", cluster)
        elif operation == "ListContainerInstances":
            yield "ecs:ListContainerInstances", params["cluster"], {}
        elif operation == "DescribeContainerInstances":
            for arn in params["containerInstances"]:
                yield "ecs:DescribeContainerInstances", arn, {}
        else:
            raise AssertionError(f"unmapped ECS call {operation}: map it here")
    elif service == "secretsmanager":
        name = params.get("Name") or params["SecretId"]
        arn = f"arn:aws:secretsmanager:{region}:{account}:secret:{name}-AbCdEf"
        yield f"secretsmanager:{operation}", arn, {}
        if operation == "CreateSecret" and params.get("Tags"):
            yield "secretsmanager:TagResource", arn, {}
    elif service == "logs":
        yield (f"logs:{operation}", f"arn:aws:logs:{region}:{account}:log-group:"
               f"{params['logGroupName']}:log-stream:{params['logStreamName']}", {})
    elif service == "ec2":
        yield f"ec2:{operation}", "*", {}
    else:
        raise AssertionError(f"unmapped call {service}:{operation}: map it here")


@pytest.fixture(name="deployed")
def _deployed(stack: StackOutputs) -> StackOutputs:
    """The stack with what a deployed one also has: its execution role."""
    return attrs.evolve(stack, execution_role_arn=(
        f"arn:aws:iam::{(stack.cluster_arn or '').split(':')[4]}:role/rclaude-dev-execution"))


def test_every_call_of_the_task_verbs_is_allowed_by_the_submitter_policy(
        aws: Any, deployed: StackOutputs, scaffold: Any, moto_endpoint: str,
        monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    calls: list[Call] = []
    aws.events.register("provide-client-params", lambda model, params, **_: calls.append(
        (model.service_model.service_name, model.name, dict(params))))
    reports = EcsReports().attach(aws)
    hold_tasks_running(moto_endpoint)
    try:
        d = Deployment.from_outputs("dev", deployed, session=aws, poll_interval=QUICK_POLL,
                                    config=DeploymentConfig(max_instances=1,
                                                            max_monthly_usd=10_000))
        monkeypatch.setenv("DEPLOY_TOKEN", "tok-permissions-0042")
        first = d.run_task(TaskSpec(command="true", secrets=["DEPLOY_TOKEN"],
                                    task_id="t-perm-1"))
        queued = d.run_task(TaskSpec(command="true", task_id="t-perm-2"))
        assert queued.status is TaskStatus.QUEUED
        list(first.logs())
        # The first run ends, leaving a result where the runner leaves it.
        run = attempts(scaffold, deployed.bucket or "", first.task_id)[-1]["run"]
        scaffold.client("s3").put_object(
            Bucket=deployed.bucket, Key=f"tasks/{first.task_id}/runs/{run}/result.json",
            Body=json.dumps({"status": "succeeded", "exit_code": 0}).encode())
        first.stop("done")
        assert first.wait(timeout=30).status is TaskStatus.STOPPED
        time.sleep(QUICK_POLL * 2)  # past one poll interval: the room is seen again
        d.reconcile()
        assert queued.state().status is not TaskStatus.QUEUED
        # A spot interruption of the second: it is submitted again.
        [arn] = [a["arn"] for a in attempts(scaffold, deployed.bucket or "", queued.task_id)]
        reports.report(arn, {"lastStatus": "STOPPED", "stopCode": "SpotInterruption",
                             "stoppedReason": "Spot interruption", "containers": []})
        d.reconcile()
        first.result().download(tmp_path / "out")
        d.tasks(limit=10)
        d.status()
        d.spend(dt.datetime.now(dt.UTC) - dt.timedelta(hours=1))
        assert first.cost().compute_usd >= 0  # its instance, from ECS and EC2
        queued.stop("enough")
    finally:
        hold_tasks_running(moto_endpoint, hold=False)

    statements = statements_of(submitter_policy(deployed))
    checked = set()
    for service, operation, params in calls:
        if service == "sts":
            continue  # GetCallerIdentity needs no permission
        for action, resource, context in _as_iam(service, operation, params, deployed):
            assert allowed(statements, action, resource, context=context), (
                f"{service}.{operation} needs {action} on {resource} ({context})")
            checked.add(action)
    # Not vacuous: the flow made the calls the policy is for.
    assert {"ecs:RunTask", "iam:PassRole", "ecs:TagResource", "ecs:StopTask",
            "ecs:DescribeTasks", "ecs:ListTasks", "s3:PutObject", "s3:GetObject",
            "s3:ListBucket", "s3:DeleteObject", "secretsmanager:CreateSecret",
            "secretsmanager:TagResource", "secretsmanager:DeleteSecret", "logs:GetLogEvents",
            "ec2:DescribeInstances", "ecs:DescribeContainerInstances",
            "ecs:ListContainerInstances"} <= checked


def test_the_policy_is_scoped_to_the_stack(deployed: StackOutputs) -> None:
    statements = statements_of(submitter_policy(deployed))
    account = (deployed.cluster_arn or "").split(":")[4]
    other_cluster = {"ecs:cluster": f"arn:aws:ecs:us-east-1:{account}:cluster/other"}
    assert not allowed(statements, "ecs:RunTask", str(deployed.task_definition_arn),
                       context=other_cluster)
    assert not allowed(statements, "ecs:RunTask",
                       f"arn:aws:ecs:us-east-1:{account}:task-definition/other:1",
                       context={"ecs:cluster": str(deployed.cluster_arn)})
    assert not allowed(statements, "iam:PassRole", f"arn:aws:iam::{account}:role/admin",
                       context={"iam:PassedToService": "ecs-tasks.amazonaws.com"})
    assert not allowed(statements, "iam:PassRole", str(deployed.task_role_arn),
                       context={"iam:PassedToService": "ec2.amazonaws.com"})
    assert not allowed(statements, "s3:GetObject", "arn:aws:s3:::another-bucket/tasks/x")
    assert not allowed(statements, "secretsmanager:GetSecretValue",
                       f"arn:aws:secretsmanager:us-east-1:{account}:secret:rclaude/dev/tasks/"
                       "t-1-AbCdEf")  # the submitter writes secrets, never reads them back
    # Interactive tasks and exec only for a stack that has them.
    assert {"StartInteractiveTasks", "ShellIntoInteractiveTasks"} <= {
        s["Sid"] for s in statements}
    plain = attrs.evolve(deployed, interactive_task_definition_arn=None)
    assert not {"StartInteractiveTasks", "ShellIntoInteractiveTasks"} & {
        s["Sid"] for s in submitter_policy(plain)["Statement"]}


def test_only_a_stack_that_builds_its_image_needs_to_look_it_up(
        deployed: StackOutputs) -> None:
    given = attrs.evolve(deployed, image="ghcr.io/me/runner:1")  # image= given, no build
    assert "CheckRunnerImage" not in {s["Sid"] for s in submitter_policy(given)["Statement"]}
    account = (deployed.cluster_arn or "").split(":")[4]
    built = attrs.evolve(deployed, image_build_project="rclaude-dev-image-build",
                         image=f"{account}.dkr.ecr.us-east-1.amazonaws.com/rclaude-dev-runner:ab")
    [check] = [s for s in submitter_policy(built)["Statement"] if s["Sid"] == "CheckRunnerImage"]
    assert check["Resource"] == [
        f"arn:aws:ecr:us-east-1:{account}:repository/rclaude-dev-runner"]


def test_outputs_of_an_undeployed_stack_are_refused_naming_what_is_missing() -> None:
    with pytest.raises(ConfigError, match="execution_role_arn"):
        submitter_policy({"cluster_arn": "arn:aws:ecs:us-east-1:1:cluster/c"})


def test_the_cli_prints_the_policy_for_the_stacks_outputs(
        deployed: StackOutputs, tmp_path: Any, capsys: pytest.CaptureFixture[str]) -> None:
    from rclaude_infra.cli import main

    outputs = tmp_path / "outputs.json"
    outputs.write_text(json.dumps(deployed.to_dict()))
    assert main(["permissions", "--outputs", str(outputs)]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed == submitter_policy(deployed)
    assert main(["permissions", "--provider", "local"]) == 2
    assert "--provider: got 'local'" in capsys.readouterr().err
