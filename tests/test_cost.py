"""Cost estimates from the plan, checked against figures computed by hand from the
reference prices in ../shared/reference/aws-prices (us-east-1 unless said)."""

from __future__ import annotations

import json
import math
from typing import Any

import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from plan_helpers import PlanFor

from rclaude_infra import (
    BudgetExceededError,
    ConfigError,
    CostEstimate,
    Deployment,
    DeploymentConfig,
    PriceBook,
    PriceNotFoundError,
    Usage,
    estimate_cost,
    instance_prices,
    task_cost,
)

SNAPSHOT = PriceBook.snapshot("us-east-1")
IDLE = Usage(tasks_per_day=0)

# Reference prices, us-east-1 (other-prices-us-east-1.csv, ec2-on-demand-us-east-1.csv).
T3_MEDIUM = 0.0416
T3A_MEDIUM = 0.0376
T4G_MEDIUM = 0.0336
GP3_GB_MONTH = 0.08
IPV4_HOUR = 0.005
NAT_HOUR = 0.045
SECRET_MONTH = 0.40
ECR_GB_MONTH = 0.10


def line(estimate: CostEstimate, resource: str, component_start: str) -> Any:
    found = [x for x in estimate.lines
             if x.resource == resource and x.component.startswith(component_start)]
    assert len(found) == 1, [x.component for x in estimate.lines if x.resource == resource]
    return found[0]


def test_on_demand_t3_medium_around_the_clock(plan_for: PlanFor) -> None:
    p = plan_for(spot=False, instance_types=("t3.medium",), min_instances=1)
    estimate = estimate_cost(p, IDLE, SNAPSHOT)
    instance = line(estimate, "rclaude-dev-asg", "Instance usage (Linux, on-demand, t3.medium)")
    assert instance.quantity == 730
    assert round(instance.monthly_cost, 2) == 30.37  # 0.0416 x 730 = 30.368
    assert instance.baseline and not instance.assumed
    root = line(estimate, "rclaude-dev-asg", "Root volumes")
    assert root.monthly_cost == pytest.approx(30 * GP3_GB_MONTH)  # 30 GB all month: $2.40
    ipv4 = line(estimate, "rclaude-dev-asg", "Public IPv4 addresses")
    assert ipv4.monthly_cost == pytest.approx(730 * IPV4_HOUR)  # $3.65
    expected_idle = 0.0416 * 730 + 2.40 + 3.65 + SECRET_MONTH + 1.0 * ECR_GB_MONTH
    assert estimate.idle_monthly == pytest.approx(expected_idle)
    assert round(estimate.idle_monthly, 2) == 36.92


def test_idle_default_stack_costs_the_secret_and_the_image(default_plan: Any) -> None:
    estimate = estimate_cost(default_plan, IDLE, SNAPSHOT)
    # Nothing runs: no instance, no NAT. A secret ($0.40) and 1 GB of image ($0.10).
    assert estimate.idle_monthly == pytest.approx(SECRET_MONTH + ECR_GB_MONTH)
    assert round(estimate.idle_monthly, 2) == 0.50
    assert estimate.monthly == pytest.approx(0.50)
    assert estimate.per_task is None
    assert {x.resource for x in estimate.lines if x.baseline} == {
        "rclaude-dev-anthropic-api-key", "rclaude-dev-runner"
    }


def test_idle_stack_with_an_external_image_has_no_ecr_cost(plan_for: PlanFor) -> None:
    estimate = estimate_cost(plan_for(image="ghcr.io/me/r:1", build_image=False), IDLE, SNAPSHOT)
    assert estimate.idle_monthly == pytest.approx(SECRET_MONTH)


def test_single_nat_adds_the_gateway_and_its_address(plan_for: PlanFor) -> None:
    default = estimate_cost(plan_for(), IDLE, SNAPSHOT)
    with_nat = estimate_cost(plan_for(nat="single"), IDLE, SNAPSHOT)
    nat = line(with_nat, "rclaude-dev-nat-0", "NAT gateway")
    assert round(nat.monthly_cost, 2) == 32.85  # 0.045 x 730
    address = line(with_nat, "rclaude-dev-nat-0", "Public IPv4 address (NAT)")
    assert round(address.monthly_cost, 2) == 3.65
    assert with_nat.idle_monthly - default.idle_monthly == pytest.approx(32.85 + 3.65)
    per_az = estimate_cost(plan_for(nat="per-az", az_count=3), IDLE, SNAPSHOT)
    assert per_az.idle_monthly - default.idle_monthly == pytest.approx(3 * (32.85 + 3.65))


def test_arm64_on_demand_and_assumed_spot(plan_for: PlanFor) -> None:
    od = estimate_cost(plan_for(spot=False, instance_types=("t4g.medium",), min_instances=1),
                       IDLE, SNAPSHOT)
    instance = line(od, "rclaude-dev-asg", "Instance usage (Linux, on-demand, t4g.medium)")
    assert round(instance.monthly_cost, 2) == 24.53  # 0.0336 x 730 = 24.528
    spot = estimate_cost(plan_for(instance_types=("t4g.medium",), min_instances=1),
                         IDLE, SNAPSHOT)
    instance = line(spot, "rclaude-dev-asg", "Instance usage (Linux, spot, t4g.medium)")
    assert instance.assumed
    assert instance.monthly_cost == pytest.approx(T4G_MEDIUM * 0.4 * 730)
    assert spot.assumptions and "0.60" in spot.assumptions[0]


def test_per_task_cost_for_15_minutes_on_t3_medium(plan_for: PlanFor) -> None:
    p = plan_for(spot=False, instance_types=("t3.medium",))
    usage = Usage(tasks_per_day=1, task_minutes=15, model_usd_per_task=0)
    estimate = estimate_cost(p, usage, SNAPSHOT)
    # One task holds one instance for boot (3 min) + the task (15) + scale-in (15) = 33 min.
    hours = 33 / 60
    by_hand = {
        "instance": hours * T3_MEDIUM,                        # $0.02288
        "root volume": hours * 30 / 730 * GP3_GB_MONTH,       # 30 GB for 33 minutes
        "public IPv4": hours * IPV4_HOUR,
        "egress": 0.1 * 0.09,                                  # 0.1 GB out
        "log ingestion": 2 / 1024 * 0.50,                      # 2 MB of logs
        "log storage": 2 / 1024 / (730 / 24) * 30 * 0.03,      # kept 30 days
        "s3 storage": 5 / 1024 / (730 / 24) * 30 * 0.023,     # 5 MB kept 30 days
        "s3 requests": 6 * 0.005 / 1000 + 4 * 0.0004 / 1000,
        "secret reads": 1 * 0.05 / 10_000,
    }
    assert estimate.per_task == pytest.approx(sum(by_hand.values()))
    assert round(by_hand["instance"], 5) == 0.02288
    assert estimate.per_task is not None and round(estimate.per_task, 4) == 0.0376


def test_tasks_fill_instances_before_more_start(plan_for: PlanFor) -> None:
    # t3.medium gives tasks 2048 CPU units and 3840 MiB: two tasks of 1 vCPU and 1 GiB fit.
    p = plan_for(spot=False, instance_types=("t3.medium",), max_instances=10, task_memory=1024)
    two = estimate_cost(p, Usage(tasks_per_day=2, concurrency=2), SNAPSHOT)
    three = estimate_cost(p, Usage(tasks_per_day=3, concurrency=3), SNAPSHOT)
    instance = "Instance usage (Linux, on-demand, t3.medium), task instances"
    # 2 at once: one burst a day on 1 instance; 3 at once: one burst on 2 instances.
    assert line(two, "rclaude-dev-asg", instance).quantity == pytest.approx(730 / 24 * 0.55)
    assert line(three, "rclaude-dev-asg", instance).quantity == pytest.approx(
        730 / 24 * 2 * 0.55)


def test_a_full_group_queues_tasks_in_waves(plan_for: PlanFor) -> None:
    p = plan_for(spot=False, instance_types=("t3.medium",), max_instances=1, task_memory=1024)
    estimate = estimate_cost(p, Usage(tasks_per_day=4, concurrency=4), SNAPSHOT)
    # 4 tasks, 2 slots: two waves of 15 minutes on the one instance.
    hours = (3 + 2 * 15 + 15) / 60
    instance = line(estimate, "rclaude-dev-asg", "Instance usage (Linux, on-demand")
    assert instance.quantity == pytest.approx(730 / 24 * hours)


def test_busy_usage_never_exceeds_running_all_month(plan_for: PlanFor) -> None:
    p = plan_for(spot=False, instance_types=("t3.medium",), max_instances=2, task_memory=1024)
    estimate = estimate_cost(p, Usage(tasks_per_day=5000, task_minutes=60, concurrency=4),
                             SNAPSHOT)
    instance = line(estimate, "rclaude-dev-asg", "Instance usage (Linux, on-demand")
    assert instance.quantity == pytest.approx(2 * 730)


def test_on_demand_base_runs_first_then_spot(plan_for: PlanFor) -> None:
    p = plan_for(instance_types=("t3.medium", "t3a.medium"), on_demand_base=1, max_instances=4,
                 task_memory=1024)
    estimate = estimate_cost(p, Usage(tasks_per_day=10, concurrency=4), SNAPSHOT)
    od = line(estimate, "rclaude-dev-asg", "Instance usage (Linux, on-demand, t3.medium)")
    spot = line(estimate, "rclaude-dev-asg", "Instance usage (Linux, spot, t3a.medium)")
    # Four tasks: the on-demand base instance holds two, one spot instance the rest.
    assert od.quantity == pytest.approx(spot.quantity)
    assert spot.assumed and not od.assumed


def test_lines_read_the_plan_not_the_config(plan_for: PlanFor) -> None:
    p = plan_for()
    resources = {r.name for r in p}
    estimate = estimate_cost(p, Usage(tasks_per_day=5), SNAPSHOT)
    # Every line prices a planned resource, but the model's, which no resource is.
    assert {x.resource for x in estimate.lines if not x.resource_type.startswith("model:")
            } <= resources
    # A plan without the NAT gateway is priced without it, whatever its config says.
    trimmed = attrs.evolve(plan_for(nat="single"), resources=tuple(
        r for r in plan_for(nat="single") if r.type != "aws:ec2/natGateway:NatGateway"))
    assert not [x for x in estimate_cost(trimmed, IDLE, SNAPSHOT).lines
                if x.component == "NAT gateway"]


def test_json_has_infracost_like_fields(default_plan: Any) -> None:
    estimate = estimate_cost(default_plan, Usage(tasks_per_day=20), SNAPSHOT)
    data = json.loads(estimate.to_json())
    assert data["currency"] == "USD"
    assert data["totalMonthlyCost"] == pytest.approx(estimate.monthly)
    (project,) = data["projects"]
    resources = project["breakdown"]["resources"]
    assert sum(r["monthlyCost"] for r in resources) == pytest.approx(estimate.monthly)
    component = resources[0]["costComponents"][0]
    assert set(component) >= {"name", "unit", "monthlyQuantity", "price", "hourlyCost",
                              "monthlyCost", "usageBased"}
    assert data["summary"]["idleMonthlyCost"] == pytest.approx(estimate.idle_monthly)
    assert data["summary"]["perTaskCost"] == pytest.approx(estimate.per_task)


def test_diff_for_what_ifs(plan_for: PlanFor) -> None:
    base = estimate_cost(plan_for(), IDLE, SNAPSHOT)
    nat = estimate_cost(plan_for(nat="single"), IDLE, SNAPSHOT)
    diff = base.diff(nat)
    assert diff.monthly_delta == pytest.approx(32.85 + 3.65)
    assert diff.idle_delta == pytest.approx(32.85 + 3.65)
    text = str(diff)
    assert "rclaude-dev-nat-0 / NAT gateway" in text and "+32.85" in text


def test_renderings(default_plan: Any) -> None:
    from rich.console import Console

    estimate = estimate_cost(default_plan, Usage(tasks_per_day=20), SNAPSHOT)
    console = Console(record=True, width=200)
    console.print(estimate)
    text = console.export_text()
    assert estimate.summary in text and "idle $0.50/month, per task $" in text
    assert "* assumed: spot" in text
    page = estimate._repr_html_()
    assert page.startswith("<pre") and "rclaude-dev-asg" in page
    assert "idle $0.50/month" in str(estimate)


def test_budget_guard(plan_for: PlanFor) -> None:
    d = Deployment("dev", DeploymentConfig(spot=False, instance_types=("t3.medium",),
                                           min_instances=1, max_monthly_usd=20,
                                           usage=Usage(tasks_per_day=0)))
    with pytest.raises(BudgetExceededError) as info:
        d.check_budget()
    message = str(info.value)
    assert "over max_monthly_usd $20.00 by $16.92" in message
    assert "Instance usage (Linux, on-demand, t3.medium)" in message.split("largest lines:")[1]
    assert info.value.limit == 20
    fine = Deployment("dev", DeploymentConfig(max_monthly_usd=20, usage=Usage(
        tasks_per_day=5, model_usd_per_task=0.05)))
    assert fine.check_budget().monthly < 20
    # The model counts against the same budget: at the assumed $1.30 a task it is over.
    with pytest.raises(BudgetExceededError, match=r"claude Model tokens \(Anthropic API\)"):
        Deployment("dev", DeploymentConfig(max_monthly_usd=20,
                                           usage=Usage(tasks_per_day=5))).check_budget()


def test_budget_must_be_positive() -> None:
    with pytest.raises(ConfigError, match=r"max_monthly_usd"):
        DeploymentConfig(max_monthly_usd=0)
    with pytest.raises(ConfigError, match=r"usage\.task_minutes"):
        DeploymentConfig(usage={"task_minutes": 0})


def test_instance_price_table_matches_the_reference() -> None:
    rows = {r.instance_type: r for r in instance_prices(["t3.micro", "t3.medium", "c5.large"])}
    # The seed's table: on-demand exact to the cent for the reference prices.
    assert rows["t3.micro"].on_demand_hourly == 0.0104
    assert round(rows["t3.micro"].on_demand_monthly, 2) == 7.59
    assert round(rows["t3.medium"].on_demand_monthly, 2) == 30.37
    assert round(rows["c5.large"].on_demand_monthly, 2) == 62.05
    assert all(r.spot_assumed and r.spot_hourly < r.on_demand_hourly for r in rows.values())


def test_task_cost_uses_the_larger_share() -> None:
    # 1 vCPU of t3.medium's 2 = half the instance; 3840 MiB of memory = all of it.
    assert task_cost(runtime_hours=2, task_cpu=1024, task_memory=1024, instance_type="t3.medium",
                     spot=False, prices=SNAPSHOT) == pytest.approx(2 * 0.5 * T3_MEDIUM)
    assert task_cost(runtime_hours=1, task_cpu=256, task_memory=3840, instance_type="t3.medium",
                     spot=False, prices=SNAPSHOT) == pytest.approx(T3_MEDIUM)
    spot = task_cost(runtime_hours=1, task_cpu=2048, task_memory=512, instance_type="t3a.medium",
                     spot=True, prices=SNAPSHOT)
    assert spot == pytest.approx(T3A_MEDIUM * 0.4)


def test_missing_prices_are_errors_not_guesses(plan_for: PlanFor) -> None:
    with pytest.raises(PriceNotFoundError, match="no prices for region 'af-south-1'") as info:
        PriceBook.snapshot("af-south-1")
    assert "--live --other-rates-from us-east-1" in str(info.value)
    eu = plan_for(region="eu-west-1")
    with pytest.raises(PriceNotFoundError, match="other_rates_from='us-east-1'"):
        attrs.evolve(PriceBook.snapshot("eu-west-1"), other={}).item("secrets_manager_secret")
    book = PriceBook.snapshot("eu-west-1", other_rates_from="us-east-1")
    estimate = estimate_cost(eu, Usage(tasks_per_day=5), book)
    secret = line(estimate, "rclaude-dev-anthropic-api-key", "Secret")
    assert secret.assumed and secret.price_source.startswith("us-east-1 rate used for eu-west-1")
    assert any(a.startswith("us-east-1 rate") for a in estimate.assumptions)
    with pytest.raises(PriceNotFoundError, match=r"no on-demand price for t3\.medium"):
        attrs.evolve(SNAPSHOT, on_demand={}).instance_hour("t3.medium", spot=False)
    with pytest.raises(ConfigError, match="prices"):
        estimate_cost(eu, IDLE, SNAPSHOT)


def test_snapshot_prices_carry_their_source() -> None:
    price = SNAPSHOT.instance_hour("t3.medium", spot=False)
    assert "karpenter" in price.source and "2026-07-20" in price.source
    assert "skypilot" in PriceBook.snapshot("eu-west-1").on_demand_source
    assert "infracost" in SNAPSHOT.item("nat_gateway_hour").source


# -- properties -----------------------------------------------------------------------

_PLANS = {
    "default": {},
    "on-demand": {"spot": False, "instance_types": ("t3.medium", "m5.large")},
    "nat": {"nat": "single", "min_instances": 1, "on_demand_base": 1},
    "arm": {"instance_types": ("t4g.medium", "c7g.large"), "max_instances": 2},
}
_usages = st.builds(
    Usage,
    tasks_per_day=st.floats(0, 2000, allow_nan=False),
    task_minutes=st.floats(0.5, 240, allow_nan=False),
    concurrency=st.integers(1, 12),
    log_mb_per_task=st.floats(0, 50),
    result_mb_per_task=st.floats(0, 50),
    egress_gb_per_task=st.floats(0, 5),
)


@settings(max_examples=150, deadline=None)
@given(which=st.sampled_from(list(_PLANS)), usage=_usages,
       more_tasks=st.floats(0, 500), more_minutes=st.floats(0, 60))
def test_more_usage_never_costs_less(
    plan_for: PlanFor, which: str, usage: Usage, more_tasks: float, more_minutes: float
) -> None:
    p = plan_for(**_PLANS[which])
    before = estimate_cost(p, usage, SNAPSHOT)
    bigger = attrs.evolve(usage, tasks_per_day=min(100_000, usage.tasks_per_day + more_tasks),
                          task_minutes=min(1440, usage.task_minutes + more_minutes))
    after = estimate_cost(p, bigger, SNAPSHOT)
    assert after.monthly >= before.monthly - 1e-9
    assert after.idle_monthly == pytest.approx(before.idle_monthly)


@settings(max_examples=150, deadline=None)
@given(which=st.sampled_from(list(_PLANS)), usage=_usages)
def test_totals_are_sums_of_lines_and_never_negative_or_nan(
    plan_for: PlanFor, which: str, usage: Usage
) -> None:
    estimate = estimate_cost(plan_for(**_PLANS[which]), usage, SNAPSHOT)
    for x in estimate.lines:
        assert math.isfinite(x.monthly_cost) and x.monthly_cost >= 0
        assert math.isfinite(x.quantity) and x.quantity >= 0
    assert estimate.monthly == pytest.approx(sum(x.monthly_cost for x in estimate.lines))
    assert estimate.monthly == pytest.approx(estimate.idle_monthly + estimate.usage_monthly)
    assert estimate.hourly == pytest.approx(estimate.monthly / 730)
    data = estimate.to_dict()
    assert data["totalMonthlyCost"] == pytest.approx(sum(
        r["monthlyCost"] for r in data["projects"][0]["breakdown"]["resources"]))


@settings(max_examples=100, deadline=None)
@given(usage=_usages, min_instances=st.integers(0, 2),
       types=st.sampled_from([("t3.medium",), ("t3.medium", "t3a.medium"), ("m5.large",),
                              ("t4g.medium", "m7g.large")]))
def test_spot_never_costs_more_than_on_demand(
    plan_for: PlanFor, usage: Usage, min_instances: int, types: tuple[str, ...]
) -> None:
    spot = estimate_cost(plan_for(instance_types=types, min_instances=min_instances),
                         usage, SNAPSHOT)
    on_demand = estimate_cost(plan_for(instance_types=types, min_instances=min_instances,
                                       spot=False), usage, SNAPSHOT)
    assert spot.monthly <= on_demand.monthly + 1e-9
