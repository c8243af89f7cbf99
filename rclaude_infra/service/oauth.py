"""Sign-in with GitHub and Google: the OAuth 2 authorization code grant with PKCE (RFC 7636,
``S256``) and ``state``, Google's through OpenID Connect (an ID token checked against the
issuer's keys: signature, ``iss``, ``aud``, ``exp``, ``nonce``).

A provider is offered when its client id is set:

- GitHub: ``RCLAUDE_GITHUB_CLIENT_ID``, ``RCLAUDE_GITHUB_CLIENT_SECRET``, and for GitHub
  Enterprise ``RCLAUDE_GITHUB_URL`` (default ``https://github.com``) and
  ``RCLAUDE_GITHUB_API_URL`` (default ``https://api.github.com``);
- Google: ``RCLAUDE_GOOGLE_CLIENT_ID``, ``RCLAUDE_GOOGLE_CLIENT_SECRET`` and
  ``RCLAUDE_GOOGLE_ISSUER`` (default ``https://accounts.google.com``, whose discovery
  document names the endpoints).

Authlib builds the authorization URL and the PKCE challenge and checks the ID token's
claims; httpx carries the requests."""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Any

import attrs
import httpx
from authlib.common.security import generate_token
from authlib.oauth2.rfc6749.parameters import prepare_grant_uri
from authlib.oauth2.rfc7636 import create_s256_code_challenge
from authlib.oidc.core import CodeIDToken
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet

from ..errors import ConfigError

PROVIDERS = ("github", "google")
#: Seconds a sign-in may take between leaving for the provider and coming back.
STATE_SECONDS = 600
#: Seconds of clock difference an ID token's times are allowed.
LEEWAY_SECONDS = 120
_TIMEOUT = httpx.Timeout(15.0)


class SignInError(Exception):
    """A sign-in that did not go through, and why (shown to the person)."""


@attrs.frozen(kw_only=True)
class Profile:
    """Who the provider says signed in."""

    provider: str
    #: The provider's stable id for the account (GitHub's numeric id, Google's ``sub``).
    subject: str
    email: str | None
    email_verified: bool
    name: str | None


@attrs.frozen(kw_only=True)
class Begun:
    """A sign-in on its way to the provider: where to send the browser, and what the
    callback needs back (kept by the service, never sent)."""

    url: str
    state: str
    code_verifier: str
    nonce: str


@attrs.frozen(kw_only=True)
class Provider:
    """An OAuth client of one provider."""

    name: str
    client_id: str = attrs.field(repr=False)
    client_secret: str = attrs.field(repr=False)
    #: GitHub: the web and API base URLs. Google: the OpenID issuer.
    base_url: str
    api_url: str = ""
    _metadata: dict[str, Any] = attrs.field(factory=dict, repr=False, eq=False)
    _lock: threading.Lock = attrs.field(factory=threading.Lock, repr=False, eq=False)

    @property
    def label(self) -> str:
        return {"github": "GitHub", "google": "Google"}[self.name]

    @property
    def scope(self) -> str:
        return "read:user user:email" if self.name == "github" else "openid email profile"

    def begin(self, redirect_uri: str) -> Begun:
        """A new sign-in: fresh ``state``, PKCE verifier and (Google) ``nonce``."""
        state, verifier, nonce = generate_token(43), generate_token(64), generate_token(32)
        extra: dict[str, str] = {"code_challenge": create_s256_code_challenge(verifier),
                                 "code_challenge_method": "S256"}
        if self.name == "google":
            extra["nonce"] = nonce
        url = prepare_grant_uri(self.endpoint("authorization_endpoint"), self.client_id,
                                "code", redirect_uri=redirect_uri, scope=self.scope,
                                state=state, **extra)
        return Begun(url=url, state=state, code_verifier=verifier, nonce=nonce)

    def finish(self, *, code: str, redirect_uri: str, code_verifier: str,
               nonce: str) -> Profile:
        """Who signed in: the code exchanged (with its PKCE verifier), then the account
        read (GitHub's API) or the ID token checked (Google)."""
        with httpx.Client(timeout=_TIMEOUT, headers={"Accept": "application/json"}) as http:
            answer = self._post(http, self.endpoint("token_endpoint"), {
                "grant_type": "authorization_code", "code": code,
                "redirect_uri": redirect_uri, "code_verifier": code_verifier,
                "client_id": self.client_id, "client_secret": self.client_secret})
            if "error" in answer or "access_token" not in answer:
                raise SignInError(f"{self.label} refused the code: "
                                  f"{answer.get('error', 'no access_token')}")
            if self.name == "github":
                return self._github_profile(http, str(answer["access_token"]))
            return self._google_profile(http, answer, nonce)

    def endpoint(self, name: str) -> str:
        if self.name == "github":
            return {"authorization_endpoint": f"{self.base_url}/login/oauth/authorize",
                    "token_endpoint": f"{self.base_url}/login/oauth/access_token"}[name]
        value = self.metadata().get(name)
        if not isinstance(value, str):
            raise SignInError(f"{self.label}'s discovery document has no {name}")
        return value

    def metadata(self) -> dict[str, Any]:
        """Google's discovery document (``/.well-known/openid-configuration``), read once."""
        with self._lock:
            if not self._metadata:
                with httpx.Client(timeout=_TIMEOUT) as http:
                    found = self._get(http, f"{self.base_url}/.well-known/openid-configuration")
                if found.get("issuer") != self.base_url:
                    raise SignInError(f"the discovery document of {self.base_url} names "
                                      f"another issuer: {found.get('issuer')!r}")
                self._metadata.update(found)
            return self._metadata

    def _github_profile(self, http: httpx.Client, access_token: str) -> Profile:
        auth = {"Authorization": f"Bearer {access_token}"}
        user = self._get(http, f"{self.api_url}/user", auth)
        emails = self._get(http, f"{self.api_url}/user/emails", auth)
        if not isinstance(user.get("id"), int):
            raise SignInError("GitHub's /user answer has no id")
        # The primary address, when GitHub has verified it; else any verified one.
        listed = [e for e in emails.get("items", []) if isinstance(e, dict)]
        verified = [e for e in listed if e.get("verified") is True
                    and isinstance(e.get("email"), str)]
        verified.sort(key=lambda e: e.get("primary") is not True)
        email = verified[0]["email"] if verified else user.get("email")
        return Profile(provider="github", subject=str(user["id"]),
                       email=email if isinstance(email, str) else None,
                       email_verified=bool(verified),
                       name=str(user.get("name") or user.get("login") or "") or None)

    def _google_profile(self, http: httpx.Client, answer: Mapping[str, Any],
                        nonce: str) -> Profile:
        id_token = answer.get("id_token")
        if not isinstance(id_token, str):
            raise SignInError("Google's answer has no ID token")
        keys = self._get(http, self.endpoint("jwks_uri"))
        algorithms = self.metadata().get("id_token_signing_alg_values_supported") or ["RS256"]
        try:
            decoded = jwt.decode(id_token, KeySet.import_key_set(keys),  # type: ignore[arg-type]
                                 algorithms=algorithms)
            claims = CodeIDToken(
                decoded.claims, decoded.header,
                {"iss": {"essential": True, "value": self.base_url},
                 "aud": {"essential": True, "value": self.client_id}},
                {"nonce": nonce, "client_id": self.client_id,
                 "access_token": answer.get("access_token")})
            claims.validate(leeway=LEEWAY_SECONDS)
        except (JoseError, ValueError) as exc:
            raise SignInError(f"Google's ID token is not valid: {exc}") from exc
        email = claims.get("email")
        return Profile(provider="google", subject=str(claims["sub"]),
                       email=email if isinstance(email, str) else None,
                       email_verified=claims.get("email_verified") is True,
                       name=claims.get("name") if isinstance(claims.get("name"), str) else None)

    def _get(self, http: httpx.Client, url: str,
             headers: Mapping[str, str] | None = None) -> dict[str, Any]:
        return self._json(lambda: http.get(url, headers=headers), url)

    def _post(self, http: httpx.Client, url: str, form: Mapping[str, str]) -> dict[str, Any]:
        return self._json(lambda: http.post(url, data=form), url)

    def _json(self, send: Any, url: str) -> dict[str, Any]:
        """An answer's JSON object (a list as ``{"items": [...]}``); an error names the
        endpoint, never a code, token or secret."""
        try:
            response: httpx.Response = send()
        except httpx.HTTPError as exc:
            raise SignInError(f"{self.label} did not answer ({type(exc).__name__})") from exc
        where = url.split("?", 1)[0]
        try:
            body = response.json()
        except ValueError:
            body = None
        if response.status_code >= 400 and not (isinstance(body, dict) and "error" in body):
            raise SignInError(f"{self.label} answered {response.status_code} at {where}")
        if isinstance(body, list):
            return {"items": body}
        if not isinstance(body, dict):
            raise SignInError(f"{self.label} answered something not JSON at {where}")
        return body


def _url(name: str, value: str) -> str:
    if not value.startswith(("https://", "http://")):
        raise ConfigError(name, value, "an https:// URL")
    return value.rstrip("/")


def providers_from_env(env: Mapping[str, str]) -> dict[str, Provider]:
    """The providers whose client id is set in ``env``, by name."""
    found: dict[str, Provider] = {}
    for name in PROVIDERS:
        prefix = f"RCLAUDE_{name.upper()}_"
        client_id = env.get(prefix + "CLIENT_ID", "").strip()
        if not client_id:
            continue
        secret = env.get(prefix + "CLIENT_SECRET", "").strip()
        if not secret:
            raise ConfigError(prefix + "CLIENT_SECRET", "", f"the client secret of the "
                              f"{name} OAuth app whose id is {prefix}CLIENT_ID")
        if name == "github":
            found[name] = Provider(
                name=name, client_id=client_id, client_secret=secret,
                base_url=_url(prefix + "URL", env.get(prefix + "URL", "https://github.com")),
                api_url=_url(prefix + "API_URL",
                             env.get(prefix + "API_URL", "https://api.github.com")))
        else:
            found[name] = Provider(
                name=name, client_id=client_id, client_secret=secret,
                base_url=_url(prefix + "ISSUER",
                              env.get(prefix + "ISSUER", "https://accounts.google.com")))
    return found
