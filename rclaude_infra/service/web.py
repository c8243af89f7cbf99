"""Signed-in browsers: a session cookie (``rci_session``: random, stored as SHA-256,
``HttpOnly``, ``SameSite=Lax``, ``Secure`` behind https) and the CSRF token that its forms
and unsafe API requests carry; sign-ins in flight (``state``, PKCE verifier, nonce), and
who a provider's account is (an identity, linked to a user)."""

from __future__ import annotations

import datetime as dt
import hmac
import secrets
from urllib.parse import urlsplit

from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session
from starlette.responses import Response

from ..errors import ConfigError
from . import accounts
from .models import Identity, LoginLink, SignInState, User, WebSession, now
from .oauth import STATE_SECONDS, Begun, Profile, SignInError
from .store import Database

SESSION_COOKIE = "rci_session"
STATE_COOKIE = "rci_sign_in"
SESSION_DAYS = 14
#: Browser sign-ins in flight at once, service-wide.
MAX_PENDING_SIGN_INS = 10_000
#: Minutes a login link is good for (once).
LINK_MINUTES = 15


def safe_next(value: str | None) -> str:
    """Where to go after signing in: a path on this service, never another site
    (``//evil.example``, ``https://...``, ``/\\evil``); else ``/``."""
    if not value or not value.startswith("/") or value.startswith(("//", "/\\")):
        return "/"
    parts = urlsplit(value)
    if parts.scheme or parts.netloc or any(ord(c) < 32 for c in value) or len(value) > 2000:
        return "/"
    return value


def remember_state(session: Session, provider: str, begun: Begun, next_path: str
                   ) -> bool:
    """Keep a sign-in in flight; ``False`` when :data:`MAX_PENDING_SIGN_INS` are already
    (anyone may start one: what that costs is bounded; the expired are deleted here)."""
    session.execute(delete(SignInState).where(SignInState.expires_at < now()))
    if (session.scalar(select(func.count()).select_from(SignInState)) or 0
            ) >= MAX_PENDING_SIGN_INS:
        return False
    session.add(SignInState(state_hash=accounts.token_hash(begun.state), provider=provider,
                            code_verifier=begun.code_verifier, nonce=begun.nonce,
                            next_path=safe_next(next_path),
                            expires_at=now() + dt.timedelta(seconds=STATE_SECONDS)))
    return True


def take_state(session: Session, provider: str, returned: str | None,
               cookie: str | None) -> SignInState:
    """The sign-in a callback finishes, used up: its ``state`` must be the one this browser
    left with (its cookie), unexpired, for this provider."""
    if not returned or not cookie or not hmac.compare_digest(returned.encode(),
                                                             cookie.encode()):
        raise SignInError("the sign-in's state does not match this browser's; start again")
    row = session.get(SignInState, accounts.token_hash(returned))
    if row is None or row.provider != provider:
        raise SignInError("no sign-in like that is in progress; start again")
    session.delete(row)
    session.flush()
    if row.expires_at < now():
        raise SignInError("the sign-in took too long; start again")
    return row


def open_session(session: Session, user: User) -> tuple[WebSession, str]:
    """A new browser session for ``user``; its row and the cookie's value."""
    value = secrets.token_urlsafe(32)
    row = WebSession(session_hash=accounts.token_hash(value), user_id=user.id,
                     csrf_token=secrets.token_urlsafe(24), created_at=now(),
                     expires_at=now() + dt.timedelta(days=SESSION_DAYS))
    session.add(row)
    session.flush()
    return row, value


def find_session(session: Session, value: str | None) -> tuple[User, WebSession] | None:
    """The user and live session a cookie is."""
    if not value or len(value) > 100:
        return None
    row = session.scalar(select(WebSession).where(
        WebSession.session_hash == accounts.token_hash(value)))
    if row is None or row.expires_at < now():
        return None
    user = session.get(User, row.user_id)
    return (user, row) if user is not None else None


def signed_in(db: Database, cookie: str | None) -> tuple[User, WebSession] | None:
    """The user and live session a browser's cookie is, in a session of its own."""
    with db.session() as session:
        return find_session(session, cookie)


def set_session_cookie(answer: Response, value: str, *, secure: bool) -> None:
    """Sign the browser that gets ``answer`` in (``HttpOnly``, ``SameSite=Lax``)."""
    answer.set_cookie(SESSION_COOKIE, value, max_age=SESSION_DAYS * 86400, path="/",
                      httponly=True, samesite="lax", secure=secure)


def csrf_ok(row: WebSession, sent: str | None) -> bool:
    return bool(sent) and hmac.compare_digest(row.csrf_token.encode(), str(sent).encode())


def close_session(session: Session, value: str | None) -> None:
    if value:
        session.execute(delete(WebSession).where(
            WebSession.session_hash == accounts.token_hash(value)))


def sign_in(session: Session, profile: Profile, signed_in: User | None, *,
            admins: tuple[str, ...] = ()) -> User:
    """The user a provider's account is. A known identity is its user; else it is linked
    to the user signed in already in this browser, else to the user whose address it is
    (only when the provider has verified it), else a new user is made. A user whose
    provider-verified address is one of ``admins`` is made an admin."""
    user = _user_of(session, profile, signed_in)
    if (admins and profile.email and profile.email_verified and not user.is_admin
            and profile.email.strip().lower() in admins):
        user.is_admin = True
        session.flush()
    return user


def _user_of(session: Session, profile: Profile, signed_in: User | None) -> User:
    identity = session.scalar(select(Identity).where(
        Identity.provider == profile.provider, Identity.subject == profile.subject))
    if identity is not None:
        user = session.get(User, identity.user_id)
        if user is None:
            raise SignInError("the account's user is gone")
        if signed_in is not None and signed_in.id != user.id:
            raise SignInError(f"this {profile.provider} account is another user's")
        return user
    user = signed_in
    if user is None:
        if not profile.email or not profile.email_verified:
            raise SignInError(f"the {profile.provider} account has no verified email "
                              "address")
        try:
            email = accounts.check_email(profile.email)
        except ConfigError as exc:
            raise SignInError(str(exc)) from exc
        user = session.scalar(select(User).where(User.email == email))
        if user is None:
            user = accounts.add_user(session, email, name=profile.name)
    session.add(Identity(user_id=user.id, provider=profile.provider,
                         subject=profile.subject, created_at=now()))
    session.flush()
    return user


def new_login_link(session: Session, user: User) -> str:
    """A one-time sign-in token for ``user`` (the link's), good for :data:`LINK_MINUTES`."""
    value = secrets.token_urlsafe(32)
    session.add(LoginLink(token_hash=accounts.token_hash(value), user_id=user.id,
                          expires_at=now() + dt.timedelta(minutes=LINK_MINUTES)))
    session.flush()
    return value


def use_login_link(session: Session, value: str) -> User | None:
    """The user a link is, once: one statement marks it used only while it is unused
    and unexpired, so two clicks sign in once."""
    if not value or len(value) > 100:
        return None
    digest = accounts.token_hash(value)
    used = session.execute(update(LoginLink).where(
        LoginLink.token_hash == digest, LoginLink.used_at.is_(None),
        LoginLink.expires_at > now()).values(used_at=now()))
    if not used.rowcount:  # type: ignore[attr-defined]
        return None
    link = session.scalar(select(LoginLink).where(LoginLink.token_hash == digest))
    return None if link is None else session.get(User, link.user_id)
