"""The service database's login from the secret RDS keeps it in (``mode="service"``).

RDS makes and rotates the master password itself (``manage_master_user_password``) in a
Secrets Manager secret whose value is JSON with ``username`` and ``password`` (Amazon RDS
User Guide, "Password management with Amazon RDS and AWS Secrets Manager"). ECS would
resolve such a secret once, when a task starts, so a rotation would lock every running
service task out; the service reads it when it opens a connection instead, keeps it a
few minutes, and reads it again when a login is refused.
"""

from __future__ import annotations

import json
import threading
import time
from typing import Any

from ..errors import ConfigError
from . import client_config, default_session

#: Seconds a read login is used before the secret is read again.
MAX_AGE_SECONDS = 300.0


class DatabaseLogin:
    """``login()``: ``{"user": ..., "password": ...}`` for the database's driver.

    Never put in a log, an error or a repr: neither is the password."""

    def __init__(self, secret_arn: str, *, session: Any = None,
                 max_age: float = MAX_AGE_SECONDS) -> None:
        self.secret_arn = secret_arn
        self._session = session
        self._max_age = max_age
        self._lock = threading.Lock()
        self._login: dict[str, str] | None = None
        self._read_at = 0.0

    def __repr__(self) -> str:
        return f"DatabaseLogin({self.secret_arn!r})"

    def _client(self) -> Any:
        region = self.secret_arn.split(":")[3] if self.secret_arn.count(":") >= 6 else None
        session = self._session or default_session(region or None)
        return session.client("secretsmanager", region_name=region or None,
                              config=client_config())

    def login(self, *, fresh: bool = False) -> dict[str, str]:
        """The login, read from the secret when ``fresh``, when none was read yet, or
        when the one read is older than ``max_age``."""
        with self._lock:
            if fresh or self._login is None or time.monotonic() - self._read_at > self._max_age:
                self._login = self._read()
                self._read_at = time.monotonic()
            return dict(self._login)

    def _read(self) -> dict[str, str]:
        text = self._client().get_secret_value(SecretId=self.secret_arn).get("SecretString")
        try:
            value = json.loads(text or "")
        except ValueError:
            value = None
        if (not isinstance(value, dict) or not isinstance(value.get("username"), str)
                or not isinstance(value.get("password"), str)):
            # The value itself stays out of the error: it is a password.
            raise ConfigError("RCLAUDE_DB_LOGIN_ARN", self.secret_arn,
                              "a secret whose value is JSON with string 'username' and "
                              "'password' (what RDS keeps for manage_master_user_password)")
        return {"user": value["username"], "password": value["password"]}
