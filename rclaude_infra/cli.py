"""The ``rclaude-infra`` command line (also ``python -m rclaude_infra``).

Exit codes: 0 ok, 1 an error while working, 2 bad input (flag, config file or
value; the message names the field).
"""

from __future__ import annotations

import argparse
import sys
import tomllib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from . import __version__
from .config import NAT_MODES, DeploymentConfig
from .deployment import DEFAULT_NAME, plan
from .errors import ConfigError, RclaudeError

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
    return name, DeploymentConfig.from_mapping(data)


def _cmd_plan(args: argparse.Namespace) -> int:
    name, config = _load_config(args)
    result = plan(config, name=name)
    if args.json:
        print(result.to_json())
        return 0
    from rich.console import Console

    from ._display import plan_renderable

    Console().print(plan_renderable(result))
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
    plan_cmd.set_defaults(handler=_cmd_plan)
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
