"""The service's plans as data: what each allows a month, read from a TOML file the
operator keeps (``RCLAUDE_PLANS_FILE``) or the default below.

A plan names its monthly executions (``None``: no limit), how many tasks may run at
once, the spend caps (one task's model budget, and a month's model and compute), whether
tasks may use the service's own model key, and whether executions beyond the allowance
are billed (through Stripe) rather than refused. An admin can set any of the limits for one
user (the enterprise plan's "by arrangement"); those override the plan's.
"""

from __future__ import annotations

import datetime as dt
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import attrs
from dateutil.relativedelta import relativedelta

from ..errors import ConfigError

PLAN_NAME = r"[a-z][a-z0-9-]{0,31}"
DEFAULT_PLAN = "free"

#: The plans a service starts with: free (100 executions, one at a time), Pro ($29 a
#: month, more of both and billed overage) and Enterprise (limits per customer).
DEFAULT_PLANS_TOML = """\
[plans.free]
title = "Free"
price_usd_month = 0
monthly_executions = 100
concurrency = 1
task_budget_usd = 1.0
monthly_spend_usd = 10.0
service_model_key = false
overage = false

[plans.pro]
title = "Pro"
price_usd_month = 29
monthly_executions = 1000
concurrency = 5
task_budget_usd = 10.0
monthly_spend_usd = 500.0
service_model_key = true
overage = true

[plans.enterprise]
title = "Enterprise"
monthly_executions = 10000
concurrency = 50
task_budget_usd = 50.0
monthly_spend_usd = 10000.0
service_model_key = true
overage = true
"""


def _limit(*, integer: bool, optional: bool = True) -> Any:
    """A positive whole number (``integer``) or positive number; ``None`` when
    ``optional``."""

    def check(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
        if value is None and optional:
            return
        kinds = (int,) if integer else (int, float)
        if isinstance(value, bool) or not isinstance(value, kinds) or value <= 0:
            what = "a positive whole number" if integer else "a positive number"
            raise ConfigError(attribute.name, value,
                              what + (" (or none: no limit)" if optional else ""))
    return check


@attrs.frozen
class Limits:
    """What a user may do in a billing period; ``None`` is no limit."""

    monthly_executions: int | None = attrs.field(default=None,
                                                 validator=_limit(integer=True))
    concurrency: int = attrs.field(default=1, validator=_limit(integer=True, optional=False))
    task_budget_usd: float | None = attrs.field(default=None, validator=_limit(integer=False))
    monthly_spend_usd: float | None = attrs.field(default=None,
                                                  validator=_limit(integer=False))
    service_model_key: bool = False
    overage: bool = False

    def to_dict(self) -> dict[str, Any]:
        return attrs.asdict(self)


#: The limits an admin may set for one user (``users plan --executions`` and so on).
OVERRIDABLE = ("monthly_executions", "concurrency", "task_budget_usd", "monthly_spend_usd")


@attrs.frozen
class Plan:
    """A plan: its name, the title people see, its monthly price and its limits."""

    name: str
    title: str
    limits: Limits
    price_usd_month: float | None = None

    def with_overrides(self, overrides: Mapping[str, Any]) -> Limits:
        """The plan's limits with a user's own in place of those set."""
        chosen = {k: v for k, v in overrides.items() if k in OVERRIDABLE and v is not None}
        return attrs.evolve(self.limits, **chosen)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "title": self.title,
                "price_usd_month": self.price_usd_month, **self.limits.to_dict()}


@attrs.frozen
class PlanBook:
    """The service's plans by name; the default is ``free``."""

    plans: Mapping[str, Plan]

    def __getitem__(self, name: str) -> Plan:
        try:
            return self.plans[name]
        except KeyError:
            raise ConfigError("plan", name, "one of " + ", ".join(sorted(self.plans))
                              ) from None

    def __contains__(self, name: object) -> bool:
        return name in self.plans

    @classmethod
    def from_toml(cls, text: str, *, source: str = "plans") -> PlanBook:
        """Plans from TOML (``[plans.NAME]`` tables); each bad field is named."""
        import re

        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(source, "", f"TOML ({exc})") from None
        tables = data.get("plans")
        if not isinstance(tables, dict) or not tables:
            raise ConfigError(f"{source}: plans", tables, "[plans.NAME] tables")
        plans = {}
        limit_fields = {a.name for a in attrs.fields(Limits)}
        for name, table in tables.items():
            where = f"{source}: plans.{name}"
            if not re.fullmatch(PLAN_NAME, name) or not isinstance(table, dict):
                raise ConfigError(where, name, f"a table named {PLAN_NAME}")
            unknown = set(table) - limit_fields - {"title", "price_usd_month"}
            if unknown:
                raise ConfigError(f"{where}.{sorted(unknown)[0]}", table[sorted(unknown)[0]],
                                  "one of title, price_usd_month, " + ", ".join(
                                      sorted(limit_fields)))
            for flag in ("service_model_key", "overage"):
                if not isinstance(table.get(flag, False), bool):
                    raise ConfigError(f"{where}.{flag}", table[flag], "true or false")
            try:
                limits = Limits(**{k: v for k, v in table.items() if k in limit_fields})
            except ConfigError as exc:
                raise ConfigError(f"{where}.{exc.field}", exc.value, exc.allowed) from None
            price = table.get("price_usd_month")
            if price is not None and (isinstance(price, bool) or not isinstance(
                    price, int | float) or price < 0):
                raise ConfigError(f"{where}.price_usd_month", price, "a price of 0 or more")
            plans[name] = Plan(name=name, title=str(table.get("title", name.title())),
                               limits=limits, price_usd_month=price)
        if DEFAULT_PLAN not in plans:
            raise ConfigError(f"{source}: plans", sorted(plans),
                              f"a [plans.{DEFAULT_PLAN}] table (where new users start)")
        return cls(plans)

    @classmethod
    def load(cls, path: str | Path | None = None) -> PlanBook:
        """The plans in ``path``, or the default plans."""
        if path is None:
            return cls.from_toml(DEFAULT_PLANS_TOML, source="default plans")
        file = Path(path)
        try:
            text = file.read_text()
        except OSError as exc:
            raise ConfigError("plans_file", str(file), f"a readable TOML file ({exc.strerror})"
                              ) from None
        return cls.from_toml(text, source=str(file))


def billing_period(at: dt.datetime, start: dt.datetime | None = None,
                   end: dt.datetime | None = None) -> tuple[dt.datetime, dt.datetime]:
    """The billing period holding ``at``: the subscription's (``start``, ``end``), rolled
    on by whole months from ``start`` when ``at`` is past it (the renewal not heard of
    yet; a month keeps the anchor's day where it has it, as Stripe does: Jan 31, Feb 28,
    Mar 31), or else the calendar month (UTC).

    >>> anchor = dt.datetime(2026, 1, 31, tzinfo=dt.UTC)
    >>> [d.date().isoformat() for d in billing_period(
    ...     dt.datetime(2026, 3, 5, tzinfo=dt.UTC), anchor, anchor + relativedelta(months=1))]
    ['2026-02-28', '2026-03-31']
    """
    if start is None or end is None or end <= start:
        first = at.astimezone(dt.UTC).replace(day=1, hour=0, minute=0, second=0,
                                             microsecond=0)
        return first, first + relativedelta(months=1)
    if start <= at < end:
        return start, end
    months = (at.year - start.year) * 12 + at.month - start.month
    if start + relativedelta(months=months) > at:
        months -= 1
    return start + relativedelta(months=months), start + relativedelta(months=months + 1)
