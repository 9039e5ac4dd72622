"""Durable sessions, so a restarted dispatcher still knows them (routing, /od-list, sprites).

The job stores implement this too (one database, one file): `MemoryJobStore`,
`SqliteJobStore` and `PostgresJobStore`. The method names do not overlap with `JobStore`'s.
An unknown id raises the domain's `UnknownSession` (`domain/session.py`), never `KeyError`.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from ..domain.session import Session


@runtime_checkable
class SessionStore(Protocol):
    async def add_session(self, session: Session) -> None:
        """Store a new session; adding an id twice is a programming error (ValueError)."""
        ...

    async def save_session(self, session: Session) -> None:
        """Replace the stored session with this newer value (`UnknownSession` if it was never added)."""
        ...

    async def get_session(self, session_id: str) -> Session:
        """The session by id (`UnknownSession` when unknown)."""
        ...

    async def live_sessions(self) -> list[Session]:
        """Every session not stopped, oldest first."""
        ...
