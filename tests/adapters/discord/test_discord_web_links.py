"""A job's web link on Discord ("View live" link buttons) and private answers that hold one.

Through the real adapter (HTTP-interactions mode) against the loopback fake Discord: the first
reply and the final card carry a link button (type 2, style 5, `url`, no custom id) with
exactly the job's URL; a private notice is the interaction's ephemeral answer, and where no
interaction can carry it, it is not posted: the channel hears only how to ask for it.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import attrs
import trio

from discord_stack import discord_settings, open_discord_stack
from fakes.discord import EPHEMERAL, FakeDiscord, open_fake_discord
from opendispatch.adapters.discord import DiscordChat, open_discord_chat
from opendispatch.adapters.discord.chat import NOT_SENT_PRIVATELY
from opendispatch.adapters.discord.payloads import link_button, message_parts, with_link_row
from opendispatch.domain.job import Conversation, FailureStage, Job, User
from opendispatch.domain.job_spec import AgentKind, JobSpec
from opendispatch.domain.messages import ChatMessage, Inbound, JobAccepted, JobCard, Notice
from opendispatch.ports.http import HttpRequest

CEILING_S = 15
URL = "https://od.example/jobs/j-0000abcd?grant=odw1.eyJ1IjoiNTMwIn0.c2lnbmF0dXJl&v=1"
SECRET = "odw1.eyJ1IjoiNTMwIn0.c2lnbmF0dXJl"
SPEC = JobSpec(task="run the tests", agent=AgentKind.SHELL, repo="acme/api")

Answer = Callable[[DiscordChat, Inbound], Awaitable[None]]


def job_in(channel: str) -> Job:
    return Job.queued("j-0000abcd", SPEC, Conversation("discord", channel), User("530000000000000001", "alice"), at=0.0)


def card(job: Job, web_url: str | None) -> JobCard:
    failed = job.starting(at=1.0).running().failed(FailureStage.AGENT, "exit 1", at=5.0, exit_code=1)
    return JobCard(job=failed, tail=("1 failed",), total_lines=1, duration_s=4.0, web_url=web_url)


def link_buttons(message: dict[str, Any]) -> list[dict[str, Any]]:
    return [b for row in message.get("components") or [] for b in row["components"] if b.get("style") == 5]


def visible_to_others(fake: FakeDiscord) -> str:
    """Every version of every message that is not ephemeral (deleted ones too: they were seen)."""
    return "\n".join(
        json.dumps(version)
        for versions in fake.versions.values()
        for version in versions
        if not version.get("flags", 0) & EPHEMERAL
    )


@attrs.define
class Rig:
    fake: FakeDiscord
    chat: DiscordChat
    channel: str
    answered: trio.Event

    async def command(self, name: str) -> dict[str, Any]:
        """A signed slash command to the adapter's interactions route, as Discord sends it."""
        payload = self.fake.interaction_payload(name, channel_id=self.channel)
        body = json.dumps(payload).encode()
        timestamp = str(int(time.time()))
        headers = {
            "x-signature-ed25519": self.fake.signing_key.sign(timestamp.encode() + body).signature.hex(),
            "x-signature-timestamp": timestamp,
            "content-type": "application/json",
        }
        [route] = self.chat.http_routes()
        response = await route.handler(HttpRequest("POST", route.path, headers, body))
        assert response.status == 202, response.body
        with trio.fail_after(CEILING_S):
            await self.answered.wait()
        return payload

    def original(self, payload: dict[str, Any]) -> dict[str, Any]:
        original_id = self.fake.interactions[payload["id"]].original_id
        assert original_id is not None
        return self.fake.messages[original_id]


@asynccontextmanager
async def discord_answering(answer: Answer, **settings: Any) -> AsyncIterator[Rig]:
    """The real adapter serving interactions; its handler runs `answer` (then `answered` is set)."""
    async with open_fake_discord() as fake:
        channel = fake.add_channel()
        async with open_discord_chat(discord_settings(fake, **settings)) as chat:
            rig = Rig(fake, chat, channel, trio.Event())

            async def handle(inbound: Inbound) -> None:
                try:
                    await answer(chat, inbound)
                finally:
                    rig.answered.set()

            async with trio.open_nursery() as nursery:
                with trio.fail_after(CEILING_S):
                    await nursery.start(chat.listen, handle)
                yield rig
                nursery.cancel_scope.cancel()


def say(message: Callable[[Inbound], ChatMessage]) -> Answer:
    async def answer(chat: DiscordChat, inbound: Inbound) -> None:
        await chat.send(inbound.conversation, message(inbound))

    return answer


def accepted(web_url: str | None) -> Answer:
    return say(lambda inbound: JobAccepted(job_in(inbound.conversation.channel), web_url=web_url))


the_link = say(lambda inbound: Notice(f"Your web view (valid for 1 hour): {URL}", private=True))


# --- the link on the job's messages ----------------------------------------------------------


async def test_the_first_reply_carries_a_view_live_link_button_with_exactly_the_url() -> None:
    async with discord_answering(accepted(URL)) as rig:
        message = rig.original(await rig.command("od-run"))
        assert link_buttons(message) == [{"type": 2, "style": 5, "label": "View live", "url": URL}]
        assert message["components"][0]["type"] == 1
        assert "queued" in message["content"] and "View live" not in message["content"]  # the button has it
        assert not message["flags"] & EPHEMERAL


async def test_a_deferred_first_reply_gets_the_button_when_it_is_filled_in() -> None:
    async with discord_answering(accepted(URL), defer_after_s=0) as rig:
        payload = await rig.command("od-run")
        assert rig.fake.interactions[payload["id"]].response_type == 5
        with trio.fail_after(CEILING_S):
            message = await rig.fake.wait_for(lambda fake: link_buttons(rig.original(payload)) and rig.original(payload))
        assert link_buttons(message)[0]["url"] == URL


async def test_the_final_card_carries_the_link_button_beside_its_embed() -> None:
    async with open_fake_discord() as fake:
        channel = fake.add_channel()
        async with open_discord_chat(discord_settings(fake)) as chat:
            await chat.send(Conversation("discord", channel), card(job_in(channel), URL))
        [posted] = fake.in_channel(channel)
        assert posted["embeds"] and link_buttons(posted) == [{"type": 2, "style": 5, "label": "View live", "url": URL}]
        assert "custom_id" not in link_buttons(posted)[0]


async def test_without_a_web_link_the_messages_are_as_before() -> None:
    async with discord_answering(accepted(None)) as rig:
        message = rig.original(await rig.command("od-run"))
        await rig.chat.send(Conversation("discord", rig.channel), card(job_in(rig.channel), None))
        assert message.get("components") in (None, [])
        [_, posted_card] = rig.fake.in_channel(rig.channel)
        assert posted_card["components"] == []
        assert "View live" not in json.dumps(rig.fake.versions)
    job = job_in("1")
    assert message_parts(JobAccepted(job, web_url=None)) == message_parts(JobAccepted(job))
    assert message_parts(card(job, None)) == message_parts(attrs.evolve(card(job, URL), web_url=None))


def test_a_url_no_link_button_can_carry_is_shown_as_text() -> None:
    long_url = "https://od.example/jobs/j-0000abcd?grant=" + "a" * 600  # Discord takes 512
    assert link_button("View live", long_url) is None
    [first] = message_parts(JobAccepted(job_in("1"), web_url=long_url))
    assert f"View live: {long_url}" in first["content"] and not first.get("components")
    [final] = message_parts(card(job_in("1"), long_url))
    assert final["content"].endswith(f"View live: {long_url}") and final["components"] == []


def test_the_link_button_respects_discords_row_limits() -> None:
    button = link_button("View live", URL)
    assert button is not None
    stop = {"type": 2, "style": 4, "label": "Stop", "custom_id": "od_stop:j-0000abcd"}
    assert with_link_row([{"type": 1, "components": [stop]}], button) == [{"type": 1, "components": [stop, button]}]
    full_row = {"type": 1, "components": [stop] * 5}
    assert with_link_row([full_row], button) == [full_row, {"type": 1, "components": [button]}]
    assert with_link_row([full_row] * 5, button) == [full_row] * 5  # no sixth row


# --- private answers ------------------------------------------------------------------------


async def test_a_private_notice_is_the_interactions_ephemeral_answer() -> None:
    async with discord_answering(the_link) as rig:
        message = rig.original(await rig.command("od-web"))
        assert message["flags"] & EPHEMERAL and URL in message["content"]
        assert URL not in visible_to_others(rig.fake) and SECRET not in visible_to_others(rig.fake)


async def test_after_a_deferral_the_private_notice_is_an_ephemeral_follow_up_only() -> None:
    async with discord_answering(the_link, defer_after_s=0) as rig:
        payload = await rig.command("od-web")
        with trio.fail_after(CEILING_S):
            await rig.fake.wait_for(lambda fake: fake.interactions[payload["id"]].original_id in fake.deleted)
        holding = [m for m in rig.fake.in_channel(rig.channel) if URL in m["content"]]
        assert holding and all(m["flags"] & EPHEMERAL for m in holding)
        assert URL not in visible_to_others(rig.fake) and SECRET not in visible_to_others(rig.fake)


async def test_a_private_notice_outside_an_interaction_is_never_posted() -> None:
    async with open_fake_discord() as fake:
        channel = fake.add_channel()
        async with open_discord_chat(discord_settings(fake)) as chat:
            await chat.send(Conversation("discord", channel), Notice(f"Your web view: {URL}", private=True))
        [public] = fake.in_channel(channel)
        assert public["content"] == NOT_SENT_PRIVATELY
        everything = json.dumps(fake.versions) + json.dumps(fake.messages)
        assert URL not in everything and SECRET not in everything


async def test_a_public_message_is_never_edited_into_a_private_notice() -> None:
    async with open_fake_discord() as fake:
        channel = fake.add_channel()
        async with open_discord_chat(discord_settings(fake)) as chat:
            ref = await chat.send(Conversation("discord", channel), Notice("Getting your link…"))
            await chat.edit(ref, Notice(f"Your web view: {URL}", private=True))
            with trio.fail_after(CEILING_S):
                await chat.outbox.wait_idle()
        [public] = fake.in_channel(channel)
        assert public["content"] == NOT_SENT_PRIVATELY
        everything = json.dumps(fake.versions) + json.dumps(fake.messages)
        assert URL not in everything and SECRET not in everything


# --- end to end, with the real dispatcher ----------------------------------------------------

GRANTED = re.compile(r"https?://\S+\?grant=odw1\.\S+")


async def test_od_run_and_od_web_through_the_dispatcher() -> None:
    async with open_discord_stack() as s:
        run = await s.command("od-run", {"task": "run the tests", "repo": "acme/api", "agent": "shell"})
        first = await s.original(run)
        [button] = link_buttons(first)
        assert button["url"].startswith(s.running.webhook_url + "/jobs/j-") and "?grant=odw1." in button["url"]

        web = await s.command("od-web")
        answer = await s.original(web)
        assert answer["flags"] & EPHEMERAL
        [url] = GRANTED.findall(answer["content"])
        assert url.startswith(s.running.webhook_url + "/jobs?grant=")
        assert url not in visible_to_others(s.fake) and "/jobs?grant=" not in visible_to_others(s.fake)
