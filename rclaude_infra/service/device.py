"""The device authorization grant (RFC 8628) for ``rclaude-infra login``: the CLI asks
for a code, a signed-in person approves the code it shows, and the CLI's polling gets a
new API token for that person, once.

``POST /device/code`` answers ``device_code`` (secret, stored as SHA-256), ``user_code``
(``XXXX-XXXX`` from 20 unambiguous letters), ``verification_uri``, ``expires_in`` and
``interval``. ``POST /device/token`` answers RFC 8628's errors (``authorization_pending``,
``slow_down``, ``access_denied``, ``expired_token``) as RFC 6749 error bodies with 400, or
the token. Approval is ``POST /v1/device/approve`` by a signed-in caller (sign-in in a
browser comes with OAuth)."""

from __future__ import annotations

import datetime as dt
import secrets

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from . import accounts
from .models import DeviceCode, User, now

#: Letters a person reads and types without confusing them (RFC 8628, section 6.1).
ALPHABET = "BCDFGHJKLMNPQRSTVWXZ"
EXPIRES_SECONDS = 600
GRANT_TYPE = "urn:ietf:params:oauth:grant-type:device_code"
#: Codes pending at once, service-wide.
MAX_PENDING = 1000


def new_code(session: Session) -> tuple[DeviceCode, str] | None:
    """A new pending code; its row and the device code (kept nowhere). ``None`` when
    :data:`MAX_PENDING` codes are pending already: anyone may ask for one, so what they
    cost is bounded (the expired are deleted here)."""
    session.execute(delete(DeviceCode).where(DeviceCode.expires_at < now()))
    pending = session.scalar(select(func.count()).select_from(DeviceCode).where(
        DeviceCode.issued.is_(False)))
    if (pending or 0) >= MAX_PENDING:
        return None
    device_code = secrets.token_urlsafe(32)
    letters = "".join(secrets.choice(ALPHABET) for _ in range(8))
    row = DeviceCode(device_code_hash=accounts.token_hash(device_code),
                     user_code=f"{letters[:4]}-{letters[4:]}", created_at=now(),
                     expires_at=now() + dt.timedelta(seconds=EXPIRES_SECONDS),
                     denied=False, issued=False)
    session.add(row)
    session.flush()
    return row, device_code


def normal_user_code(text: str) -> str:
    """``bcdf ghjk`` or ``BCDFGHJK`` as ``BCDF-GHJK`` (RFC 8628: case and punctuation
    do not matter to a person typing it)."""
    letters = "".join(c for c in text.upper() if c.isalpha())
    return f"{letters[:4]}-{letters[4:]}"


def approve(session: Session, user: User, user_code: str, *, deny: bool = False) -> bool:
    """Approve (or deny) a pending, unexpired code for ``user``; whether there was one."""
    row = session.scalar(select(DeviceCode).where(
        DeviceCode.user_code == normal_user_code(user_code)))
    if row is None or row.expires_at < now() or row.user_id is not None or row.denied:
        return False
    if deny:
        row.denied = True
    else:
        row.user_id = user.id
    return True


def poll(session: Session, device_code: str, interval: int) -> tuple[str, str | None]:
    """What a poll gets: an RFC 8628 error, or ``("", token)`` once."""
    row = session.scalar(select(DeviceCode).where(
        DeviceCode.device_code_hash == accounts.token_hash(device_code)))
    if row is None:
        return "invalid_grant", None
    stamp = now()
    if row.expires_at < stamp or row.issued:
        return "expired_token", None
    if row.denied:
        return "access_denied", None
    too_soon = (row.last_polled_at is not None
                and stamp - row.last_polled_at < dt.timedelta(seconds=interval))
    row.last_polled_at = stamp
    if row.user_id is None:
        return ("slow_down" if too_soon else "authorization_pending"), None
    user = session.get(User, row.user_id)
    if user is None:
        return "access_denied", None
    row.issued = True
    _, token = accounts.create_token(session, user, name="cli login")
    return "", token
