"""The one error tree of rclaude-infra.

Every error the library raises on purpose is a :class:`RclaudeError`. Errors from
foreign libraries (botocore, pulumi) are translated into this tree at the edge that
calls them, chained with ``raise ... from``, and each message says what to do next.
"""

from __future__ import annotations

from typing import Any


class RclaudeError(Exception):
    """Base of every error rclaude-infra raises on purpose."""


class ConfigError(RclaudeError, ValueError):
    """An invalid configuration value, task spec or flag.

    Raised at construction, before any cloud call. ``field`` names the offending
    field, ``value`` is what was given and ``allowed`` says what would be accepted::

        >>> from rclaude_infra import DeploymentConfig
        >>> DeploymentConfig(nat="double")  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        rclaude_infra.errors.ConfigError: nat: got 'double'; allowed: one of 'none', ...
    """

    def __init__(self, field: str, value: Any, allowed: str) -> None:
        self.field = field
        self.value = value
        self.allowed = allowed
        super().__init__(f"{field}: got {value!r}; allowed: {allowed}")


class PlanError(RclaudeError):
    """The Pulumi program failed while being planned offline.

    This is a bug in the program or an input the config validation let through;
    the message carries the original error.
    """


class MissingDependencyError(RclaudeError, ImportError):
    """An optional dependency needed for this call is not installed."""

    def __init__(self, package: str, purpose: str) -> None:
        self.package = package
        super().__init__(
            f"{purpose} needs the '{package}' package; install it with "
            f"`pip install rclaude-infra` (it is a runtime dependency) or `pip install {package}`"
        )


class PriceNotFoundError(RclaudeError, LookupError):
    """A price the estimate needs is in neither the snapshot nor the live data.

    The message names the region and item and how to get a price for it; the library
    never guesses a missing price.
    """


class PricingUnavailableError(RclaudeError):
    """Live prices could not be fetched (no credentials, no access, throttled)."""


class BudgetExceededError(RclaudeError):
    """The cost estimate for the declared usage is over ``max_monthly_usd``.

    ``estimate`` is the :class:`~rclaude_infra.cost.CostEstimate` that was over,
    ``limit`` the budget; the message says by how much and which lines drive it.
    """

    def __init__(self, message: str, *, estimate: object, limit: float) -> None:
        super().__init__(message)
        self.estimate = estimate
        self.limit = limit


class PolicyViolationError(RclaudeError):
    """The plan breaks a mandatory security rule; ``findings`` name each rule and resource."""

    def __init__(self, message: str, *, findings: object) -> None:
        super().__init__(message)
        self.findings = findings


class SweepError(RclaudeError):
    """The leak sweep could not list the deployment's resources (credentials, permissions)."""


class EngineError(RclaudeError):
    """A Pulumi operation failed; the message carries the end of the engine's output."""


class PulumiNotFoundError(EngineError):
    """The Pulumi CLI is missing or too old for the Automation API."""


class StackLockedError(EngineError):
    """Another update holds the stack's lock; ``Deployment.cancel()`` releases a stale one."""


class StackNotFoundError(EngineError):
    """The stack does not exist in the backend."""


class CredentialsError(EngineError):
    """AWS credentials are missing, invalid or expired."""


class RegionNotEnabledError(EngineError):
    """The AWS region is not enabled for the account (opt-in regions)."""


class DeploymentFailedError(EngineError):
    """A resource failed to deploy; ``resource`` and ``provider_message`` say which and why."""

    def __init__(self, message: str, *, resource: str | None, provider_message: str) -> None:
        super().__init__(message)
        self.resource = resource
        self.provider_message = provider_message


class ExecError(RclaudeError):
    """An interactive session into a task could not start: the task is not running, or
    ECS Exec refused (the agent in the container is not up yet, or not allowed)."""


class SessionManagerPluginNotFoundError(ExecError):
    """``Task.exec()`` on ECS needs AWS's ``session-manager-plugin`` on PATH."""
