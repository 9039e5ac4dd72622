"""Approval prompts in Teams (issue #22): an Adaptive Card in the job's thread with three
`Action.Submit` buttons; a press is the matching command by whoever pressed, so the real
dispatcher decides (owner or admin only); the card is updated to the decision, without actions."""

from __future__ import annotations

from typing import Any

import attrs

from fakes.teams import ALICE, BOB, card_text
from harness import FakeSidecar
from opendispatch.adapters.teams.activity import card_command
from opendispatch.adapters.teams.cards import render_activities
from opendispatch.config import Config
from opendispatch.domain.approvals import ApprovalRequest, ApprovalState
from opendispatch.domain.job import Conversation, Job, User
from opendispatch.domain.job_spec import AgentKind, JobSpec
from opendispatch.domain.messages import ApprovalPrompt
from opendispatch.domain.ownership import Ownership
from teams_rig import TeamsRig, open_rig

ROOT = {"id": "29:1XJKJMvc5GBtc2-root", "name": "Root Admin", "aadObjectId": "00000000-3d56-4244-b585-20c8a42ed2b8"}
#: Only root is an admin here: Bob is neither the owner nor an admin.
CONFIG = Config.embedded(ownership=Ownership(admins=frozenset({ROOT["aadObjectId"]})))

JOB = Job.queued(
    "j-0123abcd", JobSpec(task="t", agent=AgentKind.CLAUDE), Conversation("teams", "19:x"), User("u", "Alice Adams"), at=0.0
)
REQUEST = ApprovalRequest(
    id="a-1a2b3c4d", job_id=JOB.id, tool="Bash", detail="git push", reason="Publish", rule="*", asked_at=0.0
)


async def job_asking(rig: TeamsRig) -> FakeSidecar:
    await rig.say("od-config set approvals ask-all", sender=ROOT)
    await rig.wait_for_text("approvals is now ask-all")
    await rig.say('od-run -a claude "tidy up"')
    return await rig.sidecar()


async def ask(sidecar: FakeSidecar, tool: str, arguments: dict[str, Any]) -> str:
    answer = await sidecar.post("/webhooks/approval", {"jobId": sidecar.job_id, "tool": tool, "input": arguments})
    assert answer.status_code == 200 and answer.json()["decision"] == "pending", answer.text
    return str(answer.json()["requestId"])


def press(action: dict[str, Any]) -> dict[str, Any]:
    """The `value` a press on this Action.Submit sends (its data)."""
    assert action["type"] == "Action.Submit"
    data: dict[str, Any] = action["data"]
    return data


async def stored(rig: TeamsRig, request_id: str) -> ApprovalRequest:
    request = await rig.store.approval(request_id)
    assert request is not None
    return request


async def test_the_card_has_three_buttons_in_the_jobs_thread_and_only_the_owner_decides() -> None:
    async with open_rig(config=CONFIG) as rig:
        sidecar = await job_asking(rig)
        accepted = await rig.wait_for_card("queued")
        request_id = await ask(sidecar, "Bash", {"command": "git push **now** [x](http://evil)", "description": "Publish"})
        prompt = await rig.wait_for_card(f"od-approve {request_id}")

        assert prompt.reply_to == accepted.id and prompt.conversation == accepted.conversation  # the job's thread
        card = prompt.card
        assert card is not None
        approve, for_job, deny = card["actions"]
        assert approve == {"type": "Action.Submit", "title": "Approve", "style": "positive",
                           "data": {"action": "od_approve", "requestId": request_id}}
        assert for_job == {"type": "Action.Submit", "title": "Approve for this job",
                           "data": {"action": "od_approve_job", "requestId": request_id}}
        assert deny == {"type": "Action.Submit", "title": "Deny", "style": "destructive",
                        "data": {"action": "od_deny", "requestId": request_id}}
        text = card_text(card)
        assert f"Job \n{sidecar.job_id}\n asks to run \nBash" in text and "Why: \nPublish" in text
        detail = card["body"][1]["inlines"][0]
        assert detail == {"type": "TextRun", "text": "git push **now** [x](http://evil)", "fontType": "Monospace"}
        assert all(block["type"] == "RichTextBlock" for block in card["body"])  # the agent's words are never markdown

        await rig.say("", value=press(approve), sender=BOB, mention=False)
        await rig.wait_for_text(f"Only Alice Adams, who started job {sidecar.job_id}")
        assert (await stored(rig, request_id)).state is ApprovalState.PENDING
        assert len(prompt.versions) == 1

        await rig.say("", value=press(approve), sender=ALICE, mention=False)
        await rig.cloud.wait_for(lambda c: len(prompt.versions) > 1)
        decided = await stored(rig, request_id)
        assert (decided.state, decided.decided_by, decided.for_job) == (ApprovalState.APPROVED, "Alice Adams", False)
        assert prompt.card is not None and "actions" not in prompt.card
        assert "✅ Approved by Alice Adams" in card_text(prompt.card)


async def test_deny_and_approve_for_this_job() -> None:
    async with open_rig(config=CONFIG) as rig:
        sidecar = await job_asking(rig)
        first = await ask(sidecar, "Bash", {"command": "rm -rf build"})
        prompt = await rig.wait_for_card(f"od-approve {first}")
        assert prompt.card is not None
        await rig.say("", value=press(prompt.card["actions"][2]), sender=ROOT, mention=False)  # an admin may answer
        await rig.cloud.wait_for(lambda c: len(prompt.versions) > 1)
        assert ((await stored(rig, first)).state, (await stored(rig, first)).decided_by) == (ApprovalState.DENIED, "Root Admin")
        assert "⛔ Denied by Root Admin" in card_text(prompt.card) and "actions" not in prompt.card

        second = await ask(sidecar, "WebFetch", {"url": "https://example.com"})
        prompt = await rig.wait_for_card(f"od-approve {second}")
        assert prompt.card is not None
        await rig.say("", value=press(prompt.card["actions"][1]), sender=ALICE, mention=False)
        await rig.cloud.wait_for(lambda c: len(prompt.versions) > 1)
        approved = await stored(rig, second)
        assert (approved.state, approved.for_job) == (ApprovalState.APPROVED, True)
        assert "✅ Approved by Alice Adams for the rest of the job" in card_text(prompt.card)
        again = await sidecar.post("/webhooks/approval", {"jobId": sidecar.job_id, "tool": "Read", "input": {"file_path": "x"}})
        assert again.json()["decision"] == "approve" and again.json()["requestId"] is None


def test_presses_become_commands_and_foreign_data_does_not() -> None:
    assert card_command({"action": "od_approve", "requestId": "a-1a2b3c4d"}) == "/od-approve a-1a2b3c4d"
    assert card_command({"action": "od_approve_job", "requestId": "a-1a2b3c4d"}) == "/od-approve a-1a2b3c4d --job"
    assert card_command({"action": "od_deny", "requestId": "a-1a2b3c4d"}) == "/od-deny a-1a2b3c4d"
    assert card_command({"action": "od_stop", "jobId": "j-1a2b3c4d"}) == "/od-cancel j-1a2b3c4d"
    assert card_command({"action": "od_deny", "requestId": "a-1a2b3c4d --job"}) is None
    assert card_command({"action": "other", "requestId": "a-1a2b3c4d"}) is None and card_command("od_deny") is None


def test_decided_and_timed_out_cards_have_no_actions_and_long_details_are_cut() -> None:
    for state, by, said in (
        (ApprovalState.APPROVED, "Alice Adams", "✅ Approved by Alice Adams"),
        (ApprovalState.DENIED, "Root", "⛔ Denied by Root"),
        (ApprovalState.TIMED_OUT, None, "⏰ Timed out: nobody answered in time, so it was denied"),
    ):
        request = attrs.evolve(REQUEST.decided(state, by=by or "", at=1.0), decided_by=by)
        [activity] = render_activities(ApprovalPrompt(JOB, request))
        card = activity["attachments"][0]["content"]
        assert "actions" not in card and said in card_text(card)
        assert "text" not in activity  # a card activity carries no text (its id must stay usable)

    huge = attrs.evolve(REQUEST, detail="x" * 50_000, reason="y" * 50_000)
    [activity] = render_activities(ApprovalPrompt(JOB, huge))
    card = activity["attachments"][0]["content"]
    detail = card["body"][1]["inlines"][0]["text"]
    assert len(detail) <= 1500 and detail.endswith("…")
    assert len(card["actions"]) == 3
