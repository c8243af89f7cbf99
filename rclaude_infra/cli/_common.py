"""What every verb shares: the config file and flags, the Deployment they describe, and
how results are written (rich on a terminal, plain when piped, JSON when asked)."""

from __future__ import annotations

import argparse
import datetime as dt
import enum
import json
import os
import re
import sys
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import attrs

from ..config import (
    AUTH_MODES,
    LOG_RETENTION_DAYS,
    NAT_MODES,
    SECURITY_PROFILES,
    DeploymentConfig,
    Usage,
)
from ..deployment import DEFAULT_NAME, PROVIDERS, Deployment
from ..errors import ConfigError, RclaudeError
from ..paths import local_tasks_dir
from ..service_config import DEPLOYMENT_MODES, ServiceConfig
from ..tasks.spec import is_task_id

DEFAULT_CONFIG_FILE = "rclaude.toml"
#: Top-level keys of rclaude.toml that are not DeploymentConfig fields.
CLI_KEYS = ("name", "provider", "backend")

#: DeploymentConfig fields with no flag of their own: tables (the config file's), and the
#: budget, which the usage group carries.
_NOT_FLAGS = ("tags", "usage", "max_monthly_usd", "service")
#: Flags whose values are a closed set, and the few a plain type does not describe.
_FLAG_SPECS: dict[str, dict[str, Any]] = {
    "nat": {"choices": NAT_MODES},
    "auth": {"choices": AUTH_MODES},
    "security_profile": {"choices": SECURITY_PROFILES},
    "mode": {"choices": DEPLOYMENT_MODES, "help": "self-hosted: tasks for this account's "
             "people; service: the same stack plus the hosted service (see the service "
             "group's flags)"},
    "log_retention_days": {"choices": LOG_RETENTION_DAYS, "type": int},
    "build_image": {"choices": ("local", "remote"), "help": "build the runner image with "
                    "local Docker, or in the account with CodeBuild (remote: no Docker "
                    "needed here)"},
    "image": {"help": "use this runner image instead of building one"},
    "instance_types": {"help": "repeat for several types"},
    "concurrency": {"help": "tasks that run at the same time"},
    # ServiceConfig's (--mode service)
    "domain": {"help": "the service's DNS name (its certificate's)"},
    "zone_id": {"help": "the Route 53 zone of --domain: the stack makes and proves the "
                "certificate there"},
    "certificate_arn": {"help": "an issued ACM certificate for --domain instead"},
    "http_only": {"help": "plain HTTP, no certificate (a trial: tokens in the clear)"},
}
_METAVARS = {int: "N", float: "N", str: None}


def _flag_fields(cls: type) -> tuple[str, ...]:
    return tuple(f.name for f in attrs.fields(cls) if f.name not in _NOT_FLAGS)


#: ServiceConfig's flags: ``--service-<field>`` but for these, which say it already.
_SERVICE_FLAG_NAMES = ("domain", "zone_id", "certificate_arn", "http_only",
                       "db_instance_class", "db_storage_gb", "db_backup_days", "db_multi_az",
                       "api_count", "worker_count")
#: Where argparse keeps a ServiceConfig field's flag value.
_SERVICE_DEST = "service__"


def _field_flags(group: Any, cls: type, *, dest_prefix: str = "") -> None:
    """A flag per field of the attrs class ``cls`` (kebab-case; a tuple field gets a
    singular flag to repeat), typed from the field's type; ``dest_prefix``: ServiceConfig's
    (kept apart from DeploymentConfig's fields of the same name)."""
    import typing

    for field in attrs.fields(attrs.resolve_types(cls)):
        if field.name in _NOT_FLAGS:
            continue
        spec = dict(_FLAG_SPECS.get(field.name, {}))
        kind = field.type
        args = typing.get_args(kind)
        flag = "--" + field.name.replace("_", "-")
        if dest_prefix:
            spec["dest"] = dest_prefix + field.name
            if field.name not in _SERVICE_FLAG_NAMES:
                flag = "--service-" + field.name.replace("_", "-")
        if kind is bool:
            spec.update(action=argparse.BooleanOptionalAction, default=None)
        elif typing.get_origin(kind) is tuple:
            flag = flag.removesuffix("s")
            spec.update(dest=field.name, action="append", type=args[0],
                        metavar=flag.upper()[2:].split("-")[-1])
        else:
            base = next((a for a in (args or (kind,)) if a in _METAVARS), str)
            if "choices" not in spec or "type" in spec:
                spec.setdefault("type", base)
                spec.setdefault("metavar", _METAVARS[base] or (
                    field.name.upper() if dest_prefix else None))
        group.add_argument(flag, **{k: v for k, v in spec.items() if v is not None})


# Flag destinations that map onto fields of the same name.
_CONFIG_FLAGS = _flag_fields(DeploymentConfig)
_USAGE_FLAGS = _flag_fields(Usage)


class Aborted(RclaudeError):
    """The user answered no."""


@attrs.frozen
class Loaded:
    """The config file and flags, merged: flags win."""

    name: str
    config: DeploymentConfig
    provider: str
    backend: str | None
    #: A config file or flag said something: ``config`` is the user's, not the defaults.
    config_given: bool = False


def config_file_argument(parser: argparse.ArgumentParser) -> argparse._ArgumentGroup:
    group = parser.add_argument_group("deployment (override the config file)")
    group.add_argument("--config", metavar="FILE", type=Path,
                       help="TOML file of DeploymentConfig fields "
                       f"(default: ./{DEFAULT_CONFIG_FILE} when present)")
    group.add_argument("--name", help=f"deployment name (default: {DEFAULT_NAME})")
    return group


def config_arguments(parser: argparse.ArgumentParser) -> None:
    """The config file, the name, and a flag per DeploymentConfig field (ServiceConfig's
    in a group of their own)."""
    group = config_file_argument(parser)
    _field_flags(group, DeploymentConfig)
    service = parser.add_argument_group(
        "service (with --mode service: the config file's [service] table)")
    _field_flags(service, ServiceConfig, dest_prefix=_SERVICE_DEST)


def usage_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("usage (override the config's [usage] table)")
    _field_flags(group, Usage)
    group.add_argument("--max-monthly-usd", type=float, metavar="USD",
                       help="budget: exit 1 when the estimate is over it")


def backend_argument(parser: Any) -> None:
    parser.add_argument("--backend", metavar="URL",
                        help="where the stack's state lives (default: ~/.rclaude/state; "
                        "'s3://bucket/prefix?region=...' for teams)")


def task_source_arguments(parser: argparse.ArgumentParser) -> None:
    """Where tasks run: the provider, and for ECS the stack's outputs."""
    group = parser.add_argument_group("where tasks run")
    group.add_argument("--provider", choices=PROVIDERS,
                       help="ecs-ec2: the deployed stack (default); local: processes here")
    group.add_argument("--outputs", metavar="FILE", type=Path,
                       help="the stack's outputs as `pulumi stack output --json` prints them "
                       "(a stack deployed elsewhere); default: read from the stack's state")
    backend_argument(group)


#: The environment variable naming a service for every task verb (as ``--server``).
SERVER_ENV = "RCLAUDE_SERVER"


def server_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--server", nargs="?", const="", default=os.environ.get(SERVER_ENV), metavar="URL",
        help="run against a hosted service: its URL, or bare for the one `login` signed "
        f"in to last (default ${SERVER_ENV}; without it, the deployment here)")


def json_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="machine-readable output")


def task_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("task_id", metavar="TASK")


def verb(commands: Any, name: str, text: str, handler: Callable[[argparse.Namespace], int],
         *parts: Callable[[argparse.ArgumentParser], object]) -> argparse.ArgumentParser:
    """A subcommand: its name and help, the argument groups it shares with others, and
    the function that runs it; its own arguments are added to what this returns."""
    parser: argparse.ArgumentParser = commands.add_parser(name, help=text)
    for part in parts:
        part(parser)
    parser.set_defaults(handler=handler)
    return parser


def load(args: argparse.Namespace) -> Loaded:
    """The config file (``--config`` or ./rclaude.toml) with the flags over it."""
    data: dict[str, Any] = {}
    path: Path | None = getattr(args, "config", None)
    if path is None and Path(DEFAULT_CONFIG_FILE).is_file():
        path = Path(DEFAULT_CONFIG_FILE)
    if path is not None:
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except UnicodeDecodeError as exc:
            raise ConfigError("--config", str(path),
                              f"a TOML file in UTF-8 (byte {exc.start} is not)") from exc
        except OSError as exc:
            raise ConfigError(
                "--config", str(path), f"a readable TOML file ({exc.strerror})"
            ) from exc
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError("--config", str(path), f"valid TOML ({exc})") from exc
    extras = {key: data.pop(key, None) for key in CLI_KEYS}
    for key, value in extras.items():
        if value is not None and not isinstance(value, str):
            raise ConfigError(key, value, "a string")
    for key in _CONFIG_FLAGS:
        value = getattr(args, key, None)
        if value is not None:
            data[key] = value
    if getattr(args, "image", None) is not None:
        if getattr(args, "build_image", None) is not None:
            raise ConfigError("--build-image", args.build_image,
                              "omitted with --image (a given image is not built)")
        data["build_image"] = False
    service = {key[len(_SERVICE_DEST):]: value for key, value in vars(args).items()
               if key.startswith(_SERVICE_DEST) and value is not None}
    if service:
        table = data.get("service") or {}
        data["service"] = {**table, **service} if isinstance(table, dict) else table
    usage = {key: getattr(args, key) for key in _USAGE_FLAGS
             if getattr(args, key, None) is not None}
    if usage:
        table = data.get("usage", {})
        data["usage"] = {**table, **usage} if isinstance(table, dict) else table
    if getattr(args, "max_monthly_usd", None) is not None:
        data["max_monthly_usd"] = args.max_monthly_usd
    provider = getattr(args, "provider", None) or extras["provider"] or "ecs-ec2"
    if provider not in PROVIDERS:
        raise ConfigError("provider", provider, "one of " + ", ".join(map(repr, PROVIDERS)))
    return Loaded(name=getattr(args, "name", None) or extras["name"] or DEFAULT_NAME,
                  config=DeploymentConfig.from_mapping(data), provider=provider,
                  backend=getattr(args, "backend", None) or extras["backend"],
                  config_given=path is not None or bool(data))


def deployment(args: argparse.Namespace, *, for_tasks: bool = False) -> Deployment:
    """The Deployment the flags and config describe. For task verbs: the local provider,
    or the stack from ``--outputs``, or the stack in its backend."""
    loaded = load(args)
    if for_tasks and loaded.provider == "local":
        return Deployment(loaded.name, loaded.config, provider="local", plan_cache=True)
    outputs: Path | None = getattr(args, "outputs", None)
    if outputs is not None:
        try:
            text = outputs.read_text()
        except OSError as exc:
            raise ConfigError("--outputs", str(outputs),
                              f"a readable JSON file ({exc.strerror})") from exc
        # Only a config the user gave describes the stack (its capacity, for the queue).
        return Deployment.from_outputs(loaded.name, text,
                                       config=loaded.config if loaded.config_given else None,
                                       plan_cache=True)
    if for_tasks and not loaded.config_given:
        # The stack's own config.
        return Deployment.attach(loaded.name, backend=loaded.backend, plan_cache=True)
    # Plans from the cache: up's guards and the estimates skip the program when it ran before.
    return Deployment(loaded.name, loaded.config, backend=loaded.backend, plan_cache=True)


def local_tasks_hint(args: argparse.Namespace, error: Exception) -> str | None:
    """When a task verb looked for the deployed stack and could not find it (no Pulumi CLI,
    no stack) and this machine has local tasks of the deployment: what to add instead."""
    from ..errors import PulumiNotFoundError, StackNotFoundError

    if (not isinstance(error, PulumiNotFoundError | StackNotFoundError)
            or getattr(args, "provider", None) is not None
            or not hasattr(args, "outputs") or args.outputs is not None):
        return None
    try:
        name = load(args).name
    except ConfigError:
        return None
    tasks = local_tasks_dir(name)
    task_id = getattr(args, "task_id", None)
    if task_id is not None and is_task_id(task_id) and (tasks / task_id).is_dir():
        return (f"task {task_id} is a local task: add --provider local (or provider = "
                f'"local" in {DEFAULT_CONFIG_FILE})')
    if task_id is None and tasks.is_dir() and any(tasks.iterdir()):
        return (f"for the local tasks of {name!r} add --provider local (or provider = "
                f'"local" in {DEFAULT_CONFIG_FILE})')
    return None


def _json_default(value: Any) -> Any:
    if isinstance(value, dt.datetime):
        return value.isoformat()
    if isinstance(value, enum.Enum):
        return value.value
    if attrs.has(type(value)):
        return attrs.asdict(value)
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def env_pairs(items: list[str]) -> dict[str, str]:
    """``--env KEY=VALUE`` flags as a mapping (a ConfigError naming ``--env`` for one
    without a key or an ``=``)."""
    env = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ConfigError("--env", item, "KEY=VALUE")
        env[key] = value
    return env


def emit_json(data: Any, *, indent: int | None = 2) -> None:
    print(json.dumps(data, indent=indent, default=_json_default), flush=True)


#: The width of output that is not a terminal (a pipe, a file): wide enough that no table
#: shortens a resource type or a task id (`plan | grep LaunchTemplate` finds it); tables
#: take only the width their contents need.
PIPE_WIDTH = 4096


def console() -> Any:
    """A rich console on stdout: colours on a terminal only (and never with NO_COLOR); on
    a terminal its width, elsewhere :data:`PIPE_WIDTH`, so nothing piped is cut short."""
    from rich.console import Console

    return Console(highlight=False, width=None if sys.stdout.isatty() else PIPE_WIDTH)


def note(message: str) -> None:
    """A line for the person at the terminal, on stderr (stdout stays parseable)."""
    print(message, file=sys.stderr, flush=True)


def confirm(args: argparse.Namespace, question: str) -> None:
    """Ask yes/no on a terminal; without one, ``--yes`` must say it."""
    if getattr(args, "yes", False):
        return
    if not sys.stdin.isatty():
        raise ConfigError("--yes", False, f"--yes to {args.command} without a terminal to "
                          "confirm on")
    answer = input(f"{question} [y/N] ").strip().lower()
    if answer not in ("y", "yes"):
        raise Aborted(f"{args.command} cancelled; nothing changed")


_RELATIVE = re.compile(r"^(\d+(?:\.\d+)?)([smhd])$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_since(value: str) -> dt.datetime:
    """``--since``: an ISO time (UTC when it has no zone) or a duration back from now."""
    match = _RELATIVE.fullmatch(value)
    if match:
        seconds = float(match.group(1)) * _UNITS[match.group(2)]
        return dt.datetime.now(dt.UTC) - dt.timedelta(seconds=seconds)
    try:
        when = dt.datetime.fromisoformat(value)
    except ValueError:
        # argparse names the flag: "argument --since: got 'x'; allowed: ..."
        raise argparse.ArgumentTypeError(
            f"got {value!r}; allowed: an ISO 8601 time (2026-11-27T12:00) or a duration "
            "like 30s, 10m, 2h, 1d") from None
    return when if when.tzinfo else when.replace(tzinfo=dt.UTC)
