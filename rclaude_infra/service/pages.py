"""The service's HTML: one Jinja2 environment for the dashboard's templates and the few
pages served before it (sign-in, a sign-in link, approving a CLI's code), every value
escaped by the templates. Those few pages carry no script at all, and headers that keep
them out of frames and caches."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi.responses import HTMLResponse
from jinja2 import Environment, FileSystemLoader, select_autoescape

#: The package's templates (``layout.html`` under both the dashboard's ``base.html`` and
#: these pages' ``plain.html``).
TEMPLATES = Environment(loader=FileSystemLoader(Path(__file__).parent / "templates"),
                        autoescape=select_autoescape(default=True))

#: No script, no frames, forms only to this service, the dashboard's stylesheet.
HEADERS = {"Content-Security-Policy": "default-src 'none'; style-src 'self'; "
           "form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
           "X-Frame-Options": "DENY", "Referrer-Policy": "no-referrer",
           "X-Content-Type-Options": "nosniff", "Cache-Control": "no-store"}


def page(template: str, title: str, *, status: int = 200, **values: Any) -> HTMLResponse:
    """``template`` (a ``plain.html`` page) with ``title`` and ``values``."""
    html = TEMPLATES.get_template(template).render(title=title, **values)
    return HTMLResponse(html, status_code=status, headers=HEADERS)


def message(title: str, text: str, *, status: int = 200) -> HTMLResponse:
    return page("plain.html", title, text=text, status=status)
