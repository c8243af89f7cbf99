"""The prerequisite report of ``Deployment.check()``: each item ok or a problem, with a fix."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import attrs

from ._render import Rendered, styled, titled

if TYPE_CHECKING:
    from rich.console import Group

OK, WARNING, PROBLEM = "ok", "warning", "problem"


@attrs.frozen(kw_only=True)
class CheckItem:
    """One prerequisite: its status, what was found, and how to fix it when not ok.

    >>> CheckItem(name="Docker", status="problem", detail="no docker on PATH",
    ...           fix="install Docker, or set image=").status
    'problem'
    """

    name: str
    status: str = attrs.field(validator=attrs.validators.in_((OK, WARNING, PROBLEM)))
    detail: str
    fix: str = ""


@attrs.frozen(kw_only=True)
class CheckReport(Rendered):
    """Every prerequisite of ``Deployment.check()``; ``ok`` when none is a problem.

    ``report["AWS credentials"]`` looks one up by name; ``str(report)`` is a table,
    and notebooks render it as HTML.

    >>> report = CheckReport(items=(
    ...     CheckItem(name="Pulumi CLI", status="ok", detail="pulumi 3.205.0"),
    ...     CheckItem(name="Docker", status="problem", detail="not running", fix="start it")))
    >>> report.ok, [i.name for i in report.problems]
    (False, ['Docker'])
    """

    items: tuple[CheckItem, ...]

    @property
    def ok(self) -> bool:
        """No problem (warnings allowed)."""
        return all(item.status != PROBLEM for item in self.items)

    @property
    def problems(self) -> list[CheckItem]:
        return [item for item in self.items if item.status == PROBLEM]

    def __getitem__(self, name: str) -> CheckItem:
        for item in self.items:
            if item.name == name:
                return item
        raise KeyError(name)

    def to_json(self, *, indent: int | None = 2) -> str:
        return json.dumps({"ok": self.ok, "items": [attrs.asdict(i) for i in self.items]},
                          indent=indent)

    def __rich__(self) -> Group:
        """One row per check, with the fix for each problem, then whether ``up`` can go."""
        from rich.console import Group
        from rich.text import Text

        table = titled("Prerequisites for up")
        for column in ("status", "check", "found", "fix"):
            table.add_column(column)
        for item in self.items:
            table.add_row(styled(item.status), item.name, item.detail, item.fix)
        summary = Text("ready to deploy" if self.ok else
                       f"{len(self.problems)} problem(s) to fix before up",
                       style="bold green" if self.ok else "bold red")
        return Group(table, summary)
