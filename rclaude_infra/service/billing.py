"""Stripe: Checkout to subscribe to Pro, the Customer Portal to manage or cancel, the
webhooks that move a user's plan, and usage reported to Billing Meters.

Webhooks are verified by the ``stripe`` SDK with the signing secret, then handled once:
the event's id is inserted first (``ON CONFLICT DO NOTHING``) in the same transaction as
its effects, so a replay, or two deliveries at once, change nothing twice. Events arrive
in any order: a subscription or invoice event older than the newest one applied to the
account is recorded and ignored, and a subscription once deleted stays deleted.

Usage is reported per usage record with an identifier made from its task id (Stripe
keeps one event per identifier), so a report retried after a lost answer is not billed
twice.
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from .billing_settings import StripeSettings
from .models import StripeEvent, Subscription, UsageRecord, User, now
from .money import cents
from .plans import DEFAULT_PLAN
from .problems import Problem
from .settings import ServiceSettings
from .store import insert_new

log = logging.getLogger(__name__)

#: The plan a Pro subscription grants.
PAID_PLAN = "pro"
#: Stripe's subscription statuses under which the paid plan holds (past_due: its grace).
PAID_STATUSES = ("active", "trialing", "past_due")
#: Usage records reported by one pass.
REPORT_BATCH = 100


def _at(seconds: Any) -> dt.datetime | None:
    return dt.datetime.fromtimestamp(int(seconds), dt.UTC) if isinstance(seconds, int) else None


class Billing:
    """The service's Stripe account, through the official SDK."""

    def __init__(self, settings: StripeSettings) -> None:
        import stripe

        self.settings = settings
        addresses: Any = {"api": settings.api_base} if settings.api_base else None
        self._stripe = stripe
        self.client = stripe.StripeClient(settings.secret_key, base_addresses=addresses,
                                          max_network_retries=2)

    # -- checkout and the portal ------------------------------------------------------

    def customer(self, session: Session, user: User) -> str:
        """The user's Stripe customer, made on first need (one per user: its idempotency
        key is the user's id, so two requests at once make one)."""
        sub = session.get(Subscription, user.id)
        if sub is not None and sub.stripe_customer:
            return sub.stripe_customer
        made = self.client.v1.customers.create(
            params={"email": user.email, "metadata": {"rclaude_user_id": str(user.id)}},
            options={"idempotency_key": f"rclaude-customer-{user.id}"})
        if sub is None:
            insert_new(session, Subscription, user_id=user.id, plan=DEFAULT_PLAN,
                       state_at=0, invoice_at=0)
            sub = session.get(Subscription, user.id)
            assert sub is not None
        sub.stripe_customer = made.id
        return str(made.id)

    def checkout_url(self, session: Session, user: User, *, success_url: str,
                     cancel_url: str) -> str:
        """A Checkout page subscribing ``user`` to Pro."""
        made = self.client.v1.checkout.sessions.create(params={
            "mode": "subscription", "customer": self.customer(session, user),
            "client_reference_id": str(user.id),
            "line_items": [{"price": self.settings.pro_price, "quantity": 1}],
            "subscription_data": {"metadata": {"rclaude_user_id": str(user.id)}},
            "success_url": success_url, "cancel_url": cancel_url})
        return str(made.url)

    def portal_url(self, session: Session, user: User, *, return_url: str) -> str:
        """The Customer Portal for ``user``, to change a card or cancel."""
        sub = session.get(Subscription, user.id)
        if sub is None or not sub.stripe_customer:
            raise Problem(409, "you have no subscription to manage yet; subscribe first")
        made = self.client.v1.billing_portal.sessions.create(params={
            "customer": sub.stripe_customer, "return_url": return_url})
        return str(made.url)

    # -- webhooks ---------------------------------------------------------------------

    def verified(self, payload: bytes, signature: str | None) -> dict[str, Any]:
        """The event Stripe signed, or a 400 problem (nothing is read from an unsigned
        body)."""
        if not signature:
            raise Problem(400, "Stripe-Signature header missing", field="Stripe-Signature")
        try:
            event = self.client.construct_event(payload, signature,
                                                self.settings.webhook_secret)
        except self._stripe.SignatureVerificationError:
            raise Problem(400, "the signature does not verify", field="Stripe-Signature"
                          ) from None
        except ValueError:
            raise Problem(400, "not a Stripe event", field="body") from None
        return dict(event.to_dict())

    def handle(self, session: Session, event: dict[str, Any]) -> str:
        """Apply ``event`` once; what it did, in words (for the log and the answer)."""
        event_id, kind = str(event.get("id", "")), str(event.get("type", ""))
        created = event.get("created")
        if not event_id or not isinstance(created, int):
            raise Problem(400, "an event without an id or creation time", field="body")
        if not insert_new(session, StripeEvent, id=event_id[:255], type=kind[:100],
                          created=created):
            return "already handled"
        obj = (event.get("data") or {}).get("object") or {}
        handler = _HANDLERS.get(kind)
        if handler is None:
            return "not an event this service acts on"
        return str(handler(self, session, obj, created))

    def _account(self, session: Session, obj: dict[str, Any]) -> Subscription | None:
        """The account of the object's customer, or of the user its metadata names (a
        subscription made by this service's Checkout)."""
        customer = obj.get("customer")
        if isinstance(customer, str):
            sub = session.scalar(select(Subscription).where(
                Subscription.stripe_customer == customer))
            if sub is not None:
                return sub
        named = str((obj.get("metadata") or {}).get("rclaude_user_id") or
                    obj.get("client_reference_id") or "")
        if not named.isdigit() or session.get(User, int(named)) is None:
            return None
        insert_new(session, Subscription, user_id=int(named), plan=DEFAULT_PLAN,
                   state_at=0, invoice_at=0)
        sub = session.get(Subscription, int(named))
        if sub is not None and sub.stripe_customer is None and isinstance(customer, str):
            sub.stripe_customer = customer
        return sub

    def _checkout_completed(self, session: Session, obj: dict[str, Any], created: int) -> str:
        if obj.get("mode") != "subscription":
            return "not a subscription checkout"
        sub = self._account(session, obj)
        if sub is None:
            return "no user of this service"
        if obj.get("payment_status") not in ("paid", "no_payment_required"):
            return "checkout not paid yet"
        if created < sub.state_at or (sub.status == "canceled" and (
                sub.stripe_subscription == obj.get("subscription"))):
            return "older than the account's state"
        sub.stripe_subscription = str(obj.get("subscription") or "") or None
        sub.status, sub.state_at = "active", created
        if sub.plan == DEFAULT_PLAN:  # a plan an admin assigned (enterprise) stays
            sub.plan = PAID_PLAN
        return f"user {sub.user_id} subscribed"

    def _subscription(self, session: Session, obj: dict[str, Any], created: int,
                      *, deleted: bool = False) -> str:
        sub = self._account(session, obj)
        if sub is None:
            return "no user of this service"
        same = sub.stripe_subscription in (None, obj.get("id"))
        if created < sub.state_at or (sub.status == "canceled" and same
                                      and sub.stripe_subscription is not None):
            return "older than the account's state"
        status = "canceled" if deleted else str(obj.get("status") or "")
        sub.stripe_subscription = str(obj.get("id") or "") or None
        sub.status, sub.state_at = status, created
        item = ((obj.get("items") or {}).get("data") or [{}])[0]
        # Since API version 2025-03-31 the period is on the subscription's items.
        start = _at(item.get("current_period_start", obj.get("current_period_start")))
        end = _at(item.get("current_period_end", obj.get("current_period_end")))
        if start is not None and end is not None and start < end:
            sub.period_start, sub.period_end = start, end
        # Stripe moves a user between free and Pro only: a plan an admin assigned by hand
        # (enterprise, by arrangement) is not changed by the subscription's events.
        if status in PAID_STATUSES and sub.plan == DEFAULT_PLAN:
            sub.plan = PAID_PLAN
        elif sub.plan == PAID_PLAN and status not in (*PAID_STATUSES, "incomplete"):
            sub.plan, sub.grace_until = DEFAULT_PLAN, None
        return f"user {sub.user_id}: subscription {status}"

    def _invoice(self, session: Session, obj: dict[str, Any], created: int, *,
                 paid: bool) -> str:
        sub = self._account(session, obj)
        if sub is None:
            return "no user of this service"
        if created < sub.invoice_at:
            return "older than the account's newest invoice"
        sub.invoice_at = created
        if paid:
            sub.grace_until = None
            if sub.status == "past_due":
                sub.status = "active"
            return f"user {sub.user_id}: invoice paid"
        if sub.grace_until is None:
            sub.grace_until = dt.datetime.fromtimestamp(created, dt.UTC) + dt.timedelta(
                days=self.settings.grace_days)
        if sub.status in ("active", "trialing"):
            sub.status = "past_due"
        return f"user {sub.user_id}: payment failed, grace until {sub.grace_until}"

    # -- usage ------------------------------------------------------------------------

    def report_usage(self, session: Session, *, limit: int = REPORT_BATCH) -> int:
        """Send the billable usage records not yet reported as meter events; how many
        were reported. A record whose report fails stays for the next pass."""
        pending = session.execute(
            select(UsageRecord, Subscription.stripe_customer)
            .join(Subscription, Subscription.user_id == UsageRecord.user_id)
            .where(UsageRecord.billable.is_(True), UsageRecord.reported_at.is_(None),
                   Subscription.stripe_customer.is_not(None))
            .order_by(UsageRecord.id).limit(limit)).all()
        reported = 0
        for record, customer in pending:
            assert customer is not None  # the query's
            try:
                for meter, value in meter_values(record, self.settings):
                    identifier = f"rclaude-{record.task_id}-{meter}"
                    self.client.v1.billing.meter_events.create(params={
                        "event_name": meter, "identifier": identifier,
                        "timestamp": int(record.recorded_at.timestamp()),
                        "payload": {"stripe_customer_id": customer, "value": str(value)}},
                        options={"idempotency_key": identifier})
            except self._stripe.StripeError as exc:
                log.warning("usage of %s not reported yet: %s", record.task_id,
                            type(exc).__name__)
                continue
            record.reported_at = now()
            reported += 1
        return reported


def billing_of(settings: ServiceSettings) -> Billing | None:
    """The service's billing, when Stripe is set up."""
    return None if settings.stripe is None else Billing(settings.stripe)


def meter_values(record: UsageRecord, settings: StripeSettings) -> list[tuple[str, int]]:
    """The meter events a usage record makes: (event name, value)."""
    values = []
    if record.overage:
        values.append((settings.executions_meter, record.overage))
    if record.service_key and cents(record.model_micro_usd) > 0:
        values.append((settings.model_meter, cents(record.model_micro_usd)))
    return values


_HANDLERS: dict[str, Any] = {
    "checkout.session.completed": Billing._checkout_completed,
    "customer.subscription.created": Billing._subscription,
    "customer.subscription.updated": Billing._subscription,
    "customer.subscription.deleted":
        lambda self, session, obj, created: self._subscription(session, obj, created,
                                                               deleted=True),
    "invoice.paid": lambda self, session, obj, created: self._invoice(session, obj, created,
                                                                       paid=True),
    "invoice.payment_failed":
        lambda self, session, obj, created: self._invoice(session, obj, created, paid=False),
}
