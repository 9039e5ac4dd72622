"""Counting chat platform API calls from the HTTP responses the chat adapters receive.

Every chat adapter talks HTTP through its own httpx client; an httpx response hook sees each
call (including each retry), so one small function counts them all without the adapters
knowing about metrics.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable

import httpx

from ...ports.metrics import Metrics

_ID_LIKE = re.compile(r"^\d+$|[@:]|^[A-Za-z0-9_-]{20,}$")


def call_name(request: httpx.Request) -> str:
    """`chat.update` for Slack's Web API; `PATCH channels/{id}/messages/{id}` for REST paths.

    Ids are replaced so the label set stays small whatever the traffic.
    """
    path = request.url.path
    if path.startswith("/api/") and path.count("/") == 2:
        return path.rsplit("/", 1)[-1]
    parts = ["{id}" if _ID_LIKE.search(part) else part for part in path.strip("/").split("/")]
    return f"{request.method} {'/'.join(parts)}"


def outcome_of(status: int) -> str:
    """The adapters retry 429 and 5xx, so those are counted as retries."""
    if status == 429 or status >= 500:
        return "retry"
    return "ok" if status < 400 else "error"


def count_chat_calls(metrics: Metrics, platform: str) -> Callable[[httpx.Response], Awaitable[None]]:
    async def on_response(response: httpx.Response) -> None:
        metrics.chat_call(platform, call_name(response.request), outcome_of(response.status_code))

    return on_response
