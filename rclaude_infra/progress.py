"""Typed progress of a deployment operation, for callers to subscribe to.

``Deployment.up(on_progress=callback)`` (and preview, refresh, destroy) call ``callback``
with one of these for every engine event that matters; no pulumi type leaks out.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import attrs


@attrs.frozen(kw_only=True)
class ResourceStarted:
    """The engine began an operation (``create``, ``update``, ``delete``, ...) on a resource.

    >>> def on_progress(event):  # Deployment.up(on_progress=on_progress)
    ...     if isinstance(event, ResourceStarted):
    ...         print(event.op, event.name)
    >>> on_progress(ResourceStarted(urn="urn:...::rclaude-dev-cluster", name="rclaude-dev-cluster",
    ...                             type="aws:ecs/cluster:Cluster", op="create"))
    create rclaude-dev-cluster
    """

    urn: str
    type: str
    name: str
    op: str


@attrs.frozen(kw_only=True)
class ResourceDone:
    """The operation on a resource finished.

    >>> ResourceDone(urn="u", type="aws:s3/bucket:Bucket", name="b", op="create").op
    'create'
    """

    urn: str
    type: str
    name: str
    op: str


@attrs.frozen(kw_only=True)
class ResourceFailed:
    """The operation on a resource failed; ``message`` is the provider's error.

    >>> ResourceFailed(urn="u", type="t", name="asg", op="create", message="quota").message
    'quota'
    """

    urn: str
    type: str
    name: str
    op: str
    message: str


@attrs.frozen(kw_only=True)
class Diagnostic:
    """A message from the engine, a provider or a policy (``severity``: error, warning, ...).

    >>> Diagnostic(severity="warning", message="deprecated input").severity
    'warning'
    """

    severity: str
    message: str
    urn: str | None = None


@attrs.frozen(kw_only=True)
class Summary:
    """The operation ended: resource changes by kind and how long it took.

    >>> Summary(changes={"create": 31, "same": 2}, duration_seconds=184.0).changed
    31
    """

    changes: Mapping[str, int]
    duration_seconds: float

    @property
    def changed(self) -> int:
        return sum(count for op, count in self.changes.items() if op != "same")


@attrs.frozen(kw_only=True)
class ImageBuildPhase:
    """The runner image's build in the account (``build_image="remote"``) entered a phase
    (CodeBuild's: ``QUEUED``, ``PROVISIONING``, ``BUILD``, ... ``COMPLETED``).

    >>> ImageBuildPhase(build_id="rclaude-dev-image-build:1f2e", phase="BUILD",
    ...                 status="IN_PROGRESS").phase
    'BUILD'
    """

    build_id: str
    phase: str
    #: The build's status: ``IN_PROGRESS``, then ``SUCCEEDED``, ``FAILED``, ...
    status: str


ProgressEvent = (ResourceStarted | ResourceDone | ResourceFailed | Diagnostic | Summary
                 | ImageBuildPhase)
OnProgress = Callable[[ProgressEvent], None]


def name_of(urn: str) -> str:
    """The logical name at the end of a URN."""
    return urn.rsplit("::", 1)[-1]
