"""Tool calls waiting for a person (the `ApprovalStore` port): a row per request."""

from __future__ import annotations

import sqlite3

from ...domain.approvals import ApprovalRequest, ApprovalState
from .codec import converter
from .writer import SqliteWriter


class ApprovalRepository(SqliteWriter):
    """The `ApprovalStore` port: a row per request, upserted as it is decided."""

    async def save_approval(self, request: ApprovalRequest) -> None:
        body = converter.dumps(request)

        def upsert(db: sqlite3.Connection) -> None:
            db.execute(
                "INSERT INTO approvals (id, job_id, asked_at, state, body) VALUES (?, ?, ?, ?, ?)"
                " ON CONFLICT (id) DO UPDATE SET state = excluded.state, body = excluded.body",
                (request.id, request.job_id, request.asked_at, request.state.value, body),
            )

        await self._write(upsert)

    async def approval(self, request_id: str) -> ApprovalRequest | None:
        def select(db: sqlite3.Connection) -> str | None:
            rows = db.execute("SELECT body FROM approvals WHERE id = ?", (request_id,)).fetchall()
            return str(rows[0][0]) if rows else None

        body = await self._read(select)
        return None if body is None else converter.loads(body, ApprovalRequest)

    async def pending_approvals(self) -> list[ApprovalRequest]:
        def select(db: sqlite3.Connection) -> list[str]:
            rows = db.execute(
                "SELECT body FROM approvals WHERE state = ? ORDER BY asked_at", (ApprovalState.PENDING.value,)
            )
            return [str(row[0]) for row in rows]

        return [converter.loads(body, ApprovalRequest) for body in await self._read(select)]

    async def approvals_of(self, job_id: str) -> list[ApprovalRequest]:
        def select(db: sqlite3.Connection) -> list[str]:
            rows = db.execute("SELECT body FROM approvals WHERE job_id = ? ORDER BY asked_at", (job_id,))
            return [str(row[0]) for row in rows]

        return [converter.loads(body, ApprovalRequest) for body in await self._read(select)]
