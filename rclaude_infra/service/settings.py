"""What a service process is configured with: where its database is, which deployment runs
its tasks, and its limits. Read from the environment and the ``serve`` flags."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import attrs

from ..errors import ConfigError
from ..paths import rclaude_home
from .billing_settings import StripeSettings
from .oauth import Provider, providers_from_env
from .plans import PlanBook

#: The environment variable naming the database (a SQLAlchemy URL).
DATABASE_ENV = "RCLAUDE_DATABASE_URL"
PUBLIC_URL_ENV = "RCLAUDE_PUBLIC_URL"
PLANS_FILE_ENV = "RCLAUDE_PLANS_FILE"
TASK_EVENTS_ENV = "RCLAUDE_TASK_EVENTS_QUEUE"
_SCHEMES = ("sqlite", "sqlite+pysqlite", "postgresql", "postgresql+psycopg")


def default_database_url() -> str:
    """SQLite under ``RCLAUDE_HOME`` (``~/.rclaude/service/service.db``)."""
    return f"sqlite:///{rclaude_home() / 'service' / 'service.db'}"


def _database_url(_: object, __: object, value: str) -> None:
    scheme = value.split("://", 1)[0] if "://" in value else ""
    if scheme not in _SCHEMES:
        raise ConfigError("database_url", value.split("@")[-1],
                          "a URL of " + ", ".join(f"{s}://" for s in _SCHEMES)
                          + f" (set {DATABASE_ENV})")


def _public_url(_: object, __: object, value: str) -> None:
    if not value.startswith(("https://", "http://")) or value.rstrip("/") != value or (
            "?" in value or "#" in value):
        raise ConfigError("public_url", value, "an https:// URL without a trailing slash, "
                          f"query or fragment (set {PUBLIC_URL_ENV})")


def _queue_url(_: object, __: object, value: str) -> None:
    if not value.startswith(("https://", "http://")) or any(c.isspace() for c in value):
        raise ConfigError("task_events_queue", value, "an SQS queue URL (https://sqs.REGION."
                          f"amazonaws.com/ACCOUNT/NAME; set {TASK_EVENTS_ENV})")


def _positive(name: str) -> Any:
    def check(_: object, __: object, value: object) -> None:
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ConfigError(name, value, "a whole number of at least 1")

    return check


@attrs.frozen(kw_only=True)
class ServiceSettings:
    """A service process's settings.

    >>> ServiceSettings(database_url="sqlite:///x.db").provider
    'local'
    """

    database_url: str = attrs.field(validator=_database_url)
    #: The deployment whose tasks the service runs, and where they run.
    deployment: str = "service"
    provider: str = attrs.field(default="local", validator=attrs.validators.in_(
        ("local", "ecs-ec2")))
    #: Tasks a user may have not ended at once.
    max_concurrent_tasks: int = attrs.field(default=10, validator=_positive("max_concurrent_tasks"))
    #: Requests per user per minute.
    requests_per_minute: int = attrs.field(default=600, validator=_positive("requests_per_minute"))
    #: Seconds a signing-in CLI waits between two polls (RFC 8628's default: 5).
    device_interval: int = attrs.field(default=5, validator=_positive("device_interval"))
    #: Whether this process starts the recorded tasks (and records their ends): off for
    #: API-only processes beside ``rclaude-infra worker`` processes.
    dispatch: bool = attrs.field(default=True, validator=attrs.validators.instance_of(bool))
    #: The URL people reach the service at (``RCLAUDE_PUBLIC_URL``), when it is behind a
    #: proxy: OAuth redirects go back to it, and https makes its cookies ``Secure``.
    public_url: str | None = attrs.field(default=None, validator=attrs.validators.optional(
        _public_url))
    #: The sign-in providers offered (``oauth.providers_from_env``), by name.
    providers: Mapping[str, Provider] = attrs.field(factory=dict, eq=False, repr=False)
    #: The SQS queue of task state changes the workers read (``RCLAUDE_TASK_EVENTS_QUEUE``;
    #: default: the ECS stack's own, when deployed with ``task_events=True``). Polling
    #: every 30 s stays as the fallback.
    task_events_queue: str | None = attrs.field(
        default=None, validator=attrs.validators.optional(_queue_url))
    #: The plans users are on (``RCLAUDE_PLANS_FILE``, or the default plans).
    plans: PlanBook = attrs.field(factory=PlanBook.load, eq=False, repr=False)
    #: Stripe, when billing is set up (``STRIPE_SECRET_KEY`` and the rest); without it,
    #: admins assign plans.
    stripe: StripeSettings | None = attrs.field(default=None, eq=False, repr=False)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: object
                 ) -> ServiceSettings:
        """Settings from ``env`` (default ``os.environ``), then ``overrides``."""
        env = os.environ if env is None else env
        values: dict[str, object] = {"database_url": env.get(DATABASE_ENV)
                                     or default_database_url(),
                                     "public_url": env.get(PUBLIC_URL_ENV) or None,
                                     "providers": providers_from_env(env),
                                     "plans": PlanBook.load(env.get(PLANS_FILE_ENV) or None),
                                     "stripe": StripeSettings.from_env(env),
                                     "task_events_queue": env.get(TASK_EVENTS_ENV) or None}
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)  # type: ignore[arg-type]

    @property
    def sqlite_path(self) -> Path | None:
        """The SQLite file, when the database is one."""
        if not self.database_url.startswith("sqlite"):
            return None
        return Path(self.database_url.split(":///", 1)[1])
