"""What a leak sweep found (:meth:`Deployment.sweep`): resources tagged for a deployment
that its stack no longer knows, and what was done with each."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import attrs

from ._render import Rendered, titled

if TYPE_CHECKING:
    from rich.console import Group


@attrs.frozen(kw_only=True)
class TaggedResource:
    """A resource carrying the deployment tag: its ARN, kind (``service:type``) and id."""

    arn: str
    kind: str
    id: str


@attrs.frozen(kw_only=True)
class SweptResource:
    resource: TaggedResource
    #: ``would delete``, ``deleted``, ``not supported: ...`` or ``failed: ...``.
    outcome: str


@attrs.frozen(kw_only=True)
class SweepReport(Rendered):
    """What a sweep found that the stack does not know, and what it did with each.

    ::

        report = Deployment("dev").sweep(known=(), dry_run=True)   # after a destroy
        for item in report.swept:
            print(item.resource.arn, item.outcome)   # "would delete", "deleted", ...
        report.failed                                # what could not be deleted
    """

    deployment: str
    region: str
    dry_run: bool
    swept: tuple[SweptResource, ...]
    #: Tagged resources the stack still knows (left alone).
    kept: int

    @property
    def failed(self) -> list[SweptResource]:
        return [s for s in self.swept if s.outcome.startswith("failed")]

    def to_json(self, *, indent: int | None = 2) -> str:
        return json.dumps({
            "deployment": self.deployment, "region": self.region, "dry_run": self.dry_run,
            "kept": self.kept,
            "swept": [{**attrs.asdict(s.resource), "outcome": s.outcome} for s in self.swept],
        }, indent=indent)

    def __rich__(self) -> Group:
        """A row per leaked resource with what was done to it, then the counts."""
        from rich.console import Group
        from rich.text import Text

        verb = "would delete" if self.dry_run else "swept"
        failed = self.failed
        summary = Text(f"{len(self.swept)} leaked resources ({verb}), {self.kept} still known "
                       f"to the stack, for deployment {self.deployment!r} in {self.region}",
                       style="bold red" if failed else "bold")
        if not self.swept:
            return Group(summary)
        table = titled("Leak sweep")
        for column in ("outcome", "kind", "ARN"):
            table.add_column(column, overflow="fold")
        for s in self.swept:
            table.add_row(Text(s.outcome, style="red" if s in failed else ""),
                          s.resource.kind, s.resource.arn)
        return Group(table, summary)
