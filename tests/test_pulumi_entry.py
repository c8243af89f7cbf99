"""`pulumi up` from the repository root: Pulumi.yaml and programs/ecs_ec2, under mocks."""

from __future__ import annotations

import json
import runpy
from pathlib import Path

import pulumi
import pytest
import yaml

from rclaude_infra import SECRET_MASK, DeploymentConfig, PlanError, plan
from rclaude_infra._pulumi.mock_plan import record_program

ROOT = Path(__file__).resolve().parent.parent
KEY = "sk-ant-api03-ENTRY-test-9f8e7d"


def test_pulumi_yaml_points_at_the_program() -> None:
    project = yaml.safe_load((ROOT / "Pulumi.yaml").read_text())
    assert project["runtime"]["name"] == "python"
    main = ROOT / project["main"]
    assert (main / "__main__.py").is_file()


def _run_entry(stack: str, config: dict[str, str], secret_keys: list[str]) -> tuple[list, dict]:
    def program() -> None:
        pulumi.runtime.set_all_config(config, secret_keys)
        runpy.run_path(str(ROOT / "programs" / "ecs_ec2" / "__main__.py"), run_name="__main__")

    return record_program(stack, config.get("rclaude:region", "us-east-1"), program)


def test_stack_config_gives_the_same_stack_as_the_library() -> None:
    cfg = DeploymentConfig(
        region="eu-west-1", instance_types=("t4g.medium", "t4g.large"), nat="single",
        max_instances=6, tags={"team": "ml"},
    )
    stack_config = {**cfg.to_stack_config(), "rclaude:anthropic_api_key": KEY}
    resources, outputs = _run_entry("prod", stack_config, ["rclaude:anthropic_api_key"])
    expected = plan(cfg, name="prod", api_key=KEY)
    assert [(r.type, r.name) for r in resources] == [(r.type, r.name) for r in expected]
    assert outputs == dict(expected.outputs)
    version = next(r for r in resources if r.type.endswith("SecretVersion"))
    assert version.inputs["secretString"] == SECRET_MASK
    assert KEY not in json.dumps([r.to_dict() for r in resources])


def test_plain_string_config_and_aws_region_fallback() -> None:
    # What `pulumi config set aws:region eu-central-1` and
    # `pulumi config set rclaude:max_instances 3` store.
    resources, outputs = _run_entry(
        "dev", {"aws:region": "eu-central-1", "rclaude:max_instances": "3",
                "rclaude:anthropic_api_key": KEY}, ["rclaude:anthropic_api_key"]
    )
    assert outputs["region"] == "eu-central-1"
    group = next(r for r in resources if r.type == "aws:autoscaling/group:Group")
    assert group.inputs["maxSize"] == 3


def test_bad_stack_config_names_the_field() -> None:
    with pytest.raises(PlanError, match="nat: got 'sometimes'"):
        _run_entry("dev", {"rclaude:nat": "sometimes"}, [])


def test_an_update_without_the_credential_fails_before_creating_anything() -> None:
    with pytest.raises(PlanError, match="pulumi config set --secret rclaude:anthropic_api_key"):
        _run_entry("dev", {"rclaude:max_instances": "3"}, [])
    with pytest.raises(PlanError, match="rclaude:claude_oauth_token"):
        _run_entry("dev", {"rclaude:auth": "oauth-token"}, [])
    resources, _ = _run_entry("dev", {"rclaude:auth": "bedrock"}, [])
    assert not [r for r in resources if "secretsmanager" in r.type]


def test_a_service_stack_takes_its_settings_from_the_stack_secret() -> None:
    cfg = DeploymentConfig(mode="service", service={"http_only": True})
    settings = json.dumps({"RCLAUDE_SECRETS_KEY": "k" * 43 + "="})
    base = {**cfg.to_stack_config(), "rclaude:anthropic_api_key": KEY}
    with pytest.raises(PlanError, match="rclaude:service_settings"):
        _run_entry("dev", base, ["rclaude:anthropic_api_key"])
    resources, outputs = _run_entry(
        "dev", {**base, "rclaude:service_settings": settings},
        ["rclaude:anthropic_api_key", "rclaude:service_settings"])
    [value] = [r for r in resources if r.name.endswith("-service-settings-value")]
    assert value.inputs["secretString"] == SECRET_MASK
    assert "k" * 43 not in json.dumps([r.to_dict() for r in resources])
    assert outputs["service_url"].startswith("http://")
