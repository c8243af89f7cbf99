"""Engine events (pulumi.automation.EngineEvent) -> typed progress events."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pulumi.automation import EngineEvent

from ..progress import (
    Diagnostic,
    OnProgress,
    ProgressEvent,
    ResourceDone,
    ResourceFailed,
    ResourceStarted,
    Summary,
    name_of,
)

# Steps that do no work; they are not reported as progress.
_QUIET_OPS = {"same", "read", "refresh", "discard"}


class EventAdapter:
    """An ``on_event`` callback for the Automation API that forwards typed events.

    It remembers each resource's latest error diagnostic, so a failure carries the
    provider's message, and it keeps every failure for error translation.
    """

    def __init__(self, callback: OnProgress | None) -> None:
        self._callback = callback
        self._errors: dict[str, str] = {}
        self.failures: list[ResourceFailed] = []
        self.summary: Summary | None = None

    def __call__(self, event: EngineEvent) -> None:
        for progress in self.translate(event):
            if isinstance(progress, ResourceFailed):
                self.failures.append(progress)
            if isinstance(progress, Summary):
                self.summary = progress
            if self._callback is not None:
                self._callback(progress)

    def translate(self, event: EngineEvent) -> list[ProgressEvent]:
        for step, kind in ((event.resource_pre_event, ResourceStarted),
                           (event.res_outputs_event, ResourceDone)):
            if step is not None:
                meta = step.metadata
                if _op(meta) in _QUIET_OPS:
                    return []
                return [kind(urn=meta.urn, type=meta.type, name=name_of(meta.urn), op=_op(meta))]
        if event.res_op_failed_event is not None:
            meta = event.res_op_failed_event.metadata
            message = self._errors.get(meta.urn, "the operation failed")
            return [ResourceFailed(urn=meta.urn, type=meta.type, name=name_of(meta.urn),
                                   op=_op(meta), message=message)]
        if event.diagnostic_event is not None:
            diag = event.diagnostic_event
            message = (diag.message or "").strip()
            if diag.severity == "error" and diag.urn:
                self._errors[diag.urn] = message
            return [Diagnostic(severity=diag.severity, message=message, urn=diag.urn or None)]
        if event.policy_event is not None:
            policy = event.policy_event
            return [Diagnostic(
                severity=f"policy-{policy.enforcement_level}",
                message=f"{policy.policy_pack_name}/{policy.policy_name}: "
                f"{(policy.message or '').strip()}",
                urn=policy.resource_urn or None,
            )]
        if event.summary_event is not None:
            summary = event.summary_event
            return [Summary(changes=changes_by_op(summary.resource_changes),
                            duration_seconds=float(summary.duration_seconds))]
        return []


def _value(op: Any) -> Any:
    return getattr(op, "value", op)


def changes_by_op(counts: Mapping[Any, int] | None) -> dict[str, int]:
    """Resource changes keyed by the operation's name (``"create"``, not ``OpType``)."""
    return {str(_value(op)): int(n) for op, n in (counts or {}).items()}


def _op(meta: Any) -> str:
    return str(_value(meta.op))
