"""The service's tables (SQLAlchemy 2): users, their sign-in identities, API tokens, and
the tasks they started (the task itself lives where the deployment keeps it)."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import (
    BigInteger,
    Boolean,
    DateTime,
    ForeignKey,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator


class UtcDateTime(TypeDecorator[dt.datetime]):
    """A timezone-aware UTC time on every database (SQLite keeps none)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: object
                           ) -> dt.datetime | None:
        return None if value is None else value.astimezone(dt.UTC)

    def process_result_value(self, value: dt.datetime | None, dialect: object
                             ) -> dt.datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(
            dt.UTC)


def now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class Base(DeclarativeBase):
    pass


class User(Base):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    email: Mapped[str] = mapped_column(String(320), unique=True)
    name: Mapped[str | None] = mapped_column(String(200))
    is_admin: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime, default=now)


class Identity(Base):
    """A sign-in at GitHub or Google that is this user (one user may link both)."""

    __tablename__ = "identities"
    __table_args__ = (UniqueConstraint("provider", "subject"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"),
                                         index=True)
    provider: Mapped[str] = mapped_column(String(20))
    subject: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime, default=now)


class ApiToken(Base):
    """A bearer token: stored as its SHA-256 only (shown once, at creation)."""

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"),
                                         index=True)
    name: Mapped[str] = mapped_column(String(100))
    #: The token's first characters, to tell tokens apart in a list.
    prefix: Mapped[str] = mapped_column(String(16))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    #: Space-separated: tasks:read, tasks:write, admin.
    scopes: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime, default=now)
    last_used_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime)
    revoked_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime)


class TaskRecord(Base):
    """A task a user started: who, when, and the request that started it (its
    ``Idempotency-Key`` and a hash of its body, so a retry returns the same task)."""

    __tablename__ = "tasks"
    __table_args__ = (UniqueConstraint("user_id", "idempotency_key"),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"),
                                         index=True)
    idempotency_key: Mapped[str | None] = mapped_column(String(200))
    request_hash: Mapped[str] = mapped_column(String(64))
    spec: Mapped[str] = mapped_column(Text)
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime, default=now, index=True)
    #: Its end status, once a look has seen it end (the tasks not ended are the rest).
    final_status: Mapped[str | None] = mapped_column(String(16))
    #: Why it ended before it started (over budget, a secret gone, cancelled).
    reason: Mapped[str | None] = mapped_column(Text)
    #: When a dispatcher started it on the deployment (until then it waits, QUEUED).
    dispatched_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime)
    #: The process starting it, and until when its claim holds (``service.dispatch``).
    lease_owner: Mapped[str | None] = mapped_column(String(64))
    lease_until: Mapped[dt.datetime | None] = mapped_column(UtcDateTime)
    dispatch_attempts: Mapped[int] = mapped_column(Integer, default=0)
    #: Which of its user's executions in its billing period it is (1 for the first):
    #: beyond the plan's allowance it is billed as overage.
    execution_no: Mapped[int | None] = mapped_column(Integer)
    #: The billing period that execution was claimed from (its usage is that period's).
    period_start: Mapped[dt.datetime | None] = mapped_column(UtcDateTime)


class RateWindow(Base):
    """How many requests a user made in one minute (``window``: minutes since the epoch),
    counted in the database so that every service process shares the count."""

    __tablename__ = "rate_windows"

    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"),
                                         primary_key=True)
    window: Mapped[int] = mapped_column(Integer, primary_key=True)
    count: Mapped[int] = mapped_column(Integer)


class UserSecret(Base):
    """A user's secret: its value encrypted (``service.vault``), never returned."""

    __tablename__ = "user_secrets"
    __table_args__ = (UniqueConstraint("user_id", "name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"),
                                         index=True)
    name: Mapped[str] = mapped_column(String(128))
    ciphertext: Mapped[str] = mapped_column(Text)
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime, default=now)
    updated_at: Mapped[dt.datetime] = mapped_column(UtcDateTime, default=now)


class DeviceCode(Base):
    """A CLI's sign-in by the device authorization grant (RFC 8628): its device code
    (stored as SHA-256), the code a person types, and what became of it."""

    __tablename__ = "device_codes"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    device_code_hash: Mapped[str] = mapped_column(String(64), unique=True)
    user_code: Mapped[str] = mapped_column(String(9), unique=True)
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime, default=now)
    expires_at: Mapped[dt.datetime] = mapped_column(UtcDateTime)
    last_polled_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime)
    #: Who approved it (then a token is issued to the device, once).
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    denied: Mapped[bool] = mapped_column(Boolean, default=False)
    issued: Mapped[bool] = mapped_column(Boolean, default=False)


class SignInState(Base):
    """A browser's sign-in on its way to GitHub or Google: its ``state`` (as SHA-256), the
    PKCE verifier and nonce the callback needs, and where to go after. Used once."""

    __tablename__ = "sign_in_states"

    state_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    provider: Mapped[str] = mapped_column(String(20))
    code_verifier: Mapped[str] = mapped_column(String(128))
    nonce: Mapped[str] = mapped_column(String(64))
    next_path: Mapped[str] = mapped_column(String(2000))
    expires_at: Mapped[dt.datetime] = mapped_column(UtcDateTime)


class WebSession(Base):
    """A signed-in browser: its cookie's SHA-256, whose it is, and the token its forms and
    unsafe API requests carry against cross-site requests."""

    __tablename__ = "web_sessions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    session_hash: Mapped[str] = mapped_column(String(64), unique=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"),
                                         index=True)
    csrf_token: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime, default=now)
    expires_at: Mapped[dt.datetime] = mapped_column(UtcDateTime)


class LoginLink(Base):
    """A one-time sign-in link an admin made (``rclaude-infra users login-link``): its
    token's SHA-256, whose it is, until when, and when it was used (once)."""

    __tablename__ = "login_links"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    expires_at: Mapped[dt.datetime] = mapped_column(UtcDateTime)
    used_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime)


class Subscription(Base):
    """A user's plan and, when they pay through Stripe, their customer and subscription.
    A user without a row is on the default plan, billed by calendar month."""

    __tablename__ = "subscriptions"

    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"),
                                         primary_key=True)
    plan: Mapped[str] = mapped_column(String(32))
    #: An admin's limits for this user (JSON of plans.OVERRIDABLE), over the plan's.
    overrides: Mapped[str | None] = mapped_column(Text)
    stripe_customer: Mapped[str | None] = mapped_column(String(255), unique=True)
    stripe_subscription: Mapped[str | None] = mapped_column(String(255))
    #: Stripe's status of the subscription (active, past_due, canceled, ...).
    status: Mapped[str | None] = mapped_column(String(32))
    period_start: Mapped[dt.datetime | None] = mapped_column(UtcDateTime)
    period_end: Mapped[dt.datetime | None] = mapped_column(UtcDateTime)
    #: A failed payment's grace: the plan holds until then, then the user is on free.
    grace_until: Mapped[dt.datetime | None] = mapped_column(UtcDateTime)
    #: When Stripe made the newest subscription and invoice events applied: an older
    #: event arriving later changes nothing.
    state_at: Mapped[int] = mapped_column(BigInteger, default=0)
    invoice_at: Mapped[int] = mapped_column(BigInteger, default=0)


class UsagePeriod(Base):
    """A user's executions in one billing period, counted when a task is accepted: the
    counter a quota is claimed from by one conditional ``UPDATE``."""

    __tablename__ = "usage_periods"

    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"),
                                         primary_key=True)
    period_start: Mapped[dt.datetime] = mapped_column(UtcDateTime, primary_key=True)
    executions: Mapped[int] = mapped_column(Integer, default=0)


class UsageRecord(Base):
    """What one ended task used, from the deployment's ledger: one per task (the task id
    is unique), in micro-dollars, and whether and when it was reported to Stripe."""

    __tablename__ = "usage_records"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    task_id: Mapped[str] = mapped_column(ForeignKey("tasks.id", ondelete="CASCADE"),
                                         unique=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"),
                                         index=True)
    period_start: Mapped[dt.datetime] = mapped_column(UtcDateTime, index=True)
    recorded_at: Mapped[dt.datetime] = mapped_column(UtcDateTime, default=now)
    #: 1 when the task ran on the deployment; 0 when it ended before it started.
    executions: Mapped[int] = mapped_column(Integer)
    #: 1 when it ran beyond its plan's allowance (billed as overage).
    overage: Mapped[int] = mapped_column(Integer, default=0)
    compute_micro_usd: Mapped[int] = mapped_column(BigInteger, default=0)
    model_micro_usd: Mapped[int] = mapped_column(BigInteger, default=0)
    input_tokens: Mapped[int] = mapped_column(BigInteger, default=0)
    output_tokens: Mapped[int] = mapped_column(BigInteger, default=0)
    #: The model ran on the service's own key (billed), not the user's.
    service_key: Mapped[bool] = mapped_column(Boolean, default=False)
    #: When Stripe took this record's meter events (``None``: not yet, or not billed).
    reported_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime)
    billable: Mapped[bool] = mapped_column(Boolean, default=False)


class StripeEvent(Base):
    """A Stripe webhook event handled: its id is the key, so a replay changes nothing."""

    __tablename__ = "stripe_events"

    id: Mapped[str] = mapped_column(String(255), primary_key=True)
    type: Mapped[str] = mapped_column(String(100))
    created: Mapped[int] = mapped_column(BigInteger)
    received_at: Mapped[dt.datetime] = mapped_column(UtcDateTime, default=now)
