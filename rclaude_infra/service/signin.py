"""The browser's side of the service: signing in with GitHub or Google, signing out, the
session a dashboard reads, and the page where a signed-in person approves the code a CLI
shows (``rclaude-infra login``)."""

# No ``from __future__ import annotations``: FastAPI reads the routes' annotations.
import asyncio
import secrets
from typing import Annotated, Any
from urllib.parse import parse_qs, quote

from fastapi import Cookie, FastAPI, Header, Query, Request
from fastapi.responses import RedirectResponse, Response

from . import device, pages, web
from .oauth import STATE_SECONDS, Provider, SignInError
from .problems import Problem
from .settings import ServiceSettings
from .store import Database

MAX_FORM_BYTES = 4096
LINK_COOKIE = "rci_link"


def install(app: FastAPI, db: Database, settings: ServiceSettings,
            providers: dict[str, Provider]) -> None:
    """Add the sign-in routes and pages to ``app``."""

    def base_url(request: Request) -> str:
        return settings.public_url or str(request.base_url).rstrip("/")

    def secure(request: Request) -> bool:
        return base_url(request).startswith("https://")

    def provider_of(name: str) -> Provider:
        found = providers.get(name)
        if found is None:
            raise Problem(404, "no such sign-in provider here; offered: "
                          + (", ".join(sorted(providers)) or "none"), field="provider")
        return found

    def login_path(next_path: str) -> str:
        return "/login?next=" + quote(web.safe_next(next_path), safe="")

    @app.get("/login", tags=["sign-in"], include_in_schema=False)
    def login_page(next: str = "/") -> Response:
        target = quote(web.safe_next(next), safe="")
        if not providers:
            return pages.message("Sign in", "No sign-in provider is configured on this "
                                 "service. An administrator can make you a token with "
                                 "`rclaude-infra tokens create`.")
        return pages.page("signin.html", "Sign in", providers=list(providers.values()),
                          next=target)

    @app.get("/auth/providers", tags=["sign-in"])
    def list_providers() -> dict[str, Any]:
        """The sign-in providers this service offers."""
        return {"providers": [{"name": p.name, "label": p.label,
                               "login_url": f"/auth/{p.name}/login"}
                              for p in providers.values()]}

    @app.get("/auth/{provider}/login", tags=["sign-in"], status_code=302,
             responses={302: {"description": "to the provider"}, 404: {}})
    def begin(provider: str, request: Request, next: str = "/") -> Response:
        """Leave for the provider's sign-in, with a fresh ``state`` (also in a cookie of
        this browser's) and a PKCE challenge."""
        chosen = provider_of(provider)
        try:
            begun = chosen.begin(f"{base_url(request)}/auth/{chosen.name}/callback")
        except SignInError as exc:
            return pages.message("Sign-in failed", str(exc), status=502)
        with db.session() as session:
            if not web.remember_state(session, chosen.name, begun, next):
                return pages.message("Try again soon", "Too many sign-ins are in progress "
                                     "on this service; try again in a minute.", status=429)
        answer = RedirectResponse(begun.url, status_code=302)
        answer.set_cookie(web.STATE_COOKIE, begun.state, max_age=STATE_SECONDS,
                          path="/auth/", httponly=True, samesite="lax",
                          secure=secure(request))
        return answer

    @app.get("/auth/{provider}/callback", tags=["sign-in"], status_code=303,
             responses={303: {"description": "signed in"}, 400: {}, 404: {}})
    def callback(provider: str, request: Request, code: str | None = None,
                 state: Annotated[str | None, Query(max_length=200)] = None,
                 error: str | None = None,
                 rci_sign_in: Annotated[str | None, Cookie()] = None,
                 rci_session: Annotated[str | None, Cookie()] = None) -> Response:
        """Back from the provider: the state checked against this browser's, the code
        exchanged with the PKCE verifier, the account found or linked, a session begun."""
        chosen = provider_of(provider)
        try:
            with db.session() as session:
                pending = web.take_state(session, chosen.name, state, rci_sign_in)
            if error is not None or not code:
                raise SignInError(f"{chosen.label} did not sign you in: "
                                  f"{(error or 'no code')[:100]}")
            profile = chosen.finish(
                code=code, redirect_uri=f"{base_url(request)}/auth/{chosen.name}/callback",
                code_verifier=pending.code_verifier, nonce=pending.nonce)
            with db.session() as session:
                already = web.find_session(session, rci_session)
                user = web.sign_in(session, profile, already[0] if already else None,
                                   admins=settings.admin_emails)
                _, value = web.open_session(session, user)
                web.close_session(session, rci_session)
        except SignInError as exc:
            failed = pages.message("Sign-in failed", str(exc), status=400)
            failed.delete_cookie(web.STATE_COOKIE, path="/auth/")
            return failed
        answer = RedirectResponse(pending.next_path, status_code=303)
        answer.delete_cookie(web.STATE_COOKIE, path="/auth/")
        web.set_session_cookie(answer, value, secure=secure(request))
        return answer

    @app.get("/auth/session", tags=["sign-in"], responses={401: {}})
    def current(rci_session: Annotated[str | None, Cookie()] = None) -> dict[str, Any]:
        """Who this browser is signed in as, and the CSRF token its unsafe requests send
        (``X-CSRF-Token``)."""
        found = web.signed_in(db, rci_session)
        if found is None:
            raise Problem(401, "not signed in")
        user, row = found
        return {"user": {"id": user.id, "email": user.email, "name": user.name},
                "csrf_token": row.csrf_token, "expires_at": row.expires_at.isoformat()}

    @app.post("/auth/logout", tags=["sign-in"], status_code=303,
              responses={303: {"description": "signed out"}, 403: {}})
    async def logout(request: Request,
                     x_csrf_token: Annotated[str | None, Header()] = None,
                     rci_session: Annotated[str | None, Cookie()] = None) -> Response:
        """Sign this browser out (its session ends on the server too)."""
        fields = await form_fields(request)
        found = await asyncio.to_thread(web.signed_in, db, rci_session)
        if found is not None:
            if not web.csrf_ok(found[1], x_csrf_token or fields.get("csrf_token")):
                raise Problem(403, "csrf_token: the session's token is needed",
                              field="csrf_token")

            def end() -> None:
                with db.session() as session:
                    web.close_session(session, rci_session)

            await asyncio.to_thread(end)
        answer = RedirectResponse("/login", status_code=303)
        answer.delete_cookie(web.SESSION_COOKIE, path="/")
        return answer

    # -- one-time links (``rclaude-infra users login-link``) -------------------------------

    @app.get("/auth/link", tags=["sign-in"], include_in_schema=False)
    def link_page(request: Request, token: Annotated[str, Query(max_length=100)] = ""
                  ) -> Response:
        # A page with a button, not a sign-in on GET: a mail scanner that fetches the link
        # does not use it up. The button's form carries a value this browser also holds
        # (a cookie), so another site cannot sign a victim in as the link's owner.
        check = secrets.token_urlsafe(24)
        answer = pages.page("link.html", "Sign in", csrf=check, token=token)
        answer.set_cookie(LINK_COOKIE, check, max_age=web.LINK_MINUTES * 60,
                          path="/auth/link", httponly=True, samesite="strict",
                          secure=secure(request))
        return answer

    @app.post("/auth/link", tags=["sign-in"], include_in_schema=False)
    async def link_use(request: Request,
                       rci_link: Annotated[str | None, Cookie()] = None) -> Response:
        fields = await form_fields(request)
        if not rci_link or not secrets.compare_digest(
                rci_link.encode(), fields.get("csrf_token", "").encode()):
            return pages.message("Refused", "Open the link again.", status=403)

        def use() -> str | None:
            with db.session() as session:
                user = web.use_login_link(session, fields.get("token", ""))
                return None if user is None else web.open_session(session, user)[1]

        value = await asyncio.to_thread(use)
        if value is None:
            return pages.message("Link not valid", "This link was used already, or it "
                                 "expired (15 minutes). Ask for a new one.", status=400)
        answer = RedirectResponse("/", status_code=303)
        answer.delete_cookie(LINK_COOKIE, path="/auth/link")
        web.set_session_cookie(answer, value, secure=secure(request))
        return answer

    # -- approving a CLI's code (RFC 8628's verification_uri) -----------------------------

    @app.get("/device", tags=["sign-in"], include_in_schema=False)
    def device_page(request: Request, user_code: str = "",
                    rci_session: Annotated[str | None, Cookie()] = None) -> Response:
        found = web.signed_in(db, rci_session)
        if found is None:
            return RedirectResponse(login_path(str(request.url.path) + (
                f"?user_code={quote(user_code[:20])}" if user_code else "")), 303)
        user, row = found
        code = device.normal_user_code(user_code[:20]) if user_code else ""
        return pages.page("device.html", "Approve a sign-in", email=user.email, code=code,
                          csrf=row.csrf_token)

    @app.post("/device", tags=["sign-in"], include_in_schema=False)
    async def device_decide(request: Request,
                            rci_session: Annotated[str | None, Cookie()] = None
                            ) -> Response:
        fields = await form_fields(request)
        found = await asyncio.to_thread(web.signed_in, db, rci_session)
        if found is None:
            return pages.message("Not signed in", "Sign in, then open the link again.",
                                 status=401)
        user, row = found
        if not web.csrf_ok(row, fields.get("csrf_token")):
            return pages.message("Refused", "This form did not come from this service's "
                                 "page; open the link again.", status=403)
        deny = fields.get("action") != "approve"

        def decide() -> bool:
            with db.session() as session:
                return device.approve(session, user, fields.get("user_code", ""),
                                      deny=deny)

        if not await asyncio.to_thread(decide):
            return pages.message("No such code", "No pending code like that: it expired "
                                 "or was used. Run rclaude-infra login again.", status=404)
        if deny:
            return pages.message("Denied", "The command line will not be signed in.")
        return pages.message("Approved", "The command line is signed in as you; you can "
                             "close this page.")

    async def form_fields(request: Request) -> dict[str, str]:
        body = await request.body()
        if len(body) > MAX_FORM_BYTES:
            raise Problem(413, f"a form of at most {MAX_FORM_BYTES} bytes")
        if not request.headers.get("content-type", "").startswith(
                "application/x-www-form-urlencoded"):
            return {}
        parsed = parse_qs(body.decode(errors="replace"), max_num_fields=10)
        return {key: values[0] for key, values in parsed.items()}
