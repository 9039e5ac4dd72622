"""A GitHub App mints each job a token for its one repository (issue #24).

Two requests per token, both signed with a short JWT of the app's own: `GET
/repos/{owner}/{repo}/installation` finds the installation that covers the repository (cached:
it changes only when someone reinstalls the app), and `POST
/app/installations/{id}/access_tokens` with `repositories: [name]` and the configured
permissions narrows the token to that repository, whatever else the installation may reach.

Every refusal becomes a `CredentialsUnavailable` whose message a chat user can act on (install
the app, add the repository, grant a permission, fix a variable, wait for GitHub). None of
them ever holds the JWT, the key or a token: GitHub's own message is quoted only when it is
short, on one line, and free of both.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from datetime import datetime, timezone
from typing import Any
from urllib.parse import urlsplit

import attrs
import httpx
import jwt
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from ...domain.errors import ConfigError
from ...domain.repo_credentials import DEFAULT_PERMISSIONS, CredentialsUnavailable, GitHubRepo, RepoToken

log = logging.getLogger(__name__)

DEFAULT_API_URL = "https://api.github.com"
API_VERSION = "2022-11-28"
USER_AGENT = "open-dispatch"
#: GitHub's advice: date `iat` back a minute against clock drift; `exp` at most ten minutes
#: after it, so `exp` is 9 minutes ahead of our clock and `exp - iat` exactly 600 s.
JWT_BACKDATE_S = 60
JWT_LIFETIME_S = 540
#: GitHub's messages longer than this are left out of ours (they are then rarely helpful).
_QUOTE_LIMIT = 200


def load_app_key(pem: str, variable: str = "GITHUB_APP_PRIVATE_KEY") -> rsa.RSAPrivateKey:
    """The app's private key, or a `ConfigError` that says what is wrong with `variable`.

    Checked when the service starts, so a pasted-wrong key fails there in one sentence
    rather than on the first job with a traceback.
    """
    help_ = (
        "paste the .pem file the GitHub App's settings page generated (Private keys → Generate), "
        "starting with -----BEGIN RSA PRIVATE KEY-----"
    )
    if "-----BEGIN" not in pem:
        raise ConfigError(f"{variable} is not a PEM private key: {help_}.")
    try:
        key = serialization.load_pem_private_key(pem.encode(), password=None)
    except TypeError:
        raise ConfigError(
            f"{variable} is an encrypted private key: GitHub's are not; use the .pem as downloaded."
        ) from None
    except (ValueError, UnsupportedAlgorithm):
        raise ConfigError(f"{variable} could not be read as a PEM private key: {help_}.") from None
    if not isinstance(key, rsa.RSAPrivateKey):
        raise ConfigError(f"{variable} is not an RSA key (GitHub Apps sign with RS256): {help_}.")
    return key


@attrs.frozen
class _Installation:
    id: int
    #: The installation's settings page, where repositories are added; None if not given.
    settings_url: str | None


class GitHubAppTokens:
    """`RepoTokenMinter` for a GitHub App, over the `httpx.AsyncClient` it is given.

    Timeouts are the client's (and the caller's cancel scopes); a timeout or refused
    connection is reported like a 5xx, as something to retry in a minute.
    """

    def __init__(
        self,
        *,
        http: httpx.AsyncClient,
        app_id: str,
        private_key: str,
        permissions: Mapping[str, str] = DEFAULT_PERMISSIONS,
        api_url: str = DEFAULT_API_URL,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self._http = http
        self._app_id = app_id
        self._key = load_app_key(private_key)
        self._permissions = dict(permissions)
        self._api_url = api_url.rstrip("/")
        self._host = urlsplit(self._api_url).netloc or self._api_url
        self._wall_clock = wall_clock
        self._installations: dict[str, _Installation] = {}
        self._app_page: str | None = None

    def __repr__(self) -> str:
        return f"GitHubAppTokens(app_id={self._app_id!r}, api_url={self._api_url!r})"

    async def mint(self, repo: GitHubRepo) -> RepoToken:
        app_jwt = self._jwt()
        installation, cached = await self._installation(repo, app_jwt)
        response = await self._post_token(installation, repo, app_jwt)
        if response.status_code == 404 and cached:
            # The app was uninstalled (or reinstalled, with a new id) since we cached it.
            self._installations.pop(_key(repo), None)
            installation, _ = await self._installation(repo, app_jwt)
            response = await self._post_token(installation, repo, app_jwt)
        if response.status_code == 404:
            self._installations.pop(_key(repo), None)
            raise CredentialsUnavailable(await self._not_installed(repo, app_jwt))
        if response.status_code != 201:
            raise self._refused(response, repo, app_jwt, minting=installation)
        return self._token_of(response, repo)

    # --- the two requests ----------------------------------------------------------------------

    async def _installation(self, repo: GitHubRepo, app_jwt: str) -> tuple[_Installation, bool]:
        """The installation covering `repo`, and whether it came from the cache."""
        known = self._installations.get(_key(repo))
        if known is not None:
            return known, True
        response = await self._request("GET", f"/repos/{repo.owner}/{repo.name}/installation", app_jwt)
        if response.status_code == 404:
            raise CredentialsUnavailable(await self._not_installed(repo, app_jwt))
        if response.status_code != 200:
            raise self._refused(response, repo, app_jwt, minting=None)
        body = _json_object(response, self._host)
        installation_id = body.get("id")
        if not isinstance(installation_id, int) or isinstance(installation_id, bool):
            raise _unreadable(self._host, "no installation id")
        settings_url = body.get("html_url")
        found = _Installation(installation_id, settings_url if isinstance(settings_url, str) else None)
        self._installations[_key(repo)] = found
        return found, False

    async def _post_token(self, installation: _Installation, repo: GitHubRepo, app_jwt: str) -> httpx.Response:
        return await self._request(
            "POST",
            f"/app/installations/{installation.id}/access_tokens",
            app_jwt,
            body={"repositories": [repo.name], "permissions": self._permissions},
        )

    def _token_of(self, response: httpx.Response, repo: GitHubRepo) -> RepoToken:
        body = _json_object(response, self._host)
        token, expires_at = body.get("token"), body.get("expires_at")
        if not isinstance(token, str) or not token:
            raise _unreadable(self._host, "no token")
        if not isinstance(expires_at, str):
            raise _unreadable(self._host, "no expires_at")
        try:
            expiry = datetime.fromisoformat(expires_at)
        except ValueError:
            raise _unreadable(self._host, "expires_at is not an ISO 8601 time") from None
        if expiry.tzinfo is None:
            expiry = expiry.replace(tzinfo=timezone.utc)
        log.info("minted a GitHub App token for %s, expiring %s", repo.full_name, expires_at)
        return RepoToken(token, expiry.timestamp())

    async def _request(
        self, method: str, path: str, app_jwt: str, *, body: Mapping[str, Any] | None = None
    ) -> httpx.Response:
        headers = {
            "Accept": "application/vnd.github+json",
            "X-GitHub-Api-Version": API_VERSION,
            "User-Agent": USER_AGENT,
            "Authorization": f"Bearer {app_jwt}",
        }
        try:
            response = await self._http.request(method, self._api_url + path, headers=headers, json=body)
        except httpx.TimeoutException as exc:
            raise _unavailable(f"no answer from {self._host} in time") from exc
        except httpx.ConnectError as exc:
            raise _unavailable(f"could not connect to {self._host}") from exc
        except httpx.TransportError as exc:
            raise _unavailable(f"the connection to {self._host} failed: {type(exc).__name__}") from exc
        if response.status_code >= 500:
            raise _unavailable(f"HTTP {response.status_code} from {self._host}")
        return response

    # --- what to tell the user -----------------------------------------------------------------

    async def _not_installed(self, repo: GitHubRepo, app_jwt: str) -> str:
        where = f"The GitHub App is not installed on {repo.full_name} (or there is no such repository)"
        page = await self._app_page_url(app_jwt)
        if page is None:
            return f"{where}: install the app on it from its settings page (Install App)."
        return f"{where}: install it at {page}/installations/new and give it access to {repo.name}."

    async def _app_page_url(self, app_jwt: str) -> str | None:
        """The app's public page (`GET /app` → html_url), once; None when GitHub won't say."""
        if self._app_page is None:
            try:
                response = await self._request("GET", "/app", app_jwt)
                page = _json_object(response, self._host).get("html_url") if response.status_code == 200 else None
            except CredentialsUnavailable:
                page = None
            if isinstance(page, str) and page.startswith(("https://", "http://")):
                self._app_page = page.rstrip("/")
        return self._app_page

    def _refused(
        self, response: httpx.Response, repo: GitHubRepo, app_jwt: str, *, minting: _Installation | None
    ) -> CredentialsUnavailable:
        """What to say about a refusal; `minting` is the installation when it was the token request.

        GitHub answers 422 both for a repository outside the installation and for permissions
        beyond its grants (its message tells which), and 403 for the latter too.
        """
        status = response.status_code
        said = _github_said(response, secrets=(app_jwt,))
        quoted = f' (GitHub said: "{said}")' if said else ""
        log.warning("GitHub refused a token for %s: HTTP %s %s", repo.full_name, status, said)
        if status == 401:
            return CredentialsUnavailable(
                "GitHub refused the GitHub App's credentials (401): check GITHUB_APP_ID (or "
                f"GITHUB_APP_CLIENT_ID) and GITHUB_APP_PRIVATE_KEY, and this machine's clock{quoted}."
            )
        if status == 429 or (status == 403 and _rate_limited(response, said)):
            return CredentialsUnavailable(
                f"GitHub is rate-limiting the GitHub App{quoted}; try again {_reset_time(response)}."
            )
        if minting is not None and (status == 403 or (status == 422 and "permission" in said.lower())):
            asked = ", ".join(f"{name}:{level}" for name, level in sorted(self._permissions.items()))
            return CredentialsUnavailable(
                f"GitHub refused a token for {repo.full_name} with {asked} (HTTP {status}){quoted}: "
                f"the GitHub App's installation on {repo.owner} was not granted all of these. Grant them "
                "in the app's settings (Permissions) and accept them on the installation, or ask for "
                "fewer with GITHUB_APP_PERMISSIONS."
            )
        if minting is not None and status == 422:
            where = f"at {minting.settings_url}" if minting.settings_url else "in the installation's settings"
            return CredentialsUnavailable(
                f"{repo.full_name} is not among the repositories the GitHub App's installation may "
                f"reach: add it {where}{quoted}."
            )
        return CredentialsUnavailable(
            f"GitHub's API refused a token for {repo.full_name} (HTTP {status}){quoted}; "
            "the dispatcher's log has the details."
        )

    def _jwt(self) -> str:
        now = int(self._wall_clock())
        claims = {"iat": now - JWT_BACKDATE_S, "exp": now + JWT_LIFETIME_S, "iss": self._app_id}
        return jwt.encode(claims, self._key, algorithm="RS256")


def _key(repo: GitHubRepo) -> str:
    """GitHub's names are case-insensitive: `Acme/API` is `acme/api`."""
    return repo.full_name.lower()


def _unavailable(reason: str) -> CredentialsUnavailable:
    return CredentialsUnavailable(f"GitHub's API did not answer ({reason}); try again in a minute.")


def _unreadable(host: str, what: str) -> CredentialsUnavailable:
    return CredentialsUnavailable(f"{host} gave an answer we could not read ({what}); try again in a minute.")


def _json_object(response: httpx.Response, host: str) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        raise _unreadable(host, f"HTTP {response.status_code}, not JSON") from None
    if not isinstance(body, dict):
        raise _unreadable(host, f"HTTP {response.status_code}, not a JSON object")
    return body


def _github_said(response: httpx.Response, *, secrets: tuple[str, ...]) -> str:
    """GitHub's `message`, if it is short, on one line and holds none of `secrets`."""
    try:
        body = response.json()
    except ValueError:
        return ""
    message = body.get("message") if isinstance(body, dict) else None
    if not isinstance(message, str):
        return ""
    message = message.strip()
    if not message or len(message) > _QUOTE_LIMIT or "\n" in message or '"' in message:
        return ""
    if any(secret and secret in message for secret in secrets) or "ghs_" in message:
        return ""
    return message


def _rate_limited(response: httpx.Response, said: str) -> bool:
    return response.headers.get("x-ratelimit-remaining") == "0" or "rate limit" in said.lower()


def _reset_time(response: httpx.Response) -> str:
    reset = response.headers.get("x-ratelimit-reset", "")
    if reset.isdigit():
        return "after " + datetime.fromtimestamp(int(reset), timezone.utc).strftime("%H:%M UTC")
    return "in a few minutes"
