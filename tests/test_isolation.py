"""Each ECS run reads and writes only its own folder of the bucket, and its own secret.

ECS gives a task its role's credentials as a session named after the task's id
(aws/amazon-ecs-agent#3498), so the session's ``aws:userid`` is ``<role id>:<task id>``
and the task role's policy names the one folder a run may use with that variable. The
harness hands each container such a session (moto's STS), moto's recorder keeps every
request the server answered, and each S3 and Secrets Manager request a run made is
checked against the task role's policy document as the plan declares it. moto does not
evaluate IAM policies (emulator-gaps.md), so the check is done here, by IAM's documented
matching: ``*`` matches any characters, ``/`` included, and ``${aws:userid}`` is
replaced by the caller's value before matching (IAM User Guide, "IAM policy elements:
Variables and tags" and "Resource"); a ``StringEquals`` on the resource's tags compares
the tag's value after the same substitution (:mod:`iam_eval`).
"""

from __future__ import annotations

import base64
import json
import time
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

import pytest
from ecs_harness import EcsHarness, with_credential_secret
from iam_eval import allowed, statements_of
from moto_stack import QUICK_POLL
from plan_helpers import PlanFor

from rclaude_infra import Deployment, Plan, StackOutputs, TaskSpec, TaskStatus
from rclaude_infra._pulumi.mock_plan import MOCK_ACCOUNT_ID


def _task_statements(plan: Plan, bucket: str) -> list[dict[str, Any]]:
    """The task role's Allow statements, naming the test stack's bucket."""
    [policy] = [r for r in plan.by_type("aws:iam:RolePolicy") if r.name.endswith("-task")]
    return statements_of(policy.inputs["policy"].replace(str(plan.outputs["bucket"]), bucket))


def _secret_requests(recording: Path, access_key: str) -> list[tuple[str, str]]:
    """``(action, secret id)`` for each Secrets Manager request signed with ``access_key``."""
    found = []
    for line in recording.read_text().splitlines():
        entry = json.loads(line)
        headers = {k.lower(): v for k, v in entry["headers"].items()}
        target = headers.get("x-amz-target", "")
        if (f"Credential={access_key}/" not in headers.get("authorization", "")
                or not target.startswith("secretsmanager.")):
            continue
        body = base64.b64decode(entry["body"]) if entry.get("body_encoded") else entry["body"]
        found.append((f"secretsmanager:{target.split('.', 1)[1]}",
                      str(json.loads(body)["SecretId"])))
    return found


def _secret_reads(recording: Path, access_key: str) -> list[tuple[str, str, dict[str, str]]]:
    """``(action, secret id, the secret's tags then)`` for each Secrets Manager request
    signed with ``access_key``: the tags as every earlier request had left them (the
    recording is in the order the server answered), so a read is judged by the grant that
    existed when it was made, not by the one that exists at the end."""
    tags: dict[str, dict[str, str]] = {}
    found = []
    for line in recording.read_text().splitlines():
        entry = json.loads(line)
        headers = {k.lower(): v for k, v in entry["headers"].items()}
        target = headers.get("x-amz-target", "")
        if not target.startswith("secretsmanager."):
            continue
        operation = target.split(".", 1)[1]
        body = base64.b64decode(entry["body"]) if entry.get("body_encoded") else entry["body"]
        request = json.loads(body)
        secret = str(request.get("SecretId") or request.get("Name"))
        if operation in ("CreateSecret", "TagResource"):
            tags.setdefault(secret, {}).update(
                {t["Key"]: t["Value"] for t in request.get("Tags", [])})
        elif operation == "UntagResource":
            for key in request.get("TagKeys", []):
                tags.get(secret, {}).pop(key, None)
        if f"Credential={access_key}/" in headers.get("authorization", ""):
            found.append((f"secretsmanager:{operation}", secret, dict(tags.get(secret, {}))))
    return found


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


def _harnessed(aws: Any, stack: StackOutputs, plan_for: PlanFor, tmp_path: Path,
               endpoint: str) -> tuple[str, list[dict[str, Any]], StackOutputs, EcsHarness]:
    """The stack's bucket, the task role's statements, the stack with a credential secret,
    and the harness that runs its containers, watching ECS."""
    plan = plan_for()
    bucket = stack.bucket or ""
    statements = _task_statements(plan, bucket)
    stack = with_credential_secret(aws, stack, "sk-ant-api03-" + "k" * 40)
    harness = EcsHarness(plan, stack, aws, root=tmp_path / "volumes", endpoint=endpoint)
    harness.watch(aws)
    return bucket, statements, stack, harness


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


def test_a_run_reads_and_writes_only_its_own_folder_and_secret(
        aws: Any, stack: StackOutputs, plan_for: PlanFor, moto_endpoint: str,
        tmp_path: Path, recording: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bucket, statements, stack, harness = _harnessed(aws, stack, plan_for, tmp_path,
                                                    moto_endpoint)
    d = Deployment.from_outputs("dev", stack, session=aws, poll_interval=QUICK_POLL)
    monkeypatch.setenv("GIT_TOKEN", "ghp_isolationTOKEN0123456789abcdefABCD")
    # The first task has a secret of its own; the second does not.
    tasks = [d.run_task(TaskSpec(
        command='test -n "$GIT_TOKEN" && echo first > $RCLAUDE_ARTIFACTS/word.txt',
        secrets=["GIT_TOKEN"])),
        d.run_task(TaskSpec(command="echo second > $RCLAUDE_ARTIFACTS/word.txt"))]
    ecs = aws.client("ecs")
    runs = {}
    for task in tasks:
        [arn] = ecs.list_tasks(cluster=stack.cluster_arn, startedBy=task.task_id)["taskArns"]
        ran = harness.run(arn)
        assert ran.exit_code == 0, ran.output
        runs[task.task_id] = (arn.rsplit("/", 1)[-1], harness.access_keys[arn.rsplit("/", 1)[-1]])
    for task, expected in zip(tasks, ("first", "second"), strict=True):
        assert task.wait(timeout=30).status is TaskStatus.SUCCEEDED
        # The submitter reads each run's own outputs back (the first: its token arrived).
        [word] = [p for p in task.result().download(tmp_path / "out") if p.name == "word.txt"]
        assert word.read_text().strip() == expected

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
                # The budget's reservations and the closed marker are the submitters'.
                ("s3:PutObject", "ledger/2026-12.json"),
                ("s3:PutObject", "control/closed.json"),
                ("s3:DeleteObject", "control/closed.json"),
                ("s3:ListBucket", f"arn:aws:s3:::{bucket}")):
            resource = key if key.startswith("arn:") else f"arn:aws:s3:::{bucket}/{key}"
            assert not allowed(statements, action, resource, userid), (action, key)

    # The secret: the first run read it (the token arrived) and deleted it, and only it;
    # each request allowed by the tags the secret had when it was made; the same tags
    # refuse the other run.
    first, second = tasks
    first_userid = f"{stack.task_role_id}:{runs[first.task_id][0]}"
    second_userid = f"{stack.task_role_id}:{runs[second.task_id][0]}"
    name = f"rclaude/dev/tasks/{first.task_id}"
    reads = _secret_reads(recording, runs[first.task_id][1])
    assert [(action, secret) for action, secret, _ in reads] == [
        ("secretsmanager:GetSecretValue", name), ("secretsmanager:DeleteSecret", name)]
    assert _secret_requests(recording, runs[second.task_id][1]) == []
    arn = f"arn:aws:secretsmanager:us-east-1:{MOCK_ACCOUNT_ID}:secret:{name}-AbCdEf"
    for action, _, tags in reads:
        assert allowed(statements, action, arn, first_userid, tags), (action, tags)
        assert not allowed(statements, action, arn, second_userid, tags), (action, tags)
    assert not allowed(statements, "secretsmanager:GetSecretValue", arn, first_userid, {})


def test_a_run_started_the_instant_run_task_returns_finds_its_grant_in_place(
        aws: Any, stack: StackOutputs, plan_for: PlanFor, moto_endpoint: str,
        tmp_path: Path, recording: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A fast task: its container starts as RunTask returns, and whenever its inputs are
    already there when the submitter grants it its secret, it runs on (reads its inputs,
    asks for its secret, ends) before that grant lands. Each of its secret requests must
    be allowed by the tags the secret had at that moment."""
    plan = plan_for()
    statements = _task_statements(plan, stack.bucket or "")
    stack = with_credential_secret(aws, stack, "sk-ant-api03-" + "f" * 40)
    harness = EcsHarness(plan, stack, aws, root=tmp_path / "volumes", endpoint=moto_endpoint)
    harness.watch(aws)
    containers: dict[str, Any] = {}
    exits: dict[str, Any] = {}

    def finish(arn: str) -> Any:
        if arn not in exits:
            exits[arn] = containers[arn].wait(timeout=120)
        return exits[arn]

    def start_at_once(parsed: dict[str, Any], **_: Any) -> None:
        for task in parsed.get("tasks", []):
            containers[task["taskArn"]] = harness.start(task["taskArn"])

    def grant_late(params: dict[str, Any], **_: Any) -> None:
        staged = aws.client("s3").list_objects_v2(
            Bucket=stack.bucket, Prefix=f"tasks/{task_id}/runs/").get("Contents", [])
        if any(o["Key"].endswith("/inputs.json") for o in staged):
            for arn in containers:
                finish(arn)

    aws.events.register("after-call.ecs.RunTask", start_at_once)
    aws.events.register("before-call.secretsmanager.TagResource", grant_late)
    d = Deployment.from_outputs("dev", stack, session=aws, poll_interval=QUICK_POLL)
    monkeypatch.setenv("FAST_TOKEN", "tok-fast-0123456789")
    spec = TaskSpec(command='test -n "$FAST_TOKEN" && echo has-token', secrets=["FAST_TOKEN"])
    task_id = spec.task_id
    task = d.run_task(spec)
    [arn] = containers
    assert finish(arn).exit_code == 0, exits[arn].output
    assert task.wait(timeout=30).status is TaskStatus.SUCCEEDED
    ecs_id = arn.rsplit("/", 1)[-1]
    userid = f"{stack.task_role_id}:{ecs_id}"
    secret = f"arn:aws:secretsmanager:us-east-1:{MOCK_ACCOUNT_ID}:secret:rclaude/dev/tasks/" \
             f"{task_id}-AbCdEf"
    reads = _secret_reads(recording, harness.access_keys[ecs_id])
    assert reads, "the run never asked for its secret"
    for action, _, tags in reads:
        assert allowed(statements, action, secret, userid, tags), (
            f"{action} before its grant: the secret was tagged {tags}")


def test_waiting_for_inputs_gives_up_naming_the_folder(
        aws: Any, stack: StackOutputs) -> None:
    """A submitter stopped between RunTask and staging: the runner's wait ends in an error
    naming where it looked (the container exits with it in its log)."""
    from rclaude_infra._aws.container import wait_for_inputs

    with pytest.raises(TimeoutError, match="did not copy this run's inputs"):
        wait_for_inputs(aws.client("s3"), stack.bucket or "", "t-none", "AROAX:abc",
                        timeout=0.5)


def test_two_service_users_tasks_on_one_stack_reach_only_their_own(
        aws: Any, stack: StackOutputs, plan_for: PlanFor, moto_endpoint: str,
        tmp_path: Path, recording: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The hosted service's users share one stack: alice's and bob's tasks, each passing
    a secret of its user's through the service, run with sessions that reach their own
    run's folder and secret only: never the other user's, records or secret."""
    import httpx
    from loopback import started

    from rclaude_infra.service import PlanBook, ServiceSettings, accounts, create_app

    bucket, statements, stack, harness = _harnessed(aws, stack, plan_for, tmp_path,
                                                    moto_endpoint)
    monkeypatch.setenv("RCLAUDE_HOME", str(tmp_path / "home"))
    settings = ServiceSettings(
        database_url=f"sqlite:///{tmp_path / 'service.db'}", provider="ecs-ec2",
        plans=PlanBook.from_toml("[plans.free]\nconcurrency = 5\n"))
    deployment = Deployment.from_outputs("dev", stack, session=aws, poll_interval=QUICK_POLL)
    app = create_app(settings, deployment=deployment)
    tokens = {}
    with app.state.db.session() as session:
        for name in ("alice", "bob"):
            user = accounts.add_user(session, f"{name}@example.com")
            tokens[name] = accounts.create_token(session, user, name="t")[1]
    ecs = aws.client("ecs")
    runs: dict[str, tuple[str, str, str]] = {}  # user -> (task id, ECS task id, access key)
    with started(app) as url:
        for name, token in tokens.items():
            with httpx.Client(base_url=url, timeout=60,
                              headers={"Authorization": f"Bearer {token}"}) as client:
                assert client.put("/v1/secrets/GIT_TOKEN", json={
                    "value": f"ghp_{name}TOKEN0123456789abcdefABCDEF"}).status_code == 201
                task = client.post("/v1/tasks", json={
                    "command": f'test "$GIT_TOKEN" = ghp_{name}TOKEN0123456789abcdefABCDEF'
                               f" && echo {name} > $RCLAUDE_ARTIFACTS/word.txt",
                    "secrets": ["GIT_TOKEN"]}).json()
                deadline = time.monotonic() + 60
                while not (arns := ecs.list_tasks(cluster=stack.cluster_arn,
                                                  startedBy=task["id"])["taskArns"]):
                    assert time.monotonic() < deadline, "the service did not start it"
                    time.sleep(0.2)
                ran = harness.run(arns[0])
                assert ran.exit_code == 0, ran.output
                ecs_id = arns[0].rsplit("/", 1)[-1]
                runs[name] = (task["id"], ecs_id, harness.access_keys[ecs_id])
                while client.get(f"/v1/tasks/{task['id']}").json()["status"] != "SUCCEEDED":
                    assert time.monotonic() < deadline + 60, "the task did not end"
                    time.sleep(0.2)
                # What it wrote with its user's own secret, read back through the service.
                word = client.get(f"/v1/tasks/{task['id']}/files/artifacts/word.txt")
                assert word.status_code == 200 and word.text.strip() == name
    for name, (task_id, ecs_id, access_key) in runs.items():
        userid = f"{stack.task_role_id}:{ecs_id}"
        folder = f"arn:aws:s3:::{bucket}/tasks/{task_id}/runs/{userid}/"
        requests = _s3_requests(recording, access_key, bucket)
        assert ("s3:PutObject", f"{folder}result.json") in requests  # not vacuous
        for action, resource in requests:
            assert resource.startswith(folder) and allowed(statements, action, resource,
                                                           userid), (name, action, resource)
        [(other_task, other_ecs, _)] = [r for n, r in runs.items() if n != name]
        other_userid = f"{stack.task_role_id}:{other_ecs}"
        for action, key in (("s3:GetObject", f"tasks/{other_task}/runs/{other_userid}/"
                                             "result.json"),
                            ("s3:GetObject", f"tasks/{other_task}/spec.json"),
                            ("s3:PutObject", f"tasks/{other_task}/runs/{other_userid}/x")):
            assert not allowed(statements, action, f"arn:aws:s3:::{bucket}/{key}", userid)
        # Its secret read with its user's value, and the other user's refused it.
        secret = f"rclaude/dev/tasks/{task_id}"
        reads = _secret_reads(recording, access_key)
        assert [(a, s) for a, s, _ in reads] == [
            ("secretsmanager:GetSecretValue", secret), ("secretsmanager:DeleteSecret", secret)]
        arn = f"arn:aws:secretsmanager:us-east-1:{MOCK_ACCOUNT_ID}:secret:{secret}-AbCdEf"
        for action, _, tags in reads:
            assert allowed(statements, action, arn, userid, tags)
            assert not allowed(statements, action, arn, other_userid, tags), (name, action)
