"""Plain Discord messages (gateway MESSAGE_CREATE) where a session was started go to it.

A session started with /od-start in a channel takes plain messages written in that channel
and in the thread opened on its "started" message; one started inside a thread takes that
thread's. Messages from bots, system messages and chatter elsewhere are never answered.
"""

from __future__ import annotations

from typing import Any

import attrs
import trio
import trio.testing

from discord_stack import DiscordStack, open_discord_stack
from fakes.discord import APPLICATION_ID, BOT_TOKEN, BOT_USER_ID, MESSAGE_CONTENT_INTENT, FakeDiscord
from opendispatch.adapters.discord.gateway import gateway_intents
from opendispatch.adapters.discord.interactions import conversation_of
from opendispatch.adapters.discord.messages import parse_message
from opendispatch.config import Config

CEILING_S = 20
GUILD_MESSAGES, DIRECT_MESSAGES = 1 << 9, 1 << 12


def shell_sessions_config() -> Config:
    return attrs.evolve(
        Config.from_env({"OPENDISPATCH_ALLOW_SHELL_SESSIONS": "1"}, dotenv=None), secret_values=(BOT_TOKEN,)
    )


def identified(fake: FakeDiscord) -> bool:
    return any(session.identified.is_set() for session in fake.gateway_sessions)


async def start_session(s: DiscordStack, name: str, channel_id: str) -> dict[str, Any]:
    """/od-start NAME --agent shell over the gateway; returns the "started" message."""
    payload = s.fake.interaction_payload(
        "od-start", [{"name": "name", "type": 3, "value": name}, {"name": "agent", "type": 3, "value": "shell"}],
        channel_id=channel_id,
    )
    await s.fake.inject_interaction(payload)
    started = await s.original(payload)
    assert f"Session {name} started" in started["content"], started["content"]
    return started


async def settle() -> None:
    """Every task is waiting: the adapter has served (or dropped) what was delivered so far."""
    await trio.testing.wait_all_tasks_blocked(cushion=0.05)


async def finish_current_job(s: DiscordStack, sprite_id: str, job_id: str) -> None:
    s.sprites.exit(sprite_id, 0)
    with trio.fail_after(CEILING_S):
        while not (await s.running.store.get(job_id)).is_finished:
            await settle()


async def test_plain_messages_in_the_sessions_channel_and_thread_become_its_jobs_and_chatter_is_ignored() -> None:
    async with open_discord_stack(mode="gateway", config=shell_sessions_config()) as s:
        fake = s.fake
        other = fake.add_channel("random")
        with trio.fail_after(CEILING_S):
            await fake.wait_for(identified)
            intents = fake.gateway_sessions[-1].intents or 0
            assert intents & GUILD_MESSAGES and intents & DIRECT_MESSAGES and intents & MESSAGE_CONTENT_INTENT
            started = await start_session(s, "notes", s.channel)

            # Never a job, never an answer: a bot (in the session's channel), a system message,
            # chatter and a command-looking line in another channel, and an empty message.
            noise = [
                fake.message_payload("echo from a bot", channel_id=s.channel, user_id="530000000000000077", bot=True),
                fake.message_payload("", channel_id=s.channel, kind=7),  # "alice joined"
                fake.message_payload("lunch?", channel_id=other),
                fake.message_payload("/od-run --agent shell -- echo overheard", channel_id=other),
                fake.message_payload("", channel_id=s.channel),
            ]
            for message in noise:
                await fake.inject_message(message)
            await fake.wait_for(lambda f: any(c.route == f"/api/v10/channels/{other}" and c.status for c in f.calls))
            await settle()
            assert s.sprites.spawned == []

            await fake.inject_message(fake.message_payload("echo hello session", channel_id=s.channel))
            sprite, request = await s.sprites.wait_for_spawn()
        assert request.env["TASK"] == "echo hello session"
        job = await s.running.store.get(request.env["JOB_ID"])
        assert job.session is not None
        await finish_current_job(s, sprite.id, job.id)

        # A person opens a thread on the "started" message and writes there.
        thread = fake.open_thread_by_user(s.channel, started["id"])
        with trio.fail_after(CEILING_S):
            await fake.inject_message(fake.message_payload("echo in the thread", channel_id=thread))
            _, second = await s.sprites.wait_for_spawn()
        assert second.env["TASK"] == "echo in the thread"
        assert (await s.running.store.get(second.env["JOB_ID"])).session == job.session

        await settle()
        assert len(s.sprites.spawned) == 2
        # Nothing was ever posted in the other channel, and the bot's own posts are its answers.
        assert [m["author"]["id"] for m in fake.in_channel(other)] == ["530000000000000001"] * 2
        assert all(m["author"]["id"] != BOT_USER_ID for m in fake.in_channel(thread))


async def test_a_session_started_inside_a_thread_takes_that_threads_messages_and_a_mention_is_addressed() -> None:
    async with open_discord_stack(mode="gateway", config=shell_sessions_config()) as s:
        fake = s.fake
        with trio.fail_after(CEILING_S):
            await fake.wait_for(identified)
            topic = fake.message_payload("let's plan", channel_id=s.channel)
            thread = fake.open_thread_by_user(s.channel, topic["id"])
            await start_session(s, "planner", thread)
            await fake.inject_message(fake.message_payload(f"<@{BOT_USER_ID}> echo planned", channel_id=thread, mentions_bot=True))
            _, request = await s.sprites.wait_for_spawn()
        assert request.env["TASK"] == "echo planned"
        # The session's answers go to the thread it was started in.
        with trio.fail_after(CEILING_S):
            await fake.wait_for(lambda f: any(request.env["JOB_ID"] in m["content"] for m in f.in_channel(thread)))
        assert not any(request.env["JOB_ID"] in m["content"] for m in fake.in_channel(s.channel))


async def test_without_the_message_content_intent_the_bot_reconnects_without_it_and_commands_still_work() -> None:
    async with open_discord_stack(mode="gateway", config=shell_sessions_config()) as s:
        s.fake.message_content_enabled = False  # the portal toggle is off: Identify with it gets 4014
        with trio.fail_after(CEILING_S):
            await s.fake.wait_for(identified)
            [accepted] = [session for session in s.fake.gateway_sessions if session.identified.is_set()]
            assert accepted.intents is not None and not accepted.intents & MESSAGE_CONTENT_INTENT
            await start_session(s, "notes", s.channel)
            # Overheard content arrives empty: nothing to route, nothing answered.
            await s.fake.inject_message(s.fake.message_payload("echo lost", channel_id=s.channel))
            await settle()
            assert s.sprites.spawned == []
            # /od-send still reaches the session.
            payload = s.fake.interaction_payload(
                "od-send", [{"name": "name", "type": 3, "value": "notes"}, {"name": "message", "type": 3, "value": "echo sent"}],
                channel_id=s.channel,
            )
            await s.fake.inject_interaction(payload)
            _, request = await s.sprites.wait_for_spawn()
        assert request.env["TASK"] == "echo sent"
        assert s.chat.gateway_failures == [] and len(s.chat.bots) == 1


def test_which_messages_are_ours_and_how_they_are_addressed() -> None:
    me = BOT_USER_ID
    person = {"id": "5300", "username": "alice", "global_name": "Alice"}
    guild = {"channel_id": "77", "guild_id": "12", "author": person, "type": 0, "mentions": []}

    overheard = parse_message({**guild, "content": "echo hi"}, me)
    assert overheard is not None and not overheard.addressed and overheard.text == "echo hi"
    assert overheard.user.name == "Alice" and not overheard.in_dm

    mention = parse_message({**guild, "content": f"<@{me}> /od-jobs --all", "mentions": [{"id": me}]}, me)
    assert mention is not None and mention.addressed and mention.text == "/od-jobs --all"
    nickname_mention = parse_message({**guild, "content": f"<@!{me}>  run\nthis"}, me)
    assert nickname_mention is not None and nickname_mention.addressed and nickname_mention.text == "run\nthis"

    dm = parse_message({"channel_id": "88", "author": person, "type": 0, "content": "od-list", "mentions": []}, me)
    assert dm is not None and dm.addressed and dm.in_dm

    assert parse_message({**guild, "content": "hi", "author": {**person, "bot": True}}, me) is None
    assert parse_message({**guild, "content": "hi", "author": {"id": me, "username": "open-dispatch"}}, me) is None
    assert parse_message({**guild, "content": "hi", "webhook_id": "9"}, me) is None
    assert parse_message({**guild, "content": "", "type": 7}, me) is None  # member joined
    reply = parse_message({**guild, "content": "yes", "type": 19}, me)
    assert reply is not None and reply.text == "yes"


def test_a_thread_is_its_parent_channel_plus_the_reference_of_the_message_it_was_opened_on() -> None:
    assert conversation_of("42", None).channel == "42" and conversation_of("42", None).thread is None
    in_thread = conversation_of("99", "42")
    assert (in_thread.channel, in_thread.thread) == ("42", "42:99")


def test_the_gateway_asks_for_the_message_intents() -> None:
    assert gateway_intents(message_content=True).value == GUILD_MESSAGES | DIRECT_MESSAGES | MESSAGE_CONTENT_INTENT
    assert gateway_intents(message_content=False).value == GUILD_MESSAGES | DIRECT_MESSAGES
    assert APPLICATION_ID == BOT_USER_ID  # the fake's bot shares its application's id, as modern bots do
