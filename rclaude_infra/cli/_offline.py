"""``plan`` and ``cost``: offline, no credentials, no Pulumi CLI."""

from __future__ import annotations

import argparse
from typing import Any

import attrs

from ..config import DeploymentConfig
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
    plan_cmd.add_argument("--terraform-json", action="store_true",
                          help="print the plan as Terraform plan JSON instead, for Checkov, "
                          "Trivy or Infracost (`... > plan.json && checkov -f plan.json`)")
    cost_cmd = verb(commands, "cost", "the plan and what it costs: idle, per task, monthly "
                    "(offline by default)", _cost, config_arguments, usage_arguments,
                    json_argument)
    prices = cost_cmd.add_argument_group("prices")
    prices.add_argument("--live", action="store_true",
                        help="live on-demand and spot prices from AWS (needs credentials)")
    prices.add_argument("--other-rates-from", metavar="REGION",
                        help="use this region's snapshot rates for non-EC2 services (for a "
                        "region the snapshot lacks)")
    table = verb(commands, "prices", "on-demand and spot prices per instance type: per hour "
                 "and 24/7 for a month (offline by default)", _prices, json_argument)
    table.add_argument("--region", default="us-east-1")
    table.add_argument("--instance-type", dest="instance_types", action="append",
                       metavar="TYPE", help="repeat for several (default: the config's "
                       "defaults, t3.medium and t3a.medium)")
    table.add_argument("--live", action="store_true",
                       help="live on-demand and spot prices from AWS (needs credentials)")


def _plan(args: argparse.Namespace) -> int:
    loaded = load(args)
    result = plan(loaded.config, name=loaded.name, cache=True)
    report = result.check_policies() if args.policies else None
    if args.terraform_json:
        print(result.to_terraform_json())
    elif args.json:
        data = result.to_dict()
        if report is not None:
            import json

            data["policies"] = json.loads(report.to_json())
        emit_json(data)
    else:
        out = console()
        out.print(result)
        if report is not None:
            out.print(report)
    # A mandatory violation fails the command, so CI can gate on it.
    return 1 if report is not None and report.mandatory_violations else 0


def _cost(args: argparse.Namespace) -> int:
    loaded = load(args)
    config = loaded.config
    deployment = Deployment(loaded.name, config, plan_cache=True)
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
        from .._display import instance_prices_renderable

        out = console()
        out.print(result)
        out.print(estimate)
        out.print(instance_prices_renderable(rows, config.region))
    if over is not None:
        note(f"rclaude-infra: over budget: {over}")
        return 1
    return 0


#: What the seed's table assumed spot costs: 70 % off on-demand.
SEED_SPOT_DISCOUNT = 0.70


def _prices(args: argparse.Namespace) -> int:
    region = args.region
    types = args.instance_types or list(DeploymentConfig().instance_types)
    if args.live:
        from .._aws.pricing import live_prices

        book = live_prices(None, region, types)
    else:
        book = PriceBook.snapshot(region)
    rows = instance_prices(types, book)
    discounts = {row.instance_type: 1 - row.spot_hourly / row.on_demand_hourly for row in rows}
    assumed = all(row.spot_assumed for row in rows)
    spot = (book.spot_assumption if assumed else
            f"{book.spot_source}; types without observed prices: {book.spot_assumption}")
    if args.json:
        emit_json({"region": region, "spot_source": spot,
                   "seed_spot_discount": SEED_SPOT_DISCOUNT, "instance_prices": [
                       {**attrs.asdict(row), "on_demand_monthly": row.on_demand_monthly,
                        "spot_monthly": row.spot_monthly,
                        "spot_discount": discounts[row.instance_type]} for row in rows]})
        return 0
    from .._display import instance_prices_renderable

    out = console()
    out.print(instance_prices_renderable(rows, region))
    out.print(f"spot: {spot}")
    seen = ", ".join(f"{name} {share:.0%}" for name, share in discounts.items())
    out.print(f"The seed's table assumed spot at {SEED_SPOT_DISCOUNT:.0%} off on-demand; "
              f"here it is {seen} off" + (" (assumed)." if assumed else " (observed)."))
    return 0
