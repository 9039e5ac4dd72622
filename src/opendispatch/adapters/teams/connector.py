"""The Bot Connector REST calls we make: post, reply, update — one attempt each.

Retrying, pacing and ordering live in `outbox.py`; this module only knows the URLs, puts our
bearer token on the request (to the activity's own `serviceUrl`, nowhere else) and fetches a
fresh token once if the Connector says 401.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import attrs
import httpx

from .credentials import ConnectorCredentials


@attrs.frozen
class Target:
    """Where activities go: the Connector of that tenant and the full conversation id."""

    service_url: str
    conversation_id: str


class ConnectorError(Exception):
    """The Connector refused a call for good; the message has its error code, never a token.

    `code` and `reason` are the answer's `error.code` and `error.message` when it had them
    (a stream's refusals differ only by the message: see `streaming.classify`)."""

    def __init__(self, status: int, detail: str, *, code: str = "", reason: str = "") -> None:
        super().__init__(f"Bot Connector answered HTTP {status}: {detail}")
        self.status = status
        self.code = code
        self.reason = reason

    @classmethod
    def of(cls, response: httpx.Response) -> ConnectorError:
        code, reason = error_parts(response)
        return cls(response.status_code, error_detail(response), code=code, reason=reason)


def activities_url(target: Target, activity_id: str | None = None) -> str:
    """`{serviceUrl}v3/conversations/{id}/activities[/{activityId}]`, ids percent-encoded
    (they contain `:`, `;`, `@` and `=`)."""
    base = target.service_url.rstrip("/")
    url = f"{base}/v3/conversations/{quote(target.conversation_id, safe='')}/activities"
    return f"{url}/{quote(activity_id, safe='')}" if activity_id else url


def error_parts(response: httpx.Response) -> tuple[str, str]:
    """`error.code` and `error.message` of a Connector answer ("" when missing)."""
    try:
        error = response.json().get("error")
    except (ValueError, AttributeError):
        return "", ""
    if not isinstance(error, dict):
        return "", ""
    code, message = error.get("code"), error.get("message")
    return (code if isinstance(code, str) else ""), (message if isinstance(message, str) else "")


def error_detail(response: httpx.Response) -> str:
    try:
        error = response.json().get("error", {})
    except (ValueError, AttributeError):
        return response.reason_phrase or "error"
    if isinstance(error, dict):
        return f"{error.get('code', 'error')}: {error.get('message', '')}".strip()
    return str(error)


class BotConnector:
    def __init__(self, http: httpx.AsyncClient, credentials: ConnectorCredentials) -> None:
        self._http = http
        self._credentials = credentials

    async def attempt(self, method: str, url: str, activity: dict[str, Any]) -> httpx.Response:
        """One call (two when our cached token was refused); the caller judges the status."""
        token = await self._credentials.token()
        response = await self._request(method, url, activity, token)
        if response.status_code == 401:
            self._credentials.invalidate(token)
            response = await self._request(method, url, activity, await self._credentials.token())
        return response

    async def _request(self, method: str, url: str, activity: dict[str, Any], token: str) -> httpx.Response:
        return await self._http.request(method, url, json=activity, headers={"Authorization": f"Bearer {token}"})
