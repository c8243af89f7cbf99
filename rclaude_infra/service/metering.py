"""Usage records from the deployment's ledger: one per ended task, what it used (compute
and model, in micro-dollars, and tokens), and whether it is billed.

A record is inserted with ``ON CONFLICT DO NOTHING`` on its task id, so a task whose end
is seen twice (two looks, two workers, a worker restarted mid-pass) has one record. The
record is what ``/v1/usage`` and the usage page read, and what billing reports to Stripe.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from ..errors import ConfigError
from ..tasks.model import TaskNotFoundError
from .models import TaskRecord, UsagePeriod, UsageRecord
from .money import cents, micro_usd
from .plans import PlanBook
from .quotas import MODEL_KEY_SECRETS, account
from .store import insert_new

if TYPE_CHECKING:
    from ..deployment import Deployment

log = logging.getLogger(__name__)

#: Ended tasks recorded by one pass.
BATCH = 200


Usage = dict[str, Any]


def ledger_usage(deployment: Deployment, record: TaskRecord) -> Usage:
    """What the task used, from the deployment's ledger (nothing for a task that never
    started, or one the deployment no longer has)."""
    empty: Usage = {"executions": 0, "compute_micro_usd": 0, "model_micro_usd": 0,
                    "input_tokens": 0, "output_tokens": 0}
    if record.dispatched_at is None:
        return empty
    task = deployment.task(record.id)
    try:
        cost = task.cost()
    except (TaskNotFoundError, ConfigError):
        return {**empty, "executions": 1}
    tokens = {"input_tokens": 0, "output_tokens": 0}
    try:
        agent = task.result().agent
    except TaskNotFoundError:
        agent = None
    for usage in (agent.model_usage.values() if agent is not None else ()):
        for key, field in (("inputTokens", "input_tokens"), ("outputTokens", "output_tokens")):
            value = usage.get(key)
            if isinstance(value, int) and not isinstance(value, bool) and value > 0:
                tokens[field] += value
    return {"executions": 1, "compute_micro_usd": micro_usd(cost.compute_usd),
            "model_micro_usd": micro_usd(cost.model_usd), **tokens}


def record_usage(session: Session, plans: PlanBook,
                 usage_of: Callable[[TaskRecord], Usage], *, billing: bool,
                 user_id: int | None = None, limit: int = BATCH) -> int:
    """Record the usage of ended tasks (of ``user_id``, or everyone's) that have none yet;
    how many this call recorded. ``usage_of`` reads a task's use (:func:`ledger_usage`);
    ``billing``: Stripe is set up, so a record of a paying customer's overage or
    service-key model use is billable."""
    query = (select(TaskRecord)
             .outerjoin(UsageRecord, UsageRecord.task_id == TaskRecord.id)
             .where(TaskRecord.final_status.is_not(None), UsageRecord.id.is_(None)))
    if user_id is not None:
        query = query.where(TaskRecord.user_id == user_id)
    missing = session.scalars(query.order_by(TaskRecord.created_at).limit(limit)).all()
    recorded = 0
    for record in missing:
        try:
            used = usage_of(record)
        except Exception as exc:  # the ledger unreadable now: the next pass tries again
            log.warning("usage of %s not recorded yet: %s", record.id, type(exc).__name__)
            continue
        found = account(session, record.user_id, plans, record.created_at)
        spec = json.loads(record.spec)
        service_key = bool(spec.get("prompt")) and not set(
            spec.get("secrets") or ()) & set(MODEL_KEY_SECRETS)
        allowance = found.limits.monthly_executions
        overage = int(bool(used["executions"]) and found.limits.overage
                      and allowance is not None and (record.execution_no or 0) > allowance)
        billable = billing and found.customer is not None and (
            bool(overage) or (service_key and cents(used["model_micro_usd"]) > 0))
        period = record.period_start or found.period_start
        if not insert_new(session, UsageRecord, task_id=record.id, user_id=record.user_id,
                          period_start=period, overage=overage, service_key=service_key,
                          billable=billable, **used):
            continue  # recorded by another pass: its refund, if any, was made with it
        recorded += 1
        if not used["executions"] and record.execution_no is not None:
            # It never ran (cancelled while queued, or it could not start): the execution
            # it claimed is given back, once, in the transaction of its record.
            session.execute(update(UsagePeriod).where(
                UsagePeriod.user_id == record.user_id, UsagePeriod.period_start == period,
                UsagePeriod.executions > 0).values(executions=UsagePeriod.executions - 1)
                .execution_options(synchronize_session=False))
    return recorded
