"""``rclaude-infra login`` by the device authorization grant (RFC 8628), end to end: the
real CLI in its own process against the started service, the code approved by a
signed-in user over the API while the CLI polls; then ``logout`` revokes the token."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from conftest import Service


def _login(service: Service, home: Path) -> subprocess.Popen[str]:
    env = {**os.environ, "RCLAUDE_HOME": str(home)}
    return subprocess.Popen([sys.executable, "-m", "rclaude_infra", "login", "--server",
                             service.url], env=env, stderr=subprocess.PIPE, text=True)


def _user_code(process: subprocess.Popen[str]) -> str:
    assert process.stderr is not None
    line = process.stderr.readline()
    found = re.search(r"approve the code ([A-Z]{4}-[A-Z]{4})", line)
    assert found, line
    return found.group(1)


def test_login_by_device_code_then_logout(service: Service, alice: str,
                                          tmp_path: Path) -> None:
    home = tmp_path / "cli-home"
    process = _login(service, home)
    code = _user_code(process)
    with service.client(alice) as a:
        approved = a.post("/v1/device/approve", json={"user_code": code.lower()})
        assert approved.status_code == 200 and approved.json()["user_code"] == code
        # A code is approved once.
        assert a.post("/v1/device/approve", json={"user_code": code}).status_code == 404
    _, err = process.communicate(timeout=60)
    assert process.returncode == 0, err
    assert "signed in to" in err and "alice@example.com" in err
    stored = home / "credentials.json"
    assert stored.stat().st_mode & 0o777 == 0o600
    token = json.loads(stored.read_text())["servers"][service.url]["token"]
    with service.client(token) as cli:
        assert cli.get("/v1/me").json()["token"]["name"] == "cli login"
    done = subprocess.run([sys.executable, "-m", "rclaude_infra", "logout"], text=True,
                          env={**os.environ, "RCLAUDE_HOME": str(home)}, capture_output=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr
    with service.client(token) as cli:
        assert cli.get("/v1/me").status_code == 401  # revoked on the server
    assert service.url not in json.loads(stored.read_text())["servers"]


def test_a_denied_code_ends_the_cli_with_an_error(service: Service, alice: str,
                                                  tmp_path: Path) -> None:
    process = _login(service, tmp_path / "cli-home")
    code = _user_code(process)
    with service.client(alice) as a:
        assert a.post("/v1/device/approve", json={"user_code": code, "deny": True}
                      ).status_code == 200
    _, err = process.communicate(timeout=60)
    assert process.returncode == 1 and "access_denied" in err
    assert not (tmp_path / "cli-home" / "credentials.json").exists()


def test_the_token_endpoint_speaks_rfc_8628(service: Service, alice: str) -> None:
    with httpx.Client(base_url=service.url, timeout=30) as anonymous:
        started = anonymous.post("/device/code").json()
        assert re.fullmatch(r"[BCDFGHJKLMNPQRSTVWXZ]{4}-[BCDFGHJKLMNPQRSTVWXZ]{4}",
                            started["user_code"])
        grant = {"grant_type": "urn:ietf:params:oauth:grant-type:device_code",
                 "device_code": started["device_code"]}
        first = anonymous.post("/device/token", json=grant)
        assert first.status_code == 400 and first.json() == {"error": "authorization_pending"}
        again = anonymous.post("/device/token", json=grant)  # before the interval
        assert again.json() == {"error": "slow_down"}
        wrong = anonymous.post("/device/token", json={**grant, "grant_type": "password"})
        assert wrong.json() == {"error": "unsupported_grant_type"}
        unknown = anonymous.post("/device/token", json={**grant, "device_code": "nope"})
        assert unknown.json() == {"error": "invalid_grant"}
        with service.client(alice) as a:
            a.post("/v1/device/approve", json={"user_code": started["user_code"]})
        issued = anonymous.post("/device/token", json=grant)
        assert issued.status_code == 200 and issued.json()["token_type"] == "Bearer"
        # Once: the same device code gets nothing more.
        assert anonymous.post("/device/token", json=grant).json() == {
            "error": "expired_token"}


def test_pending_codes_are_bounded_and_expired_ones_deleted(
        service: Service, monkeypatch: pytest.MonkeyPatch) -> None:
    """Anyone may ask for a code: what that costs the service is bounded."""
    import datetime as dt

    from sqlalchemy import create_engine, text

    from rclaude_infra.service import device

    monkeypatch.setattr(device, "MAX_PENDING", 3)
    with httpx.Client(base_url=service.url, timeout=30) as anonymous:
        for _ in range(3):
            assert anonymous.post("/device/code").status_code == 200
        refused = anonymous.post("/device/code")
        assert refused.status_code == 429 and refused.headers["retry-after"] == "60"
        engine = create_engine(service.database_url)
        with engine.begin() as connection:
            connection.execute(text("UPDATE device_codes SET expires_at = :past"),
                               {"past": dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1)})
        assert anonymous.post("/device/code").status_code == 200
        with engine.connect() as connection:
            assert connection.execute(text("SELECT count(*) FROM device_codes")).scalar() == 1
        engine.dispose()
