"""Sessions (the `SessionStore` port): a row per session, the value as JSON."""

from __future__ import annotations

import sqlite3

from ...domain.session import Session, SessionState, UnknownSession
from .codec import session_from_json, session_to_json
from .writer import SqliteWriter


class SessionRepository(SqliteWriter):
    """The `SessionStore` port; an unknown id raises the domain's `UnknownSession`."""

    async def add_session(self, session: Session) -> None:
        def insert(db: sqlite3.Connection) -> None:
            try:
                db.execute(
                    "INSERT INTO sessions (id, created_at, state, body) VALUES (?, ?, ?, ?)",
                    (session.id, session.created_at, session.state.value, session_to_json(session)),
                )
            except sqlite3.IntegrityError:
                raise ValueError(f"session {session.id} is already stored") from None

        await self._write(insert)

    async def save_session(self, session: Session) -> None:
        def update(db: sqlite3.Connection) -> int:
            cursor = db.execute(
                "UPDATE sessions SET state = ?, body = ? WHERE id = ?",
                (session.state.value, session_to_json(session), session.id),
            )
            return cursor.rowcount

        if await self._write(update) == 0:
            raise UnknownSession(session.id)

    async def get_session(self, session_id: str) -> Session:
        def select(db: sqlite3.Connection) -> str | None:
            rows = db.execute("SELECT body FROM sessions WHERE id = ?", (session_id,)).fetchall()
            return str(rows[0][0]) if rows else None

        body = await self._read(select)
        if body is None:
            raise UnknownSession(session_id)
        return session_from_json(body)

    async def live_sessions(self) -> list[Session]:
        def select(db: sqlite3.Connection) -> list[str]:
            rows = db.execute(
                "SELECT body FROM sessions WHERE state != ? ORDER BY created_at, rowid",
                (SessionState.STOPPED.value,),
            )
            return [str(row[0]) for row in rows]

        return [session_from_json(body) for body in await self._run(select)]
