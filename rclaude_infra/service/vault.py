"""Users' secrets at rest: Fernet (AES-128-CBC with HMAC-SHA256, from ``cryptography``)
under one key, from ``RCLAUDE_SECRETS_KEY`` or else a key file made once, mode 0600,
beside the embedded database (``~/.rclaude/service/secrets.key``). Each ciphertext holds
its owner and name with the value, checked on decryption: a row copied onto another
user's or another name does not decrypt as theirs."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path

from ..errors import ConfigError
from ..paths import rclaude_home

KEY_ENV = "RCLAUDE_SECRETS_KEY"


def key_file() -> Path:
    return rclaude_home() / "service" / "secrets.key"


def load_key(env: Mapping[str, str] | None = None) -> bytes:
    """The key: the environment's, else the key file's, made now when there is none."""
    from cryptography.fernet import Fernet

    env = os.environ if env is None else env
    given = env.get(KEY_ENV)
    if given:
        try:
            Fernet(given.encode())
        except ValueError as exc:
            raise ConfigError(KEY_ENV, "(hidden)", "a Fernet key: 32 bytes in URL-safe "
                              "base64 (python -c 'from cryptography.fernet import Fernet; "
                              "print(Fernet.generate_key().decode())')") from exc
        return given.encode()
    path = key_file()
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            pass  # another process made it first
        else:
            with os.fdopen(fd, "wb") as out:
                out.write(Fernet.generate_key())
    return path.read_bytes().strip()


class Vault:
    """Encrypts and decrypts users' secret values."""

    def __init__(self, key: bytes) -> None:
        from cryptography.fernet import Fernet

        self._fernet = Fernet(key)

    def seal(self, user_id: int, name: str, value: str) -> str:
        return self._fernet.encrypt(json.dumps(
            {"u": user_id, "n": name, "v": value}).encode()).decode()

    def open(self, user_id: int, name: str, ciphertext: str) -> str:
        """The value, when the ciphertext is this user's secret of this name."""
        from cryptography.fernet import InvalidToken

        try:
            data = json.loads(self._fernet.decrypt(ciphertext.encode()))
        except (InvalidToken, ValueError) as exc:
            raise ConfigError("secrets", name, "a secret that decrypts with this service's "
                              f"key ({KEY_ENV} changed?); put it again") from exc
        if data.get("u") != user_id or data.get("n") != name:
            raise ConfigError("secrets", name, "a secret of yours; put it again")
        return str(data["v"])
