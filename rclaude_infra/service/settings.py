"""What a service process is configured with: where its database is, which deployment runs
its tasks, and its limits. Read from the environment and the ``serve`` flags."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import attrs

from ..errors import ConfigError
from ..paths import rclaude_home
from ..service_config import SETTINGS_SECRET_NAMES
from .billing_settings import StripeSettings
from .oauth import Provider, providers_from_env
from .plans import PlanBook

#: The environment variable naming the database (a SQLAlchemy URL).
DATABASE_ENV = "RCLAUDE_DATABASE_URL"
PUBLIC_URL_ENV = "RCLAUDE_PUBLIC_URL"
PLANS_FILE_ENV = "RCLAUDE_PLANS_FILE"
TASK_EVENTS_ENV = "RCLAUDE_TASK_EVENTS_QUEUE"
#: Addresses whose owners are admins once they sign in with a provider that has verified
#: the address (comma-separated): the first admin of a service no one can reach the
#: database of (RDS in isolated subnets).
ADMIN_EMAILS_ENV = "RCLAUDE_ADMIN_EMAILS"
MIGRATE_ENV = "RCLAUDE_DB_MIGRATE"
#: The deployed stack's outputs as JSON (``pulumi stack output --json``): a service on
#: ECS reaches its stack through them, with no Pulumi CLI or state beside it.
STACK_OUTPUTS_ENV = "RCLAUDE_STACK_OUTPUTS"
#: A PostgreSQL database by its parts, its login read from a Secrets Manager secret (the
#: one RDS keeps and rotates) whenever a connection is opened: the stack's service mode.
DB_HOST_ENV, DB_PORT_ENV, DB_NAME_ENV = "RCLAUDE_DB_HOST", "RCLAUDE_DB_PORT", "RCLAUDE_DB_NAME"
DB_LOGIN_ENV, DB_SSLMODE_ENV = "RCLAUDE_DB_LOGIN_ARN", "RCLAUDE_DB_SSLMODE"
#: One JSON object of settings kept as one secret (ECS puts the secret's value here): its
#: members become environment variables of the process, for the names below only.
SETTINGS_SECRET_ENV = "RCLAUDE_SERVICE_SETTINGS"
_SECRET_ARN_RE = re.compile(
    r"arn:aws[a-z-]*:secretsmanager:[a-z0-9-]+:\d{12}:secret:[A-Za-z0-9/_+=.@!-]+")
_SSLMODES = ("disable", "allow", "prefer", "require", "verify-ca", "verify-full")
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


def _admin_emails(value: object) -> tuple[str, ...]:
    """A comma-separated list (the variable) or a sequence; each a plain address,
    lower-cased as accounts keep them."""
    items = value.split(",") if isinstance(value, str) else list(value)  # type: ignore[call-overload]
    if not any(str(item).strip() for item in items):
        return ()
    from .accounts import check_email

    try:
        return tuple(check_email(item.strip()) for item in items if item.strip())
    except ConfigError as exc:
        raise ConfigError(ADMIN_EMAILS_ENV, exc.value, exc.allowed) from None


def _secret_arn(_: object, __: object, value: str) -> None:
    if not isinstance(value, str) or not _SECRET_ARN_RE.fullmatch(value):
        raise ConfigError(DB_LOGIN_ENV, value, "a Secrets Manager secret ARN")


def _database_from_parts(env: Mapping[str, str]) -> str | None:
    """``postgresql+psycopg://host:port/name?sslmode=...`` from ``RCLAUDE_DB_HOST`` and
    the rest, with no login in it: the login comes from ``RCLAUDE_DB_LOGIN_ARN``."""
    host = env.get(DB_HOST_ENV)
    if not host:
        return None
    from sqlalchemy.engine import URL

    if not env.get(DB_LOGIN_ENV):
        raise ConfigError(DB_LOGIN_ENV, None, f"the secret of the database's login, with "
                          f"{DB_HOST_ENV}")
    port = env.get(DB_PORT_ENV) or "5432"
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise ConfigError(DB_PORT_ENV, port, "a TCP port (1-65535)")
    sslmode = env.get(DB_SSLMODE_ENV) or "require"
    if sslmode not in _SSLMODES:
        raise ConfigError(DB_SSLMODE_ENV, sslmode, "one of " + ", ".join(_SSLMODES))
    return URL.create("postgresql+psycopg", host=host, port=int(port),
                      database=env.get(DB_NAME_ENV) or "rclaude",
                      query={"sslmode": sslmode}).render_as_string()


def _stack_outputs(env: Mapping[str, str]) -> Mapping[str, Any] | None:
    raw = env.get(STACK_OUTPUTS_ENV)
    if not raw:
        return None
    try:
        outputs = json.loads(raw)
    except ValueError:
        outputs = None
    if not isinstance(outputs, dict):
        raise ConfigError(STACK_OUTPUTS_ENV, raw[:80], "a JSON object: the stack's outputs "
                          "(pulumi stack output --json)")
    return outputs


def expand_settings_secret(env: Any) -> None:
    """Put the members of ``RCLAUDE_SERVICE_SETTINGS`` (a JSON object, as ECS injects one
    secret) into ``env`` (``os.environ``) as variables, for the names of
    :data:`SETTINGS_SECRET_NAMES` only and never over one already set; then drop it, so
    the whole object is not handed on to anything this process starts."""
    raw = env.pop(SETTINGS_SECRET_ENV, None)
    if not raw:
        return
    try:
        values = json.loads(raw)
    except ValueError:
        values = None
    if not isinstance(values, dict):
        raise ConfigError(SETTINGS_SECRET_ENV, "(hidden)", "a JSON object of settings")
    unknown = sorted(k for k in values if k not in SETTINGS_SECRET_NAMES)
    if unknown:
        raise ConfigError(SETTINGS_SECRET_ENV, unknown,
                          "names among " + ", ".join(SETTINGS_SECRET_NAMES))
    for name, value in values.items():
        if not isinstance(value, str):
            raise ConfigError(f"{SETTINGS_SECRET_ENV}.{name}", "(hidden)", "a string")
        env.setdefault(name, value)


def deployment_of(settings: ServiceSettings) -> Any:
    """The deployment the service's tasks run on: from ``stack_outputs`` when given (a
    service on the stack itself), else by name and provider."""
    from ..deployment import Deployment

    if settings.stack_outputs is not None:
        return Deployment.from_outputs(settings.deployment, settings.stack_outputs)
    return Deployment(settings.deployment, provider=settings.provider)


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
    #: Migrate the database to this release's schema at start (``RCLAUDE_DB_MIGRATE=1``:
    #: the stack's service tasks), one process at a time; else only a new database is.
    migrate_on_start: bool = attrs.field(default=False,
                                         validator=attrs.validators.instance_of(bool))
    #: Verified addresses that are admins when they sign in (``RCLAUDE_ADMIN_EMAILS``).
    admin_emails: tuple[str, ...] = attrs.field(default=(), converter=_admin_emails)
    #: With a database by its parts (``RCLAUDE_DB_HOST``...): the secret its login is read
    #: from when a connection is opened.
    database_secret_arn: str | None = attrs.field(default=None, validator=attrs.validators.optional(
        _secret_arn))
    #: The stack's outputs (``RCLAUDE_STACK_OUTPUTS``): tasks run on that stack with no
    #: Pulumi state read.
    stack_outputs: Mapping[str, Any] | None = attrs.field(default=None, eq=False, repr=False)
    #: Stripe, when billing is set up (``STRIPE_SECRET_KEY`` and the rest); without it,
    #: admins assign plans.
    stripe: StripeSettings | None = attrs.field(default=None, eq=False, repr=False)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: object
                 ) -> ServiceSettings:
        """Settings from ``env`` (default ``os.environ``), then ``overrides``."""
        env = os.environ if env is None else env
        values: dict[str, object] = {"database_url": env.get(DATABASE_ENV)
                                     or _database_from_parts(env)
                                     or default_database_url(),
                                     "database_secret_arn": env.get(DB_LOGIN_ENV) or None,
                                     "admin_emails": env.get(ADMIN_EMAILS_ENV) or (),
                                     "migrate_on_start": env.get(MIGRATE_ENV) == "1",
                                     "stack_outputs": _stack_outputs(env),
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
