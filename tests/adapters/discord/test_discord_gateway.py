"""discord.py's gateway, on its own asyncio loop in a thread, against the fake gateway.

The bot connects (Hello, Identify, READY over zlib-stream), hands INTERACTION_CREATE to the
Trio side, is closed when the Trio side is cancelled, and is restarted after a crash.
"""

from __future__ import annotations

import threading

import trio

from discord_stack import open_discord_stack
from fakes.discord import FakeDiscord


def identified_sessions(fake: FakeDiscord) -> int:
    return sum(1 for session in fake.gateway_sessions if session.identified.is_set())


async def test_interactions_arrive_over_the_gateway_and_cancelling_closes_the_bot_thread() -> None:
    threads_before = {t.ident for t in threading.enumerate()}
    async with open_discord_stack(mode="gateway") as s:
        with trio.fail_after(15):
            await s.fake.wait_for(identified_sessions)
            payload = s.fake.interaction_payload(  # --all: bob, an admin of the stack, asks
                "od-jobs", [{"name": "all", "type": 5, "value": True}], channel_id=s.channel, user_id="530000000000000002"
            )
            # A field discord.py's own Interaction parser requires; we never let it parse, so an
            # unexpected shape cannot take the connection down.
            del payload["attachment_size_limit"]
            await s.fake.inject_interaction(payload)
            answer = await s.original(payload)
        assert answer["content"].startswith("Recent jobs\nNo jobs yet")
        [bot] = s.chat.bots
        assert bot.connected and not bot.finished.is_set()
        assert s.fake.gateway_sessions[0].heartbeats >= 1
    # Leaving the stack cancelled `listen`: the bot closed its websocket and its thread ended.
    assert bot.finished.is_set()
    assert all(session.ended.is_set() for session in s.fake.gateway_sessions)
    assert s.chat.gateway_failures == []
    leftover = [t for t in threading.enumerate() if t.ident not in threads_before and t.is_alive()]
    assert not [t for t in leftover if "discord" in t.name.lower() or "keep" in t.name.lower()]


async def test_a_crashed_gateway_bot_is_reported_and_restarted_with_backoff() -> None:
    async with open_discord_stack(mode="gateway", restart_initial_s=0.05) as s:
        s.fake.reject_gateway_with = [4004]  # "Authentication failed": discord.py gives up
        with trio.fail_after(15):
            await s.fake.wait_for(identified_sessions)
            assert len(s.chat.gateway_failures) == 1 and "4004" in s.chat.gateway_failures[0]
            assert len(s.chat.bots) == 2 and s.chat.bots[0].finished.is_set()
            payload = s.fake.interaction_payload("od-help", channel_id=s.channel)
            await s.fake.inject_interaction(payload)
            answer = await s.original(payload)
        assert "Open-Dispatch commands" in answer["content"]
    assert all(bot.finished.is_set() for bot in s.chat.bots)
