"""What ``mode="service"`` adds to a deployment: the hosted service itself, on the same
stack as the tasks it runs (:class:`ServiceConfig`, ``DeploymentConfig.service``).

The service's API processes run as an ECS service on Fargate behind an Application Load
Balancer, its workers as a second one, and its database is RDS PostgreSQL in subnets with
no route out. TLS comes from an ACM certificate: made and validated in a Route 53 zone
(``domain`` and ``zone_id``), or one already issued (``domain`` and ``certificate_arn``);
``http_only=True`` serves plain HTTP, for a trial behind nothing, and says so.
"""

from __future__ import annotations

from typing import Any

import attrs

from ._validate import Pattern, int_between, is_bool, known_fields, matching, one_of
from .errors import ConfigError

#: ``"self-hosted"``: tasks for the people who own the account (the library's stack).
#: ``"service"``: the same stack plus the hosted service that runs many users' tasks on it.
DEPLOYMENT_MODES: tuple[str, ...] = ("self-hosted", "service")
#: The end of the service's settings secret's resource name (the estimate prices it).
SETTINGS_SECRET_PART = "service-settings"
#: The port the service's containers listen on behind the load balancer.
SERVICE_PORT = 8000
#: The path the load balancer and ECS check (the service's readiness route).
HEALTH_PATH = "/readyz"
#: Fargate's task sizes: CPU units and the memory (MiB) each allows (AWS's "Task CPU and
#: memory" table for Fargate, Linux; the sizes above 4 vCPU left out).
FARGATE_SIZES: dict[int, tuple[int, ...]] = {
    256: (512, 1024, 2048),
    512: tuple(range(1024, 4097, 1024)),
    1024: tuple(range(2048, 8193, 1024)),
    2048: tuple(range(4096, 16385, 1024)),
    4096: tuple(range(8192, 30721, 1024)),
}

#: What the service's settings secret may set (``RCLAUDE_SERVICE_SETTINGS``, which ``up``
#: fills from these variables of its environment): the sign-in providers, Stripe, the
#: secrets' key. (The model key Pro tasks use is the stack's own credential secret.)
SETTINGS_SECRET_NAMES: tuple[str, ...] = (
    "RCLAUDE_SECRETS_KEY",
    "RCLAUDE_GITHUB_CLIENT_ID", "RCLAUDE_GITHUB_CLIENT_SECRET", "RCLAUDE_GITHUB_URL",
    "RCLAUDE_GITHUB_API_URL",
    "RCLAUDE_GOOGLE_CLIENT_ID", "RCLAUDE_GOOGLE_CLIENT_SECRET", "RCLAUDE_GOOGLE_ISSUER",
    "STRIPE_SECRET_KEY", "STRIPE_WEBHOOK_SECRET", "STRIPE_PRO_PRICE_ID", "STRIPE_API_BASE",
    "RCLAUDE_STRIPE_EXECUTIONS_METER", "RCLAUDE_STRIPE_MODEL_METER",
    "RCLAUDE_BILLING_GRACE_DAYS", "RCLAUDE_ADMIN_EMAILS",
)
#: The one of them the service cannot start without (its users' secrets are sealed with it).
SECRETS_KEY_ENV = "RCLAUDE_SECRETS_KEY"

_DOMAIN_RE = Pattern(r"(?=.{4,253}\Z)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}")
_ZONE_RE = Pattern(r"Z[A-Z0-9]{1,31}")
_CERTIFICATE_RE = Pattern(
    r"arn:aws[a-z-]*:acm:[a-z0-9-]+:\d{12}:certificate/[0-9a-f-]{36}")
_DB_CLASS_RE = Pattern(r"db\.[a-z0-9]+\.[a-z0-9]+")


def _matching(pattern: Pattern, allowed: str, *, optional: bool = True) -> Any:
    return _named(matching(pattern, allowed, optional=optional))


def _named(check: Any) -> Any:
    """A field check whose error names the field as ``service.<field>``."""
    def named(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
        try:
            check(instance, attribute, value)
        except ConfigError as exc:
            raise ConfigError(f"service.{attribute.name}", exc.value, exc.allowed) from None
    return named


@attrs.frozen(kw_only=True)
class ServiceConfig:
    """The hosted service's part of a ``mode="service"`` deployment.

    >>> ServiceConfig(domain="agents.example.com", zone_id="Z0123456789ABC").public_url
    'https://agents.example.com'
    >>> ServiceConfig(http_only=True).tls
    False

    Every invalid value raises :class:`~rclaude_infra.errors.ConfigError` naming
    ``service.<field>``.
    """

    #: The name people reach the service at (its certificate's name, its OAuth callbacks).
    domain: str | None = attrs.field(default=None, validator=_matching(
        _DOMAIN_RE, "None or a lower-case DNS name like 'agents.example.com'"))
    #: A Route 53 hosted zone holding ``domain``: the stack makes the certificate, proves
    #: it there (DNS validation) and points ``domain`` at the load balancer.
    zone_id: str | None = attrs.field(default=None, validator=_matching(
        _ZONE_RE, "None or a Route 53 hosted zone id like 'Z0123456789ABC'"))
    #: An issued ACM certificate for ``domain`` in the stack's region, instead of a zone.
    certificate_arn: str | None = attrs.field(default=None, validator=_matching(
        _CERTIFICATE_RE, "None or an ACM certificate ARN "
        "('arn:aws:acm:<region>:<account>:certificate/<uuid>')"))
    #: Serve plain HTTP (no certificate): passwords-free sign-in links and tokens then
    #: cross the network in the clear; for a trial only.
    http_only: bool = attrs.field(default=False, validator=_named(is_bool))
    #: The database's instance class (RDS PostgreSQL).
    db_instance_class: str = attrs.field(default="db.t4g.small", validator=_matching(
        _DB_CLASS_RE, "an RDS instance class like 'db.t4g.small'", optional=False))
    db_storage_gb: int = attrs.field(default=20, validator=_named(int_between(20, 65536)))
    #: Days RDS keeps automated backups (point-in-time recovery); kept after ``destroy``
    #: for as long.
    db_backup_days: int = attrs.field(default=7, validator=_named(int_between(1, 35)))
    #: A standby in a second Availability Zone (twice the database's price).
    db_multi_az: bool = attrs.field(default=False, validator=_named(is_bool))
    #: API tasks behind the load balancer, and worker tasks.
    api_count: int = attrs.field(default=2, validator=_named(int_between(1, 50)))
    worker_count: int = attrs.field(default=1, validator=_named(int_between(1, 50)))
    #: The size of each service task on Fargate: CPU units and memory (MiB).
    cpu: int = attrs.field(default=512, validator=_named(one_of(tuple(FARGATE_SIZES))))
    memory: int = attrs.field(default=1024, validator=_named(int_between(512, 30720)))

    def __attrs_post_init__(self) -> None:
        if self.memory not in FARGATE_SIZES[self.cpu]:
            sizes = FARGATE_SIZES[self.cpu]
            raise ConfigError("service.memory", self.memory,
                              f"one of Fargate's sizes for cpu={self.cpu}: "
                              f"{sizes[0]}..{sizes[-1]} MiB in steps of "
                              f"{sizes[1] - sizes[0]}")
        if self.zone_id is not None and self.certificate_arn is not None:
            raise ConfigError("service.certificate_arn", self.certificate_arn,
                              "None when zone_id is given (the stack makes the certificate "
                              "in that zone), or drop zone_id")
        if self.http_only:
            if self.certificate_arn is not None:
                raise ConfigError("service.http_only", True,
                                  "false when certificate_arn is given")
            return
        if self.domain is None:
            raise ConfigError("service.domain", None,
                              "the service's DNS name (with zone_id or certificate_arn) for "
                              "TLS, or set http_only=true to serve plain HTTP")
        if self.zone_id is None and self.certificate_arn is None:
            raise ConfigError("service.zone_id", None,
                              f"the Route 53 zone of {self.domain!r} (the stack makes and "
                              "validates the certificate), or give certificate_arn")

    @property
    def tls(self) -> bool:
        """Whether the load balancer answers HTTPS (and redirects HTTP to it)."""
        return not self.http_only

    @property
    def public_url(self) -> str | None:
        """Where people reach the service, when the config alone says (a ``domain``);
        else the load balancer's own name, known once deployed."""
        if self.domain is None:
            return None
        return f"{'https' if self.tls else 'http'}://{self.domain}"

    @classmethod
    def from_mapping(cls, data: object) -> ServiceConfig:
        """From a table (TOML, JSON, stack config); an unknown key names itself."""
        return cls(**known_fields(cls, data, "service", prefix="service."))

    def to_dict(self) -> dict[str, Any]:
        return attrs.asdict(self)
