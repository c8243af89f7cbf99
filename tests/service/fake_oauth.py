"""Loopback fakes of GitHub's and Google's OAuth endpoints, as their documentation
describes them, checking what the real ones check:

- GitHub ("Authorizing OAuth apps", docs.github.com; PKCE since the 2025-07-14 changelog,
  S256 only): ``/login/oauth/authorize`` redirects to the registered ``redirect_uri`` with
  ``code`` and the ``state`` it was given; ``/login/oauth/access_token`` exchanges a code
  once, for the same client, secret, redirect URI and a ``code_verifier`` whose S256 is
  the challenge, answering errors as 200 with ``{"error": "bad_verification_code"}``
  (GitHub's way); the REST API's ``/user`` and ``/user/emails`` need the access token.
- Google (OpenID Connect, developers.google.com/identity/openid-connect): a discovery
  document, an authorization endpoint that keeps the ``nonce``, a token endpoint that
  answers an RS256 ID token (``iss``, ``aud`` = the client id, ``sub``, ``email``,
  ``email_verified``, ``nonce``, ``iat``, ``exp``) and the keys at ``jwks_uri``.

``tamper`` makes the next ID token wrong in one way, as an attacker or a broken provider
would: ``nonce``, ``aud``, ``iss``, ``expired`` or ``key`` (signed with another key)."""

from __future__ import annotations

import base64
import hashlib
import secrets
import time
from typing import Any
from urllib.parse import parse_qs, urlencode

from joserfc import jwt
from joserfc.jwk import KeySet, RSAKey
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Route

GITHUB_CLIENT = ("Iv1.fakegithubclient", "github-client-secret")
GOOGLE_CLIENT = ("1234-fake.apps.googleusercontent.com", "google-client-secret")


class FakeProviders:
    """Both providers on one server; ``base`` is its URL once started."""

    def __init__(self) -> None:
        self.base = ""
        #: The service's URL: only its callbacks are registered redirect URIs.
        self.service_url = ""
        self.github_account: dict[str, Any] = {
            "id": 583231, "login": "alice-gh", "name": "Alice",
            "emails": [{"email": "alice@example.com", "primary": True, "verified": True}]}
        self.google_account: dict[str, Any] = {
            "sub": "110169484474386276334", "email": "alice@example.com",
            "email_verified": True, "name": "Alice G"}
        self.tamper: str | None = None
        self.key = RSAKey.generate_key(2048, parameters={"kid": "fake-1", "use": "sig"})
        self.codes: dict[str, dict[str, Any]] = {}
        self.tokens: dict[str, str] = {}
        #: What each endpoint was asked (query or form), in order.
        self.seen: list[tuple[str, dict[str, str]]] = []

    @property
    def issuer(self) -> str:
        return f"{self.base}/google"

    def env(self) -> dict[str, str]:
        """The service's environment for signing in at these fakes."""
        return {"RCLAUDE_GITHUB_CLIENT_ID": GITHUB_CLIENT[0],
                "RCLAUDE_GITHUB_CLIENT_SECRET": GITHUB_CLIENT[1],
                "RCLAUDE_GITHUB_URL": f"{self.base}/github",
                "RCLAUDE_GITHUB_API_URL": f"{self.base}/github-api",
                "RCLAUDE_GOOGLE_CLIENT_ID": GOOGLE_CLIENT[0],
                "RCLAUDE_GOOGLE_CLIENT_SECRET": GOOGLE_CLIENT[1],
                "RCLAUDE_GOOGLE_ISSUER": self.issuer}

    def app(self) -> Starlette:
        return Starlette(routes=[
            Route("/github/login/oauth/authorize", self.authorize_github),
            Route("/github/login/oauth/access_token", self.token_github, methods=["POST"]),
            Route("/github-api/user", self.github_user),
            Route("/github-api/user/emails", self.github_emails),
            Route("/google/.well-known/openid-configuration", self.discovery),
            Route("/google/auth", self.authorize_google),
            Route("/google/token", self.token_google, methods=["POST"]),
            Route("/google/certs", self.certs),
        ])

    # -- authorization ------------------------------------------------------------------

    def _authorize(self, request: Request, provider: str, client: tuple[str, str]
                   ) -> Response:
        q = dict(request.query_params)
        self.seen.append((f"{provider}/authorize", q))
        redirect = q.get("redirect_uri", "")
        if q.get("client_id") != client[0]:
            return Response("unknown client_id", 400)
        if redirect != f"{self.service_url}/auth/{provider}/callback":
            return Response("redirect_uri is not registered for this client", 400)
        if q.get("response_type") != "code" or not q.get("state"):
            return Response("response_type=code and a state are needed", 400)
        if q.get("code_challenge_method") != "S256" or len(q.get("code_challenge", "")) != 43:
            return Response("code_challenge_method must be S256", 400)
        if provider == "google" and not q.get("nonce"):
            return Response("nonce is needed", 400)
        code = secrets.token_urlsafe(20)
        self.codes[code] = {"provider": provider, "redirect_uri": redirect,
                            "challenge": q["code_challenge"], "nonce": q.get("nonce")}
        return RedirectResponse(f"{redirect}?{urlencode({'code': code, 'state': q['state']})}",
                                302)

    async def authorize_github(self, request: Request) -> Response:
        return self._authorize(request, "github", GITHUB_CLIENT)

    async def authorize_google(self, request: Request) -> Response:
        return self._authorize(request, "google", GOOGLE_CLIENT)

    async def _exchange(self, request: Request, provider: str, client: tuple[str, str]
                        ) -> tuple[dict[str, Any] | None, str]:
        form = {k: v[0] for k, v in parse_qs((await request.body()).decode()).items()}
        self.seen.append((f"{provider}/token", form))
        grant = self.codes.pop(form.get("code", ""), None)  # a code is used once
        if (form.get("client_id"), form.get("client_secret")) != client:
            return None, "incorrect_client_credentials"
        if grant is None or grant["provider"] != provider:
            return None, "bad_verification_code"
        if form.get("redirect_uri") != grant["redirect_uri"]:
            return None, "redirect_uri_mismatch"
        verifier = form.get("code_verifier", "")
        digest = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest())
        if digest.rstrip(b"=").decode() != grant["challenge"]:
            return None, "invalid_grant"  # PKCE: not the verifier the challenge was of
        return grant, ""

    async def token_github(self, request: Request) -> Response:
        grant, error = await self._exchange(request, "github", GITHUB_CLIENT)
        if grant is None:
            return JSONResponse({"error": error})  # GitHub answers its errors with 200
        token = "gho_" + secrets.token_urlsafe(24)
        self.tokens[token] = "github"
        return JSONResponse({"access_token": token, "token_type": "bearer",
                             "scope": "read:user,user:email"})

    async def token_google(self, request: Request) -> Response:
        grant, error = await self._exchange(request, "google", GOOGLE_CLIENT)
        if grant is None:
            return JSONResponse({"error": error}, 400)
        issued = int(time.time())
        claims = {"iss": self.issuer, "aud": GOOGLE_CLIENT[0], "azp": GOOGLE_CLIENT[0],
                  "iat": issued, "exp": issued + 3600, "nonce": grant["nonce"],
                  **self.google_account}
        key = self.key
        tamper, self.tamper = self.tamper, None
        if tamper == "nonce":
            claims["nonce"] = "another-sign-in"
        elif tamper == "aud":
            claims["aud"] = claims["azp"] = "someone-else.apps.googleusercontent.com"
        elif tamper == "iss":
            claims["iss"] = "https://evil.example"
        elif tamper == "expired":
            claims["iat"], claims["exp"] = issued - 7200, issued - 3600
        elif tamper == "key":
            key = RSAKey.generate_key(2048, parameters={"kid": "fake-1"})
        id_token = jwt.encode({"alg": "RS256", "kid": "fake-1"}, claims, key)
        access = "ya29." + secrets.token_urlsafe(24)
        self.tokens[access] = "google"
        return JSONResponse({"access_token": access, "expires_in": 3599,
                             "token_type": "Bearer", "scope": "openid email profile",
                             "id_token": id_token})

    # -- who signed in ---------------------------------------------------------------------

    def _bearer(self, request: Request, provider: str) -> bool:
        scheme, _, value = request.headers.get("authorization", "").partition(" ")
        return scheme.lower() in ("bearer", "token") and self.tokens.get(value) == provider

    async def github_user(self, request: Request) -> Response:
        if not self._bearer(request, "github"):
            return JSONResponse({"message": "Bad credentials"}, 401)
        account = self.github_account
        return JSONResponse({"id": account["id"], "login": account["login"],
                             "name": account["name"], "email": None})

    async def github_emails(self, request: Request) -> Response:
        if not self._bearer(request, "github"):
            return JSONResponse({"message": "Bad credentials"}, 401)
        return JSONResponse([{**e, "visibility": "private"}
                             for e in self.github_account["emails"]])

    async def discovery(self, request: Request) -> Response:
        return JSONResponse({
            "issuer": self.issuer, "authorization_endpoint": f"{self.issuer}/auth",
            "token_endpoint": f"{self.issuer}/token", "jwks_uri": f"{self.issuer}/certs",
            "response_types_supported": ["code"], "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "code_challenge_methods_supported": ["plain", "S256"]})

    async def certs(self, request: Request) -> Response:
        public = KeySet([RSAKey.import_key(self.key.as_dict(private=False))])
        return JSONResponse(public.as_dict())
