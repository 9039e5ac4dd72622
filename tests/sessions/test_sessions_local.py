"""Sessions end to end on local sprites: the real sidecar, the real webhook server, a stand-in claude."""

from __future__ import annotations

from pathlib import Path

import trio

from opendispatch.domain.job import JobState
from opendispatch.domain.session import SessionState
from rig import BOB, Conversation, local_sprites, open_rig


async def test_a_session_without_persistent_carries_the_conversation_but_not_the_workspace(tmp_path: Path) -> None:
    sprites = local_sprites(tmp_path)
    async with open_rig(sprites=sprites) as rig:
        await rig.say("/od-start chat")
        started = rig.notices()[-1]
        assert "Session chat started" in started and "uncommitted workspace changes do NOT" in started
        session = await rig.session_in("chat", SessionState.IDLE)

        first = await rig.message("write the plan")
        assert first.session == session.id
        out1 = await rig.output(first.id)
        assert f"[fake-claude] session {session.agent_session_id} turn 1" in out1
        assert "[fake-claude] notes.txt: write the plan" in out1

        second = await rig.message("now refine it")
        out2 = await rig.output(second.id)
        # the agent's conversation (same id) came along to a fresh sprite...
        assert f"[fake-claude] session {session.agent_session_id} turn 2" in out2
        assert "[fake-claude] remembers: write the plan" in out2
        # ...the workspace did not: notes.txt only has this message's line
        assert "[fake-claude] notes.txt: now refine it" in out2
        cards = [await rig.card(j.id) for j in (first, second)]
        assert [c.job.state for c in cards] == [JobState.SUCCEEDED, JobState.SUCCEEDED]
        assert cards[0].job.sprite_id != cards[1].job.sprite_id
        assert await sprites.list_sprites() == []  # each message's sprite was destroyed

        await rig.session_in("chat", SessionState.IDLE)
        await rig.say("/od-list")
        listing = rig.notices()[-1]
        assert "chat" in listing and "idle" in listing and "2 messages" in listing and "sprite per message" in listing
        await rig.say("/od-jobs")
        assert rig.sessions.by_name("chat") is not None
        await rig.say("/od-stop chat", BOB)
        assert "Only alice" in rig.notices()[-1]
        await rig.say("/od-stop chat")
        assert "Session chat ended" in rig.notices()[-1]
        assert rig.sessions.by_name("chat") is None
        await rig.say("after the end")
        assert "Not a command" in rig.notices()[-1]


async def test_a_persistent_session_keeps_one_sprite_its_workspace_and_the_agent_conversation(tmp_path: Path) -> None:
    sprites = local_sprites(tmp_path)
    async with open_rig(sprites=sprites) as rig:
        await rig.say("/od-start keep --persistent")
        assert "Persistent: one sprite keeps the workspace" in rig.notices()[-1]
        session = await rig.session_in("keep", SessionState.IDLE)
        assert session.sprite_id is not None

        first = await rig.message("first step")
        out1 = await rig.output(first.id)
        assert f"[fake-claude] session {session.agent_session_id} turn 1" in out1
        other_room = Conversation("memory", "elsewhere")
        second = await rig.message("/od-send keep second step", BOB, other_room)
        assert "Sent to session keep" in rig.notices()[-1]
        out2 = await rig.output(second.id)
        assert f"[fake-claude] session {session.agent_session_id} turn 2" in out2
        assert "[fake-claude] remembers: first step" in out2
        assert "[fake-claude] notes.txt: first step | second step" in out2  # message 1's file is still there
        cards = [await rig.card(j.id) for j in (first, second)]
        assert {c.job.sprite_id for c in cards} == {session.sprite_id}
        assert [s.id for s in await sprites.list_sprites()] == [session.sprite_id]

        await rig.say("/od-stop --all")
        assert "Session keep ended" in rig.notices()[-1] and "destroyed" in rig.notices()[-1]
        assert await sprites.list_sprites() == []


async def test_shell_sessions_need_the_operator_and_then_keep_files_queue_and_suspend(tmp_path: Path) -> None:
    async with open_rig(sprites=local_sprites(tmp_path / "off")) as rig:
        await rig.say("/od-start sh --agent shell --persistent")
        assert "OPENDISPATCH_ALLOW_SHELL_SESSIONS" in rig.notices()[-1]
        assert rig.sessions.by_name("sh") is None

    sprites = local_sprites(tmp_path / "on")
    async with open_rig(sprites=sprites, allow_shell=True, idle_suspend_s=1.0) as rig:
        await rig.say("/od-start sh --agent shell --persistent")
        session = await rig.session_in("sh", SessionState.IDLE)
        slow = await rig.message("echo kept > f.txt && sleep 1 && echo written")
        queued = await rig.message("cat f.txt")
        assert "queued (1 message ahead of it)" in rig.notices()[-1]
        assert "written" in await rig.output(slow.id)
        assert await rig.output(queued.id) == ["kept"]

        suspended = await rig.session_in("sh", SessionState.SUSPENDED)  # after 1s without a message
        assert sprites.is_suspended(suspended.sprite_id or "")
        await rig.say("/od-list")
        assert "suspended" in rig.notices()[-1]
        woken = await rig.message("cat f.txt; echo again")
        assert await rig.output(woken.id) == ["kept", "again"]
        assert not sprites.is_suspended(session.sprite_id or "")
        await rig.say("/od-stop sh")
        assert await sprites.list_sprites() == []


async def test_stop_cancels_a_running_message_and_the_idle_limit_ends_a_session(tmp_path: Path) -> None:
    sprites = local_sprites(tmp_path)
    async with open_rig(sprites=sprites, allow_shell=True, max_idle_s=2.0, idle_suspend_s=3600.0) as rig:
        await rig.say("/od-start loop --agent shell --persistent")
        await rig.session_in("loop", SessionState.IDLE)
        busy = await rig.message("echo started; sleep 60")
        with trio.fail_after(20):
            await rig.chat.wait_for(lambda m: "started" in getattr(m, "lines", ()))
        await rig.say("/od-stop loop")
        assert f"Cancelled: {busy.id}" in rig.notices()[-1]
        assert (await rig.card(busy.id)).job.state is JobState.CANCELLED
        assert await sprites.list_sprites() == []

        await rig.say("/od-start idle --agent shell --persistent", where=Conversation("memory", "other"))
        await rig.session_in("idle", SessionState.IDLE)
        with trio.fail_after(20):
            await rig.chat.wait_for(lambda m: "Session idle ended (idle for 2s)" in getattr(m, "text", ""))
        assert rig.sessions.by_name("idle") is None
        assert await sprites.list_sprites() == []


async def test_cancelling_a_message_on_a_persistent_sprite_stops_only_that_message(tmp_path: Path) -> None:
    sprites = local_sprites(tmp_path)
    async with open_rig(sprites=sprites, allow_shell=True) as rig:
        await rig.say("/od-start keep --agent shell --persistent")
        session = await rig.session_in("keep", SessionState.IDLE)
        first = await rig.message("echo kept > f.txt; echo started; sleep 60")
        with trio.fail_after(20):
            await rig.chat.wait_for(lambda m: "started" in getattr(m, "lines", ()))
        await rig.say(f"/od-cancel {first.id}")
        card = await rig.card(first.id)
        assert card.job.state is JobState.CANCELLED and card.job.cancelled_by == "alice"
        # the session and its sprite (workspace included) live on for the next message
        await rig.session_in("keep", SessionState.IDLE)
        assert [s.id for s in await sprites.list_sprites()] == [session.sprite_id]
        after = await rig.message("cat f.txt")
        assert await rig.output(after.id) == ["kept"]
        await rig.say("/od-stop keep")
        assert await sprites.list_sprites() == []
