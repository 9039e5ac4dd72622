"""What a job's stream appends: new lines once, steps with stable ids, Slack's size limits."""

from __future__ import annotations

from opendispatch.adapters.slack.stream import MARKDOWN_LIMIT, StreamState, TaskTimeline, code_markdown, code_pieces
from opendispatch.domain.agent_events import AgentStarted, ToolFinished, ToolStarted
from opendispatch.domain.agent_progress import AgentProgress, ProgressView
from opendispatch.domain.job import Conversation, Job, User
from opendispatch.domain.job_spec import AgentKind, JobSpec
from opendispatch.domain.messages import LiveOutput

JOB = Job.queued("j-0123abcd", JobSpec(task="t", agent=AgentKind.CLAUDE), Conversation("slack", "C1"), User("U1", "a"), at=0.0)


def page(number: int, lines: list[str], *, omitted: int = 0, sealed: bool = False, progress: ProgressView | None = None) -> LiveOutput:
    return LiveOutput(JOB, number, tuple(lines), omitted, 1.0, sealed, progress)


def texts(state: StreamState) -> list[str]:
    """The markdown of every call it takes to send what is pending."""
    found: list[str] = []
    while state.has_pending:
        found += [str(c["text"]) for c in state.take().chunks if c["type"] == "markdown_text"]
    return found


def test_each_line_is_appended_once_across_edits_and_pages() -> None:
    state = StreamState(JOB.id)
    state.note(page(0, ["a", "b"]))
    state.note(page(0, ["a", "b", "c"]))
    state.note(page(0, ["a", "b", "c"], sealed=True))
    state.note(page(1, ["d"]))
    assert texts(state) == ["```\na\nb\n```\n", "```\nc\n```\n", "```\nd\n```\n"]
    assert not state.has_pending


def test_a_rolling_page_appends_only_its_new_lines_and_says_what_it_never_saw() -> None:
    state = StreamState(JOB.id)
    state.note(page(4, ["1", "2", "3"]))
    state.take()
    state.note(page(4, ["3", "4", "5"], omitted=2))  # "4" and "5" are new
    state.note(page(4, ["9", "10"], omitted=8))  # six more passed, four of them never shown here
    assert texts(state) == ["```\n4\n5\n```\n", "_… 3 lines not shown here: /od-logs j-0123abcd_\n", "```\n9\n10\n```\n"]


def test_output_cannot_close_its_code_block_or_ping_anyone() -> None:
    text = code_markdown(["```", "<!channel> hi <@U1> <#C1>", "a < b"])
    assert text.count("```") == 2  # only the block's own fences
    assert "<!" not in text and "<@" not in text and "<#" not in text and "a < b" in text


def test_long_output_is_cut_into_markdown_chunks_slack_accepts_and_the_budget_points_to_the_logs() -> None:
    lines = [("x" * 2999) for _ in range(12)]
    assert all(len(piece) <= MARKDOWN_LIMIT for piece in code_pieces(lines))
    state = StreamState(JOB.id, text_budget=30_000)
    state.note(page(0, lines[:10], sealed=True))
    first = state.take()
    assert 0 < first.markdown_chars() <= MARKDOWN_LIMIT and state.has_pending  # the rest waits for the next call
    second = state.take()
    assert second.markdown_chars() <= MARKDOWN_LIMIT and state.has_pending
    assert texts(state)  # all ten lines: exactly the budget
    state.note(page(1, lines[10:11]))
    assert texts(state) == ["_The output goes on; /od-logs j-0123abcd has all of it._\n"]
    state.note(page(1, lines[10:]))
    assert texts(state) == []  # past the budget, lines are no longer streamed


def test_confirmed_lines_decide_which_pages_a_fallback_must_show() -> None:
    state = StreamState(JOB.id)
    state.note(page(0, ["a", "b"], sealed=True))
    state.confirm(state.take())
    state.note(page(1, ["c"]))
    state.take()  # sent, never confirmed: the stream broke
    assert [p.page for p in state.unshown_pages()] == [1]


def view(*events: object) -> ProgressView:
    agent = AgentProgress()
    for event in events:
        agent.apply(event)  # type: ignore[arg-type]
    return agent.view()


def statuses(chunks: list[dict[str, object]]) -> list[tuple[object, object, object]]:
    return [(c["id"], c["status"], c["title"]) for c in chunks]


def test_a_step_keeps_its_id_from_running_to_done() -> None:
    timeline = TaskTimeline()
    started = [AgentStarted(agent="claude"), ToolStarted("t1", "Bash", "npm test")]
    assert statuses(timeline.update(view(*started))) == [("step-1", "in_progress", "Bash: npm test")]
    assert timeline.update(view(*started)) == []  # nothing new
    done = [*started, ToolFinished("t1", "Bash", "npm test", ok=False), ToolStarted("t2", "Read", "a.py"),
            ToolFinished("t2", "Read", "a.py", ok=True), ToolStarted("t3", "Edit", "a.py")]
    assert statuses(timeline.update(view(*done))) == [
        ("step-1", "error", "Bash: npm test"),  # seen running: same id
        ("step-2", "complete", "Read: a.py"),  # ran between two views: shown once, done
        ("step-3", "in_progress", "Edit: a.py"),
    ]
    assert statuses(timeline.close(ok=True)) == [("step-3", "complete", "Edit: a.py")]
    assert timeline.close(ok=True) == []


def test_a_stream_sends_a_running_step_before_its_end_even_when_both_wait() -> None:
    state = StreamState(JOB.id)
    state.note(page(0, ["x"], progress=view(ToolStarted("t1", "Bash", "ls"))))
    state.note(page(0, ["x"], progress=view(ToolStarted("t1", "Bash", "ls"), ToolFinished("t1", "Bash", "ls", ok=True))))
    chunks = state.take().chunks
    assert [(c["type"], c.get("status")) for c in chunks] == [
        ("task_update", "in_progress"), ("markdown_text", None), ("task_update", "complete")]
