"""`SqliteJobStore`: the durable `JobStore`, on stdlib sqlite3.

One write connection, used by one caller at a time, so each call sees the previous one's
writes. Writes are group-committed on the event loop's thread; what may wait (another
process's write lock, WAL checkpoints, scans) runs in worker threads. WAL with
`synchronous=NORMAL` keeps commits cheap and the file readable by `sqlite3` while the
service runs.
"""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import threading
from functools import partial
from collections.abc import AsyncIterator, Callable, Collection, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from typing import TypeVar

import attrs
import cattrs.preconf.json
import outcome
import trio

from ...domain.approvals import ApprovalRequest, ApprovalState
from ...domain.channel_settings import ChannelSettings
from ...domain.errors import ConfigError, UnknownJob
from ...domain.job import Conversation, Job, JobState
from ...domain.session import Session, SessionState, UnknownSession

SCHEMA_VERSION = 7

BUSY_TIMEOUT_MS = 5000
#: Rows written between two WAL checkpoints. A row is a batch of lines, which usually
#: dirties one page of its job's own: 4,000 rows keep the WAL to some 16 MB.
CHECKPOINT_EVERY_CHANGES = 4_000
#: The write connection's page cache, in KiB (SQLite's default is 2,000). A thousand jobs
#: writing at once each append to a page of their own; with the default the writer read
#: them back from the file on most commits (5 % of the server's CPU, docs/performance.md).
WRITER_CACHE_KIB = 32 * 1024

# Version 1: jobs, and output as a row per batch and a row per line (see version 3).
_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    id TEXT PRIMARY KEY,
    created_at REAL NOT NULL,
    state TEXT NOT NULL,
    user_id TEXT NOT NULL,
    body TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS jobs_by_created ON jobs (created_at);
CREATE INDEX IF NOT EXISTS jobs_by_state ON jobs (state, created_at);
CREATE INDEX IF NOT EXISTS jobs_by_user ON jobs (user_id, created_at);

CREATE TABLE IF NOT EXISTS batches (
    batch_id INTEGER PRIMARY KEY AUTOINCREMENT,
    job_id TEXT NOT NULL,
    seq INTEGER,
    line_count INTEGER NOT NULL,
    UNIQUE (job_id, seq)
);

CREATE TABLE IF NOT EXISTS output_lines (
    job_id TEXT NOT NULL,
    unsequenced INTEGER NOT NULL,
    seq_key INTEGER NOT NULL,
    batch_id INTEGER NOT NULL,
    line_no INTEGER NOT NULL,
    text TEXT NOT NULL,
    PRIMARY KEY (job_id, unsequenced, seq_key, batch_id, line_no)
) WITHOUT ROWID;

CREATE TABLE IF NOT EXISTS secrets (
    name TEXT PRIMARY KEY,
    value BLOB NOT NULL
);
"""

# Version 2: sessions (one row per session, the value as JSON like jobs).
_SESSIONS_SCHEMA = """
CREATE TABLE IF NOT EXISTS sessions (
    id TEXT PRIMARY KEY,
    created_at REAL NOT NULL,
    state TEXT NOT NULL,
    body TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS sessions_by_state ON sessions (state, created_at);
"""

# Version 3: a batch's lines in one row, as a JSON array. Output order: seq'd batches by
# seq, then seq-less (old sidecar) batches by arrival; `unsequenced` and `seq_key` encode
# that order, so the key serves reads, tails and the duplicate check. Why one row: a
# record from a sidecar was a batch row, a row per line and two B-tree pages of its job's
# (the rows and the (job, seq) index) rewritten per commit; now it is one row and one page
# (docs/performance.md, round 7).
_OUTPUT_BATCHES_SCHEMA = """
CREATE TABLE IF NOT EXISTS output_batches (
    job_id TEXT NOT NULL,
    unsequenced INTEGER NOT NULL,
    seq_key INTEGER NOT NULL,
    line_count INTEGER NOT NULL,
    lines TEXT NOT NULL,
    PRIMARY KEY (job_id, unsequenced, seq_key)
) WITHOUT ROWID
"""


def _batches_in_one_row(db: sqlite3.Connection) -> None:
    """Version 2 -> 3: each batch and its lines become one row; the two old tables go.

    A seq-less batch keeps its old global `batch_id` as its `seq_key`: arrival order
    within the job is kept, and later ones are numbered after it.
    """
    db.execute(_OUTPUT_BATCHES_SCHEMA)
    tables = {name for (name,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    if not {"batches", "output_lines"} <= tables:
        return  # a file that never had output
    db.execute(
        "INSERT INTO output_batches (job_id, unsequenced, seq_key, line_count, lines)"
        " SELECT job_id, seq IS NULL, COALESCE(seq, batch_id), line_count, '[]' FROM batches"
    )
    lines: list[str] = []
    key: tuple[str, int, int] | None = None
    rows = db.execute(
        "SELECT o.job_id, o.unsequenced, o.seq_key, o.batch_id, o.text FROM output_lines o"
        " ORDER BY o.job_id, o.unsequenced, o.seq_key, o.batch_id, o.line_no"
    )
    for job_id, unsequenced, seq_key, batch_id, text in rows:
        row_key = (job_id, unsequenced, batch_id if unsequenced else seq_key)
        if row_key != key:
            _set_lines(db, key, lines)
            key, lines = row_key, []
        lines.append(text)
    _set_lines(db, key, lines)
    db.execute("DROP TABLE output_lines")
    db.execute("DROP TABLE batches")


def _set_lines(db: sqlite3.Connection, key: tuple[str, int, int] | None, lines: list[str]) -> None:
    if key is not None:
        db.execute(
            "UPDATE output_batches SET lines = ? WHERE job_id = ? AND unsequenced = ? AND seq_key = ?",
            (_LINES.encode(lines), *key),
        )


# Version 4: each job's raw agent transcript (the CLI's JSON lines), in parts as uploaded.
_TRANSCRIPTS_SCHEMA = """
CREATE TABLE IF NOT EXISTS transcripts (
    job_id TEXT NOT NULL,
    part INTEGER NOT NULL,
    lines TEXT NOT NULL,
    PRIMARY KEY (job_id, part)
) WITHOUT ROWID
"""

# Version 5: copies of small artifact files, kept after the sprite's workspace is deleted.
_ARTIFACT_FILES_SCHEMA = """
CREATE TABLE IF NOT EXISTS artifact_files (
    job_id TEXT NOT NULL,
    name TEXT NOT NULL,
    content BLOB NOT NULL,
    PRIMARY KEY (job_id, name)
) WITHOUT ROWID
"""

# Version 6: each channel's defaults (`/od-config`), as the JSON of a ChannelSettings.
_CHANNEL_SETTINGS_SCHEMA = """
CREATE TABLE IF NOT EXISTS channel_settings (
    channel TEXT PRIMARY KEY,
    body TEXT NOT NULL
) WITHOUT ROWID
"""

# Version 7: approval requests (approvals.py), as the JSON of an ApprovalRequest.
_APPROVALS_SCHEMA = """
CREATE TABLE IF NOT EXISTS approvals (
    id TEXT PRIMARY KEY,
    job_id TEXT NOT NULL,
    asked_at REAL NOT NULL,
    state TEXT NOT NULL,
    body TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS approvals_by_job ON approvals (job_id, asked_at)
"""

_MIGRATIONS: dict[int, str | Callable[[sqlite3.Connection], None]] = {
    1: _SCHEMA,
    2: _SESSIONS_SCHEMA,
    3: _batches_in_one_row,
    4: _TRANSCRIPTS_SCHEMA,
    5: _ARTIFACT_FILES_SCHEMA,
    6: _CHANNEL_SETTINGS_SCHEMA,
    7: _APPROVALS_SCHEMA,
}

#: A batch's lines as stored: compact JSON, made once (`json.dumps` with options builds an
#: encoder per call).
_LINES = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))

_T = TypeVar("_T")

_converter = cattrs.preconf.json.make_converter()

log = logging.getLogger(__name__)


def job_to_json(job: Job) -> str:
    return _converter.dumps(job)


def job_from_json(text: str) -> Job:
    return _converter.loads(text, Job)


def session_to_json(session: Session) -> str:
    return _converter.dumps(session)


def session_from_json(text: str) -> Session:
    return _converter.loads(text, Session)


@attrs.define(eq=False)
class _PendingWrite:
    """One write waiting for the next group commit; `work` runs inside its transaction."""

    work: Callable[[sqlite3.Connection], object]
    result: object = None
    finished: bool = False
    error: Exception | None = None


class SqliteJobStore:
    """Use `open_sqlite_store(path)`; constructing one directly is for that function only."""

    def __init__(
        self,
        connection: sqlite3.Connection,
        reader: sqlite3.Connection | None = None,
        checkpoints: sqlite3.Connection | None = None,
        checkpoint_every_changes: int = CHECKPOINT_EVERY_CHANGES,
    ) -> None:
        self._connection = connection
        self._reader = reader
        self._lock = threading.Lock()
        #: The write connection belongs to one `_run` or flush at a time (a flush holds it
        #: from BEGIN to COMMIT, across awaits).
        self._owner = trio.Lock()
        self._pending: list[_PendingWrite] = []
        self._flush_done: trio.Event | None = None
        #: The connection WAL checkpoints run on, in a worker thread (`_note_changes`); None
        #: in memory, where there is no WAL.
        self._checkpoints = checkpoints
        self._checkpoint_every = checkpoint_every_changes
        self._checkpoint_at = checkpoint_every_changes
        self._checkpointing = False
        self._checkpoint_idle = threading.Event()
        self._checkpoint_idle.set()
        self._checkpointed = trio.Event()
        self.checkpoints = 0
        if checkpoints is not None:
            connection.execute("PRAGMA wal_autocheckpoint=0")  # see `_note_changes`

    async def _run(self, work: Callable[[sqlite3.Connection], _T], *, owned: bool = False) -> _T:
        """Run `work` in a worker thread, one call at a time (`owned`: the caller holds `_owner`).

        The thread is not abandoned on cancellation, so a write always completes or rolls back
        before the caller sees `Cancelled`.
        """

        def locked() -> _T:
            with self._lock:
                return work(self._connection)

        if owned:
            return await trio.to_thread.run_sync(locked)
        async with self._owner:
            return await trio.to_thread.run_sync(locked)

    async def _read(self, work: Callable[[sqlite3.Connection], _T]) -> _T:
        """Run a point read (one row by key) here, on a read-only connection of its own.

        Why: a worker-thread hop costs ~180 µs of the event loop's CPU, several times what
        such a read costs; in WAL mode a reader neither waits for the writer nor blocks it,
        and sees every write committed before it starts. Without a file (`:memory:`) there
        is no second connection and reads take the worker thread like writes. The reads use
        `fetchall()`, which ends the statement: one left open would pin an old snapshot.
        """
        if self._reader is None:
            return await self._run(work)
        await trio.lowlevel.checkpoint_if_cancelled()
        return work(self._reader)

    async def add(self, job: Job) -> None:
        def insert(db: sqlite3.Connection) -> None:
            try:
                db.execute(
                    "INSERT INTO jobs (id, created_at, state, user_id, body) VALUES (?, ?, ?, ?, ?)",
                    (job.id, job.created_at, job.state.value, job.requested_by.id, job_to_json(job)),
                )
            except sqlite3.IntegrityError:
                raise ValueError(f"job {job.id} is already stored") from None

        await self._write(insert)

    async def get(self, job_id: str) -> Job:
        def select(db: sqlite3.Connection) -> str | None:
            rows = db.execute("SELECT body FROM jobs WHERE id = ?", (job_id,)).fetchall()
            return str(rows[0][0]) if rows else None

        body = await self._read(select)
        if body is None:
            raise UnknownJob(job_id)
        return job_from_json(body)

    async def save(self, job: Job) -> None:
        def update(db: sqlite3.Connection) -> int:
            cursor = db.execute(
                "UPDATE jobs SET created_at = ?, state = ?, user_id = ?, body = ? WHERE id = ?",
                (job.created_at, job.state.value, job.requested_by.id, job_to_json(job), job.id),
            )
            return cursor.rowcount

        if await self._write(update) == 0:
            raise UnknownJob(job.id)

    async def recent(
        self,
        *,
        limit: int,
        states: Collection[JobState] | None = None,
        user_id: str | None = None,
        created_after: float | None = None,
        channel: Conversation | None = None,
        repo: str | None = None,
        agent: str | None = None,
        created_before: float | None = None,
        offset: int = 0,
    ) -> list[Job]:
        if offset < 0:
            raise ValueError(f"offset must be 0 or more, not {offset}")
        if limit <= 0 or (states is not None and not states):
            return []
        where: list[str] = []
        params: list[object] = []
        if states is not None:
            wanted = sorted({state.value for state in states})
            where.append(f"state IN ({', '.join('?' for _ in wanted)})")
            params.extend(wanted)
        if user_id is not None:
            where.append("user_id = ?")
            params.append(user_id)
        if created_after is not None:
            where.append("created_at >= ?")
            params.append(created_after)
        if created_before is not None:
            where.append("created_at < ?")
            params.append(created_before)
        if channel is not None:
            # No column of its own: asked for only by `--all` without admin rights, where a
            # scan of the job bodies is cheap next to a chat round trip.
            where.append("json_extract(body, '$.conversation.platform') = ? AND json_extract(body, '$.conversation.channel') = ?")
            params.extend((channel.platform, channel.channel))
        # The spec's repo and agent have no columns either (the web view's filters): the body
        # is `job_to_json`'s, where they are `spec.repo` and `spec.agent` (the kind's value).
        if repo is not None:
            where.append("json_extract(body, '$.spec.repo') = ?")
            params.append(repo)
        if agent is not None:
            where.append("json_extract(body, '$.spec.agent') = ?")
            params.append(agent)
        query = "SELECT body FROM jobs"
        if where:
            query += " WHERE " + " AND ".join(where)
        query += " ORDER BY created_at DESC, rowid DESC LIMIT ? OFFSET ?"
        params.extend((limit, offset))

        def select(db: sqlite3.Connection) -> list[str]:
            return [str(row[0]) for row in db.execute(query, params)]

        return [job_from_json(body) for body in await self._run(select)]

    async def append_output(self, job_id: str, seq: int | None, lines: Sequence[str]) -> bool:
        """`append_many` of one batch: a convenience for tests and tools, not part of `JobStore`."""
        return (await self.append_many([(job_id, seq, lines)]))[0]

    async def append_many(self, appends: Sequence[tuple[str, int | None, Sequence[str]]]) -> list[bool]:
        items = [
            _PendingWrite(partial(_insert_batch, job_id=job_id, seq=seq, lines=list(lines)))
            for job_id, seq, lines in appends
        ]
        await self._committed(items)
        return [bool(item.result) for item in items]

    async def _write(self, work: Callable[[sqlite3.Connection], _T]) -> _T:
        item = _PendingWrite(work)
        await self._committed([item])
        return item.result  # type: ignore[return-value]

    async def _committed(self, items: list[_PendingWrite]) -> None:
        """Group commit: writes that arrive while one is in flight share the next transaction.

        With many sidecars reporting at once, one worker-thread hop and one transaction per
        write cost more than the writes themselves (docs/performance.md); batching them keeps
        each caller's guarantee: it returns once its own write is committed, with its own
        result or error.
        """
        self._pending.extend(items)
        last = items[-1] if items else None
        while last is not None and not last.finished:
            if self._flush_done is None:
                await self._flush_pending()
            else:
                await self._flush_done.wait()
        for item in items:
            if item.error is not None:
                raise item.error

    async def _flush_pending(self) -> None:
        done = self._flush_done = trio.Event()
        try:
            # One scheduling round's grace: the writers woken in the same round as this one
            # (a thousand sidecars' records) join its transaction instead of each paying a
            # commit (~65 µs alone, ~16 µs shared; docs/performance.md).
            await trio.lowlevel.cancel_shielded_checkpoint()
            async with self._owner:
                batch, self._pending = self._pending, []
                try:
                    await self._write_together(batch)
                except Exception as exc:
                    for item in batch:
                        item.error, item.finished = exc, True
                    raise
        finally:
            self._flush_done = None
            done.set()

    async def _write_together(self, batch: Sequence[_PendingWrite]) -> None:
        """One transaction, on the event loop's thread; the caller holds `_owner`.

        Why on this thread: each hop to a worker thread and back costs a full round of the
        event loop, which under load is tens of ms; BEGIN, a few µs per write, and COMMIT
        cost less than one hop. That holds because nothing here waits: BEGIN IMMEDIATE waits
        only for another process's write (then it is retried in a worker thread), and COMMIT
        in WAL mode with `synchronous=NORMAL` writes to the OS without fsync, the WAL being
        checkpointed off the loop (`_note_changes`), not by the commit. A write that fails
        (a duplicate id) fails alone; SQLite undoes just it.
        """
        with trio.CancelScope(shield=True):  # once BEGIN ran, the transaction must end here
            await self._begin()
            with self._lock:
                try:
                    for item in batch:
                        try:
                            item.result = item.work(self._connection)
                        except Exception as exc:
                            item.error = exc
                    self._connection.execute("COMMIT")
                except BaseException:
                    _roll_back(self._connection)
                    raise
        for item in batch:
            item.finished = True
        self._note_changes()

    async def _begin(self) -> None:
        """BEGIN IMMEDIATE at once if no other process is writing, else wait in a worker thread."""
        with self._lock:
            db = self._connection
            db.execute("PRAGMA busy_timeout=0")
            try:
                db.execute("BEGIN IMMEDIATE")
                return
            except sqlite3.OperationalError as exc:
                if exc.sqlite_errorcode != sqlite3.SQLITE_BUSY:
                    raise
            finally:
                db.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        await self._run(lambda db: db.execute("BEGIN IMMEDIATE"), owned=True)

    def _note_changes(self) -> None:
        """Start a WAL checkpoint in a worker thread once enough rows went in since the last.

        The write connection's own auto-checkpoint is off: it would run inside a COMMIT, on
        the event loop, and stall every request for as long as it takes (hundreds of ms under
        load). A PASSIVE checkpoint never waits for, or blocks, the writer or the readers.
        The thread is not awaited by anyone: `_close` waits for it.
        """
        checkpoints = self._checkpoints
        if checkpoints is None or self._checkpointing or self._connection.total_changes < self._checkpoint_at:
            return
        self._checkpoint_at = self._connection.total_changes + self._checkpoint_every
        self._checkpointing = True
        self._checkpoint_idle.clear()
        trio_token = trio.lowlevel.current_trio_token()

        def deliver(result: outcome.Outcome[object]) -> None:  # in the worker thread
            try:
                trio_token.run_sync_soon(self._checkpoint_finished, result)
            except trio.RunFinishedError:
                pass
            finally:
                self._checkpoint_idle.set()

        trio.lowlevel.start_thread_soon(partial(_checkpoint, checkpoints), deliver, name="sqlite checkpoint")

    def _checkpoint_finished(self, result: outcome.Outcome[object]) -> None:
        self._checkpointing = False
        if isinstance(result, outcome.Error):
            log.warning("WAL checkpoint failed (retried after more writes): %s", result.error)
        else:
            self.checkpoints += 1
        self._checkpointed.set()
        self._checkpointed = trio.Event()

    async def wait_checkpoints(self, count: int) -> None:
        """Wait until `count` WAL checkpoints have run since the store opened (tests, operators)."""
        while self.checkpoints < count:
            await self._checkpointed.wait()

    async def output(self, job_id: str, *, tail: int | None = None) -> list[str]:
        if tail is not None and tail <= 0:
            return []

        def select(db: sqlite3.Connection) -> list[str]:
            if tail is None:
                rows = db.execute(
                    "SELECT lines FROM output_batches WHERE job_id = ? ORDER BY unsequenced, seq_key", (job_id,)
                )
                return [line for (text,) in rows for line in json.loads(text)]
            newest_first: list[str] = []
            count = 0
            for text, line_count in db.execute(
                "SELECT lines, line_count FROM output_batches WHERE job_id = ?"
                " ORDER BY unsequenced DESC, seq_key DESC",
                (job_id,),
            ):
                newest_first.append(text)
                count += line_count
                if count >= tail:
                    break
            lines = [line for text in reversed(newest_first) for line in json.loads(text)]
            return lines[-tail:]

        return await self._run(select)

    async def output_range(self, job_id: str, start: int, limit: int | None = None) -> list[str]:
        if start < 0:
            raise ValueError(f"start must be 0 or more, not {start}")
        if limit is not None and limit <= 0:
            return []

        def select(db: sqlite3.Connection) -> list[str]:
            # Two steps: each batch's key and line count in output order (no `lines` value is
            # loaded or decoded: 1,000 batches of 100 lines take ~4 ms a call, where `output()`
            # takes ~40), then only the batches that hold lines [start, start + limit), by a range
            # of the primary key. Both run on the write connection under its lock, so no
            # batch lands in between to shift the indexes.
            counts = db.execute(
                "SELECT unsequenced, seq_key, line_count FROM output_batches WHERE job_id = ?"
                " ORDER BY unsequenced, seq_key",
                (job_id,),
            ).fetchall()
            first = 0  # the index of the line that begins the batch at `low`
            low = 0
            while low < len(counts) and first + counts[low][2] <= start:
                first += counts[low][2]
                low += 1
            if low == len(counts):
                return []
            high, after = low, first + counts[low][2]
            if limit is not None:
                while high + 1 < len(counts) and after < start + limit:
                    high += 1
                    after += counts[high][2]
            else:
                high = len(counts) - 1
            rows = db.execute(
                "SELECT lines FROM output_batches WHERE job_id = ?"
                " AND (unsequenced, seq_key) >= (?, ?) AND (unsequenced, seq_key) <= (?, ?)"
                " ORDER BY unsequenced, seq_key",
                (job_id, *counts[low][:2], *counts[high][:2]),
            ).fetchall()
            lines = [line for (text,) in rows for line in json.loads(text)]
            skip = start - first
            return lines[skip:] if limit is None else lines[skip : skip + limit]

        return await self._run(select)

    async def output_line_count(self, job_id: str) -> int:
        def count(db: sqlite3.Connection) -> int:
            rows = db.execute(
                "SELECT COALESCE(SUM(line_count), 0) FROM output_batches WHERE job_id = ?", (job_id,)
            ).fetchall()
            return int(rows[0][0])

        return await self._read(count)

    async def last_seq(self, job_id: str) -> int | None:
        def highest(db: sqlite3.Connection) -> int | None:
            rows = db.execute(
                "SELECT MAX(seq_key) FROM output_batches WHERE job_id = ? AND unsequenced = 0", (job_id,)
            ).fetchall()
            return None if rows[0][0] is None else int(rows[0][0])

        return await self._read(highest)

    async def append_transcript(self, job_id: str, part: int, lines: Sequence[str]) -> bool:
        text = _LINES.encode(list(lines))

        def insert(db: sqlite3.Connection) -> bool:
            with _transaction(db):
                cursor = db.execute(
                    "INSERT OR IGNORE INTO transcripts (job_id, part, lines) VALUES (?, ?, ?)", (job_id, part, text)
                )
                return cursor.rowcount == 1

        return await self._run(insert)

    async def transcript(self, job_id: str) -> list[str]:
        def select(db: sqlite3.Connection) -> list[str]:
            rows = db.execute("SELECT lines FROM transcripts WHERE job_id = ? ORDER BY part", (job_id,)).fetchall()
            return [line for (text,) in rows for line in json.loads(text)]

        return await self._read(select)

    async def keep_artifact_file(self, job_id: str, name: str, content: bytes) -> bool:
        def insert(db: sqlite3.Connection) -> bool:
            with _transaction(db):
                cursor = db.execute(
                    "INSERT OR IGNORE INTO artifact_files (job_id, name, content) VALUES (?, ?, ?)",
                    (job_id, name, bytes(content)),
                )
                return cursor.rowcount == 1

        return await self._run(insert)

    async def artifact_file(self, job_id: str, name: str) -> bytes | None:
        def select(db: sqlite3.Connection) -> bytes | None:
            row = db.execute(
                "SELECT content FROM artifact_files WHERE job_id = ? AND name = ?", (job_id, name)
            ).fetchone()
            return None if row is None else bytes(row[0])

        return await self._read(select)

    async def secret(self, name: str, create: Callable[[], bytes]) -> bytes:
        """Get-or-create under the lock and in one transaction, so the first value always wins."""

        def get_or_create(db: sqlite3.Connection) -> bytes:
            with _transaction(db):
                row = db.execute("SELECT value FROM secrets WHERE name = ?", (name,)).fetchone()
                if row is not None:
                    return bytes(row[0])
                value = create()
                db.execute("INSERT INTO secrets (name, value) VALUES (?, ?)", (name, value))
                return value

        return await self._run(get_or_create)

    # --- SessionStore ------------------------------------------------------------------------

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

    # --- ChannelSettingsStore --------------------------------------------------------------

    async def channel_settings(self, channel: str) -> ChannelSettings:
        def select(db: sqlite3.Connection) -> str | None:
            rows = db.execute("SELECT body FROM channel_settings WHERE channel = ?", (channel,)).fetchall()
            return str(rows[0][0]) if rows else None

        body = await self._read(select)
        return ChannelSettings() if body is None else _converter.loads(body, ChannelSettings)

    async def save_channel_settings(self, channel: str, settings: ChannelSettings) -> None:
        body = _converter.dumps(settings)

        def upsert(db: sqlite3.Connection) -> None:
            db.execute(
                "INSERT INTO channel_settings (channel, body) VALUES (?, ?)"
                " ON CONFLICT (channel) DO UPDATE SET body = excluded.body",
                (channel, body),
            )

        await self._write(upsert)

    # --- ApprovalStore ------------------------------------------------------------------------

    async def save_approval(self, request: ApprovalRequest) -> None:
        body = _converter.dumps(request)

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
        return None if body is None else _converter.loads(body, ApprovalRequest)

    async def pending_approvals(self) -> list[ApprovalRequest]:
        def select(db: sqlite3.Connection) -> list[str]:
            rows = db.execute(
                "SELECT body FROM approvals WHERE state = ? ORDER BY asked_at", (ApprovalState.PENDING.value,)
            )
            return [str(row[0]) for row in rows]

        return [_converter.loads(body, ApprovalRequest) for body in await self._read(select)]

    async def approvals_of(self, job_id: str) -> list[ApprovalRequest]:
        def select(db: sqlite3.Connection) -> list[str]:
            rows = db.execute("SELECT body FROM approvals WHERE job_id = ? ORDER BY asked_at", (job_id,))
            return [str(row[0]) for row in rows]

        return [_converter.loads(body, ApprovalRequest) for body in await self._read(select)]

    async def _close(self) -> None:
        if self._reader is not None:
            self._reader.close()
        if self._checkpoints is not None:
            await trio.to_thread.run_sync(self._checkpoint_idle.wait)
            self._checkpoints.close()
        await self._run(lambda db: db.close())


def _insert_batch(db: sqlite3.Connection, *, job_id: str, seq: int | None, lines: list[str]) -> bool:
    """One append's row, in the caller's transaction; False for a (job, seq) already stored."""
    if seq is None:  # numbered after the job's last seq-less batch
        db.execute(
            "INSERT INTO output_batches (job_id, unsequenced, seq_key, line_count, lines)"
            " SELECT ?, 1, COALESCE(MAX(seq_key), 0) + 1, ?, ? FROM output_batches"
            " WHERE job_id = ? AND unsequenced = 1",
            (job_id, len(lines), _LINES.encode(lines), job_id),
        )
        return True
    cursor = db.execute(
        "INSERT OR IGNORE INTO output_batches (job_id, unsequenced, seq_key, line_count, lines) VALUES (?, 0, ?, ?, ?)",
        (job_id, seq, len(lines), _LINES.encode(lines)),
    )
    return cursor.rowcount == 1


def _checkpoint(db: sqlite3.Connection, passes: int = 3) -> None:
    """Copy the WAL into the database, again for what was committed meanwhile (up to `passes`).

    SQLite restarts the WAL from its beginning only at a write that finds it all copied: a
    checkpoint that stopped behind the writer would let the file grow with every write.
    The passes after the first copy only the few frames committed during the one before.
    """
    for _ in range(passes):
        busy, in_wal, copied = db.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()[0]
        if busy or in_wal == copied:
            return


def _roll_back(db: sqlite3.Connection) -> None:
    try:
        db.execute("ROLLBACK")
    except sqlite3.Error:
        pass  # no transaction was left open (SQLite may have undone it already)


@contextmanager
def _transaction(db: sqlite3.Connection) -> Iterator[None]:
    """`BEGIN IMMEDIATE` takes the write lock up front, so a read-then-write cannot race."""
    db.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")


def _owner_only(path: str | os.PathLike[str]) -> None:
    """Create the database file readable by this user only, or make an existing one so.

    It holds the job-token key and every job's output: with the usual umask it was 0644, so
    any local user (or a local sprite) could read the key and forge tokens. SQLite gives its
    -wal and -shm files the database file's mode.
    """
    name = os.fspath(path)
    if name in ("", ":memory:") or name.startswith("file:"):
        return
    fd = os.open(name, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        if os.fstat(fd).st_mode & 0o077:
            os.fchmod(fd, 0o600)
    finally:
        os.close(fd)
    for suffix in ("-wal", "-shm"):
        try:
            os.chmod(name + suffix, 0o600)
        except FileNotFoundError:
            pass


def _connect(path: str | os.PathLike[str]) -> sqlite3.Connection:
    _owner_only(path)
    db = sqlite3.connect(os.fspath(path), check_same_thread=False, isolation_level=None)
    try:
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")
        db.execute(f"PRAGMA cache_size=-{WRITER_CACHE_KIB}")
        db.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        _migrate(db)
    except BaseException:
        db.close()
        raise
    return db


def _connect_another(path: str | os.PathLike[str], *, read_only: bool = True) -> sqlite3.Connection | None:
    """Another connection to the same file (for reads, or for checkpoints), or None in memory."""
    name = os.fspath(path)
    if name in ("", ":memory:") or name.startswith("file:"):
        return None
    db = sqlite3.connect(name, check_same_thread=False, isolation_level=None)
    if read_only:
        db.execute("PRAGMA query_only=ON")
    db.execute("PRAGMA busy_timeout=1000")
    return db


def _migrate(db: sqlite3.Connection) -> None:
    version = int(db.execute("PRAGMA user_version").fetchone()[0])
    if version > SCHEMA_VERSION:
        raise ConfigError(
            f"The job database was written by a newer Open-Dispatch (schema {version}, "
            f"this build knows {SCHEMA_VERSION}); upgrade, or point the store at another file."
        )
    if version < SCHEMA_VERSION:
        with _transaction(db):
            for step in range(version + 1, SCHEMA_VERSION + 1):  # a v1 file gains the sessions table
                migration = _MIGRATIONS[step]
                if callable(migration):
                    migration(db)
                    continue
                for statement in migration.split(";"):
                    if statement.strip():
                        db.execute(statement)
            db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")


@asynccontextmanager
async def open_sqlite_store(
    path: str | os.PathLike[str], *, checkpoint_every_changes: int = CHECKPOINT_EVERY_CHANGES
) -> AsyncIterator[SqliteJobStore]:
    """Open (creating if needed) the job database at `path`; the connections close on exit."""
    writer = await trio.to_thread.run_sync(_connect, path)
    opened = [writer]
    try:
        reader = _connect_another(path)
        if reader is not None:
            opened.append(reader)
        checkpoints = _connect_another(path, read_only=False)
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
