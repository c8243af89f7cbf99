"""``plan`` and ``cost``: offline, no credentials, no Pulumi CLI."""

from __future__ import annotations

import argparse
from typing import Any

import attrs

from ..cost import estimate_cost, instance_prices
from ..deployment import Deployment, plan
from ..errors import BudgetExceededError
from ..prices import PriceBook
from ._common import (
    config_arguments,
    console,
    emit_json,
    json_argument,
    load,
    note,
    usage_arguments,
    verb,
)


def add_parsers(commands: Any) -> None:
    plan_cmd = verb(commands, "plan", "print every resource the stack would create (offline, "
                    "no credentials)", _plan, config_arguments, json_argument)
    plan_cmd.add_argument("--policies", action="store_true",
                          help="also check the security rules (exit 1 on a mandatory violation)")
    cost_cmd = verb(commands, "cost", "the plan and what it costs: idle, per task, monthly "
                    "(offline by default)", _cost, config_arguments, usage_arguments,
                    json_argument)
    prices = cost_cmd.add_argument_group("prices")
    prices.add_argument("--live", action="store_true",
                        help="live on-demand and spot prices from AWS (needs credentials)")
    prices.add_argument("--other-rates-from", metavar="REGION",
                        help="use this region's snapshot rates for non-EC2 services "
                        "(the snapshot has them for us-east-1 only)")


def _plan(args: argparse.Namespace) -> int:
    loaded = load(args)
    result = plan(loaded.config, name=loaded.name)
    report = result.check_policies() if args.policies else None
    if args.json:
        data = result.to_dict()
        if report is not None:
            import json

            data["policies"] = json.loads(report.to_json())
        emit_json(data)
    else:
        from .._display import plan_renderable, policy_renderable

        out = console()
        out.print(plan_renderable(result))
        if report is not None:
            out.print(policy_renderable(report))
    # A mandatory violation fails the command, so CI can gate on it.
    return 1 if report is not None and report.mandatory_violations else 0


def _cost(args: argparse.Namespace) -> int:
    loaded = load(args)
    config = loaded.config
    deployment = Deployment(loaded.name, config)
    if args.live:
        prices = deployment.prices(live=True)
    else:
        prices = PriceBook.snapshot(config.region, other_rates_from=args.other_rates_from)
    result = deployment.plan()
    estimate = estimate_cost(result, config.usage, prices)
    rows = instance_prices(config.instance_types, prices)
    over: BudgetExceededError | None = None
    try:
        estimate.check_budget(config.max_monthly_usd)
    except BudgetExceededError as exc:
        over = exc
    if args.json:
        emit_json({
            "plan": result.to_dict(),
            "cost": estimate.to_dict(),
            "instance_prices": [
                {**attrs.asdict(row), "on_demand_monthly": row.on_demand_monthly,
                 "spot_monthly": row.spot_monthly}
                for row in rows
            ],
            "budget": {"max_monthly_usd": config.max_monthly_usd, "over": over is not None},
        })
    else:
        from .._display import cost_renderable, instance_prices_renderable, plan_renderable

        out = console()
        out.print(plan_renderable(result))
        out.print(cost_renderable(estimate))
        out.print(instance_prices_renderable(rows, config.region))
    if over is not None:
        note(f"rclaude-infra: over budget: {over}")
        return 1
    return 0
