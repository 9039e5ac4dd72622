"""What every `ChatPort` promises (ports/chat.py), checked against each adapter: memory,
console, Slack, Discord and Teams (the last three against their fakes' apps in memory:
fakes/in_memory_http.py), all on trio's autojump clock.

- `send` returns a reference in the conversation it was given, and the message is shown;
- `edit` replaces that message (in place where the platform edits messages; the console
  prints the new version), and after quick edits the newest version is what is shown;
- `reply_to` puts the new message in the parent's thread, where the platform has threads;
- an ephemeral notice still reaches the conversation when nothing can carry it privately,
  and a private one (it holds a credential) is never shown where others read;
- a long text is never cut silently: each line reaches the reader, within the platform's
  limits (the fakes refuse anything over them);
- each adapter declares its limits (`ChatLimits`).
"""

from __future__ import annotations

import io
import json
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import attrs
import pytest
import trio
import trio.testing

from fakes.discord import APPLICATION_ID, BOT_TOKEN as DISCORD_TOKEN, GUILD_ID, FakeDiscord
from fakes.in_memory_http import IN_MEMORY_URL, in_memory_client
from fakes.slack import BOT_TOKEN as SLACK_TOKEN, SIGNING_SECRET, FakeSlack
from fakes.teams import APP_ID, APP_PASSWORD, CHANNEL as TEAMS_CHANNEL, TENANT, FakeTeamsCloud, card_text
from opendispatch.adapters.console import ConsoleChat
from opendispatch.adapters.discord import DiscordChat, DiscordSettings
from opendispatch.adapters.discord.rest import DiscordRest
from opendispatch.adapters.memory import MemoryChat
from opendispatch.adapters.slack import Pacing, SlackChat, SlackMode, SlackSettings
from opendispatch.adapters.slack.chat import who_am_i
from opendispatch.adapters.slack.web import SlackWeb
from opendispatch.adapters.teams import TeamsChat, TeamsSettings
from opendispatch.domain.job import Conversation
from opendispatch.domain.messages import ChatMessage, Inbound, MessageRef, Notice
from opendispatch.ports.chat import ChatLimits, ChatPort, DeclaresLimits
from opendispatch.ports.http import HttpRequest

ADAPTERS = ["memory", "console", "slack", "discord", "teams"]
CEILING_S = 60
SECRET_LINK = "https://dispatch.example/jobs?grant=s3cr3t-grant-token"


@attrs.define
class Harness:
    """One adapter under test, and how a reader of its conversation sees what it said."""

    chat: ChatPort
    where: Conversation
    #: Everything a reader of the conversation sees now (every message, threads included).
    shown: Callable[[], str]
    #: How many messages the conversation holds (None: the adapter prints, it has no messages).
    count: Callable[[], int] | None
    #: Whether `child` was posted in `parent`'s thread (None: the platform has no threads).
    in_thread: Callable[[MessageRef, MessageRef], bool] | None
    #: Others read this conversation (a private notice must never appear in it).
    shared: bool
    settle: Callable[[], Any]


async def _nothing() -> None:
    await trio.lowlevel.checkpoint()


@asynccontextmanager
async def open_memory() -> AsyncIterator[Harness]:
    chat = MemoryChat()

    def in_thread(parent: MessageRef, child: MessageRef) -> bool:
        return next(s.reply_to for s in chat.sent if s.ref == child) == parent

    yield Harness(chat, Conversation("memory", "c1"), chat.transcript, lambda: len(chat.sent), in_thread, False, _nothing)


@asynccontextmanager
async def open_console() -> AsyncIterator[Harness]:
    output = io.StringIO()
    chat = ConsoleChat(output, io.StringIO(""), color=False, env={"USER": "ada"})
    yield Harness(chat, Conversation("console", "console"), output.getvalue, None, None, False, _nothing)


@asynccontextmanager
async def open_slack() -> AsyncIterator[Harness]:
    fake = FakeSlack()
    fake.base_url = IN_MEMORY_URL
    settings = SlackSettings(
        bot_token=SLACK_TOKEN,
        mode=SlackMode.HTTP,
        signing_secret=SIGNING_SECRET,
        api_url=fake.base_url + "/api/",
        pacing=Pacing(),  # Slack's own pace: the clock jumps
    )
    async with in_memory_client(fake.app) as http, trio.open_nursery() as nursery:
        web = SlackWeb(http, api_url=settings.api_url, bot_token=settings.bot_token, pacing=settings.pacing)
        chat = SlackChat(settings, web, nursery, await who_am_i(web))

        def shown() -> str:
            return "\n".join(m.text + "\n" + "\n".join(m.block_texts()) for m in fake.messages if m.channel == "C0DEV")

        def in_thread(parent: MessageRef, child: MessageRef) -> bool:
            [message] = [m for m in fake.messages if m.ts == child.id]
            return message.thread_ts == parent.id

        yield Harness(
            chat, Conversation("slack", "C0DEV"), shown, lambda: len(fake.channel_messages()), in_thread, True,
            chat.outbox.drained,
        )
        nursery.cancel_scope.cancel()


@asynccontextmanager
async def open_discord() -> AsyncIterator[Harness]:
    fake = FakeDiscord()
    fake.base_url = IN_MEMORY_URL
    channel = fake.add_channel()
    settings = DiscordSettings(
        bot_token=DISCORD_TOKEN, application_id=APPLICATION_ID, guild_id=GUILD_ID, mode="http", api_base_url=fake.api_url
    )
    async with in_memory_client(fake.app, base_url=fake.api_url) as http, trio.open_nursery() as nursery:
        chat = DiscordChat(settings, DiscordRest(http, DISCORD_TOKEN), nursery)

        def shown() -> str:
            texts = []
            for message_id, message in fake.messages.items():
                if message_id in fake.deleted:
                    continue
                texts.append(message["content"] + "\n" + json.dumps(message.get("embeds") or []))
            return "\n".join(texts)

        def in_thread(parent: MessageRef, child: MessageRef) -> bool:
            _, parent_id = parent.id.split(":", 1)
            child_channel, _ = child.id.split(":", 1)
            return child_channel == parent_id  # a Discord thread's id is its first message's

        yield Harness(
            chat, Conversation("discord", channel), shown, lambda: len(fake.in_channel(channel)), in_thread, True,
            chat.outbox.wait_idle,
        )
        nursery.cancel_scope.cancel()


@asynccontextmanager
async def open_teams() -> AsyncIterator[Harness]:
    cloud = FakeTeamsCloud()
    cloud.url = IN_MEMORY_URL
    settings = TeamsSettings(
        app_id=APP_ID,
        app_password=APP_PASSWORD,
        tenant_id=TENANT,
        openid_metadata_url=cloud.openid_url,
        token_url_override=cloud.token_url,
    )
    async with in_memory_client(cloud.app()) as http, trio.open_nursery() as nursery:
        chat = TeamsChat(settings, http, nursery)
        heard: list[Inbound] = []
        spoke = trio.Event()

        async def handler(inbound: Inbound) -> None:
            heard.append(inbound)
            spoke.set()

        await nursery.start(chat.listen, handler)
        # Teams tells a bot where to answer (serviceUrl) with each activity: a user speaks first.
        activity = cloud.message_activity("hello", thread=None)
        answer = await chat.receive(
            HttpRequest("POST", "/api/messages", {"authorization": f"Bearer {cloud.sign()}"}, json.dumps(activity).encode())
        )
        assert answer.status == 202
        await spoke.wait()

        def shown() -> str:
            return "\n".join(
                (a.latest.get("text") or "") + "\n" + card_text(a.card) for a in cloud.in_conversation(TEAMS_CHANNEL)
            )

        def in_thread(parent: MessageRef, child: MessageRef) -> bool:
            return cloud.activities[child.id].reply_to == parent.id

        yield Harness(
            chat, heard[0].conversation, shown, lambda: len(cloud.in_conversation(TEAMS_CHANNEL)), in_thread, True,
            chat.outbox.drained,
        )
        nursery.cancel_scope.cancel()


OPENERS = {"memory": open_memory, "console": open_console, "slack": open_slack, "discord": open_discord, "teams": open_teams}


#: Each test takes `autojump_clock` itself: pytest-trio runs a test on the clock among its own
#: arguments (a fixture's request for one is not enough).
@pytest.fixture(params=ADAPTERS)
async def chat(request: pytest.FixtureRequest) -> AsyncIterator[Harness]:
    with trio.fail_after(CEILING_S):
        async with OPENERS[request.param]() as harness:
            yield harness


async def send(h: Harness, message: ChatMessage, *, reply_to: MessageRef | None = None) -> MessageRef:
    ref = await h.chat.send(h.where, message, reply_to=reply_to)
    await h.settle()
    return ref


async def test_send_returns_a_reference_in_that_conversation_and_the_message_is_shown(chat: Harness, autojump_clock: trio.testing.MockClock) -> None:
    ref = await send(chat, Notice("first words"))
    assert (ref.conversation.platform, ref.conversation.channel) == (chat.where.platform, chat.where.channel)
    assert "first words" in chat.shown()


async def test_an_edit_replaces_the_message_and_the_newest_of_quick_edits_is_shown(chat: Harness, autojump_clock: trio.testing.MockClock) -> None:
    ref = await send(chat, Notice("version 0"))
    before = chat.count() if chat.count is not None else None
    for version in range(1, 11):
        await chat.chat.edit(ref, Notice(f"version {version}"))
    await chat.settle()
    shown = chat.shown()
    assert "version 10" in shown
    if chat.count is not None:  # a platform that edits messages: in place, the old text gone
        assert chat.count() == before
        assert "version 0\n" not in shown + "\n" and "version 9\n" not in shown + "\n"


async def test_a_reply_goes_in_its_parents_thread(chat: Harness, autojump_clock: trio.testing.MockClock) -> None:
    parent = await send(chat, Notice("the parent"))
    child = await send(chat, Notice("the reply"), reply_to=parent)
    assert "the reply" in chat.shown()
    if chat.in_thread is not None:
        assert chat.in_thread(parent, child)


async def test_an_ephemeral_notice_is_not_lost_when_nothing_carries_it_privately(chat: Harness, autojump_clock: trio.testing.MockClock) -> None:
    await send(chat, Notice("usage: /od-run TASK", ephemeral=True))
    assert "usage: /od-run TASK" in chat.shown()


async def test_a_private_notice_is_never_shown_where_others_read(chat: Harness, autojump_clock: trio.testing.MockClock) -> None:
    await send(chat, Notice(f"Your link: {SECRET_LINK}", ephemeral=True, private=True))
    if chat.shared:
        assert "s3cr3t-grant-token" not in chat.shown()
        assert chat.count is None or chat.count() <= 1  # at most a note that it was not sent here


async def test_a_long_text_is_never_cut_silently(chat: Harness, autojump_clock: trio.testing.MockClock) -> None:
    lines = [f"line {n:03d} " + "x" * 50 for n in range(250)]  # ~15,000 characters
    await send(chat, Notice("\n".join(lines)))
    shown = chat.shown()
    assert all(line in shown for line in lines)


def test_each_adapter_declares_its_limits() -> None:
    for cls in (MemoryChat, ConsoleChat, SlackChat, DiscordChat, TeamsChat):
        limits = getattr(cls, "limits", None)
        assert isinstance(limits, ChatLimits), cls
        assert limits.page_chars > 0 and limits.edit_interval_s > 0
    assert isinstance(MemoryChat(), DeclaresLimits)
