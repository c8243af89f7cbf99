"""A user's plan now, and the quota a new task claims from it before it is recorded.

The month's executions are one counter row per user and billing period, claimed by one
conditional ``UPDATE ... WHERE executions < allowance``: on PostgreSQL the second of two
processes racing for the last execution waits on the row and then matches nothing, and on
SQLite writers take turns, so exactly one wins. The claim holds the row until the request
commits, so the count of the user's tasks not ended, read after it, is not raced either.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from typing import Any

import attrs
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from ..tasks.spec import TaskSpec
from .models import Subscription, UsagePeriod, UsageRecord, now
from .money import usd
from .plans import Limits, Plan, PlanBook, billing_period
from .problems import Problem
from .store import insert_new

#: Where a refused caller is sent to change plan (the dashboard's usage page).
UPGRADE_PATH = "/usage"
#: The secrets that carry a user's own model key (for a plan without the service's).
MODEL_KEY_SECRETS = ("ANTHROPIC_API_KEY", "CLAUDE_CODE_OAUTH_TOKEN")


@attrs.frozen
class Account:
    """A user's plan as it applies now: the plan, its limits with the user's own, the
    billing period, and Stripe's side when there is one."""

    plan: Plan
    limits: Limits
    period_start: dt.datetime
    period_end: dt.datetime
    subscription: Subscription | None = attrs.field(eq=False, default=None)
    #: Why the plan in effect is not the one recorded (a grace period ran out).
    note: str | None = None

    @property
    def customer(self) -> str | None:
        return None if self.subscription is None else self.subscription.stripe_customer

    def to_dict(self) -> dict[str, Any]:
        sub = self.subscription
        return {"plan": self.plan.to_dict(), "limits": self.limits.to_dict(),
                "period_start": self.period_start.isoformat(),
                "period_end": self.period_end.isoformat(),
                "subscription_status": None if sub is None else sub.status,
                "grace_until": None if sub is None or sub.grace_until is None
                else sub.grace_until.isoformat(),
                "note": self.note}


def account(session: Session, user_id: int, plans: PlanBook,
            at: dt.datetime | None = None) -> Account:
    """``user_id``'s plan at ``at`` (now): a plan no longer in the plans file, or a
    failed payment's grace run out, is the default plan."""
    at = at or now()
    sub = session.get(Subscription, user_id)
    default = plans["free"]
    if sub is None:
        start, end = billing_period(at)
        return Account(default, default.limits, start, end)
    start, end = billing_period(at, sub.period_start, sub.period_end)
    note = None
    plan = plans.plans.get(sub.plan)
    if plan is None:
        plan, note = default, f"plan {sub.plan!r} is not offered any more"
    elif sub.grace_until is not None and at >= sub.grace_until:
        plan, note = default, "a payment failed and its grace period ended"
    overrides = json.loads(sub.overrides) if sub.overrides and plan.name == sub.plan else {}
    return Account(plan, plan.with_overrides(overrides), start, end, sub, note)


def executions_used(session: Session, user_id: int, period_start: dt.datetime) -> int:
    return session.scalar(select(UsagePeriod.executions).where(
        UsagePeriod.user_id == user_id, UsagePeriod.period_start == period_start)) or 0


def spent_usd(session: Session, user_id: int, period_start: dt.datetime) -> float:
    """The period's recorded spend (model and compute) of the user's ended tasks."""
    micro = session.scalar(select(func.coalesce(func.sum(
        UsageRecord.compute_micro_usd + UsageRecord.model_micro_usd), 0)).where(
        UsageRecord.user_id == user_id, UsageRecord.period_start == period_start))
    return usd(int(micro or 0))


def held_to_plan(spec: TaskSpec, found: Account) -> TaskSpec:
    """``spec`` held to the plan: a prompt task's model budget at most the plan's per-task
    cap (the cap when it names none), and on a plan without the service's model key, the
    user's own key passed as a secret. A 402 problem naming the field otherwise."""
    limits = found.limits
    if spec.prompt is None:
        return spec
    if not limits.service_model_key and not set(spec.secrets) & set(MODEL_KEY_SECRETS):
        raise Problem(402, f"the {found.plan.title} plan does not include the service's "
                      "model key: pass your own as a secret (" + " or ".join(
                          MODEL_KEY_SECRETS) + "), or upgrade", field="secrets",
                      limit="service_model_key", upgrade=UPGRADE_PATH)
    cap = limits.task_budget_usd
    if cap is None:
        return spec
    if spec.max_budget_usd is None:
        return attrs.evolve(spec, max_budget_usd=cap)
    if spec.max_budget_usd > cap:
        raise Problem(402, f"max_budget_usd: the {found.plan.title} plan allows at most "
                      f"${cap:.2f} of model use a task", field="max_budget_usd",
                      limit="task_budget_usd", allowed=cap, upgrade=UPGRADE_PATH)
    return spec


def claim(session: Session, user_id: int, found: Account, not_ended: Callable[[int], int],
          *, ceiling: int | None = None) -> int:
    """Claim one execution of the period for a new task: its number in the period.
    Raises a 402 problem over the month's executions or spend (the plan's limits), a 429
    over the tasks that may run at once (the plan's, or the service's ``ceiling`` when
    lower; ``not_ended(limit)`` counts the user's tasks not ended, exactly up to
    ``limit``); each names the limit, its figure, when it resets and where to upgrade."""
    limits = found.limits
    concurrency = min(limits.concurrency, ceiling or limits.concurrency)
    resets = found.period_end.isoformat()
    allowance = limits.monthly_executions
    bump = update(UsagePeriod).where(UsagePeriod.user_id == user_id,
                                     UsagePeriod.period_start == found.period_start)
    if allowance is not None and not limits.overage:
        bump = bump.where(UsagePeriod.executions < allowance)
    # RETURNING: the task's number in the period comes with the claim (no second read).
    bump = bump.values(executions=UsagePeriod.executions + 1).returning(
        UsagePeriod.executions).execution_options(synchronize_session=False)
    number = session.execute(bump).scalar()
    if number is None:  # no row yet (made here, or by a request racing this one), or full
        insert_new(session, UsagePeriod, user_id=user_id, period_start=found.period_start,
                   executions=0)
        number = session.execute(bump).scalar()
    if number is None:
        raise Problem(402, f"the {found.plan.title} plan allows {allowance} executions a "
                      f"billing period, and they are used; they reset at {resets}",
                      limit="monthly_executions", allowed=allowance, resets_at=resets,
                      upgrade=UPGRADE_PATH)
    cap = limits.monthly_spend_usd
    if cap is not None and spent_usd(session, user_id, found.period_start) >= cap:
        raise Problem(402, f"the {found.plan.title} plan allows ${cap:.2f} of spend a "
                      f"billing period, and it is spent; it resets at {resets}",
                      limit="monthly_spend_usd", allowed=cap, resets_at=resets,
                      upgrade=UPGRADE_PATH)
    running = not_ended(concurrency)
    if running >= concurrency:
        raise Problem(429, f"{concurrency} task{'s' if concurrency != 1 else ''} of yours "
                      f"may run at once on the {found.plan.title} plan, and {running} are "
                      "not ended; retry when one ends",
                      limit="concurrency", allowed=concurrency,
                      upgrade=UPGRADE_PATH, headers={"Retry-After": "30"})
    return int(number)


def assign_plan(session: Session, user_id: int, plans: PlanBook, name: str,
                overrides: dict[str, Any] | None = None) -> Account:
    """Put ``user_id`` on plan ``name`` by hand (an admin's choice: no Stripe), with their
    own limits ``overrides`` over the plan's (checked as the plan's are); the account."""
    plan = plans[name]
    chosen = {k: v for k, v in (overrides or {}).items() if v is not None}
    plan.with_overrides(chosen)  # a bad figure is a ConfigError naming its field
    insert_new(session, Subscription, user_id=user_id, plan=name, state_at=0, invoice_at=0)
    sub = session.get(Subscription, user_id)
    assert sub is not None
    sub.plan, sub.overrides, sub.grace_until = name, json.dumps(chosen) if chosen else None, None
    session.flush()
    return account(session, user_id, plans)
