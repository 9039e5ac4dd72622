"""The one REST client of the Discord adapter: httpx under Trio, rate limits honoured.

Every outbound call (messages, edits, threads, interaction responses, command registration)
goes through `DiscordRest.request`, so the whole outbound side runs against a loopback fake
by changing `base_url`. Discord publishes its limits in headers rather than documents, so we
follow them: `X-RateLimit-Remaining: 0` waits `X-RateLimit-Reset-After` before the next call
on that route, and a 429 waits its `retry_after` (the whole client waits when it is global)
and retries the same request, so a rate limit delays a message but never loses it.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Mapping, Sequence
from typing import Any

import attrs
import httpx
import trio

from ...support.retry_after import json_retry_after_s, retry_after_s

log = logging.getLogger(__name__)

USER_AGENT = "DiscordBot (https://github.com/open-dispatch/open-dispatch, 1.0)"
MAX_ATTEMPTS = 8
SERVER_ERROR_BACKOFF_S = 0.5
IDEMPOTENT = frozenset({"GET", "PUT", "PATCH", "DELETE"})

# Interaction tokens travel in URL paths; they are short-lived secrets, so they never reach logs.
_TOKEN_IN_PATH = re.compile(r"(/(?:webhooks|interactions)/[0-9]+/)[^/?\s]+")


def redact_path(text: str) -> str:
    """`text` with interaction/webhook tokens in URLs replaced by ***."""
    return _TOKEN_IN_PATH.sub(r"\1***", text)


class _TokenRedactingFilter(logging.Filter):
    """httpx logs every request URL at INFO; interaction tokens must not appear there."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.args:
            record.args = tuple(redact_path(str(a)) if "/" in str(a) else a for a in record.args)
        record.msg = redact_path(str(record.msg))
        return True


_FILTER = _TokenRedactingFilter()


def install_log_redaction() -> None:
    """Idempotent: make httpx's request log safe for URLs that carry interaction tokens."""
    httpx_log = logging.getLogger("httpx")
    if _FILTER not in httpx_log.filters:
        httpx_log.addFilter(_FILTER)


class DiscordApiError(Exception):
    """Discord refused a call; `code` is Discord's JSON error code (10008, 50035, ...)."""

    def __init__(self, status: int, code: int | None, message: str, route: str) -> None:
        super().__init__(f"Discord answered {status} (code {code}) to {route}: {message}")
        self.status = status
        self.code = code
        self.discord_message = message


@attrs.define
class _Bucket:
    remaining: int | None = None
    reset_at: float = 0.0  # trio clock


@attrs.frozen
class RestStatistics:
    requests: int
    rate_limited: int


def route_key(method: str, path: str) -> str:
    """The rate-limit key of a call: the route with its top-level resource id kept.

    Discord buckets by route and "major parameter" (channel, guild, webhook + token); ids
    after that are replaced so that edits of different messages share their channel's key.
    """
    parts = path.split("?")[0].strip("/").split("/")
    keep = 3 if parts and parts[0] in ("webhooks", "interactions") else 2
    tail = [":id" if part.isdigit() else part for part in parts[keep:]]
    return f"{method} /" + "/".join(parts[:keep] + tail)


class DiscordRest:
    """Calls Discord's HTTP API; the bot token is added unless `auth=False`.

    The client is long-lived and owned by the caller (`open_discord_chat`), as httpx advises.
    """

    def __init__(self, http: httpx.AsyncClient, bot_token: str, *, max_attempts: int = MAX_ATTEMPTS) -> None:
        self._http = http
        self._auth = {"Authorization": f"Bot {bot_token}"}
        self._max_attempts = max_attempts
        self._buckets: dict[str, _Bucket] = {}
        self._global_until = 0.0
        self._requests = 0
        self._rate_limited = 0
        install_log_redaction()

    def statistics(self) -> RestStatistics:
        return RestStatistics(requests=self._requests, rate_limited=self._rate_limited)

    async def request(
        self,
        method: str,
        path: str,
        *,
        json_body: Any = None,
        params: Mapping[str, str] | None = None,
        auth: bool = True,
        files: Sequence[tuple[str, bytes]] = (),
    ) -> Any:
        """Make one call, waiting out rate limits; returns the decoded JSON (None for 204).

        With `files`, the body goes as Discord's multipart form: the JSON as `payload_json`
        and each file as `files[n]`, named by `attachments[n]` of the JSON.
        """
        key = route_key(method, path)
        bucket = self._buckets.setdefault(key, _Bucket())
        for attempt in range(1, self._max_attempts + 1):
            await self._wait_for_room(bucket)
            self._requests += 1
            if files:
                form = {"payload_json": json.dumps(json_body)}
                parts = [(f"files[{n}]", (name, content, "application/octet-stream")) for n, (name, content) in enumerate(files)]
                response = await self._http.request(
                    method, path, data=form, files=parts, params=params, headers=self._auth if auth else None
                )
            else:
                response = await self._http.request(
                    method,
                    path,
                    json=json_body,
                    params=params,
                    headers=self._auth if auth else None,
                )
            self._learn(bucket, response.headers)
            if response.status_code == 429:
                self._rate_limited += 1
                self._note_rate_limit(bucket, response)
                continue
            if response.status_code >= 500 and method in IDEMPOTENT and attempt < self._max_attempts:
                log.warning("Discord answered %s to %s; retrying", response.status_code, redact_path(key))
                await trio.sleep(SERVER_ERROR_BACKOFF_S * attempt)
                continue
            if response.status_code >= 400:
                raise _error(response, redact_path(key))
            if response.status_code == 204 or not response.content:
                return None
            return response.json()
        raise DiscordApiError(429, None, f"still rate limited after {self._max_attempts} attempts", redact_path(key))

    async def _wait_for_room(self, bucket: _Bucket) -> None:
        now = trio.current_time()
        wait_until = self._global_until
        if bucket.remaining is not None and bucket.remaining <= 0:
            wait_until = max(wait_until, bucket.reset_at)
        if wait_until > now:
            await trio.sleep_until(wait_until)
        if bucket.remaining is not None:
            # Count this call before its answer arrives, so concurrent callers share the budget.
            bucket.remaining -= 1

    def _learn(self, bucket: _Bucket, headers: httpx.Headers) -> None:
        remaining = headers.get("x-ratelimit-remaining")
        reset_after = headers.get("x-ratelimit-reset-after")
        if remaining is None or reset_after is None:
            return
        try:
            bucket.remaining = int(remaining)
            bucket.reset_at = trio.current_time() + float(reset_after)
        except ValueError:
            return

    def _note_rate_limit(self, bucket: _Bucket, response: httpx.Response) -> None:
        retry_after, is_global = _retry_after(response)
        until = trio.current_time() + retry_after
        if is_global:
            self._global_until = max(self._global_until, until)
        else:
            bucket.remaining = 0
            bucket.reset_at = max(bucket.reset_at, until)
        log.info("Discord rate limit (%s): waiting %.2fs", "global" if is_global else "route", retry_after)


def _retry_after(response: httpx.Response) -> tuple[float, bool]:
    """Seconds to wait from the JSON body (precise), else the Retry-After header, else 1 s."""
    is_global = response.headers.get("x-ratelimit-global", "").lower() == "true"
    try:
        body = response.json()
    except ValueError:
        body = None
    seconds = json_retry_after_s(body)
    if seconds is not None:  # only a JSON object carries one
        return seconds, bool(body.get("global", is_global))
    seconds = retry_after_s(response.headers.get("retry-after"))
    return (1.0 if seconds is None else seconds), is_global


def _error(response: httpx.Response, route: str) -> DiscordApiError:
    code: int | None = None
    message = response.reason_phrase
    try:
        body = response.json()
        code = body.get("code")
        message = body.get("message", message)
        if body.get("errors"):
            message += " " + json.dumps(body["errors"])[:300]
    except (ValueError, AttributeError):
        pass
    return DiscordApiError(response.status_code, code, message, route)
