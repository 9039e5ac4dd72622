"""The relay's ingest task: stream records handed over by connections, stored a round at a time.

A Relay over the in-memory store (a counting subclass, to see how many writes a round took);
the ingest task runs in the test's nursery as it runs in the service's.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import pytest
import trio
import trio.testing

from opendispatch.adapters.memory.store import MemoryJobStore
from opendispatch.app.ledger import JobLedger
from opendispatch.app.live_job import LiveJob
from opendispatch.app.relay import Relay
from opendispatch.domain.job import Conversation, Job, JobState, User
from opendispatch.domain.job_spec import AgentKind, JobSpec
from opendispatch.domain.output_buffer import OutputBuffer
from opendispatch.domain.redaction import Redactor
from opendispatch.domain.sidecar import LogBatch
from opendispatch.domain.tokens import TokenIssuer


class CountingStore(MemoryJobStore):
    """The in-memory store, noting each write (its batch count); it can be told to fail the next ones."""

    def __init__(self) -> None:
        super().__init__()
        self.writes: list[int] = []
        self.failures_left = 0
        self.gate: trio.Event | None = None  # when set, writes wait for it

    async def append_many(self, appends: Sequence[tuple[str, int | None, Sequence[str]]]) -> list[bool]:
        if self.gate is not None:
            await self.gate.wait()
        if self.failures_left:
            self.failures_left -= 1
            raise OSError("disk full")
        self.writes.append(len(appends))
        return await super().append_many(appends)


async def make_relay(jobs: int) -> tuple[Relay, CountingStore, list[Job]]:
    store = CountingStore()
    made = []
    for i in range(jobs):
        job = Job.queued(
            f"j-{i:08d}", JobSpec(task="x", agent=AgentKind.SHELL), Conversation("c", "t"), User("u", "u"), at=0.0
        ).starting(at=0.0)
        await store.add(job)
        made.append(job)
    relay = Relay(
        store=store,
        ledger=JobLedger(store),
        tokens=TokenIssuer(b"k" * 32),
        redactor=Redactor.of([]),
        wall_clock=time.time,
    )
    return relay, store, made


def batch(job: Job, seq: int, *lines: str) -> list[LogBatch]:
    return [LogBatch(job_id=job.id, lines=lines, seq=seq)]


async def test_records_handed_over_together_are_stored_in_one_write() -> None:
    relay, store, jobs = await make_relay(3)
    with trio.fail_after(10):  # a regression fails here instead of hanging
        async with trio.open_nursery() as nursery:
            await nursery.start(relay.run_ingest)
            for job in jobs:  # no checkpoint in between: all three wait for the same round
                await relay.accept_stream_records(job, batch(job, 0, f"{job.id} line"))
            assert await relay.last_seq(jobs[0].id) == 0
            assert store.writes == [3]
            for job in jobs:
                assert await store.output(job.id) == [f"{job.id} line"]
            await trio.testing.wait_all_tasks_blocked()
            assert (await store.get(jobs[1].id)).state is JobState.RUNNING  # output means running
            nursery.cancel_scope.cancel()


async def test_records_handed_over_are_stored_even_if_the_connection_is_then_cancelled() -> None:
    relay, store, [job] = await make_relay(1)
    with trio.fail_after(10):  # a regression fails here instead of hanging
        async with trio.open_nursery() as nursery:
            await nursery.start(relay.run_ingest)
            with trio.CancelScope() as connection:
                await relay.accept_stream_records(job, batch(job, 0, "kept"))
                connection.cancel()
                await trio.sleep_forever()
            assert await relay.last_seq(job.id) == 0
            assert await store.output(job.id) == ["kept"]
            nursery.cancel_scope.cancel()


def watch_live(relay: Relay, job: Job, secret: str = "") -> LiveJob:
    """The job as its runner keeps it in memory while it runs, with a redactor for `secret`."""
    live = LiveJob(job=job, buffer=OutputBuffer(), redactor=Redactor.of([secret]))
    relay.live.start(live)
    return live


async def test_stream_records_are_shown_redacted_before_their_write_commits() -> None:
    relay, store, [job] = await make_relay(1)
    live = watch_live(relay, job, secret="s3cr3t-value-123")
    store.gate = trio.Event()
    with trio.fail_after(10):  # a regression fails here instead of hanging
        async with trio.open_nursery() as nursery:
            await nursery.start(relay.run_ingest)
            await relay.accept_stream_records(job, batch(job, 0, "token s3cr3t-value-123", "two"))
            await trio.testing.wait_all_tasks_blocked()
            assert store.writes == []  # the write waits at the gate...
            assert live.buffer.total_lines == 2  # ...and chat has the lines already
            [update] = live.buffer.flush(trio.current_time())
            assert "s3cr3t-value-123" not in " ".join(update.lines)
            store.gate.set()
            assert await relay.last_seq(job.id) == 0
            stored = await store.output(job.id)
            assert len(stored) == 2 and "s3cr3t-value-123" not in " ".join(stored)
            assert live.buffer.total_lines == 2  # storing it did not show it again
            nursery.cancel_scope.cancel()


async def test_a_record_shown_then_refused_by_the_store_is_shown_once_when_resent() -> None:
    relay, store, [job] = await make_relay(1)
    live = watch_live(relay, job)
    store.failures_left = 1
    with trio.fail_after(10):  # a regression fails here instead of hanging
        async with trio.open_nursery() as nursery:
            await nursery.start(relay.run_ingest)
            await relay.accept_stream_records(job, batch(job, 0, "once"))
            assert await relay.last_seq(job.id) is None  # not acknowledged: the sidecar resends
            await relay.accept_stream_records(job, batch(job, 0, "once"))
            await relay.accept_stream_records(job, batch(job, 1, "next"))
            assert await relay.last_seq(job.id) == 1
            assert await store.output(job.id) == ["once", "next"]
            assert live.buffer.total_lines == 2
            assert relay.lines_relayed == 2  # counted when stored, once
            nursery.cancel_scope.cancel()


async def test_a_failed_write_is_not_acknowledged_and_the_ingest_goes_on(caplog: pytest.LogCaptureFixture) -> None:
    relay, store, [job] = await make_relay(1)
    store.failures_left = 1
    with trio.fail_after(10):  # a regression fails here instead of hanging
        async with trio.open_nursery() as nursery:
            await nursery.start(relay.run_ingest)
            await relay.accept_stream_records(job, batch(job, 0, "first try"))
            assert await relay.last_seq(job.id) is None  # the stream's answer: resend from seq 0
            await relay.accept_stream_records(job, batch(job, 0, "first try"))  # the sidecar resends
            assert await relay.last_seq(job.id) == 0
            assert await store.output(job.id) == ["first try"]
            nursery.cancel_scope.cancel()
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert any(job.id in message and "resend" in message for message in warnings)


async def test_without_the_ingest_task_records_are_stored_by_the_connection() -> None:
    relay, store, [job] = await make_relay(1)
    with trio.CancelScope() as ingest_scope:
        async with trio.open_nursery() as nursery:
            await nursery.start(relay.run_ingest)
            ingest_scope.cancel()
    with trio.fail_after(5):
        await relay.accept_stream_records(job, batch(job, 0, "direct"))
        assert await relay.last_seq(job.id) == 0
    assert await store.output(job.id) == ["direct"]
    assert store.writes == [1]  # its own write: the ingest task had stopped


@pytest.mark.parametrize("queued", [1, 5])
async def test_waiting_for_settlement_never_hangs_when_the_ingest_stops(queued: int) -> None:
    relay, _, [job] = await make_relay(1)
    answered = trio.Event()

    async def stream_end() -> None:
        await relay.last_seq(job.id)
        answered.set()

    async with trio.open_nursery() as outer:
        with trio.CancelScope() as ingest_scope:
            async with trio.open_nursery() as nursery:
                await nursery.start(relay.run_ingest)
                for seq in range(queued):
                    await relay.accept_stream_records(job, batch(job, seq, "x"))
                outer.start_soon(stream_end)
                ingest_scope.cancel()
        with trio.fail_after(5):
            await answered.wait()
