"""Appends that arrive together share one transaction, and each caller still gets its own answer."""

from __future__ import annotations

from pathlib import Path

import trio

from opendispatch.adapters.sqlite import open_sqlite_store


async def test_concurrent_appends_are_all_stored_once_with_their_own_answers(tmp_path: Path) -> None:
    async with open_sqlite_store(tmp_path / "jobs.db") as store:
        answers: dict[tuple[str, int, int], bool] = {}

        async def append(job: str, seq: int, attempt: int) -> None:
            answers[(job, seq, attempt)] = await store.append_output(job, seq, [f"{job}-{seq}"])

        with trio.fail_after(10):
            async with trio.open_nursery() as nursery:
                for seq in range(20):
                    for job in ("a", "b", "c"):
                        nursery.start_soon(append, job, seq, 0)
            async with trio.open_nursery() as nursery:
                for seq in range(20):
                    nursery.start_soon(append, "a", seq, 1)  # retries: acknowledged, not stored again

        assert all(answers[(job, seq, 0)] for job in "abc" for seq in range(20))
        assert not any(answers[("a", seq, 1)] for seq in range(20))
        for job in "abc":
            assert await store.output(job) == [f"{job}-{seq}" for seq in range(20)]
            assert await store.output_line_count(job) == 20


async def test_an_append_cancelled_while_it_waits_does_not_lose_the_others(tmp_path: Path) -> None:
    async with open_sqlite_store(tmp_path / "jobs.db") as store:
        results: list[bool] = []

        async def append(seq: int) -> None:
            results.append(await store.append_output("job", seq, [str(seq)]))

        with trio.fail_after(10):
            async with trio.open_nursery() as nursery:
                for seq in range(10):
                    nursery.start_soon(append, seq)
                with trio.CancelScope() as doomed:
                    doomed.cancel()
                    await store.append_output("job", 99, ["cancelled"])
        assert results.count(True) == 10
        stored = await store.output("job")
        assert [line for line in stored if line != "cancelled"] == [str(seq) for seq in range(10)]
