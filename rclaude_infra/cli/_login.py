"""``login`` and ``logout``: the CLI signs in to a hosted service by the device
authorization grant (RFC 8628) and keeps the token it gets in the OS keyring, or without
one in a 0600 file under ``RCLAUDE_HOME`` (``rclaude_infra.credentials``). Standard
library only: a client needs no ``[service]`` extra."""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

from .. import credentials
from ..errors import ConfigError, RclaudeError
from ._common import note, verb

GRANT_TYPE = "urn:ietf:params:oauth:grant-type:device_code"


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
    server = credentials.check_server(args.server)
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
            where = credentials.save(server, token)
            _, me = _call("GET", f"{server}/v1/me", token=token)
            note(f"signed in to {server} as {me.get('email', 'you')}; the token is in "
                 f"{where}")
            return 0
        if error == "slow_down":
            interval += 5  # RFC 8628, section 3.5
        elif error != "authorization_pending":
            raise RclaudeError(f"sign-in to {server} ended: {error or answer}")
    raise RclaudeError(f"sign-in to {server} ended: the code expired before it was approved")


def _logout(args: argparse.Namespace) -> int:
    server = credentials.check_server(args.server) if args.server else credentials.default_server()
    if server is None or server not in credentials.servers():
        raise ConfigError("--server", server, "a service `login` signed in to: "
                          + (", ".join(credentials.servers()) or "none yet"))
    token = credentials.token_for(server)
    status, me = _call("GET", f"{server}/v1/me", token=token) if token else (401, {})
    if status == 200 and me.get("token"):
        _call("DELETE", f"{server}/v1/tokens/{me['token']['id']}", token=token)
    credentials.forget(server)
    note(f"signed out of {server}" + ("" if status == 200 else
                                      f" (its token was already not valid: HTTP {status})"))
    return 0
