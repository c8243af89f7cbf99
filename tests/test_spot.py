"""Spot interruptions: the instance's watcher acts on the two-minute notice, the runner
stops gracefully and says PREEMPTED, the provider knows it and submits the task again.

Facts (shared/reference/ecs-runtime-facts.md, AWS "Spot Instance interruption notices" and
"Spot Instance draining"): the notice is IMDS's ``spot/instance-action`` (404 until then,
then ``{"action": "terminate", "time": ...}``), readable only from the instance (IMDSv2,
hop limit 1); RunTask tasks are not drained and die with the host.
"""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import pytest
from ecs_harness import EcsHarness, with_credential_secret
from loopback import LoopbackServer
from moto_stack import QUICK_POLL, run_folder
from plan_helpers import PlanFor

from rclaude_infra import Deployment, StackOutputs, TaskSpec, TaskStatus
from rclaude_infra._pulumi.documents import SPOT_WATCHER

NOTICE = {"action": "terminate", "time": "2026-11-30T12:00:00Z"}


class FakeImds(LoopbackServer):
    """IMDSv2 on loopback: a token for PUT /latest/api/token; the spot action 404 until
    ``notice`` is set, as EC2 answers."""

    def __init__(self) -> None:
        self.notice: dict[str, str] | None = None
        self.tokens_checked = 0
        imds = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_PUT(self) -> None:
                assert self.path == "/latest/api/token"
                assert self.headers["X-aws-ec2-metadata-token-ttl-seconds"]
                self._send(200, b"TOKEN123")

            def do_GET(self) -> None:
                if self.headers.get("X-aws-ec2-metadata-token") != "TOKEN123":
                    self._send(401, b"")
                    return
                imds.tokens_checked += 1
                if self.path == "/latest/meta-data/spot/instance-action" and imds.notice:
                    self._send(200, json.dumps(imds.notice).encode())
                else:
                    self._send(404, b"Not Found")

            def _send(self, status: int, body: bytes) -> None:
                self.send_response(status)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        super().__init__(Handler)


def test_the_watcher_leaves_the_notice_and_stops_the_runner_containers(tmp_path: Path) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    calls = tmp_path / "docker-calls"
    docker = bin_dir / "docker"
    docker.write_text(f"""#!/bin/sh
echo "$@" >> {calls}
if [ "$1" = ps ]; then printf 'c0ffee01\\nc0ffee02\\n'; fi
""")
    docker.chmod(0o755)
    with FakeImds() as imds:
        env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "IMDS": imds.url,
               "NOTICE_DIR": str(tmp_path / "notice"), "INTERVAL": "0.1"}
        watcher = subprocess.Popen(["sh", str(SPOT_WATCHER), "rclaude-dev-runner"], env=env)
        try:
            threading.Timer(0.5, lambda: setattr(imds, "notice", NOTICE)).start()
            assert watcher.wait(timeout=30) == 0
        finally:
            watcher.kill()
    assert imds.tokens_checked >= 2  # it looked before the notice came
    assert json.loads((tmp_path / "notice" / "spot-notice").read_text()) == NOTICE
    ps, kill = calls.read_text().splitlines()
    assert ps == ("ps -q --filter label=com.amazonaws.ecs.task-definition-family="
                  "rclaude-dev-runner --filter label=com.amazonaws.ecs.container-name=runner")
    assert kill == "kill --signal=SIGTERM c0ffee01 c0ffee02"


def test_spot_instances_run_the_watcher_and_tasks_can_read_the_notice(
        plan_for: PlanFor) -> None:
    plan = plan_for()
    [template] = plan.by_type("aws:ec2:LaunchTemplate")
    script = base64.b64decode(template.inputs["userData"]).decode()
    assert SPOT_WATCHER.read_text().strip() in script
    assert "ExecStart=/usr/local/bin/rclaude-spot-watcher rclaude-dev-runner\n" in script
    # Every runner definition's family is watched: the interactive tasks' too.
    both = plan_for(interactive_tasks=True)
    assert _watcher_command(both) == [
        d.inputs["family"] for d in both.by_type("aws:ecs:TaskDefinition")]
    assert "systemctl enable --now --no-block rclaude-spot-watcher.service" in script
    [definition] = plan.by_type("aws:ecs:TaskDefinition")
    [runner] = json.loads(definition.inputs["containerDefinitions"])
    [mount] = [m for m in runner["mountPoints"] if m["sourceVolume"] == "spot-notice"]
    assert mount == {"sourceVolume": "spot-notice", "containerPath": "/run/rclaude",
                     "readOnly": True}
    assert {"name": "RCLAUDE_SPOT_NOTICE", "value": "/run/rclaude/spot-notice"} in runner[
        "environment"]
    on_demand = plan_for(spot=False)
    [template] = on_demand.by_type("aws:ec2:LaunchTemplate")
    assert "spot-watcher" not in base64.b64decode(template.inputs["userData"]).decode()


def test_the_runner_stops_as_preempted_on_the_notice(tmp_path: Path) -> None:
    task = tmp_path / "t-spot"
    task.mkdir()
    (task / "spec.json").write_text(json.dumps({"command": "echo started; sleep 60",
                                                "task_id": "t-spot"}))
    notice = tmp_path / "spot-notice"
    runner = subprocess.Popen([sys.executable, "-m", "rclaude_infra.runner", "--task-dir",
                               str(task)], env={**os.environ, "RCLAUDE_SPOT_NOTICE": str(notice)},
                              stdout=subprocess.PIPE, text=True)
    assert runner.stdout is not None
    while "started" not in runner.stdout.readline():
        pass
    notice.write_text(json.dumps(NOTICE))
    runner.send_signal(signal.SIGTERM)
    assert runner.wait(timeout=30) == 75
    result = json.loads((task / "result.json").read_text())
    assert result["status"] == "preempted" and result["exit_code"] == 75
    assert "spot interruption notice" in result["reason"]


def _watcher_command(plan: Any) -> list[str]:
    """The spot watcher's arguments as the planned user data starts it (its unit's
    ExecStart)."""
    [template] = plan.by_type("aws:ec2:LaunchTemplate")
    script = base64.b64decode(template.inputs["userData"]).decode()
    [line] = [x for x in script.splitlines() if x.startswith("ExecStart=")]
    return line.removeprefix("ExecStart=").split()[1:]


@pytest.mark.skipif(shutil.which("bwrap") is None or os.geteuid() != 0,
                    reason="needs bubblewrap and root (the container harness)")
def test_the_watcher_stops_every_runner_on_the_notice_which_is_preempted_and_runs_again(
        aws: Any, stack: StackOutputs, plan_for: PlanFor, moto_endpoint: str,
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The whole interruption as the instance plays it: the planned watcher (its script,
    started with the user data's arguments, its default notice directory) sees IMDS's
    notice, leaves it in the host directory the task definition mounts, and stops the
    runner containers it finds by the labels ECS gives them, a plain and an interactive
    task alike; each runner uploads its work and says PREEMPTED."""
    plan = plan_for(interactive_tasks=True)
    stack = with_credential_secret(aws, stack, "sk-ant-api03-spot-test")
    harness = EcsHarness(plan, stack, aws, root=tmp_path / "v", endpoint=moto_endpoint)
    harness.watch(aws)
    d = Deployment.from_outputs("dev", stack, session=aws, poll_interval=QUICK_POLL)
    monkeypatch.setenv("SPOT_TOKEN", "tok-for-both-attempts")
    command = ("echo partial > $RCLAUDE_ARTIFACTS/partial.txt; touch /workspace/started; "
               "sleep 120")
    tasks = [d.run_task(TaskSpec(command=command, max_retries_on_preemption=1,
                                 secrets=["SPOT_TOKEN"])),
             d.run_task(TaskSpec(command=command, interactive=True))]
    containers = []
    for task in tasks:
        [arn] = aws.client("ecs").list_tasks(cluster=stack.cluster_arn,
                                             startedBy=task.task_id)["taskArns"]
        containers.append(harness.start(arn))
    for started in containers:  # each command is running
        deadline = time.monotonic() + 30
        while not list((tmp_path / "v").glob(f"{started._task_arn.rsplit('/', 1)[-1]}"
                                             "/workspace/started")):
            assert time.monotonic() < deadline, started.wait(timeout=1).output
            time.sleep(0.1)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    harness.docker_on_host(bin_dir)
    default_dir = re.search(r'NOTICE_DIR:-([^}"]+)', SPOT_WATCHER.read_text())
    assert default_dir is not None
    with FakeImds() as imds:
        env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "IMDS": imds.url,
               "INTERVAL": "0.1",
               # The watcher's own default, on this machine's stand-in for the host.
               "NOTICE_DIR": str(harness.host / default_dir[1].strip("/"))}
        watcher = subprocess.Popen(["sh", str(SPOT_WATCHER), *_watcher_command(plan)],
                                   env=env)
        try:
            imds.notice = NOTICE
            assert watcher.wait(timeout=30) == 0
        finally:
            watcher.kill()
    for task, started in zip(tasks, containers, strict=True):
        ran = started.wait(timeout=60)
        assert ran.exit_code == 75, ran.output
        deadline = time.monotonic() + 10  # the next look at ECS after the status poll
        while (state := task.state()).status is not TaskStatus.PREEMPTED:
            assert time.monotonic() < deadline, state
            time.sleep(QUICK_POLL)
        assert state.reason is not None and "spot interruption notice" in state.reason
        out = task.result().download(tmp_path / "out" / task.task_id)  # uploaded first
        assert "partial.txt" in {p.name for p in out}
    # The next attempt still has the task's secrets: a preempted run keeps them.
    aws.client("secretsmanager").describe_secret(
        SecretId=f"rclaude/dev/tasks/{tasks[0].task_id}")
    again = d.reconcile()
    assert {t.task_id for t in again} == {t.task_id for t in tasks}
    assert all(t.state().attempt == 2 for t in tasks)


@pytest.mark.skipif(shutil.which("bwrap") is None or os.geteuid() != 0,
                    reason="needs bubblewrap and root, to start the container as its user")
def test_a_preempted_agent_goes_on_from_its_last_checkpoint(
        aws: Any, stack: StackOutputs, plan_for: PlanFor, moto_endpoint: str,
        tmp_path: Path, claude_bin: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The real Claude Code in the container: its session and the diff so far are
    checkpointed to S3 while it works; the notice stops it mid-turn; the next attempt
    resumes that session (the model sees the whole conversation) on that work."""
    import time

    import boto3
    from fake_anthropic import PLANTED_KEY, FakeAnthropic, Reply
    from git_repos import FIX_ADD, bare_repository
    from git_server import GitServer

    token = "ghp_PLANTEDcheckpointGit0123456789abcdefAB"
    stack = with_credential_secret(aws, stack, PLANTED_KEY)
    harness = EcsHarness(plan_for(), stack, aws, root=tmp_path / "v", endpoint=moto_endpoint)
    harness.watch(aws)
    harness.image_paths[str(claude_bin.parents[1])] = "/opt/claude"
    harness.extra_path = ("/opt/claude/node_modules/.bin",)
    bare_repository(tmp_path / "served" / "app.git")
    monkeypatch.setenv("GIT_TOKEN", token)
    d = Deployment.from_outputs("dev", stack, session=aws, poll_interval=QUICK_POLL)
    s3 = boto3.Session(aws_access_key_id="testing", aws_secret_access_key="testing",
                       region_name="us-east-1").client("s3")
    with FakeAnthropic([
        FIX_ADD,
        Reply(text="never heard: the machine goes first", hold=20),
    ]) as fake, GitServer(tmp_path / "served", token) as git:
        harness.container = {**harness.container, "environment": [
            *harness.container["environment"],
            {"name": "ANTHROPIC_BASE_URL", "value": fake.url},
            {"name": "CLAUDE_CODE_MAX_RETRIES", "value": "0"},
            {"name": "RCLAUDE_CHECKPOINT_SECONDS", "value": "1"}]}
        task = d.run_task(TaskSpec(prompt="Fix add() in app.py", repo=f"{git.url}/app.git",
                                   secrets=["GIT_TOKEN"], git_token_secret="GIT_TOKEN",
                                   max_retries_on_preemption=1))
        [first] = aws.client("ecs").list_tasks(cluster=stack.cluster_arn,
                                               startedBy=task.task_id)["taskArns"]
        container = harness.start(first)
        folder = run_folder(aws, stack.bucket, task.task_id)  # the first run's
        deadline = time.monotonic() + 90
        while True:  # a checkpoint in S3 that has the edit
            try:
                diff = s3.get_object(Bucket=stack.bucket,
                                     Key=f"{folder}diff.patch")["Body"].read()
                if b"+    return a + b" in diff and len(fake.turns) >= 2:
                    break
            except s3.exceptions.NoSuchKey:
                pass
            assert time.monotonic() < deadline, container.wait(timeout=1).output
            time.sleep(0.5)
        (harness.host / "var/run/rclaude").mkdir(parents=True, exist_ok=True)
        (harness.host / "var/run/rclaude/spot-notice").write_text(json.dumps(NOTICE))
        container.signal(signal.SIGTERM)
        assert container.wait(timeout=60).exit_code == 75
        deadline = time.monotonic() + 30  # the next look at ECS after the status poll
        while task.state().status is not TaskStatus.PREEMPTED:
            assert time.monotonic() < deadline, task.state()
            time.sleep(0.5)
        checkpoint = json.loads(s3.get_object(
            Bucket=stack.bucket, Key=f"{folder}checkpoint.json")["Body"].read())
        assert checkpoint["count"] >= 1
        fake.rescript([Reply.say("Done: add adds, after the move.")])
        assert [t.task_id for t in d.reconcile()] == [task.task_id]
        arns = aws.client("ecs").list_tasks(cluster=stack.cluster_arn,
                                            startedBy=task.task_id)["taskArns"]
        [second] = [arn for arn in arns if arn != first]
        ran = harness.run(second)
        assert ran.exit_code == 0, ran.output
    state = task.wait(timeout=30)
    assert state.status is TaskStatus.SUCCEEDED, state.reason
    # The model saw the whole conversation, then the note that it moved.
    opening = json.dumps(fake.turns[0].body["messages"])
    assert "Fix add() in app.py" in opening and "was reclaimed" in opening
    result = task.result()
    assert result.data["attempt"] == 2
    assert result.data["continued_from_checkpoint"] >= 1
    assert result.agent is not None and result.agent.session_id == checkpoint["session_id"]
    # The work of the first attempt is in the second's (its agent edited nothing).
    out = {p.name: p for p in result.download(tmp_path / "out")}
    assert "+    return a + b" in out["diff.patch"].read_text()
