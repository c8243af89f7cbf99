"""One cost ledger: each task's compute and model, the month's spend, estimates with the
model in them, budgets that refuse work before it starts, and prices for every shipped
region.

The agent is the real Claude Code CLI against the scripted Anthropic API (its token counts
are the fake's, so its own cost estimate is known); ECS tasks run on moto's server."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import attrs
import pytest
from fake_anthropic import FakeAnthropic, Reply
from moto_stack import QUICK_POLL

from rclaude_infra import (
    BudgetExceededError,
    Deployment,
    DeploymentConfig,
    PriceBook,
    StackOutputs,
    TaskSpec,
    TaskStatus,
    Usage,
    estimate_cost,
)
from rclaude_infra.cost import ASSUMED_MODEL_USD_PER_TASK, TaskCost, model_cost
from rclaude_infra.prices import BEDROCK_REGIONAL_PREMIUM, bedrock_price, snapshot_regions

pytestmark = pytest.mark.usefixtures("private_home")

HAIKU_ON_BEDROCK = "us.anthropic.claude-haiku-4-5-20251001-v1:0"


def _month_start() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(day=1, hour=0, minute=0, second=0, microsecond=0)


# -- a task's two halves -----------------------------------------------------------------


def test_a_prompt_tasks_cost_is_its_compute_and_its_model(fake_api: FakeAnthropic) -> None:
    fake_api.script = [Reply(text="Done.", input_tokens=20_000, output_tokens=3_000)]
    d = Deployment("dev", provider="local")
    task = d.run_task(TaskSpec(prompt="say done"))
    assert task.wait(timeout=120).status is TaskStatus.SUCCEEDED
    agent = task.agent
    assert agent is not None and agent.cost_usd is not None and agent.cost_usd > 0
    cost = task.cost()
    assert isinstance(cost, TaskCost)
    assert cost.compute_usd == 0.0  # this machine: nothing on AWS
    assert cost.model_usd == pytest.approx(agent.cost_usd)
    assert "Claude Code's estimate" in cost.model_source
    assert cost.total_usd == pytest.approx(agent.cost_usd) and f"{cost:.6f}" == \
        f"{agent.cost_usd:.6f}"

    command = d.run_task(TaskSpec(command="true"))
    command.wait(timeout=60)
    assert command.cost().model_usd is None and command.cost().total_usd == 0.0

    spend = d.spend(_month_start())
    assert spend.tasks == 2 and spend.model_usd == pytest.approx(agent.cost_usd)
    assert spend.baseline_usd == 0.0  # local tasks: no stack idling
    assert spend.total_usd == pytest.approx(agent.cost_usd)

    env = {**os.environ}
    listed = json.loads(_cli("tasks", "--provider", "local", "--json", env=env))
    row = next(r for r in listed if r["task_id"] == task.task_id)
    assert row["model_usd"] == pytest.approx(agent.cost_usd) and row["compute_usd"] == 0.0
    assert row["total_usd"] == pytest.approx(agent.cost_usd)
    spent = json.loads(_cli("spend", "--provider", "local", "--json", env=env))
    assert spent["model_usd"] == pytest.approx(agent.cost_usd) and spent["tasks"] == 2
    shown = _cli("result", task.task_id, "--provider", "local", env=env)
    assert "compute $0.0000 + model $" in shown


def _cli(*args: str, env: dict[str, str]) -> str:
    done = subprocess.run([sys.executable, "-m", "rclaude_infra", *args], capture_output=True,
                          text=True, env={**env, "COLUMNS": "200"}, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_a_bedrock_model_is_priced_from_its_tokens(fake_api: FakeAnthropic) -> None:
    """Claude Code reports its tokens per model; for a Bedrock id the ledger prices them
    at the shipped Bedrock rate (the regional profile's 10 % included), not at Claude
    Code's own table."""
    fake_api.script = [Reply(text="Done.", input_tokens=200_000, output_tokens=10_000)]
    d = Deployment("dev", provider="local")
    task = d.run_task(TaskSpec(prompt="say done", model=HAIKU_ON_BEDROCK))
    assert task.wait(timeout=120).status is TaskStatus.SUCCEEDED
    agent = task.agent
    assert agent is not None and HAIKU_ON_BEDROCK in agent.model_usage
    tokens = agent.model_usage[HAIKU_ON_BEDROCK]
    by_hand = BEDROCK_REGIONAL_PREMIUM * (
        tokens.get("inputTokens", 0) * 1.00 + tokens.get("outputTokens", 0) * 5.00
        + tokens.get("cacheCreationInputTokens", 0) * 1.25
        + tokens.get("cacheReadInputTokens", 0) * 0.10) / 1_000_000
    cost = task.cost()
    assert by_hand > 0 and cost.model_usd == pytest.approx(by_hand)
    assert "Bedrock tokens x" in cost.model_source and "x 1.1 (regional endpoint)" in \
        cost.model_source


def test_model_cost_per_model() -> None:
    usage = {
        "global.anthropic.claude-sonnet-4-5-20250929-v1:0": {
            "inputTokens": 1_000_000, "outputTokens": 1_000_000, "costUSD": 99.0},
        "claude-haiku-4-5-20251001": {"inputTokens": 10, "costUSD": 0.25},
        "eu.anthropic.claude-opus-9-0-v1:0": {"inputTokens": 10, "costUSD": 0.5},
    }
    total, source = model_cost(usage, 99.75)
    # Sonnet on a global profile at $3 + $15; the others at Claude Code's estimate (the
    # Anthropic API model, and a Bedrock model the snapshot does not price).
    assert total == pytest.approx(18.0 + 0.25 + 0.5)
    assert source.count("Claude Code's estimate") == 2 and "Bedrock tokens" in source
    assert bedrock_price("claude-sonnet-4-5") is None
    assert model_cost({}, None) == (None, "no model usage reported")


# -- estimates -------------------------------------------------------------------------


def test_the_estimate_has_a_model_line(plan_for: Any) -> None:
    p = plan_for()
    assumed = estimate_cost(p, Usage(tasks_per_day=10))
    (model,) = [line for line in assumed.lines if line.resource_type == "model:api-key"]
    assert model.unit_price == ASSUMED_MODEL_USD_PER_TASK and model.assumed
    assert "code.claude.com/docs/en/costs" in model.price_source
    assert model.price_source in assumed.assumptions
    declared = estimate_cost(p, Usage(tasks_per_day=10, model_usd_per_task=0.4))
    (model,) = [line for line in declared.lines if line.resource_type.startswith("model:")]
    assert model.unit_price == 0.4 and not model.assumed
    assert declared.model_monthly == pytest.approx(round(0.4 * 10 * 730 / 24, 2))
    diff = declared.diff(estimate_cost(p, Usage(tasks_per_day=10, model_usd_per_task=0.8)))
    assert diff.monthly_delta == pytest.approx(0.4 * 10 * 730 / 24, rel=1e-4)
    assert any(row[0] == "claude" and row[1] == "Model tokens (Anthropic API)"
               for row in diff.rows)
    subscription = estimate_cost(plan_for(auth="oauth-token"), Usage(tasks_per_day=10))
    (model,) = [line for line in subscription.lines if line.resource_type.startswith("model:")]
    assert model.monthly_cost == 0 and "Claude subscription" in model.component
    bedrock = estimate_cost(plan_for(auth="bedrock"), Usage(tasks_per_day=10))
    assert any(line.component == "Model tokens (Amazon Bedrock)" for line in bedrock.lines)
    with pytest.raises(Exception, match="model_usd_per_task"):
        Usage(model_usd_per_task=-1)


@pytest.mark.parametrize("region", snapshot_regions())
def test_every_shipped_region_prices_the_default_plan(plan_for: Any, region: str) -> None:
    base = plan_for(build_image="remote")
    # Cost reads the plan's resources and its config's region: the same plan, re-homed.
    p = attrs.evolve(base, config=attrs.evolve(base.config, region=region))
    estimate = estimate_cost(p, Usage(tasks_per_day=10, model_usd_per_task=1.0),
                             PriceBook.snapshot(region))
    assert estimate.monthly > 0 and estimate.idle_monthly > 0
    for line in estimate.lines:
        assert line.unit_price >= 0 and line.price_source, line
        if line.assumed:  # only the spot discount, and CodeBuild away from us-east-1
            assert ("spot" in line.component or line.resource_type == "aws:codebuild:Project"
                    ), line


def test_a_plan_in_another_region_is_priced_with_that_regions_rates(plan_for: Any) -> None:
    eu = estimate_cost(plan_for(region="eu-west-1", nat="single"))
    nat = next(line for line in eu.lines if line.component == "NAT gateway")
    assert nat.unit_price == 0.048 and "EU (Ireland)" in nat.price_source


def test_the_seeds_table_with_its_spot_source(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "rclaude_infra", "prices", "--instance-type", "t3.micro",
         "--instance-type", "t3.medium", "--instance-type", "c5.large", "--json"],
        capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    rows = {row["instance_type"]: row for row in data["instance_prices"]}
    assert rows["t3.micro"]["on_demand_hourly"] == 0.0104
    assert rows["c5.large"]["on_demand_monthly"] == pytest.approx(0.085 * 730)
    assert rows["t3.medium"]["spot_discount"] == pytest.approx(0.6)
    assert data["seed_spot_discount"] == 0.7 and "Spot Instance Advisor" in data["spot_source"]
    text = subprocess.run(
        [sys.executable, "-m", "rclaude_infra", "prices", "--instance-type", "t3.micro"],
        capture_output=True, text=True, timeout=120, cwd=tmp_path,
        env={**os.environ, "COLUMNS": "200"}).stdout
    assert "The seed's table assumed spot at 70% off on-demand" in text
    bad = subprocess.run([sys.executable, "-m", "rclaude_infra", "prices", "--instance-type",
                          "t9.huge"], capture_output=True, text=True, timeout=120)
    assert bad.returncode != 0 and "instance_types: got 't9.huge'" in bad.stderr


# -- budgets that stop work ------------------------------------------------------------


def test_run_task_refuses_what_the_budget_cannot_hold(fake_api: FakeAnthropic) -> None:
    fake_api.script = [Reply(text="Done.")] * 3
    d = Deployment("dev", DeploymentConfig(max_monthly_usd=2.0), provider="local")
    first = d.run_task(TaskSpec(prompt="one", max_budget_usd=1.5))
    with pytest.raises(BudgetExceededError) as info:
        d.run_task(TaskSpec(prompt="two", max_budget_usd=1.0))
    message = str(info.value)
    assert "max_monthly_usd $2.00 would be passed by $0.50" in message
    assert "+ $1.50 for tasks started since" in message
    assert "model $1.00: its max_budget_usd" in message and "Nothing was submitted" in message
    assert info.value.limit == 2.0
    assert [t.task_id for t in d.tasks(limit=None)] == [first.task_id]
    # Without a cap of its own, a prompt is counted at the usage's model cost per task.
    with pytest.raises(BudgetExceededError, match="the assumed model cost of a task"):
        d.run_task(TaskSpec(prompt="three"))
    d.run_task(TaskSpec(command="true"))  # a command costs no model, nothing here
    first.wait(timeout=120)


def test_the_ledger_counts_what_ended_tasks_cost(fake_api: FakeAnthropic,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    import rclaude_infra.ledger as ledger_module

    fake_api.script = [Reply(text="Done.", input_tokens=200_000, output_tokens=20_000)]
    d = Deployment("dev", DeploymentConfig(max_monthly_usd=5.0), provider="local")
    task = d.run_task(TaskSpec(prompt="spend", max_budget_usd=4.0))
    task.wait(timeout=120)
    spent = task.cost().model_usd
    assert spent is not None and 0 < spent < 4.0
    monkeypatch.setattr(ledger_module, "LEDGER_SECONDS", 0.0)  # read the month again
    fake_api.script = [Reply(text="Done.")]
    # The month now holds what the task really cost, not its $4.00 cap.
    room = 5.0 - spent
    d.run_task(TaskSpec(prompt="fits", max_budget_usd=round(room - 0.01, 2)))
    with pytest.raises(BudgetExceededError):
        Deployment("dev", DeploymentConfig(max_monthly_usd=5.0), provider="local").run_task(
            TaskSpec(prompt="over", max_budget_usd=round(room + 0.01, 2)))


def test_ecs_submissions_over_budget_reach_no_ecs_call(aws: Any, stack: StackOutputs) -> None:
    runs: list[str] = []
    aws.events.register("before-call.ecs.RunTask", lambda **kw: runs.append("run"))
    config = DeploymentConfig(max_monthly_usd=3.0, usage=Usage(model_usd_per_task=0.5))
    d = Deployment.from_outputs("dev", stack, session=aws, poll_interval=QUICK_POLL,
                                config=config)
    specs = [TaskSpec(prompt=f"task {i}", max_budget_usd=1.0) for i in range(3)]
    with pytest.raises(BudgetExceededError) as info:
        d.run_tasks(specs)
    # Three $1.00 caps and their compute for an hour each, plus the idle stack so far.
    assert "3 new tasks at up to $3.0" in str(info.value)
    assert runs == []
    assert d.run_tasks(specs[:2]) and runs == ["run", "run"]


def test_the_ledger_reads_the_month_once_and_counts_what_it_reserved(
        monkeypatch: pytest.MonkeyPatch) -> None:
    import rclaude_infra.ledger as ledger_module
    from rclaude_infra.cost import TaskCost
    from rclaude_infra.ledger import Ledger, Spend

    reads: list[dt.datetime] = []
    shown: set[str] = {"t-old-1", "t-old-2"}

    def read_month(since: dt.datetime) -> Spend:
        reads.append(since)
        return Spend(since=since, until=since, tasks=len(shown), tasks_usd=1.0,
                     baseline_usd=0.5, model_usd=2.5, task_ids=frozenset(shown))  # $4.00

    ledger = Ledger(10.0, read_month)
    cap = TaskCost(compute_usd=0.5, model_usd=2.0, model_source="its max_budget_usd")
    assert ledger.reserve({"t-a": cap, "t-b": cap}) == ["t-a", "t-b"]  # $9.00 counted
    with pytest.raises(BudgetExceededError) as refused:
        ledger.reserve({"t-c": cap})
    assert "passed by $1.50" in str(refused.value) and "+ $5.00 for tasks started" in str(
        refused.value)
    ledger.release(["t-b"])  # it did not start
    assert ledger.reserve({"t-c": cap}) == ["t-c"]
    # A task the month's read shows already is counted there, not again.
    assert ledger.reserve({"t-old-1": cap}) == []
    assert len(reads) == 1 and reads[0].day == 1 and reads[0].tzinfo is dt.UTC
    monkeypatch.setattr(ledger_module, "LEDGER_SECONDS", -1.0)
    shown.update({"t-a", "t-c"})  # their records are there now: counted once, by the read
    ledger.reserve({"t-d": TaskCost(compute_usd=0.0, model_usd=5.5,
                                    model_source="its max_budget_usd")})
    assert len(reads) == 2
    # Reservations older than RESERVATION_SECONDS are let go (their submitter died).
    monkeypatch.setattr(ledger_module, "RESERVATION_SECONDS", 0.0)
    assert ledger.reserve({"t-e": TaskCost(compute_usd=0.0, model_usd=5.9,
                                           model_source="its max_budget_usd")}) == ["t-e"]
