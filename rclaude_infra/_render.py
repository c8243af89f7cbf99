"""One rendering per report: its rich renderable, from which its text and its notebook HTML
are exported.

A report class defines ``__rich__`` (rich's own protocol, so ``Console().print(report)``
shows it) and inherits :class:`Rendered` for ``str()`` and ``_repr_html_``. rich is
imported inside the functions here and inside each ``__rich__``, never when
``rclaude_infra`` is imported (tests/test_layers.py and tests/test_public_api.py check it).
"""

from __future__ import annotations

import io
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

#: Jupyter's own width for rich output (rich.jupyter), so HTML reads as it would there.
HTML_WIDTH = 115
#: ``str()`` of a report: one width wherever it is printed (a log, a pipe, an exception),
#: wide enough for the cost table. A console prints a report at its own width.
TEXT_WIDTH = 120
_HTML_FORMAT = ("<pre style=\"white-space:pre;overflow-x:auto;line-height:normal;"
                "font-family:Menlo,'DejaVu Sans Mono',consolas,'Courier New',monospace\">"
                "{code}</pre>")

STATUS_STYLE = {"ok": "green", "warning": "yellow", "problem": "bold red",
                "SUCCEEDED": "green", "RUNNING": "cyan", "PENDING": "blue",
                "FAILED": "bold red", "STOPPED": "yellow", "PREEMPTED": "magenta",
                "QUEUED": "cyan"}


def _recorder(width: int) -> Console:
    from rich.console import Console

    # No terminal and no colour codes: the record is exported, never shown on this console.
    return Console(file=io.StringIO(), record=True, width=width, color_system="truecolor",
                   force_terminal=False, force_jupyter=False, legacy_windows=False)


def to_text(renderable: object, *, width: int = TEXT_WIDTH) -> str:
    """Plain text of what rich would print at ``width`` columns.

    >>> to_text(styled("FAILED"))
    'FAILED'
    """
    console = _recorder(width)
    console.print(renderable)
    # rich pads each line to the width; a log or a doctest wants none of that.
    return "\n".join(line.rstrip() for line in console.export_text().splitlines()).rstrip("\n")


def to_html(renderable: object, *, width: int = HTML_WIDTH) -> str:
    """The same rendering as a self-contained ``<pre>`` with inline styles, for notebooks.

    >>> to_html(styled("a < b")).startswith("<pre")
    True
    >>> "a &lt; b" in to_html(styled("a < b"))
    True
    """
    console = _recorder(width)
    console.print(renderable)
    return console.export_html(inline_styles=True, code_format=_HTML_FORMAT)


class Rendered:
    """``str()`` and ``_repr_html_`` from the class's ``__rich__``."""

    __slots__ = ()

    def __str__(self) -> str:
        return to_text(self)

    def _repr_html_(self) -> str:
        return to_html(self)


def styled(value: str) -> Text:
    """A status word in its colour (``problem`` red, ``SUCCEEDED`` green, ...)."""
    from rich.text import Text

    return Text(value, style=STATUS_STYLE.get(value, ""))


def titled(title: str, **options: Any) -> Table:
    """A table with its title on one line above it (rich wraps a title to the table's
    width, which splits ``Tasks not ended (1)`` over a narrow table)."""
    from rich.table import Table

    return Table(title=title, title_justify="left", min_width=len(title), **options)


def fields_table(title: str, fields: Mapping[str, Any]) -> Table:
    """Name and value per row (empty values left out; lists joined)."""
    table = titled(title, show_header=False)
    table.add_column("field", style="bold")
    table.add_column("value")
    for key, value in fields.items():
        if value is not None and value != "" and value != []:
            table.add_row(key, ", ".join(map(str, value)) if isinstance(value, list)
                          else str(value))
    return table


def money(value: float) -> str:
    """Dollars with cents, or four decimals below a cent.

    >>> money(1234.5), money(0.004), money(0)
    ('$1,234.50', '$0.0040', '$0.00')
    """
    return f"${value:,.2f}" if value >= 0.01 or value == 0 else f"${value:.4f}"
