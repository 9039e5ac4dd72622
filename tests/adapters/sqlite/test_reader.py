"""The store's point reads run on a second, read-only connection: they must see every write."""

from __future__ import annotations

from pathlib import Path

import pytest

from opendispatch.adapters.sqlite import open_sqlite_store
from opendispatch.domain.errors import UnknownJob
from tests.contracts.test_job_store import queued


async def test_point_reads_see_each_write_at_once(tmp_path: Path) -> None:
    async with open_sqlite_store(tmp_path / "jobs.db") as store:
        job = queued("j-00000001", at=100.0)
        with pytest.raises(UnknownJob):
            await store.get(job.id)
        await store.add(job)
        assert await store.get(job.id) == job
        assert await store.last_seq(job.id) is None
        for seq in range(50):
            assert await store.append_output(job.id, seq, [f"line {seq}"])
            assert await store.last_seq(job.id) == seq  # never an older snapshot
            assert await store.output_line_count(job.id) == seq + 1
        running = job.starting(at=101.0)
        await store.save(running)
        assert await store.get(job.id) == running


async def test_a_second_store_on_the_same_file_reads_what_the_first_wrote(tmp_path: Path) -> None:
    async with open_sqlite_store(tmp_path / "jobs.db") as first, open_sqlite_store(tmp_path / "jobs.db") as second:
        job = queued("j-00000001", at=100.0)
        await first.add(job)
        await first.append_output(job.id, 0, ["a", "b"])
        assert await second.get(job.id) == job
        assert await second.last_seq(job.id) == 0
        assert await second.output_line_count(job.id) == 2
