"""Our own bearer token for the Bot Connector: OAuth client credentials, cached until expiry.

One token serves every conversation, so it is fetched once and refreshed a little before it
expires (a few minutes, or half its life when it is short-lived); concurrent senders share
one fetch. The secret is only ever sent to the configured token endpoint.
"""

from __future__ import annotations

import logging

import httpx
import trio

from .settings import TeamsSettings

log = logging.getLogger(__name__)

REFRESH_MARGIN_S = 300.0


class TeamsAuthError(Exception):
    """The token endpoint refused our credentials; the message says what to check."""


class ConnectorCredentials:
    def __init__(self, http: httpx.AsyncClient, settings: TeamsSettings) -> None:
        self._http = http
        self._settings = settings
        self._token: str | None = None
        self._refresh_at = 0.0
        self._lock = trio.Lock()

    async def token(self) -> str:
        async with self._lock:
            if self._token is None or trio.current_time() >= self._refresh_at:
                await self._fetch()
            assert self._token is not None
            return self._token

    def invalidate(self, token: str) -> None:
        """Forget `token` (the Connector answered 401 to it) so the next call fetches anew."""
        if self._token == token:
            self._token = None

    async def _fetch(self) -> None:
        settings = self._settings
        response = await self._http.post(
            settings.token_url,
            data={
                "grant_type": "client_credentials",
                "client_id": settings.app_id,
                "client_secret": settings.app_password,
                "scope": settings.scope,
            },
        )
        if response.status_code != 200:
            raise TeamsAuthError(
                f"the token endpoint refused our credentials (HTTP {response.status_code}"
                f"{_oauth_error(response)}): check TEAMS_APP_ID, TEAMS_APP_PASSWORD and TEAMS_TENANT_ID"
            )
        body = response.json()
        expires_in = float(body.get("expires_in", 3600))
        self._token = str(body["access_token"])
        self._refresh_at = trio.current_time() + expires_in - min(REFRESH_MARGIN_S, expires_in / 2)
        log.info("Teams: fetched a Bot Connector token valid for %ss", int(expires_in))


def _oauth_error(response: httpx.Response) -> str:
    """The OAuth error code (`invalid_client`), never the description's echo of our input."""
    try:
        code = response.json().get("error")
    except ValueError:
        return ""
    return f", {code}" if isinstance(code, str) else ""
