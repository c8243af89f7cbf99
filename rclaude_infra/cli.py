"""The ``rclaude-infra`` command line (also ``python -m rclaude_infra``).

Exit codes: 0 ok, 1 an error while working, 2 bad input (flag, config file or
value; the message names the field).
"""

from __future__ import annotations

import argparse
import json
import sys
import tomllib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import attrs

from . import __version__
from .config import NAT_MODES, DeploymentConfig
from .cost import estimate_cost, instance_prices
from .deployment import DEFAULT_NAME, Deployment, plan
from .errors import BudgetExceededError, ConfigError, RclaudeError
from .prices import PriceBook

DEFAULT_CONFIG_FILE = "rclaude.toml"

# Flag destinations that map onto DeploymentConfig fields of the same name.
_CONFIG_FLAGS = (
    "region", "instance_types", "spot", "on_demand_base", "min_instances", "max_instances",
    "az_count", "nat", "vpc_id", "subnet_ids", "root_volume_gb", "log_retention_days",
    "results_expire_days", "task_cpu", "task_memory", "image", "egress_ports",
)


def _config_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("deployment (override the config file)")
    group.add_argument("--config", metavar="FILE", type=Path,
                       help="TOML file of DeploymentConfig fields "
                       f"(default: ./{DEFAULT_CONFIG_FILE} when present)")
    group.add_argument("--name", help=f"deployment name (default: {DEFAULT_NAME})")
    group.add_argument("--region")
    group.add_argument("--instance-type", dest="instance_types", action="append",
                       metavar="TYPE", help="repeat for several types")
    group.add_argument("--spot", action=argparse.BooleanOptionalAction, default=None)
    for flag in ("on-demand-base", "min-instances", "max-instances", "az-count",
                 "root-volume-gb", "log-retention-days", "results-expire-days",
                 "task-cpu", "task-memory"):
        group.add_argument(f"--{flag}", type=int, metavar="N")
    group.add_argument("--nat", choices=NAT_MODES)
    group.add_argument("--vpc-id")
    group.add_argument("--subnet-id", dest="subnet_ids", action="append", metavar="ID")
    group.add_argument("--image", help="use this runner image instead of building one")
    group.add_argument("--egress-port", dest="egress_ports", action="append", type=int,
                       metavar="PORT")


_USAGE_FLAGS = ("tasks_per_day", "task_minutes", "concurrency")


def _usage_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("usage (override the config's [usage] table)")
    group.add_argument("--tasks-per-day", type=float, metavar="N")
    group.add_argument("--task-minutes", type=float, metavar="MIN")
    group.add_argument("--concurrency", type=int, metavar="N",
                       help="tasks that run at the same time")
    group.add_argument("--max-monthly-usd", type=float, metavar="USD",
                       help="budget: exit 1 when the estimate is over it")
    prices = parser.add_argument_group("prices")
    prices.add_argument("--live", action="store_true",
                        help="live on-demand and spot prices from AWS (needs credentials)")
    prices.add_argument("--other-rates-from", metavar="REGION",
                        help="use this region's snapshot rates for non-EC2 services "
                        "(the snapshot has them for us-east-1 only)")


def _load_config(args: argparse.Namespace) -> tuple[str, DeploymentConfig]:
    data: dict[str, Any] = {}
    path: Path | None = args.config
    if path is None and Path(DEFAULT_CONFIG_FILE).is_file():
        path = Path(DEFAULT_CONFIG_FILE)
    if path is not None:
        try:
            data = tomllib.loads(path.read_text())
        except OSError as exc:
            raise ConfigError(
                "--config", str(path), f"a readable TOML file ({exc.strerror})"
            ) from exc
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError("--config", str(path), f"valid TOML ({exc})") from exc
    name = args.name or data.pop("name", None) or DEFAULT_NAME
    for key in _CONFIG_FLAGS:
        value = getattr(args, key, None)
        if value is not None:
            data[key] = value
    if args.image is not None:
        data["build_image"] = False
    usage = {
        key: getattr(args, key) for key in _USAGE_FLAGS if getattr(args, key, None) is not None
    }
    if usage:
        table = data.get("usage", {})
        data["usage"] = {**table, **usage} if isinstance(table, dict) else table
    if getattr(args, "max_monthly_usd", None) is not None:
        data["max_monthly_usd"] = args.max_monthly_usd
    return name, DeploymentConfig.from_mapping(data)


def _cmd_plan(args: argparse.Namespace) -> int:
    name, config = _load_config(args)
    result = plan(config, name=name)
    report = result.check_policies() if args.policies else None
    if args.json:
        data = result.to_dict()
        if report is not None:
            data["policies"] = json.loads(report.to_json())
        print(json.dumps(data, indent=2))
    else:
        from rich.console import Console

        from ._display import plan_renderable, policy_renderable

        console = Console()
        console.print(plan_renderable(result))
        if report is not None:
            console.print(policy_renderable(report))
    # A mandatory violation fails the command, so CI can gate on it.
    return 1 if report is not None and report.mandatory_violations else 0


def _cmd_cost(args: argparse.Namespace) -> int:
    name, config = _load_config(args)
    deployment = Deployment(name, config)
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
        print(json.dumps({
            "plan": result.to_dict(),
            "cost": estimate.to_dict(),
            "instance_prices": [
                {**attrs.asdict(row), "on_demand_monthly": row.on_demand_monthly,
                 "spot_monthly": row.spot_monthly}
                for row in rows
            ],
            "budget": {"max_monthly_usd": config.max_monthly_usd, "over": over is not None},
        }, indent=2))
    else:
        from rich.console import Console

        from ._display import cost_renderable, instance_prices_renderable, plan_renderable

        console = Console()
        console.print(plan_renderable(result))
        console.print(cost_renderable(estimate))
        console.print(instance_prices_renderable(rows, config.region))
    if over is not None:
        print(f"rclaude-infra: over budget: {over}", file=sys.stderr)
        return 1
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="rclaude-infra",
        description="Provision, run and price an AWS ECS-on-EC2 stack for coding-agent tasks.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks for errors")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    plan_cmd = commands.add_parser(
        "plan", help="print every resource the stack would create (offline, no credentials)"
    )
    _config_arguments(plan_cmd)
    plan_cmd.add_argument("--json", action="store_true", help="machine-readable output")
    plan_cmd.add_argument("--policies", action="store_true",
                          help="also check the security rules (exit 1 on a mandatory violation)")
    plan_cmd.set_defaults(handler=_cmd_plan)
    cost_cmd = commands.add_parser(
        "cost", help="the plan and what it costs: idle, per task, monthly (offline by default)"
    )
    _config_arguments(cost_cmd)
    _usage_arguments(cost_cmd)
    cost_cmd.add_argument("--json", action="store_true", help="machine-readable output")
    cost_cmd.set_defaults(handler=_cmd_cost)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit code."""
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        return int(args.handler(args))
    except ConfigError as exc:
        if args.debug:
            raise
        print(f"rclaude-infra: error: {exc}", file=sys.stderr)
        return 2
    except RclaudeError as exc:
        if args.debug:
            raise
        print(f"rclaude-infra: error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
