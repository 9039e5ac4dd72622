"""The sessions this process keeps, by id: the one owner of each session's live state.

The three parts of sessions share it (app/sessions.py lists them): the commands add entries
and queue messages, the supervisor ends entries and moves sessions through their states, the
sidecars' long-poll API reads them. Whoever changes an entry's `session` saves it here
(`save`, serialised per session) and wakes whoever waits on it (`notify`).

Loaded from the store once (`load`), before the webhook listener answers, so a persistent
sprite that reconnects after a restart finds its session at once.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, KeysView

import attrs
import trio

from ..domain.job import Conversation
from ..domain.messages import MessageRef
from ..domain.session import Session, UnknownSession
from ..ports.session_store import SessionStore


@attrs.define(eq=False)
class LiveSession:
    """What this process keeps for a session besides the stored value."""

    session: Session
    scope: trio.CancelScope = attrs.Factory(trio.CancelScope)
    changed: trio.Event = attrs.Factory(trio.Event)
    save_lock: trio.Lock = attrs.Factory(trio.Lock)
    assignment: tuple[str, str] | None = None  # (job id, job token) offered to the persistent sprite
    refs: dict[str, MessageRef | None] = attrs.Factory(dict)  # each message's accepted reply
    stopping: bool = False
    cannot_suspend: bool = False


class LiveSessions:
    def __init__(self, store: SessionStore) -> None:
        self.store = store
        self._live: dict[str, LiveSession] = {}
        #: Ids of persistent sessions, kept after they end: a message still finishing on an
        #: ended session's sprite gives it back (the session's end destroys it), never destroys it.
        self._persistent: set[str] = set()
        self._any_change = trio.Event()

    async def load(self) -> None:
        """Take the stored live sessions (after a restart)."""
        for session in await self.store.live_sessions():
            self.add(session)

    def add(self, session: Session) -> LiveSession:
        live = LiveSession(session)
        self._live[session.id] = live
        if session.persistent:
            self._persistent.add(session.id)
        return live

    def end(self, session_id: str) -> None:
        self._live.pop(session_id, None)

    def get(self, session_id: str) -> LiveSession | None:
        return self._live.get(session_id)

    def ids(self) -> KeysView[str]:
        return self._live.keys()

    def __iter__(self) -> Iterator[LiveSession]:
        return iter(list(self._live.values()))

    def is_persistent(self, session_id: str | None) -> bool:
        return session_id is not None and session_id in self._persistent

    # --- lookups --------------------------------------------------------------------------

    def live_sessions(self) -> list[Session]:
        return [live.session for live in self._live.values() if live.session.is_live]

    def by_name(self, name: str) -> Session | None:
        """The live session called `name`, if any."""
        return next((s for s in self.live_sessions() if s.name == name), None)

    def named(self, name: str) -> LiveSession:
        for live in self._live.values():
            if live.session.name == name and live.session.is_live:
                return live
        raise UnknownSession(name)

    def for_conversation(self, conversation: Conversation) -> LiveSession | None:
        for live in self._live.values():
            if live.session.is_live and live.session.routes(conversation):
                return live
        return None

    def waiting_jobs(self) -> set[str]:
        """Queued messages: not running yet, so no reaper may time them out."""
        return {job_id for live in self._live.values() for job_id in live.session.queue}

    # --- changes --------------------------------------------------------------------------

    def notify(self, live: LiveSession) -> None:
        """Wake whoever waits on this session (its supervisor, its sprite's long poll) or on any."""
        live.changed.set()
        live.changed = trio.Event()
        self._any_change.set()
        self._any_change = trio.Event()

    async def save(self, live: LiveSession) -> None:
        """Write the newest value; saves are serialised so a slower one never overwrites a newer one."""
        async with live.save_lock:
            try:
                await self.store.save_session(live.session)
            except UnknownSession:
                await self.store.add_session(live.session)

    async def wait_until(self, condition: Callable[[], bool]) -> None:
        """Return once `condition()` holds; re-checked whenever any session changes (tests, demo)."""
        while not condition():
            await self._any_change.wait()

    async def wait_idle(self) -> None:
        """Return once no session has a message running or waiting (the demo waits on this)."""
        while any(live.session.waiting for live in self._live.values() if live.session.is_live):
            await self._any_change.wait()
