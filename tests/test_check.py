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
    assert "Pulumi CLI" in str(report) and "Pulumi CLI" in report._repr_html_()


def test_check_reports_a_stopped_docker_only_when_building(aws: Any, bin_dir: Path) -> None:
    _docker(bin_dir, 1)
    building = Deployment("dev", DeploymentConfig(), aws_session=aws).check()
    assert building["Docker"].status == "problem"
    assert "build_image='remote'" in building["Docker"].fix
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


QUOTA = "Concurrently running builds for Linux/Small environment"


def _codebuild_quota(aws: Any, value: float | None) -> None:
    """What Service Quotas lists for CodeBuild (moto has only VPC quotas); the shape of
    ListServiceQuotas in the Service Quotas API reference."""
    from moto_stack import answer

    quotas = [] if value is None else [{
        "ServiceCode": "codebuild", "QuotaCode": "L-2DC20C30", "QuotaName": QUOTA,
        "Value": value, "Unit": "None", "Adjustable": True, "GlobalQuota": False}]
    answer(aws, ["ListServiceQuotas"], lambda _: (200, {"Quotas": quotas}),
           service="service-quotas")


def test_a_remote_build_needs_codebuild_not_docker(aws: Any, bin_dir: Path) -> None:
    _docker(bin_dir, 1)  # a notebook host without a Docker engine
    _codebuild_quota(aws, 20)
    report = Deployment("dev", DeploymentConfig(build_image="remote"), aws_session=aws).check()
    with pytest.raises(KeyError):
        report["Docker"]
    assert report["CodeBuild"].status == "ok" and "us-east-1" in report["CodeBuild"].detail
    quota = report["CodeBuild build quota"]
    assert quota.status == "ok" and quota.detail == f"{QUOTA}: 20"


def test_a_new_account_without_build_quota_is_told_what_to_request(aws: Any,
                                                                   bin_dir: Path) -> None:
    _codebuild_quota(aws, 0)
    report = Deployment("dev", DeploymentConfig(build_image="remote"), aws_session=aws).check()
    quota = report["CodeBuild build quota"]
    assert quota.status == "problem" and QUOTA in quota.fix
    assert quota in report.problems


def test_an_unlisted_build_quota_is_a_warning(aws: Any, bin_dir: Path) -> None:
    _codebuild_quota(aws, None)
    report = Deployment("dev", DeploymentConfig(build_image="remote"), aws_session=aws).check()
    assert report["CodeBuild build quota"].status == "warning"
