"""Plans billed through Stripe, against the loopback fake of Stripe's API (fake_stripe.py)
driven by the official ``stripe`` SDK, with webhooks signed as Stripe signs them:
subscribe, pay, fail a payment (grace, then free), cancel, a replayed or out-of-order
event, a bad signature, and usage beyond the allowance reported once."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fake_stripe import PRO_PRICE, SECRET_KEY, WEBHOOK_SECRET, FakeStripe, sign

from conftest import Service, admin, new_app, started, wait_done


class Paid:
    def __init__(self, service: Service, stripe: FakeStripe, app: Any) -> None:
        self.service, self.stripe, self.app = service, stripe, app


@pytest.fixture(name="paid")
def _paid(database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
          ) -> Iterator[Paid]:
    """The service with Stripe set up (the default plans), and the fake Stripe."""
    fake = FakeStripe()
    with started(fake.app()) as stripe_url:
        fake.base = stripe_url
        for key, value in {"RCLAUDE_HOME": str(tmp_path / "home"),
                           "RCLAUDE_DATABASE_URL": database_url,
                           "STRIPE_SECRET_KEY": SECRET_KEY,
                           "STRIPE_WEBHOOK_SECRET": WEBHOOK_SECRET,
                           "STRIPE_PRO_PRICE_ID": PRO_PRICE,
                           "STRIPE_API_BASE": stripe_url}.items():
            monkeypatch.setenv(key, value)
        app = new_app(100_000)
        with started(app) as url:
            fake.webhook = f"{url}/v1/billing/stripe/webhook"
            yield Paid(Service(url, database_url, 100_000), fake, app)


def _alice(paid: Paid) -> Any:
    admin("users", "add", "alice@example.com")
    token = admin("tokens", "create", "alice@example.com").strip()
    return paid.service.client(token)


def _subscribe(paid: Paid, client: Any) -> str:
    checkout = client.post("/v1/billing/checkout")
    assert checkout.status_code == 200, checkout.text
    return paid.stripe.pay_checkout(checkout.json()["url"])


def test_subscribe_fail_a_payment_pay_it_and_cancel(paid: Paid) -> None:
    with _alice(paid) as client:
        state = client.get("/v1/billing").json()
        assert (state["plan"]["name"], state["stripe"], state["can_manage"]) == (
            "free", True, False)
        assert [p["name"] for p in state["plans"]] == ["free", "pro", "enterprise"]
        sub_id = _subscribe(paid, client)
        (customer,) = paid.stripe.customers.values()
        assert customer["email"] == "alice@example.com"
        state = client.get("/v1/billing").json()
        assert (state["plan"]["name"], state["subscription_status"]) == ("pro", "active")
        item = paid.stripe.subscriptions[sub_id]["items"]["data"][0]
        assert state["period_start"] == dt.datetime.fromtimestamp(
            item["current_period_start"], dt.UTC).isoformat()
        # Subscribed: checkout again is refused; the portal is open.
        assert client.post("/v1/billing/checkout").status_code == 409
        portal = client.post("/v1/billing/portal")
        assert portal.status_code == 200 and portal.json()["url"].startswith(paid.stripe.base)

        paid.stripe.fail_payment(sub_id)
        state = client.get("/v1/billing").json()
        assert (state["plan"]["name"], state["subscription_status"]) == ("pro", "past_due")
        grace = dt.datetime.fromisoformat(state["grace_until"])
        assert dt.timedelta(days=6) < grace - dt.datetime.now(dt.UTC) < dt.timedelta(days=8)
        # When the grace runs out with the invoice unpaid, the plan is free.
        from rclaude_infra.service import quotas
        from rclaude_infra.service.plans import PlanBook

        with paid.app.state.db.session() as session:
            later = quotas.account(session, 1, PlanBook.load(),
                                   at=grace + dt.timedelta(seconds=1))
            assert later.plan.name == "free" and "grace" in (later.note or "")

        paid.stripe.pay_invoice(sub_id)
        state = client.get("/v1/billing").json()
        assert (state["plan"]["name"], state["subscription_status"],
                state["grace_until"]) == ("pro", "active", None)

        paid.stripe.cancel(sub_id)
        state = client.get("/v1/billing").json()
        assert (state["plan"]["name"], state["subscription_status"]) == ("free", "canceled")


def test_a_replayed_or_older_event_changes_nothing(paid: Paid) -> None:
    with _alice(paid) as client:
        sub_id = _subscribe(paid, client)
        created, completed, _ = paid.stripe.sent
        # The same event again: handled once.
        again = paid.stripe.send(completed)
        assert again.status_code == 200 and again.json()["result"] == "already handled"
        # An update made before the newest state, delivered late, changes nothing.
        stale = paid.stripe.event("customer.subscription.updated",
                                  {**created["data"]["object"], "status": "unpaid"},
                                  created=created["created"] - 5)
        assert "older" in paid.stripe.send(stale).json()["result"]
        assert client.get("/v1/billing").json()["plan"]["name"] == "pro"
        deleted = paid.stripe.cancel(sub_id)
        # Deleted is final: a later-arriving "active" for the same subscription, even one
        # stamped after it, does not bring the plan back.
        revived = paid.stripe.event("customer.subscription.updated",
                                    {**created["data"]["object"], "status": "active"},
                                    created=deleted["created"] + 1)
        assert "older" in paid.stripe.send(revived).json()["result"]
        state = client.get("/v1/billing").json()
        assert (state["plan"]["name"], state["subscription_status"]) == ("free", "canceled")
        # And the checkout's completion replayed with a new id and an old time: nothing.
        late = {**completed, "id": "evt_late", "created": completed["created"]}
        assert "older" in paid.stripe.send(late).json()["result"]
        assert client.get("/v1/billing").json()["plan"]["name"] == "free"


def test_a_bad_signature_is_a_400_and_changes_nothing(paid: Paid) -> None:
    import json

    import httpx

    with _alice(paid) as client:
        checkout = client.post("/v1/billing/checkout").json()
        session_id = checkout["url"].rsplit("/", 1)[1]
        made = paid.stripe.checkouts[session_id]
        forged = paid.stripe.event("checkout.session.completed", {
            **made, "payment_status": "paid", "subscription": "sub_forged"})
        body = json.dumps(forged).encode()
        for signature in (sign(body, "whsec_someoneelse"),  # another secret
                          sign(body, at=1_000_000_000),  # an old, replayed signature
                          sign(b"{}"),  # another body
                          "t=1,v1=00"):
            answer = httpx.post(paid.stripe.webhook, content=body, timeout=30,
                                headers={"Stripe-Signature": signature})
            assert answer.status_code == 400, signature
            assert answer.json()["field"] == "Stripe-Signature"
        assert httpx.post(paid.stripe.webhook, content=body, timeout=30).status_code == 400
        assert client.get("/v1/billing").json()["plan"]["name"] == "free"
        # Nothing was recorded: the same event, signed, is applied now.
        assert paid.stripe.send(forged).json()["result"] == "user 1 subscribed"
        assert client.get("/v1/billing").json()["plan"]["name"] == "pro"


def test_executions_beyond_the_allowance_are_reported_once(paid: Paid) -> None:
    with _alice(paid) as client:
        _subscribe(paid, client)
        admin("users", "plan", "alice@example.com", "pro", "--executions", "1")
        ids = []
        for n in range(3):
            task = client.post("/v1/tasks", json={"command": f"echo {n}"})
            assert task.status_code == 201, task.text  # pro: overage billed, not refused
            ids.append(task.json()["id"])
            wait_done(client, ids[-1])
        usage = client.get("/v1/usage").json()
        assert (usage["executions"], usage["allowance"], usage["tasks"]) == (3, 1, 3)
        dispatcher = paid.app.state.dispatcher
        paid.stripe.lose_meter_answers = 1  # Stripe keeps the first and its answer is lost
        dispatcher.meter()
        dispatcher.meter()  # the lost one again, with the same identifier
        dispatcher.meter()
        meter = "rclaude_overage_executions"
        assert paid.stripe.billed(meter) == 2  # the second and third, once each
        assert {e["identifier"] for e in paid.stripe.meter_events.values()} == {
            f"rclaude-{ids[1]}-{meter}", f"rclaude-{ids[2]}-{meter}"}


def test_without_stripe_billing_says_so(service: Service, alice: str) -> None:
    import httpx

    with service.client(alice) as client:
        state = client.get("/v1/billing").json()
        assert state["stripe"] is False and state["plan"]["name"] == "free"
        refused = client.post("/v1/billing/checkout")
        assert refused.status_code == 409 and "users plan" in refused.json()["detail"]
        assert httpx.post(f"{service.url}/v1/billing/stripe/webhook", content=b"{}",
                          timeout=30).status_code == 409


def test_the_usage_page_shows_the_allowance_and_upgrades_through_checkout(
        paid: Paid) -> None:
    import shutil

    from test_dashboard import _axe, _shoot, _signed_in

    if shutil.which("chromium") is None:
        pytest.skip("Chromium is not installed (.ci/run installs Debian's chromium)")
    from playwright.sync_api import sync_playwright

    with _alice(paid) as client, sync_playwright() as playwright:
        client.post("/v1/tasks", json={"command": "true"})
        browser = playwright.chromium.launch(executable_path=shutil.which("chromium"),
                                             args=["--no-sandbox"])
        page = _signed_in(browser, paid.service, "alice@example.com")
        page.get_by_role("link", name="Usage").click()
        page.locator("#p-used", has_text="1 of 100 executions").wait_for()
        assert page.locator("#p-name").inner_text() == "Free"
        assert page.locator("#p-manage").is_hidden()
        assert _axe(page) == []
        _shoot(page, "usage-plan-light-wide")
        page.get_by_role("button", name="Upgrade to Pro").click()
        page.wait_for_url(f"{paid.stripe.base}/pay/*")  # Stripe's Checkout page
        paid.stripe.pay_checkout(page.url)
        page.goto(f"{paid.service.url}/usage")
        page.locator("#p-name", has_text="Pro").wait_for()
        page.locator("#p-used", has_text="of 1000 executions").wait_for()
        assert page.get_by_role("button", name="Manage billing").is_visible()
        assert page.locator("#p-upgrade").is_hidden()
        browser.close()


def test_a_plan_an_admin_assigned_is_not_changed_by_stripe(paid: Paid) -> None:
    """An enterprise customer billed through a Stripe subscription stays on enterprise
    whatever the subscription's events say; only free and Pro move with Stripe."""
    with _alice(paid) as client:
        sub_id = _subscribe(paid, client)
        assert client.get("/v1/billing").json()["plan"]["name"] == "pro"
        admin("users", "plan", "alice@example.com", "enterprise", "--executions", "50000")
        paid.stripe.pay_invoice(sub_id)  # sends customer.subscription.updated (active)
        state = client.get("/v1/billing").json()
        assert (state["plan"]["name"], state["limits"]["monthly_executions"]) == (
            "enterprise", 50000)
        paid.stripe.cancel(sub_id)
        assert client.get("/v1/billing").json()["plan"]["name"] == "enterprise"
