"""Users and API tokens. A token is ``rci_`` and 43 random characters, shown once and
stored as its SHA-256; it carries scopes and is revocable. Token lookups compare hashes
(the database finds the row by the hash, so no timing of a comparison reveals a token)."""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets

from sqlalchemy import select
from sqlalchemy.orm import Session

from ..errors import ConfigError
from .models import ApiToken, User, UserSecret, now

#: What a token may do: read tasks, start and stop them, administer the service.
SCOPES = ("tasks:read", "tasks:write", "admin")
DEFAULT_SCOPES = ("tasks:read", "tasks:write")
TOKEN_PREFIX = "rci_"
#: A token's last use is written at most this often (not on every request).
LAST_USED_EVERY = dt.timedelta(minutes=1)


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def check_scopes(scopes: object) -> tuple[str, ...]:
    """``scopes`` as a tuple of known scopes, or a ConfigError naming ``scopes``."""
    if (isinstance(scopes, str) or not isinstance(scopes, list | tuple) or not scopes
            or not all(isinstance(s, str) for s in scopes)):
        raise ConfigError("scopes", scopes, "a non-empty list of " + ", ".join(SCOPES))
    unknown = [s for s in scopes if s not in SCOPES]
    if unknown:
        raise ConfigError("scopes", unknown, "some of " + ", ".join(SCOPES))
    return tuple(dict.fromkeys(str(s) for s in scopes))


def check_email(email: object) -> str:
    if (not isinstance(email, str) or email.count("@") != 1 or len(email) > 320
            or any(c.isspace() or ord(c) < 32 for c in email)
            or not all(email.split("@"))):
        raise ConfigError("email", email, "an email address (name@domain)")
    return email.lower()


def add_user(session: Session, email: str, *, name: str | None = None,
             admin: bool = False) -> User:
    """A new user (:class:`ConfigError` naming ``email`` when one has it already)."""
    email = check_email(email)
    if session.scalar(select(User).where(User.email == email)) is not None:
        raise ConfigError("email", email, "an address no user has yet")
    user = User(email=email, name=name, is_admin=admin, created_at=now())
    session.add(user)
    session.flush()
    return user


def user_by_email(session: Session, email: str) -> User:
    user = session.scalar(select(User).where(User.email == check_email(email)))
    if user is None:
        raise ConfigError("email", email, "the address of a user (rclaude-infra users add)")
    return user


def create_token(session: Session, user: User, *, name: str = "token",
                 scopes: tuple[str, ...] = DEFAULT_SCOPES) -> tuple[ApiToken, str]:
    """A new token for ``user``: its row and its value, which is not kept anywhere."""
    if not isinstance(name, str) or not name.strip() or len(name) > 100:
        raise ConfigError("name", name, "a name of 1 to 100 characters")
    scopes = check_scopes(scopes)
    if "admin" in scopes and not user.is_admin:
        raise ConfigError("scopes", "admin", "tasks:read, tasks:write (admin is for admins)")
    value = TOKEN_PREFIX + secrets.token_urlsafe(32)
    token = ApiToken(user_id=user.id, name=name.strip(), prefix=value[:12],
                     token_hash=token_hash(value), scopes=" ".join(scopes), created_at=now())
    session.add(token)
    session.flush()
    return token, value


def authenticate(session: Session, value: str) -> tuple[User, ApiToken] | None:
    """The user and token a bearer value is, when it is a live token."""
    if not value.startswith(TOKEN_PREFIX) or len(value) > 100:
        return None
    token = session.scalar(select(ApiToken).where(ApiToken.token_hash == token_hash(value)))
    if token is None or token.revoked_at is not None:
        return None
    stamp = now()
    if token.last_used_at is None or stamp - token.last_used_at > LAST_USED_EVERY:
        token.last_used_at = stamp
    user = session.get(User, token.user_id)
    return (user, token) if user is not None else None


def user_secrets(session: Session, user_id: int, names: tuple[str, ...], *,
                 allowed: str) -> dict[str, UserSecret]:
    """The user's secrets of these names (their own only), or a :class:`ConfigError`
    naming ``secrets``, the missing ones and ``allowed``."""
    if not names:
        return {}
    rows = {row.name: row for row in session.scalars(select(UserSecret).where(
        UserSecret.user_id == user_id, UserSecret.name.in_(names)))}
    missing = [name for name in names if name not in rows]
    if missing:
        raise ConfigError("secrets", missing, allowed)
    return rows
