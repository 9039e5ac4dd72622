"""A job's web link on Slack ("View live" link buttons) and private answers that hold one.

Through the real adapter against the loopback fake Slack: the first reply and the final card
carry a Block Kit link button with exactly the job's URL; a click on it (Slack reports it like
any button) is acknowledged and ignored; a private notice reaches the asker only (the slash
command's response_url, else chat.postEphemeral), and when neither can carry it, it is not
posted: the channel hears only that it could not be sent privately.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import trio

from fakes.slack import BOT_USER_ID, FakeSlack, form_body, open_fake_slack, post_signed, unescape
from opendispatch.adapters.slack import SlackChat, SlackMode, open_slack_chat
from opendispatch.adapters.slack.chat import NOT_SENT_PRIVATELY
from opendispatch.adapters.slack.inbound import BUTTONS, LINK_BUTTONS
from opendispatch.adapters.slack.render import VIEW_LIVE_ACTION_ID, render
from opendispatch.domain.job import Conversation, FailureStage, Job, User
from opendispatch.domain.job_spec import AgentKind, JobSpec
from opendispatch.domain.messages import Inbound, JobAccepted, JobCard, Notice
from slack_stack import CEILING_S, open_stack, settings_for

CHANNEL = "C0DEV"
WHERE = Conversation("slack", CHANNEL)
URL = "https://od.example/jobs/j-0000abcd?grant=odw1.eyJ1IjoiVTBBTElDRSJ9.c2lnbmF0dXJl&v=1"
SECRET = "odw1.eyJ1IjoiVTBBTElDRSJ9.c2lnbmF0dXJl"  # the grant: found even if the URL were escaped
JOB = Job.queued(
    "j-0000abcd", JobSpec(task="run the tests", agent=AgentKind.SHELL, repo="acme/api"), WHERE, User("U0ALICE", "alice"), at=0.0
)
FAILED = JOB.starting(at=1.0).running().failed(FailureStage.AGENT, "exit 1", at=5.0, exit_code=1)


def card(web_url: str | None) -> JobCard:
    return JobCard(job=FAILED, tail=("1 failed",), total_lines=1, duration_s=4.0, web_url=web_url)


def buttons(blocks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [e for b in blocks if b.get("type") == "actions" for e in b["elements"]]


def view_live(blocks: list[dict[str, Any]]) -> dict[str, Any]:
    [button] = [e for e in buttons(blocks) if e.get("action_id") == VIEW_LIVE_ACTION_ID]
    return button


def public_record(fake: FakeSlack) -> str:
    """Everything anyone but the asker could have seen: every version of every message, files,
    and the arguments of every API call but the (private) chat.postEphemeral attempts."""
    messages = [m.all_text() for m in fake.messages]
    files = [f.get("content", b"").decode("utf-8", "replace") + json.dumps(f.get("shared")) for f in fake.files.values()]
    calls = [json.dumps(c.args) for c in fake.calls if c.method != "chat.postEphemeral"]
    return "\n".join([*messages, *files, *calls])


def assert_secret_kept(fake: FakeSlack) -> None:
    record = public_record(fake)
    assert URL not in record and SECRET not in record
    assert fake.ephemerals == []  # and it did not reach the asker either: nothing was accepted


async def settle(fake: FakeSlack, chat: SlackChat) -> None:
    with trio.fail_after(CEILING_S):
        await chat.outbox.drained()  # every queued write, an edit in flight included, is done


@asynccontextmanager
async def slack_answering(
    answer: Callable[[SlackChat, Inbound], Awaitable[None]],
) -> AsyncIterator[tuple[FakeSlack, SlackChat, trio.Event]]:
    """The real adapter in Socket Mode whose handler runs `answer`; the event is set after it."""
    async with open_fake_slack() as fake:
        async with open_slack_chat(settings_for(fake, SlackMode.SOCKET)) as chat:
            answered = trio.Event()

            async def handle(inbound: Inbound) -> None:
                try:
                    await answer(chat, inbound)
                finally:
                    answered.set()

            async with trio.open_nursery() as nursery:
                with trio.fail_after(CEILING_S):
                    await nursery.start(chat.listen, handle)
                yield fake, chat, answered
                nursery.cancel_scope.cancel()


async def answer_with_the_link(chat: SlackChat, inbound: Inbound) -> None:
    await chat.send(inbound.conversation, Notice(f"Your web view (valid for 1 hour): {URL}", private=True))


def mention(fake: FakeSlack, text: str) -> dict[str, Any]:
    """`@open-dispatch …` in the channel: an Events API payload, so no response_url."""
    return fake.event_payload(
        {"type": "app_mention", "user": "U0ALICE", "text": f"<@{BOT_USER_ID}> {text}", "channel": CHANNEL,
         "ts": "1800000000.000100", "event_ts": "1800000000.000100"}
    )


# --- the link on the job's messages ----------------------------------------------------------


async def test_the_first_reply_and_the_card_carry_a_view_live_link_button_with_exactly_the_url() -> None:
    async with open_fake_slack() as fake:
        async with open_slack_chat(settings_for(fake, SlackMode.HTTP)) as chat:
            started_ref = await chat.send(WHERE, JobAccepted(JOB, web_url=URL))
            [started] = fake.channel_messages(CHANNEL)
            assert [e["action_id"] for e in buttons(started.blocks)] == ["od_stop", VIEW_LIVE_ACTION_ID]
            button = view_live(started.blocks)
            assert button["url"] == URL and button["text"] == {"type": "plain_text", "text": "View live", "emoji": True}
            assert "value" not in button and "style" not in button
            assert f"View live: {URL.replace('&', '&amp;')}" in started.text  # the notification text too

            await chat.send(WHERE, card(URL), reply_to=started_ref)
            await settle(fake, chat)
            [posted_card] = fake.thread(started)
            assert view_live(posted_card.blocks)["url"] == URL
            # The channel message loses Stop when the card is out, and keeps the link.
            assert [e["action_id"] for e in buttons(started.blocks)] == [VIEW_LIVE_ACTION_ID]
            assert view_live(started.blocks)["url"] == URL
            assert len(started.versions) == 2


async def test_without_a_web_link_the_messages_are_as_before() -> None:
    async with open_fake_slack() as fake:
        async with open_slack_chat(settings_for(fake, SlackMode.HTTP)) as chat:
            started_ref = await chat.send(WHERE, JobAccepted(JOB))
            await chat.send(WHERE, card(None), reply_to=started_ref)
            await settle(fake, chat)
        [started] = fake.channel_messages(CHANNEL)
        [posted_card] = fake.thread(started)
        assert [e["action_id"] for e in buttons(started.versions[0].blocks)] == ["od_stop"]
        assert buttons(started.blocks) == [] and buttons(posted_card.blocks) == []
        assert "View live" not in fake.everything_said()
    assert [m.args() for m in render(JobAccepted(JOB, web_url=None))] == [m.args() for m in render(JobAccepted(JOB))]


def test_a_url_no_button_can_carry_is_shown_as_text() -> None:
    long_url = "https://od.example/jobs/j-0000abcd?grant=" + "a" * 3000
    [message] = render(JobAccepted(JOB, web_url=long_url))
    assert [e["action_id"] for e in buttons(list(message.blocks))] == ["od_stop"]
    assert any(b["type"] == "context" and "View live: https://od.example" in b["elements"][0]["text"] for b in message.blocks)


# --- a click on the link button ---------------------------------------------------------------


def test_the_link_button_is_none_of_the_buttons_that_mean_a_command() -> None:
    assert VIEW_LIVE_ACTION_ID in LINK_BUTTONS and not LINK_BUTTONS & BUTTONS.keys()


async def test_a_click_on_view_live_is_acknowledged_and_ignored_in_socket_mode() -> None:
    async with open_stack(SlackMode.SOCKET) as stack:
        await stack.chat.send(WHERE, JobAccepted(JOB, web_url=URL))
        [started] = stack.fake.channel_messages(CHANNEL)
        envelope = await stack.fake.deliver("interactive", stack.fake.click_payload(started, VIEW_LIVE_ACTION_ID))
        with trio.fail_after(3):
            await envelope.acked.wait()
        await trio.sleep(0.3)
        assert stack.inbounds == []
        assert stack.fake.ephemerals == [] and len(stack.fake.messages) == 1


async def test_a_click_on_view_live_is_acknowledged_and_ignored_in_http_mode() -> None:
    async with open_stack(SlackMode.HTTP) as stack:
        await stack.chat.send(WHERE, JobAccepted(JOB, web_url=URL))
        [started] = stack.fake.channel_messages(CHANNEL)
        click = {"payload": json.dumps(stack.fake.click_payload(started, VIEW_LIVE_ACTION_ID))}
        response = await post_signed(
            stack.http, stack.events_url, form_body(click), timestamp=int(time.time()),
            content_type="application/x-www-form-urlencoded",
        )
        assert response.status_code == 200
        await trio.sleep(0.3)
        assert stack.inbounds == []
        assert stack.fake.ephemerals == [] and len(stack.fake.messages) == 1


# --- private answers ------------------------------------------------------------------------


async def test_a_private_notice_to_a_slash_command_goes_through_its_response_url_only() -> None:
    async with slack_answering(answer_with_the_link) as (fake, chat, answered):
        await fake.slash_command("/od-web", "")
        with trio.fail_after(CEILING_S):
            await answered.wait()
        [ephemeral] = fake.ephemerals
        assert ephemeral["via"] == "response_url" and ephemeral["response_type"] == "ephemeral"
        assert URL in unescape(ephemeral["text"])
        assert fake.messages == [] and fake.calls_of("chat.postMessage") == []


async def test_a_private_notice_without_a_response_url_goes_by_chat_post_ephemeral() -> None:
    async with slack_answering(answer_with_the_link) as (fake, chat, answered):
        await fake.deliver("events_api", mention(fake, "/od-web"))
        with trio.fail_after(CEILING_S):
            await answered.wait()
        [ephemeral] = fake.ephemerals
        assert ephemeral["via"] == "chat.postEphemeral"
        assert ephemeral["user"] == "U0ALICE" and ephemeral["channel"] == CHANNEL
        assert URL in unescape(ephemeral["text"])
        assert fake.messages == [] and fake.calls_of("chat.postMessage") == []


async def test_when_slack_refuses_the_ephemeral_answer_the_link_is_not_posted_publicly() -> None:
    async with slack_answering(answer_with_the_link) as (fake, chat, answered):

        def refuse(args: dict[str, Any]) -> dict[str, Any]:
            return {"ok": False, "error": "user_not_in_channel"}

        fake._m_chat_postEphemeral = refuse  # type: ignore[method-assign]
        await fake.deliver("events_api", mention(fake, "/od-web"))
        with trio.fail_after(CEILING_S):
            await answered.wait()
        assert [c.error for c in fake.calls_of("chat.postEphemeral")] == ["user_not_in_channel"]
        [public] = fake.channel_messages(CHANNEL)
        assert public.text == NOT_SENT_PRIVATELY
        assert_secret_kept(fake)


async def test_a_used_up_response_url_and_a_refused_post_ephemeral_post_nothing_secret() -> None:
    async with slack_answering(answer_with_the_link) as (fake, chat, answered):
        fake._m_chat_postEphemeral = lambda args: {"ok": False, "error": "channel_not_found"}  # type: ignore[method-assign]
        payload = fake.slash_payload("/od-web", "")
        fake._response_urls[payload["response_url"].rsplit("/", 1)[-1]] = 5  # all five uses spent
        await fake.deliver("slash_commands", payload)
        with trio.fail_after(CEILING_S):
            await answered.wait()
        [public] = fake.channel_messages(CHANNEL)
        assert public.text == NOT_SENT_PRIVATELY
        assert_secret_kept(fake)
        assert [c.error for c in fake.calls_of("chat.postEphemeral")] == ["channel_not_found"]


async def test_a_private_notice_with_nobody_asking_is_never_posted() -> None:
    async with open_fake_slack() as fake:
        async with open_slack_chat(settings_for(fake, SlackMode.HTTP)) as chat:
            await chat.send(WHERE, Notice(f"Your web view: {URL}", private=True))
        [public] = fake.channel_messages(CHANNEL)
        assert public.text == NOT_SENT_PRIVATELY
        assert_secret_kept(fake)
        assert fake.calls_of("chat.postEphemeral") == []


async def test_a_channel_message_is_never_edited_into_a_private_notice() -> None:
    async with open_fake_slack() as fake:
        async with open_slack_chat(settings_for(fake, SlackMode.HTTP)) as chat:
            ref = await chat.send(WHERE, Notice("Getting your link…"))
            await chat.edit(ref, Notice(f"Your web view: {URL}", private=True))
            await settle(fake, chat)
        [public] = fake.channel_messages(CHANNEL)
        assert len(public.versions) == 2 and public.text == NOT_SENT_PRIVATELY
        assert_secret_kept(fake)


# --- end to end, with the real dispatcher ----------------------------------------------------

GRANTED = re.compile(r"https?://\S+\?grant=odw1\.\S+")


async def test_od_run_through_the_dispatcher_gets_view_live_on_the_first_reply() -> None:
    async with open_stack() as stack:
        await stack.fake.slash_command("/od-run", '--repo acme/api --agent shell "run the tests"')
        started = await stack.started_message()
        button = view_live(started.blocks)
        assert button["url"].startswith(stack.running.webhook_url + "/jobs/j-") and "?grant=odw1." in button["url"]
        assert f"View live: {button['url'].replace('&', '&amp;')}" in started.text


async def test_od_web_through_the_dispatcher_answers_only_the_asker() -> None:
    async with open_stack() as stack:
        await stack.fake.slash_command("/od-web", "")
        await stack.wait_for(lambda: stack.fake.ephemerals)
        [answer] = stack.fake.ephemerals
        assert answer["via"] == "response_url" and answer["response_type"] == "ephemeral"
        [url] = GRANTED.findall(unescape(answer["text"]))
        assert url.startswith(stack.running.webhook_url + "/jobs?grant=")
        assert stack.fake.messages == [] and "odw1." not in public_record(stack.fake)
