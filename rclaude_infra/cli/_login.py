"""``login`` and ``logout``: the CLI signs in to a hosted service by the device
authorization grant (RFC 8628) and keeps the token it gets in a 0600 file under
``RCLAUDE_HOME`` (``credentials.json``). Standard library only: a client needs no
``[service]`` extra."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

from ..errors import ConfigError, RclaudeError
from ..paths import rclaude_home
from ..tasks.records import write_record
from ._common import note, verb

GRANT_TYPE = "urn:ietf:params:oauth:grant-type:device_code"


def credentials_file() -> Path:
    return rclaude_home() / "credentials.json"


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


def _server(value: str) -> str:
    if not value.startswith(("https://", "http://")) or any(c.isspace() for c in value):
        raise ConfigError("--server", value, "the service's URL, https://host[:port]")
    return value.rstrip("/")


def _call(method: str, url: str, body: dict[str, Any] | None = None,
          token: str | None = None) -> tuple[int, dict[str, Any]]:
    # Here, not at import: every other verb of the CLI would pay for urllib.request.
    import urllib.error
    import urllib.request

    headers = {"Content-Type": "application/json", "Accept": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    request = urllib.request.Request(url, method=method, headers=headers,
                                     data=None if body is None else json.dumps(body).encode())
    try:
        with urllib.request.urlopen(request, timeout=30) as answer:
            raw = answer.read()
            return answer.status, json.loads(raw) if raw else {}
    except urllib.error.HTTPError as exc:
        raw = exc.read()
        try:
            return exc.code, json.loads(raw) if raw else {}
        except ValueError:
            return exc.code, {"detail": raw.decode(errors="replace")[:200]}
    except urllib.error.URLError as exc:
        raise RclaudeError(f"cannot reach {url}: {exc.reason}") from exc


def add_parsers(commands: Any) -> None:
    login = verb(commands, "login", "sign in to a hosted rclaude-infra service (you approve "
                 "the code it shows; the token is kept for later commands)", _login)
    login.add_argument("--server", required=True, help="the service's URL")
    logout = verb(commands, "logout", "revoke the token `login` got and forget it", _logout)
    logout.add_argument("--server", default=None,
                        help="the service (default: the one logged in to last)")


def _login(args: argparse.Namespace) -> int:
    server = _server(args.server)
    status, started = _call("POST", f"{server}/device/code")
    if status != 200 or "device_code" not in started:
        raise RclaudeError(f"{server} did not start a sign-in (HTTP {status}): "
                           f"{started.get('detail', started)}")
    note(f"To sign in, approve the code {started['user_code']} at "
         f"{started.get('verification_uri_complete') or started['verification_uri']} "
         "(signed in there), or as a signed-in user:\n"
         f"  POST {server}/v1/device/approve {{\"user_code\": \"{started['user_code']}\"}}")
    interval = float(started.get("interval", 5))
    deadline = time.monotonic() + float(started.get("expires_in", 600))
    while time.monotonic() < deadline:
        time.sleep(interval)
        status, answer = _call("POST", f"{server}/device/token",
                               {"grant_type": GRANT_TYPE,
                                "device_code": started["device_code"]})
        error = answer.get("error")
        if status == 200 and answer.get("access_token"):
            token = str(answer["access_token"])
            data = _read()
            data["servers"][server] = {"token": token}
            data["default"] = server
            _write(data)
            _, me = _call("GET", f"{server}/v1/me", token=token)
            note(f"signed in to {server} as {me.get('email', 'you')}; the token is in "
                 f"{credentials_file()}")
            return 0
        if error == "slow_down":
            interval += 5  # RFC 8628, section 3.5
        elif error != "authorization_pending":
            raise RclaudeError(f"sign-in to {server} ended: {error or answer}")
    raise RclaudeError(f"sign-in to {server} ended: the code expired before it was approved")


def _logout(args: argparse.Namespace) -> int:
    data = _read()
    server = _server(args.server) if args.server else data.get("default")
    entry = data["servers"].get(server) if server else None
    if not entry:
        raise ConfigError("--server", server, "a service `login` signed in to: "
                          + (", ".join(data["servers"]) or "none yet"))
    token = entry.get("token")
    status, me = _call("GET", f"{server}/v1/me", token=token)
    if status == 200:
        _call("DELETE", f"{server}/v1/tokens/{me['token']['id']}", token=token)
    del data["servers"][server]
    if data.get("default") == server:
        data.pop("default")
    _write(data)
    note(f"signed out of {server}" + ("" if status == 200 else
                                      f" (its token was already not valid: HTTP {status})"))
    return 0
