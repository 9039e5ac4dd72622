"""Teams sessions: the bot only hears messages that @mention it (channels) or any message in a
1:1 chat, all addressed; a plain one where a session was started is a message for it."""

from __future__ import annotations

import attrs
import trio

from fakes.teams import APP_PASSWORD, CHANNEL, PERSONAL
from opendispatch.adapters.memory.sprites import FakeSprites
from opendispatch.config import Config
from teams_rig import CEILING_S, TeamsRig, open_rig

THREAD = "1632474000000"


def shell_sessions_config() -> Config:
    return attrs.evolve(
        Config.from_env({"OPENDISPATCH_ALLOW_SHELL_SESSIONS": "1"}, dotenv=None), secret_values=(APP_PASSWORD,)
    )


async def next_task(rig: TeamsRig) -> tuple[str, str]:
    """The TASK and JOB_ID of the next spawned sprite (a non-persistent session spawns per message)."""
    assert isinstance(rig.sprites, FakeSprites)
    with trio.fail_after(CEILING_S):
        _, request = await rig.sprites.wait_for_spawn()
    return request.env["TASK"], request.env["JOB_ID"]


async def test_a_mention_in_the_channel_thread_of_a_session_is_a_job_of_that_session() -> None:
    async with open_rig(config=shell_sessions_config()) as rig:
        await rig.say("od-start notes --agent shell", thread=THREAD)
        started = await rig.wait_for_text("Session notes started")
        assert started.conversation == f"{CHANNEL};messageid={THREAD}"
        await rig.say("run this", thread=THREAD)
        task, job_id = await next_task(rig)
        assert task == "run this"
        job = await rig.store.get(job_id)
        assert job.session is not None and job.conversation.thread == THREAD


async def test_a_plain_message_in_a_one_to_one_chat_with_a_session_is_a_job_of_that_session() -> None:
    async with open_rig(config=shell_sessions_config()) as rig:
        await rig.say("od-start s --agent shell", conversation=PERSONAL, mention=False, thread=None)
        await rig.wait_for_text("Session s started")
        await rig.say("echo hi", conversation=PERSONAL, mention=False, thread=None)
        task, job_id = await next_task(rig)
        assert task == "echo hi"
        assert (await rig.store.get(job_id)).session is not None
        # Nothing said "Not a command": the message went to the session.
        assert not [a for a in rig.cloud.activities.values() if "Not a command" in (a.latest.get("text") or "")]
