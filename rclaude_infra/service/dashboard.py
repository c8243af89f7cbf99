"""The dashboard: pages for a signed-in person, rendered from Jinja2 templates (every
value escaped), with one script and one stylesheet of the package's own (no inline
script, nothing from elsewhere). The pages' data come from the same ``/v1`` API a
token's holder uses, called with the browser's session and its CSRF token, so the
dashboard sees exactly what the API allows: another user's task is a 404 page."""

# No ``from __future__ import annotations``: FastAPI reads the routes' annotations.
from pathlib import Path
from typing import Annotated, Any

from fastapi import Cookie, FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.staticfiles import StaticFiles

from .. import __version__
from ..tasks.spec import is_task_id
from . import web
from .models import TaskRecord, User, WebSession
from .pages import TEMPLATES
from .store import Database

HERE = Path(__file__).parent
#: The pages' own script and styles only; the event stream and API calls to this site.
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
       "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
HEADERS = {"Content-Security-Policy": CSP, "X-Frame-Options": "DENY",
           "Referrer-Policy": "same-origin", "X-Content-Type-Options": "nosniff",
           "Cache-Control": "no-store"}


def install(app: FastAPI, db: Database) -> None:
    """Add the dashboard's pages and its static files to ``app``."""
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")

    def render(name: str, found: tuple[User, WebSession], status: int = 200,
               **values: Any) -> HTMLResponse:
        user, row = found
        html = TEMPLATES.get_template(name).render(
            user=user, csrf_token=row.csrf_token, version=__version__, **values)
        return HTMLResponse(html, status_code=status, headers=HEADERS)

    def to_login(request: Request) -> RedirectResponse:
        from urllib.parse import quote

        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        return RedirectResponse("/login?next=" + quote(web.safe_next(target), safe=""), 303)

    @app.get("/", include_in_schema=False)
    def home() -> Response:
        return RedirectResponse("/tasks", 303)

    def plain_page(path: str, name: str) -> None:
        """A page whose data its script reads from the API: for whoever is signed in."""

        def show(request: Request,
                 rci_session: Annotated[str | None, Cookie()] = None) -> Response:
            found = web.signed_in(db, rci_session)
            if found is None:
                return to_login(request)
            return render(f"{name}.html", found, page=name)

        app.add_api_route(path, show, methods=["GET"], include_in_schema=False)

    # Before /tasks/{task_id}: "new" is not a task id.
    for path, name in (("/tasks", "tasks"), ("/tasks/new", "new"), ("/usage", "usage"),
                       ("/settings", "settings")):
        plain_page(path, name)

    @app.get("/tasks/{task_id}", include_in_schema=False)
    def task_page(task_id: str, request: Request,
                  rci_session: Annotated[str | None, Cookie()] = None) -> Response:
        found = web.signed_in(db, rci_session)
        if found is None:
            return to_login(request)
        with db.session() as session:
            record = session.get(TaskRecord, task_id) if is_task_id(task_id) else None
            mine = record is not None and record.user_id == found[0].id
        if not mine:  # another user's, as one that does not exist
            return render("missing.html", found, status=404, page="missing")
        return render("task.html", found, page="task", task_id=task_id)

    @app.get("/admin", include_in_schema=False)
    def admin_page(request: Request,
                   rci_session: Annotated[str | None, Cookie()] = None) -> Response:
        found = web.signed_in(db, rci_session)
        if found is None:
            return to_login(request)
        if not found[0].is_admin:  # as any page that is not theirs
            return render("missing.html", found, status=404, page="missing")
        return render("admin.html", found, page="admin")
