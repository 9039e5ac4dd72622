"""Slack's agent surfaces end to end: agent sessions, the streamed live message, the native stop.

Each job goes from a slash command over the fake's socket through the real dispatcher and the
real Slack adapter to the loopback fake Slack, which checks every call against the documented
shapes and limits (tests/fakes/slack.py). The tests that also make sense without the native
surfaces run in both modes (`NATIVE_MODES`): the same job shows the same lines and the same card.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import attrs
import pytest
import trio
import trio.testing

from fakes.slack import APP_TOKEN, BOT_TOKEN, SIGNING_SECRET, FakeMessage, FakeSlack, form_body, open_fake_slack, post_signed
from harness import FakeSidecar
from opendispatch.adapters.local import LocalSprites
from opendispatch.adapters.memory.sprites import FakeSprites
from opendispatch.adapters.memory.store import MemoryJobStore
from opendispatch.adapters.slack import Pacing, SlackChat, SlackMode, SlackSettings, open_slack_chat
from opendispatch.adapters.slack.native import NativeSurfaces
from opendispatch.adapters.slack.web import SlackApiError
from opendispatch.app.ledger import JobLedger
from opendispatch.app.reconcile import reconcile
from opendispatch.config import Config
from opendispatch.domain.errors import ConfigError
from opendispatch.domain.job import Conversation, Job, JobState, User
from opendispatch.domain.job_spec import AgentKind, JobSpec
from opendispatch.domain.messages import JobAccepted, JobCard, LiveOutput, MessageRef, Notice
from slack_stack import NATIVE_MODES, Stack, is_card, is_live, open_stack, settings_for, shown_lines

FORM = "application/x-www-form-urlencoded"
JSON = "application/json"
NATIVE_METHODS = ("chat.startStream", "chat.appendStream", "chat.stopStream", "agents.sessions.setStatus",
                  "assistant.threads.setStatus")


def ev(kind: str, **fields: Any) -> dict[str, Any]:
    return {"v": 1, "type": kind, **fields}


async def post(sidecar: FakeSidecar, seq: int, lines: list[str], events: list[dict[str, Any]] | None = None) -> None:
    body: dict[str, Any] = {"jobId": sidecar.job_id, "seq": seq, "lines": lines}
    if events:
        body["events"] = events
    answer = await sidecar.post("/webhooks/logs", body)
    assert answer.status_code == 200, answer.text


def statuses(stack: Stack, started: FakeMessage) -> list[str]:
    return statuses_of(stack.fake, started)


def statuses_of(fake: FakeSlack, started: FakeMessage) -> list[str]:
    """The agent-session statuses of a job's thread, in order (stopStream's included)."""
    return fake.sessions.get((started.channel, started.ts), [])


def native_calls(stack: Stack) -> list[str]:
    return [c.method for c in stack.fake.calls if c.method in NATIVE_METHODS]


async def start_agent_job(stack: Stack, task: str = "fix the tests") -> tuple[FakeMessage, FakeSidecar]:
    await stack.fake.slash_command("/od-run", f'--repo acme/api --agent claude "{task}"')
    started = await stack.started_message()
    sidecar = await stack.sidecar()
    await sidecar.status("running")
    return started, sidecar


STEPS = [
    ([ev("init", agent="claude", model="claude-sonnet-4-5", sessionId="s-1"),
      ev("tool_start", id="t1", tool="Bash", summary="npm test")], ["$ npm test", "1 failing <!channel> & `x`"]),
    ([ev("tool_end", id="t1", tool="Bash", summary="npm test", ok=False, excerpt="1 failed"),
      ev("tool_start", id="t2", tool="Edit", summary="src/app.py")], ["editing src/app.py"]),
    ([ev("tool_end", id="t2", tool="Edit", summary="src/app.py", ok=True),
      ev("result", ok=True, answer="Fixed the **failing** test.", costUsd=0.04, inputTokens=1500,
         outputTokens=150, turns=3, model="claude-sonnet-4-5", sessionId="s-1")], ["done ```"]),
]


@pytest.mark.parametrize("native", NATIVE_MODES)
async def test_an_agent_job_shows_every_line_its_steps_and_its_card(native: bool) -> None:
    async with open_stack(native=native) as stack:
        started, sidecar = await start_agent_job(stack)
        sent: list[str] = []
        for seq, (events, lines) in enumerate(STEPS):
            await post(sidecar, seq, lines, events)
            sent += lines
            await stack.wait_for(lambda: shown_lines(stack, started)[-len(lines):] == lines)
        await sidecar.status("completed", 0)
        card = await stack.settled(sidecar.job_id, started)

        texts = "\n".join(card.block_texts())
        assert "✅ succeeded" in texts and "Fixed the *failing* test." in texts
        shown = shown_lines(stack, started)
        assert [line for line in shown if line in sent] == sent, shown
        assert started.action_ids() == ["od_view_live"]  # the channel message lost its Stop button
        assert [c for c in stack.fake.calls if c.status == 429] == []
        assert BOT_TOKEN not in stack.fake.everything_said() + stack.fake.timeline()
        if not native:
            assert native_calls(stack) == [] and stack.fake.streams() == []
            assert all(c.args.get("metadata") is None for c in stack.fake.calls_of("chat.postMessage"))
            return
        (stream,) = stack.fake.streams()
        assert stream is card  # the stream's stop carried the card's blocks
        assert stream.thread_ts == started.ts and stream.stream is not None
        assert stream.stream.recipient_user_id == "U0ALICE" and stream.stream.task_display_mode == "timeline"
        assert stream.stream.tasks() == {
            "step-1": ["in_progress", "error"], "step-2": ["in_progress", "complete"],
        }
        assert statuses(stack, started) == ["processing", "closed", "closed"]  # stopStream, then setStatus
        methods = native_calls(stack)
        assert methods[0] == "agents.sessions.setStatus" and methods[1] == "chat.startStream"
        assert methods[-2:] == ["chat.stopStream", "agents.sessions.setStatus"]
        assert "chat.appendStream" in methods
        assert stack.fake.calls_of("chat.postMessage")[0].args["metadata"] == {
            "event_type": "opendispatch_job", "event_payload": {"job_id": sidecar.job_id}}
        assert all(not is_live(m) for m in stack.fake.thread(started))  # no edit-in-place message


def continues(stream_lines: list[str], fallback_lines: list[str], sent: list[str]) -> bool:
    """The stream showed a first part of `sent`, today's messages the rest (from at most where
    the stream stopped): together, every line in order."""
    k = len(stream_lines)
    if stream_lines != sent[:k]:
        return False
    return any(fallback_lines == sent[j:] for j in range(k + 1))


async def test_when_slack_refuses_to_start_a_stream_the_job_uses_todays_messages_and_loses_nothing() -> None:
    async with open_stack(native=True) as stack:
        stack.fake.refuse("chat.startStream", "method_not_supported_for_channel_type", times=1)
        started, sidecar = await start_agent_job(stack)
        sent = [f"line {i} <b>&" for i in range(30)]
        for seq in range(3):
            await post(sidecar, seq, sent[seq * 10 : (seq + 1) * 10])
        await sidecar.status("completed", 0)
        card = await stack.settled(sidecar.job_id, started)
        assert shown_lines(stack, started) == sent
        assert stack.fake.streams() == [] and not card.stream
        assert [c.error for c in stack.fake.calls_of("chat.startStream")] == ["method_not_supported_for_channel_type"]
        assert stack.live_messages(started)  # today's edit-in-place message
        assert statuses(stack, started) == ["processing", "closed"]  # the session still ends

        # streams are not offered in this channel: the next job does not ask again
        await stack.fake.slash_command("/od-run", '--agent claude "again"')
        second = await stack.wait_for(lambda: next(iter(stack.fake.channel_messages()[1:]), None))
        sidecar = await stack.sidecar()
        await post(sidecar, 0, ["second job"])
        await sidecar.status("completed", 0)
        await stack.settled(sidecar.job_id, second)
        assert shown_lines(stack, second) == ["second job"]
        assert len(stack.fake.calls_of("chat.startStream")) == 1


async def test_a_stream_slack_closes_mid_job_goes_on_as_todays_message_without_losing_a_line() -> None:
    async with open_stack(native=True) as stack:
        started, sidecar = await start_agent_job(stack)
        sent = [f"out {i:02d} <x>" for i in range(40)]
        await post(sidecar, 0, sent[:10], STEPS[0][0])
        (stream,) = await stack.wait_for(lambda: stack.fake.streams())
        await stack.wait_for(lambda: stream.stream is not None and stream.stream.code_lines() == sent[:10])
        stack.fake.close_stream(stream)  # Slack's own timeout
        for seq in range(1, 4):
            await post(sidecar, seq, sent[seq * 10 : (seq + 1) * 10])
        await sidecar.status("completed", 0)
        card = await stack.settled(sidecar.job_id, started)

        assert stream.stream is not None
        fallback = [line for m in stack.live_messages(started) for line in m.code_lines()]
        assert continues(stream.stream.code_lines(), fallback, sent), (stream.stream.code_lines(), fallback)
        assert card is not stream and not card.stream  # the card went as a message of its own
        assert "✅ succeeded" in "\n".join(card.block_texts())
        assert "message_not_in_streaming_state" in [c.error for c in stack.fake.calls_of("chat.appendStream")]
        assert stack.fake.calls_of("chat.stopStream") == [], stack.fake.timeline()  # not asked of a stream known to be over
        assert statuses(stack, started) == ["processing", "closed"]
        assert [c for c in stack.fake.calls if c.status == 429] == []


async def test_slacks_stop_button_cancels_the_job_like_our_stop_button() -> None:
    async with open_stack(native=True) as stack:
        started, sidecar = await start_agent_job(stack, "sleep forever")
        await post(sidecar, 0, ["working..."], STEPS[0][0])
        (stream,) = await stack.wait_for(lambda: stack.fake.streams())
        assert statuses(stack, started) == ["processing"]

        stop = stack.fake.session_stopped_payload(started.channel, started.ts, user_id="U0ALICE")
        envelope = await stack.fake.deliver("events_api", stop)
        with trio.fail_after(3):
            await envelope.acked.wait()
        card = await stack.settled(sidecar.job_id, started)
        job = await stack.store.get(sidecar.job_id)
        assert job.state is JobState.CANCELLED and job.cancelled_by == "alice"  # the owner, by name
        assert "🛑 Stopped by alice" in card.block_texts()
        assert stack.sprites.destroyed == [sidecar.sprite.id]
        assert stack.inbounds[-1].text == f"/od-cancel {sidecar.job_id}" and stack.inbounds[-1].user.id == "U0ALICE"
        assert any("Cancelling" in m.text for m in stack.fake.thread(started))  # in the job's thread
        assert statuses(stack, started) == ["processing", "closed"]
        assert stream.stream is not None and stream.stream.stopped_by == "U0ALICE"
        assert stack.fake.calls_of("chat.stopStream") == []  # Slack stopped it already
        assert started.action_ids() == ["od_view_live"]


async def test_slacks_stop_button_follows_the_same_ownership_rule() -> None:
    async with open_stack(native=True) as stack:
        started, sidecar = await start_agent_job(stack, "sleep forever")
        await post(sidecar, 0, ["working..."])
        await stack.wait_for(lambda: stack.fake.streams())
        stop = stack.fake.session_stopped_payload(started.channel, started.ts, user_id="U0EVE")  # not an admin
        await stack.fake.deliver("events_api", stop)
        (refusal,) = await stack.wait_for(lambda: stack.fake.ephemerals)
        assert refusal["user"] == "U0EVE" and "Only alice" in refusal["text"]
        assert (await stack.store.get(sidecar.job_id)).state is JobState.RUNNING
        assert statuses(stack, started) == ["processing"]  # it still runs
        await post(sidecar, 1, ["still here"])  # Slack stopped the stream: today's message goes on
        await sidecar.status("completed", 0)
        await stack.settled(sidecar.job_id, started)
        assert "still here" in shown_lines(stack, started)
        assert statuses(stack, started) == ["processing", "closed"]


@pytest.mark.parametrize("ending", ["failed", "timed_out", "cancelled"])
async def test_the_session_ends_closed_on_every_way_a_job_ends(ending: str) -> None:
    async with open_stack(native=True) as stack:
        timeout = "--timeout 1s " if ending == "timed_out" else ""
        await stack.fake.slash_command("/od-run", f'{timeout}--agent claude "end it"')
        started = await stack.started_message()
        sidecar = await stack.sidecar()
        await sidecar.status("running")
        await post(sidecar, 0, ["begun"], STEPS[0][0])
        await stack.wait_for(lambda: stack.fake.streams())
        if ending == "failed":
            await sidecar.status("failed", 3, error="the agent gave up")
        elif ending == "cancelled":
            await stack.fake.slash_command("/od-cancel", sidecar.job_id)
        card = await stack.settled(sidecar.job_id, started)
        job = await stack.store.get(sidecar.job_id)
        assert job.state.value == ending
        assert statuses(stack, started) == ["processing", "closed", "closed"]
        (stream,) = stack.fake.streams()
        assert stream is card and stream.stream is not None
        assert stream.stream.tasks() == {"step-1": ["in_progress", "error"]}  # the step did not finish


async def test_a_dispatcher_shutting_down_closes_the_sessions_of_its_jobs() -> None:
    async with open_stack(native=True) as stack:
        started, sidecar = await start_agent_job(stack, "still working")
        await post(sidecar, 0, ["begun"])
        await stack.wait_for(lambda: stack.fake.streams())
    # leaving the block stopped the dispatcher: its jobs were cancelled, with their cards
    (stream,) = stack.fake.streams()
    assert is_card(stream) and "the dispatcher shutting down" in "\n".join(stream.block_texts())
    assert statuses(stack, started) == ["processing", "closed", "closed"]


# --- after a restart ---------------------------------------------------------------------------

CHANNEL = Conversation("slack", "C0DEV")
ALICE = User("U0ALICE", "alice")


def running_job(job_id: str = "j-0000beef") -> Job:
    spec = JobSpec(task="fix the tests", agent=AgentKind.CLAUDE, repo="acme/api")
    return Job.queued(job_id, spec, CHANNEL, ALICE, at=time.time()).starting(at=time.time()).running().with_sprite("gone")


def page(job: Job, lines: tuple[str, ...], *, sealed: bool = False) -> LiveOutput:
    return LiveOutput(job=job, page=0, lines=lines, omitted=0, elapsed_s=1.0, sealed=sealed)


@asynccontextmanager
async def native_chat(fake: FakeSlack) -> AsyncIterator[SlackChat]:
    settings = settings_for(fake, SlackMode.SOCKET, agent_sessions=True, streaming=True)
    async with open_slack_chat(settings, wall_clock=time.time) as chat:
        yield chat


async def idle(chat: SlackChat, channel: str = "C0DEV") -> None:
    with trio.fail_after(10):
        await chat.outbox.drained()  # every lane's writes are done
        await trio.testing.wait_all_tasks_blocked()


async def a_process_that_dies_mid_job(fake: FakeSlack, job: Job) -> FakeMessage:
    """A first process: the job's first reply and a streamed line, then no card (it died)."""
    async with native_chat(fake) as before:
        accepted = await before.send(CHANNEL, JobAccepted(job))
        await before.send(CHANNEL, page(job, ("line before the restart",)), reply_to=accepted)
        await idle(before)
    (started,) = fake.channel_messages()
    return started


async def test_a_job_reconciliation_ends_after_a_restart_gets_its_card_in_its_stream_and_its_session_closed() -> None:
    async with open_fake_slack() as fake:
        job = running_job()
        store = MemoryJobStore()
        await store.add(job)
        started = await a_process_that_dies_mid_job(fake, job)
        assert statuses_of(fake, started) == ["processing"] and fake.streams()[0].stream.state == "in_progress"

        async with native_chat(fake) as after:  # the restarted process knows nothing of the job
            report = await reconcile(
                store=store, ledger=JobLedger(store), sprites=FakeSprites(), chat=after, wall_clock=time.time
            )
            await idle(after)
        assert report.lost == (job.id,)
        (stream,) = fake.streams()
        assert is_card(stream) and "Lost at relay" in "\n".join(stream.block_texts())
        assert stream.stream is not None and stream.stream.code_lines() == ["line before the restart"]
        assert statuses_of(fake, started) == ["processing", "closed", "closed"]
        assert started.action_ids() == []  # the channel message lost its Stop button too
        found = [c.method for c in fake.calls if c.method.startswith("conversations.")]
        assert found == ["conversations.history", "conversations.replies"]


async def test_an_adopted_job_goes_on_in_its_stream_after_a_restart() -> None:
    async with open_fake_slack() as fake:
        job = running_job()
        started = await a_process_that_dies_mid_job(fake, job)
        async with native_chat(fake) as after:
            # the runner adopts the job: no first reply to thread under, output resumes
            await after.send(CHANNEL, page(job, ("line after the restart",)))
            await after.send(CHANNEL, JobCard(job.succeeded(at=time.time()), tail=(), total_lines=2, duration_s=3.0))
            await idle(after)
        (stream,) = fake.streams()
        assert stream.stream is not None
        assert stream.stream.code_lines() == ["line before the restart", "line after the restart"]
        assert is_card(stream) and fake.channel_messages() == [started]
        assert statuses_of(fake, started) == ["processing", "closed", "closed"]


async def test_a_job_whose_first_reply_carries_no_metadata_is_left_as_it_was() -> None:
    async with open_fake_slack() as fake:
        job = running_job()
        settings = settings_for(fake, SlackMode.SOCKET)  # native surfaces off before the restart
        async with open_slack_chat(settings, wall_clock=time.time) as before:
            await before.send(CHANNEL, JobAccepted(job))
        async with native_chat(fake) as after:
            card = JobCard(job.lost("gone", at=time.time()), tail=(), total_lines=0, duration_s=1.0)
            await after.send(CHANNEL, card)
            await after.send(CHANNEL, card)
            await idle(after)
        assert fake.streams() == [] and fake.sessions == {}
        assert len(fake.calls_of("conversations.history")) == 1  # not asked again for the same job


# --- assistant threads ---------------------------------------------------------------------------


async def test_a_job_in_an_assistant_thread_shows_its_current_step_as_the_threads_status() -> None:
    async with open_stack() as stack:  # no agent-session or streaming setting needed
        thread_ts, opened = stack.fake.assistant_thread_payload("D0ALICE")
        await stack.fake.deliver("events_api", opened)
        command = {"type": "message", "channel": "D0ALICE", "channel_type": "im", "user": "U0ALICE",
                   "text": '/od-run --agent claude "fix the tests"', "ts": "1.5", "thread_ts": thread_ts}
        await stack.fake.deliver("events_api", stack.fake.event_payload(command))
        sidecar = await stack.sidecar()
        await sidecar.status("running")
        await post(sidecar, 0, ["$ npm test"], STEPS[0][0])
        key = ("D0ALICE", thread_ts)
        await stack.wait_for(lambda: "running Bash: npm test…" in stack.fake.assistant_statuses.get(key, []))
        await post(sidecar, 1, [], STEPS[1][0])
        await stack.wait_for(lambda: "running Edit: src/app.py…" in stack.fake.assistant_statuses[key])
        await sidecar.status("completed", 0)
        with trio.fail_after(10):
            await stack.running.dispatcher.wait_finished(sidecar.job_id)
        await stack.wait_for(lambda: stack.fake.assistant_statuses[key][-1] == "")  # cleared at the card
        said = stack.fake.assistant_statuses[key]
        assert said[0] in ("queued…", "running…") and all(len(text) <= 80 for text in said)
        assert all(c.args["channel_id"] == "D0ALICE" for c in stack.fake.calls_of("assistant.threads.setStatus"))
        assert stack.fake.sessions == {}  # agent sessions stay off until the setting says so


async def test_a_message_of_an_assistant_thread_marks_its_thread_too() -> None:
    async with open_fake_slack() as fake:
        async with native_chat(fake) as chat:
            surfaces: NativeSurfaces = chat.native
            surfaces.on_message_event({"type": "message", "subtype": "assistant_app_thread", "channel": "D1", "ts": "7.1"})
            surfaces.on_message_event({"type": "message", "channel": "D2", "ts": "8.2", "thread_ts": "8.1",
                                       "assistant_thread": {"channel_id": "D2", "thread_ts": "8.1"}})
            assert surfaces.is_assistant_thread("D1", "7.1") and surfaces.is_assistant_thread("D2", "8.1")
            assert not surfaces.is_assistant_thread("D2", "8.2") and not surfaces.is_assistant_thread("D2", None)


# --- sessions of several messages ----------------------------------------------------------------


def session_job(job_id: str, session_id: str = "s-0000000a", thread: str | None = None) -> Job:
    spec = JobSpec(task="and now the docs", agent=AgentKind.CLAUDE)
    where = Conversation("slack", "C0DEV", thread=thread)
    job = Job.queued(job_id, spec, where, ALICE, at=time.time()).starting(at=time.time()).running()
    return attrs.evolve(job, session=session_id)


async def test_a_persistent_sessions_thread_waits_suspended_and_closes_when_the_session_ends() -> None:
    async with open_fake_slack() as fake:
        async with native_chat(fake) as chat:

            def of(ref: MessageRef) -> list[str]:
                return fake.sessions.get((ref.conversation.channel, ref.id), [])

            first = session_job("j-00000001")
            one = await chat.send(CHANNEL, JobAccepted(first, persistent_session=True))
            await chat.send(CHANNEL, JobCard(first.succeeded(at=time.time()), tail=(), total_lines=0, duration_s=1.0),
                            reply_to=one)
            await idle(chat)
            assert of(one) == ["processing", "suspended"]  # the session waits for its next message

            second = session_job("j-00000002")  # the next message: a thread of its own
            two = await chat.send(CHANNEL, JobAccepted(second, persistent_session=True))
            await idle(chat)
            assert of(one) == ["processing", "suspended", "closed"]  # the session moved on
            assert of(two) == ["processing"]
            await chat.send(CHANNEL, JobCard(second.succeeded(at=time.time()), tail=(), total_lines=0, duration_s=1.0),
                            reply_to=two)
            await chat.send(CHANNEL, Notice("⏹ Session notes ended (stopped by alice).", ended_sessions=("s-0000000a",)))
            await idle(chat)
            assert of(two) == ["processing", "suspended", "closed"]

            # a message of a session that is not persistent just closes
            third = session_job("j-00000003", session_id="s-0000000b")
            three = await chat.send(CHANNEL, JobAccepted(third))
            await chat.send(CHANNEL, JobCard(third.succeeded(at=time.time()), tail=(), total_lines=0, duration_s=1.0),
                            reply_to=three)
            await idle(chat)
            assert of(three) == ["processing", "closed"]


async def test_a_session_in_a_thread_is_one_agent_session_for_all_its_messages() -> None:
    async with open_fake_slack() as fake:
        async with native_chat(fake) as chat:
            root = await chat.send(CHANNEL, Notice("▶ Session notes started"))
            thread = Conversation("slack", "C0DEV", thread=root.id)
            for number in (1, 2):
                job = session_job(f"j-0000000{number}", thread=root.id)
                accepted = await chat.send(thread, JobAccepted(job, persistent_session=True))
                await chat.send(thread, page(job, (f"message {number}",)), reply_to=accepted)
                await chat.send(thread, JobCard(job.succeeded(at=time.time()), tail=(), total_lines=1, duration_s=1.0),
                                reply_to=accepted)
                await idle(chat)
            await chat.send(thread, Notice("⏹ Session notes ended.", ended_sessions=("s-0000000a",)))
            await idle(chat)
        assert fake.sessions == {("C0DEV", root.id): [
            "processing", "suspended", "suspended", "processing", "suspended", "suspended", "closed"]}
        assert [m.thread_ts for m in fake.streams()] == [root.id, root.id]


# --- settings, manifest, refusals ------------------------------------------------------------------


def test_the_switches_are_off_unless_set_and_a_wrong_value_is_refused_by_name() -> None:
    base = {"SLACK_BOT_TOKEN": "xoxb-1", "SLACK_APP_TOKEN": "xapp-1"}
    off = SlackSettings.from_env(base)
    assert (off.agent_sessions, off.streaming) == (False, False)
    on = SlackSettings.from_env({**base, "SLACK_AGENT_SESSIONS": "1", "SLACK_STREAMING": "yes"})
    assert (on.agent_sessions, on.streaming) == (True, True)
    assert SlackSettings.from_env({**base, "SLACK_STREAMING": "off"}).streaming is False
    problems = SlackSettings.problems({**base, "SLACK_AGENT_SESSIONS": "sure", "SLACK_STREAMING": "2"})
    assert [name for name, _ in problems] == ["SLACK_AGENT_SESSIONS", "SLACK_STREAMING"]
    with pytest.raises(ConfigError, match="SLACK_AGENT_SESSIONS='sure' must be 1 or 0"):
        SlackSettings.from_env({**base, "SLACK_AGENT_SESSIONS": "sure"})


def test_the_outbox_paces_the_native_methods_at_their_tiers() -> None:
    tiers = Pacing().per_minute
    assert tiers["chat.appendStream"] == 100.0  # Tier 4
    assert tiers["chat.stopStream"] == 20.0  # Tier 2
    assert tiers["agents.sessions.setStatus"] == 50.0  # Tier 3
    assert tiers["chat.startStream"] <= 20.0  # not published: no faster than its sibling


def test_the_manifest_subscribes_to_the_agent_events_and_asks_for_the_scopes() -> None:
    manifest = (Path(__file__).parents[3] / "manifest" / "slack.yaml").read_text()
    for event in ("agent_session_stopped", "assistant_thread_started", "assistant_thread_context_changed"):
        assert re.search(rf"^\s*- {event}\b", manifest, flags=re.MULTILINE), event
    assert re.search(r"^\s*- assistant:write\b", manifest, flags=re.MULTILINE)
    assert re.search(r"^\s*assistant_view:", manifest, flags=re.MULTILINE)


async def test_an_app_that_is_no_agent_is_asked_once_and_its_jobs_run_as_before() -> None:
    async with open_stack(native=True) as stack:
        stack.fake.refuse("agents.sessions.setStatus", "not_allowed_token_type")
        for number in range(2):
            await stack.fake.slash_command("/od-run", f'--agent claude "job {number}"')
            started = await stack.wait_for(lambda: next(iter(stack.fake.channel_messages()[number:]), None))
            sidecar = await stack.sidecar()
            await post(sidecar, 0, [f"job {number} works"])
            await sidecar.status("completed", 0)
            await stack.settled(sidecar.job_id, started)
            assert shown_lines(stack, started) == [f"job {number} works"]
        assert len(stack.fake.calls_of("agents.sessions.setStatus")) == 1  # refused: not asked again
        assert all("session_status" not in c.args for c in stack.fake.calls_of("chat.stopStream"))
        assert len(stack.fake.streams()) == 2  # streaming is its own switch


async def test_slacks_stop_button_in_http_mode_cancels_the_job_too() -> None:
    async with open_stack(SlackMode.HTTP, native=True) as stack:
        body = form_body(stack.fake.slash_payload("/od-run", '--agent claude "http job"'))
        await post_signed(stack.http, stack.events_url, body, timestamp=int(time.time()), content_type=FORM)
        started = await stack.started_message()
        sidecar = await stack.sidecar()
        await post(sidecar, 0, ["working"])
        await stack.wait_for(lambda: stack.fake.streams())
        stop = json.dumps(stack.fake.session_stopped_payload(started.channel, started.ts, user_id="U0BOB")).encode()
        answer = await post_signed(stack.http, stack.events_url, stop, timestamp=int(time.time()), content_type=JSON)
        assert answer.status_code == 200
        card = await stack.settled(sidecar.job_id, started)
        assert "🛑 Stopped by U0BOB" in card.block_texts()  # an admin we never saw a name for: the id
        assert statuses(stack, started) == ["processing", "closed"]


async def test_a_persistent_sessions_message_leaves_its_thread_suspended_until_od_stop(tmp_path: Path) -> None:
    """The real session parts (app/session_*.py) and a persistent shell session on a local sprite (real sidecar)."""
    config = attrs.evolve(
        Config.from_env({"OPENDISPATCH_ALLOW_SHELL_SESSIONS": "1"}, dotenv=None),
        secret_values=(BOT_TOKEN, APP_TOKEN, SIGNING_SECRET),
    )
    sprites = LocalSprites(workspace_root=tmp_path / "sprites", log_dir=tmp_path / "logs", term_grace_s=1.0)
    async with open_stack(config=config, sprites=sprites, native=True) as stack:
        fake = stack.fake
        await fake.slash_command("/od-start", "keep --agent shell --persistent")
        root = await stack.wait_for(lambda: next((m for m in fake.channel_messages() if "Session keep" in m.text), None))
        reply = {"type": "message", "channel": "C0DEV", "channel_type": "channel", "user": "U0ALICE",
                 "text": "echo kept > f.txt && echo written", "ts": f"{time.time():.6f}", "thread_ts": root.ts}
        await fake.deliver("events_api", fake.event_payload(reply))
        accepted = await stack.wait_for(lambda: next((m for m in fake.channel_messages() if "queued" in m.text), None))
        job_id = next(word.strip("*") for word in accepted.text.split() if word.strip("*").startswith("j-"))
        with trio.fail_after(60):
            await stack.running.dispatcher.wait_finished(job_id)
        set_to = lambda: [c.args["status"] for c in fake.calls_of("agents.sessions.setStatus")]  # noqa: E731
        await stack.wait_for(lambda: set_to()[-1:] == ["suspended"])
        assert set_to() == ["processing", "suspended"]  # the session waits for its next message
        assert statuses(stack, accepted)[-1] == "suspended" and "closed" not in statuses(stack, accepted)
        assert "written" in shown_lines(stack, accepted)

        await fake.slash_command("/od-stop", "keep")
        await stack.wait_for(lambda: set_to()[-1:] == ["closed"])
        assert set_to() == ["processing", "suspended", "closed"]
        assert statuses(stack, accepted)[-1] == "closed"


async def test_the_fake_holds_our_calls_to_the_documented_shapes_and_limits() -> None:
    """What the fake refuses, as Slack's reference says it does: the tests above lean on it."""
    async with open_fake_slack() as fake, native_chat(fake) as chat:
        web = chat.web
        root = await chat.send(CHANNEL, Notice("a thread"))

        async def error(method: str, args: dict[str, Any]) -> str | None:
            try:
                await web.call(method, args)
            except SlackApiError as exc:
                return exc.error
            return None

        who = {"recipient_user_id": "U0ALICE", "recipient_team_id": "T0001"}
        assert await error("chat.startStream", {"channel": "C0DEV", **who}) == "invalid_arguments"  # no thread
        assert await error("chat.startStream", {"channel": "C0DEV", "thread_ts": root.id}) == "missing_recipient_user_id"
        assert await error("chat.startStream", {"channel": "C0DEV", "thread_ts": root.id, "recipient_user_id": "U0ALICE"}
                           ) == "missing_recipient_team_id"
        too_long = {"type": "markdown_text", "text": "x" * 12_001}
        assert await error("chat.startStream", {"channel": "C0DEV", "thread_ts": root.id, **who, "chunks": [too_long]}
                           ) == "invalid_chunks"
        bad_task = {"type": "task_update", "id": "s1", "title": "t", "status": "running"}
        assert await error("chat.startStream", {"channel": "C0DEV", "thread_ts": root.id, **who, "chunks": [bad_task]}
                           ) == "invalid_chunks"
        started = await web.call("chat.startStream", {"channel": "C0DEV", "thread_ts": root.id, **who})
        ts = started["ts"]
        assert await error("chat.appendStream", {"channel": "C0DEV", "ts": ts}) == "no_text"
        assert await error("chat.appendStream", {"channel": "C0DEV", "ts": ts, "markdown_text": "y" * 12_001}) == "msg_too_long"
        blocks = [{"type": "section", "text": {"type": "mrkdwn", "text": "b"}}] * 51
        assert await error("chat.stopStream", {"channel": "C0DEV", "ts": ts, "blocks": blocks}) == "invalid_blocks"
        assert await error("chat.stopStream", {"channel": "C0DEV", "ts": ts, "blocks": blocks[:50]}) is None
        assert await error("chat.appendStream", {"channel": "C0DEV", "ts": ts, "markdown_text": "z"}) == "message_not_in_streaming_state"
        assert await error("agents.sessions.setStatus", {"channel_id": "C0DEV", "thread_ts": root.id, "status": "busy"}
                           ) == "invalid_arguments"
        assert await error("agents.sessions.setStatus", {"channel_id": "C0DEV", "thread_ts": root.id, "status": "processing",
                                                         "title": "t" * 201}) == "invalid_arguments"
        assert await error("assistant.threads.setStatus", {"channel_id": "C0DEV", "thread_ts": root.id, "status": "x"}
                           ) == "invalid_thread_ts"  # not an assistant thread
        fake.refuse("chat.startStream", "unknown_method", times=1)
        assert await error("chat.startStream", {"channel": "C0DEV", "thread_ts": root.id, **who}) == "unknown_method"
        assert [c.method for c in fake.calls].count("chat.startStream") == 7  # every call recorded, refused or not
