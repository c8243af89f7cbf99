"""Signing in with GitHub and Google, end to end over real HTTP: a browser (an httpx
client keeping cookies and following redirects) goes from the service to the loopback
fakes of the providers (tests/service/fake_oauth.py) and back; the service checks state,
PKCE and (Google) the ID token. Then the browser's session approves the code the real
CLI shows (RFC 8628). On SQLite and on PostgreSQL."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from fake_oauth import FakeProviders

from conftest import Service, admin, new_app, started
from rclaude_infra.errors import ConfigError


def _browser(site: Service) -> httpx.Client:
    return httpx.Client(base_url=site.url, follow_redirects=True, timeout=60)


def _sign_in(browser: httpx.Client, provider: str, next_path: str = "/auth/session"
             ) -> httpx.Response:
    return browser.get(f"/auth/{provider}/login", params={"next": next_path})


def _session_cookie(response: httpx.Response) -> str | None:
    for step in [*response.history, response]:
        for header in step.headers.get_list("set-cookie"):
            if header.startswith("rci_session=") and not header.startswith('rci_session="";'):
                return header
    return None


def test_github_sign_in_with_pkce_and_state(site: Service, idp: FakeProviders) -> None:
    with _browser(site) as browser:
        answer = _sign_in(browser, "github")
        assert answer.status_code == 200, answer.text
        assert answer.json()["user"]["email"] == "alice@example.com"
        # The provider was asked with a state and an S256 challenge, and the code was
        # exchanged with the verifier of that challenge (the fake refuses any other).
        authorize = dict(idp.seen)["github/authorize"]
        assert authorize["code_challenge_method"] == "S256" and authorize["state"]
        assert dict(idp.seen)["github/token"]["code_verifier"]
        cookie = _session_cookie(answer)
        assert cookie is not None
        attributes = {part.strip().lower() for part in cookie.split(";")[1:]}
        assert {"httponly", "samesite=lax", "path=/"} <= attributes
        assert "secure" not in attributes  # plain http on loopback
        # The browser's session is a caller of the API: reads freely, writes with the
        # session's CSRF token only.
        me = browser.get("/v1/me").json()
        assert me["email"] == "alice@example.com" and me["token"] is None
        assert browser.post("/v1/tokens", json={"name": "x"}).status_code == 403
        csrf = answer.json()["csrf_token"]
        made = browser.post("/v1/tokens", json={"name": "from the browser"},
                            headers={"X-CSRF-Token": csrf})
        assert made.status_code == 201


def test_google_sign_in_checks_the_id_token_and_links_to_the_same_user(
        site: Service, idp: FakeProviders) -> None:
    admin("users", "add", "alice@example.com")
    with _browser(site) as browser:
        first = _sign_in(browser, "google").json()["user"]
        assert first["email"] == "alice@example.com"  # the admin's user: a verified address
        assert dict(idp.seen)["google/authorize"]["nonce"]
        # Signed in already, a GitHub account with another address is linked to them.
        idp.github_account["emails"] = [{"email": "alice@work.example", "primary": True,
                                         "verified": True}]
        assert _sign_in(browser, "github").json()["user"]["id"] == first["id"]
    with _browser(site) as elsewhere:  # a new browser: either account is that user
        assert _sign_in(elsewhere, "github").json()["user"]["id"] == first["id"]
        assert _sign_in(elsewhere, "google").json()["user"]["id"] == first["id"]


@pytest.mark.parametrize("tamper", ["nonce", "aud", "iss", "expired", "key"])
def test_a_bad_id_token_signs_nobody_in(site: Service, idp: FakeProviders,
                                        tamper: str) -> None:
    idp.tamper = tamper
    with _browser(site) as browser:
        answer = _sign_in(browser, "google")
        assert answer.status_code == 400
        assert "ID token is not valid" in answer.text
        assert _session_cookie(answer) is None
        assert browser.get("/auth/session").status_code == 401


def _leave(browser: httpx.Client, provider: str) -> tuple[str, str]:
    """Start a sign-in and let the provider answer: the callback URL's code and state."""
    left = browser.get(f"/auth/{provider}/login", follow_redirects=False)
    assert left.status_code == 302
    back = httpx.get(left.headers["location"], follow_redirects=False)
    assert back.status_code == 302, back.text
    query = parse_qs(urlsplit(back.headers["location"]).query)
    return query["code"][0], query["state"][0]


def test_a_wrong_or_replayed_state_is_refused(site: Service, idp: FakeProviders) -> None:
    with _browser(site) as browser:
        code, state = _leave(browser, "github")
        wrong = browser.get("/auth/github/callback", params={"code": code,
                                                             "state": state + "x"})
        assert wrong.status_code == 400 and "state" in wrong.text
        assert _session_cookie(wrong) is None
    # Login CSRF: an attacker's own code and state, sent to a victim's browser that
    # never left for the provider, sign nobody in.
    with _browser(site) as attacker, _browser(site) as victim:
        code, state = _leave(attacker, "github")
        forced = victim.get("/auth/github/callback", params={"code": code, "state": state})
        assert forced.status_code == 400 and _session_cookie(forced) is None
        # The state was not used up by the forced request: the attacker's own browser
        # finishes; then the same state again is refused.
        done = attacker.get("/auth/github/callback", params={"code": code, "state": state})
        assert done.status_code == 200 and done.url.path == "/tasks"  # signed in
        assert _session_cookie(done) is not None
        again = attacker.get("/auth/github/callback", params={"code": code, "state": state})
        assert again.status_code == 400


def test_the_provider_refusing_or_an_unverified_address_signs_nobody_in(
        site: Service, idp: FakeProviders) -> None:
    with _browser(site) as browser:
        _, state = _leave(browser, "github")
        denied = browser.get("/auth/github/callback",
                             params={"error": "access_denied", "state": state})
        assert denied.status_code == 400 and "access_denied" in denied.text
    admin("users", "add", "alice@example.com")
    idp.github_account["emails"] = [{"email": "alice@example.com", "primary": True,
                                     "verified": False}]
    with _browser(site) as browser:
        answer = _sign_in(browser, "github")
        # An address the provider has not verified is nobody's: not Alice's account.
        assert answer.status_code == 400 and "no verified email" in answer.text


@pytest.mark.parametrize("next_path", ["https://evil.example/", "//evil.example/x",
                                       "/\\evil.example", "javascript:alert(1)"])
def test_after_sign_in_the_browser_stays_on_the_service(
        site: Service, idp: FakeProviders, next_path: str) -> None:
    with _browser(site) as browser:
        answer = _sign_in(browser, "github", next_path)
        back = [r for r in answer.history if r.url.path.endswith("/callback")]
        assert back[-1].status_code == 303 and back[-1].headers["location"] == "/"
        assert answer.url.host == "127.0.0.1" and answer.url.path == "/tasks"


def test_sign_out_ends_the_session_on_the_server(site: Service, idp: FakeProviders) -> None:
    with _browser(site) as browser:
        session = _sign_in(browser, "github").json()
        cookie = browser.cookies["rci_session"]
        assert browser.post("/auth/logout").status_code == 403  # no CSRF token
        out = browser.post("/auth/logout", data={"csrf_token": session["csrf_token"]})
        assert out.status_code == 200 and out.url.path == "/login"
    with httpx.Client(base_url=site.url, cookies={"rci_session": cookie}) as stolen:
        assert stolen.get("/v1/me").status_code == 401


def test_only_configured_providers_are_offered(service: Service) -> None:
    with httpx.Client(base_url=service.url) as browser:
        assert browser.get("/auth/providers").json() == {"providers": []}
        assert browser.get("/auth/github/login").status_code == 404
        assert "No sign-in provider is configured" in browser.get("/login").text


def test_cookies_are_secure_behind_https(idp: FakeProviders, tmp_path: Path,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RCLAUDE_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("RCLAUDE_DATABASE_URL", f"sqlite:///{tmp_path / 's.db'}")
    monkeypatch.setenv("RCLAUDE_PUBLIC_URL", "https://rclaude.example.com")
    for key, value in idp.env().items():
        monkeypatch.setenv(key, value)
    with started(new_app(1000)) as url, httpx.Client(base_url=url) as browser:
        left = browser.get("/auth/github/login")
        assert left.status_code == 302
        assert parse_qs(urlsplit(left.headers["location"]).query)["redirect_uri"] == [
            "https://rclaude.example.com/auth/github/callback"]
        assert "secure" in left.headers["set-cookie"].lower()


def test_the_first_admin_is_named_by_a_verified_address(
        idp: FakeProviders, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """On AWS no one reaches the service's database to run `users add --admin`: the
    settings name who is an admin once a provider has verified their address."""
    monkeypatch.setenv("RCLAUDE_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("RCLAUDE_DATABASE_URL", f"sqlite:///{tmp_path / 's.db'}")
    monkeypatch.setenv("RCLAUDE_ADMIN_EMAILS", " Alice@Example.com ,ops@example.com")
    for key, value in idp.env().items():
        monkeypatch.setenv(key, value)
    with started(new_app(1000)) as url:
        idp.service_url = url
        site = Service(url, f"sqlite:///{tmp_path / 's.db'}", 1000)
        # An unverified address with the admin's name is no admin, nor a user at all.
        idp.github_account["emails"] = [{"email": "alice@example.com", "primary": True,
                                         "verified": False}]
        with _browser(site) as browser:
            assert _sign_in(browser, "github").status_code == 400
        idp.github_account["emails"] = [{"email": "alice@example.com", "primary": True,
                                         "verified": True}]
        with _browser(site) as browser:
            assert _sign_in(browser, "github").json()["user"]["email"] == "alice@example.com"
            assert browser.get("/v1/me").json()["is_admin"] is True
            assert browser.get("/admin").status_code == 200
        idp.github_account.update(id=4242, login="mallory")
        idp.github_account["emails"] = [{"email": "mallory@example.com", "primary": True,
                                         "verified": True}]
        with _browser(site) as browser:
            _sign_in(browser, "github")
            assert browser.get("/v1/me").json()["is_admin"] is False
    monkeypatch.setenv("RCLAUDE_ADMIN_EMAILS", "not-an-address")
    from rclaude_infra.service.settings import ServiceSettings

    with pytest.raises(ConfigError, match="RCLAUDE_ADMIN_EMAILS"):
        ServiceSettings.from_env()


def test_the_cli_login_is_approved_in_the_browser(site: Service, idp: FakeProviders,
                                                  tmp_path: Path) -> None:
    """The real CLI shows a code and a link; the person follows it, signs in at GitHub,
    and approves the code on the service's page; the CLI then holds a token."""
    env = {**os.environ, "RCLAUDE_HOME": str(tmp_path / "cli-home")}
    cli = subprocess.Popen([sys.executable, "-m", "rclaude_infra", "login", "--server",
                            site.url], env=env, stderr=subprocess.PIPE, text=True)
    assert cli.stderr is not None
    line = cli.stderr.readline()
    found = re.search(r"approve the code (\S+) at (\S+)", line)
    assert found, line
    code, link = found.groups()
    with _browser(site) as browser:
        page = browser.get(link)  # not signed in: to /login, then GitHub, then back
        assert page.url.path == "/login"
        github = re.search(r'href="([^"]+)">Sign in with GitHub', page.text)
        assert github
        page = browser.get(github.group(1).replace("&amp;", "&"))
        assert page.url.path == "/device" and code in page.text
        csrf = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
        assert csrf
        # A form posted from elsewhere (no CSRF token) approves nothing.
        forged = browser.post("/device", data={"user_code": code, "action": "approve"})
        assert forged.status_code == 403
        approved = browser.post("/device", data={"user_code": code, "action": "approve",
                                                 "csrf_token": csrf.group(1)})
        assert approved.status_code == 200 and "Approved" in approved.text
        assert "frame-ancestors 'none'" in approved.headers["content-security-policy"]
    _, err = cli.communicate(timeout=60)
    assert cli.returncode == 0, err
    assert "alice@example.com" in err


def test_sign_ins_in_flight_are_bounded(site: Service, idp: FakeProviders,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """Anyone may start a sign-in: the rows that costs are bounded service-wide."""
    from rclaude_infra.service import web

    monkeypatch.setattr(web, "MAX_PENDING_SIGN_INS", 2)
    with httpx.Client(base_url=site.url, timeout=30) as anonymous:
        for _ in range(2):
            assert anonymous.get("/auth/github/login").status_code == 302
        refused = anonymous.get("/auth/github/login")
        assert refused.status_code == 429 and "Too many sign-ins" in refused.text
