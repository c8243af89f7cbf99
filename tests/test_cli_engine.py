"""The engine verbs (preview, up, destroy, status from the state) through the CLI's own
main(), with the recording PulumiCommand in place of the `pulumi` processes (the only
thing replaced): what users see and which exit codes they get."""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any

import pytest
from fake_pulumi import FakePulumi, failure_events

from rclaude_infra import Deployment
from rclaude_infra.cli import _common, main


@pytest.fixture(name="fake")
def _fake(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, aws: Any) -> FakePulumi:
    # AWS is moto's server (the aws fixture's endpoint): destroy asks ECS for tasks to stop.
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("RCLAUDE_HOME", str(tmp_path / "home"))
    monkeypatch.chdir(tmp_path)
    for name in ("PULUMI_CONFIG_PASSPHRASE", "PULUMI_CONFIG_PASSPHRASE_FILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-api03-CLI-engine-key")
    fake = FakePulumi()
    monkeypatch.setattr(_common, "Deployment",
                        functools.partial(Deployment, pulumi_command=fake))
    return fake


def test_preview_up_status_destroy(fake: FakePulumi, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["preview", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["changes"]
    assert main(["up", "--yes", "--json"]) == 0
    outputs = json.loads(capsys.readouterr().out)
    assert outputs["bucket"] == "rclaude-dev-results-9a8b7c6"
    assert "up" in fake.verbs()

    assert main(["up", "--yes", "--no-progress"]) == 0
    out, err = capsys.readouterr()
    assert "Stack outputs" in out and "rclaude-dev-results-9a8b7c6" in out
    assert "/month idle" in err  # the estimate, said before deploying

    assert main(["destroy", "--yes", "--remove", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == {"destroyed": "dev", "removed": True}
    assert "destroy" in fake.verbs() and "stack rm" in fake.verbs()


def test_a_failed_up_names_the_resource_and_exits_1(
    fake: FakePulumi, capsys: pytest.CaptureFixture[str],
) -> None:
    fake.events = failure_events
    assert main(["up", "--yes", "--no-progress"]) == 1
    err = capsys.readouterr().err
    assert "rclaude-infra: error:" in err and "Traceback" not in err
    assert "valid fully-formed launch template" in err  # the provider's own words


def test_a_mandatory_policy_violation_stops_up_before_the_engine(
    fake: FakePulumi, capsys: pytest.CaptureFixture[str], ssh_open_to_the_world: str,
) -> None:
    assert main(["up", "--yes", "--no-progress"]) == 1
    err = capsys.readouterr().err
    assert "sg-no-ingress-from-anywhere" in err and ssh_open_to_the_world in err
    assert "up" not in fake.verbs()


def test_up_with_a_progress_bar(fake: FakePulumi, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["up", "--yes", "--progress"]) == 0
    out = capsys.readouterr().out
    assert "up dev" in out and "2/2" in out and "changed in" in out
