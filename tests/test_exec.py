"""Task.exec(): ECS Exec at its boundary, and the local provider's shell.

moto has no ExecuteCommand and no container runtime ids (emulator-gaps.md): the
ExecuteCommand answer is the response shape of the ECS API reference, given before the
call is sent, and the runtime id is added to moto's DescribeTasks answer. Everything else
(RunTask, DescribeTasks, S3) is moto's server. ``session-manager-plugin`` is a real
executable on PATH that records how it was started.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

import attrs
import pytest
from moto_stack import answer, attempts, hold_tasks_running, keep_exec_flags
from plan_helpers import container

from rclaude_infra import (
    ConfigError,
    Deployment,
    ExecError,
    SessionManagerPluginNotFoundError,
    StackOutputs,
    TaskSpec,
    TaskStatus,
)
from rclaude_infra._aws import ecs_exec
from rclaude_infra._aws.ecs_exec import INSTALL_URL, SESSION_ENV
from rclaude_infra._pulumi.documents import EXEC_AGENT_DIR_PREFIX, EXEC_AGENT_LOG_DIR


@pytest.fixture(autouse=True)
def _tasks_stay_running(moto_endpoint: str, aws: Any) -> Any:
    keep_exec_flags(aws)
    hold_tasks_running(moto_endpoint)
    yield
    hold_tasks_running(moto_endpoint, hold=False)


RUNTIME_ID = "8f1d2a6c7e9b4f3aa1b2c3d4e5f60718-2785592478"
TOKEN = "AAEAAdQxFAKEtokenVALUEnotREAL0123456789"


@pytest.fixture(name="plugin")
def _plugin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A session-manager-plugin on PATH that records its argv and the session variable;
    exits 7, as a remote shell's ``exit 7`` would make it."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    record = tmp_path / "plugin.json"
    script = bin_dir / "session-manager-plugin"
    script.write_text(f"""#!{sys.executable}
import json, os, sys
if sys.argv[1:] == ["--version"]:
    print(os.environ.get("FAKE_PLUGIN_VERSION", "1.2.707.0"))
    sys.exit(0)
with open({str(record)!r}, "w") as f:
    json.dump({{"argv": sys.argv[1:], "session_env": os.environ.get({SESSION_ENV!r})}}, f)
sys.exit(7)
""")
    script.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:/usr/bin:/bin")
    return record


NOT_READY = {"__type": "InvalidParameterException",
             "message": "The execute command failed because execute command was not enabled "
                        "when the task was run or the execute command agent isn't running."}


@pytest.fixture(autouse=True)
def _no_waiting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ecs_exec, "READY_DELAYS", (0.0, 0.0))


def _running_task(deployment: Deployment, session: Any, *, refusals: int = 0,
                  refusal: dict[str, str] = NOT_READY,
                  ) -> tuple[Any, Any, list[dict[str, Any]]]:
    """A running task whose ExecuteCommand is refused ``refusals`` times, then answered:
    ``(task, session, the ExecuteCommand requests)``. The answers are registered on the
    deployment's boto3 session before the deployment makes its ECS client."""
    calls: list[dict[str, Any]] = []

    def execute_command(request: Any) -> tuple[int, dict[str, Any]]:
        body = json.loads(request.body)
        calls.append(body)
        if len(calls) <= refusals:
            return 400, refusal
        # ExecuteCommand's response, as in the ECS API reference.
        return 200, {
            "clusterArn": body["cluster"], "taskArn": body["task"],
            "containerName": body["container"], "interactive": True,
            "containerArn": body["task"].replace(":task/", ":container/") + "/runner",
            "session": {"sessionId": "ecs-execute-command-0f9e8d7c6b5a",
                        "streamUrl": "wss://ssmmessages.us-east-1.amazonaws.com/v1/data-channel/"
                        "ecs-execute-command-0f9e8d7c6b5a?role=publish_subscribe",
                        "tokenValue": TOKEN},
        }

    def with_runtime_id(parsed: dict[str, Any], **_: Any) -> None:
        for task in parsed.get("tasks", []):
            for described in task.get("containers", []):
                described["runtimeId"] = RUNTIME_ID

    answer(session, ["ExecuteCommand"], execute_command, service="ecs")
    session.events.register("after-call.ecs.DescribeTasks", with_runtime_id)
    task = deployment.run_task(TaskSpec(command="sleep 600", interactive=True))
    return task, session, calls


def _run_tasks(session: Any) -> list[dict[str, Any]]:
    """Every RunTask request ``session``'s clients send from now on."""
    sent: list[dict[str, Any]] = []
    session.events.register("provide-client-params.ecs.RunTask",
                            lambda params, **_: sent.append(dict(params)))
    return sent


def test_only_an_interactive_task_starts_with_exec_from_the_interactive_definition(
        deployment: Deployment, aws: Any, stack: StackOutputs, plugin: Path) -> None:
    sent = _run_tasks(aws)
    plain = deployment.run_task(TaskSpec(command="sleep 600"))
    shell = deployment.run_task(TaskSpec(command="sleep 600", interactive=True))
    assert [(r["taskDefinition"], r["enableExecuteCommand"]) for r in sent] == [
        (stack.task_definition_arn, False), (stack.interactive_task_definition_arn, True)]
    described = {t["startedBy"]: t for t in aws.client("ecs").describe_tasks(
        cluster=stack.cluster_arn, tasks=[a["arn"] for t in (plain, shell) for a in attempts(
            aws, stack.bucket or "", t.task_id)])["tasks"]}
    assert described[plain.task_id].get("enableExecuteCommand", False) is False
    assert described[shell.task_id].get("enableExecuteCommand") is True
    # A shell in the plain task is refused before any call: ECS Exec is off for it.
    with pytest.raises(ExecError, match="not started interactive"):
        plain.exec("bash")


def test_an_interactive_task_on_a_stack_without_its_definition_is_refused_first(
        aws: Any, stack: StackOutputs) -> None:
    old = attrs.evolve(stack, interactive_task_definition_arn=None)
    sent = _run_tasks(aws)
    d = Deployment.from_outputs("dev", old, session=aws)
    with pytest.raises(ConfigError, match="interactive_tasks=True") as info:
        d.run_task(TaskSpec(command="true", interactive=True))
    assert info.value.field == "interactive" and sent == []
    assert aws.client("s3").list_objects_v2(Bucket=stack.bucket).get("KeyCount") == 0


def test_exec_opens_a_session_and_hands_it_to_the_plugin(
    deployment: Deployment, aws: Any, stack: StackOutputs, plugin: Path, moto_endpoint: str,
) -> None:
    task, session, calls = _running_task(deployment, aws)
    assert task.exec("bash") == 7  # the session's exit code
    (call,) = calls
    arn = attempts(session, stack.bucket or "", task.task_id)[0]["arn"]
    assert call == {"cluster": stack.cluster_arn, "task": arn, "container": "runner",
                    "command": "bash", "interactive": True}
    recorded = json.loads(plugin.read_text())
    session, region, action, profile, params, endpoint = recorded["argv"]
    # A plugin newer than 1.2.497.0 reads the session from the environment: the token
    # stays out of the process list.
    assert session == SESSION_ENV and TOKEN not in json.dumps(recorded["argv"])
    assert json.loads(recorded["session_env"])["tokenValue"] == TOKEN
    assert (region, action, endpoint) == ("us-east-1", "StartSession", moto_endpoint)
    assert profile in ("", "default")
    ecs_task_id = arn.rsplit("/", 1)[-1]
    assert json.loads(params) == {
        "Target": f"ecs:{stack.cluster_name}_{ecs_task_id}_{RUNTIME_ID}"}


def test_an_old_plugin_gets_the_session_in_argv(
    deployment: Deployment, aws: Any, plugin: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("FAKE_PLUGIN_VERSION", "1.2.463.0")
    task, _, _ = _running_task(deployment, aws)
    task.exec("ls")
    recorded = json.loads(plugin.read_text())
    assert json.loads(recorded["argv"][0])["tokenValue"] == TOKEN
    assert recorded["session_env"] is None


def test_without_the_plugin_exec_says_where_to_get_it_before_any_call(
    deployment: Deployment, aws: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    task, _, calls = _running_task(deployment, aws)
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    with pytest.raises(SessionManagerPluginNotFoundError, match="session-manager-plugin") as err:
        task.exec()
    assert INSTALL_URL in str(err.value)
    assert calls == []  # no session opened that nobody would use


def test_exec_needs_a_running_task(deployment: Deployment, aws: Any, plugin: Path) -> None:
    task, _, calls = _running_task(deployment, aws)
    task.stop("done with it")
    with pytest.raises(ExecError, match=r"RUNNING.*STOPPED"):
        task.exec()
    assert calls == []


def test_exec_waits_for_the_container_agent(deployment: Deployment, aws: Any, plugin: Path) -> None:
    task, _, calls = _running_task(deployment, aws, refusals=2)
    assert task.exec() == 7
    assert len(calls) == 3  # refused twice while the agent came up, then the session
    assert json.loads(plugin.read_text())["argv"][2] == "StartSession"


def test_an_agent_that_never_comes_up_is_an_error(deployment: Deployment, aws: Any,
                                                  plugin: Path) -> None:
    task, _, calls = _running_task(deployment, aws, refusals=10)
    with pytest.raises(ExecError, match=r"InvalidParameterException.*agent"):
        task.exec()
    assert len(calls) == 3  # every try of READY_DELAYS, then the error
    assert not plugin.exists()  # the plugin never started


def test_a_refused_session_is_not_retried(deployment: Deployment, aws: Any, plugin: Path) -> None:
    task, _, calls = _running_task(deployment, aws, refusals=1, refusal={
        "__type": "AccessDeniedException",
        "message": "User is not authorized to perform: ecs:ExecuteCommand"})
    with pytest.raises(ExecError, match=r"AccessDeniedException: User is not authorized"):
        task.exec()
    assert len(calls) == 1


# -- local provider -------------------------------------------------------------------


def test_local_exec_runs_in_the_task_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("RCLAUDE_HOME", str(tmp_path / "home"))
    local = Deployment("dev", provider="local")
    task = local.run_task(TaskSpec(command="touch started; sleep 60"))
    deadline = time.monotonic() + 30
    while not list((tmp_path / "home").rglob("workspace/started")):
        assert time.monotonic() < deadline, "the task never started"
        time.sleep(0.05)
    assert task.status is TaskStatus.RUNNING
    assert task.exec("ls > seen.txt; exit 3") == 3
    (seen,) = (tmp_path / "home").rglob("workspace/seen.txt")
    assert "started" in seen.read_text().split()
    task.stop()
    task.wait(timeout=30)
    with pytest.raises(ExecError, match="RUNNING"):
        task.exec()


def test_a_stopped_exec_agent_is_named_with_the_paths_it_needs() -> None:
    """``DescribeTasks`` reports ECS Exec's agent per container in ``managedAgents``
    (API reference, ManagedAgent: name ExecuteCommandAgent, lastStatus, reason); moto
    does not, so the shapes are written here."""
    from rclaude_infra._aws.ecs_exec import not_connected_hint

    stopped = {"enableExecuteCommand": True, "containers": [{"name": "runner", "managedAgents": [
        {"name": "ExecuteCommandAgent", "lastStatus": "STOPPED",
         "reason": "Failed to create directory /var/lib/amazon/ssm: read-only file system"}]}]}
    hint = not_connected_hint(stopped, "runner")
    assert "read-only file system" in hint and "interactive_tasks=True" in hint
    pending = {"enableExecuteCommand": True, "containers": [{"name": "runner", "managedAgents": [
        {"name": "ExecuteCommandAgent", "lastStatus": "PENDING"}]}]}
    assert "ssmmessages on port 443" in not_connected_hint(pending, "runner")
    assert "PENDING" in not_connected_hint(pending, "runner")
    assert "interactive=True" in not_connected_hint({"enableExecuteCommand": False}, "runner")


def test_no_definition_mounts_anything_where_the_exec_agent_mounts(plan_for: Any) -> None:
    """The ECS agent bind-mounts ECS Exec's SSM agent into an exec-enabled task's
    container (under ``/ecs-execute-command-<uuid>/`` and at ``/var/log/amazon/ssm``);
    a mount point of the definition at one of those paths makes Docker refuse the
    container. And the agent needs a writable root: only the interactive definition has
    one, and only a stack with ``interactive_tasks`` has that definition."""
    default = plan_for()
    assert len(default.by_type("aws:ecs:TaskDefinition")) == 1
    assert container(default)["readonlyRootFilesystem"] is True
    interactive = plan_for(interactive_tasks=True)
    plain, shell = container(interactive), container(interactive, interactive=True)
    assert plain["readonlyRootFilesystem"] is True and shell["readonlyRootFilesystem"] is False
    for runner in (container(default), plain, shell):
        for mount in runner["mountPoints"]:
            path = mount["containerPath"]
            assert not path.startswith(EXEC_AGENT_DIR_PREFIX)
            assert not (path + "/").startswith(EXEC_AGENT_LOG_DIR + "/")
            assert not (EXEC_AGENT_LOG_DIR + "/").startswith(path + "/"), path
        assert runner["linuxParameters"]["initProcessEnabled"] is True
    # The same container but for its root: same mounts, environment, secrets, user.
    assert {**shell, "readonlyRootFilesystem": True} == plain
    # ssmmessages only for a stack whose tasks may take a shell.
    for plan, has_exec in ((default, False), (interactive, True)):
        [policy] = [r for r in plan.by_type("aws:iam:RolePolicy") if r.name.endswith("-task")]
        assert ("ssmmessages:" in policy.inputs["policy"]) is has_exec
    assert interactive.outputs["interactive_task_definition_arn"]
    assert "interactive_task_definition_arn" not in default.outputs
