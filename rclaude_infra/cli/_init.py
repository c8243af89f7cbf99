"""``init`` (and ``init-deployment --mode self-hosted``, its name in the first CLI): ask
for the few choices that matter, show what they cost, check the machine and the account,
and write them to rclaude.toml. Every question has a flag; ``--yes`` takes the defaults
for the rest, so the wizard is scriptable."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..config import DeploymentConfig, validate_name
from ..deployment import DEFAULT_NAME, Deployment
from ..errors import ConfigError, PriceNotFoundError
from ..prices import PriceBook, snapshot_regions
from ..service_config import DEPLOYMENT_MODES
from ._common import DEFAULT_CONFIG_FILE, console, note

#: The instance types the wizard prices for you (any known type is accepted).
SUGGESTED_TYPES = ("t3.medium", "t3.large", "m6i.large", "m7i.large", "c6i.large",
                   "t4g.medium", "t4g.large", "m7g.large")
_TRIES = 3


def add_parsers(commands: Any) -> None:
    init = commands.add_parser(
        "init", help="set up rclaude.toml: region, instance types and prices, spot, budget")
    _arguments(init)
    alias = commands.add_parser(
        "init-deployment", help="the same as init (the first CLI's name for it)")
    _arguments(alias)


def _arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--name", help=f"deployment name (default: {DEFAULT_NAME})")
    parser.add_argument("--region")
    parser.add_argument("--instance-type", dest="instance_types", action="append",
                        metavar="TYPE", help="repeat for several types")
    parser.add_argument("--spot", action=argparse.BooleanOptionalAction, default=None)
    parser.add_argument("--max-instances", type=int, metavar="N")
    parser.add_argument("--tasks-per-day", type=float, metavar="N")
    parser.add_argument("--task-minutes", type=float, metavar="MIN")
    parser.add_argument("--max-monthly-usd", type=float, metavar="USD",
                        help="budget: up refuses a stack estimated over it")
    parser.add_argument("--mode", choices=DEPLOYMENT_MODES, default="self-hosted",
                        help="self-hosted (default): tasks for this account's people; "
                        "service: the same stack plus the hosted service (asks its domain)")
    service = parser.add_argument_group("with --mode service")
    service.add_argument("--domain", help="the service's DNS name (its certificate's)")
    service.add_argument("--zone-id", help="the Route 53 hosted zone of --domain: the stack "
                         "makes and proves the certificate there")
    service.add_argument("--certificate-arn", help="an issued ACM certificate for --domain "
                         "instead of --zone-id")
    service.add_argument("--http-only", action="store_true", default=None,
                         help="plain HTTP, no certificate (a trial: tokens in the clear)")
    parser.add_argument("--file", type=Path, default=Path(DEFAULT_CONFIG_FILE),
                        help=f"where to write (default: ./{DEFAULT_CONFIG_FILE})")
    parser.add_argument("--force", action="store_true", help="overwrite an existing file")
    parser.add_argument("--yes", "-y", action="store_true",
                        help="ask nothing: flags, else defaults")
    parser.add_argument("--no-check", dest="check", action="store_false",
                        help="skip the prerequisite check (credentials, Pulumi CLI)")
    parser.set_defaults(handler=_init)


class _Wizard:
    """Questions on stdin, each answer checked at once; a bad one is asked again."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.data: dict[str, Any] = {}
        self.usage: dict[str, Any] = {}

    def ask(self, field: str, question: str, default: Any, parse: Callable[[str], Any],
            show: Callable[[Any], str] = str, *, store: Callable[[Any], None]) -> Any:
        given = getattr(self.args, field, None)
        if given is not None or self.args.yes:
            value = default if given is None else given
            store(value)
            self._validate(field)
            return value
        for attempt in range(_TRIES):
            try:
                raw = input(f"{question} [{show(default)}]: ").strip()
            except EOFError:
                raw = ""  # input ended: the defaults for the rest
            try:
                value = default if raw == "" else parse(raw)
                store(value)
                self._validate(field)
                return value
            except (ConfigError, ValueError) as exc:
                if attempt == _TRIES - 1:
                    raise
                print(f"  {exc}")
        raise AssertionError("unreachable")

    def _validate(self, field: str) -> None:
        try:
            DeploymentConfig.from_mapping({**self.data, "usage": self.usage})
        except ConfigError as exc:
            # Only this answer's own errors: later answers may fix the others.
            if exc.field.split(".")[-1] == field:  # "usage.task_minutes" is task_minutes
                raise


def _parse_types(raw: str) -> list[str]:
    return [t.strip() for t in raw.replace(" ", ",").split(",") if t.strip()]


def _parse_yes_no(raw: str) -> bool:
    if raw.lower() in ("y", "yes", "true"):
        return True
    if raw.lower() in ("n", "no", "false"):
        return False
    raise ConfigError("spot", raw, "y or n")


def _parse_budget(raw: str) -> float | None:
    return None if raw.lower() in ("none", "-") else float(raw)


def _init(args: argparse.Namespace) -> int:
    import tomli_w

    path: Path = args.file
    if path.exists() and not args.force:
        raise ConfigError("--force", False, f"--force to overwrite {path}, which exists")
    w = _Wizard(args)
    defaults = DeploymentConfig()

    def check_name(value: str) -> None:
        validate_name(value)

    name = w.ask("name", "Deployment name", DEFAULT_NAME, str, store=check_name)
    region = w.ask("region", "AWS region", defaults.region, str,
                   store=lambda v: w.data.__setitem__("region", v))
    if args.mode == "service":
        _service_questions(w)
    _show_prices(region)
    w.ask("instance_types", "Instance types (comma-separated)", list(defaults.instance_types),
          _parse_types, ", ".join, store=lambda v: w.data.__setitem__("instance_types", v))
    w.ask("spot", "Use spot instances (about 60% cheaper, can be interrupted)", defaults.spot,
          _parse_yes_no, lambda v: "Y/n" if v else "y/N",
          store=lambda v: w.data.__setitem__("spot", v))
    w.ask("max_instances", "Most instances at once", defaults.max_instances, int,
          store=lambda v: w.data.__setitem__("max_instances", v))
    w.ask("tasks_per_day", "Tasks per day, for the estimate", defaults.usage.tasks_per_day,
          float, lambda v: f"{v:g}", store=lambda v: w.usage.__setitem__("tasks_per_day", v))
    w.ask("task_minutes", "Minutes per task", defaults.usage.task_minutes, float,
          lambda v: f"{v:g}", store=lambda v: w.usage.__setitem__("task_minutes", v))
    w.ask("max_monthly_usd", "Monthly budget in USD ('none' for no limit)", None,
          _parse_budget, lambda v: "none" if v is None else f"{v:g}",
          store=lambda v: (w.data.__setitem__("max_monthly_usd", v) if v is not None
                           else w.data.pop("max_monthly_usd", None)))
    config = DeploymentConfig.from_mapping({**w.data, "usage": w.usage})

    deployment = Deployment(name, config, plan_cache=True)
    out = console()
    if args.check:
        out.print(deployment.check())
    _show_estimate(deployment)
    document = {"name": name, **w.data, "usage": w.usage}
    path.write_text(f"# rclaude-infra deployment; `rclaude-infra plan` shows it, "
                    f"`rclaude-infra up` deploys it.\n{tomli_w.dumps(document)}")
    note(f"wrote {path}; next: rclaude-infra cost, then rclaude-infra up")
    return 0


def _service_questions(w: _Wizard) -> None:
    """``--mode service``: where people reach the service, and its TLS."""
    w.data["mode"] = "service"
    service: dict[str, Any] = w.data.setdefault("service", {})
    if w.args.http_only:
        service["http_only"] = True
        note("warning: --http-only serves the service in plain HTTP: sign-in links, tokens "
             "and cookies cross the network in the clear. For a trial only.")
        return
    w.ask("domain", "The service's domain (its certificate's name)", None, str,
          lambda v: v or "none", store=lambda v: service.__setitem__("domain", v))
    if w.args.certificate_arn is not None:
        service["certificate_arn"] = w.args.certificate_arn
        w._validate("certificate_arn")
        return
    w.ask("zone_id", "Its Route 53 hosted zone id (the stack proves the certificate there)",
          None, str, lambda v: v or "none", store=lambda v: service.__setitem__("zone_id", v))


def _show_prices(region: str) -> None:
    from ..cost import instance_prices

    if region not in snapshot_regions():
        note(f"(no price snapshot for {region}: `rclaude-infra cost --live` prices it)")
        return
    from ..instance_types import instance_types

    book = PriceBook.snapshot(region)
    known = instance_types()
    rows = []
    for name in SUGGESTED_TYPES:
        if name in known:
            try:
                rows += instance_prices([name], book)
            except PriceNotFoundError:
                continue
    from .._display import instance_prices_renderable

    console().print(instance_prices_renderable(rows, region))


def _show_estimate(deployment: Deployment) -> None:
    region = deployment.config.region
    other = None if region == "us-east-1" else "us-east-1"
    try:
        book = PriceBook.snapshot(region, other_rates_from=other)
        estimate = deployment.estimate_cost(prices=book)
    except PriceNotFoundError as exc:
        note(f"(no estimate: {exc})")
        return
    console().print(estimate)
    limit = deployment.config.max_monthly_usd
    if limit is not None and estimate.monthly > limit:
        note(f"warning: the estimate (${estimate.monthly:,.2f}/month) is over the budget "
             f"(${limit:,.2f}); up will refuse it until one of them changes")
