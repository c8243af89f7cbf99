"""Best of N: the same task run N times, each attempt's work checked by a command (the
tests), the attempts ranked, and only the winner delivered.

Ranking, best first: the check passed; then a non-empty diff before an empty one (a check
that passes with nothing changed proves nothing); then the smaller diff; then the lower
cost. :class:`BestOf` is what :meth:`Deployment.run_best_of` returns.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import attrs

from .._render import Rendered, styled, titled

if TYPE_CHECKING:
    from rich.console import Group

#: How many attempts one best-of runs at most.
MAX_ATTEMPTS = 10


@attrs.frozen(kw_only=True)
class Attempt:
    """One attempt of a best-of: its task, whether its check passed, its diff's size
    and what it cost.

    >>> Attempt(task_id="t-1-a1", status="SUCCEEDED", check_passed=True, diff_lines=4,
    ...         cost_usd=0.12).rank_key
    (False, False, 4, 0.12)
    """

    task_id: str
    status: str
    check_passed: bool
    #: Lines the attempt's diff changes (``None`` when it left none).
    diff_lines: int | None
    cost_usd: float
    reason: str | None = None

    @property
    def rank_key(self) -> tuple[bool, bool, int, float]:
        lines = self.diff_lines or 0
        return (not self.check_passed, lines == 0, lines, self.cost_usd)

    @classmethod
    def from_result(cls, task_id: str, status: str, result: Mapping[str, Any],
                    cost_usd: float) -> Attempt:
        check = result.get("check") or {}
        diff = result.get("diff") or {}
        return cls(task_id=task_id, status=status,
                   check_passed=bool(check.get("passed")) and status == "SUCCEEDED",
                   diff_lines=diff.get("lines"), cost_usd=cost_usd,
                   reason=result.get("reason"))


def rank(attempts: list[Attempt]) -> list[Attempt]:
    """Best first; the winner is the first, if its check passed.

    >>> a = Attempt(task_id="a", status="SUCCEEDED", check_passed=True, diff_lines=9,
    ...             cost_usd=0.1)
    >>> b = Attempt(task_id="b", status="SUCCEEDED", check_passed=True, diff_lines=3,
    ...             cost_usd=0.3)
    >>> c = Attempt(task_id="c", status="FAILED", check_passed=False, diff_lines=1,
    ...             cost_usd=0.0)
    >>> [x.task_id for x in rank([a, b, c])]
    ['b', 'a', 'c']
    """
    return sorted(attempts, key=lambda a: a.rank_key)


@attrs.frozen(kw_only=True)
class BestOf(Rendered):
    """The outcome of :meth:`Deployment.run_best_of`: every attempt, ranked, the winner
    (``None`` when no attempt's check passed) and, when the work is delivered as a branch
    or pull request, the task that delivered it and where to.

    >>> a = Attempt(task_id="t-1-a1", status="SUCCEEDED", check_passed=True, diff_lines=2,
    ...             cost_usd=0.05)
    >>> BestOf(attempts=(a,), winner="t-1-a1", branch="rclaude/t-1").outcome
    'winner: t-1-a1; pushed rclaude/t-1'
    """

    attempts: tuple[Attempt, ...]
    winner: str | None
    #: The task that pushed the winner's work (``output`` branch or pull-request).
    delivery_task: str | None = None
    branch: str | None = None
    pull_request_url: str | None = None
    #: Why nothing was delivered, when it was not.
    reason: str | None = None

    def to_dict(self) -> dict[str, Any]:
        data = attrs.asdict(self)
        data["attempts"] = [attrs.asdict(a) for a in self.attempts]
        return data

    @property
    def outcome(self) -> str:
        """The winner and where its work went, or why there is none."""
        tail = f"winner: {self.winner}" if self.winner else f"no winner: {self.reason}"
        if self.pull_request_url:
            return f"{tail}; pull request {self.pull_request_url}"
        return f"{tail}; pushed {self.branch}" if self.branch else tail

    def __rich__(self) -> Group:
        """A row per attempt in rank order (the winner starred), then :attr:`outcome`."""
        from rich.console import Group
        from rich.text import Text

        table = titled(f"Best of {len(self.attempts)}")
        for column in ("", "attempt", "status", "check", "diff lines", "cost"):
            table.add_column(column, justify="right" if column in ("diff lines", "cost")
                             else "left")
        for a in self.attempts:
            table.add_row("*" if a.task_id == self.winner else "", a.task_id, styled(a.status),
                          "passed" if a.check_passed else "failed",
                          "-" if a.diff_lines is None else str(a.diff_lines),
                          f"${a.cost_usd:.4f}")
        return Group(table, Text(self.outcome, style="bold" if self.winner else "bold red"))
