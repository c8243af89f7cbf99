"""A loopback fake of the parts of Stripe's API the service uses, driven by the official
``stripe`` SDK pointed at it (``STRIPE_API_BASE``), as Stripe's API reference describes
them (docs.stripe.com/api):

- requests are form-encoded with bracketed keys (``line_items[0][price]``), authorized
  by ``Authorization: Bearer sk_...`` (else 401 ``invalid_request_error``);
- ``Idempotency-Key``: the same key again answers the first answer; with other
  parameters it is a 400 ``idempotency_error`` (docs.stripe.com/api/idempotent_requests);
- ``POST /v1/customers``, ``/v1/checkout/sessions`` (mode, customer, a known price,
  success and cancel URLs), ``/v1/billing_portal/sessions`` and
  ``/v1/billing/meter_events`` (``event_name``, ``payload[stripe_customer_id]``, a whole
  ``payload[value]``; one event kept per ``identifier``, "uniqueness within a rolling
  period of at least 24 hours").

What a person does on Stripe's pages (pay at Checkout, a card declined, cancel in the
portal) is a method here that changes the fake's state and sends the webhook events
Stripe would, signed as Stripe signs them (docs.stripe.com/webhooks/signature:
``Stripe-Signature: t=<unix>,v1=<hex HMAC-SHA256 of "<t>.<body>" with the secret>``).
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import json
import re
import time
from typing import Any
from urllib.parse import parse_qsl

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

SECRET_KEY = "sk_test_fakekey123"
WEBHOOK_SECRET = "whsec_fakesecret456"
PRO_PRICE = "price_pro29"
API_VERSION = "2026-10-28.endive"


def sign(payload: bytes, secret: str = WEBHOOK_SECRET, at: int | None = None) -> str:
    """The ``Stripe-Signature`` header Stripe sends with ``payload``."""
    at = int(time.time()) if at is None else at
    mac = hmac.new(secret.encode(), f"{at}.".encode() + payload, hashlib.sha256).hexdigest()
    return f"t={at},v1={mac}"


def _nested(pairs: list[tuple[str, str]]) -> dict[str, Any]:
    """Stripe's bracketed form keys as nested dicts (lists as dicts keyed by index)."""
    out: dict[str, Any] = {}
    for key, value in pairs:
        parts = re.findall(r"[^\[\]]+", key)
        node = out
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = value
    return out


def _error(status: int, kind: str, message: str, param: str | None = None) -> JSONResponse:
    body: dict[str, Any] = {"type": kind, "message": message}
    if param:
        body["param"] = param
    return JSONResponse({"error": body}, status_code=status)


class FakeStripe:
    """Stripe on one loopback server; ``base`` is its URL once started, ``webhook`` the
    service's endpoint the events are sent to."""

    def __init__(self) -> None:
        self.base = ""
        self.webhook = ""
        self._ids = itertools.count(1)
        self.customers: dict[str, dict[str, Any]] = {}
        self.checkouts: dict[str, dict[str, Any]] = {}
        self.subscriptions: dict[str, dict[str, Any]] = {}
        #: Meter events kept, by identifier (a repeated identifier is not kept twice).
        self.meter_events: dict[str, dict[str, Any]] = {}
        self._idempotent: dict[str, tuple[dict[str, Any], JSONResponse]] = {}
        #: Every event sent to the webhook, in order (to replay or reorder one).
        self.sent: list[dict[str, Any]] = []
        #: Keep the next N meter events but answer 500, as a lost answer would look.
        self.lose_meter_answers = 0
        #: Refuse the next N meter events with 500 without keeping them (Stripe down).
        self.fail_meter_events = 0
        self.clock = int(time.time())

    def new_id(self, prefix: str) -> str:
        return f"{prefix}_fake{next(self._ids):06d}"

    # -- the API ---------------------------------------------------------------------

    def app(self) -> Starlette:
        routes = [Route("/v1/customers", self._customers, methods=["POST"]),
                  Route("/v1/checkout/sessions", self._checkout, methods=["POST"]),
                  Route("/v1/billing_portal/sessions", self._portal, methods=["POST"]),
                  Route("/v1/billing/meter_events", self._meter_event, methods=["POST"])]
        return Starlette(routes=routes)

    async def _read(self, request: Request) -> tuple[dict[str, Any], JSONResponse | None]:
        if request.headers.get("authorization") != f"Bearer {SECRET_KEY}":
            return {}, _error(401, "invalid_request_error", "Invalid API Key provided")
        body = (await request.body()).decode()
        return _nested(parse_qsl(body, keep_blank_values=True)), None

    async def _handle(self, request: Request, make: Any) -> JSONResponse:
        params, refused = await self._read(request)
        if refused is not None:
            return refused
        key = request.headers.get("idempotency-key")
        if key is not None and key in self._idempotent:
            earlier, answer = self._idempotent[key]
            if earlier != params:
                return _error(400, "idempotency_error", "Keys for idempotent requests can "
                              "only be used with the same parameters they were first used "
                              "with.")
            return JSONResponse(json.loads(answer.body), status_code=answer.status_code)
        answer: JSONResponse = make(params)
        if key is not None and answer.status_code < 500:
            self._idempotent[key] = (params, answer)
        return answer

    async def _customers(self, request: Request) -> JSONResponse:
        def make(params: dict[str, Any]) -> JSONResponse:
            customer = {"id": self.new_id("cus"), "object": "customer",
                        "email": params.get("email"), "metadata": params.get("metadata", {})}
            self.customers[customer["id"]] = customer
            return JSONResponse(customer)
        return await self._handle(request, make)

    async def _checkout(self, request: Request) -> JSONResponse:
        def make(params: dict[str, Any]) -> JSONResponse:
            for name in ("mode", "success_url", "cancel_url"):
                if not params.get(name):
                    return _error(400, "invalid_request_error", f"Missing required param: "
                                  f"{name}.", name)
            if params.get("customer") not in self.customers:
                return _error(400, "invalid_request_error", "No such customer", "customer")
            price = ((params.get("line_items") or {}).get("0") or {}).get("price")
            if price != PRO_PRICE:
                return _error(400, "invalid_request_error", f"No such price: '{price}'",
                              "line_items[0][price]")
            made = {"id": self.new_id("cs"), "object": "checkout.session",
                    "mode": params["mode"], "customer": params["customer"],
                    "client_reference_id": params.get("client_reference_id"),
                    "subscription_metadata": (params.get("subscription_data") or {}).get(
                        "metadata", {}),
                    "payment_status": "unpaid", "status": "open", "subscription": None}
            made["url"] = f"{self.base}/pay/{made['id']}"
            self.checkouts[made["id"]] = made
            return JSONResponse(made)
        return await self._handle(request, make)

    async def _portal(self, request: Request) -> JSONResponse:
        def make(params: dict[str, Any]) -> JSONResponse:
            if params.get("customer") not in self.customers:
                return _error(400, "invalid_request_error", "No such customer", "customer")
            made = {"id": self.new_id("bps"), "object": "billing_portal.session",
                    "customer": params["customer"], "return_url": params.get("return_url")}
            made["url"] = f"{self.base}/portal/{made['id']}"
            return JSONResponse(made)
        return await self._handle(request, make)

    async def _meter_event(self, request: Request) -> JSONResponse:
        def make(params: dict[str, Any]) -> JSONResponse:
            payload = params.get("payload") or {}
            if not params.get("event_name"):
                return _error(400, "invalid_request_error", "Missing event_name", "event_name")
            if payload.get("stripe_customer_id") not in self.customers:
                return _error(400, "invalid_request_error", "No such customer",
                              "payload[stripe_customer_id]")
            if not str(payload.get("value", "")).isdigit():
                return _error(400, "invalid_request_error", "value must be a number",
                              "payload[value]")
            if self.fail_meter_events:
                self.fail_meter_events -= 1
                return _error(500, "api_error", "An unknown error occurred")
            identifier = params.get("identifier") or self.new_id("mev")
            made = {"object": "billing.meter_event", "event_name": params["event_name"],
                    "identifier": identifier, "payload": payload,
                    "timestamp": int(params.get("timestamp") or self.clock)}
            self.meter_events.setdefault(identifier, made)
            if self.lose_meter_answers:
                self.lose_meter_answers -= 1
                return _error(500, "api_error", "An unknown error occurred")
            return JSONResponse(made)
        return await self._handle(request, make)

    def billed(self, event_name: str) -> int:
        """The sum of the values kept for ``event_name`` (what the meter bills)."""
        return sum(int(e["payload"]["value"]) for e in self.meter_events.values()
                   if e["event_name"] == event_name)

    # -- what people do on Stripe's pages, and the events it sends -------------------

    def event(self, kind: str, obj: dict[str, Any], *, created: int | None = None
              ) -> dict[str, Any]:
        self.clock += 1
        return {"id": self.new_id("evt"), "object": "event", "api_version": API_VERSION,
                "created": self.clock if created is None else created, "livemode": False,
                "pending_webhooks": 1, "type": kind, "data": {"object": obj},
                "request": {"id": None, "idempotency_key": None}}

    def send(self, event: dict[str, Any], *, secret: str = WEBHOOK_SECRET,
             signature: str | None = None) -> httpx.Response:
        """POST ``event`` to the service's webhook, signed (or with ``signature``)."""
        payload = json.dumps(event).encode()
        self.sent.append(event)
        return httpx.post(self.webhook, content=payload, timeout=30, headers={
            "Content-Type": "application/json",
            "Stripe-Signature": signature or sign(payload, secret)})

    def _subscription_object(self, sub: dict[str, Any]) -> dict[str, Any]:
        return json.loads(json.dumps(sub))

    def pay_checkout(self, url: str) -> str:
        """The person pays on the Checkout page at ``url``: the subscription is made and
        Stripe sends its events. The subscription's id."""
        made = self.checkouts[url.rsplit("/", 1)[1]]
        start = self.clock
        sub = {"id": self.new_id("sub"), "object": "subscription", "status": "active",
               "customer": made["customer"], "metadata": made["subscription_metadata"],
               "items": {"object": "list", "data": [{
                   "id": self.new_id("si"), "price": {"id": PRO_PRICE},
                   "current_period_start": start,
                   "current_period_end": start + 30 * 86400}]}}
        self.subscriptions[sub["id"]] = sub
        made.update(status="complete", payment_status="paid", subscription=sub["id"])
        for event in (self.event("customer.subscription.created", self._subscription_object(sub)),
                      self.event("checkout.session.completed", dict(made)),
                      self.event("invoice.paid", self._invoice(sub, paid=True))):
            assert self.send(event).status_code == 200
        return str(sub["id"])

    def _invoice(self, sub: dict[str, Any], *, paid: bool) -> dict[str, Any]:
        return {"id": self.new_id("in"), "object": "invoice", "customer": sub["customer"],
                "subscription": sub["id"], "status": "paid" if paid else "open",
                "amount_due": 2900, "attempt_count": 1}

    def fail_payment(self, sub_id: str) -> list[dict[str, Any]]:
        """A renewal's card is declined: the subscription is past due."""
        sub = self.subscriptions[sub_id]
        sub["status"] = "past_due"
        events = [self.event("invoice.payment_failed", self._invoice(sub, paid=False)),
                  self.event("customer.subscription.updated", self._subscription_object(sub))]
        for event in events:
            assert self.send(event).status_code == 200
        return events

    def pay_invoice(self, sub_id: str) -> None:
        sub = self.subscriptions[sub_id]
        sub["status"] = "active"
        for event in (self.event("invoice.paid", self._invoice(sub, paid=True)),
                      self.event("customer.subscription.updated",
                                 self._subscription_object(sub))):
            assert self.send(event).status_code == 200

    def cancel(self, sub_id: str) -> dict[str, Any]:
        """Canceled in the Customer Portal, at once: the deleted event (sent)."""
        sub = self.subscriptions[sub_id]
        sub["status"] = "canceled"
        event = self.event("customer.subscription.deleted", self._subscription_object(sub))
        assert self.send(event).status_code == 200
        return event
