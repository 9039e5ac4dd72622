"""A loopback fake of the GitHub API parts a GitHub App uses to mint installation tokens.

Real HTTP on 127.0.0.1 (quart-trio, as the other fakes), GitHub's JSON shapes and error
bodies (`{"message", "documentation_url", "status"}`), and GitHub's checks, so a test that
passes here would pass against api.github.com:
- every app request carries a JWT that must verify: RS256 with the app's key, `iss` the app
  id or client id, integer `iat`/`exp`, `iat` at most 60 s ahead, `exp` in the future, at
  most 10 minutes ahead and at most 600 s after `iat`; else 401;
- `GET /app`; `GET /repos/{owner}/{repo}/installation` (404 unless an installation reaches
  the repository); `POST /app/installations/{id}/access_tokens` (422 "There is at least one
  repository that does not exist or is not accessible to the parent installation." for a
  repository outside it, 422 "The permissions requested are not granted to this
  installation." for permissions beyond its grants, as GitHub answers both; 201 with a
  `ghs_` token otherwise);
- requests without a User-Agent get GitHub's 403.

Tests inject failures (`fail_next`, `down`, `stall`), read the request log and the refusals,
and check tokens as a git server would (`token_allows`, `basic_auth_allows`).
"""

from __future__ import annotations

import base64
import itertools
import json
import secrets
import string
import time
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from contextlib import asynccontextmanager
from functools import cache
from typing import Any

import attrs
import jwt
import trio
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from quart import Response, request
from quart_trio import QuartTrio

from opendispatch.adapters.webhook import serve_webhooks

APP_ID = 4242
CLIENT_ID = "Iv23liFakeClient0042"
APP_SLUG = "open-dispatch-test"
DOCS = "https://docs.github.com/rest"
BAD_JWT = "A JSON web token could not be decoded"
EXP_TOO_FAR = "'Expiration time' claim ('exp') is too far in the future"
EXPIRED = "'Expiration time' claim ('exp') must be a numeric value representing the future time at which the assertion expires"
IAT_AHEAD = "'Issued at' claim ('iat') must be an Integer representing the time that the assertion was issued"
REPO_NOT_REACHABLE = "There is at least one repository that does not exist or is not accessible to the parent installation."
PERMISSIONS_NOT_GRANTED = "The permissions requested are not granted to this installation."
NO_USER_AGENT = (
    "Request forbidden by administrative rules. Please make sure your request has a User-Agent header "
    "(https://docs.github.com/en/rest/overview/resources-in-the-rest-api#user-agent-required)."
)
_LEVELS = {"read": 1, "write": 2, "admin": 3}
_TOKEN_CHARS = string.ascii_letters + string.digits


@cache
def rsa_key(role: str = "app") -> rsa.RSAPrivateKey:
    """One RSA key per role per test run (generating one is the slow part)."""
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def pem_of(key: rsa.RSAPrivateKey) -> str:
    """The key as GitHub hands it out: PKCS#1, `-----BEGIN RSA PRIVATE KEY-----`."""
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL, serialization.NoEncryption()
    ).decode()


def github_time(at: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(at))


@attrs.define
class FakeInstallation:
    id: int
    owner: str
    #: Repository names it may reach; None: every repository of the owner ("all").
    repositories: set[str] | None
    #: What the owner granted the app here, e.g. {"contents": "write", "metadata": "read"}.
    permissions: dict[str, str]
    organization: bool = True

    def reaches(self, name: str) -> bool:
        return self.repositories is None or name.lower() in {r.lower() for r in self.repositories}

    def settings_url(self, server_url: str) -> str:
        if self.organization:
            return f"{server_url}/organizations/{self.owner}/settings/installations/{self.id}"
        return f"{server_url}/settings/installations/{self.id}"


@attrs.frozen
class MintedToken:
    token: str = attrs.field(repr=lambda t: t[:8] + "…")
    installation_id: int
    owner: str
    repositories: tuple[str, ...] | None  # names; None: all the installation reaches
    permissions: Mapping[str, str]
    expires_at: float


@attrs.frozen
class LoggedRequest:
    method: str
    path: str
    status: int
    #: The JWT's claims when it verified, else None.
    claims: Mapping[str, Any] | None
    headers: Mapping[str, str]


class FakeGitHub:
    def __init__(
        self,
        *,
        app_id: int = APP_ID,
        client_id: str = CLIENT_ID,
        slug: str = APP_SLUG,
        server_url: str = "https://github.com",
        clock: Callable[[], float] = time.time,
        token_lifetime_s: float = 3600.0,
    ) -> None:
        self.base_url = ""
        self.app_id = app_id
        self.client_id = client_id
        self.slug = slug
        self.server_url = server_url.rstrip("/")
        self.clock = clock
        self.token_lifetime_s = token_lifetime_s
        self.private_key = rsa_key("app")
        self.installations: dict[int, FakeInstallation] = {}
        self.tokens: list[MintedToken] = []
        self.requests: list[LoggedRequest] = []
        #: Why each refused JWT was refused (GitHub's message), in order.
        self.refusals: list[str] = []
        #: Answer every request 503 with an HTML page, as GitHub's front does when it is down.
        self.down = False
        #: Never answer (the client's timeout must end the wait).
        self.stall = False
        self._failures: list[tuple[int, str, str]] = []
        self._ids = itertools.count(101)
        self.app = self._build_app()

    # --- test controls -------------------------------------------------------------------------

    @property
    def private_key_pem(self) -> str:
        return pem_of(self.private_key)

    @property
    def html_url(self) -> str:
        return f"{self.server_url}/apps/{self.slug}"

    @property
    def install_url(self) -> str:
        return f"{self.html_url}/installations/new"

    def install(
        self,
        owner: str,
        repositories: Iterable[str] | None = None,
        *,
        permissions: Mapping[str, str] | None = None,
        organization: bool = True,
    ) -> FakeInstallation:
        """Install the app on `owner`, for these repositories (None: all of them)."""
        grants = dict(permissions) if permissions is not None else {
            "contents": "write", "pull_requests": "write", "metadata": "read"
        }
        installation = FakeInstallation(
            next(self._ids), owner, None if repositories is None else set(repositories), grants, organization
        )
        self.installations[installation.id] = installation
        return installation

    def uninstall(self, owner: str) -> None:
        for installation in [i for i in self.installations.values() if i.owner.lower() == owner.lower()]:
            del self.installations[installation.id]

    def fail_next(self, status: int, message: str = "Server Error", *, times: int = 1, path: str = "") -> None:
        """The next `times` app requests (whose path holds `path`) are answered `status`, `message`."""
        self._failures.extend([(status, message, path)] * times)

    def _injected_failure(self, path: str) -> tuple[int, str] | None:
        for index, (status, message, part) in enumerate(self._failures):
            if part in path:
                del self._failures[index]
                return status, message
        return None

    def requests_to(self, method: str, path_part: str = "") -> list[LoggedRequest]:
        return [r for r in self.requests if r.method == method and path_part in r.path]

    def mint_requests(self) -> list[LoggedRequest]:
        return [r for r in self.requests if r.method == "POST" and r.path.endswith("/access_tokens")]

    def token_allows(
        self, token: str, owner: str, repo: str, now: float | None = None, *, contents: str = "read"
    ) -> bool:
        """Would GitHub let this token reach `owner/repo` now, with `contents` at this level?"""
        now = self.clock() if now is None else now
        for minted in self.tokens:
            if not secrets.compare_digest(minted.token.encode(), token.encode()):
                continue
            installation = self.installations.get(minted.installation_id)
            if installation is None or installation.owner.lower() != owner.lower() or now >= minted.expires_at:
                return False
            names = minted.repositories
            if not installation.reaches(repo) or (names is not None and repo.lower() not in {n.lower() for n in names}):
                return False
            return _LEVELS.get(minted.permissions.get("contents", ""), 0) >= _LEVELS[contents]
        return False

    def basic_auth_allows(
        self, authorization: str | None, owner: str, repo: str, now: float | None = None, *, contents: str = "read"
    ) -> bool:
        """`token_allows` for git's `Authorization: Basic base64(x-access-token:TOKEN)`."""
        scheme, _, encoded = (authorization or "").partition(" ")
        if scheme.lower() != "basic":
            return False
        try:
            user, _, password = base64.b64decode(encoded, validate=True).decode().partition(":")
        except ValueError:
            return False
        return user == "x-access-token" and self.token_allows(password, owner, repo, now, contents=contents)

    def sign(
        self,
        *,
        iat: float | None = None,
        exp: float | None = None,
        iss: str | int | None = None,
        key: rsa.RSAPrivateKey | None = None,
    ) -> str:
        """A JWT as an app would sign it (by default a good one), for tests of the fake itself."""
        now = int(self.clock())
        claims = {
            "iat": now - 60 if iat is None else iat,
            "exp": now + 540 if exp is None else exp,
            "iss": str(self.app_id) if iss is None else iss,
        }
        return jwt.encode(claims, key or self.private_key, algorithm="RS256")

    # --- the checks GitHub makes ---------------------------------------------------------------

    def _verify(self, authorization: str) -> dict[str, Any] | str:
        """The JWT's claims, or GitHub's message for refusing it."""
        scheme, _, token = authorization.partition(" ")
        if scheme != "Bearer" or not token:
            return BAD_JWT
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                self.private_key.public_key(),
                algorithms=["RS256"],
                options={"verify_exp": False, "verify_iat": False, "verify_nbf": False, "verify_aud": False},
            )
        except jwt.InvalidTokenError:
            return BAD_JWT
        iat, exp, iss = claims.get("iat"), claims.get("exp"), claims.get("iss")
        if str(iss) not in (str(self.app_id), self.client_id):
            return BAD_JWT
        if not isinstance(iat, int) or isinstance(iat, bool) or iat > self.clock() + 60:
            return IAT_AHEAD
        if not isinstance(exp, int) or isinstance(exp, bool) or exp <= self.clock():
            return EXPIRED
        if exp - iat > 600 or exp > self.clock() + 600:
            return EXP_TOO_FAR
        return claims

    def _reach(self, owner: str, name: str) -> FakeInstallation | None:
        for installation in self.installations.values():
            if installation.owner.lower() == owner.lower() and installation.reaches(name):
                return installation
        return None

    def _installation_json(self, installation: FakeInstallation) -> dict[str, Any]:
        kind = "Organization" if installation.organization else "User"
        return {
            "id": installation.id,
            "account": {"login": installation.owner, "id": 9000 + installation.id, "type": kind},
            "repository_selection": "all" if installation.repositories is None else "selected",
            "access_tokens_url": f"{self.base_url}/app/installations/{installation.id}/access_tokens",
            "repositories_url": f"{self.base_url}/installation/repositories",
            "html_url": installation.settings_url(self.server_url),
            "app_id": self.app_id,
            "app_slug": self.slug,
            "target_id": 9000 + installation.id,
            "target_type": kind,
            "permissions": dict(installation.permissions),
            "events": [],
            "created_at": "2024-01-01T00:00:00Z",
            "updated_at": "2024-01-01T00:00:00Z",
            "single_file_name": None,
            "suspended_at": None,
        }

    def _mint(self, installation: FakeInstallation, body: Any) -> tuple[int, dict[str, Any]]:
        if not isinstance(body, dict):
            return 400, _error(400, "Problems parsing JSON")
        names = body.get("repositories")
        if "repository_ids" in body:
            return 422, _error(422, "This fake knows repositories by name only: send repositories, not repository_ids.")
        if names is not None:
            if not isinstance(names, list) or not all(isinstance(n, str) for n in names) or not names:
                return 422, _error(422, "Invalid request.\n\nFor 'properties/repositories', is not an array of names.")
            if not all(installation.reaches(n) for n in names):
                return 422, _error(422, REPO_NOT_REACHABLE)
        asked = body.get("permissions")
        if asked is None:
            asked = dict(installation.permissions)
        if not isinstance(asked, dict) or not all(isinstance(v, str) for v in asked.values()):
            return 422, _error(422, "Invalid request.\n\nFor 'properties/permissions', is not an object.")
        for name, level in asked.items():
            if level not in _LEVELS or _LEVELS[level] > _LEVELS.get(installation.permissions.get(name, ""), 0):
                return 422, _error(422, PERMISSIONS_NOT_GRANTED)
        expires_at = int(self.clock() + self.token_lifetime_s)
        token = "ghs_" + "".join(secrets.choice(_TOKEN_CHARS) for _ in range(36))
        repositories = None if names is None else tuple(names)
        self.tokens.append(MintedToken(token, installation.id, installation.owner, repositories, dict(asked), expires_at))
        answer: dict[str, Any] = {
            "token": token,
            "expires_at": github_time(expires_at),
            "permissions": dict(asked),
            "repository_selection": "selected" if names is not None or installation.repositories is not None else "all",
        }
        if names is not None:
            answer["repositories"] = [
                {"id": 7000 + i, "name": n, "full_name": f"{installation.owner}/{n}", "private": True}
                for i, n in enumerate(names)
            ]
        return 201, answer

    # --- the HTTP side -------------------------------------------------------------------------

    def _build_app(self) -> QuartTrio:
        app = QuartTrio("fake-github")
        fake = self

        async def answer(
            handler: Callable[[dict[str, Any]], Any],
        ) -> Response:
            """The common front of every app request: injected failures, User-Agent, JWT."""
            headers = {k.lower(): v for k, v in request.headers.items() if k.lower() != "authorization"}
            claims: dict[str, Any] | None = None
            if fake.stall:
                await trio.sleep_forever()
            failure = None if fake.down else fake._injected_failure(request.path)
            if fake.down:
                page = "<html><body>Unicorn! GitHub is down.</body></html>"
                status, response = 503, Response(page, 503, content_type="text/html")
            elif failure is not None:
                status, response = failure[0], _json(failure[0], _error(*failure))
            elif not request.headers.get("User-Agent"):
                status, response = 403, _json(403, _error(403, NO_USER_AGENT))
            else:
                verified = fake._verify(request.headers.get("Authorization", ""))
                if isinstance(verified, str):
                    fake.refusals.append(verified)
                    status, response = 401, _json(401, _error(401, verified))
                else:
                    claims = verified
                    status, body = await handler(verified)
                    response = _json(status, body)
            fake.requests.append(LoggedRequest(request.method, request.path, status, claims, headers))
            return response

        @app.get("/app")
        async def get_app() -> Response:
            async def handle(_: dict[str, Any]) -> tuple[int, dict[str, Any]]:
                return 200, {
                    "id": fake.app_id,
                    "slug": fake.slug,
                    "client_id": fake.client_id,
                    "name": "Open Dispatch (test)",
                    "owner": {"login": "open-dispatch", "type": "Organization"},
                    "html_url": fake.html_url,
                    "permissions": {"contents": "write", "pull_requests": "write", "metadata": "read"},
                    "events": [],
                    "installations_count": len(fake.installations),
                }

            return await answer(handle)

        @app.get("/repos/<owner>/<repo>/installation")
        async def repo_installation(owner: str, repo: str) -> Response:
            async def handle(_: dict[str, Any]) -> tuple[int, dict[str, Any]]:
                found = fake._reach(owner, repo)
                if found is None:
                    return 404, _error(404, "Not Found")
                return 200, fake._installation_json(found)

            return await answer(handle)

        @app.post("/app/installations/<int:installation_id>/access_tokens")
        async def access_tokens(installation_id: int) -> Response:
            body = await request.get_json(force=True, silent=True)

            async def handle(_: dict[str, Any]) -> tuple[int, dict[str, Any]]:
                installation = fake.installations.get(installation_id)
                if installation is None:
                    return 404, _error(404, "Not Found")
                return fake._mint(installation, body)

            return await answer(handle)

        return app


def _error(status: int, message: str) -> dict[str, Any]:
    return {"message": message, "documentation_url": DOCS, "status": str(status)}


def _json(status: int, body: dict[str, Any]) -> Response:
    return Response(json.dumps(body), status, content_type="application/json; charset=utf-8")


@asynccontextmanager
async def open_fake_github(**kwargs: Any) -> AsyncIterator[FakeGitHub]:
    """Serve a `FakeGitHub` on 127.0.0.1 (port 0); its `base_url` is the API URL to use."""
    fake = FakeGitHub(**kwargs)
    async with trio.open_nursery() as nursery:
        fake.base_url = await nursery.start(serve_webhooks, fake.app, "127.0.0.1:0")
        yield fake
        nursery.cancel_scope.cancel()
