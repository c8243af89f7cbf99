"""Live progress on the user's terminal or notebook (rich), fed by typed progress events.

An output edge like the others: only the facade starts one, and only when someone is
watching (a terminal or Jupyter); elsewhere operations stay quiet.
"""

from __future__ import annotations

import sys
from types import TracebackType

from .progress import (
    Diagnostic,
    ProgressEvent,
    ResourceDone,
    ResourceFailed,
    ResourceStarted,
    Summary,
)


def interactive() -> bool:
    """A person is watching: stdout is a terminal, or this is a Jupyter kernel."""
    return sys.stdout.isatty() or "ipykernel" in sys.modules


class ProgressDisplay:
    """A rich progress bar: resources started vs finished, the latest one named."""

    def __init__(self, operation: str, expected: int | None = None) -> None:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn

        self._progress = Progress(
            SpinnerColumn(), TextColumn("[bold]{task.description}"), BarColumn(),
            MofNCompleteColumn(), TextColumn("{task.fields[current]}"), transient=False,
        )
        self._task = self._progress.add_task(operation, total=expected, current="")
        self._started: set[str] = set()

    def __enter__(self) -> ProgressDisplay:
        self._progress.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._progress.stop()

    def __call__(self, event: ProgressEvent) -> None:
        progress = self._progress
        if isinstance(event, ResourceStarted):
            self._started.add(event.urn)
            total = progress.tasks[0].total
            if total is None or len(self._started) > total:
                progress.update(self._task, total=len(self._started))
            progress.update(self._task, current=f"{event.op} {event.name}")
        elif isinstance(event, ResourceDone):
            progress.advance(self._task)
            progress.update(self._task, current=f"{event.op} {event.name} done")
        elif isinstance(event, ResourceFailed):
            progress.console.print(f"[red]failed[/red] {event.op} {event.name}: {event.message}")
        elif (isinstance(event, Diagnostic) and event.severity in ("error", "warning")) or (
                isinstance(event, Diagnostic) and event.severity.startswith("policy-")):
            progress.console.print(f"[yellow]{event.severity}[/yellow] {event.message}")
        elif isinstance(event, Summary):
            progress.update(self._task, total=progress.tasks[0].completed, current=(
                f"{event.changed} changed in {event.duration_seconds:.0f}s"))
