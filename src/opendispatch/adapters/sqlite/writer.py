"""The group-commit writer: the one write connection, shared by every repository.

Writes that arrive in the same scheduling round share one transaction, run on the event
loop's thread (BEGIN, the statements, COMMIT): a hop to a worker thread and back costs more
than the work (docs/architecture.md, "Relay transport under load"). What may wait (another
process's write lock, WAL checkpoints, scans) runs in worker threads; point reads use a
read-only connection of their own on the loop's thread.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from functools import partial
from typing import TypeVar

import attrs
import outcome
import trio

BUSY_TIMEOUT_MS = 5000
#: Rows written between two WAL checkpoints. A row is a batch of lines, which usually
#: dirties one page of its job's own: 4,000 rows keep the WAL to some 16 MB.
CHECKPOINT_EVERY_CHANGES = 4_000

_T = TypeVar("_T")

log = logging.getLogger(__name__)


@attrs.define(eq=False)
class PendingWrite:
    """One write waiting for the next group commit; `work` runs inside its transaction."""

    work: Callable[[sqlite3.Connection], object]
    result: object = None
    finished: bool = False
    error: Exception | None = None


class SqliteWriter:
    """The connections and the one way to use each: what the repositories are built on.

    Writes go through `_write` (group commit, on the loop's thread) or `_run` (a worker thread,
    for what may wait: scans, read-then-write transactions); point reads through `_read`.
    """

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
        self._pending: list[PendingWrite] = []
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

    async def _write(self, work: Callable[[sqlite3.Connection], _T]) -> _T:
        """Run `work` in the next group commit, on the loop's thread; its result once committed."""
        item = PendingWrite(work)
        await self._committed([item])
        return item.result  # type: ignore[return-value]

    async def _committed(self, items: list[PendingWrite]) -> None:
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

    async def _write_together(self, batch: Sequence[PendingWrite]) -> None:
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

    async def _close(self) -> None:
        if self._reader is not None:
            self._reader.close()
        if self._checkpoints is not None:
            await trio.to_thread.run_sync(self._checkpoint_idle.wait)
            self._checkpoints.close()
        await self._run(lambda db: db.close())


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
def transaction(db: sqlite3.Connection) -> Iterator[None]:
    """`BEGIN IMMEDIATE` takes the write lock up front, so a read-then-write cannot race."""
    db.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")
