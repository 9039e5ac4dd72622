"""A job's web link ("View live") in the plain-text rendering, and where plain text is all there
is: the console prints it, the memory chat records it (with a private notice's flag).

The plain text is every adapter's fallback, so without a link it must not change at all.
"""

from __future__ import annotations

import io

import attrs

from opendispatch.adapters.console.chat import ConsoleChat
from opendispatch.adapters.memory.chat import MemoryChat
from opendispatch.domain.job import Conversation, FailureStage, Job, User
from opendispatch.domain.job_spec import AgentKind, JobSpec
from opendispatch.domain.messages import JobAccepted, JobCard, Notice
from opendispatch.domain.render import render_lines, render_text

URL = "https://od.example/jobs/j-0000abcd?grant=odw1.eyJ1IjoiVTBBTElDRSJ9.c2lnbmF0dXJl&v=1"
SPEC = JobSpec(task="run the tests", agent=AgentKind.SHELL, repo="owner/repo", timeout_s=600.0)
WHERE = Conversation("console", "console")
ALICE = User("u1", "alice")


def queued() -> Job:
    return Job.queued("j-0000abcd", SPEC, WHERE, ALICE, at=1_000.0)


def failed() -> Job:
    return queued().starting(at=1_001.0).running().failed(FailureStage.AGENT, "exit 2", at=1_010.0, exit_code=2)


def card(web_url: str | None = None) -> JobCard:
    return JobCard(job=failed(), tail=("collecting", "1 failed"), total_lines=2, duration_s=9.0, web_url=web_url)


def test_the_first_reply_ends_with_the_view_live_line() -> None:
    without = render_lines(JobAccepted(queued()))
    with_link = render_lines(JobAccepted(queued(), web_url=URL))
    assert with_link == [*without, f"View live: {URL}"]


def test_the_card_has_the_view_live_line_under_its_first_two_lines() -> None:
    without = render_lines(card())
    with_link = render_lines(card(URL))
    assert with_link == [*without[:2], f"View live: {URL}", *without[2:]]
    assert with_link.count(f"View live: {URL}") == 1


def test_without_a_link_nothing_changes() -> None:
    assert render_text(JobAccepted(queued())) == (
        "▶ Job j-0000abcd queued: owner/repo @ main · shell · default image\n"
        "Requested by alice · timeout 10m\n"
        "/od-cancel j-0000abcd to stop it"
    )
    assert "View live" not in render_text(card())
    assert render_text(card()) == render_text(attrs.evolve(card(URL), web_url=None))


def test_a_private_notice_renders_as_its_text() -> None:
    assert render_text(Notice(f"Your link: {URL}", private=True)) == f"Your link: {URL}"


async def test_the_console_prints_the_link_on_both_messages() -> None:
    out = io.StringIO()
    console = ConsoleChat(out, io.StringIO(), color=False, line_editor=False)
    accepted = await console.send(WHERE, JobAccepted(queued(), web_url=URL))
    await console.send(WHERE, card(URL), reply_to=accepted)
    await console.send(WHERE, Notice(f"Your web view: {URL}", private=True))
    printed = out.getvalue().splitlines()
    assert sum(1 for line in printed if line.strip() == f"View live: {URL}") == 2
    assert any(line.endswith(f"Your web view: {URL}") for line in printed)


async def test_the_memory_chat_records_the_link_and_the_private_flag() -> None:
    chat = MemoryChat()
    await chat.send(WHERE, JobAccepted(queued(), web_url=URL))
    await chat.send(WHERE, Notice(f"Your web view: {URL}", private=True))
    accepted, notice = chat.messages()
    assert isinstance(accepted, JobAccepted) and accepted.web_url == URL
    assert isinstance(notice, Notice) and notice.private
    assert f"View live: {URL}" in chat.transcript()
