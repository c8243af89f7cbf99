"""The command line, run as users run it: in a subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest


def run(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": "200"}
    return subprocess.run(
        [sys.executable, "-m", "rclaude_infra", *args],
        capture_output=True, text=True, cwd=cwd, timeout=120, env=env,
    )


def test_plan_prints_a_table(tmp_path: Path) -> None:
    result = run("plan", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "aws:ec2:LaunchTemplate" in result.stdout
    assert "offline plan, nothing deployed" in result.stdout
    assert result.stderr == ""


def test_plan_as_terraform_json_for_scanners(tmp_path: Path) -> None:
    result = run("plan", "--terraform-json", "--security-profile", "strict", "--nat", "single",
                 cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    types = {r["type"] for r in data["planned_values"]["root_module"]["resources"]}
    assert {"aws_kms_key", "aws_flow_log", "aws_s3_bucket_notification"} <= types
    assert data["configuration"]["provider_config"]["aws"]["expressions"]["region"] == {
        "constant_value": "us-east-1"}


def test_plan_json_with_flags(tmp_path: Path) -> None:
    result = run(
        "plan", "--json", "--name", "ci", "--region", "eu-west-1", "--nat", "single",
        "--instance-type", "t4g.medium", "--instance-type", "t4g.large", "--no-spot",
        "--max-instances", "3", "--image", "ghcr.io/me/runner:1", cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["name"] == "ci"
    cfg = data["config"]
    assert (cfg["region"], cfg["nat"], cfg["spot"], cfg["max_instances"]) == (
        "eu-west-1", "single", False, 3)
    assert cfg["instance_types"] == ["t4g.medium", "t4g.large"]
    assert cfg["build_image"] is False
    types = [r["type"] for r in data["resources"]]
    assert "aws:ec2/natGateway:NatGateway" in types
    assert "awsx:ecr:Image" not in types


def test_build_image_remote_from_the_command_line(tmp_path: Path) -> None:
    planned = run("plan", "--json", "--build-image", "remote", cwd=tmp_path)
    assert planned.returncode == 0, planned.stderr
    data = json.loads(planned.stdout)
    assert data["config"]["build_image"] == "remote"
    assert "aws:codebuild/project:Project" in [r["type"] for r in data["resources"]]
    (tmp_path / "rclaude.toml").write_text('build_image = "remote"\n')
    cost = json.loads(run("cost", "--json", cwd=tmp_path).stdout)
    assert cost["plan"]["config"]["build_image"] == "remote"
    components = [c["name"] for r in cost["cost"]["projects"][0]["breakdown"]["resources"]
                  for c in r["costComponents"]]
    assert any(name.startswith("Image builds") for name in components)
    both = run("plan", "--build-image", "remote", "--image", "ghcr.io/me/r:1", cwd=tmp_path)
    assert both.returncode != 0
    assert "--build-image: got 'remote'; allowed: omitted with --image" in both.stderr
    wrong = run("plan", "--build-image", "docker", cwd=tmp_path)
    assert wrong.returncode != 0 and "invalid choice: 'docker'" in wrong.stderr


def test_config_file_and_flag_override(tmp_path: Path) -> None:
    (tmp_path / "rclaude.toml").write_text(
        'name = "fromfile"\nregion = "us-west-2"\nmax_instances = 8\n'
        'instance_types = ["m5.large"]\n[tags]\nteam = "ml"\n'
    )
    result = run("plan", "--json", "--max-instances", "2", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["name"] == "fromfile"
    assert data["config"]["region"] == "us-west-2"
    assert data["config"]["max_instances"] == 2
    assert data["config"]["tags"] == {"team": "ml"}


@pytest.mark.parametrize(
    ("args", "config", "expected"),
    [
        (["plan", "--nat", "double"], None, "argument --nat: invalid choice"),
        (["plan", "--max-instances", "many"], None, "argument --max-instances: invalid int"),
        (["plan", "--region", "us-east-9"], None, "error: region: got 'us-east-9'"),
        (["plan", "--instance-type", "t3.mega"], None, "error: instance_types: got 't3.mega'"),
        (["plan", "--name", "Bad_Name"], None, "error: name: got 'Bad_Name'"),
        (["plan"], "regoin = 'us-east-1'\n", "error: regoin: got 'us-east-1'; allowed: a "
         "DeploymentConfig field"),
        (["plan"], "region = \n", "error: --config: got 'rclaude.toml'; allowed: valid TOML"),
        (["plan", "--config", "missing.toml"], None, "error: --config: got 'missing.toml'"),
        (["deploy-everything"], None, "invalid choice"),
    ],
)
def test_bad_input_exits_2_naming_the_field(
    tmp_path: Path, args: list[str], config: str | None, expected: str
) -> None:
    if config is not None:
        (tmp_path / "rclaude.toml").write_text(config)
    result = run(*args, cwd=tmp_path)
    assert result.returncode == 2
    assert expected in result.stderr
    assert "Traceback" not in result.stderr
    assert result.stdout == ""


def test_debug_shows_the_traceback(tmp_path: Path) -> None:
    result = run("--debug", "plan", "--region", "nowhere", cwd=tmp_path)
    assert result.returncode != 0
    assert "Traceback" in result.stderr and "ConfigError" in result.stderr


def test_console_script_is_installed() -> None:
    exe = Path(sys.executable).with_name("rclaude-infra")
    assert exe.exists(), "pip install -e . should install the rclaude-infra script"
    result = subprocess.run([str(exe), "--version"], capture_output=True, text=True)
    assert result.returncode == 0 and result.stdout.startswith("rclaude-infra ")


def test_cost_shows_plan_and_cost_together(tmp_path: Path) -> None:
    result = run("cost", "--tasks-per-day", "20", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "aws:ec2:LaunchTemplate" in out          # the plan
    assert "idle $0.50/month, per task $" in out    # the cost
    assert "for 20 tasks/day" in out
    assert "t3a.medium" in out and "$30.37" in out  # on-demand vs spot per type
    assert "* assumed: spot" in out


def test_cost_json(tmp_path: Path) -> None:
    result = run("cost", "--json", "--spot", "--nat", "single", "--tasks-per-day", "0",
                 cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["plan"]["config"]["nat"] == "single"
    assert round(data["cost"]["summary"]["idleMonthlyCost"], 2) == 37.00
    assert {row["instance_type"] for row in data["instance_prices"]} == {"t3.medium",
                                                                         "t3a.medium"}
    assert data["budget"] == {"max_monthly_usd": None, "over": False}


def test_cost_over_budget_exits_1(tmp_path: Path) -> None:
    result = run("cost", "--nat", "single", "--max-monthly-usd", "10", cwd=tmp_path)
    assert result.returncode == 1
    assert "over budget: estimated $" in result.stderr
    assert "rclaude-dev-nat-0 NAT gateway $32.85" in result.stderr


def test_cost_in_every_shipped_region_and_outside_them(tmp_path: Path) -> None:
    ok = run("cost", "--json", "--region", "eu-west-1", cwd=tmp_path)
    assert ok.returncode == 0, ok.stderr
    lines = json.loads(ok.stdout)["cost"]["projects"][0]["breakdown"]["resources"]
    assert lines
    refused = run("cost", "--region", "af-south-1", cwd=tmp_path)
    assert refused.returncode == 1
    assert "--live --other-rates-from us-east-1" in refused.stderr


def test_cost_usage_from_the_config_file(tmp_path: Path) -> None:
    (tmp_path / "rclaude.toml").write_text("[usage]\ntasks_per_day = 40\ntask_minutes = 30\n")
    result = run("cost", "--json", "--task-minutes", "10", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    usage = json.loads(result.stdout)["cost"]["projects"][0]["usage"]
    assert (usage["tasks_per_day"], usage["task_minutes"]) == (40, 10)
    bad = run("cost", "--concurrency", "0", cwd=tmp_path)
    assert bad.returncode == 2 and "usage.concurrency: got 0" in bad.stderr


def test_every_config_and_usage_field_has_its_flag() -> None:
    """The flags are made from the fields: a new DeploymentConfig or Usage field is a flag
    at once, typed as its field, and a flag sets its field."""
    import argparse

    import attrs

    from rclaude_infra import DeploymentConfig, Usage
    from rclaude_infra.cli._common import config_arguments, load, usage_arguments

    parser = argparse.ArgumentParser()
    config_arguments(parser)
    usage_arguments(parser)
    values = {"region": "eu-west-1", "instance_types": ["m5.large"], "spot": "--no-spot",
              "on_demand_base": "1", "min_instances": "1", "max_instances": "3",
              "az_count": "3", "nat": "single", "root_volume_gb": "40",
              "log_retention_days": "90", "results_expire_days": "7", "task_cpu": "512",
              "task_memory": "1024", "build_image": "remote", "egress_ports": ["443", "22"],
              "retain_results": "--retain-results", "auth": "bedrock",
              "interactive_tasks": "--interactive-tasks", "task_events": "--task-events",
              "bedrock_models": ["us.anthropic.claude-haiku-4-5-20251001-v1:0"],
              "vpc_id": "vpc-0123abcd", "subnet_ids": ["subnet-0a1b2c3d", "subnet-4e5f6a7b"],
              "image": None, "security_profile": "strict", "mode": "self-hosted"}
    argv: list[str] = []
    for name, value in values.items():
        flag = "--" + name.replace("_", "-")
        if isinstance(value, list):
            for item in value:
                argv += [flag.removesuffix("s"), item]
        elif value is not None and value.startswith("--"):
            argv.append(value)
        elif value is not None:
            argv += [flag, value]
    usage = {f.name: "7" for f in attrs.fields(Usage)}
    argv += [x for name, v in usage.items() for x in ("--" + name.replace("_", "-"), v)]
    nat_free = list(argv)
    nat_free[nat_free.index("--nat") + 1] = "none"  # an existing VPC has no stack NAT
    config = load(parser.parse_args(nat_free)).config
    covered = {f.name for f in attrs.fields(DeploymentConfig)} - {"tags", "usage",
                                                                   "max_monthly_usd", "service"}
    assert covered == set(values)
    assert config.region == "eu-west-1" and config.instance_types == ("m5.large",)
    assert config.spot is False and config.retain_results is True
    assert config.interactive_tasks is True
    assert config.egress_ports == (443, 22) and config.build_image == "remote"
    assert config.auth == "bedrock" and config.log_retention_days == 90
    assert config.security_profile == "strict"
    assert config.subnet_ids == ("subnet-0a1b2c3d", "subnet-4e5f6a7b")
    assert attrs.asdict(config.usage) == {name: 7 for name in usage}
    with pytest.raises(SystemExit):
        parser.parse_args(["--log-retention-days", "8"])  # not one CloudWatch offers


def test_every_service_field_has_its_flag_and_mode_service_reads_them() -> None:
    import argparse

    import attrs

    from rclaude_infra import ServiceConfig
    from rclaude_infra.cli._common import config_arguments, load
    from rclaude_infra.errors import ConfigError

    parser = argparse.ArgumentParser()
    config_arguments(parser)
    assert {k.removeprefix("service__") for k in vars(parser.parse_args([]))
            if k.startswith("service__")} == {f.name for f in attrs.fields(ServiceConfig)}
    argv = ["--mode", "service", "--domain", "agents.example.com", "--certificate-arn",
            "arn:aws:acm:us-east-1:123456789012:certificate/"
            "12345678-1234-1234-1234-123456789012", "--db-instance-class", "db.t3.large",
            "--db-storage-gb", "50", "--db-backup-days", "14", "--db-multi-az",
            "--api-count", "3", "--worker-count", "2", "--service-cpu", "1024",
            "--service-memory", "2048"]
    service = load(parser.parse_args(argv)).config.service
    assert service is not None and service.domain == "agents.example.com"
    assert (service.db_storage_gb, service.db_backup_days, service.db_multi_az) == (50, 14, True)
    assert (service.api_count, service.worker_count, service.cpu, service.memory) == (
        3, 2, 1024, 2048)
    with pytest.raises(ConfigError) as raised:
        load(parser.parse_args(["--mode", "service", "--domain", "agents.example.com"]))
    assert raised.value.field == "service.zone_id"
    assert load(parser.parse_args(["--mode", "service", "--http-only"])).config.service == (
        ServiceConfig(http_only=True))
