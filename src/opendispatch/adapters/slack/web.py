"""The few Slack Web API calls we make, over one long-lived httpx client, paced per method.

Slack answers logical errors with HTTP 200 and `{"ok": false, "error": …}`, and rate limits
with HTTP 429 and `Retry-After`. A 429 is never an error to the caller: the method is held
back for `Retry-After` seconds (for every caller, since Slack counts per method and
workspace) and the same call is made again, so nothing is lost and order is kept.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from typing import Any

import attrs
import httpx
import trio

from ...support import retry_after
from .settings import Pacing

log = logging.getLogger(__name__)

DEFAULT_RETRY_AFTER_S = 1.0


class SlackApiError(Exception):
    """Slack refused a call (`ok: false`); `error` is Slack's code, e.g. `not_in_channel`."""

    def __init__(self, method: str, error: str) -> None:
        super().__init__(f"Slack {method} failed: {error}")
        self.method = method
        self.error = error


def retry_after_s(headers: Mapping[str, str]) -> float:
    """Seconds from a `Retry-After` header (Slack sends whole seconds); 1 s when absent or odd."""
    seconds = retry_after.retry_after_s(headers.get("retry-after"))
    return DEFAULT_RETRY_AFTER_S if seconds is None else seconds


@attrs.define
class _Bucket:
    capacity: float
    per_s: float
    tokens: float
    updated_at: float

    def wait_s(self, now: float) -> float:
        self.tokens = min(self.capacity, self.tokens + (now - self.updated_at) * self.per_s)
        self.updated_at = now
        return 0.0 if self.tokens >= 1 else (1 - self.tokens) / self.per_s


@attrs.define
class MethodLimiter:
    """A token bucket per method plus the `Retry-After` holds Slack asked for."""

    pacing: Pacing
    _buckets: dict[str, _Bucket] = attrs.field(factory=dict, init=False)
    _held_until: dict[str, float] = attrs.field(factory=dict, init=False)

    async def acquire(self, method: str) -> None:
        while True:
            now = trio.current_time()
            wait = max(self._held_until.get(method, 0.0) - now, self._bucket_wait(method, now))
            if wait <= 0:
                bucket = self._buckets.get(method)
                if bucket is not None:
                    bucket.tokens -= 1
                return
            await trio.sleep(wait)

    def hold(self, method: str, seconds: float) -> None:
        until = trio.current_time() + seconds
        self._held_until[method] = max(self._held_until.get(method, 0.0), until)

    def _bucket_wait(self, method: str, now: float) -> float:
        per_minute = self.pacing.per_minute.get(method)
        if per_minute is None:
            return 0.0
        bucket = self._buckets.get(method)
        if bucket is None:
            bucket = self._buckets[method] = _Bucket(
                capacity=float(self.pacing.burst), per_s=per_minute / 60.0, tokens=float(self.pacing.burst), updated_at=now
            )
        return bucket.wait_s(now)


class SlackWeb:
    """`call(method, args)` → Slack's JSON answer, or `SlackApiError`. Tokens stay in headers."""

    def __init__(self, http: httpx.AsyncClient, *, api_url: str, bot_token: str, pacing: Pacing) -> None:
        self._http = http
        self._api_url = api_url if api_url.endswith("/") else api_url + "/"
        self._bot_token = bot_token
        self._pacing = pacing
        self.limiter = MethodLimiter(pacing)

    async def call(
        self, method: str, args: Mapping[str, Any] | None = None, *, token: str | None = None, form: bool = False
    ) -> dict[str, Any]:
        headers = {"Authorization": f"Bearer {token or self._bot_token}"}
        transient_failures = 0
        while True:
            await self.limiter.acquire(method)
            try:
                if form:
                    response = await self._http.post(self._api_url + method, data=dict(args or {}), headers=headers)
                else:
                    response = await self._http.post(
                        self._api_url + method,
                        content=json.dumps(dict(args or {})),
                        headers={**headers, "Content-Type": "application/json; charset=utf-8"},
                    )
            except httpx.TransportError as exc:
                transient_failures += 1
                if transient_failures > self._pacing.transient_retries:
                    raise SlackApiError(method, f"unreachable ({type(exc).__name__})") from None
                await trio.sleep(self._pacing.transient_backoff_s * transient_failures)
                continue
            if response.status_code == 429:
                seconds = retry_after_s(response.headers)
                log.info("Slack rate-limited %s: waiting %.1fs", method, seconds)
                self.limiter.hold(method, seconds)
                continue
            if response.status_code >= 500:
                transient_failures += 1
                if transient_failures > self._pacing.transient_retries:
                    raise SlackApiError(method, f"http_{response.status_code}")
                await trio.sleep(self._pacing.transient_backoff_s * transient_failures)
                continue
            return self._answer(method, response)

    async def post_url(self, url: str, body: Mapping[str, Any]) -> None:
        """POST JSON to a `response_url` (no token: the URL itself is the credential)."""
        response = await self._http.post(url, content=json.dumps(dict(body)), headers={"Content-Type": "application/json"})
        if response.status_code >= 300:
            raise SlackApiError("response_url", f"http_{response.status_code}")

    async def upload_bytes(self, url: str, filename: str, content: bytes) -> None:
        """Send a file's bytes to the pre-signed URL from `files.getUploadURLExternal` (no token)."""
        response = await self._http.post(url, files={"file": (filename, content, "text/plain")})
        if response.status_code >= 300:
            raise SlackApiError("file upload", f"http_{response.status_code}")

    @staticmethod
    def _answer(method: str, response: httpx.Response) -> dict[str, Any]:
        try:
            data = response.json()
        except ValueError:
            raise SlackApiError(method, f"http_{response.status_code}: not JSON") from None
        if not isinstance(data, dict):
            raise SlackApiError(method, "unexpected answer")
        if not data.get("ok"):
            raise SlackApiError(method, str(data.get("error") or f"http_{response.status_code}"))
        return data
