"""The dispatcher's own secrets (the `SecretStore` port: the job-token key, the instance id)."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable

from .writer import SqliteWriter, transaction


class SecretRepository(SqliteWriter):
    """The `SecretStore` port: a row per named secret."""

    async def secret(self, name: str, create: Callable[[], bytes]) -> bytes:
        """Get-or-create under the lock and in one transaction, so the first value always wins."""

        def get_or_create(db: sqlite3.Connection) -> bytes:
            with transaction(db):
                row = db.execute("SELECT value FROM secrets WHERE name = ?", (name,)).fetchone()
                if row is not None:
                    return bytes(row[0])
                value = create()
                db.execute("INSERT INTO secrets (name, value) VALUES (?, ?)", (name, value))
                return value

        return await self._run(get_or_create)
