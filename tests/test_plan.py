"""The offline plan: isolation, event loops, lookups and renderings."""

from __future__ import annotations

import asyncio
import json

import pytest

from rclaude_infra import ConfigError, Deployment, DeploymentConfig, Plan, PlanError, plan


def test_two_plans_in_a_row_are_each_correct() -> None:
    first = plan(DeploymentConfig(nat="single"), name="one")
    second = plan(DeploymentConfig(region="eu-west-1"), name="two")
    assert len(first.by_type("aws:ec2:NatGateway")) == 1
    assert not second.by_type("aws:ec2:NatGateway")
    assert {r.name for r in second if r.parent is None} == {"two", "rclaude-two-aws"}
    assert all("rclaude-one" not in r.name for r in second)
    assert second.one("pulumi:providers:aws").inputs["region"] == "eu-west-1"
    zones = [s.inputs["availabilityZone"] for s in second.by_type("aws:ec2:Subnet")]
    assert zones == ["eu-west-1a", "eu-west-1b"]


def test_plan_is_deterministic() -> None:
    cfg = DeploymentConfig(nat="per-az", az_count=3)
    assert plan(cfg).to_json() == plan(cfg).to_json()


def test_plan_leaves_no_pulumi_state_in_the_caller() -> None:
    import pulumi.runtime.settings as settings

    before = (settings.SETTINGS.monitor, settings.get_root_resource())
    plan(DeploymentConfig())
    assert (settings.SETTINGS.monitor, settings.get_root_resource()) == before


def test_plan_works_inside_a_running_event_loop() -> None:
    async def notebook_cell() -> Plan:
        asyncio.get_running_loop()  # as in Jupyter, a loop is running
        return plan(DeploymentConfig(), name="nb")

    result = asyncio.run(notebook_cell())
    assert result.one("rclaude:infra:Stack").name == "nb"


def test_deployment_plan_uses_its_name_and_config() -> None:
    d = Deployment("team-a", DeploymentConfig(region="us-west-2"))
    p = d.plan()
    assert p.name == "team-a" and p.config.region == "us-west-2"
    assert p.outputs["log_group"] == "/rclaude/team-a"
    assert repr(d) == "Deployment('team-a', region='us-west-2', provider='ecs-ec2')"


@pytest.mark.parametrize("bad", ["Team", "x" * 40, "-a"])
def test_bad_names_are_refused_before_planning(bad: str) -> None:
    with pytest.raises(ConfigError, match=r"^name: "):
        Deployment(bad)
    with pytest.raises(ConfigError, match=r"^name: "):
        plan(DeploymentConfig(), name=bad)


def test_plan_refuses_what_is_not_a_config() -> None:
    with pytest.raises(ConfigError, match=r"^config: "):
        plan({"region": "us-east-1"})  # type: ignore[arg-type]


def test_lookups(default_plan: Plan) -> None:
    subnets = default_plan.by_type("aws:ec2/subnet:Subnet")
    assert subnets == default_plan.by_type("aws:ec2:Subnet")
    assert default_plan["rclaude-dev-vpc"].type == "aws:ec2/vpc:Vpc"
    with pytest.raises(KeyError):
        default_plan["nope"]
    with pytest.raises(LookupError, match="expected one aws:ec2:Subnet, the plan has 2"):
        default_plan.one("aws:ec2:Subnet")
    assert default_plan.types()["aws:ec2/subnet:Subnet"] == 2
    assert len(default_plan) == len(list(default_plan))
    stack = default_plan.stack_resources
    assert len(stack) == len(default_plan) - 2  # less the component and the aws provider
    assert all(r.parent == "dev" for r in stack)


def test_json_is_plain_data(default_plan: Plan) -> None:
    data = json.loads(default_plan.to_json())
    assert data["name"] == "dev"
    assert data["config"] == default_plan.config.to_dict()
    assert len(data["resources"]) == len(default_plan)
    first = data["resources"][0]
    assert set(first) == {"type", "name", "parent", "custom", "inputs"}
    assert DeploymentConfig.from_mapping(data["config"]) == default_plan.config


def test_text_table_lists_every_resource(default_plan: Plan) -> None:
    text = str(default_plan)
    assert text.splitlines()[0] == "Plan for deployment 'dev' in us-east-1"
    for resource in default_plan:
        assert resource.name in text
    assert text.splitlines()[-1].startswith(f"{len(default_plan.stack_resources)} resources · ")


def test_program_failures_become_plan_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    from rclaude_infra._pulumi import program

    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("boom")

    monkeypatch.setattr(program.RclaudeStack, "_capacity", broken)
    with pytest.raises(PlanError, match="boom"):
        plan(DeploymentConfig(), name="broken")
    # The failure left nothing behind: the next plan is whole.
    monkeypatch.undo()
    assert plan(DeploymentConfig(), name="whole").by_type("aws:ecs:CapacityProvider")


def test_rich_rendering(default_plan: Plan) -> None:
    from rich.console import Console

    console = Console(record=True, width=160)
    console.print(default_plan)
    text = console.export_text()
    assert "aws:ec2:LaunchTemplate" in text
    assert f"{len(default_plan.stack_resources)} resources" in text
    assert "nothing deployed" in text
