"""`SqliteJobStore`: the durable `JobStore`, on stdlib sqlite3.

One write connection, used by one caller at a time, so each call sees the previous one's
writes. Writes are group-committed on the event loop's thread; what may wait (another
process's write lock, WAL checkpoints, scans) runs in worker threads. WAL with
`synchronous=NORMAL` keeps commits cheap and the file readable by `sqlite3` while the
service runs.

The package by role: `schema` (tables and migrations), `connections` (opening the file),
`writer` (the group-commit writer every repository writes through), `codec` (values and
lines as text), and one repository per port: `jobs` (`JobStore`), `sessions`, `settings`,
`approvals`, `secrets`. The store is all of them on one writer.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import trio

from .approvals import ApprovalRepository
from .codec import job_from_json, job_to_json, session_from_json, session_to_json
from .connections import connect, connect_another
from .jobs import JobRepository
from .schema import SCHEMA_VERSION
from .secrets import SecretRepository
from .sessions import SessionRepository
from .settings import ChannelSettingsRepository
from .writer import CHECKPOINT_EVERY_CHANGES

__all__ = [
    "CHECKPOINT_EVERY_CHANGES",
    "SCHEMA_VERSION",
    "SqliteJobStore",
    "job_from_json",
    "job_to_json",
    "open_sqlite_store",
    "session_from_json",
    "session_to_json",
]


class SqliteJobStore(JobRepository, SessionRepository, ChannelSettingsRepository, ApprovalRepository, SecretRepository):
    """Use `open_sqlite_store(path)`; constructing one directly is for that function only.

    Every port's repository, sharing one `SqliteWriter` (the base of each): one file, one
    write connection, one group commit for all of them. The repositories are mixins rather
    than objects the store delegates to, so a call costs no extra hop.
    """


@asynccontextmanager
async def open_sqlite_store(
    path: str | os.PathLike[str], *, checkpoint_every_changes: int = CHECKPOINT_EVERY_CHANGES
) -> AsyncIterator[SqliteJobStore]:
    """Open (creating if needed) the job database at `path`; the connections close on exit."""
    writer = await trio.to_thread.run_sync(connect, path)
    opened = [writer]
    try:
        reader = connect_another(path)
        if reader is not None:
            opened.append(reader)
        checkpoints = connect_another(path, read_only=False)
    except BaseException:
        for db in opened:
            db.close()
        raise
    store = SqliteJobStore(writer, reader, checkpoints, checkpoint_every_changes)
    try:
        yield store
    finally:
        with trio.CancelScope(shield=True):
            await store._close()
