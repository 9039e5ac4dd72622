"""How the application talks to people. One adapter per platform implements this."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Protocol, runtime_checkable

from ..domain.job import Conversation
from ..domain.messages import ChatMessage, Inbound, MessageRef
from .http import HttpRoute

InboundHandler = Callable[[Inbound], Awaitable[None]]


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
