"""Plain Slack messages where a session was started go to it; other chatter is left alone."""

from __future__ import annotations

import attrs
import trio
import trio.testing

from opendispatch.config import Config
from opendispatch.domain.job import JobState
from slack_stack import BOT_TOKEN, APP_TOKEN, SIGNING_SECRET, open_stack

CEILING_S = 20


async def test_a_plain_reply_in_the_sessions_thread_is_a_message_for_it_and_chatter_gets_no_answer() -> None:
    config = attrs.evolve(
        Config.from_env({"OPENDISPATCH_ALLOW_SHELL_SESSIONS": "1"}, dotenv=None),
        secret_values=(BOT_TOKEN, APP_TOKEN, SIGNING_SECRET),
    )
    async with open_stack(config=config) as stack:
        fake = stack.fake
        await fake.slash_command("/od-start", "notes --agent shell")
        await stack.wait_for(lambda: any("notes" in m.text for m in fake.channel_messages()))
        started = next(m for m in fake.channel_messages() if "notes" in m.text)
        posts_before = len(fake.calls_of("chat.postMessage"))

        chatter = [  # none of these may be answered or run anything
            {"type": "message", "channel": "C0OTHER", "channel_type": "channel", "user": "U0ALICE",
             "text": "lunch?", "ts": "5.1"},
            {"type": "message", "channel": "C0OTHER", "channel_type": "channel", "user": "U0ALICE",
             "text": "od-run -a shell 'echo overheard'", "ts": "5.2"},
        ]
        for event in chatter:
            envelope = await fake.deliver("events_api", fake.event_payload(event))
            with trio.fail_after(CEILING_S):
                await envelope.acked.wait()

        reply = {"type": "message", "channel": started.channel, "channel_type": "channel", "user": "U0ALICE",
                 "text": "echo hello session", "ts": "6.1", "thread_ts": started.ts}
        await fake.deliver("events_api", fake.event_payload(reply))
        with trio.fail_after(CEILING_S):
            sprite, request = await stack.sprites.wait_for_spawn()
        assert request.env["TASK"] == "echo hello session"
        job_id = request.env["JOB_ID"]
        await trio.testing.wait_all_tasks_blocked()  # the session records the job after the spawn
        assert (await stack.store.get(job_id)).session is not None
        assert (await stack.store.get(job_id)).state in (JobState.STARTING, JobState.RUNNING)
        # the overheard chatter produced no reply anywhere, and no job
        answered = [c for c in fake.calls_of("chat.postMessage")[posts_before:] if c.args["channel"] == "C0OTHER"]
        assert answered == []
        assert all(i.addressed is False for i in stack.inbounds if i.conversation.channel == "C0OTHER")
        assert len(stack.sprites.spawned) == 1
