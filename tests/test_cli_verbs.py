"""Every CLI verb in a subprocess, as users run it: the local provider end to end, the ECS
provider on moto's server through --outputs, the init wizard through stdin, and the
engine verbs' errors without a Pulumi CLI. (The engine verbs' happy paths, which need
the recording PulumiCommand, run in-process in test_cli_engine.py.)"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import tomllib
from pathlib import Path
from typing import Any

import pytest
from moto_stack import hold_tasks_running

from rclaude_infra import DeploymentConfig, StackOutputs


@pytest.fixture(name="env")
def _env(offline_env: dict[str, str]) -> dict[str, str]:
    return offline_env


def cli(env: dict[str, str], cwd: Path, *args: str, stdin: str | None = None,
        timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "rclaude_infra", *args], cwd=cwd, env=env,
                          input=stdin, capture_output=True, text=True, timeout=timeout)


# -- init ---------------------------------------------------------------------------


def test_init_wizard_through_stdin(env: dict[str, str], tmp_path: Path) -> None:
    answers = "\n".join([
        "Bad_Name",            # refused, asked again
        "team-a",
        "eu-west-1",
        "t3.mega",             # refused, asked again
        "t3.large, m6i.large",
        "n",
        "3",
        "20",
        "10",
        "150",
    ]) + "\n"
    result = cli(env, tmp_path, "init", "--no-check", stdin=answers)
    assert result.returncode == 0, result.stderr
    assert "name: got 'Bad_Name'" in result.stdout
    assert "instance_types: got 't3.mega'" in result.stdout
    assert "Instance prices in eu-west-1" in result.stdout and "m7g.large" in result.stdout
    assert "idle $" in result.stdout  # the estimate before the file is written
    data = tomllib.loads((tmp_path / "rclaude.toml").read_text())
    assert data == {"name": "team-a", "region": "eu-west-1",
                    "instance_types": ["t3.large", "m6i.large"], "spot": False,
                    "max_instances": 3, "max_monthly_usd": 150.0,
                    "usage": {"tasks_per_day": 20.0, "task_minutes": 10.0}}
    # The file is a config the other verbs read.
    plan = cli(env, tmp_path, "plan", "--json")
    assert plan.returncode == 0, plan.stderr
    assert json.loads(plan.stdout)["name"] == "team-a"
    assert json.loads(plan.stdout)["config"]["instance_types"] == ["t3.large", "m6i.large"]


def test_init_scripted_with_flags_runs_check_and_keeps_an_existing_file(
    env: dict[str, str], tmp_path: Path,
) -> None:
    result = cli(env, tmp_path, "init-deployment", "--mode", "self-hosted", "--yes",
                 "--region", "us-west-2", "--instance-type", "t4g.medium", "--spot",
                 "--max-monthly-usd", "40")
    assert result.returncode == 0, result.stderr
    assert "Prerequisites for up" in result.stdout
    assert "Pulumi CLI" in result.stdout and "not found on PATH" in result.stdout
    data = tomllib.loads((tmp_path / "rclaude.toml").read_text())
    config = DeploymentConfig.from_mapping({k: v for k, v in data.items() if k != "name"})
    assert (config.region, config.instance_types, config.spot) == ("us-west-2",
                                                                   ("t4g.medium",), True)
    again = cli(env, tmp_path, "init", "--yes")
    assert again.returncode == 2 and "--force" in again.stderr
    bad = cli(env, tmp_path, "init", "--yes", "--force", "--max-instances", "0")
    assert bad.returncode == 2 and "max_instances: got 0" in bad.stderr
    assert cli(env, tmp_path, "init-deployment", "--mode", "hosted").returncode == 2


def test_init_mode_service_asks_where_the_service_is_reached(
    env: dict[str, str], tmp_path: Path,
) -> None:
    # After the region: its domain, then the zone that proves its certificate.
    answers = "\n".join(["dev", "", "agents.example.com", "Z0123456789ABC"] + [""] * 6) + "\n"
    result = cli(env, tmp_path, "init", "--mode", "service", "--no-check", stdin=answers)
    assert result.returncode == 0, result.stderr
    assert "the service $" in result.stdout  # the estimate shows its share of the idle cost
    data = tomllib.loads((tmp_path / "rclaude.toml").read_text())
    assert data["mode"] == "service"
    assert data["service"] == {"domain": "agents.example.com", "zone_id": "Z0123456789ABC"}
    plan = cli(env, tmp_path, "plan", "--json")
    assert plan.returncode == 0, plan.stderr
    types = {r["type"] for r in json.loads(plan.stdout)["resources"]}
    assert {"aws:lb/loadBalancer:LoadBalancer", "aws:rds/instance:Instance"} <= types
    refused = cli(env, tmp_path, "init", "--mode", "service", "--yes", "--force",
                  "--no-check")
    assert refused.returncode == 2 and "service.domain: got None" in refused.stderr
    plain = cli(env, tmp_path, "init-deployment", "--mode", "service", "--http-only", "--yes",
                "--force", "--no-check")
    assert plain.returncode == 0 and "in the clear" in plain.stderr


# -- stack verbs without a Pulumi CLI or credentials -----------------------------------


def test_check_reports_problems_and_exits_1(env: dict[str, str], tmp_path: Path) -> None:
    result = cli(env, tmp_path, "check", "--json")
    assert result.returncode == 1
    items = {i["name"]: i for i in json.loads(result.stdout)}
    assert items["Pulumi CLI"]["status"] == "problem"
    assert "get.pulumi.com" in items["Pulumi CLI"]["fix"]
    assert items["AWS credentials"]["status"] == "problem"


@pytest.mark.parametrize("verb", [["preview"], ["up", "--yes"], ["destroy", "--yes"]])
def test_engine_verbs_without_pulumi_say_how_to_install_it(
    env: dict[str, str], tmp_path: Path, verb: list[str],
) -> None:
    result = cli(env, tmp_path, *verb)
    assert result.returncode == 1
    assert "Pulumi CLI" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.parametrize("verb", ["up", "destroy"])
def test_up_and_destroy_need_yes_without_a_terminal(env: dict[str, str], tmp_path: Path,
                                                   verb: str) -> None:
    result = cli(env, tmp_path, verb, stdin="")
    assert result.returncode == 2
    assert "--yes" in result.stderr


def test_up_over_budget_is_refused_before_anything(env: dict[str, str], tmp_path: Path) -> None:
    result = cli(env, tmp_path, "up", "--yes", "--nat", "single", "--max-monthly-usd", "5")
    assert result.returncode == 1
    assert "estimated $" in result.stderr and "over" in result.stderr


# -- tasks on the local provider --------------------------------------------------------


def test_local_task_verbs_end_to_end(env: dict[str, str], tmp_path: Path) -> None:
    (tmp_path / "rclaude.toml").write_text('provider = "local"\n')
    ok = cli(env, tmp_path, "run", "--command",
             "echo hello; echo '[x] not markup'; echo data > $RCLAUDE_ARTIFACTS/a.txt",
             "--follow", "--task-id", "t-cli-ok")
    assert ok.returncode == 0, ok.stderr
    assert "hello" in ok.stdout and "[x] not markup" in ok.stdout
    assert "t-cli-ok SUCCEEDED" in ok.stderr

    failed = cli(env, tmp_path, "run", "--command", "echo about to fail; exit 3",
                 "--follow", "--json")
    assert failed.returncode == 3  # the task's own exit code
    lines = [json.loads(line) for line in failed.stdout.splitlines()]
    assert any(line.get("text") == "about to fail" for line in lines)
    assert lines[-1]["status"] == "FAILED" and lines[-1]["exit_code"] == 3

    started = cli(env, tmp_path, "run", "--command", "sleep 60", "--json")
    assert started.returncode == 0, started.stderr
    sleeper = json.loads(started.stdout)["task_id"]
    status = cli(env, tmp_path, "status", "--json")
    assert status.returncode == 0, status.stderr
    assert json.loads(status.stdout)["tasks"].get(sleeper) in ("PENDING", "RUNNING")
    stop = cli(env, tmp_path, "stop", sleeper, "--reason", "enough")
    assert stop.returncode == 0, stop.stderr
    followed = cli(env, tmp_path, "logs", sleeper, "--follow")
    assert followed.returncode == 143  # SIGTERM, as a shell reports it
    assert f"{sleeper} STOPPED: enough" in followed.stderr

    logs = cli(env, tmp_path, "logs", "t-cli-ok", "--json")
    texts = [json.loads(x)["text"] for x in logs.stdout.splitlines()]
    assert texts[texts.index("hello"):texts.index("hello") + 2] == ["hello", "[x] not markup"]
    listed = cli(env, tmp_path, "tasks", "--json")
    statuses = {t["task_id"]: t["status"] for t in json.loads(listed.stdout)}
    assert statuses["t-cli-ok"] == "SUCCEEDED" and statuses[sleeper] == "STOPPED"
    assert len(statuses) == 3
    only = cli(env, tmp_path, "tasks", "--status", "failed", "--json")
    assert [t["status"] for t in json.loads(only.stdout)] == ["FAILED"]
    table = cli(env, tmp_path, "tasks")
    assert "t-cli-ok" in table.stdout and "SUCCEEDED" in table.stdout

    result = cli(env, tmp_path, "result", "t-cli-ok", "--download", "out", "--json")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["status"] == "succeeded" and data["exit_code"] == 0
    assert (tmp_path / "out" / "t-cli-ok" / "artifacts" / "a.txt").read_text() == "data\n"
    assert (tmp_path / "out" / "t-cli-ok" / "result.json").is_file()


def test_run_interactive_opens_a_shell_in_the_local_task(env: dict[str, str],
                                                         tmp_path: Path) -> None:
    result = cli(env, tmp_path, "run", "--provider", "local", "--command",
                 "touch marker; sleep 60", "--task-id", "t-cli-shell", "--interactive",
                 stdin="sleep 1; ls > seen.txt; exit 4\n")
    assert result.returncode == 4, result.stderr
    (seen,) = (tmp_path / "home").rglob("t-cli-shell/workspace/seen.txt")
    assert "marker" in seen.read_text()
    cli(env, tmp_path, "stop", "t-cli-shell", "--provider", "local")


@pytest.mark.parametrize(("args", "expected"), [
    (["run", "--provider", "local", "--prompt", "x", "--command", "y"], "not allowed with"),
    (["run", "--provider", "local"], "one of the arguments --prompt --command is required"),
    (["run", "--provider", "local", "--command", "true", "--cpu", "5"], "cpu: got 5"),
    (["run", "--provider", "local", "--command", "true", "--env", "NOEQUALS"],
     "--env: got 'NOEQUALS'; allowed: KEY=VALUE"),
    (["run", "--provider", "local", "--command", "true", "--task-id", "a/b"], "task_id: got"),
    (["run", "--provider", "cloud", "--command", "true"], "invalid choice: 'cloud'"),
    (["tasks", "--provider", "local", "--status", "weird"], "allowed: one of QUEUED, PENDING"),
    (["tasks", "--provider", "local", "--limit", "0"], "an integer of at least 1"),
    (["logs", "t-1", "--provider", "local", "--since", "yesterday"], "--since: got"),
    (["status", "--outputs", "missing.json"], "--outputs: got 'missing.json'"),
])
def test_bad_task_input_exits_2_naming_the_field(env: dict[str, str], tmp_path: Path,
                                                 args: list[str], expected: str) -> None:
    result = cli(env, tmp_path, *args)
    assert result.returncode == 2, result.stderr
    assert expected in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "home" / "local").exists()  # nothing started


def test_an_unknown_task_is_an_error_not_a_traceback(env: dict[str, str],
                                                     tmp_path: Path) -> None:
    result = cli(env, tmp_path, "logs", "t-nope", "--provider", "local")
    assert result.returncode == 1
    assert "no task 't-nope'" in result.stderr and "Traceback" not in result.stderr


def test_bad_provider_in_the_config_file(env: dict[str, str], tmp_path: Path) -> None:
    (tmp_path / "rclaude.toml").write_text('provider = "cloud"\n')
    result = cli(env, tmp_path, "tasks")
    assert result.returncode == 2 and "provider: got 'cloud'" in result.stderr


# -- tasks on ECS (moto's server), from a stack's outputs --------------------------------


def test_ecs_task_verbs_from_outputs(env: dict[str, str], tmp_path: Path, aws: Any,
                                     stack: StackOutputs, moto_endpoint: str,
                                     request: pytest.FixtureRequest) -> None:
    env = {**env, "AWS_ENDPOINT_URL": moto_endpoint, "AWS_ACCESS_KEY_ID": "testing",
           "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}
    (tmp_path / "outputs.json").write_text(json.dumps(stack.to_dict()))
    where = ["--outputs", "outputs.json"]
    # moto would move the task to STOPPED on its own after four looks (emulator-gaps.md).
    hold_tasks_running(moto_endpoint)
    request.addfinalizer(lambda: hold_tasks_running(moto_endpoint, hold=False))
    started = cli(env, tmp_path, "run", "--command", "make test", "--json", *where)
    assert started.returncode == 0, started.stderr
    task_id = json.loads(started.stdout)["task_id"]
    arns = aws.client("ecs").list_tasks(cluster=stack.cluster_arn,
                                        startedBy=task_id)["taskArns"]
    assert len(arns) == 1
    status = cli(env, tmp_path, "status", "--json", *where)
    assert status.returncode == 0, status.stderr
    data = json.loads(status.stdout)
    assert data["outputs"]["cluster_arn"] == stack.cluster_arn
    assert [i["instance_type"] for i in data["instances"]] == ["t3.medium"]
    assert task_id in data["tasks"]
    table = cli(env, tmp_path, "status", *where)
    assert "t3.medium" in table.stdout and "on-demand" in table.stdout
    listed = cli(env, tmp_path, "tasks", "--json", *where)
    assert task_id in {t["task_id"] for t in json.loads(listed.stdout)}
    stopped = cli(env, tmp_path, "stop", task_id, *where)
    assert stopped.returncode == 0, stopped.stderr
    deadline = time.monotonic() + 30
    while True:
        listed = cli(env, tmp_path, "tasks", "--json", *where)
        state = {t["task_id"]: t for t in json.loads(listed.stdout)}[task_id]
        if state["status"] == "STOPPED" or time.monotonic() > deadline:
            break
    assert state["status"] == "STOPPED"
    missing = cli(env, tmp_path, "result", task_id, *where)
    assert missing.returncode == 1 and "no result" in missing.stderr


# -- output a user pipes -------------------------------------------------------------


def test_piped_output_never_shortens_a_name(env: dict[str, str], tmp_path: Path) -> None:
    """`plan | grep LaunchTemplate` at 80 columns: output that is not a terminal keeps
    every resource type, name and task id whole."""
    narrow = {**env, "COLUMNS": "80"}
    for verb in ("plan", "cost"):
        result = cli(narrow, tmp_path, verb)
        assert result.returncode == 0, result.stderr
        assert "…" not in result.stdout, verb
        assert "aws:ec2:LaunchTemplate" in result.stdout, verb
    task_id = "t-a-long-task-id-to-see-whole-0123"
    ran = cli(narrow, tmp_path, "run", "--provider", "local", "--command", "true",
              "--task-id", task_id, "--follow")
    assert ran.returncode == 0, ran.stderr
    listed = cli(narrow, tmp_path, "tasks", "--provider", "local")
    assert listed.returncode == 0, listed.stderr
    assert task_id in listed.stdout and "…" not in listed.stdout


# -- a newcomer's first steps ----------------------------------------------------------


def test_the_tours_local_run_of_this_directory_works(env: dict[str, str],
                                                      tmp_path: Path) -> None:
    """The README's tour: `run --provider local --command ... --repo . --follow`."""
    import shlex

    readme = (Path(__file__).parents[1] / "README.md").read_text()
    [line] = [x for x in readme.splitlines() if x.startswith("rclaude-infra run --provider "
                                                             "local")]
    argv = shlex.split(line.split("#", 1)[0])[1:]
    assert "--repo" in argv and argv[argv.index("--repo") + 1] == "."
    repo = tmp_path / "app"
    repo.mkdir()
    (repo / "test_ok.py").write_text("def test_ok():\n    assert True\n")
    git = ["git", "-c", "user.email=t@example.com", "-c", "user.name=t"]
    subprocess.run([*git, "init", "-q"], cwd=repo, check=True)
    subprocess.run([*git, "add", "."], cwd=repo, check=True)
    subprocess.run([*git, "commit", "-qm", "init"], cwd=repo, check=True)
    argv[argv.index("--command") + 1] = "ls test_ok.py"  # the tour's pytest, made light
    result = cli(env, repo, *argv)
    assert result.returncode == 0, result.stderr
    assert "test_ok.py" in result.stdout


def test_a_task_verb_without_the_provider_points_at_the_local_task(
        env: dict[str, str], tmp_path: Path) -> None:
    ran = cli(env, tmp_path, "run", "--provider", "local", "--command", "echo hi",
              "--task-id", "t-where-is-it")
    assert ran.returncode == 0, ran.stderr
    lost = cli(env, tmp_path, "logs", "t-where-is-it")  # no --provider; no Pulumi CLI here
    assert lost.returncode == 1
    assert lost.stderr.startswith("rclaude-infra: error: task t-where-is-it is a local task: "
                                  "add --provider local"), lost.stderr
    listed = cli(env, tmp_path, "tasks")
    assert "add --provider local" in listed.stderr
    # A path is no task id, even where it names a folder (tasks/../tasks is the root).
    path = cli(env, tmp_path, "logs", "../tasks")
    assert path.returncode != 0 and "is a local task" not in path.stderr
    # Not a local task, nor a local deployment: the stack's own error, unchanged.
    other = cli(env, tmp_path, "logs", "t-elsewhere", "--name", "prod")
    assert "Pulumi CLI" in other.stderr and "--provider local" not in other.stderr


def test_an_unknown_flag_shows_the_verbs_usage(env: dict[str, str], tmp_path: Path) -> None:
    result = cli(env, tmp_path, "plan", "--frobnicate")
    assert result.returncode == 2
    assert result.stderr.startswith("usage: rclaude-infra plan ")
    assert "rclaude-infra plan: error: unrecognized arguments: --frobnicate" in result.stderr


def test_the_readmes_bad_input_examples_are_what_the_cli_prints(
        env: dict[str, str], tmp_path: Path) -> None:
    readme = " ".join((Path(__file__).parents[1] / "README.md").read_text().split())
    flag = cli(env, tmp_path, "plan", "--nat", "double")
    assert flag.returncode == 2
    [shown] = [x for x in flag.stderr.splitlines() if "error" in x]
    assert shown in readme, shown
    (tmp_path / "rclaude.toml").write_text('nat = "double"\n')
    file = cli(env, tmp_path, "plan")
    assert file.returncode == 2
    assert file.stderr.strip() in readme, file.stderr
