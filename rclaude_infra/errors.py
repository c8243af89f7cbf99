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
