"""A job's web link on Teams ("View live": `Action.OpenUrl`) and private answers that hold one.

Through the real adapter against the loopback cloud of fakes/teams.py: the first reply (in both
its versions) and the final card carry an `Action.OpenUrl` with exactly the job's URL. Teams
has no ephemeral messages, so a private notice is posted only in a personal (one-to-one) chat,
which the adapter knows from the verified activities of that conversation; in a channel or a
group chat it is not posted at all, and a notice saying where to ask goes instead.
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import attrs
import trio

from fakes.teams import CHANNEL, PERSONAL, FakeTeamsCloud, card_of
from opendispatch.adapters.teams import TeamsChat, open_teams_chat
from opendispatch.adapters.teams.activity import is_personal_chat, parse_activity
from opendispatch.adapters.teams.cards import MAX_LINK_ACTIONS, render_activities
from opendispatch.adapters.teams.chat import MESSAGES_PATH, NOT_SENT_PRIVATELY
from opendispatch.domain.job import Artifact, Conversation, FailureStage, Job, User
from opendispatch.domain.job_spec import AgentKind, JobSpec
from opendispatch.domain.messages import Inbound, JobAccepted, JobCard, MessageRef, Notice
from opendispatch.ports.http import HttpRequest
from teams_rig import CEILING_S, open_cloud, open_rig, settings_for

URL = "https://od.example/jobs/j-0000abcd?grant=odw1.eyJ1IjoiN2ZhZiJ9.c2lnbmF0dXJl&v=1"
SECRET = "odw1.eyJ1IjoiN2ZhZiJ9.c2lnbmF0dXJl"
GROUP_CHAT = "19:8f1c2b7e9a0d4c3b@thread.v2"
SPEC = JobSpec(task="run the tests", agent=AgentKind.SHELL, repo="acme/api")

Answer = Callable[[TeamsChat, Inbound], Awaitable[None]]


def job_at(where: Conversation) -> Job:
    return Job.queued("j-0000abcd", SPEC, where, User("7faf8ab2", "Alice Adams"), at=0.0)


def card(job: Job, web_url: str | None, artifacts: tuple[Artifact, ...] = ()) -> JobCard:
    failed = attrs.evolve(job.starting(at=1.0).running().failed(FailureStage.AGENT, "exit 1", at=5.0, exit_code=1), artifacts=artifacts)
    return JobCard(job=failed, tail=("1 failed",), total_lines=1, duration_s=4.0, web_url=web_url)


def open_urls(activity: dict[str, Any]) -> list[dict[str, Any]]:
    return [a for a in (card_of(activity) or {}).get("actions", []) if a.get("type") == "Action.OpenUrl"]


def group_chat_activity(cloud: FakeTeamsCloud, text: str) -> dict[str, Any]:
    """A message in a group chat: `conversationType: groupChat`, `isGroup`, a `19:…@thread.v2` id."""
    activity = cloud.message_activity(text, thread=None)
    activity["conversation"] = {"id": GROUP_CHAT, "conversationType": "groupChat", "tenantId": activity["conversation"]["tenantId"], "isGroup": True}
    activity["channelData"].pop("channel", None)
    return activity


def posted_record(cloud: FakeTeamsCloud) -> str:
    """Every version of every activity the bot sent, anywhere."""
    return "\n".join(json.dumps(version) for activity in cloud.activities.values() for version in activity.versions)


@attrs.define
class Rig:
    cloud: FakeTeamsCloud
    chat: TeamsChat
    answer: Answer
    answered: trio.Event = attrs.Factory(trio.Event)

    async def deliver(self, activity: dict[str, Any]) -> None:
        """An activity to the messaging route, signed as the Bot Connector signs it; waits for the answer."""
        [route] = self.chat.http_routes()
        assert route.path == MESSAGES_PATH
        headers = {"authorization": f"Bearer {self.cloud.sign()}", "content-type": "application/json"}
        self.answered = trio.Event()
        response = await route.handler(HttpRequest("POST", MESSAGES_PATH, headers, json.dumps(activity).encode()))
        assert response.status == 202, response.body
        with trio.fail_after(CEILING_S):
            await self.answered.wait()
            await self.chat.outbox.drained()


@asynccontextmanager
async def teams_answering(answer: Answer) -> AsyncIterator[Rig]:
    async with open_cloud() as cloud:
        async with open_teams_chat(settings_for(cloud)) as chat:
            rig = Rig(cloud, chat, answer)

            async def handle(inbound: Inbound) -> None:
                try:
                    await rig.answer(chat, inbound)
                finally:
                    rig.answered.set()

            async with trio.open_nursery() as nursery:
                await nursery.start(chat.listen, handle)
                yield rig
                nursery.cancel_scope.cancel()


async def the_link(chat: TeamsChat, inbound: Inbound) -> None:
    await chat.send(inbound.conversation, Notice(f"Your web view (valid for 1 hour): {URL}", private=True))


# --- the link on the job's messages ----------------------------------------------------------


async def test_the_first_reply_and_the_card_carry_view_live_with_exactly_the_url() -> None:
    rig_refs: list[MessageRef] = []

    async def start(chat: TeamsChat, inbound: Inbound) -> None:
        rig_refs.append(await chat.send(inbound.conversation, JobAccepted(job_at(inbound.conversation), web_url=URL)))

    async with teams_answering(start) as rig:
        await rig.deliver(rig.cloud.message_activity("od-run run the tests"))
        [started] = rig.cloud.in_conversation(CHANNEL)
        assert [a["title"] for a in card_of(started.latest)["actions"]] == ["Stop", "View live"]  # type: ignore[index]
        assert open_urls(started.latest) == [{"type": "Action.OpenUrl", "title": "View live", "url": URL}]

        [ref] = rig_refs
        await rig.chat.send(ref.conversation, card(job_at(ref.conversation), URL), reply_to=ref)
        with trio.fail_after(CEILING_S):
            await rig.chat.outbox.drained()
        final = [a for a in rig.cloud.in_conversation(CHANNEL) if a is not started]
        assert [open_urls(a.latest) for a in final] == [[{"type": "Action.OpenUrl", "title": "View live", "url": URL}]]
        # The first reply loses Stop once the card is out, and keeps the link.
        assert len(started.versions) == 2
        assert [a["title"] for a in card_of(started.latest)["actions"]] == ["View live"]  # type: ignore[index]
        assert open_urls(started.latest)[0]["url"] == URL


def test_view_live_comes_first_and_the_card_keeps_its_action_count() -> None:
    links = tuple(Artifact(f"PR #{n}", f"https://github.com/acme/api/pull/{n}") for n in range(1, 8))
    job = job_at(Conversation("teams", CHANNEL))
    [with_link] = render_activities(card(job, URL, links))
    [without] = render_activities(card(job, None, links))
    assert [a["title"] for a in open_urls(with_link)] == ["View live", "PR #1", "PR #2", "PR #3", "PR #4"]
    assert len(open_urls(with_link)) == len(open_urls(without)) == MAX_LINK_ACTIONS


def test_without_a_web_link_the_cards_are_as_before() -> None:
    job = job_at(Conversation("teams", CHANNEL))
    assert render_activities(JobAccepted(job, web_url=None)) == render_activities(JobAccepted(job))
    [first] = render_activities(JobAccepted(job))
    [final] = render_activities(card(job, None))
    assert open_urls(first) == [] and open_urls(final) == []
    assert "View live" not in json.dumps([first, final])
    assert render_activities(card(job, None)) == render_activities(attrs.evolve(card(job, URL), web_url=None))


# --- private answers ------------------------------------------------------------------------


async def test_a_private_notice_is_posted_in_a_personal_chat() -> None:
    async with teams_answering(the_link) as rig:
        await rig.deliver(rig.cloud.message_activity("od-web", conversation=PERSONAL, mention=False))
        [posted] = rig.cloud.in_conversation(PERSONAL)
        assert URL in posted.latest["text"]
        assert rig.cloud.in_conversation(CHANNEL) == []


async def test_a_private_notice_asked_for_in_a_channel_is_refused() -> None:
    async with teams_answering(the_link) as rig:
        await rig.deliver(rig.cloud.message_activity("od-web"))
        [posted] = rig.cloud.activities.values()
        assert posted.conversation.startswith(CHANNEL) and posted.latest["text"] == NOT_SENT_PRIVATELY
        assert "personal chat" in NOT_SENT_PRIVATELY and "od-web" in NOT_SENT_PRIVATELY
        assert URL not in posted_record(rig.cloud) and SECRET not in posted_record(rig.cloud)
        assert [c.method for c in rig.cloud.calls] == ["POST"]


async def test_a_private_notice_asked_for_in_a_group_chat_is_refused() -> None:
    async with teams_answering(the_link) as rig:
        await rig.deliver(group_chat_activity(rig.cloud, "od-web"))
        [posted] = rig.cloud.activities.values()
        assert posted.conversation == GROUP_CHAT and posted.latest["text"] == NOT_SENT_PRIVATELY
        assert URL not in posted_record(rig.cloud) and SECRET not in posted_record(rig.cloud)


async def test_a_personal_chat_is_known_from_its_own_activities_not_from_others() -> None:
    async with teams_answering(the_link) as rig:
        await rig.deliver(rig.cloud.message_activity("od-web"))  # the channel: refused
        await rig.deliver(rig.cloud.message_activity("od-web", conversation=PERSONAL, mention=False))
        assert rig.chat.is_personal(Conversation("teams", PERSONAL))
        assert not rig.chat.is_personal(Conversation("teams", CHANNEL))
        assert not rig.chat.is_personal(Conversation("teams", "a:never-seen"))  # unknown counts as shared
        [personal] = rig.cloud.in_conversation(PERSONAL)
        [refused] = rig.cloud.in_conversation(CHANNEL)
        assert URL in personal.latest["text"] and URL not in json.dumps(refused.versions)


def test_only_a_one_to_one_chat_counts_as_personal() -> None:
    assert is_personal_chat("personal", PERSONAL, None)
    assert is_personal_chat("personal", PERSONAL, False)
    assert is_personal_chat(None, PERSONAL, None)  # no conversationType: the a: id says it
    assert not is_personal_chat("channel", CHANNEL, True)
    assert not is_personal_chat("groupChat", GROUP_CHAT, True)
    assert not is_personal_chat("personal", PERSONAL, True)  # signs that disagree: shared
    assert not is_personal_chat("personal", f"{CHANNEL};messageid=1632474000000", None)
    assert not is_personal_chat("personal", GROUP_CHAT, None)
    assert not is_personal_chat("channel", PERSONAL, None)
    assert not is_personal_chat(None, CHANNEL, None)
    assert not is_personal_chat(None, GROUP_CHAT, None)


def test_the_activity_parser_reads_the_conversation_type_and_is_group() -> None:
    cloud = FakeTeamsCloud()
    cloud.url = "http://127.0.0.1:1"
    assert parse_activity(cloud.message_activity("hi", conversation=PERSONAL, mention=False)).personal
    assert not parse_activity(cloud.message_activity("hi")).personal
    group = parse_activity(group_chat_activity(cloud, "hi"))
    assert group.conversation_type == "groupChat" and group.is_group is True and not group.personal


async def test_a_channel_message_is_never_edited_into_a_private_notice() -> None:
    refs: list[MessageRef] = []

    async def hold_on(chat: TeamsChat, inbound: Inbound) -> None:
        refs.append(await chat.send(inbound.conversation, Notice("Getting your link…")))

    async with teams_answering(hold_on) as rig:
        await rig.deliver(rig.cloud.message_activity("od-web"))
        [ref] = refs
        await rig.chat.edit(ref, Notice(f"Your web view: {URL}", private=True))
        with trio.fail_after(CEILING_S):
            await rig.chat.outbox.drained()
        [posted] = rig.cloud.activities.values()
        assert len(posted.versions) == 2 and posted.latest["text"] == NOT_SENT_PRIVATELY
        assert URL not in posted_record(rig.cloud) and SECRET not in posted_record(rig.cloud)


# --- end to end, with the real dispatcher ----------------------------------------------------

GRANTED = re.compile(r"https?://\S+\?grant=odw1\.\S+")


async def test_od_run_through_the_dispatcher_gets_view_live_on_the_first_card() -> None:
    async with open_rig() as rig:
        await rig.say('od-run --repo acme/api --agent shell "run the tests"')
        accepted = await rig.wait_for_card("queued")
        [action] = open_urls(accepted.latest)
        assert action["title"] == "View live" and action["url"].startswith(rig.running.webhook_url + "/jobs/j-")


async def test_od_web_through_the_dispatcher_in_a_channel_and_in_a_personal_chat() -> None:
    async with open_rig() as rig:
        await rig.say("od-web")
        refused = await rig.wait_for_text("personal chat")
        assert refused.conversation.startswith(CHANNEL) and refused.latest["text"] == NOT_SENT_PRIVATELY

        await rig.say("od-web", conversation=PERSONAL, mention=False)
        answer = await rig.wait_for_text("grant=")
        assert answer.conversation == PERSONAL
        [url] = GRANTED.findall(answer.latest["text"])
        channel_record = "\n".join(json.dumps(a.versions) for a in rig.cloud.in_conversation(CHANNEL))
        assert "odw1." not in channel_record and url not in channel_record
