"""ConsoleChat on in-memory text streams: live output is printed once, commands are read."""

from __future__ import annotations

import io

import attrs
import trio

from opendispatch.adapters.console import ConsoleChat
from opendispatch.domain.agent_events import AgentStarted, AgentText, FileChange, ToolFinished, ToolStarted, UsageReported
from opendispatch.domain.agent_progress import AgentProgress, AgentSummary, ProgressView
from opendispatch.domain.job import Conversation, FailureStage, Job, User
from opendispatch.domain.job_spec import AgentKind, JobSpec
from opendispatch.domain.messages import Inbound, JobAccepted, JobCard, LiveOutput, Notice
from opendispatch.domain.render import render_text

WHERE = Conversation("console", "console")
SPEC = JobSpec(task="run the tests", agent=AgentKind.SHELL, repo="owner/repo")
CEILING_S = 5


def running_job(job_id: str = "j-1234abcd") -> Job:
    job = Job.queued(job_id, SPEC, WHERE, User("console", "you"), at=0.0)
    return job.starting(at=1.0).running()


def live(
    job: Job, lines: tuple[str, ...], *, omitted: int = 0, page: int = 0, elapsed: float = 3.0
) -> LiveOutput:
    return LiveOutput(job, page=page, lines=lines, omitted=omitted, elapsed_s=elapsed, sealed=False)


def plain_console(output: io.StringIO, input_text: str = "") -> ConsoleChat:
    return ConsoleChat(output, io.StringIO(input_text), color=False, env={"USER": "ada"})


def printed_lines(output: io.StringIO, job_id: str = "j-1234abcd") -> list[str]:
    """The text of each printed live line of one job, without its gutter."""
    prefix = f"{job_id} "
    return [
        line.split(" │ ", 1)[1]
        for line in output.getvalue().splitlines()
        if line.startswith(prefix) and " │ " in line
    ]


async def test_send_and_edits_print_each_live_line_exactly_once_in_order() -> None:
    output = io.StringIO()
    chat = plain_console(output)
    job = running_job()

    ref = await chat.send(WHERE, live(job, ("one",)))
    await chat.edit(ref, live(job, ("one", "two", "three")))
    await chat.edit(ref, live(job, ("one", "two", "three")))  # only the clock moved
    await chat.edit(ref, live(job, ("one", "two", "three", "four"), elapsed=7.0))

    assert printed_lines(output) == ["one", "two", "three", "four"]
    assert "j-1234abcd  0:03 │ one" in output.getvalue().splitlines()
    assert "j-1234abcd  0:07 │ four" in output.getvalue().splitlines()


async def test_a_rolling_page_prints_only_its_new_tail() -> None:
    output = io.StringIO()
    chat = plain_console(output)
    job = running_job()

    ref = await chat.send(WHERE, live(job, ("a", "b", "c")))
    await chat.edit(ref, live(job, ("c", "d", "e"), omitted=2))  # a, b rolled off; d, e new
    await chat.edit(ref, live(job, ("e", "f"), omitted=4))

    assert printed_lines(output) == ["a", "b", "c", "d", "e", "f"]


async def test_lines_dropped_between_two_prints_are_reported_not_invented() -> None:
    output = io.StringIO()
    chat = plain_console(output)
    job = running_job()

    ref = await chat.send(WHERE, live(job, ("a", "b")))
    await chat.edit(ref, live(job, ("y", "z"), omitted=5))  # lines 2..4 never reached us

    assert printed_lines(output) == [
        "a",
        "b",
        "… 3 lines not shown (/od-logs j-1234abcd for all)",
        "y",
        "z",
    ]


async def test_two_jobs_streaming_at_once_stay_apart() -> None:
    output = io.StringIO()
    chat = plain_console(output)
    first, second = running_job("j-00000001"), running_job("j-00000002")

    ref1 = await chat.send(WHERE, live(first, ("1a",)))
    ref2 = await chat.send(WHERE, live(second, ("2a",)))
    await chat.edit(ref1, live(first, ("1a", "1b")))
    await chat.edit(ref2, live(second, ("2a", "2b")))

    assert printed_lines(output, "j-00000001") == ["1a", "1b"]
    assert printed_lines(output, "j-00000002") == ["2a", "2b"]


async def test_a_new_page_prints_all_of_its_lines() -> None:
    output = io.StringIO()
    chat = plain_console(output)
    job = running_job()

    first_page = await chat.send(WHERE, live(job, ("a", "b")))
    await chat.edit(first_page, live(job, ("a", "b", "c")))
    await chat.send(WHERE, live(job, ("d",), page=1))

    assert printed_lines(output) == ["a", "b", "c", "d"]


async def test_other_messages_print_their_rendering_and_edits_reprint_them() -> None:
    output = io.StringIO()
    chat = plain_console(output)
    job = running_job()

    ref = await chat.send(WHERE, JobAccepted(job))
    card = JobCard(
        job.failed(FailureStage.CLONE, "repository not found", at=5.0, exit_code=128),
        tail=("fatal: not found",),
        total_lines=1,
        duration_s=4.0,
    )
    await chat.edit(ref, card)

    text = output.getvalue()
    for message in (JobAccepted(job), card):
        for line in render_text(message).splitlines():
            assert line in text
    assert "Failed at clone: repository not found" in text
    assert "\x1b[" not in text


async def test_refs_are_distinct_and_name_the_conversation() -> None:
    chat = plain_console(io.StringIO())
    first = await chat.send(WHERE, Notice("one"))
    second = await chat.send(WHERE, Notice("two"))
    assert first != second
    assert first.conversation == WHERE


async def test_colour_is_used_only_when_asked() -> None:
    output = io.StringIO()
    chat = ConsoleChat(output, io.StringIO(), color=True, env={})
    await chat.send(WHERE, Notice("hello"))
    assert "\x1b[" in output.getvalue()
    assert "hello" in output.getvalue()


async def test_auto_colour_is_off_for_a_stream_that_is_not_a_terminal() -> None:
    output = io.StringIO()
    chat = ConsoleChat(output, io.StringIO(), env={})
    await chat.send(WHERE, Notice("hello"))
    assert "\x1b[" not in output.getvalue()


async def test_listen_calls_the_handler_for_each_non_blank_line_then_returns_on_eof() -> None:
    output = io.StringIO()
    commands = "/od-jobs\n\n   \n/od-run --agent shell 'echo hi'\n/od-logs j-1234abcd"
    chat = plain_console(output, commands)
    received: list[Inbound] = []

    async def handler(inbound: Inbound) -> None:
        received.append(inbound)
        await chat.send(inbound.conversation, Notice(f"got {inbound.text}"))

    with trio.fail_after(CEILING_S):
        await chat.listen(handler)

    assert [inbound.text for inbound in received] == [
        "/od-jobs",
        "/od-run --agent shell 'echo hi'",
        "/od-logs j-1234abcd",
    ]
    assert all(inbound.user == User("console", "ada") for inbound in received)
    assert all(inbound.conversation == Conversation("console", "console") for inbound in received)
    assert "od> /od-jobs\n• got /od-jobs\n" in output.getvalue()


async def test_quit_ends_listening_before_the_rest_of_the_input() -> None:
    chat = plain_console(io.StringIO(), "/od-jobs\nquit\n/od-jobs\n")
    received: list[str] = []

    async def handler(inbound: Inbound) -> None:
        received.append(inbound.text)

    with trio.fail_after(CEILING_S):
        await chat.listen(handler)

    assert received == ["/od-jobs"]


async def test_listen_reports_ready_when_started_in_a_nursery() -> None:
    chat = plain_console(io.StringIO(), "exit\n")

    async def handler(inbound: Inbound) -> None:
        raise AssertionError(f"no command expected, got {inbound.text!r}")

    with trio.fail_after(CEILING_S):
        async with trio.open_nursery() as nursery:
            await nursery.start(chat.listen, handler)


async def test_user_name_falls_back_when_user_is_unset() -> None:
    chat = ConsoleChat(io.StringIO(), io.StringIO("hi\n"), color=False, env={})
    names: list[str] = []

    async def handler(inbound: Inbound) -> None:
        names.append(inbound.user.name)

    with trio.fail_after(CEILING_S):
        await chat.listen(handler)

    assert names == ["you"]


def _agent_view(*events: object) -> ProgressView:
    agent = AgentProgress()
    for event in events:
        agent.apply(event)  # type: ignore[arg-type]
    return agent.view()


def progress_printed(output: io.StringIO, job_id: str = "j-1234abcd") -> list[str]:
    """The agent progress lines printed for one job (they have a dotted gutter)."""
    prefix = f"{job_id} "
    return [
        line.split(" ┆ ", 1)[1]
        for line in output.getvalue().splitlines()
        if line.startswith(prefix) and " ┆ " in line
    ]


async def test_agent_progress_is_printed_as_it_changes_each_step_once() -> None:
    output = io.StringIO()
    chat = plain_console(output)
    job = running_job()
    started = (AgentStarted(agent="claude", model="claude-sonnet-4-5"), ToolStarted("t1", "Bash", "npm test"))
    first = _agent_view(*started)
    second = _agent_view(*started, ToolFinished("t1", "Bash", "npm test", ok=False), ToolStarted("t2", "Edit", "a.py"),
                         AgentText("Fixing it"))
    third = _agent_view(*started, ToolFinished("t1", "Bash", "npm test", ok=False), ToolStarted("t2", "Edit", "a.py"),
                        AgentText("Fixing it"), ToolFinished("t2", "Edit", "a.py"), UsageReported(100, 10))

    ref = await chat.send(WHERE, attrs.evolve(live(job, ("a",)), progress=first))
    await chat.edit(ref, attrs.evolve(live(job, ("a", "b")), progress=second))
    await chat.edit(ref, attrs.evolve(live(job, ("a", "b")), progress=third))
    await chat.send(WHERE, attrs.evolve(live(job, ("c",), page=1), progress=third))  # a new page repeats nothing

    assert printed_lines(output) == ["a", "b", "c"]
    assert progress_printed(output) == ["▶ Bash: npm test", "✗ Bash: npm test", "▶ Edit: a.py", "💬 Fixing it", "✓ Edit: a.py"]
    assert "{" not in output.getvalue() and "\x1b[" not in output.getvalue()


async def test_the_card_prints_the_agent_usage_files_and_answer() -> None:
    output = io.StringIO()
    chat = plain_console(output)
    summary = AgentSummary(
        answer="# Done\nAll **green**.", ok=True, cost_usd=0.42, input_tokens=12_300, output_tokens=1_200, turns=3,
        model="claude-sonnet-4-5", files=(FileChange("src/app.py", 10, 2),), files_summary="1 file changed",
    )
    job = running_job().succeeded(at=9.0).with_agent(summary)
    await chat.send(WHERE, JobCard(job, tail=("raw tail",), total_lines=1, duration_s=8.0))
    text = output.getvalue()
    assert "12.3k tokens in · 1.2k out · $0.42 · 3 turns · claude-sonnet-4-5" in text
    assert "Files changed: 1 file changed" in text and "src/app.py +10 −2" in text
    assert "# Done\n  All **green**." in text and "raw tail" not in text
    capped = running_job().failed(FailureStage.COST_CAP, "stopped: cost cap $2.50 reached at $2.61", at=9.0)
    await chat.send(WHERE, JobCard(capped, tail=(), total_lines=0, duration_s=8.0))
    assert "Failed at cost cap: stopped: cost cap $2.50 reached at $2.61" in output.getvalue()


async def test_a_raw_transcript_is_shown_as_its_newest_lines_and_saved_whole(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from opendispatch.domain.messages import LogExcerpt

    output = io.StringIO()
    chat = ConsoleChat(output, io.StringIO(), color=False, env={}, files_dir=tmp_path / "transcripts")
    lines = tuple(f'{{"n": {n}}}' for n in range(250))
    await chat.send(WHERE, LogExcerpt(job=running_job(), lines=lines, total_lines=250, raw=True))
    saved = tmp_path / "transcripts" / "j-1234abcd.transcript.jsonl"
    assert saved.read_text().splitlines() == list(lines)
    assert saved.stat().st_mode & 0o077 == 0  # the agent's work, for this user only
    text = output.getvalue()
    assert "Raw agent transcript of j-1234abcd · showing 200 of 250 lines" in text
    assert '{"n": 49}' not in text and '{"n": 249}' in text
    assert f"The whole transcript (250 lines) is in {saved}" in text


async def test_quit_means_leave_now_but_the_end_of_piped_input_does_not() -> None:
    """`quit` tells the demo to stop running jobs; a pipe that ends lets them finish."""

    async def handler(inbound: Inbound) -> None:
        pass

    quitting = plain_console(io.StringIO(), "/od-jobs\nquit\n")
    ended = plain_console(io.StringIO(), "/od-jobs\n")
    with trio.fail_after(CEILING_S):
        await quitting.listen(handler)
        await ended.listen(handler)
    assert quitting.quitting and not ended.quitting


async def test_the_job_ids_shown_are_remembered_newest_first_for_completion() -> None:
    from opendispatch.domain.messages import JobTable

    chat = plain_console(io.StringIO())
    first, second, third = running_job("j-00000001"), running_job("j-00000002"), running_job("j-00000003")
    await chat.send(WHERE, JobAccepted(first))
    await chat.send(WHERE, live(second, ("a",)))
    await chat.send(WHERE, JobCard(first.succeeded(at=2.0), tail=(), total_lines=0, duration_s=1.0))
    await chat.send(WHERE, JobTable(title="Recent jobs", jobs=(third, second), now=5.0))
    assert chat.job_ids == ("j-00000003", "j-00000002", "j-00000001")


class ClosedTerminal(io.StringIO):
    """Writing to a terminal whose window was closed fails with EIO."""

    def write(self, text: str) -> int:
        raise OSError(5, "Input/output error")


async def test_printing_to_a_terminal_that_went_away_is_not_an_error() -> None:
    """After SIGHUP the running jobs are stopped and their cards printed to nobody."""
    chat = ConsoleChat(ClosedTerminal(), io.StringIO(), color=False, env={})
    job = running_job()
    await chat.send(WHERE, JobCard(job.cancelled(by="the terminal closing", at=2.0), tail=(), total_lines=0, duration_s=1.0))


async def test_a_job_that_prints_nothing_says_it_runs_then_every_thirty_seconds_until_it_speaks() -> None:
    """Before: a silent job showed only "queued" until its card (issue #27)."""
    output = io.StringIO()
    chat = plain_console(output)
    job = running_job()
    ref = await chat.send(WHERE, live(job, (), elapsed=0.4))
    for elapsed in (10.4, 20.4, 30.4, 40.4, 60.5):  # the heartbeat re-sends the empty page
        await chat.edit(ref, live(job, (), elapsed=elapsed))
    await chat.edit(ref, live(job, ("at last",), elapsed=70.0))
    await chat.edit(ref, live(job, ("at last",), elapsed=100.0))
    notes = [line for line in output.getvalue().splitlines() if "┆" in line]
    assert notes == [
        "j-1234abcd  0:00 ┆ running; no output yet",
        "j-1234abcd  0:30 ┆ still running; no output yet",
        "j-1234abcd  1:00 ┆ still running; no output yet",
    ]
    assert printed_lines(output) == ["at last"]


async def test_a_kept_artifact_is_previewed_and_saved_whole_for_this_user_only(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from opendispatch.domain.job import Artifact
    from opendispatch.domain.messages import KeptFile, LogExcerpt

    output = io.StringIO()
    chat = ConsoleChat(output, io.StringIO(), color=False, env={}, files_dir=tmp_path / "files")
    file = KeptFile(Artifact("test report", "/w/out/report.txt", "file", kept=True, size=9), b"4 passed\n")
    await chat.send(WHERE, LogExcerpt(job=running_job(), lines=("4 passed",), total_lines=1, file=file))
    saved = tmp_path / "files" / "j-1234abcd.report.txt"
    assert saved.read_bytes() == b"4 passed\n" and saved.stat().st_mode & 0o077 == 0
    assert output.getvalue().splitlines()[-3:] == [
        "¶ Artifact 'test report' of j-1234abcd · 9 B", "  4 passed", f"  The file (9 bytes) is saved as {saved}",
    ]
