"""Commits run on the event loop, so what could make them wait is kept off it.

Two things could: SQLite's own WAL auto-checkpoint (run inside a COMMIT), replaced by a
checkpoint in a worker thread; and another process holding the write lock, which a write
then waits for in a worker thread, while the loop goes on serving.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import trio
import trio.testing

from opendispatch.adapters.sqlite import open_sqlite_store

CEILING_S = 10.0


async def test_the_wal_is_checkpointed_in_a_worker_thread_and_reused(tmp_path: Path) -> None:
    path = tmp_path / "jobs.db"
    appends_per_round, lines_per_append = 10, 9  # a row per append
    async with open_sqlite_store(path, checkpoint_every_changes=appends_per_round) as store:
        wal = Path(f"{path}-wal")
        sizes = []
        seq = 0
        with trio.fail_after(CEILING_S):
            for round_ in range(1, 5):
                for _ in range(appends_per_round):
                    await store.append_output("job", seq, [f"line {seq}.{n}" for n in range(lines_per_append)])
                    seq += 1
                await store.wait_checkpoints(round_)  # the last append of a round starts one
                sizes.append(wal.stat().st_size)
        # Once all copied, the WAL is written again from its start: it does not grow per round.
        assert sizes[-1] <= sizes[0] * 1.5, sizes
        assert await store.output_line_count("job") == 4 * appends_per_round * lines_per_append
    with sqlite3.connect(path) as db:  # and everything is in the file
        assert db.execute("SELECT SUM(line_count) FROM output_batches").fetchone()[0] == 4 * 10 * 9


async def test_the_write_connection_does_not_checkpoint_inside_commits(tmp_path: Path) -> None:
    async with open_sqlite_store(tmp_path / "jobs.db") as store:
        autocheckpoint = await store._run(lambda db: db.execute("PRAGMA wal_autocheckpoint").fetchone()[0])
        assert autocheckpoint == 0


async def test_a_write_waits_off_the_loop_while_another_process_holds_the_write_lock(tmp_path: Path) -> None:
    path = tmp_path / "jobs.db"
    async with open_sqlite_store(path) as store:
        await store.append_output("job", 0, ["before"])
        other = sqlite3.connect(path, isolation_level=None)
        try:
            other.execute("BEGIN IMMEDIATE")  # another process is writing
            stored = trio.Event()

            async def append() -> None:
                assert await store.append_output("job", 1, ["after"])
                stored.set()

            with trio.fail_after(CEILING_S):
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(append)
                    await trio.testing.wait_all_tasks_blocked()
                    assert not stored.is_set()
                    # The loop still serves: reads go on while the write waits for the lock.
                    assert await store.last_seq("job") == 0
                    other.execute("COMMIT")
                    await stored.wait()
        finally:
            other.close()
        assert await store.output("job") == ["before", "after"]
