"""Deployment.check(): the AWS half against moto's server, the CLI half with a bare PATH."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from fake_pulumi import FakePulumi

from rclaude_infra import CheckReport, Deployment, DeploymentConfig


@pytest.fixture(name="bin_dir")
def _bin_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A PATH with nothing on it but what a test puts there."""
    path = tmp_path / "bin"
    path.mkdir()
    monkeypatch.setenv("PATH", str(path))
    return path


def _docker(bin_dir: Path, exit_code: int) -> None:
    script = bin_dir / "docker"
    script.write_text(f"#!/bin/sh\nexit {exit_code}\n")
    script.chmod(0o755)


def test_check_with_no_pulumi_and_a_running_docker(aws: Any, bin_dir: Path) -> None:
    _docker(bin_dir, 0)
    report = Deployment("dev", DeploymentConfig(), aws_session=aws).check()
    assert isinstance(report, CheckReport)
    cli = report["Pulumi CLI"]
    assert cli.status == "problem" and "get.pulumi.com" in cli.fix
    credentials = report["AWS credentials"]
    assert credentials.status == "ok" and "account 123456789012" in credentials.detail
    assert report["region enabled"].status == "ok"
    assert report["ECS service-linked role"].status in ("ok", "warning")
    assert report["spot vCPU quota"].status in ("ok", "problem", "warning")
    assert report["Docker"].status == "ok"
    assert not report.ok and report.problems[0].name == "Pulumi CLI"
    assert "Pulumi CLI" in str(report) and "<table>" in report._repr_html_()


def test_check_reports_a_stopped_docker_only_when_building(aws: Any, bin_dir: Path) -> None:
    _docker(bin_dir, 1)
    building = Deployment("dev", DeploymentConfig(), aws_session=aws).check()
    assert building["Docker"].status == "problem"
    assert "image=" in building["Docker"].fix
    prebuilt = Deployment("dev", DeploymentConfig(image="ghcr.io/me/r:1", build_image=False),
                          aws_session=aws).check()
    with pytest.raises(KeyError):
        prebuilt["Docker"]


def test_check_with_a_pulumi_cli(aws: Any, bin_dir: Path) -> None:
    report = Deployment("dev", DeploymentConfig(image="ghcr.io/me/r:1", build_image=False),
                        aws_session=aws, pulumi_command=FakePulumi(version="3.205.0")).check()
    assert report["Pulumi CLI"].status == "ok"
    assert report["Pulumi CLI"].detail == "pulumi 3.205.0"


def test_check_without_credentials(bin_dir: Path, monkeypatch: pytest.MonkeyPatch,
                                   tmp_path: Path) -> None:
    import boto3

    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN",
                 "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    session = boto3.Session(region_name="us-east-1")
    report = Deployment("dev", aws_session=session).check()
    credentials = report["AWS credentials"]
    assert credentials.status == "problem" and "aws configure" in credentials.fix
    assert [i.name for i in report.items][:2] == ["Pulumi CLI", "AWS credentials"]
