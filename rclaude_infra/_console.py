"""Live progress for the person watching, fed by typed progress events: a rich bar on a
terminal, an HTML bar updated in place in a Jupyter cell.

An output edge like the others: only the facade starts one, and only when someone is
watching (a terminal or Jupyter); elsewhere operations stay quiet.
"""

from __future__ import annotations

import html
import sys
from types import TracebackType
from typing import Any, cast

from .progress import (
    Diagnostic,
    ImageBuildPhase,
    ProgressEvent,
    ResourceDone,
    ResourceFailed,
    ResourceStarted,
    Summary,
)


def interactive() -> bool:
    """A person is watching: stdout is a terminal, or this is a Jupyter kernel."""
    return sys.stdout.isatty() or in_notebook()


def in_notebook() -> bool:
    return "ipykernel" in sys.modules


class _View:
    """What both displays track: resources started and done, the latest step, and the
    messages worth showing (failures, errors, warnings, policy findings)."""

    def __init__(self, operation: str) -> None:
        self.operation = operation
        self.started: set[str] = set()
        self.done = 0
        self.total: int | None = None
        self.current = ""

    def __enter__(self) -> _View:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        return None

    def __call__(self, event: ProgressEvent) -> None:
        if isinstance(event, ResourceStarted):
            self.started.add(event.urn)
            self.current = f"{event.op} {event.name}"
        elif isinstance(event, ResourceDone):
            self.done += 1
            self.current = f"{event.op} {event.name} done"
        elif isinstance(event, ResourceFailed):
            self.message("failed", f"{event.op} {event.name}: {event.message}")
        elif isinstance(event, Diagnostic) and (event.severity in ("error", "warning")
                                                or event.severity.startswith("policy-")):
            self.message(event.severity, event.message)
        elif isinstance(event, ImageBuildPhase):
            self.current = f"image build: {event.phase.lower().replace('_', ' ')}"
        elif isinstance(event, Summary):
            self.total = self.done
            self.current = f"{event.changed} changed in {event.duration_seconds:.0f}s"
        self.render()

    def message(self, label: str, text: str) -> None:
        raise NotImplementedError

    def render(self) -> None:
        raise NotImplementedError


class ProgressDisplay(_View):
    """A rich progress bar: resources started vs finished, the latest one named."""

    def __init__(self, operation: str) -> None:
        super().__init__(operation)
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn

        self._progress = Progress(
            SpinnerColumn(), TextColumn("[bold]{task.description}"), BarColumn(),
            MofNCompleteColumn(), TextColumn("{task.fields[current]}"), transient=False,
        )
        self._task = self._progress.add_task(operation, total=None, current="")

    def __enter__(self) -> ProgressDisplay:
        self._progress.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._progress.stop()

    def message(self, label: str, text: str) -> None:
        from rich.text import Text

        style = "red" if label in ("failed", "error") else "yellow"
        self._progress.console.print(Text.assemble((label, style), " ", text))

    def render(self) -> None:
        total = self.total if self.total is not None else len(self.started)
        self._progress.update(self._task, total=total, completed=self.done,
                              current=self.current)


class NotebookProgress(_View):
    """An HTML progress bar in the running cell, updated in place (an IPython display id:
    no widget library needed); failures and warnings are listed under it."""

    def __init__(self, operation: str) -> None:
        super().__init__(operation)
        import IPython.display

        self._messages: list[str] = []
        self._html = cast(Any, IPython.display.HTML)  # IPython is untyped
        show = cast(Any, IPython.display.display)
        self._handle = show(self._html(self._body()), display_id=True)

    def message(self, label: str, text: str) -> None:
        colour = "#c00" if label in ("failed", "error") else "#a60"
        self._messages.append(f"<li><span style='color:{colour}'>{html.escape(label)}</span> "
                              f"{html.escape(text)}</li>")

    def render(self) -> None:
        self._handle.update(self._html(self._body()))

    def _body(self) -> str:
        total = self.total if self.total is not None else len(self.started)
        bar = (f"<progress value='{self.done}' max='{max(total, 1)}' style='width:20em'>"
               "</progress>")
        listed = f"<ul>{''.join(self._messages)}</ul>" if self._messages else ""
        return (f"<div><strong>{html.escape(self.operation)}</strong> {bar} "
                f"{self.done}/{total} {html.escape(self.current)}{listed}</div>")


def progress_display(operation: str) -> _View:
    """The display for where this runs: a notebook cell, else the terminal."""
    return NotebookProgress(operation) if in_notebook() else ProgressDisplay(operation)
