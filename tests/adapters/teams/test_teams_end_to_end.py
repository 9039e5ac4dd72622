"""Activity in → job → replies, live card updated in place, final card; through real code."""

from __future__ import annotations

import trio

from fakes.teams import BOB, CHANNEL, PERSONAL, card_text
from opendispatch.domain.job import JobState
from teams_rig import open_rig


async def test_a_channel_mention_runs_a_job_with_a_live_card_and_a_final_card() -> None:
    async with open_rig() as rig:
        await rig.say('od-run --repo acme/api --agent shell "run the tests"')
        accepted = await rig.wait_for_card("queued")
        assert "acme/api @ main · shell" in card_text(accepted.card)
        assert accepted.reply_to == "1632474000000"  # in the thread the user started
        assert accepted.conversation == f"{CHANNEL};messageid=1632474000000"
        sidecar = await rig.sidecar()
        await sidecar.status("running")
        await sidecar.logs(["collecting...", "3 passed"], seq=0)
        live = await rig.wait_for_card("3 passed")
        await sidecar.logs(["coverage 91%"], seq=1)
        await sidecar.post(
            "/webhooks/artifacts",
            {"jobId": sidecar.job_id, "artifacts": [{"name": "PR #7", "url": "https://github.com/acme/api/pull/7", "type": "pr"}]},
        )
        await sidecar.status("completed", 0)
        final = await rig.wait_for_card("succeeded")
        text = card_text(final.card)
        assert "Exit code\n0" in text and "Duration" in text and "coverage 91%" in text
        assert {"type": "Action.OpenUrl", "title": "PR #7", "url": "https://github.com/acme/api/pull/7"} in final.card["actions"]
        assert final.card["fallbackText"].startswith("✅ Job ")
        # the live card was updated in place and ends with every line, without its Stop button
        assert len(live.versions) >= 2 and live.reply_to == accepted.id
        assert "coverage 91%" in card_text(live.card) and "actions" not in live.card
        assert final.reply_to == accepted.id
        assert rig.cloud.order.index(accepted.id) < rig.cloud.order.index(live.id) < rig.cloud.order.index(final.id)
        # the first reply loses its Stop button once the job has ended
        with trio.fail_after(5):
            await rig.cloud.wait_for(lambda c: "Ended" in card_text(c.activities[accepted.id].card))
        assert [a["title"] for a in accepted.card.get("actions", [])] == ["View live"]  # Stop is gone
        assert (await rig.store.get(sidecar.job_id)).state is JobState.SUCCEEDED
        assert rig.cloud.token_requests == 1  # one client-credentials token, cached


async def test_a_one_to_one_chat_needs_no_mention_and_gets_text_answers() -> None:
    async with open_rig() as rig:
        await rig.say("od-jobs", conversation=PERSONAL, mention=False, thread=None)
        answer = await rig.wait_for_text("Recent jobs of Alice Adams")
        assert answer.conversation == PERSONAL and answer.reply_to is None
        assert answer.latest["textFormat"] == "markdown"
        await rig.say("hello bot", conversation=PERSONAL, mention=False, thread=None)
        await rig.wait_for_text("Not a command")


async def test_the_stop_button_cancels_the_job_and_the_cards_say_who_stopped_it() -> None:
    async with open_rig() as rig:
        await rig.say('od-run -a shell "sleep 600"')
        sidecar = await rig.sidecar()
        await sidecar.logs(["working"], seq=0)
        live = await rig.wait_for_card("working")
        [stop] = [a for a in live.card["actions"] if a["title"] == "Stop"]
        assert stop == {"type": "Action.Submit", "title": "Stop", "data": {"action": "od_stop", "jobId": sidecar.job_id}}
        await rig.say("", value=stop["data"], sender=BOB, mention=False)
        final = await rig.wait_for_card("cancelled")
        assert "Stopped by\nBob Brown" in card_text(final.card)
        job = await rig.store.get(sidecar.job_id)
        assert job.state is JobState.CANCELLED and job.cancelled_by == "Bob Brown"
        assert rig.sprites.destroyed == [sidecar.sprite.id]  # type: ignore[attr-defined]
        with trio.fail_after(5):
            await rig.cloud.wait_for(lambda c: "Stopped by Bob Brown" in card_text(c.activities[live.id].card))
        assert "actions" not in live.card


async def test_a_redelivered_activity_runs_its_command_once() -> None:
    async with open_rig() as rig:
        activity = await rig.say('od-run -a shell "x"')
        assert (await rig.deliver(activity)).status_code == 202
        await rig.wait_for_card("queued")
        await rig.sidecar()
        assert len(await rig.store.recent(limit=10)) == 1
