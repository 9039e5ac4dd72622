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


async def test_a_write_that_fails_in_a_shared_transaction_fails_alone(tmp_path: Path) -> None:
    from tests.contracts.test_job_store import queued

    async with open_sqlite_store(tmp_path / "jobs.db") as store:
        first = queued("j-00000001", at=100.0)
        await store.add(first)
        outcomes: dict[str, str] = {}

        async def add(job_id: str) -> None:
            try:
                await store.add(queued(job_id, at=101.0))
                outcomes[job_id] = "added"
            except ValueError:
                outcomes[job_id] = "refused"

        async with trio.open_nursery() as nursery:  # started together: one flush carries all
            for job_id in ("j-00000002", "j-00000001", "j-00000003"):
                nursery.start_soon(add, job_id)
            nursery.start_soon(store.append_output, "j-00000002", 0, ["x"])
        assert outcomes == {"j-00000002": "added", "j-00000001": "refused", "j-00000003": "added"}
        assert await store.get("j-00000001") == first
        assert (await store.get("j-00000003")).id == "j-00000003"
        assert await store.output("j-00000002") == ["x"]
