"""One `JobStore` contract, run against the in-memory, SQLite and PostgreSQL stores (the
`store` fixture: tests/contracts/conftest.py)."""

from __future__ import annotations

import random
from pathlib import Path

import attrs
import pytest
import trio

from opendispatch.adapters.sqlite import open_sqlite_store
from opendispatch.domain.errors import UnknownJob
from opendispatch.domain.job import Artifact, Conversation, FailureStage, Job, JobState, User
from opendispatch.domain.job_spec import AgentKind, JobSpec
from opendispatch.ports.job_store import JobStore

CEILING_S = 10.0
SPEC = JobSpec(task="run the tests", agent=AgentKind.SHELL, repo="owner/repo")
WHERE = Conversation("console", "c1", thread="t1")
ALICE = User("u1", "alice")
BOB = User("u2", "bob")


def queued(job_id: str, at: float, user: User = ALICE) -> Job:
    return Job.queued(job_id, SPEC, WHERE, user, at=at)


async def append(store: JobStore, job_id: str, seq: int | None, lines: list[str]) -> bool:
    """One batch through the store's one append path."""
    [stored] = await store.append_many([(job_id, seq, lines)])
    return stored


async def test_add_then_get_returns_the_same_job(store: JobStore) -> None:
    job = queued("j-00000001", at=100.0)
    await store.add(job)
    assert await store.get(job.id) == job


async def test_save_replaces_the_job_and_every_field_round_trips(store: JobStore) -> None:
    spec = attrs.evolve(SPEC, image="registry.fly.io/x:1", timeout_s=90.5, branch="feature/x")
    job = Job.queued("j-00000001", spec, Conversation("slack", "C1"), ALICE, at=100.0)
    await store.add(job)
    finished = (
        job.starting(at=101.0)
        .with_sprite("local-j-00000001-1")
        .running()
        .with_artifacts((Artifact("PR", "https://example.test/pr/1", "pull_request"),))
        .failed(FailureStage.AGENT_START, "claude not found", at=130.25, exit_code=127)
    )
    await store.save(finished)
    assert await store.get(job.id) == finished


async def test_get_unknown_job_raises_unknown_job(store: JobStore) -> None:
    with pytest.raises(UnknownJob) as caught:
        await store.get("j-0000dead")
    assert caught.value.job_id == "j-0000dead"


async def test_save_of_a_never_added_job_raises_unknown_job(store: JobStore) -> None:
    with pytest.raises(UnknownJob):
        await store.save(queued("j-0000dead", at=1.0))
    with pytest.raises(UnknownJob):
        await store.get("j-0000dead")


async def test_adding_an_id_twice_is_a_value_error(store: JobStore) -> None:
    await store.add(queued("j-00000001", at=1.0))
    with pytest.raises(ValueError):
        await store.add(queued("j-00000001", at=2.0))
    assert (await store.get("j-00000001")).created_at == 1.0


async def test_recent_is_newest_first(store: JobStore) -> None:
    for job_id, at in [("j-00000002", 20.0), ("j-00000001", 10.0), ("j-00000003", 30.0)]:
        await store.add(queued(job_id, at=at))
    assert [job.id for job in await store.recent(limit=10)] == ["j-00000003", "j-00000002", "j-00000001"]


async def test_recent_breaks_created_at_ties_by_latest_added(store: JobStore) -> None:
    await store.add(queued("j-00000001", at=10.0))
    await store.add(queued("j-00000002", at=10.0))
    assert [job.id for job in await store.recent(limit=10)] == ["j-00000002", "j-00000001"]


async def test_recent_filters_by_state_after_saves(store: JobStore) -> None:
    running = queued("j-00000001", at=1.0)
    failed = queued("j-00000002", at=2.0)
    still_queued = queued("j-00000003", at=3.0)
    for job in (running, failed, still_queued):
        await store.add(job)
    await store.save(running.starting(at=1.5).running())
    await store.save(failed.failed(FailureStage.SPAWN, "no capacity", at=2.5))

    only_running = await store.recent(limit=10, states={JobState.RUNNING})
    assert [job.id for job in only_running] == ["j-00000001"]
    active = await store.recent(limit=10, states=[JobState.RUNNING, JobState.QUEUED])
    assert [job.id for job in active] == ["j-00000003", "j-00000001"]
    assert await store.recent(limit=10, states=set()) == []


async def test_recent_filters_by_user_and_respects_limit(store: JobStore) -> None:
    for n in range(1, 6):
        await store.add(queued(f"j-0000000{n}", at=float(n), user=ALICE if n % 2 else BOB))
    alices = await store.recent(limit=10, user_id=ALICE.id)
    assert [job.id for job in alices] == ["j-00000005", "j-00000003", "j-00000001"]
    assert [job.id for job in await store.recent(limit=2)] == ["j-00000005", "j-00000004"]
    assert [job.id for job in await store.recent(limit=1, user_id=BOB.id)] == ["j-00000004"]
    assert await store.recent(limit=0) == []


async def test_a_batch_with_a_seen_seq_is_stored_once(store: JobStore) -> None:
    assert await append(store, "j-00000001", 0, ["cloning", "done"]) is True
    assert await append(store, "j-00000001", 0, ["cloning", "done"]) is False
    assert await store.output("j-00000001") == ["cloning", "done"]
    assert await store.output_line_count("j-00000001") == 2


async def test_seqs_are_per_job(store: JobStore) -> None:
    assert await append(store, "j-00000001", 0, ["a"]) is True
    assert await append(store, "j-00000002", 0, ["b"]) is True
    assert await store.output("j-00000001") == ["a"]
    assert await store.output("j-00000002") == ["b"]


async def test_batches_of_several_jobs_at_once_are_each_stored_once(store: JobStore) -> None:
    assert await append(store, "j-00000002", 0, ["b0"]) is True
    stored = await store.append_many(
        [("j-00000001", 0, ["a0"]), ("j-00000002", 0, ["b0"]), ("j-00000002", 1, ["b1", "b2"]), ("j-00000001", 1, ["a1"])]
    )
    assert stored == [True, False, True, True]
    assert await store.append_many([]) == []
    assert await store.output("j-00000001") == ["a0", "a1"]
    assert await store.output("j-00000002") == ["b0", "b1", "b2"]
    assert await store.last_seq("j-00000002") == 1


async def test_several_batches_at_once_are_each_stored_once(store: JobStore) -> None:
    assert await append(store, "j-00000001", 1, ["b"]) is True
    batches: list[tuple[int | None, list[str]]] = [(0, ["a"]), (1, ["b"]), (2, ["c", "d"]), (2, ["c", "d"])]
    stored = await store.append_many([("j-00000001", seq, lines) for seq, lines in batches])
    assert stored == [True, False, True, False]
    assert await store.output("j-00000001") == ["a", "b", "c", "d"]
    assert await store.output_line_count("j-00000001") == 4
    assert await store.last_seq("j-00000001") == 2


async def test_out_of_order_batches_read_back_in_seq_order(store: JobStore) -> None:
    for seq in (2, 0, 3, 1):
        assert await append(store, "j-00000001", seq, [f"{seq}.a", f"{seq}.b"])
    assert await store.output("j-00000001") == [
        "0.a", "0.b", "1.a", "1.b", "2.a", "2.b", "3.a", "3.b",
    ]


async def test_seqless_batches_read_back_in_arrival_order(store: JobStore) -> None:
    for batch in (["third?"], ["no", "seq"], ["third?"]):
        assert await append(store, "j-00000001", None, batch) is True
    assert await store.output("j-00000001") == ["third?", "no", "seq", "third?"]
    assert await store.output_line_count("j-00000001") == 4


async def test_mixed_batches_put_seqd_ones_first(store: JobStore) -> None:
    """The documented order for a job that somehow sends both kinds."""
    await append(store, "j-00000001", None, ["old"])
    await append(store, "j-00000001", 1, ["one"])
    await append(store, "j-00000001", 0, ["zero"])
    assert await store.output("j-00000001") == ["zero", "one", "old"]


async def test_empty_lines_and_empty_batches_are_kept(store: JobStore) -> None:
    assert await append(store, "j-00000001", 0, ["", "x", ""]) is True
    assert await append(store, "j-00000001", 1, []) is True
    assert await append(store, "j-00000001", 1, ["late duplicate"]) is False
    assert await store.output("j-00000001") == ["", "x", ""]
    assert await store.output_line_count("j-00000001") == 3


async def test_unicode_and_control_characters_round_trip(store: JobStore) -> None:
    lines = ["héllo wörld ✓ 日本語 🚀", "\x1b[31mred\x1b[0m\ttab\rcr", "nul\x00byte", "\u2028sep'\"; --"]
    await append(store, "j-00000001", 0, lines)
    assert await store.output("j-00000001") == lines


async def test_output_tail_returns_the_last_lines_across_batches(store: JobStore) -> None:
    await append(store, "j-00000001", 1, ["c", "d", "e"])
    await append(store, "j-00000001", 0, ["a", "b"])
    assert await store.output("j-00000001", tail=4) == ["b", "c", "d", "e"]
    assert await store.output("j-00000001", tail=1) == ["e"]
    assert await store.output("j-00000001", tail=50) == ["a", "b", "c", "d", "e"]
    assert await store.output("j-00000001", tail=0) == []


async def test_a_job_without_output_has_none(store: JobStore) -> None:
    assert await store.output("j-00000009") == []
    assert await store.output("j-00000009", tail=3) == []
    assert await store.output_line_count("j-00000009") == 0


async def test_secret_is_created_once_and_then_kept(store: JobStore) -> None:
    from opendispatch.ports.secret_store import SecretStore

    assert isinstance(store, SecretStore)  # every job store keeps the dispatcher's secrets
    made: list[bytes] = []

    def create() -> bytes:
        made.append(b"first-value-%d" % len(made))
        return made[-1]

    first = await store.secret("webhook-hmac", create)
    second = await store.secret("webhook-hmac", create)
    other = await store.secret("other", lambda: b"other-value")
    assert first == second == b"first-value-0"
    assert made == [b"first-value-0"]
    assert other == b"other-value"


async def test_concurrent_first_secret_calls_agree(store: JobStore) -> None:
    values: list[bytes] = []
    counter = iter(range(100))

    async def fetch() -> None:
        values.append(await store.secret("webhook-hmac", lambda: b"v%d" % next(counter)))

    async with trio.open_nursery() as nursery:
        for _ in range(5):
            nursery.start_soon(fetch)
    assert len(values) == 5
    assert len(set(values)) == 1


async def test_sqlite_data_survives_reopening_the_file(tmp_path: Path) -> None:
    path = tmp_path / "jobs.sqlite3"
    job = queued("j-00000001", at=5.0).starting(at=6.0).running()
    with trio.fail_after(CEILING_S):
        async with open_sqlite_store(path) as first:
            await first.add(queued("j-00000001", at=5.0))
            await first.save(job)
            await first.add(queued("j-00000002", at=7.0, user=BOB))
            await append(first, job.id, 1, ["b"])
            await append(first, job.id, 0, ["a"])
            await append(first, "j-00000002", None, ["x"])
            secret = await first.secret("webhook-hmac", lambda: b"kept")

        async with open_sqlite_store(path) as second:
            assert await second.get(job.id) == job
            assert [j.id for j in await second.recent(limit=5)] == ["j-00000002", "j-00000001"]
            assert await second.output(job.id) == ["a", "b"]
            assert await second.output("j-00000002") == ["x"]
            assert await second.output_line_count(job.id) == 2
            assert await append(second, job.id, 0, ["a again"]) is False
            assert await second.secret("webhook-hmac", lambda: b"replaced") == secret == b"kept"
            with pytest.raises(ValueError):
                await second.add(queued("j-00000001", at=9.0))


async def test_last_seq_is_the_highest_stored_seq(store: JobStore) -> None:
    assert await store.last_seq("j-0000beef") is None
    await append(store, "j-0000beef", None, ["old sidecar"])
    assert await store.last_seq("j-0000beef") is None
    await append(store, "j-0000beef", 3, ["c"])
    await append(store, "j-0000beef", 1, ["a"])
    assert await store.last_seq("j-0000beef") == 3


async def test_recent_filters_by_creation_time(store: JobStore) -> None:
    for number, at in enumerate((100.0, 200.0, 300.0), start=1):
        await store.add(queued(f"j-0000000{number}", at=at))
    assert [job.id for job in await store.recent(limit=10, created_after=200.0)] == ["j-00000003", "j-00000002"]
    assert await store.recent(limit=10, created_after=301.0) == []


async def test_the_agent_summary_survives_a_save(store: JobStore) -> None:
    from opendispatch.domain.agent_events import ErrorKind, FileChange
    from opendispatch.domain.agent_progress import AgentSummary

    job = queued("j-00000001", at=1.0)
    await store.add(job)
    summary = AgentSummary(
        answer="done", ok=False, cost_usd=0.25, input_tokens=10, output_tokens=2, turns=3, model="m",
        session_id="s", error_kind=ErrorKind.AUTH, files=(FileChange("a.py", 1, 2),), files_summary="1 file",
    )
    await store.save(job.with_agent(summary))
    assert (await store.get(job.id)).agent == summary


async def test_a_transcript_reads_back_in_part_order_and_each_part_is_stored_once(store: JobStore) -> None:
    assert await store.transcript("j-00000001") == []
    assert await store.append_transcript("j-00000001", 1, ['{"b": 2}', '{"c": "✓"}'])
    assert await store.append_transcript("j-00000001", 0, ['{"a": 1}'])
    assert not await store.append_transcript("j-00000001", 0, ["again"])
    assert await store.append_transcript("j-00000002", 0, ["other"])
    assert await store.transcript("j-00000001") == ['{"a": 1}', '{"b": 2}', '{"c": "✓"}']


async def test_an_artifact_file_is_kept_once_and_reads_back_byte_for_byte(store: JobStore) -> None:
    content = bytes(range(256)) * 4  # binary, with NUL bytes and invalid UTF-8
    assert await store.artifact_file("j-00000001", "report") is None
    assert await store.keep_artifact_file("j-00000001", "report", content)
    assert not await store.keep_artifact_file("j-00000001", "report", b"again")
    assert await store.keep_artifact_file("j-00000002", "report", b"other job")
    assert await store.artifact_file("j-00000001", "report") == content
    assert await store.artifact_file("j-00000002", "report") == b"other job"
    assert await store.artifact_file("j-00000001", "Report") is None


async def test_a_kept_artifact_survives_in_the_job_with_its_size(store: JobStore) -> None:
    job = queued("j-00000001", at=1.0)
    await store.add(job)
    kept = Artifact("test report", "/work/report.txt", "file", kept=True, size=12)
    await store.save(job.with_artifacts((kept,)))
    assert (await store.get(job.id)).artifacts == (kept,)


async def test_the_database_files_are_readable_by_their_owner_only(tmp_path: Path) -> None:
    """They hold the job-token key and every job's output (the review found 0644)."""
    old = tmp_path / "old.db"
    old.touch(mode=0o644)
    old.chmod(0o644)
    for path in (tmp_path / "new.db", old):
        async with open_sqlite_store(path) as store:
            await store.add(queued("j-00000001", at=1.0))
            await store.secret("key", lambda: b"k" * 32)
            modes = {p.name: p.stat().st_mode & 0o777 for p in tmp_path.glob(path.name + "*")}
        assert path.name + "-wal" in modes and set(modes.values()) == {0o600}, modes


async def test_recent_jobs_of_one_channel_any_thread(store: JobStore) -> None:
    here, thread, elsewhere = Conversation("slack", "C1"), Conversation("slack", "C1", thread="1.2"), Conversation("slack", "C2")
    other_platform = Conversation("discord", "C1")
    for n, conversation in enumerate((here, thread, elsewhere, other_platform), start=1):
        await store.add(Job.queued(f"j-0000000{n}", SPEC, conversation, User("u1", "alice"), at=float(n)))
    found = await store.recent(limit=10, channel=here)
    assert [job.id for job in found] == ["j-00000002", "j-00000001"]


# --- output_range (issue #23: the web view reads a job's lines from an index on) ---------


async def test_output_range_reads_from_an_index_across_out_of_order_batches(store: JobStore) -> None:
    for seq, lines in [(2, ["c0", "c1", "c2"]), (0, ["a0", "a1"]), (3, ["d0"]), (1, ["b0", "b1", "b2", "b3"])]:
        assert await append(store, "j-00000001", seq, lines)
    everything = ["a0", "a1", "b0", "b1", "b2", "b3", "c0", "c1", "c2", "d0"]
    assert await store.output_range("j-00000001", 0) == everything
    assert await store.output_range("j-00000001", 3) == ["b1", "b2", "b3", "c0", "c1", "c2", "d0"]  # mid-batch
    assert await store.output_range("j-00000001", 2, 4) == ["b0", "b1", "b2", "b3"]  # exactly one batch
    assert await store.output_range("j-00000001", 3, 4) == ["b1", "b2", "b3", "c0"]  # across a boundary
    assert await store.output_range("j-00000001", 1, 8) == ["a1", "b0", "b1", "b2", "b3", "c0", "c1", "c2"]
    assert await store.output_range("j-00000001", 9) == ["d0"]
    assert await store.output_range("j-00000001", 8, 50) == ["c2", "d0"]  # a limit past the end
    assert await store.output_range("j-00000001", 0, 1) == ["a0"]
    assert await store.output_range("j-00000001", 10) == []  # start at the end
    assert await store.output_range("j-00000001", 11, 3) == []  # start past the end
    assert await store.output_range("j-00000001", 4, 0) == []
    # Every window agrees with output(), the order it promises to follow.
    for start in range(12):
        for limit in (None, 0, 1, 2, 3, 5, 10, 20):
            expected = everything[start:] if limit is None else everything[start : start + limit]
            assert await store.output_range("j-00000001", start, limit) == expected, (start, limit)


async def test_output_range_of_seqless_and_mixed_batches_follows_output(store: JobStore) -> None:
    for lines in (["old0", "old1"], ["old2"], ["old3", "old4", "old5"]):
        assert await append(store, "j-00000001", None, lines)
    assert await store.output_range("j-00000001", 1, 4) == ["old1", "old2", "old3", "old4"]
    assert await store.output_range("j-00000001", 3) == ["old3", "old4", "old5"]
    await append(store, "j-00000001", 1, ["one"])
    await append(store, "j-00000001", 0, ["zero0", "zero1"])
    # seq'd batches first, then the seq-less ones by arrival (as output() reads them)
    assert await store.output("j-00000001") == ["zero0", "zero1", "one", "old0", "old1", "old2", "old3", "old4", "old5"]
    assert await store.output_range("j-00000001", 1, 3) == ["zero1", "one", "old0"]
    assert await store.output_range("j-00000001", 5) == ["old2", "old3", "old4", "old5"]


async def test_output_range_skips_empty_batches_and_keeps_empty_lines(store: JobStore) -> None:
    await append(store, "j-00000001", 0, ["a", ""])
    await append(store, "j-00000001", 1, [])
    await append(store, "j-00000001", 2, [])
    await append(store, "j-00000001", 3, ["", "d"])
    await append(store, "j-00000001", 4, [])
    assert await store.output_range("j-00000001", 1, 2) == ["", ""]
    assert await store.output_range("j-00000001", 2) == ["", "d"]
    assert await store.output_range("j-00000001", 3, 1) == ["d"]
    assert await store.output_range("j-00000001", 4) == []


async def test_output_range_of_an_unknown_job_is_empty_and_a_negative_start_is_refused(store: JobStore) -> None:
    assert await store.output_range("j-0000dead", 0) == []
    assert await store.output_range("j-0000dead", 5, 10) == []
    await append(store, "j-00000001", 0, ["a"])
    assert await store.output_range("j-00000002", 0) == []  # another job's lines are not this one's
    with pytest.raises(ValueError):
        await store.output_range("j-00000001", -1)
    with pytest.raises(ValueError):
        await store.output_range("j-0000dead", -1, 5)


async def test_output_range_near_the_end_of_a_long_job(store: JobStore) -> None:
    """100,000 lines in 1,000 batches of 100, stored in a shuffled seq order."""
    seqs = list(range(1000))
    random.Random(23).shuffle(seqs)
    for first in range(0, 1000, 250):
        batches = [(seq, [f"line {seq * 100 + n}" for n in range(100)]) for seq in seqs[first : first + 250]]
        await store.append_many([("j-00000001", seq, lines) for seq, lines in batches])
    assert await store.output_line_count("j-00000001") == 100_000
    assert await store.output_range("j-00000001", 99_950) == [f"line {n}" for n in range(99_950, 100_000)]
    assert await store.output_range("j-00000001", 99_890, 20) == [f"line {n}" for n in range(99_890, 99_910)]
    assert await store.output_range("j-00000001", 50_050, 3) == ["line 50050", "line 50051", "line 50052"]
    assert await store.output_range("j-00000001", 99_999, 10) == ["line 99999"]
    assert await store.output_range("j-00000001", 100_000) == []


# --- recent(): the web view's filters and paging (issue #23) ----------------------------------


def spec_job(job_id: str, at: float, *, repo: str | None = "owner/repo", agent: AgentKind = AgentKind.SHELL, user: User = ALICE) -> Job:
    return Job.queued(job_id, attrs.evolve(SPEC, repo=repo, agent=agent), WHERE, user, at=at)


async def test_recent_filters_by_the_specs_repo_exactly(store: JobStore) -> None:
    for n, repo in enumerate(("owner/repo", "owner/other", None, "owner/repo-2", "Owner/Repo", "owner/repo"), start=1):
        await store.add(spec_job(f"j-0000000{n}", at=float(n), repo=repo))
    assert [job.id for job in await store.recent(limit=10, repo="owner/repo")] == ["j-00000006", "j-00000001"]
    assert [job.id for job in await store.recent(limit=10, repo="owner/other")] == ["j-00000002"]
    assert await store.recent(limit=10, repo="owner") == []
    assert await store.recent(limit=10, repo="") == []
    # After a save (the stored body is rewritten) the job is still found by its repo.
    await store.save((await store.get("j-00000002")).starting(at=9.0))
    assert [job.id for job in await store.recent(limit=10, repo="owner/other", states={JobState.STARTING})] == ["j-00000002"]


async def test_recent_filters_by_the_specs_agent_kind(store: JobStore) -> None:
    from opendispatch.domain.agent_progress import AgentSummary

    kinds = (AgentKind.CLAUDE, AgentKind.SHELL, AgentKind.OPENCODE, AgentKind.CLAUDE, AgentKind.SHELL)
    for n, kind in enumerate(kinds, start=1):
        await store.add(spec_job(f"j-0000000{n}", at=float(n), agent=kind))
    # A job's own `agent` (what the agent reported) is another field: it must not be matched.
    await store.save((await store.get("j-00000002")).with_agent(AgentSummary(answer="claude", model="claude")))
    assert [job.id for job in await store.recent(limit=10, agent="claude")] == ["j-00000004", "j-00000001"]
    assert [job.id for job in await store.recent(limit=10, agent="shell")] == ["j-00000005", "j-00000002"]
    assert [job.id for job in await store.recent(limit=10, agent="opencode")] == ["j-00000003"]
    assert await store.recent(limit=10, agent="codex") == []
    assert await store.recent(limit=10, agent="CLAUDE") == []


async def test_recent_filters_by_created_before_strictly(store: JobStore) -> None:
    for number, at in enumerate((100.0, 200.0, 300.0), start=1):
        await store.add(queued(f"j-0000000{number}", at=at))
    assert [job.id for job in await store.recent(limit=10, created_before=200.0)] == ["j-00000001"]
    assert [job.id for job in await store.recent(limit=10, created_before=200.5)] == ["j-00000002", "j-00000001"]
    assert await store.recent(limit=10, created_before=100.0) == []
    window = await store.recent(limit=10, created_after=200.0, created_before=300.0)
    assert [job.id for job in window] == ["j-00000002"]
    assert await store.recent(limit=10, created_after=250.0, created_before=250.0) == []


async def test_recent_pages_with_offset_newest_first(store: JobStore) -> None:
    # Seven jobs, two of them created at the same time: ties read newest added first.
    for n, at in enumerate((1.0, 2.0, 3.0, 3.0, 5.0, 6.0, 7.0), start=1):
        await store.add(queued(f"j-0000000{n}", at=at))
    pages = [[job.id for job in await store.recent(limit=3, offset=offset)] for offset in (0, 3, 6, 9)]
    assert pages == [
        ["j-00000007", "j-00000006", "j-00000005"],
        ["j-00000004", "j-00000003", "j-00000002"],
        ["j-00000001"],
        [],
    ]
    assert [job.id for job in await store.recent(limit=2, offset=3)] == ["j-00000004", "j-00000003"]
    assert [job.id for job in await store.recent(limit=10, offset=0)] == [f"j-0000000{n}" for n in range(7, 0, -1)]
    assert await store.recent(limit=0, offset=2) == []
    with pytest.raises(ValueError):
        await store.recent(limit=3, offset=-1)


async def test_recent_offset_counts_only_the_filtered_matches(store: JobStore) -> None:
    rows = [
        ("j-00000001", "owner/repo", AgentKind.CLAUDE, ALICE),
        ("j-00000002", "owner/other", AgentKind.CLAUDE, ALICE),
        ("j-00000003", "owner/repo", AgentKind.SHELL, BOB),
        ("j-00000004", "owner/repo", AgentKind.CLAUDE, ALICE),
        ("j-00000005", "owner/repo", AgentKind.CLAUDE, BOB),
        ("j-00000006", "owner/repo", AgentKind.CLAUDE, ALICE),
        ("j-00000007", "owner/other", AgentKind.SHELL, ALICE),
        ("j-00000008", "owner/repo", AgentKind.CLAUDE, ALICE),
    ]
    for n, (job_id, repo, kind, user) in enumerate(rows, start=1):
        await store.add(spec_job(job_id, at=float(n * 10), repo=repo, agent=kind, user=user))
    await store.save((await store.get("j-00000006")).failed(FailureStage.SPAWN, "no capacity", at=61.0))

    def ids(jobs: list[Job]) -> list[str]:
        return [job.id for job in jobs]

    repo, agent = "owner/repo", "claude"  # both: j-8, j-6, j-5, j-4, j-1
    assert ids(await store.recent(limit=2, repo=repo, agent=agent)) == ["j-00000008", "j-00000006"]
    assert ids(await store.recent(limit=2, offset=2, repo=repo, agent=agent)) == ["j-00000005", "j-00000004"]
    assert ids(await store.recent(limit=2, offset=4, repo=repo, agent=agent)) == ["j-00000001"]
    alices = await store.recent(limit=2, offset=1, user_id=ALICE.id, repo=repo, agent=agent)
    assert ids(alices) == ["j-00000006", "j-00000004"]
    queued_only = await store.recent(limit=2, offset=1, states={JobState.QUEUED}, repo=repo, agent=agent)
    assert ids(queued_only) == ["j-00000005", "j-00000004"]
    timed = await store.recent(limit=2, offset=1, created_after=20.0, created_before=80.0, repo="owner/repo")
    assert ids(timed) == ["j-00000005", "j-00000004"]  # j-6 is skipped, j-8 is not before 80
    here = await store.recent(limit=3, offset=1, channel=Conversation("console", "c1"), agent="shell")
    assert ids(here) == ["j-00000003"]
    assert await store.recent(limit=5, offset=1, repo="owner/other", agent="shell") == []
