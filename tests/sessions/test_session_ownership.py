"""A session runs in its owner's conversation with its owner's agent: nobody else drives it
(issue #20: another user's /od-send and plain messages in the session's channel ran in it)."""

from __future__ import annotations

from harness import ALICE, BOB, CHANNEL, open_harness
from opendispatch.config import Config
from opendispatch.domain.messages import Inbound, JobAccepted


async def test_only_the_owner_or_an_admin_sends_to_a_session_or_talks_in_its_channel() -> None:
    async with open_harness(config=Config.from_env({"OPENDISPATCH_ADMIN_USERS": "u-admin"}, dotenv=None)) as h:
        await h.say("/od-start work --agent opencode", ALICE)
        before = len(h.sprites.spawned)
        await h.say("/od-send work delete everything", BOB)
        assert h.notices()[-1].startswith("Only alice, who started session work, or an Open-Dispatch admin can send it messages")
        await h.running.dispatcher.handle(Inbound(CHANNEL, BOB, "just chatting here", addressed=False))
        await h.running.dispatcher.handle(Inbound(CHANNEL, BOB, "please run this", addressed=True))
        assert h.notices()[-1].startswith("Only alice, who started session work")
        assert not any(isinstance(s.message, JobAccepted) for s in h.chat.sent)  # nothing ran
        assert len(h.sprites.spawned) == before
        await h.say("/od-stop work", BOB)
        assert h.notices()[-1].startswith("Only alice, who started session work, or an Open-Dispatch admin can stop it")
        await h.say("/od-send work first", ALICE)
        accepted = [s.message for s in h.chat.sent if isinstance(s.message, JobAccepted)]
        assert [a.job.requested_by for a in accepted] == [ALICE]
