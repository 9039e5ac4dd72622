"""How the application talks to people. One adapter per platform implements this."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Protocol, runtime_checkable

import attrs

from ..domain.job import Conversation
from ..domain.messages import ChatMessage, Inbound, MessageRef
from .http import HttpRoute

InboundHandler = Callable[[Inbound], Awaitable[None]]


@attrs.frozen
class ChatLimits:
    """What a platform allows the live output message: how much text one message holds
    (a page), and how often it may be edited. Declared by each adapter (`DeclaresLimits`)."""

    page_chars: int = 3000
    edit_interval_s: float = 1.0


@runtime_checkable
class DeclaresLimits(Protocol):
    limits: ChatLimits


class ChatPort(Protocol):
    async def send(
        self, where: Conversation, message: ChatMessage, *, reply_to: MessageRef | None = None
    ) -> MessageRef:
        """Post a new message; `reply_to` asks for it in that message's thread where threads exist."""
        ...

    async def edit(self, ref: MessageRef, message: ChatMessage) -> None:
        """Replace a message we posted. Adapters pace edits to their platform's rate limits."""
        ...

    async def listen(self, handler: InboundHandler, *, task_status: Any = ...) -> None:
        """Receive commands until cancelled, calling `handler` for each; report readiness first."""
        ...


@runtime_checkable
class ChatWithRoutes(ChatPort, Protocol):
    """A chat adapter that also receives HTTP on our server (Slack HTTP mode, Teams, Discord)."""

    def http_routes(self) -> list[HttpRoute]: ...
