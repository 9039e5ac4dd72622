"""`MemoryChat`: a working in-memory ChatPort for tests, demos and embedding.

It records what the application said (`sent`, `edits`), lets a test wait for a message by
predicate instead of sleeping, and plays a user with `say`. It keeps no platform quirks: every
send succeeds and every edit is applied at once.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import cast

import attrs
import trio

from ...domain.job import Conversation, User
from ...domain.messages import ChatMessage, Inbound, JobCard, MessageRef
from ...domain.render import render_text
from ...ports.chat import ChatLimits, InboundHandler

DEFAULT_USER = User("u1", "alice")
DEFAULT_CONVERSATION = Conversation("memory", "c1")


@attrs.frozen
class SentMessage:
    """One `send` call as the application made it (the first version of that message)."""

    where: Conversation
    message: ChatMessage
    ref: MessageRef
    reply_to: MessageRef | None = None


class MemoryChat:
    """Records sends and edits; `say` delivers a user's line to the running `listen`."""

    #: Live output pages: as the console's, so an embedder's demo pages alike.
    limits = ChatLimits(page_chars=3000, edit_interval_s=0.25)

    def __init__(self) -> None:
        self.sent: list[SentMessage] = []
        self.edits: list[tuple[MessageRef, ChatMessage]] = []
        self._latest: dict[MessageRef, ChatMessage] = {}
        self._history: list[ChatMessage] = []
        self._posted = trio.Event()
        self._handler: InboundHandler | None = None
        self._listening = trio.Event()

    async def send(
        self, where: Conversation, message: ChatMessage, *, reply_to: MessageRef | None = None
    ) -> MessageRef:
        await trio.lowlevel.checkpoint()
        ref = MessageRef(where, f"m{len(self.sent) + 1}")
        self.sent.append(SentMessage(where, message, ref, reply_to))
        self._record(ref, message)
        return ref

    async def edit(self, ref: MessageRef, message: ChatMessage) -> None:
        """Replace a message; editing a ref this chat never returned is a bug, so it raises."""
        await trio.lowlevel.checkpoint()
        if ref not in self._latest:
            raise KeyError(f"no message {ref.id!r} was sent in this chat")
        self.edits.append((ref, message))
        self._record(ref, message)

    async def listen(
        self,
        handler: InboundHandler,
        *,
        task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        """Accept `say` calls until cancelled."""
        self._handler = handler
        self._listening.set()
        task_status.started()
        try:
            await trio.sleep_forever()
        finally:
            self._handler = None
            self._listening = trio.Event()

    async def say(
        self,
        text: str,
        *,
        user: User = DEFAULT_USER,
        conversation: Conversation = DEFAULT_CONVERSATION,
    ) -> None:
        """Play a user typing `text`; waits for `listen` to be running, then runs its handler."""
        while self._handler is None:
            await self._listening.wait()
        await self._handler(Inbound(conversation, user, text))

    def current(self, ref: MessageRef) -> ChatMessage:
        """The latest version of one message (after all its edits)."""
        return self._latest[ref]

    def messages(self) -> list[ChatMessage]:
        """The latest version of every message, in the order they were first posted."""
        return [self._latest[sent.ref] for sent in self.sent]

    def transcript(self) -> str:
        """What a reader of the channel would see now, as plain text, oldest first."""
        return "\n".join(render_text(message) for message in self.messages())

    async def wait_for(self, predicate: Callable[[ChatMessage], bool]) -> ChatMessage:
        """The first message version, already posted or yet to come, that matches `predicate`.

        Every version counts (sends and each edit), so a quick edit cannot hide a match.
        """
        seen = 0
        while True:
            for message in self._history[seen:]:
                if predicate(message):
                    return message
            seen = len(self._history)
            await self._posted.wait()

    async def wait_for_card(self, job_id: str) -> JobCard:
        """The final card of one job."""
        card = await self.wait_for(lambda m: isinstance(m, JobCard) and m.job.id == job_id)
        return cast(JobCard, card)

    def _record(self, ref: MessageRef, message: ChatMessage) -> None:
        self._latest[ref] = message
        self._history.append(message)
        posted, self._posted = self._posted, trio.Event()
        posted.set()
