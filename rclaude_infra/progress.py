"""Typed progress of a deployment operation, for callers to subscribe to.

``Deployment.up(on_progress=callback)`` (and preview, refresh, destroy) call ``callback``
with one of these for every engine event that matters; no pulumi type leaks out.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import attrs


@attrs.frozen(kw_only=True)
class ResourceStarted:
    """The engine began an operation (``create``, ``update``, ``delete``, ...) on a resource."""

    urn: str
    type: str
    name: str
    op: str


@attrs.frozen(kw_only=True)
class ResourceDone:
    """The operation on a resource finished."""

    urn: str
    type: str
    name: str
    op: str


@attrs.frozen(kw_only=True)
class ResourceFailed:
    """The operation on a resource failed; ``message`` is the provider's error."""

    urn: str
    type: str
    name: str
    op: str
    message: str


@attrs.frozen(kw_only=True)
class Diagnostic:
    """A message from the engine, a provider or a policy (``severity``: error, warning, ...)."""

    severity: str
    message: str
    urn: str | None = None


@attrs.frozen(kw_only=True)
class Summary:
    """The operation ended: resource changes by kind and how long it took."""

    changes: Mapping[str, int]
    duration_seconds: float

    @property
    def changed(self) -> int:
        return sum(count for op, count in self.changes.items() if op != "same")


ProgressEvent = ResourceStarted | ResourceDone | ResourceFailed | Diagnostic | Summary
OnProgress = Callable[[ProgressEvent], None]


def name_of(urn: str) -> str:
    """The logical name at the end of a URN."""
    return urn.rsplit("::", 1)[-1]
