"""Value objects describing a deployment, validated at construction.

Nothing here touches the network: every check runs offline, before any cloud call,
and a bad value raises :class:`~rclaude_infra.errors.ConfigError` naming the field,
the value and what is allowed.
"""

from __future__ import annotations

import functools
import importlib.util
import json
import os
from collections.abc import Mapping
from typing import Any

import attrs

from ._validate import Pattern as _Pattern
from ._validate import as_tuple as _tuple
from ._validate import distinct_matching as _distinct_matching
from ._validate import float_between as _float_between
from ._validate import frozen_mapping as _frozen_tags
from ._validate import int_between as _int_between
from ._validate import is_bool as _is_bool
from ._validate import is_int as _is_int
from ._validate import known_fields as _known_fields
from ._validate import matching as _matching
from ._validate import one_of as _one_of
from .errors import ConfigError
from .instance_types import InstanceType, families, instance_types
from .service_config import DEPLOYMENT_MODES, ServiceConfig

#: The log retention periods CloudWatch Logs accepts (PutRetentionPolicy), in days.
LOG_RETENTION_DAYS: tuple[int, ...] = (
    1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731,
    1096, 1827, 2192, 2557, 2922, 3288, 3653,
)
NAT_MODES: tuple[str, ...] = ("none", "single", "per-az")
#: How tasks sign in to Claude: an Anthropic API key, a Claude subscription token from
#: ``claude setup-token``, or Amazon Bedrock through the task role.
AUTH_MODES: tuple[str, ...] = ("api-key", "oauth-token", "bedrock")
#: ``"baseline"``: the cheap, safe default. ``"strict"``: what a compliance review asks
#: for on top: results bucket versioning and access logging, VPC flow logs, Container
#: Insights, and instances in private subnets (``nat`` other than ``"none"``).
SECURITY_PROFILES: tuple[str, ...] = ("baseline", "strict")
#: How the runner image comes to be: ``True`` (or ``"local"``) builds it with the local
#: Docker engine during ``up``; ``"remote"`` builds it in the account with AWS CodeBuild
#: (nothing needed locally); ``False`` uses ``image=`` as given.
IMAGE_BUILDS: tuple[bool | str, ...] = (True, "remote", False)
#: The environment variable that carries each mode's credential to Claude Code (Bedrock
#: needs none: the task role signs its requests).
CREDENTIAL_ENV: Mapping[str, str | None] = {
    "api-key": "ANTHROPIC_API_KEY",
    "oauth-token": "CLAUDE_CODE_OAUTH_TOKEN",
    "bedrock": None,
}
#: The Pulumi stack config key (namespace ``rclaude``) holding each mode's credential as a
#: secret.
CREDENTIAL_CONFIG: Mapping[str, str] = {
    "api-key": "anthropic_api_key",
    "oauth-token": "claude_oauth_token",
}
#: The stack config key (a secret) holding the hosted service's settings as JSON
#: (``mode="service"``): set by ``up`` from its environment.
SERVICE_SETTINGS_CONFIG = "service_settings"
#: Claude models on Bedrock used when ``bedrock_models`` is not given: the first is the
#: tasks' model, the second Claude Code's small fast model. Each is a cross-region
#: inference profile id without its geography prefix (see :func:`bedrock_model_ids`).
BEDROCK_DEFAULT_MODELS: tuple[str, ...] = (
    "anthropic.claude-sonnet-4-5-20250929-v1:0",
    "anthropic.claude-haiku-4-5-20251001-v1:0",
)
#: Tag carrying the deployment name on every taggable resource (leak sweeps look for it).
DEPLOYMENT_TAG = "rclaude:deployment"
#: What a bucket holds (``results``, ``access-logs``): the estimate and the rules read it.
PURPOSE_TAG = "rclaude:purpose"

#: The longest deployment name. Resource names are built as ``rclaude-<name>-<part>``
#: and Pulumi appends an 8-character suffix: the longest, the execution role
#: ``rclaude-<name>-execution-xxxxxxx``, must fit IAM's 64 characters and the
#: results bucket ``rclaude-<name>-results-xxxxxxx`` S3's 63.
MAX_NAME_LENGTH = 32
_NAME_RE = _Pattern(r"^[a-z][a-z0-9-]*$")
_INSTANCE_TYPE_RE = _Pattern(r"^[a-z][a-z0-9-]*\.[a-z0-9-]+$")
_VPC_ID_RE = _Pattern(r"^vpc-[0-9a-f]{8,17}$")
_SUBNET_ID_RE = _Pattern(r"^subnet-[0-9a-f]{8,17}$")
# An image reference as Docker parses it: [registry[:port]/]path[:tag][@digest].
_IMAGE_RE = _Pattern(
    r"^(?:[a-zA-Z0-9.-]+(?::[0-9]+)?/)?[a-z0-9]+(?:[._-][a-z0-9]+)*"
    r"(?:/[a-z0-9]+(?:[._-][a-z0-9]+)*)*(?::[\w][\w.-]{0,127})?(?:@sha256:[0-9a-f]{64})?$"
)
# AWS tag keys and values: letters, digits, spaces and _ . : / = + - @
_TAG_RE = _Pattern(r"^[\w\s.:/=+\-@]*$")
_MAX_USER_TAGS = 40  # AWS allows 50; the stack adds its own
# A Bedrock model id or cross-region inference profile id for a Claude model.
_BEDROCK_MODEL_RE = _Pattern(
    r"^(?:(?:us|eu|apac|jp|au|ca|us-gov|global)\.)?anthropic\.claude-[a-z0-9.-]+(?::\d+)?$")
HOURS_PER_MONTH = 730


@functools.cache
def known_regions() -> frozenset[str]:
    """Regions in botocore's bundled endpoint data, read without importing botocore."""
    spec = importlib.util.find_spec("botocore")
    if spec is None or not spec.submodule_search_locations:
        return frozenset()
    path = os.path.join(next(iter(spec.submodule_search_locations)), "data", "endpoints.json")
    with open(path) as f:
        data = json.load(f)
    return frozenset(region for p in data["partitions"] for region in p["regions"])


def validate_name(name: object) -> str:
    """Check a deployment name can make every resource name the stack needs.

    >>> validate_name("dev")
    'dev'
    """
    allowed = (
        f"1 to {MAX_NAME_LENGTH} characters: lowercase letters, digits and single hyphens, "
        "starting with a letter and not ending with a hyphen (it becomes part of S3 bucket "
        "and IAM role names)"
    )
    if (
        not isinstance(name, str)
        or not 1 <= len(name) <= MAX_NAME_LENGTH
        or not _NAME_RE.fullmatch(name)
        or name.endswith("-")
        or "--" in name
    ):
        raise ConfigError("name", name, allowed)
    return name


def _check_region(_: object, attribute: attrs.Attribute[Any], value: object) -> None:
    regions = known_regions()
    if not isinstance(value, str) or (regions and value not in regions):
        raise ConfigError(
            attribute.name, value,
            "an AWS region known to botocore, e.g. 'us-east-1', 'eu-west-1'",
        )


def _check_instance_types(_: object, attribute: attrs.Attribute[Any], value: object) -> None:
    known = instance_types()
    allowed = (
        "a non-empty list of distinct instance types from the families "
        + ", ".join(families())
    )
    if not isinstance(value, tuple) or not value or len(set(value)) != len(value):
        raise ConfigError(attribute.name, value, allowed)
    for item in value:
        if not isinstance(item, str) or not _INSTANCE_TYPE_RE.fullmatch(item):
            raise ConfigError(attribute.name, item, "names like 't3.medium' (family.size)")
        if item not in known:
            raise ConfigError(attribute.name, item, allowed)
    arches = {known[item].arch for item in value}
    if len(arches) > 1:
        raise ConfigError(
            attribute.name, value,
            "types of one CPU architecture (all x86_64 or all arm64): one launch "
            "template has one AMI",
        )


def _check_optional_str(pattern: _Pattern, example: str) -> Any:
    return _matching(pattern, f"None or an id like {example!r}", optional=True)


def bedrock_geography(region: str) -> str:
    """The cross-region inference profile prefix for a region's geography.

    >>> bedrock_geography("eu-west-1"), bedrock_geography("us-east-2")
    ('eu', 'us')
    """
    if region.startswith("us-gov-"):
        return "us-gov"
    if region.startswith(("us-", "ca-")):
        return "us"
    if region.startswith("eu-"):
        return "eu"
    if region.startswith("ap-"):
        return "apac"
    return "global"


def bedrock_model_ids(region: str, models: tuple[str, ...] = ()) -> tuple[str, ...]:
    """The Bedrock model ids a deployment in ``region`` uses: ``models`` as given, or the
    defaults as inference profiles of the region's geography.

    >>> bedrock_model_ids("eu-central-1")[0]
    'eu.anthropic.claude-sonnet-4-5-20250929-v1:0'
    """
    if models:
        return models
    return tuple(f"{bedrock_geography(region)}.{m}" for m in BEDROCK_DEFAULT_MODELS)


_check_bedrock_models = _distinct_matching(
    _BEDROCK_MODEL_RE,
    "a list of distinct Bedrock Claude model or inference profile ids, e.g. "
    "'us.anthropic.claude-sonnet-4-5-20250929-v1:0' (the first is the tasks' model)")


_check_subnet_ids = _distinct_matching(
    _SUBNET_ID_RE, "a list of distinct subnet ids like 'subnet-0123abcd'")


def _image_build(value: object) -> object:
    """``"local"`` is the name of ``True`` (the CLI flag and TOML may say either)."""
    return True if value == "local" else value


def _check_image_build(_: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if not any(value is mode or (isinstance(value, str) and value == mode)
               for mode in IMAGE_BUILDS):
        raise ConfigError(attribute.name, value,
                          "True or 'local' (local Docker), 'remote' (CodeBuild in the "
                          "account, no Docker needed here) or False (with image=)")


def _check_image(_: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if value is not None and (
        not isinstance(value, str) or len(value) > 1024 or not _IMAGE_RE.fullmatch(value)
    ):
        raise ConfigError(
            attribute.name, value,
            "None or a container image reference such as "
            "'123456789012.dkr.ecr.us-east-1.amazonaws.com/runner:1.0'",
        )


def _check_egress_ports(_: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if (
        not isinstance(value, tuple)
        or not value
        or len(set(value)) != len(value)
        or not all(_is_int(p) and 1 <= p <= 65535 for p in value)
    ):
        raise ConfigError(
            attribute.name, value, "a non-empty list of distinct TCP ports from 1 to 65535"
        )


def _check_tags(_: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if not isinstance(value, Mapping) or len(value) > _MAX_USER_TAGS:
        raise ConfigError(
            attribute.name, value, f"a mapping of at most {_MAX_USER_TAGS} string keys to strings"
        )
    for key, val in value.items():
        if (
            not isinstance(key, str)
            or not 1 <= len(key) <= 128
            or not _TAG_RE.fullmatch(key)
            or key.lower().startswith(("aws:", "rclaude:"))
        ):
            raise ConfigError(
                f"{attribute.name}[{key!r}]", key,
                "a key of 1 to 128 letters, digits, spaces or _ . : / = + - @, "
                "not starting with 'aws:' or 'rclaude:' (reserved)",
            )
        if not isinstance(val, str) or len(val) > 256 or not _TAG_RE.fullmatch(val):
            raise ConfigError(
                f"{attribute.name}[{key!r}]", val,
                "a value of at most 256 letters, digits, spaces or _ . : / = + - @",
            )


@attrs.frozen(kw_only=True)
class Usage:
    """How a deployment is used, for cost estimates and the budget guard.

    Tasks arrive in bursts of ``concurrency`` tasks; each burst starts enough
    instances to hold it (after any always-on ones), which run for the task, the
    ``startup_minutes`` before it and the ``scale_in_minutes`` after it.

    >>> Usage(tasks_per_day=20, task_minutes=15).tasks_per_month
    608.3333
    """

    tasks_per_day: float = attrs.field(default=10, validator=_float_between(0, 100_000))
    task_minutes: float = attrs.field(
        default=15, validator=_float_between(0, 1440, low_open=True)
    )
    #: Tasks that run at the same time in one burst.
    concurrency: int = attrs.field(default=1, validator=_int_between(1, 10_000))
    #: Instance boot, ECS registration and image pull before a task starts.
    startup_minutes: float = attrs.field(default=3, validator=_float_between(0, 60))
    #: How long ECS managed scaling keeps an idle instance after the last task
    #: (its scale-in alarm needs 15 one-minute datapoints).
    scale_in_minutes: float = attrs.field(default=15, validator=_float_between(0, 120))
    log_mb_per_task: float = attrs.field(default=2, validator=_float_between(0, 100_000))
    #: Transcript, diff and artifacts a task uploads.
    result_mb_per_task: float = attrs.field(default=5, validator=_float_between(0, 100_000))
    #: Internet egress per task: the repository clone, model API calls, package installs.
    egress_gb_per_task: float = attrs.field(default=0.1, validator=_float_between(0, 10_000))
    #: Size of the runner image kept in ECR (when the stack builds it).
    image_gb: float = attrs.field(default=1.0, validator=_float_between(0, 100))
    #: With ``build_image="remote"``: builds of the runner image a month (one per change
    #: of the installed package: an upgrade, or a new Claude Code pin) and how long one
    #: takes on CodeBuild's small instance.
    image_builds_per_month: float = attrs.field(default=2, validator=_float_between(0, 1000))
    image_build_minutes: float = attrs.field(default=6, validator=_float_between(0, 480))
    #: The model's cost of one task (USD; Claude Code's ``total_cost_usd``, or
    #: ``task.cost().model_usd`` of your tasks). ``None``: an assumption, labelled as one
    #: (:data:`rclaude_infra.cost.ASSUMED_MODEL_USD_PER_TASK`).
    model_usd_per_task: float | None = attrs.field(
        default=None, validator=attrs.validators.optional(_float_between(0, 10_000)))

    @property
    def tasks_per_month(self) -> float:
        return round(self.tasks_per_day * HOURS_PER_MONTH / 24, 4)


def _usage(value: object) -> object:
    """Accept a table (TOML, JSON) where a Usage is wanted; unknown keys name themselves."""
    if isinstance(value, Mapping):
        fields = _known_fields(Usage, value, "usage", prefix="usage.")
        try:
            return Usage(**fields)
        except ConfigError as exc:
            raise ConfigError(f"usage.{exc.field}", exc.value, exc.allowed) from None
    return value


def _check_usage(_: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if not isinstance(value, Usage):
        raise ConfigError(attribute.name, value, "a Usage or a table of its fields")


def _service_config(value: object) -> object:
    """Accept a table (TOML, JSON, stack config) where a ServiceConfig is wanted."""
    if value is None or isinstance(value, ServiceConfig):
        return value
    if isinstance(value, Mapping):
        return ServiceConfig.from_mapping(value)
    raise ConfigError("service", value, "a ServiceConfig or a table of its fields")


def _check_budget(_: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if value is not None:
        _float_between(0, 10_000_000, low_open=True)(_, attribute, value)


@attrs.frozen(kw_only=True)
class DeploymentConfig:
    """What to deploy: every knob of the ECS-on-EC2 stack, validated at construction.

    The defaults are the cheapest safe layout: spot ``t3.medium``/``t3a.medium``
    instances that scale from zero, public subnets in two AZs and no NAT gateway,
    so an idle stack costs cents a month.

    >>> cfg = DeploymentConfig(region="eu-west-1", max_instances=2)
    >>> cfg.instance_types
    ('t3.medium', 't3a.medium')
    >>> import attrs; attrs.evolve(cfg, spot=False).spot
    False

    Every invalid value raises :class:`~rclaude_infra.errors.ConfigError` (a
    ``ValueError``) naming the field and what is allowed.
    """

    region: str = attrs.field(default="us-east-1", validator=_check_region)
    instance_types: tuple[str, ...] = attrs.field(
        default=("t3.medium", "t3a.medium"), converter=_tuple, validator=_check_instance_types
    )
    spot: bool = attrs.field(default=True, validator=_is_bool)
    #: How many instances run on-demand before spot is used (0: all spot).
    on_demand_base: int = attrs.field(default=0, validator=_int_between(0, 1000))
    min_instances: int = attrs.field(default=0, validator=_int_between(0, 1000))
    max_instances: int = attrs.field(default=4, validator=_int_between(1, 1000))
    az_count: int = attrs.field(default=2, validator=_int_between(1, 6))
    nat: str = attrs.field(default="none", validator=_one_of(NAT_MODES))
    vpc_id: str | None = attrs.field(
        default=None, validator=_check_optional_str(_VPC_ID_RE, "vpc-0123abcd")
    )
    subnet_ids: tuple[str, ...] = attrs.field(
        default=(), converter=_tuple, validator=_check_subnet_ids
    )
    root_volume_gb: int = attrs.field(default=30, validator=_int_between(30, 16384))
    log_retention_days: int = attrs.field(default=30, validator=_one_of(LOG_RETENTION_DAYS))
    results_expire_days: int = attrs.field(default=30, validator=_int_between(1, 3650))
    #: CPU units reserved per task (1024 = one vCPU).
    task_cpu: int = attrs.field(default=1024, validator=_int_between(128, 196608))
    #: Memory reserved per task, MiB.
    task_memory: int = attrs.field(default=2048, validator=_int_between(128, 1048576))
    image: str | None = attrs.field(default=None, validator=_check_image)
    #: Build the runner image into the stack's ECR repository (default when no ``image``):
    #: ``True`` with local Docker, ``"remote"`` in the account with CodeBuild (no Docker
    #: here), ``False`` to use ``image`` (see :data:`IMAGE_BUILDS`).
    build_image: bool | str = attrs.field(
        default=attrs.Factory(lambda self: self.image is None, takes_self=True),
        converter=_image_build, validator=_check_image_build,
    )
    #: TCP ports the instances and tasks may reach outside the VPC (HTTPS only by default).
    egress_ports: tuple[int, ...] = attrs.field(
        default=(443,), converter=_tuple, validator=_check_egress_ports
    )
    #: Keep the results bucket (and what tasks wrote) when the stack is destroyed.
    retain_results: bool = attrs.field(default=False, validator=_is_bool)
    #: Let tasks be started interactive (``TaskSpec(interactive=True)``, ``run
    #: --interactive``): the stack adds a second task definition for them, whose root file
    #: system is writable (ECS Exec's agent needs one, AWS's ECS Exec documentation), and
    #: gives the task role ECS Exec's ``ssmmessages`` channel. Other tasks keep the
    #: read-only root either way.
    interactive_tasks: bool = attrs.field(default=False, validator=_is_bool)
    #: Send the cluster's task state changes (EventBridge's "ECS Task State Change") to
    #: an SQS queue with a dead-letter queue, for a service's workers to consume instead
    #: of polling ECS (``rclaude-infra worker`` reads it from the stack's outputs).
    task_events: bool = attrs.field(default=False, validator=_is_bool)
    tags: Mapping[str, str] = attrs.field(
        factory=dict, converter=_frozen_tags, validator=_check_tags, hash=False
    )
    #: The usage the cost estimate and the budget guard assume.
    usage: Usage = attrs.field(factory=Usage, converter=_usage, validator=_check_usage)
    #: Refuse to deploy when the estimate for ``usage`` is over this (USD a month).
    max_monthly_usd: float | None = attrs.field(default=None, validator=_check_budget)
    #: How tasks sign in to Claude: ``"api-key"`` (``ANTHROPIC_API_KEY``, kept in Secrets
    #: Manager), ``"oauth-token"`` (``CLAUDE_CODE_OAUTH_TOKEN`` from ``claude setup-token``,
    #: kept the same way) or ``"bedrock"`` (Claude on Amazon Bedrock through the task role;
    #: no secret at all).
    auth: str = attrs.field(default="api-key", validator=_one_of(AUTH_MODES))
    #: With ``auth="bedrock"``: the model and inference profile ids tasks may call (the
    #: task role is scoped to them; the first is the tasks' default model). Empty: the
    #: defaults of :data:`BEDROCK_DEFAULT_MODELS` for the region's geography.
    bedrock_models: tuple[str, ...] = attrs.field(
        default=(), converter=_tuple, validator=_check_bedrock_models
    )
    #: :data:`SECURITY_PROFILES`: ``"strict"`` adds what a compliance review asks for
    #: (see the README's table of what each rule costs and which option turns it on).
    security_profile: str = attrs.field(default="baseline",
                                        validator=_one_of(SECURITY_PROFILES))
    #: :data:`~rclaude_infra.service_config.DEPLOYMENT_MODES`: ``"self-hosted"`` (tasks
    #: for the account's own people) or ``"service"`` (the same stack plus the hosted
    #: service, configured by :attr:`service`).
    mode: str = attrs.field(default="self-hosted", validator=_one_of(DEPLOYMENT_MODES))
    #: With ``mode="service"``: the service's domain and TLS, database and task counts.
    service: ServiceConfig | None = attrs.field(default=None, converter=_service_config)

    def __attrs_post_init__(self) -> None:
        self._check_mode()
        if self.max_instances < self.min_instances:
            raise ConfigError(
                "max_instances", self.max_instances,
                f"at least min_instances ({self.min_instances})",
            )
        if self.on_demand_base > self.max_instances:
            raise ConfigError(
                "on_demand_base", self.on_demand_base,
                f"at most max_instances ({self.max_instances})",
            )
        if (self.vpc_id is None) != (not self.subnet_ids):
            raise ConfigError(
                "subnet_ids", self.subnet_ids,
                "given together with vpc_id (an existing VPC and its subnets), or neither",
            )
        if self.vpc_id is not None and self.nat != "none":
            raise ConfigError(
                "nat", self.nat,
                "'none' with an existing vpc_id (the stack creates NAT only in its own VPC)",
            )
        if self.image is not None and self.build_image:
            raise ConfigError(
                "build_image", self.build_image,
                "false when image is given (use one or the other)",
            )
        if self.image is None and not self.build_image:
            raise ConfigError("image", None, "an image reference when build_image is false")
        if self.security_profile == "strict" and self.nat == "none" and self.vpc_id is None:
            raise ConfigError("nat", self.nat, "'single' or 'per-az' with "
                              "security_profile='strict' (instances in private subnets)")
        if self.bedrock_models and self.auth != "bedrock":
            raise ConfigError("bedrock_models", self.bedrock_models,
                              "empty unless auth is 'bedrock'")
        fits = [
            t for t in self.instance_specs
            if t.cpu_units >= self.task_cpu and t.task_memory_mib >= self.task_memory
        ]
        if not fits:
            biggest = max(self.instance_specs, key=lambda t: (t.task_memory_mib, t.cpu_units))
            raise ConfigError(
                "task_cpu/task_memory", (self.task_cpu, self.task_memory),
                "a size one of the instance types can hold; the largest listed, "
                f"{biggest.name}, gives tasks {biggest.cpu_units} CPU units and "
                f"{biggest.task_memory_mib} MiB",
            )

    def _check_mode(self) -> None:
        if self.mode != "service":
            if self.service is not None:
                raise ConfigError("service", self.service.to_dict(),
                                  "None unless mode is 'service'")
            return
        if self.service is None:
            raise ConfigError("service", None, "the service's settings with mode='service': "
                              "domain with zone_id or certificate_arn, or http_only=true")
        if self.image is not None:
            raise ConfigError("image", self.image, "None with mode='service': the service's "
                              "image is built from the installed package beside the runner's "
                              "(build_image=True or 'remote')")
        if self.vpc_id is not None:
            raise ConfigError("vpc_id", self.vpc_id, "None with mode='service' (the stack "
                              "makes its own VPC: public subnets for the load balancer, "
                              "isolated ones for the database)")
        if self.az_count < 2:
            raise ConfigError("az_count", self.az_count, "at least 2 with mode='service' "
                              "(a load balancer and a database subnet group span two zones)")

    @property
    def sends_task_events(self) -> bool:
        """Whether the stack sends its task state changes to a queue: ``task_events``, or
        always in service mode (its workers consume them)."""
        return self.task_events or self.mode == "service"

    @property
    def instance_specs(self) -> tuple[InstanceType, ...]:
        """The :class:`InstanceType` of each configured type, in order."""
        known = instance_types()
        return tuple(known[name] for name in self.instance_types)

    @property
    def image_mode(self) -> str:
        """Where the runner image comes from: ``"local"`` (built with local Docker),
        ``"remote"`` (built by CodeBuild in the account) or ``"given"`` (``image=``).

        >>> DeploymentConfig(build_image="remote").image_mode
        'remote'
        """
        if self.build_image == "remote":
            return "remote"
        return "local" if self.build_image else "given"

    @property
    def task_capacity(self) -> int:
        """How many tasks of the deployment's size the group holds at most: per instance
        what the smallest listed type leaves for tasks (its CPU units, and its memory less
        what ECS and the OS keep), times ``max_instances``.

        >>> DeploymentConfig(max_instances=4).task_capacity   # t3.medium: 2 vCPU, 1 task
        4
        """
        per_instance = min(min(t.cpu_units // self.task_cpu, t.task_memory_mib // self.task_memory)
                           for t in self.instance_specs)
        return max(1, per_instance) * self.max_instances

    @property
    def credential_env(self) -> str | None:
        """The environment variable that gives tasks their Claude credential under
        :attr:`auth` (``None`` for Bedrock, which signs with the task role).

        >>> DeploymentConfig(auth="oauth-token").credential_env
        'CLAUDE_CODE_OAUTH_TOKEN'
        """
        return CREDENTIAL_ENV[self.auth]

    def agent_environment(self) -> dict[str, str]:
        """What Claude Code needs in every task of this deployment beside its credential:
        with Bedrock, the switch, the region and the pinned models.

        >>> env = DeploymentConfig(auth="bedrock", region="eu-west-1").agent_environment()
        >>> env["ANTHROPIC_MODEL"]
        'eu.anthropic.claude-sonnet-4-5-20250929-v1:0'
        """
        if self.auth != "bedrock":
            return {}
        models = self.models
        small = next((m for m in models if "haiku" in m), models[0])
        return {"CLAUDE_CODE_USE_BEDROCK": "1", "AWS_REGION": self.region,
                "ANTHROPIC_MODEL": models[0], "ANTHROPIC_DEFAULT_HAIKU_MODEL": small}

    @property
    def models(self) -> tuple[str, ...]:
        """With Bedrock, the model ids tasks may call (:func:`bedrock_model_ids`); else
        empty (any model the Anthropic API offers)."""
        if self.auth != "bedrock":
            return ()
        return bedrock_model_ids(self.region, self.bedrock_models)

    @property
    def arch(self) -> str:
        """CPU architecture of the instances: ``'x86_64'`` or ``'arm64'``."""
        return self.instance_specs[0].arch

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> DeploymentConfig:
        """Build a config from plain data (a TOML table, JSON, stack config).

        Unknown keys are errors naming the key.

        >>> DeploymentConfig.from_mapping({"region": "us-west-2", "spot": False}).spot
        False
        """
        return cls(**_known_fields(cls, data, "config"))

    @classmethod
    def from_stack_config(cls, values: Mapping[str, str]) -> DeploymentConfig:
        """Build a config from Pulumi stack config values (``rclaude:<field>``, namespace
        already removed); the inverse of :meth:`to_stack_config`.

        Values are JSON (numbers, booleans, lists, tables); a value that is not JSON
        is taken as a plain string, as ``pulumi config set rclaude:region eu-west-1`` gives.
        """
        data: dict[str, Any] = {}
        for key, raw in values.items():
            try:
                data[key] = json.loads(raw)
            except (TypeError, ValueError):
                data[key] = raw
        return cls.from_mapping(data)

    def to_stack_config(self) -> dict[str, str]:
        """Pulumi stack config for this config: ``{"rclaude:<field>": value}``.

        Strings are kept as they are, everything else is JSON.
        """
        return {
            f"rclaude:{key}": value if isinstance(value, str) else json.dumps(value)
            for key, value in self.to_dict().items()
            if value is not None
        }

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able data that :meth:`from_mapping` turns back into this config."""
        data = attrs.asdict(self, recurse=False)
        data["tags"] = dict(self.tags)
        data["usage"] = attrs.asdict(self.usage)
        data["service"] = self.service.to_dict() if self.service is not None else None
        for key, value in data.items():
            if isinstance(value, tuple):
                data[key] = list(value)
        return data
