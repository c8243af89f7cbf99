"""A recognisable API key is planted and looked for everywhere the library writes."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest

from rclaude_infra import DeploymentConfig, PlanError, estimate_cost, plan

KEY = "sk-ant-api03-PLANTED-hygiene-7Qw9Zx"


def test_the_key_appears_nowhere_the_plan_goes(caplog: pytest.LogCaptureFixture) -> None:
    from rich.console import Console

    caplog.set_level(logging.DEBUG)
    p = plan(DeploymentConfig(), name="dev", api_key=KEY)
    version = p.one("aws:secretsmanager:SecretVersion")
    assert version.inputs["secretString"] == "[secret]"

    console = Console(record=True, width=200)
    console.print(p)
    console.print(estimate_cost(p))
    console.print(p.check_policies())
    written = [
        p.to_json(), str(p), repr(p), json.dumps(dict(p.outputs)), console.export_text(),
        estimate_cost(p).to_json(), p.check_policies().to_json(),
        json.dumps(p.config.to_stack_config()), caplog.text,
    ]
    for text in written:
        assert KEY not in text
    definition = json.loads(p.one("aws:ecs:TaskDefinition").inputs["containerDefinitions"])
    assert all(KEY not in json.dumps(e) for e in definition[0]["environment"])


def test_the_key_is_not_in_error_messages(monkeypatch: pytest.MonkeyPatch) -> None:
    from rclaude_infra._pulumi import program

    def broken(self: object, *args: object) -> None:
        raise RuntimeError("the capacity provider could not be declared")

    monkeypatch.setattr(program.RclaudeStack, "_capacity", broken)
    with pytest.raises(PlanError) as info:
        plan(DeploymentConfig(), name="dev", api_key=KEY)
    chain = []
    error: BaseException | None = info.value
    while error is not None:
        chain.append(str(error))
        error = error.__cause__ or error.__context__
    assert all(KEY not in message for message in chain)


def test_the_key_in_the_environment_stays_out_of_cli_output(tmp_path: Path) -> None:
    env = {**os.environ, "ANTHROPIC_API_KEY": KEY, "COLUMNS": "200"}
    for args in (["plan", "--json", "--policies"], ["cost", "--json"], ["plan"], ["cost"]):
        result = subprocess.run([sys.executable, "-m", "rclaude_infra", *args],
                                capture_output=True, text=True, env=env, cwd=tmp_path)
        assert result.returncode == 0, result.stderr
        assert KEY not in result.stdout and KEY not in result.stderr


def test_the_key_stays_out_of_the_task_verbs_output_and_files(tmp_path: Path) -> None:
    """A task given the key as a secret: no verb prints it, no task file holds it (the
    command itself does not print it; what a command prints is the user's)."""
    home = tmp_path / "home"
    env = {**os.environ, "ANTHROPIC_API_KEY": KEY, "GITHUB_TOKEN": KEY, "COLUMNS": "200",
           "RCLAUDE_HOME": str(home)}

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        result = subprocess.run([sys.executable, "-m", "rclaude_infra", *args,
                                 "--provider", "local"], capture_output=True, text=True,
                                env=env, cwd=tmp_path, timeout=120)
        assert KEY not in result.stdout and KEY not in result.stderr, args
        return result

    run = cli("run", "--command", 'test -n "$GITHUB_TOKEN" && echo has-token',
              "--secret", "GITHUB_TOKEN", "--task-id", "t-hygiene", "--follow", "--json")
    assert run.returncode == 0, run.stderr
    assert "has-token" in run.stdout  # the secret did reach the task
    for args in (["logs", "t-hygiene", "--json"], ["logs", "t-hygiene"], ["tasks", "--json"],
                 ["tasks"], ["status", "--json"], ["result", "t-hygiene", "--json",
                                                   "--download", "out"]):
        assert cli(*args).returncode == 0
    for path in [*home.rglob("*"), *(tmp_path / "out").rglob("*")]:
        if path.is_file():
            assert KEY.encode() not in path.read_bytes(), path
