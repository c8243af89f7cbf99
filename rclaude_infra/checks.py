"""The prerequisite report of ``Deployment.check()``: each item ok or a problem, with a fix."""

from __future__ import annotations

import html
import json

import attrs

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
class CheckReport:
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

    def __str__(self) -> str:
        lines = [f"{i.status:<8} {i.name:<24} {i.detail}" + (f"\n{'':33}fix: {i.fix}" if i.fix
                                                              else "") for i in self.items]
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        rows = "".join(
            f"<tr><td>{html.escape(i.status)}</td><td>{html.escape(i.name)}</td>"
            f"<td>{html.escape(i.detail)}</td><td>{html.escape(i.fix)}</td></tr>"
            for i in self.items
        )
        return ("<table><thead><tr><th>status</th><th>check</th><th>found</th><th>fix</th>"
                f"</tr></thead><tbody>{rows}</tbody></table>")
