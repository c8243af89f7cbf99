"""The few pages the service serves itself (sign-in, approving a CLI's code): HTML with
every value escaped, no script, and headers that keep them out of frames and caches."""

from __future__ import annotations

from html import escape

from fastapi.responses import HTMLResponse

#: No script, no frames, forms only to this service.
HEADERS = {"Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; "
           "form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
           "X-Frame-Options": "DENY", "Referrer-Policy": "no-referrer",
           "X-Content-Type-Options": "nosniff", "Cache-Control": "no-store"}
_STYLE = ("body{font-family:system-ui,sans-serif;max-width:32rem;margin:4rem auto;"
          "padding:0 1rem;line-height:1.5}code{font-size:1.6rem;letter-spacing:.1em}"
          "a.button,button{display:inline-block;margin:.3rem .3rem .3rem 0;padding:.5rem 1rem;"
          "border:1px solid #444;border-radius:.3rem;background:#fff;color:#111;"
          "text-decoration:none;font-size:1rem;cursor:pointer}")


def page(title: str, body: str, *, status: int = 200) -> HTMLResponse:
    """A page: ``title`` is escaped here; ``body`` is HTML its caller escaped."""
    return HTMLResponse(
        f"<!doctype html><html lang=en><head><meta charset=utf-8><meta name=viewport "
        f"content='width=device-width'><title>{escape(title)} · rclaude-infra</title>"
        f"<style>{_STYLE}</style></head><body><h1>{escape(title)}</h1>{body}</body></html>",
        status_code=status, headers=HEADERS)


def message(title: str, text: str, *, status: int = 200) -> HTMLResponse:
    return page(title, f"<p>{escape(text)}</p>", status=status)


def form(action: str, csrf: str, fields: dict[str, str], buttons: list[tuple[str, str]]
         ) -> str:
    """A POST form to ``action`` carrying the session's CSRF token; each button sends
    ``name=value``."""
    hidden = "".join(f"<input type=hidden name='{escape(k)}' value='{escape(v)}'>"
                     for k, v in {"csrf_token": csrf, **fields}.items())
    pressed = "".join(f"<button name=action value='{escape(value)}'>{escape(label)}"
                      "</button>" for value, label in buttons)
    return f"<form method=post action='{escape(action)}'>{hidden}{pressed}</form>"
