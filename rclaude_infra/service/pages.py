"""The few pages the service serves itself (sign-in, approving a CLI's code): HTML with
every value escaped, no script, and headers that keep them out of frames and caches."""

from __future__ import annotations

from html import escape

from fastapi.responses import HTMLResponse

#: No script, no frames, forms only to this service, the dashboard's stylesheet.
HEADERS = {"Content-Security-Policy": "default-src 'none'; style-src 'self'; "
           "form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
           "X-Frame-Options": "DENY", "Referrer-Policy": "no-referrer",
           "X-Content-Type-Options": "nosniff", "Cache-Control": "no-store"}
def page(title: str, body: str, *, status: int = 200) -> HTMLResponse:
    """A page: ``title`` is escaped here; ``body`` is HTML its caller escaped."""
    return HTMLResponse(
        f"<!doctype html><html lang=en><head><meta charset=utf-8><meta name=viewport "
        f"content='width=device-width, initial-scale=1'><title>{escape(title)} · "
        "rclaude-infra</title><link rel=stylesheet href='/static/app.css'></head><body>"
        "<header class=top><span class=brand>rclaude<span>·infra</span></span></header>"
        f"<main id=main class=narrow><div class='card'><h1>{escape(title)}</h1>{body}"
        "</div></main></body></html>",
        status_code=status, headers=HEADERS)


def message(title: str, text: str, *, status: int = 200) -> HTMLResponse:
    return page(title, f"<p>{escape(text)}</p>", status=status)


def form(action: str, csrf: str, fields: dict[str, str], buttons: list[tuple[str, str]]
         ) -> str:
    """A POST form to ``action`` carrying the session's CSRF token; each button sends
    ``name=value``."""
    hidden = "".join(f"<input type=hidden name='{escape(k)}' value='{escape(v)}'>"
                     for k, v in {"csrf_token": csrf, **fields}.items())
    pressed = "".join(f"<button class={'primary' if n == 0 else 'quiet'} name=action "
                      f"value='{escape(value)}'>{escape(label)}</button> "
                      for n, (value, label) in enumerate(buttons))
    return f"<form method=post action='{escape(action)}'>{hidden}{pressed}</form>"
