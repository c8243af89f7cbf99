"""``login`` and ``logout``: the CLI signs in to a hosted service by the device
authorization grant (RFC 8628) and keeps the token it gets in the OS keyring, or without
one in a 0600 file under ``RCLAUDE_HOME`` (``rclaude_infra.credentials``). Its requests
are :class:`~rclaude_infra.ServiceClient`'s (standard library only: a client needs no
``[service]`` extra)."""

from __future__ import annotations

import argparse
import time
from typing import Any

from ..errors import ConfigError, RclaudeError
from ._common import note, verb

GRANT_TYPE = "urn:ietf:params:oauth:grant-type:device_code"


def add_parsers(commands: Any) -> None:
    login = verb(commands, "login", "sign in to a hosted rclaude-infra service (you approve "
                 "the code it shows; the token is kept for later commands)", _login)
    login.add_argument("--server", required=True, help="the service's URL")
    logout = verb(commands, "logout", "revoke the token `login` got and forget it", _logout)
    logout.add_argument("--server", default=None,
                        help="the service (default: the one logged in to last)")


def _login(args: argparse.Namespace) -> int:
    # Here, not at import: the CLI's other verbs do not pay for the client.
    from .. import credentials
    from ..client import ServiceClient, ServiceError

    server = credentials.check_server(args.server)
    anonymous = ServiceClient(server, None)
    try:
        started = anonymous.request("POST", "/device/code")
    except ServiceError as exc:
        raise RclaudeError(f"{server} did not start a sign-in (HTTP {exc.status}): "
                           f"{exc.detail}") from None
    note(f"To sign in, approve the code {started['user_code']} at "
         f"{started.get('verification_uri_complete') or started['verification_uri']} "
         "(signed in there), or as a signed-in user:\n"
         f"  POST {server}/v1/device/approve {{\"user_code\": \"{started['user_code']}\"}}")
    interval = float(started.get("interval", 5))
    deadline = time.monotonic() + float(started.get("expires_in", 600))
    while time.monotonic() < deadline:
        time.sleep(interval)
        try:
            answer = anonymous.request("POST", "/device/token", {
                "grant_type": GRANT_TYPE, "device_code": started["device_code"]})
        except ServiceError as exc:
            if exc.status != 400:  # RFC 8628's errors are 400s; anything else ends it
                raise
            if exc.detail == "slow_down":
                interval += 5  # RFC 8628, section 3.5
            elif exc.detail != "authorization_pending":
                raise RclaudeError(f"sign-in to {server} ended: {exc.detail}") from None
            continue
        token = str(answer["access_token"])
        where = credentials.save(server, token)
        me = ServiceClient(server, token).request("GET", "/v1/me")
        note(f"signed in to {server} as {me.get('email', 'you')}; the token is in {where}")
        return 0
    raise RclaudeError(f"sign-in to {server} ended: the code expired before it was approved")


def _logout(args: argparse.Namespace) -> int:
    from .. import credentials
    from ..client import ServiceClient, ServiceError

    server = credentials.check_server(args.server) if args.server else credentials.default_server()
    if server is None or server not in credentials.servers():
        raise ConfigError("--server", server, "a service `login` signed in to: "
                          + (", ".join(credentials.servers()) or "none yet"))
    token = credentials.token_for(server)
    status = 401
    if token:
        client = ServiceClient(server, token)
        try:
            me = client.request("GET", "/v1/me")
            status = 200
            if me.get("token"):
                client.request("DELETE", f"/v1/tokens/{me['token']['id']}")
        except ServiceError as exc:
            status = exc.status
    credentials.forget(server)
    note(f"signed out of {server}" + ("" if status == 200 else
                                      f" (its token was already not valid: HTTP {status})"))
    return 0
