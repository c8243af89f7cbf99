"""Quotas before dispatch: a plan's executions, spend and concurrency, each refusal naming
the limit, its figure, when it resets and where to upgrade (402 for a plan's limit, 429
for what clears when a task ends); and the last execution claimed by two connections at
once, on SQLite and on PostgreSQL: exactly one wins."""

from __future__ import annotations

import datetime as dt
import threading
from pathlib import Path
from typing import Any

import httpx
import pytest

from conftest import Service, admin, wait_done

TWO_A_MONTH = """
[plans.free]
monthly_executions = 2
concurrency = 5
task_budget_usd = 1.0
"""


@pytest.mark.plans(None)
def test_free_runs_one_task_at_a_time(service: Service, alice: str) -> None:
    with service.client(alice) as client:
        first = client.post("/v1/tasks", json={"command": "sleep 300"})
        assert first.status_code == 201
        refused = client.post("/v1/tasks", json={"command": "true"})
        assert refused.status_code == 429 and refused.headers["Retry-After"] == "30"
        body = refused.json()
        assert (body["limit"], body["allowed"], body["upgrade"]) == ("concurrency", 1, "/usage")
        assert "1 task of yours may run at once on the Free plan" in body["detail"]
        client.post(f"/v1/tasks/{first.json()['id']}/cancel")
        wait_done(client, first.json()["id"])
        assert client.post("/v1/tasks", json={"command": "true"}).status_code == 201


@pytest.mark.plans(TWO_A_MONTH)
def test_the_months_executions_then_a_402_saying_when_they_reset(
        service: Service, alice: str) -> None:
    with service.client(alice) as client:
        for _ in range(2):
            assert client.post("/v1/tasks", json={"command": "true"}).status_code == 201
        refused = client.post("/v1/tasks", json={"command": "true"})
        assert refused.status_code == 402, refused.text
        body = refused.json()
        first = dt.datetime.now(dt.UTC).replace(day=1, hour=0, minute=0, second=0,
                                                microsecond=0)
        resets = (first + dt.timedelta(days=32)).replace(day=1)
        assert (body["limit"], body["allowed"], body["resets_at"]) == (
            "monthly_executions", 2, resets.isoformat())
        assert body["title"] == "Payment required" and body["upgrade"] == "/usage"
        usage = client.get("/v1/usage").json()
        assert (usage["executions"], usage["allowance"]) == (2, 2)
        # An admin raises this user's own limit: the next one is accepted.
        admin("users", "plan", "alice@example.com", "free", "--executions", "3")
        assert client.post("/v1/tasks", json={"command": "true"}).status_code == 201


@pytest.mark.plans(TWO_A_MONTH)
def test_a_prompt_task_is_held_to_the_plans_budget_and_key(service: Service,
                                                           alice: str) -> None:
    with service.client(alice) as client:
        no_key = client.post("/v1/tasks", json={"prompt": "fix it"})
        assert no_key.status_code == 402
        assert (no_key.json()["field"], no_key.json()["limit"]) == ("secrets",
                                                                  "service_model_key")
        assert client.put("/v1/secrets/ANTHROPIC_API_KEY",
                          json={"value": "sk-ant-own"}).status_code == 201
        over = client.post("/v1/tasks", json={"prompt": "fix it", "max_budget_usd": 5,
                                              "secrets": ["ANTHROPIC_API_KEY"]})
        assert over.status_code == 402
        assert (over.json()["field"], over.json()["allowed"]) == ("max_budget_usd", 1.0)
        # Nothing was claimed by the refusals.
        assert client.get("/v1/usage").json()["executions"] == 0


def test_a_spec_without_a_budget_gets_the_plans() -> None:
    from rclaude_infra import TaskSpec
    from rclaude_infra.service.plans import PlanBook
    from rclaude_infra.service.quotas import Account, held_to_plan

    plan = PlanBook.load()["pro"]
    now = dt.datetime.now(dt.UTC)
    found = Account(plan, plan.limits, now, now + dt.timedelta(days=30))
    assert held_to_plan(TaskSpec(prompt="go"), found).max_budget_usd == 10.0
    assert held_to_plan(TaskSpec(prompt="go", max_budget_usd=2), found).max_budget_usd == 2
    assert held_to_plan(TaskSpec(command="true"), found).max_budget_usd is None


@pytest.mark.parametrize(("used", "allowance", "expected"), [
    (4, 5, [5, 402]),  # the last execution: one wins
    (0, 5, [1, 2]),  # the period's first two at once: its row is made once, both count
])
def test_two_connections_claiming_at_once(database_url: str, used: int, allowance: int,
                                          expected: list[int]) -> None:
    from sqlalchemy.orm import Session

    from rclaude_infra.service import ServiceSettings, accounts, quotas
    from rclaude_infra.service.plans import PlanBook
    from rclaude_infra.service.problems import Problem
    from rclaude_infra.service.store import Database, make_engine, migrate

    settings = ServiceSettings(database_url=database_url)
    engine = make_engine(settings)
    migrate(engine)
    db = Database(engine)
    plans = PlanBook.from_toml(
        f"[plans.free]\nmonthly_executions = {allowance}\nconcurrency = 50\n")
    with db.session() as session:
        user = accounts.add_user(session, "race@example.com")
        user_id = user.id
    with db.session() as session:
        found = quotas.account(session, user_id, plans)
        for _ in range(used):
            quotas.claim(session, user_id, found, lambda limit: 0)
    barrier = threading.Barrier(2)
    results: list[Any] = []

    def race() -> None:
        with Session(engine) as session:
            found = quotas.account(session, user_id, plans)
            barrier.wait()  # both claim at once, each on its own connection
            try:
                results.append(quotas.claim(session, user_id, found, lambda limit: 0))
                session.commit()
            except Problem as exc:
                session.rollback()
                results.append(exc.status)

    threads = [threading.Thread(target=race) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert sorted(results) == expected
    with db.session() as session:
        assert quotas.executions_used(session, user_id, found.period_start) == max(
            n for n in expected if n != 402)
    engine.dispose()


def test_a_task_that_never_starts_gives_its_execution_back_once(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """On an API-only process (no dispatcher here), a task cancelled while queued never
    ran: once its usage is recorded the execution it claimed is free again, and recording
    it again gives nothing back twice."""
    from conftest import started
    from rclaude_infra.service import ServiceSettings, create_app

    (tmp_path / "plans.toml").write_text(TWO_A_MONTH)
    for key, value in {"RCLAUDE_HOME": str(tmp_path / "home"),
                       "RCLAUDE_DATABASE_URL": f"sqlite:///{tmp_path / 'service.db'}",
                       "RCLAUDE_PLANS_FILE": str(tmp_path / "plans.toml")}.items():
        monkeypatch.setenv(key, value)
    app = create_app(ServiceSettings.from_env(dispatch=False))
    with started(app) as url:
        admin("users", "add", "alice@example.com")
        token = admin("tokens", "create", "alice@example.com").strip()
        with httpx.Client(base_url=url, timeout=30,
                          headers={"Authorization": f"Bearer {token}"}) as client:
            first = client.post("/v1/tasks", json={"command": "true"}).json()
            assert client.post("/v1/tasks", json={"command": "true"}).status_code == 201
            assert client.post("/v1/tasks", json={"command": "true"}).status_code == 402
            assert client.post(f"/v1/tasks/{first['id']}/cancel").status_code == 200
            assert client.get("/v1/usage").json()["executions"] == 1  # recorded: given back
            assert client.get("/v1/usage").json()["executions"] == 1  # and only once
            app.state.dispatcher.meter()
            assert client.get("/v1/usage").json()["executions"] == 1
            assert client.post("/v1/tasks", json={"command": "true"}).status_code == 201
            assert client.post("/v1/tasks", json={"command": "true"}).status_code == 402
