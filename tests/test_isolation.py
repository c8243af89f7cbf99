"""Each ECS run reads and writes only its own folder of the bucket.

ECS gives a task its role's credentials as a session named after the task's id
(aws/amazon-ecs-agent#3498), so the session's ``aws:userid`` is ``<role id>:<task id>``
and the task role's policy names the one folder a run may use with that variable. The
harness hands each container such a session (moto's STS), moto's recorder keeps every
request the server answered, and each S3 request a run made is checked against the
task role's policy document as the plan declares it. moto does not evaluate IAM policies
(emulator-gaps.md), so the check is done here, by IAM's documented matching: ``*``
matches any characters, ``/`` included, and ``${aws:userid}`` is replaced by the
caller's value before matching (IAM User Guide, "IAM policy elements: Variables and tags"
and "Resource").
"""

from __future__ import annotations

import fnmatch
import json
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

import pytest
from ecs_harness import EcsHarness, with_credential_secret
from plan_helpers import PlanFor

from rclaude_infra import Deployment, Plan, StackOutputs, TaskSpec, TaskStatus


def _task_statements(plan: Plan, bucket: str) -> list[dict[str, Any]]:
    """The task role's Allow statements, naming the test stack's bucket."""
    [policy] = [r for r in plan.by_type("aws:iam:RolePolicy") if r.name.endswith("-task")]
    document = policy.inputs["policy"].replace(str(plan.outputs["bucket"]), bucket)
    return [s for s in json.loads(document)["Statement"] if s["Effect"] == "Allow"]


def _listed(value: str | list[str]) -> list[str]:
    return [value] if isinstance(value, str) else value


def allowed(statements: list[dict[str, Any]], action: str, resource: str, userid: str) -> bool:
    """Whether an Allow statement without conditions grants ``action`` on ``resource`` to
    the session whose ``aws:userid`` is ``userid``."""
    return any(
        "Condition" not in s
        and any(fnmatch.fnmatchcase(action.lower(), a.lower()) for a in _listed(s["Action"]))
        and any(fnmatch.fnmatchcase(resource, r.replace("${aws:userid}", userid))
                for r in _listed(s["Resource"]))
        for s in statements)


def _s3_requests(recording: Path, access_key: str, bucket: str) -> list[tuple[str, str]]:
    """``(action, resource ARN)`` for each S3 request signed with ``access_key``."""
    found = []
    for line in recording.read_text().splitlines():
        entry = json.loads(line)
        headers = {k.lower(): v for k, v in entry["headers"].items()}
        if f"Credential={access_key}/" not in headers.get("authorization", ""):
            continue
        url = urlparse(entry["url"])
        path = unquote(url.path)
        if not path.startswith(f"/{bucket}"):
            continue  # STS, Logs, Secrets Manager
        key = path[len(f"/{bucket}/"):]
        method = entry["method"]
        if not key:
            found.append(("s3:ListBucket", f"arn:aws:s3:::{bucket}"))
            continue
        action = "s3:GetObject" if method in ("GET", "HEAD") else "s3:PutObject"
        found.append((action, f"arn:aws:s3:::{bucket}/{key}"))
        if "x-amz-copy-source" in headers:
            source = unquote(headers["x-amz-copy-source"]).lstrip("/")
            found.append(("s3:GetObject", f"arn:aws:s3:::{source}"))
    return found


@pytest.fixture(name="recording")
def _recording(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    """moto's recorder (its server runs in this process), into a file of this test."""
    from moto.moto_api import recorder

    path = tmp_path / "moto-recording.jsonl"
    path.touch()
    monkeypatch.setattr(recorder, "_location", str(path))
    recorder.start_recording()
    yield path
    recorder.stop_recording()


def test_a_run_reads_and_writes_only_its_own_folder(
        aws: Any, stack: StackOutputs, plan_for: PlanFor, moto_endpoint: str,
        tmp_path: Path, recording: Path) -> None:
    plan = plan_for()
    bucket = stack.bucket or ""
    statements = _task_statements(plan, bucket)
    stack = with_credential_secret(aws, stack, "sk-ant-api03-" + "k" * 40)
    harness = EcsHarness(plan, stack, aws, root=tmp_path / "volumes", endpoint=moto_endpoint)
    harness.watch(aws)
    d = Deployment.from_outputs("dev", stack, session=aws)
    tasks = [d.run_task(TaskSpec(command=f"echo {word} > $RCLAUDE_ARTIFACTS/word.txt"))
             for word in ("first", "second")]
    ecs = aws.client("ecs")
    runs = {}
    for task in tasks:
        [arn] = ecs.list_tasks(cluster=stack.cluster_arn, startedBy=task.task_id)["taskArns"]
        ran = harness.run(arn)
        assert ran.exit_code == 0, ran.output
        runs[task.task_id] = (arn.rsplit("/", 1)[-1], harness.access_keys[arn.rsplit("/", 1)[-1]])
    for task in tasks:
        assert task.wait(timeout=30).status is TaskStatus.SUCCEEDED
        # The submitter reads each run's outputs back.
        [word] = [p for p in task.result().download(tmp_path / "out") if p.name == "word.txt"]
        assert word.read_text().strip() in ("first", "second")

    for task in tasks:
        ecs_id, access_key = runs[task.task_id]
        userid = f"{stack.task_role_id}:{ecs_id}"
        folder = f"arn:aws:s3:::{bucket}/tasks/{task.task_id}/runs/{userid}/"
        requests = _s3_requests(recording, access_key, bucket)
        # Not vacuous: the run read its staged inputs and wrote its result.
        assert ("s3:GetObject", f"{folder}inputs.json") in requests
        assert ("s3:PutObject", f"{folder}result.json") in requests
        for action, resource in requests:
            assert resource.startswith(folder), (action, resource)
            assert allowed(statements, action, resource, userid), (action, resource)
        # What the policy refuses it: the other task's records, even its own task's
        # prefix (the submitter's copy of the spec), and any other run of its task.
        [other] = [t for t in tasks if t is not task]
        other_userid = f"{stack.task_role_id}:{runs[other.task_id][0]}"
        for action, key in (
                ("s3:GetObject", f"tasks/{other.task_id}/runs/{other_userid}/result.json"),
                ("s3:GetObject", f"tasks/{other.task_id}/spec.json"),
                ("s3:PutObject", f"tasks/{other.task_id}/runs/{other_userid}/result.json"),
                ("s3:GetObject", f"tasks/{task.task_id}/spec.json"),
                ("s3:GetObject", f"tasks/{task.task_id}/runs/{stack.task_role_id}:x/diff.patch"),
                ("s3:ListBucket", f"arn:aws:s3:::{bucket}")):
            resource = key if key.startswith("arn:") else f"arn:aws:s3:::{bucket}/{key}"
            assert not allowed(statements, action, resource, userid), (action, key)


def test_a_run_without_its_inputs_fails_saying_so(
        aws: Any, stack: StackOutputs, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """A submitter stopped between RunTask and staging: the runner waits, then fails with
    where it looked (the task's records stay)."""
    from rclaude_infra._aws.container import wait_for_inputs

    with pytest.raises(TimeoutError, match="did not copy this run's inputs"):
        wait_for_inputs(aws.client("s3"), stack.bucket or "", "t-none", "AROAX:abc",
                        timeout=0.5)
