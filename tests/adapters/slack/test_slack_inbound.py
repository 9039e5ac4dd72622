"""The pure rules of adapters/slack/inbound.py: what a payload means, and what is ignored."""

from __future__ import annotations

from typing import Any

import pytest

from opendispatch.adapters.slack.inbound import BotIdentity, from_event, from_interaction, from_slash_command
from opendispatch.adapters.slack.render import STOP_ACTION_ID, VIEW_LIVE_ACTION_ID
from opendispatch.domain.job import Conversation, User

BOT = BotIdentity(user_id="U0BOT", bot_id="B0BOT")


def slash(**change: object) -> dict[str, object]:
    fields = {"command": "/od-run", "text": '--repo acme/api "fix"', "user_id": "U1", "user_name": "ann", "channel_id": "C1",
              "response_url": "https://hooks.slack.com/commands/T/1/x", "trigger_id": "t"}
    return {**fields, **change}


def test_a_slash_command_becomes_its_text_by_its_user() -> None:
    incoming = from_slash_command(slash())
    assert incoming is not None
    assert incoming.inbound.text == '/od-run --repo acme/api "fix"' and incoming.inbound.user == User("U1", "ann")
    assert incoming.inbound.conversation == Conversation("slack", "C1")
    assert incoming.invocation.response_url == "https://hooks.slack.com/commands/T/1/x"
    odd = from_slash_command(slash(text=None, user_name=5, response_url=[]))
    assert odd is not None and odd.inbound.text == "/od-run" and odd.inbound.user == User("U1", "U1")
    assert odd.invocation.response_url is None


@pytest.mark.parametrize("change", [{"command": ""}, {"user_id": 7}, {"channel_id": None}])
def test_a_slash_command_without_its_command_user_or_channel_is_ignored(change: dict[str, object]) -> None:
    assert from_slash_command(slash(**change)) is None
    assert from_slash_command("command=/od-run") is None


def click(**change: Any) -> dict[str, Any]:
    payload = {
        "type": "block_actions", "trigger_id": "t",
        "user": {"id": "U1", "username": "ann", "name": "Ann"},
        "channel": {"id": "C1", "name": "dev"},
        "container": {"type": "message", "message_ts": "1.2", "channel_id": "C1"},
        "message": {"ts": "1.2", "thread_ts": "1.0"},
        "actions": [{"action_id": VIEW_LIVE_ACTION_ID, "type": "button"}, {"action_id": STOP_ACTION_ID, "value": "j-1a2b3c4d"}],
    }
    return {**payload, **change}


def test_a_click_on_our_button_is_its_command_in_the_jobs_thread() -> None:
    incoming = from_interaction(click())
    assert incoming is not None and incoming.inbound.text == "/od-cancel j-1a2b3c4d"
    assert incoming.inbound.conversation == Conversation("slack", "C1", thread="1.0") and incoming.inbound.user == User("U1", "ann")
    started = from_interaction(click(message={"ts": "1.2"}, channel=None, user={"id": "U1", "username": 3, "name": "Ann"}))
    assert started is not None and started.inbound.conversation == Conversation("slack", "C1", thread="1.2")
    assert started.inbound.user == User("U1", "Ann")
    skipped = from_interaction(click(actions=[None, {"action_id": ["x"]}, {"action_id": STOP_ACTION_ID, "value": "j-1a2b3c4d"}]))
    assert skipped is not None and skipped.inbound.text == "/od-cancel j-1a2b3c4d"


@pytest.mark.parametrize(
    "change",
    [
        {"type": "view_submission"},
        {"actions": [{"action_id": VIEW_LIVE_ACTION_ID}]},
        {"actions": "stop"},
        {"actions": [{"action_id": STOP_ACTION_ID, "value": "j-1; rm -rf"}]},
        {"actions": [{"action_id": STOP_ACTION_ID, "value": 5}]},
        {"user": "U1"},
        {"channel": {}, "container": {"channel_id": 1}},
    ],
)
def test_a_click_that_is_not_one_of_ours_is_ignored(change: dict[str, Any]) -> None:
    assert from_interaction(click(**change)) is None


def event(**change: Any) -> dict[str, Any]:
    message = {"type": "message", "channel": "C1", "channel_type": "channel", "user": "U1", "text": "run the tests", "ts": "2.0"}
    return {"type": "event_callback", "event_id": "Ev1", "event": {**message, **change}}


def test_events_addressed_to_us_and_overheard_chat() -> None:
    mention = from_event(event(type="app_mention", text="<@U0BOT> /od-jobs", thread_ts="1.0"), BOT)
    assert mention is not None and mention.inbound.text == "/od-jobs" and mention.inbound.addressed
    assert mention.inbound.conversation == Conversation("slack", "C1", thread="1.0")
    direct = from_event(event(channel_type="im", text="/od-list"), BOT)
    assert direct is not None and direct.inbound.addressed
    overheard = from_event(event(), BOT)
    assert overheard is not None and not overheard.inbound.addressed and overheard.inbound.text == "run the tests"
    odd = from_event(event(text=None, thread_ts=5), BOT)
    assert odd is not None and odd.inbound.text == "" and odd.inbound.conversation.thread is None


@pytest.mark.parametrize(
    "change",
    [
        {"user": "U0BOT"},
        {"bot_id": "B0BOT"},
        {"bot_id": "B9"},
        {"subtype": "message_changed"},
        {"subtype": 1},
        {"text": "hi <@U0BOT>"},  # it also arrives as app_mention
        {"channel_type": "mpim"},
        {"type": "reaction_added"},
        {"user": None},
        {"channel": 5},
    ],
)
def test_events_that_are_not_ours_to_answer_are_ignored(change: dict[str, Any]) -> None:
    assert from_event(event(**change), BOT) is None


def test_bodies_that_are_not_event_callbacks_are_ignored() -> None:
    assert from_event({"type": "url_verification", "challenge": "x"}, BOT) is None
    assert from_event({"type": "event_callback", "event": "message"}, BOT) is None
    assert from_event(["event_callback"], BOT) is None
