"""The plain-text rendering carries every fact a user needs to act on a message."""

from __future__ import annotations

import pytest

from opendispatch.domain.job import Artifact, Conversation, FailureStage, Job, JobState, User
from opendispatch.domain.job_spec import AgentKind, JobSpec
from opendispatch.domain.messages import (
    JobAccepted,
    JobCard,
    JobTable,
    LiveOutput,
    LogExcerpt,
    Notice,
)
from opendispatch.domain.job_spec import format_duration
from opendispatch.domain.render import render_state, render_text

SPEC = JobSpec(task="run the tests", agent=AgentKind.SHELL, repo="owner/repo", timeout_s=600.0)
WHERE = Conversation("console", "console")
ALICE = User("u1", "alice")
T0 = 1_000.0


def queued(job_id: str = "j-1234abcd", spec: JobSpec = SPEC, at: float = T0) -> Job:
    return Job.queued(job_id, spec, WHERE, ALICE, at=at)


def running(job_id: str = "j-1234abcd") -> Job:
    return queued(job_id).starting(at=T0 + 1).running()


def test_notice_is_its_text() -> None:
    assert render_text(Notice("Bad timeout 'x': use a duration such as 90s.")) == (
        "Bad timeout 'x': use a duration such as 90s."
    )


def test_multi_line_notice_is_kept_verbatim() -> None:
    assert render_text(Notice("usage:\n  /od-run task")) == "usage:\n  /od-run task"


def test_accepted_names_the_job_what_was_resolved_who_and_how_to_stop_it() -> None:
    text = render_text(JobAccepted(queued()))

    assert text.splitlines()[0] == (
        "▶ Job j-1234abcd queued: owner/repo @ main · shell · default image"
    )
    assert "alice" in text
    assert "10m" in text
    assert "/od-cancel j-1234abcd" in text


def test_live_output_keeps_every_line_in_order_with_header() -> None:
    lines = tuple(f"line {n}" for n in range(50))
    text = render_text(
        LiveOutput(running(), page=0, lines=lines, omitted=0, elapsed_s=12.0, sealed=False)
    )

    header, *body = text.splitlines()
    assert "j-1234abcd" in header
    assert "⏱ 12s" in header
    assert "page" not in header
    assert body == list(lines)


def test_live_output_shows_later_pages_and_the_omitted_hint() -> None:
    text = render_text(
        LiveOutput(running(), page=2, lines=("tail",), omitted=40, elapsed_s=75.0, sealed=False)
    )

    header, hint, last = text.splitlines()
    assert "⏱ 1m15s" in header
    assert "page 3" in header
    assert hint == "… 40 earlier lines not shown (/od-logs j-1234abcd for all)"
    assert last == "tail"


def test_live_output_without_omitted_lines_has_no_hint() -> None:
    text = render_text(
        LiveOutput(running(), page=0, lines=("a",), omitted=0, elapsed_s=1.0, sealed=True)
    )
    assert "not shown" not in text


def test_failed_card_says_where_why_exit_code_and_tail() -> None:
    job = running().failed(FailureStage.CLONE, "repository not found", at=T0 + 66, exit_code=128)
    card = JobCard(job, tail=("fatal: repository not found",), total_lines=1, duration_s=65.0)

    text = render_text(card)

    status = text.splitlines()[0]
    assert status.startswith("❌")
    assert "j-1234abcd" in status
    assert "exit code 128" in status
    assert "1m5s" in status
    assert "owner/repo @ main · shell · default image" in text
    assert "Failed at clone: repository not found" in text
    assert text.endswith("Last lines:\nfatal: repository not found")
    assert "lines in total" not in text


def test_agent_start_stage_is_named_as_people_say_it() -> None:
    job = running().failed(FailureStage.AGENT_START, "claude: command not found", at=T0 + 3)
    text = render_text(JobCard(job, tail=(), total_lines=0, duration_s=2.0))

    assert "Failed at agent start: claude: command not found" in text
    assert "exit code" not in text


def test_cancelled_card_says_who() -> None:
    job = running().cancelled(by="bob", at=T0 + 10)
    text = render_text(JobCard(job, tail=("bye",), total_lines=1, duration_s=9.0))

    assert text.startswith("🛑")
    assert "Cancelled by bob" in text


def test_succeeded_card_lists_artifacts_and_points_at_the_full_log() -> None:
    job = (
        running()
        .with_artifacts((Artifact("report", "https://example.test/r.html"),))
        .succeeded(at=T0 + 30)
    )
    tail = ("ok 9", "ok 10")
    text = render_text(JobCard(job, tail=tail, total_lines=10, duration_s=29.0))

    assert text.startswith("✅ Job j-1234abcd succeeded")
    assert "exit code 0" in text
    assert "report: https://example.test/r.html" in text
    assert "Last lines:\nok 9\nok 10" in text
    assert text.endswith("(10 lines in total: /od-logs j-1234abcd)")
    assert "Failed" not in text


def test_timed_out_card_names_the_timeout() -> None:
    job = running().timed_out(at=T0 + 601)
    text = render_text(JobCard(job, tail=(), total_lines=0, duration_s=600.0))

    assert text.startswith("⏰")
    assert "Timed out" in text
    assert "10m" in text


def test_lost_card_gives_the_reason() -> None:
    job = running().lost("no report from the sprite for 5m", at=T0 + 400)
    text = render_text(JobCard(job, tail=(), total_lines=0, duration_s=399.0))

    assert text.startswith("❓")
    assert "no report from the sprite for 5m" in text


@pytest.mark.parametrize(
    ("state", "expected"),
    [
        (JobState.SUCCEEDED, "✅ succeeded"),
        (JobState.FAILED, "❌ failed"),
        (JobState.CANCELLED, "🛑 cancelled"),
        (JobState.TIMED_OUT, "⏰ timed out"),
        (JobState.LOST, "❓ lost"),
    ],
)
def test_final_states_have_their_icons(state: JobState, expected: str) -> None:
    assert render_state(state) == expected


def test_every_state_renders() -> None:
    rendered = {render_state(state) for state in JobState}
    assert len(rendered) == len(JobState)


def test_table_lists_each_job_with_state_age_duration_task_and_requester_under_headings() -> None:
    old = queued("j-00000001", at=T0)
    new = Job.queued("j-00000002", SPEC, WHERE, User("u2", "bob"), at=T0 + 3_000).starting(
        at=T0 + 3_001
    )
    done = running().succeeded(at=T0 + 9)
    table = JobTable("Recent jobs", jobs=(old, new, done), now=T0 + 3_605)

    title, heading, first, second, third = render_text(table).splitlines()

    assert title == "Recent jobs"
    assert heading.split() == ["JOB", "STATE", "AGE", "TOOK", "COST", "TASK", "·", "WHERE", "·", "WHO"]
    assert first.startswith("j-00000001")
    assert "⏳ queued" in first and "1h5s" in first and first.endswith("alice")
    assert f'"{SPEC.task}" · owner/repo @ main · shell · default image · alice' in first
    assert second.startswith("j-00000002")
    assert "🚀 starting" in second and "10m5s" in second and "bob" in second
    # age (since it was asked for) and duration (how long it ran) are two columns
    assert done.started_at is not None
    assert f"{format_duration(3_605)}" in third and "     8s" in third  # started at T0 + 1, ended at T0 + 9


def test_empty_table_says_so() -> None:
    text = render_text(JobTable("Running jobs", jobs=(), now=T0, empty_text="Nothing running."))
    assert text == "Running jobs\nNothing running."


def test_log_excerpt_says_how_much_is_shown() -> None:
    job = running().succeeded(at=T0 + 5)
    text = render_text(LogExcerpt(job, lines=("c", "d"), total_lines=4))

    header, *body = text.splitlines()
    assert "j-1234abcd" in header
    assert "showing 2 of 4 lines" in header
    assert body == ["c", "d"]


def test_accepted_names_the_agent_and_image_asked_for() -> None:
    spec = JobSpec(task="deploy", agent=AgentKind.CLAUDE, repo="owner/repo", image="registry/x:1")
    text = render_text(JobAccepted(queued(spec=spec)))
    assert "owner/repo @ main · claude · registry/x:1" in text


def test_a_long_answer_is_cut_with_a_pointer_outside_any_code_block() -> None:
    from opendispatch.domain.render import answer_excerpt

    answer = "Intro\n```python\n" + "\n".join(f"x = {n}" for n in range(400)) + "\n```\nDone."
    cut = answer_excerpt(answer, "j-1", limit=300)
    lines = cut.split("\n")
    assert lines[-1] == "… (the full answer: /od-logs j-1)" and lines[-2] == "```"
    assert len(cut) < 340
    assert answer_excerpt("short", "j-1") == "short"


def test_activity_status_says_what_runs_now_in_one_short_line() -> None:
    from opendispatch.domain.agent_progress import ProgressView, Step
    from opendispatch.domain.render import STATUS_CHARS, activity_status

    def view(current: Step | None = None, recent: tuple[Step, ...] = (), text: str = "") -> ProgressView:
        return ProgressView(current=current, recent=recent, knows_current_step=True, input_tokens=0, output_tokens=0,
                            cost_usd=None, cost_is_estimate=False, latest_text=text, plan=(), steps_done=len(recent))

    assert activity_status(view(Step("Bash: npm test"))) == "running Bash: npm test…"
    assert activity_status(view(recent=(Step("Read: a.py", ok=True),))) == "done Read: a.py…"
    assert activity_status(view(recent=(Step("Edit: b.py", ok=False),))) == "failed Edit: b.py…"
    assert activity_status(view(text="Let me look\n  at the tests")) == "thinking: Let me look at the tests…"
    assert activity_status(None, state="starting") == "starting…"
    long = activity_status(view(Step("Bash: " + "x" * 500)))
    assert len(long) == STATUS_CHARS and long.endswith("…")
