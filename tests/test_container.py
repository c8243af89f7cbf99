"""The container contract: tasks the library starts on ECS, run as ECS would start them
from the planned task definition (:mod:`ecs_harness`: bubblewrap, moto's server)."""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
from pathlib import Path
from typing import Any

import pytest
from ecs_harness import EcsHarness, with_credential_secret
from fake_anthropic import PLANTED_KEY, FakeAnthropic, Reply
from git_repos import FIX_ADD, bare_repository
from git_server import GitServer
from moto_stack import QUICK_POLL
from plan_helpers import PlanFor

from rclaude_infra import Deployment, StackOutputs, TaskSpec, TaskStatus

GIT_TOKEN = "ghp_PLANTEDcontainerGit0123456789abcdefAB"

pytestmark = pytest.mark.skipif(
    shutil.which("bwrap") is None or os.geteuid() != 0,
    reason="needs bubblewrap (apt-get install bubblewrap; .ci/run installs it) and root, to "
    "start the container as its user")


@pytest.fixture(name="ecs")
def _ecs(aws: Any, stack: StackOutputs, plan_for: PlanFor, moto_endpoint: str,
         tmp_path: Path) -> tuple[Deployment, EcsHarness]:
    deployed = with_credential_secret(aws, stack, PLANTED_KEY)
    harness = EcsHarness(plan_for(), deployed, aws, root=tmp_path / "volumes",
                         endpoint=moto_endpoint)
    harness.watch(aws)
    d = Deployment.from_outputs("dev", deployed, session=aws, poll_interval=QUICK_POLL)
    return d, harness


def started(aws: Any, stack: StackOutputs, task_id: str) -> str:
    [arn] = aws.client("ecs").list_tasks(cluster=stack.cluster_arn,
                                         startedBy=task_id)["taskArns"]
    return str(arn)


def test_a_task_runs_as_its_user_under_a_read_only_root(
        ecs: tuple[Deployment, EcsHarness], aws: Any, stack: StackOutputs,
        tmp_path: Path) -> None:
    d, harness = ecs
    task = d.run_task(TaskSpec(command=(
        "id -u; touch /opt/x 2>/dev/null || echo the root is read-only;"
        " touch /workspace/ok && echo the work space is writable; echo home=$HOME;"
        " echo made > $RCLAUDE_ARTIFACTS/made.txt")))
    ran = harness.run(started(aws, stack, task.task_id))
    assert ran.exit_code == 0, ran.output
    state = task.wait(timeout=30)
    assert state.status is TaskStatus.SUCCEEDED and state.exit_code == 0
    lines = [line.text for line in task.logs()]  # through CloudWatch Logs, as the user reads
    assert "1000" in lines
    assert "the root is read-only" in lines and "the work space is writable" in lines
    assert "home=/workspace/home" in lines
    result = task.result()
    assert result.status == "succeeded"
    files = {p.name for p in result.download(tmp_path / "out")}
    assert {"made.txt", "log.jsonl", "result.json"} <= files


def test_the_agent_works_in_the_container_signed_in_from_the_secret(
        ecs: tuple[Deployment, EcsHarness], aws: Any, stack: StackOutputs, claude_bin: Path,
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The real Claude Code, as uid 1000 (bypassPermissions), its key from Secrets
    Manager through the task definition's ``secrets``, its config in the work space."""
    d, harness = ecs
    harness.image_paths[str(claude_bin.parents[1])] = "/opt/claude"
    harness.extra_path = ("/opt/claude/node_modules/.bin",)
    # The repository is private, on a git host that wants a token (loopback): the token
    # travels as a per-task secret and reaches git through the credential helper.
    bare_repository(tmp_path / "served" / "app.git")
    monkeypatch.setenv("GIT_TOKEN", GIT_TOKEN)
    with FakeAnthropic([
        Reply.call("Read", {"file_path": "{cwd}/app.py"}),
        FIX_ADD,
        Reply.say("Fixed."),
    ]) as fake, GitServer(tmp_path / "served", GIT_TOKEN) as git:
        # The one change to the planned container: the model's API is the scripted fake.
        harness.container = {**harness.container, "environment": [
            *harness.container["environment"],
            {"name": "ANTHROPIC_BASE_URL", "value": fake.url},
            {"name": "CLAUDE_CODE_MAX_RETRIES", "value": "0"}]}
        task = d.run_task(TaskSpec(prompt="Fix add()", repo=f"{git.url}/app.git",
                                   secrets=["GIT_TOKEN"], git_token_secret="GIT_TOKEN"))
        monkeypatch.delenv("GIT_TOKEN")
        ran = harness.run(started(aws, stack, task.task_id))
        assert ran.exit_code == 0, ran.output
    assert fake.turns[0].headers.get("x-api-key") == PLANTED_KEY
    state = task.wait(timeout=30)
    assert state.status is TaskStatus.SUCCEEDED, state.reason
    agent = task.agent
    assert agent is not None and agent.permission_mode == "bypassPermissions"
    assert agent.text == "Fixed."
    # The ledger: the agent's own cost from its result in S3, beside the instance's share.
    cost = task.cost()
    assert agent.cost_usd and cost.model_usd == pytest.approx(agent.cost_usd)
    assert cost.total_usd == pytest.approx(cost.compute_usd + agent.cost_usd)
    spent = d.spend(dt.datetime.now(dt.UTC) - dt.timedelta(hours=1))
    assert spent.model_usd == pytest.approx(agent.cost_usd) and spent.tasks == 1
    out = task.result().download(tmp_path / "out")
    diff = next(p for p in out if p.name == "diff.patch").read_text()
    assert "+    return a + b" in diff
    for path in out:
        text = path.read_text(errors="replace")
        assert PLANTED_KEY not in text and GIT_TOKEN not in text, path


def test_per_task_secrets_reach_the_container(
        ecs: tuple[Deployment, EcsHarness], aws: Any, stack: StackOutputs,
        monkeypatch: pytest.MonkeyPatch) -> None:
    d, harness = ecs
    monkeypatch.setenv("DEPLOY_TOKEN", "tok-PLANTED-container-0099")
    task = d.run_task(TaskSpec(
        command='test "$DEPLOY_TOKEN" = "$(printf tok-PLANTED-container-00)99" && echo has-it',
        secrets=["DEPLOY_TOKEN"]))
    monkeypatch.delenv("DEPLOY_TOKEN")
    ran = harness.run(started(aws, stack, task.task_id))
    assert ran.exit_code == 0, ran.output
    assert "has-it" in [line.text for line in task.logs()]
    assert "tok-PLANTED-container-0099" not in json.dumps(task.result().data)


def test_a_key_secret_without_a_value_fails_the_start_as_ecs_does(
        aws: Any, stack: StackOutputs, plan_for: PlanFor, moto_endpoint: str,
        tmp_path: Path) -> None:
    """Why up() refuses without the key: every task of such a stack fails to start."""
    deployed = with_credential_secret(aws, stack, None)
    harness = EcsHarness(plan_for(), deployed, aws, root=tmp_path / "v", endpoint=moto_endpoint)
    harness.watch(aws)
    d = Deployment.from_outputs("dev", deployed, session=aws, poll_interval=QUICK_POLL)
    task = d.run_task(TaskSpec(command="true"))
    ran = harness.run(started(aws, stack, task.task_id))
    assert ran.start_error is not None and "ResourceInitializationError" in ran.start_error
    state = task.wait(timeout=30)
    assert state.status is TaskStatus.FAILED
    assert state.reason is not None and "ResourceInitializationError" in state.reason


@pytest.fixture(name="interactive_ecs")
def _interactive_ecs(aws: Any, stack: StackOutputs, plan_for: PlanFor, moto_endpoint: str,
                     tmp_path: Path) -> tuple[Deployment, EcsHarness]:
    """A stack deployed with ``interactive_tasks=True``, as ECS would run its tasks."""
    deployed = with_credential_secret(aws, stack, PLANTED_KEY)
    harness = EcsHarness(plan_for(interactive_tasks=True), deployed, aws,
                         root=tmp_path / "volumes", endpoint=moto_endpoint)
    harness.watch(aws)
    d = Deployment.from_outputs("dev", deployed, session=aws, poll_interval=QUICK_POLL)
    return d, harness


#: What ECS Exec's agent needs in the container: its state directory writable (it creates
#: it on the root file system), its binaries and log directory mounted by the ECS agent.
EXEC_AGENT_PROBE = (
    "mkdir -p /var/lib/amazon/ssm/ipc && echo agent-state-written;"
    " ls /ecs-execute-command-*/ /ecs-execute-command-*/configuration;"
    " test -d /var/log/amazon/ssm && echo agent-log-mounted;"
    " touch /ecs-execute-command-*/amazon-ssm-agent 2>/dev/null || echo binaries-read-only")


def test_an_interactive_task_starts_with_the_exec_agent_mounted_and_a_writable_root(
        interactive_ecs: tuple[Deployment, EcsHarness], aws: Any,
        stack: StackOutputs) -> None:
    d, harness = interactive_ecs
    task = d.run_task(TaskSpec(command=EXEC_AGENT_PROBE, interactive=True))
    ran = harness.run(started(aws, stack, task.task_id))
    assert ran.start_error is None and ran.exit_code == 0, ran.output
    assert task.wait(timeout=30).status is TaskStatus.SUCCEEDED
    lines = [line.text for line in task.logs()]
    assert {"agent-state-written", "amazon-ssm-agent", "ssm-agent-worker",
            "ssm-session-worker", "amazon-ssm-agent.json", "seelog.xml", "agent-log-mounted",
            "binaries-read-only"} <= set(lines), lines


def test_a_plain_task_of_that_stack_keeps_its_read_only_root_and_no_exec_agent(
        interactive_ecs: tuple[Deployment, EcsHarness], aws: Any,
        stack: StackOutputs) -> None:
    d, harness = interactive_ecs
    task = d.run_task(TaskSpec(command=(
        "mkdir -p /var/lib/amazon/ssm 2>/dev/null || echo root-read-only;"
        " ls -d /ecs-execute-command-* 2>/dev/null || echo no-exec-agent")))
    ran = harness.run(started(aws, stack, task.task_id))
    assert ran.exit_code == 0, ran.output
    assert {"root-read-only", "no-exec-agent"} <= {line.text for line in task.logs()}


def test_a_mount_where_the_exec_agent_mounts_fails_the_start_as_docker_does(
        interactive_ecs: tuple[Deployment, EcsHarness], aws: Any,
        stack: StackOutputs) -> None:
    """The layout before interactive tasks: the definition's own volume at the agent's
    log directory. Docker refuses the container; the task FAILS saying why."""
    d, harness = interactive_ecs
    assert harness.interactive_container is not None
    harness.interactive_container = {**harness.interactive_container, "mountPoints": [
        *harness.interactive_container["mountPoints"],
        {"sourceVolume": "tmp", "containerPath": "/var/log/amazon/ssm"}]}
    task = d.run_task(TaskSpec(command="true", interactive=True))
    ran = harness.run(started(aws, stack, task.task_id))
    assert ran.start_error is not None
    assert "Duplicate mount point: /var/log/amazon/ssm" in ran.start_error
    state = task.wait(timeout=30)
    assert state.status is TaskStatus.FAILED and "Duplicate mount point" in (state.reason or "")
