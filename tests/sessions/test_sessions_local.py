"""Sessions end to end on local sprites: the real sidecar, the real webhook server, the real Claude Code."""

from __future__ import annotations

from pathlib import Path

import pytest
import trio

from opendispatch.domain.job import JobState
from opendispatch.domain.session import SessionState
from modelserver.server import ScenarioServer
from real_agents import agent_environment, open_folder
from rig import ALICE, BOB, Conversation, local_sprites, open_rig


#: Each message runs a shell step on notes.txt, then answers; the first answer holds a word the
#: second message's request must carry (the conversation came along).
NOTES = {
    "description": "Two session messages, each appending to notes.txt and showing it.",
    "turns": [
        {"tool_calls": [{"tool": "shell", "command": "echo first >> notes.txt; cat notes.txt"}]},
        {"text": "Noted. The secret word is PELICAN."},
        {"tool_calls": [{"tool": "shell", "command": "echo second >> notes.txt; cat notes.txt"}]},
        {"text": "Second answer."},
    ],
}


def notes_shown(model: ScenarioServer) -> list[str]:
    """The lines of notes.txt that the last shell step printed, as the CLI sent them back."""
    outputs = [text for text in model.main_requests()[-1].texts() if text.startswith(("first", "second"))]
    return outputs[-1].split("<system-reminder>")[0].split()


@pytest.mark.parametrize("agent", ["claude", "opencode"])
async def test_a_session_without_persistent_carries_the_conversation_but_not_the_workspace(
    agent_cli_bin: Path, agent: str
) -> None:
    with open_folder("od-sessions-") as root, ScenarioServer(NOTES) as model:
        sprites = local_sprites(root, agent_cli_bin)
        async with open_rig(sprites=sprites, passthrough=agent_environment(model.url)) as rig:
            await rig.say(f"/od-start chat --agent {agent}")
            started = rig.notices()[-1]
            assert "Session chat started" in started and "uncommitted workspace changes do NOT" in started
            session = await rig.session_in("chat", SessionState.IDLE)

            first = await rig.message("write the plan")
            assert first.session == session.id
            card1 = await rig.card(first.id)
            assert card1.job.state is JobState.SUCCEEDED and card1.job.agent is not None
            reported = card1.job.agent.session_id
            if agent == "claude":
                assert reported == session.agent_session_id  # Claude Code keeps the id we pinned
            else:
                assert reported.startswith("ses_")  # OpenCode makes its own...
                idle = await rig.session_in("chat", SessionState.IDLE)  # the message is done with
                assert idle.agent_session_id == reported  # ...which the next message resumes

            second = await rig.message("now refine it")
            card2 = await rig.card(second.id)
            assert card2.job.state is JobState.SUCCEEDED, await rig.output(second.id)
            # the agent's conversation came along to a fresh sprite: the model saw message 1...
            assert any("PELICAN" in text for text in model.main_requests()[-1].texts())
            assert card2.job.agent is not None and card2.job.agent.session_id == reported
            # ...the workspace did not: notes.txt only has this message's line
            assert notes_shown(model) == ["second"]
            assert card1.job.sprite_id != card2.job.sprite_id
            assert await sprites.list_sprites() == []  # each message's sprite was destroyed

            await rig.session_in("chat", SessionState.IDLE)
            await rig.say("/od-list")
            listing = rig.notices()[-1]
            assert "chat" in listing and "idle" in listing and "2 messages" in listing and "sprite per message" in listing
            await rig.say("/od-stop chat", BOB)
            assert "Only alice" in rig.notices()[-1]
            await rig.say("/od-stop chat")
            assert "Session chat ended" in rig.notices()[-1]
            assert rig.sessions.by_name("chat") is None
            await rig.say("after the end")
            assert "Not a command" in rig.notices()[-1]


@pytest.mark.parametrize("agent", ["claude", "opencode"])
async def test_a_persistent_session_keeps_one_sprite_its_workspace_and_the_agent_conversation(
    agent_cli_bin: Path, agent: str
) -> None:
    with open_folder("od-sessions-") as root, ScenarioServer(NOTES) as model:
        sprites = local_sprites(root, agent_cli_bin)
        async with open_rig(sprites=sprites, passthrough=agent_environment(model.url)) as rig:
            await rig.say(f"/od-start keep --persistent --agent {agent}")
            assert "Persistent: one sprite keeps the workspace" in rig.notices()[-1]
            session = await rig.session_in("keep", SessionState.IDLE)
            assert session.sprite_id is not None

            first = await rig.message("first step")
            card1 = await rig.card(first.id)
            assert card1.job.state is JobState.SUCCEEDED, await rig.output(first.id)
            other_room = Conversation("memory", "elsewhere")
            second = await rig.message("/od-send keep second step", ALICE, other_room)  # its owner, from elsewhere
            assert "Sent to session keep" in rig.notices()[-1]
            card2 = await rig.card(second.id)
            assert card2.job.state is JobState.SUCCEEDED, await rig.output(second.id)
            assert any("PELICAN" in text for text in model.main_requests()[-1].texts())
            assert notes_shown(model) == ["first", "second"]  # message 1's file is still there
            assert card1.job.agent is not None and card2.job.agent is not None
            assert card2.job.agent.session_id == card1.job.agent.session_id  # the conversation it reported
            assert {c.job.sprite_id for c in (card1, card2)} == {session.sprite_id}
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
