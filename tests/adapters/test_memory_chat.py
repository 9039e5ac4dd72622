"""MemoryChat records what was said, waits on events, and plays a user."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import trio
import trio.testing

from opendispatch.adapters.memory.chat import MemoryChat, SentMessage
from opendispatch.domain.job import Conversation, Job, User
from opendispatch.domain.job_spec import AgentKind, JobSpec
from opendispatch.domain.messages import (
    ChatMessage,
    Inbound,
    JobAccepted,
    JobCard,
    LiveOutput,
    MessageRef,
    Notice,
)

WHERE = Conversation("memory", "c1")
SPEC = JobSpec(task="run the tests", agent=AgentKind.SHELL, repo="owner/repo")
CEILING_S = 5


def queued_job(job_id: str = "j-1234abcd") -> Job:
    return Job.queued(job_id, SPEC, WHERE, User("u1", "alice"), at=0.0)


def is_notice(text: str) -> Callable[[ChatMessage], bool]:
    return lambda message: isinstance(message, Notice) and message.text == text


async def test_sends_and_edits_are_recorded_and_current_is_the_latest() -> None:
    chat = MemoryChat()
    job = queued_job().starting(at=1.0).running()
    first = LiveOutput(job, page=0, lines=("a",), omitted=0, elapsed_s=1.0, sealed=False)
    second = LiveOutput(job, page=0, lines=("a", "b"), omitted=0, elapsed_s=2.0, sealed=True)

    accepted = await chat.send(WHERE, JobAccepted(job))
    ref = await chat.send(WHERE, first, reply_to=accepted)
    await chat.edit(ref, second)

    assert chat.sent == [
        SentMessage(WHERE, JobAccepted(job), accepted, None),
        SentMessage(WHERE, first, ref, accepted),
    ]
    assert accepted != ref
    assert chat.edits == [(ref, second)]
    assert chat.current(ref) == second
    assert chat.current(accepted) == JobAccepted(job)


async def test_transcript_shows_each_message_once_in_its_latest_version() -> None:
    chat = MemoryChat()
    job = queued_job()
    ref = await chat.send(WHERE, Notice("working…"))
    await chat.send(WHERE, JobAccepted(job))
    await chat.edit(ref, Notice("done"))

    lines = chat.transcript().splitlines()

    assert lines[0] == "done"
    assert lines[1].startswith("▶ Job j-1234abcd queued")
    assert "working…" not in chat.transcript()


async def test_editing_a_message_never_sent_is_an_error() -> None:
    chat = MemoryChat()
    with pytest.raises(KeyError):
        await chat.edit(MessageRef(WHERE, "nope"), Notice("x"))


async def test_wait_for_returns_a_message_posted_earlier() -> None:
    chat = MemoryChat()
    ref = await chat.send(WHERE, Notice("first"))
    await chat.edit(ref, Notice("second"))  # the earlier version still counts

    with trio.fail_after(CEILING_S):
        found = await chat.wait_for(is_notice("first"))

    assert found == Notice("first")


async def test_wait_for_waits_for_a_message_posted_later() -> None:
    chat = MemoryChat()
    found: list[ChatMessage] = []

    async def waiter(task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        task_status.started()
        found.append(await chat.wait_for(is_notice("later")))

    with trio.fail_after(CEILING_S):
        async with trio.open_nursery() as nursery:
            await nursery.start(waiter)
            await chat.send(WHERE, Notice("unrelated"))
            assert found == []
            ref = await chat.send(WHERE, Notice("not yet"))
            await chat.edit(ref, Notice("later"))

    assert found == [Notice("later")]


async def test_wait_for_card_finds_the_card_of_that_job() -> None:
    chat = MemoryChat()
    job = queued_job().starting(at=1.0).running().succeeded(at=3.0)
    other = queued_job("j-00000002").cancelled(by="bob", at=2.0)

    with trio.fail_after(CEILING_S):
        async with trio.open_nursery() as nursery:
            cards: list[JobCard] = []

            async def wait_card() -> None:
                cards.append(await chat.wait_for_card(job.id))

            nursery.start_soon(wait_card)
            await chat.send(WHERE, JobCard(other, tail=(), total_lines=0, duration_s=1.0))
            await chat.send(WHERE, JobCard(job, tail=("ok",), total_lines=1, duration_s=2.0))

    assert [card.job.id for card in cards] == [job.id]


async def test_say_reaches_the_listening_handler() -> None:
    chat = MemoryChat()
    received: list[Inbound] = []

    async def handler(inbound: Inbound) -> None:
        received.append(inbound)
        await chat.send(inbound.conversation, Notice(f"echo {inbound.text}"))

    with trio.fail_after(CEILING_S):
        async with trio.open_nursery() as nursery:
            await nursery.start(chat.listen, handler)
            await chat.say("/od-jobs")
            await chat.say("/od-logs j-1234abcd", user=User("u2", "bob"))
            nursery.cancel_scope.cancel()

    assert received == [
        Inbound(Conversation("memory", "c1"), User("u1", "alice"), "/od-jobs"),
        Inbound(Conversation("memory", "c1"), User("u2", "bob"), "/od-logs j-1234abcd"),
    ]
    assert chat.transcript() == "echo /od-jobs\necho /od-logs j-1234abcd"


async def test_say_waits_until_someone_listens() -> None:
    chat = MemoryChat()
    received: list[str] = []

    async def handler(inbound: Inbound) -> None:
        received.append(inbound.text)

    with trio.fail_after(CEILING_S):
        async with trio.open_nursery() as nursery:
            said = trio.Event()

            async def speak() -> None:
                await chat.say("hello")
                said.set()

            nursery.start_soon(speak)
            await trio.testing.wait_all_tasks_blocked()
            assert received == []
            await nursery.start(chat.listen, handler)
            await said.wait()
            nursery.cancel_scope.cancel()

    assert received == ["hello"]


async def test_say_after_listen_ended_waits_for_the_next_listener() -> None:
    chat = MemoryChat()
    received: list[str] = []

    async def handler(inbound: Inbound) -> None:
        received.append(inbound.text)

    with trio.fail_after(CEILING_S):
        async with trio.open_nursery() as nursery:
            await nursery.start(chat.listen, handler)
            nursery.cancel_scope.cancel()
        async with trio.open_nursery() as nursery:
            nursery.start_soon(chat.say, "lost?")
            await trio.testing.wait_all_tasks_blocked()
            assert received == []
            await nursery.start(chat.listen, handler)
            await trio.testing.wait_all_tasks_blocked()
            nursery.cancel_scope.cancel()
    assert received == ["lost?"]
