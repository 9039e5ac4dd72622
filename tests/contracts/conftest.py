"""The stores every store contract runs against: in memory, SQLite and PostgreSQL.

The PostgreSQL one works in a fresh schema of the session's throwaway server
(tests/postgres_server.py); without a server its cases skip with how to get one (fail under
CI=true). `open_*_store` runs the migrations, as a dispatcher's start-up does.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import trio

from opendispatch.adapters.memory import MemoryJobStore
from opendispatch.adapters.postgres import open_postgres_store
from opendispatch.adapters.sqlite import open_sqlite_store
from opendispatch.ports.job_store import JobStore

STORES = ["memory", "sqlite", "postgres"]
CEILING_S = 10.0


@pytest.fixture(params=STORES)
def store_kind(request: pytest.FixtureRequest) -> str:
    """The store's name; for "postgres", its fresh schema's URL (asked for only then, so the
    memory and SQLite cases never wait for, or skip without, a PostgreSQL server)."""
    if request.param == "postgres":
        url: str = request.getfixturevalue("postgres_url")
        return url
    return str(request.param)


@pytest.fixture
async def store(store_kind: str, tmp_path: Path) -> AsyncIterator[JobStore]:
    with trio.fail_after(CEILING_S):
        if store_kind == "memory":
            yield MemoryJobStore()
        elif store_kind == "sqlite":
            async with open_sqlite_store(tmp_path / "jobs.sqlite3") as sqlite_store:
                yield sqlite_store
        else:
            async with open_postgres_store(store_kind) as postgres_store:
                yield postgres_store
