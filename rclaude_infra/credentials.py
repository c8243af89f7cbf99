"""Where the CLI keeps the tokens ``rclaude-infra login`` got: in the OS keyring when there
is a usable one (macOS Keychain, Windows Credential Locker, the Secret Service), else in
``RCLAUDE_HOME/credentials.json``, written whole and mode 0600. That file always lists the
servers signed in to and the default one; a token kept in the keyring is not in it.

``keyring`` is imported only when a token is read or written."""

from __future__ import annotations

import contextlib
import json
from pathlib import Path
from typing import Any

from .errors import ConfigError
from .paths import rclaude_home
from .tasks.records import write_record

#: The keyring's service name; each server's URL is a user name under it.
KEYRING_SERVICE = "rclaude-infra"


def credentials_file() -> Path:
    return rclaude_home() / "credentials.json"


def check_server(value: str) -> str:
    """A service's URL as kept: ``https://host[:port]`` without a trailing slash."""
    if not value.startswith(("https://", "http://")) or any(
            c.isspace() or ord(c) < 32 for c in value) or len(value) > 2000:
        raise ConfigError("--server", value, "the service's URL, https://host[:port]")
    return value.rstrip("/")


def _read() -> dict[str, Any]:
    try:
        data = json.loads(credentials_file().read_text())
    except (OSError, ValueError):
        return {"servers": {}}
    return data if isinstance(data, dict) and isinstance(data.get("servers"), dict) else {
        "servers": {}}


def _write(data: dict[str, Any]) -> None:
    """Whole or not at all, mode 0600 (``write_record``'s temporary file is made so)."""
    path = credentials_file()
    path.parent.mkdir(parents=True, exist_ok=True)
    write_record(path, json.dumps(data, indent=2))


def _keyring() -> Any | None:
    """The keyring module when its backend can keep a secret (none on a bare server)."""
    try:
        import keyring
        from keyring.backends import fail
    except ImportError:
        return None
    backend = keyring.get_keyring()
    if isinstance(backend, fail.Keyring) or getattr(backend, "priority", 0) <= 0:
        return None
    return keyring


def servers() -> list[str]:
    return list(_read()["servers"])


def default_server() -> str | None:
    found = _read().get("default")
    return found if isinstance(found, str) else None


def save(server: str, token: str) -> str:
    """Keep ``token`` for ``server`` (now the default); where it went: ``keyring`` or the
    file's path."""
    data = _read()
    entry: dict[str, Any] = {"token": token}
    where = str(credentials_file())
    ring = _keyring()
    if ring is not None:
        try:
            ring.set_password(KEYRING_SERVICE, server, token)
        except Exception:  # a locked or broken keyring: the file, as without one
            pass
        else:
            backend = type(ring.get_keyring()).__name__
            entry, where = {"keyring": True}, f"the OS keyring ({backend})"
    data["servers"][server] = entry
    data["default"] = server
    _write(data)
    return where


def token_for(server: str) -> str | None:
    entry = _read()["servers"].get(server)
    if not isinstance(entry, dict):
        return None
    if entry.get("keyring"):
        ring = _keyring()
        return None if ring is None else ring.get_password(KEYRING_SERVICE, server)
    token = entry.get("token")
    return token if isinstance(token, str) else None


def forget(server: str) -> None:
    data = _read()
    entry = data["servers"].pop(server, None)
    if isinstance(entry, dict) and entry.get("keyring"):
        ring = _keyring()
        if ring is not None:
            with contextlib.suppress(Exception):  # gone already
                ring.delete_password(KEYRING_SERVICE, server)
    if data.get("default") == server:
        data.pop("default")
    _write(data)
