"""Rate limits (429 + retry_after) lose nothing through the whole stack; the Stop button cancels.

The outbox's own rate-limit tests (headers followed, edits collapsed) are in test_discord_outbox.py."""

from __future__ import annotations

import trio

from discord_stack import open_discord_stack
from opendispatch.app.job_runner import RunnerSettings
from test_discord_http_interactions import live_messages, shown_lines


async def test_a_forced_429_on_posts_and_edits_loses_no_line_and_keeps_the_order() -> None:
    async with open_discord_stack() as s:
        s.fake.force_429("PATCH", "/channels/", times=2, retry_after=0.3)
        s.fake.force_429("POST", "/messages", times=1, retry_after=0.2)
        with trio.fail_after(20):
            payload = await s.command("od-run", {"task": "count", "agent": "shell"})
            accepted = await s.original(payload)
            thread = accepted["id"]
            sidecar = await s.sidecar()
            expected: list[str] = []
            for batch in range(6):
                lines = [f"line {batch}.{n}" for n in range(3)]
                expected += lines
                await sidecar.logs(lines, seq=batch)
                await s.fake.wait_for(  # each batch is shown (through the 429s) before the next
                    lambda f, last=lines[-1]: any(last in shown_lines(m["content"]) for m in live_messages(f, thread))
                )
            await sidecar.status("completed", 0)
            await s.fake.wait_for(lambda f: any(m["embeds"] for m in f.in_channel(thread)))

        [live] = live_messages(s.fake, thread)
        assert shown_lines(live["content"]) == expected
        versions = [shown_lines(v["content"]) for v in s.fake.versions[live["id"]]]
        for before, after in zip(versions, versions[1:]):
            assert after[: len(before)] == before  # each edit extends the last: order kept
        limited = [c for c in s.fake.calls if c.status == 429]
        assert [c.method for c in limited] == ["POST", "PATCH", "PATCH"]
        for hit in limited:
            retry = next(c for c in s.fake.calls if c.at > hit.at and c.method == hit.method and c.route == hit.route)
            wait = 0.2 if hit.method == "POST" else 0.3
            assert retry.at - hit.at >= wait - 0.01  # retry_after was honoured
        assert s.chat.rest.statistics().rate_limited == 3


async def test_the_stop_button_cancels_the_job_and_the_card_says_who_stopped_it() -> None:
    runner = RunnerSettings(exit_settle_s=0.2, unsequenced_settle_s=0.05, edit_interval_s=0.0, heartbeat_s=3600.0, page_chars=1800)
    async with open_discord_stack(runner=runner) as s:
        with trio.fail_after(20):
            payload = await s.command("od-run", {"task": "long job", "agent": "shell"})
            thread = (await s.original(payload))["id"]
            sidecar = await s.sidecar()
            await sidecar.logs(["working"], seq=0)
            live = await s.fake.wait_for(lambda f: next(iter(live_messages(f, thread)), None))
            [row] = live["components"]
            [button] = row["components"]
            assert button["label"] == "Stop" and button["custom_id"] == f"od_stop:{sidecar.job_id}"

            click = s.fake.interaction_payload(
                "", channel_id=thread, custom_id=button["custom_id"], user_id="530000000000000002", username="bob"
            )
            assert (await s.user.post(click)).status_code == 202
            reply = await s.original(click)
            card = await s.fake.wait_for(lambda f: next((m for m in f.in_channel(thread) if m["embeds"]), None))

        assert reply["content"] == f"Cancelling {sidecar.job_id}…"
        embed = card["embeds"][0]
        assert "cancelled" in embed["title"] and "Cancelled by Bob" in embed["description"]
        assert s.sprites.destroyed == [sidecar.sprite.id]
        assert live_messages(s.fake, thread)[0]["components"] == []
