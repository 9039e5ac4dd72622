"""Microsoft Teams through the Bot Framework: `CHAT_PROVIDER=teams`.

`open_teams_chat(TeamsSettings.from_env(env))` yields a `TeamsChat` whose `http_routes()`
adds `POST /api/messages` to our webhook server; see docs/teams.md.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import httpx
import trio

from .chat import MESSAGES_PATH, TeamsChat
from .settings import TeamsSettings

DRAIN_ON_CLOSE_S = 5.0

__all__ = ["MESSAGES_PATH", "TeamsChat", "TeamsSettings", "open_teams_chat"]


@asynccontextmanager
async def open_teams_chat(
    settings: TeamsSettings,
    *,
    on_response: Callable[[httpx.Response], Awaitable[None]] | None = None,
) -> AsyncIterator[TeamsChat]:
    """The adapter with its HTTP client and the nursery its outgoing queues run in.

    On exit it waits (briefly, shielded) for queued activities such as the last card update
    to go out, then stops.
    """
    async with httpx.AsyncClient(timeout=settings.http_timeout_s, event_hooks={"response": [on_response]} if on_response else None) as http:
        async with trio.open_nursery() as nursery:
            chat = TeamsChat(settings, http, nursery)
            try:
                yield chat
            finally:
                with trio.move_on_after(DRAIN_ON_CLOSE_S, shield=True):
                    await chat.outbox.drained()
                nursery.cancel_scope.cancel()
