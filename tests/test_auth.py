"""The three ways tasks sign in to Claude: an API key, a Claude subscription token, Bedrock.

The stack each mode plans (under the Pulumi mocks), what ``up`` refuses at the engine's
boundary (:mod:`fake_pulumi`), ``check()``, and local tasks with the real Claude Code.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
from fake_anthropic import FakeAnthropic, Reply
from fake_pulumi import FakePulumi
from plan_helpers import PlanFor

from rclaude_infra import (
    ConfigError,
    Deployment,
    DeploymentConfig,
    MissingCredentialError,
    TaskSpec,
)
from rclaude_infra._pulumi.documents import bedrock_statements
from rclaude_infra.tasks.model import TaskStatus

TOKEN = "sk-ant-oat01-PLANTED-oauth-token-0123456789"
KEY = "sk-ant-api03-AUTH-test-key-5566"


@pytest.fixture(autouse=True)
def _home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, aws: Any) -> Path:
    # AWS is moto's server (the aws fixture's endpoint): up() looks for ECS's
    # service-linked role before the engine runs.
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    home = tmp_path / "rclaude-home"
    monkeypatch.setenv("RCLAUDE_HOME", str(home))
    for name in ("ANTHROPIC_API_KEY", "CLAUDE_CODE_OAUTH_TOKEN", "PULUMI_CONFIG_PASSPHRASE"):
        monkeypatch.delenv(name, raising=False)
    return home


def container(plan: Any) -> dict[str, Any]:
    [definition] = plan.by_type("aws:ecs:TaskDefinition")
    [runner] = json.loads(definition.inputs["containerDefinitions"])
    return dict(runner)


def policy_of(plan: Any, role_part: str) -> dict[str, Any]:
    [found] = [r for r in plan.by_type("aws:iam:RolePolicy") if r.name.endswith(role_part)]
    return dict(json.loads(found.inputs["policy"]))


# -- what each mode plans -----------------------------------------------------------------


def test_api_key_mode_keeps_todays_secret_and_resource_names(plan_for: PlanFor) -> None:
    p = plan_for()
    assert [s.name for s in p.by_type("aws:secretsmanager:Secret")] == [
        "rclaude-dev-anthropic-api-key"]
    assert container(p)["secrets"][0]["name"] == "ANTHROPIC_API_KEY"


def test_oauth_token_mode_stores_the_token_and_hands_it_over_as_claude_expects(
        plan_for: PlanFor) -> None:
    p = plan_for(auth="oauth-token", api_key=TOKEN)
    [secret] = p.by_type("aws:secretsmanager:Secret")
    assert secret.name == "rclaude-dev-claude-oauth-token"
    assert secret.inputs["namePrefix"] == "rclaude/dev/claude-oauth-token-"
    [version] = p.by_type("aws:secretsmanager:SecretVersion")
    assert version.inputs["secretString"] == "[secret]"
    assert [s["name"] for s in container(p)["secrets"]] == ["CLAUDE_CODE_OAUTH_TOKEN"]
    assert TOKEN not in p.to_json()
    assert p.check_policies().ok


def test_bedrock_mode_has_no_secret_and_a_role_scoped_to_its_models(plan_for: PlanFor) -> None:
    p = plan_for(auth="bedrock", region="eu-west-1")
    assert p.by_type("aws:secretsmanager:Secret") == []
    runner = container(p)
    assert runner["secrets"] == []
    env = {e["name"]: e["value"] for e in runner["environment"]}
    assert env["CLAUDE_CODE_USE_BEDROCK"] == "1"
    assert env["ANTHROPIC_MODEL"] == "eu.anthropic.claude-sonnet-4-5-20250929-v1:0"
    assert env["ANTHROPIC_DEFAULT_HAIKU_MODEL"] == "eu.anthropic.claude-haiku-4-5-20251001-v1:0"
    assert env["AWS_REGION"] == "eu-west-1"
    execution = policy_of(p, "-execution")
    assert not any("secretsmanager" in json.dumps(s) for s in execution["Statement"])
    task = {s["Sid"]: s for s in policy_of(p, "-task")["Statement"]}
    invoke = task["InvokeClaudeOnBedrock"]
    assert invoke["Action"] == ["bedrock:InvokeModel", "bedrock:InvokeModelWithResponseStream"]
    assert all("claude-sonnet-4-5" in r or "claude-haiku-4-5" in r for r in invoke["Resource"])
    assert p.check_policies().ok  # ListInferenceProfiles on "*" is the one unscopable action
    assert p.outputs.get("secret_arn") is None


def test_bedrock_statements_scope_profiles_and_models() -> None:
    statements = bedrock_statements("aws", "us-east-1", "111122223333", (
        "us.anthropic.claude-sonnet-4-5-20250929-v1:0",
        "anthropic.claude-3-5-haiku-20241022-v1:0"))
    invoke, read, listing = statements
    assert invoke["Resource"] == [
        "arn:aws:bedrock:us-east-1:111122223333:inference-profile/"
        "us.anthropic.claude-sonnet-4-5-20250929-v1:0",
        # A profile routes across its geography's regions: its model, in any of them.
        "arn:aws:bedrock:*::foundation-model/anthropic.claude-sonnet-4-5-20250929-v1:0",
        # A plain model id is called in the stack's region only.
        "arn:aws:bedrock:us-east-1::foundation-model/anthropic.claude-3-5-haiku-20241022-v1:0",
    ]
    assert read["Action"] == "bedrock:GetInferenceProfile" and len(read["Resource"]) == 1
    assert listing == {"Sid": "ListInferenceProfiles", "Effect": "Allow",
                       "Action": "bedrock:ListInferenceProfiles", "Resource": "*"}


@pytest.mark.parametrize(("fields", "field"), [
    ({"auth": "password"}, "auth"),
    ({"auth": "bedrock", "bedrock_models": ["gpt-4"]}, "bedrock_models"),
    ({"auth": "bedrock", "bedrock_models": ["us.anthropic.claude-x", "us.anthropic.claude-x"]},
     "bedrock_models"),
    ({"bedrock_models": ["us.anthropic.claude-sonnet-4-5-20250929-v1:0"]}, "bedrock_models"),
])
def test_auth_fields_are_validated(fields: dict[str, Any], field: str) -> None:
    with pytest.raises(ConfigError) as info:
        DeploymentConfig(**fields)
    assert info.value.field == field


def test_default_bedrock_models_follow_the_regions_geography() -> None:
    assert DeploymentConfig(auth="bedrock", region="ap-northeast-1").models[0].startswith(
        "apac.anthropic.")
    assert DeploymentConfig(auth="bedrock", region="ca-central-1").models[0].startswith(
        "us.anthropic.")
    given = ("global.anthropic.claude-sonnet-4-5-20250929-v1:0",)
    assert DeploymentConfig(auth="bedrock", bedrock_models=given).models == given
    assert DeploymentConfig().models == ()


# -- up refuses a stack whose tasks could not sign in ----------------------------------


@pytest.mark.parametrize(("auth", "env"), [("api-key", "ANTHROPIC_API_KEY"),
                                           ("oauth-token", "CLAUDE_CODE_OAUTH_TOKEN")])
def test_up_without_the_credential_refuses_before_any_update(auth: str, env: str) -> None:
    fake = FakePulumi()
    d = Deployment("dev", DeploymentConfig(auth=auth), pulumi_command=fake)
    with pytest.raises(MissingCredentialError) as info:
        d.up(progress=False)
    assert info.value.env == env and env in str(info.value)
    assert "up" not in fake.verbs() and "config set-all" not in fake.verbs()


def test_up_with_the_token_stores_it_under_its_own_key(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CLAUDE_CODE_OAUTH_TOKEN", TOKEN)
    fake = FakePulumi()
    Deployment("dev", DeploymentConfig(auth="oauth-token"), pulumi_command=fake).up(
        progress=False)
    assert fake.config["rclaude:claude_oauth_token"] == {"value": TOKEN, "secret": True}
    assert "rclaude:anthropic_api_key" not in fake.config


def test_a_stack_that_holds_its_key_updates_without_it_again() -> None:
    fake = FakePulumi(stack_exists=True)
    fake.config["rclaude:anthropic_api_key"] = {"value": "[secret]", "secret": True}
    Deployment("dev", pulumi_command=fake).up(progress=False)
    assert "up" in fake.verbs()


def test_bedrock_needs_no_key_to_deploy() -> None:
    fake = FakePulumi()
    Deployment("dev", DeploymentConfig(auth="bedrock"), pulumi_command=fake).up(progress=False)
    assert "up" in fake.verbs()
    assert not any(k.endswith(("api_key", "oauth_token")) for k in fake.config)


def test_check_reports_the_missing_credential_with_the_fix(aws: Any) -> None:
    fake = FakePulumi()
    report = Deployment("dev", DeploymentConfig(image="ghcr.io/me/r:1", build_image=False),
                        aws_session=aws, pulumi_command=fake).check()
    item = report["Claude sign-in"]
    assert item.status == "problem" and "export ANTHROPIC_API_KEY" in item.fix
    given = Deployment("dev", DeploymentConfig(image="ghcr.io/me/r:1", build_image=False),
                       aws_session=aws, pulumi_command=fake, api_key=KEY).check()
    assert given["Claude sign-in"].status == "ok"
    bedrock = Deployment("dev", DeploymentConfig(auth="bedrock", image="ghcr.io/me/r:1",
                                                 build_image=False),
                         aws_session=aws, pulumi_command=fake).check()
    assert bedrock["Claude sign-in"].status == "ok"
    assert "us.anthropic.claude-sonnet" in bedrock["Claude sign-in"].detail


# -- locally: the same names, from the environment ---------------------------------------


def test_a_local_prompt_without_the_credential_is_refused_before_it_starts(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CLAUDE_CODE_OAUTH_TOKEN", TOKEN)
    with pytest.raises(MissingCredentialError, match="use auth='oauth-token'"):
        Deployment("dev", provider="local").run_task(TaskSpec(prompt="hi"))
    # A command needs no Claude credential.
    task = Deployment("dev", provider="local").run_task(TaskSpec(command="true"))
    assert task.wait(timeout=60).status is TaskStatus.SUCCEEDED


def test_a_bedrock_task_may_only_name_the_deployments_models() -> None:
    d = Deployment("dev", DeploymentConfig(auth="bedrock"), provider="local")
    with pytest.raises(ConfigError) as info:
        d.run_task(TaskSpec(prompt="hi", model="us.anthropic.claude-opus-4-1-20250805-v1:0"))
    assert info.value.field == "model" and "us.anthropic.claude-sonnet" in info.value.allowed


def test_local_bedrock_runners_get_the_switch_and_the_models() -> None:
    d = Deployment("dev", DeploymentConfig(auth="bedrock", region="eu-west-1"), provider="local")
    task = d.run_task(TaskSpec(command="echo $CLAUDE_CODE_USE_BEDROCK $AWS_REGION "
                               "$ANTHROPIC_MODEL"))
    assert task.wait(timeout=60).status is TaskStatus.SUCCEEDED
    assert ("1 eu-west-1 eu.anthropic.claude-sonnet-4-5-20250929-v1:0"
            in [line.text for line in task.logs()])


def test_a_subscription_token_signs_the_real_claude_code_in(
        fake_api: FakeAnthropic, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ANTHROPIC_API_KEY")
    monkeypatch.setenv("CLAUDE_CODE_OAUTH_TOKEN", TOKEN)
    fake_api.script = [Reply.say("signed in")]
    d = Deployment("dev", DeploymentConfig(auth="oauth-token"), provider="local")
    task = d.run_task(TaskSpec(prompt="hi"))
    assert task.wait(timeout=120).status is TaskStatus.SUCCEEDED, task.reason
    headers = {k.lower(): v for k, v in fake_api.turns[0].headers.items()}
    assert headers["authorization"] == f"Bearer {TOKEN}" and "x-api-key" not in headers
    assert task.agent is not None and task.agent.text == "signed in"
    assert os.environ["CLAUDE_CODE_OAUTH_TOKEN"] == TOKEN
