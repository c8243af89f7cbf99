"""Money adds up, on SQLite and on PostgreSQL: over random sequences of tasks ending,
metering passes, reports (some answers lost, some refused, the billing process restarted)
and events seen twice, what
Stripe's meters bill equals what the ledger says was used, to the cent, and every usage
record is made once. The fake Stripe is real HTTP, driven by the ``stripe`` SDK."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any

import pytest
from fake_stripe import PRO_PRICE, SECRET_KEY, WEBHOOK_SECRET, FakeStripe
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import started


@pytest.fixture(scope="module", name="world", params=["sqlite", "postgres"])
def _world(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
           ) -> Iterator[tuple[Any, FakeStripe]]:
    from postgres_server import new_database

    from rclaude_infra.service import ServiceSettings
    from rclaude_infra.service.store import Database, make_engine, migrate

    fake = FakeStripe()
    folder: Path = tmp_path_factory.mktemp("ledger")
    url = (f"sqlite:///{folder / 'db.sqlite'}" if request.param == "sqlite" else
           new_database(request.getfixturevalue("postgres_admin_url")))
    engine = make_engine(ServiceSettings(database_url=url))
    migrate(engine)
    with started(fake.app()) as url:
        fake.base = url
        yield Database(engine), fake
    engine.dispose()


TASK = st.fixed_dictionaries({
    "model_usd": st.floats(0, 3, allow_nan=False).map(lambda v: round(v, 7)),
    "compute_usd": st.floats(0, 0.5, allow_nan=False).map(lambda v: round(v, 7)),
    "prompt": st.booleans(), "own_key": st.booleans(), "started": st.booleans()})
STEP = st.sampled_from(["end", "end", "end", "meter", "meter", "report", "lose", "fail",
                        "restart", "see-again"])


@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(tasks=st.lists(TASK, min_size=1, max_size=12), steps=st.lists(STEP, max_size=40),
       allowance=st.integers(1, 6))
def test_billed_usage_equals_ledger_usage_to_the_cent(world: tuple[Any, FakeStripe],
                                                      tasks: list[dict[str, Any]],
                                                      steps: list[str],
                                                      allowance: int) -> None:
    from sqlalchemy import func, select

    from rclaude_infra.service import accounts, quotas
    from rclaude_infra.service.billing import Billing
    from rclaude_infra.service.billing_settings import StripeSettings
    from rclaude_infra.service.metering import record_usage
    from rclaude_infra.service.models import TaskRecord, UsageRecord
    from rclaude_infra.service.money import micro_usd
    from rclaude_infra.service.plans import PlanBook

    db, fake = world
    stripe_settings = StripeSettings(secret_key=SECRET_KEY, webhook_secret=WEBHOOK_SECRET,
                                     pro_price=PRO_PRICE, api_base=fake.base)
    billing = Billing(stripe_settings)
    plans = PlanBook.load()
    with db.session() as session:
        user = accounts.add_user(session, f"u{fake.new_id('x')}@example.com")
        user_id = user.id
        customer = billing.customer(session, user)
        quotas.assign_plan(session, user_id, plans, "pro",
                           {"monthly_executions": allowance})
    ledger: dict[str, dict[str, Any]] = {}
    queue = list(tasks)

    def usage_of(record: TaskRecord) -> dict[str, Any]:
        seen = ledger[record.id]
        if not seen["started"]:
            return {"executions": 0, "compute_micro_usd": 0, "model_micro_usd": 0,
                    "input_tokens": 0, "output_tokens": 0}
        return {"executions": 1, "compute_micro_usd": micro_usd(seen["compute_usd"]),
                "model_micro_usd": micro_usd(seen["model_usd"] if seen["prompt"] else 0),
                "input_tokens": 10, "output_tokens": 5}

    def end_one() -> None:
        task = queue.pop(0)
        with db.session() as session:
            found = quotas.account(session, user_id, plans)
            number = quotas.claim(session, user_id, found, lambda limit: 0)
            task_id = f"t-{fake.new_id('t')}"
            spec = {"prompt": "go"} if task["prompt"] else {"command": "true"}
            if task["own_key"]:
                spec["secrets"] = ["ANTHROPIC_API_KEY"]
            at = dt.datetime.now(dt.UTC)
            session.add(TaskRecord(id=task_id, user_id=user_id, request_hash="x",
                                   spec=json.dumps(spec), created_at=at,
                                   final_status="SUCCEEDED", execution_no=number,
                                   dispatched_at=at if task["started"] else None,
                                   dispatch_attempts=0))
            ledger[task_id] = {**task, "number": number}

    def meter() -> None:
        with db.session() as session:
            record_usage(session, plans, usage_of, billing=True, user_id=user_id)

    for step in steps:
        if step == "end" and queue:
            end_one()
        elif step == "meter":
            meter()
        elif step == "see-again":  # the same ends seen by a second worker at once
            meter()
            meter()
        elif step == "report":
            with db.session() as session:
                billing.report_usage(session)
        elif step == "lose":
            fake.lose_meter_answers += 1
        elif step == "fail":
            fake.fail_meter_events += 1
        elif step == "restart":
            billing = Billing(stripe_settings)
    while queue:
        end_one()
    fake.lose_meter_answers = fake.fail_meter_events = 0
    meter()
    with db.session() as session:
        billing.report_usage(session)

    def billed(meter_name: str) -> int:
        return sum(int(e["payload"]["value"]) for e in fake.meter_events.values()
                   if e["event_name"] == meter_name
                   and e["payload"]["stripe_customer_id"] == customer)

    ran = [t for t in ledger.values() if t["started"]]
    # Beyond the allowance by the number each claim got (a task that never ran gave its
    # execution back, so a later claim may get the same number again).
    overage = sum(1 for t in ledger.values() if t["started"] and t["number"] > allowance)
    # The expectation in this test's own arithmetic, not the service's helpers: each
    # task's dollars as whole micro-dollars (half up), then whole cents (half up).
    def micro(usd: float) -> int:
        return int((Decimal(str(usd)) * 1_000_000).quantize(Decimal(1), ROUND_HALF_UP))

    model_cents = sum((micro(t["model_usd"]) + 5_000) // 10_000 for t in ran
                      if t["prompt"] and not t["own_key"])
    assert billed(stripe_settings.executions_meter) == overage
    assert billed(stripe_settings.model_meter) == model_cents
    with db.session() as session:
        records = session.scalar(select(func.count()).select_from(UsageRecord).where(
            UsageRecord.user_id == user_id))
        assert records == len(ledger)  # one each, however often an end was seen
        compute = session.scalar(select(func.sum(UsageRecord.compute_micro_usd)).where(
            UsageRecord.user_id == user_id))
        assert compute == sum(micro(t["compute_usd"]) for t in ran)
        assert session.scalar(select(func.count()).select_from(UsageRecord).where(
            UsageRecord.user_id == user_id, UsageRecord.billable.is_(True),
            UsageRecord.reported_at.is_(None))) == 0
