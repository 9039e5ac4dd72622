"""Socket Mode end to end: envelopes in over the fake's WebSocket, a job, threaded output out."""

from __future__ import annotations

import base64

import re
from pathlib import Path

import attrs
import pytest
import trio

from fakes.slack import APP_TOKEN, BOT_ID, BOT_TOKEN, BOT_USER_ID
from opendispatch.domain.commands import USAGE
from opendispatch.domain.job import JobState
from slack_stack import CEILING_S, CHANNEL_INTERVAL_S, NATIVE_MODES, RUNNER, is_live, open_stack, shown_lines


@pytest.mark.parametrize("native", NATIVE_MODES)
async def test_a_slash_command_runs_a_job_with_threaded_live_output_and_a_final_card(native: bool) -> None:
    async with open_stack(native=native) as stack:
        envelope = await stack.fake.slash_command("/od-run", '--repo acme/api --agent shell "run the tests"')
        with trio.fail_after(3):
            await envelope.acked.wait()

        started = await stack.started_message()
        assert "queued" in started.text and "acme/api" in started.text
        assert started.action_ids() == ["od_stop", "od_view_live"]  # Stop and the web view's link
        sidecar = await stack.sidecar()
        await sidecar.status("running")
        sent = [f"line {i} <b>&" for i in range(30)]
        for seq in range(3):
            await sidecar.logs(sent[seq * 10 : (seq + 1) * 10], seq=seq)
        await sidecar.status("completed", 0)

        card = await stack.settled(sidecar.job_id, started)
        assert shown_lines(stack, started) == sent
        thread = stack.fake.thread(started)
        assert thread[-1] is card or any(m is card for m in thread)
        assert all(is_live(m) for m in thread[: thread.index(card)])
        texts = "\n".join(card.block_texts())
        assert "✅ succeeded" in texts and "*Exit code*\n0" in texts and "acme/api" in texts and "shell" in texts
        assert card.code_lines() == sent[-10:]
        assert (await stack.store.get(sidecar.job_id)).state is JobState.SUCCEEDED
        # the channel message now shows the outcome, without the Stop button
        assert "succeeded" in started.text and started.action_ids() == ["od_view_live"]
        # the live message was edited in place, at a pace the fake accepted
        assert [c for c in stack.fake.calls if c.status == 429] == []
        # secrets never reach Slack
        said = stack.fake.everything_said()
        assert BOT_TOKEN not in said and APP_TOKEN not in said and sidecar.token not in said
        # with the native surfaces the live output was one stream, stopped with the card
        assert [m.ts for m in stack.fake.streams()] == ([card.ts] if native else [])


@pytest.mark.parametrize("native", NATIVE_MODES)
async def test_a_forced_429_and_a_dropped_socket_mid_job_lose_no_line_and_no_command(native: bool) -> None:
    runner = attrs.evolve(RUNNER, page_chars=300, max_pages=20)  # several pages: posts and edits both happen
    async with open_stack(runner=runner, native=native) as stack:
        await stack.fake.slash_command("/od-run", '--agent shell "long job"')
        started = await stack.started_message()
        sidecar = await stack.sidecar()
        await sidecar.status("running")
        sent = [f"step {i:03d} & <output>" for i in range(80)]
        batches = [sent[i : i + 8] for i in range(0, len(sent), 8)]
        await sidecar.logs(batches[0], seq=0)
        await stack.wait_for(lambda: shown_lines(stack, started))

        forced = ["chat.appendStream" if native else "chat.update", "chat.postMessage"]
        for method in forced:
            stack.fake.force_rate_limit(method, retry_after_s=1)
        await sidecar.logs(batches[1], seq=1)
        await sidecar.logs(batches[2], seq=2)
        await stack.fake.drop_socket()
        # a command typed while we are disconnected arrives on the next socket
        jobs = await stack.fake.slash_command("/od-jobs", "")
        for seq, batch in enumerate(batches[3:], start=3):
            await sidecar.logs(batch, seq=seq)
        with trio.fail_after(CEILING_S):
            await jobs.acked.wait()
        await sidecar.status("completed", 0)

        await stack.settled(sidecar.job_id, started)
        assert shown_lines(stack, started) == sent
        if not native:
            assert len(stack.live_messages(started)) >= 3  # output rolled over into new messages
        assert len(stack.fake.sockets) >= 2
        assert sorted(c.method for c in stack.fake.calls if c.status == 429) == sorted(forced)
        await stack.wait_for(lambda: any("Recent jobs of alice" in m.text for m in stack.fake.channel_messages()))


@pytest.mark.parametrize("native", NATIVE_MODES)
async def test_edits_of_one_message_are_paced_and_only_the_newest_version_matters(native: bool) -> None:
    async with open_stack(native=native) as stack:
        await stack.fake.slash_command("/od-run", '--agent shell "chatty"')
        started = await stack.started_message()
        sidecar = await stack.sidecar()
        await sidecar.status("running")
        for seq in range(40):
            await sidecar.logs([f"tick {seq}"], seq=seq)
        await sidecar.status("completed", 0)
        await stack.settled(sidecar.job_id, started)
        assert shown_lines(stack, started) == [f"tick {i}" for i in range(40)]
        (live,) = stack.fake.streams() if native else stack.live_messages(started)
        gaps = [b.at - a.at for a, b in zip(live.versions, live.versions[1:])]
        assert all(gap >= CHANNEL_INTERVAL_S * 0.8 for gap in gaps), gaps
        methods = ("chat.postMessage", "chat.update", "chat.startStream", "chat.appendStream", "chat.stopStream")
        writes = [c.at for c in stack.fake.calls if c.method in methods and c.args.get("channel") == "C0DEV"]
        assert all(b - a >= CHANNEL_INTERVAL_S * 0.8 for a, b in zip(writes, writes[1:]))


@pytest.mark.parametrize("native", NATIVE_MODES)
async def test_the_stop_button_cancels_the_job_and_the_card_says_who_stopped_it(native: bool) -> None:
    async with open_stack(native=native) as stack:
        await stack.fake.slash_command("/od-run", '--agent shell "sleep forever"')
        started = await stack.started_message()
        sidecar = await stack.sidecar()
        await sidecar.status("running")
        await sidecar.logs(["working..."], seq=0)
        await stack.wait_for(lambda: shown_lines(stack, started))
        if native:  # the stream draws no button of ours: the channel message's Stop is clicked
            live = started
        else:
            (live,) = stack.live_messages(started)
            assert live.action_ids() == ["od_stop"]

        click = await stack.fake.deliver("interactive", stack.fake.stop_click_payload(live, user_id="U0BOB", username="bob"))
        with trio.fail_after(3):
            await click.acked.wait()
        card = await stack.settled(sidecar.job_id, started)
        job = await stack.store.get(sidecar.job_id)
        assert job.state is JobState.CANCELLED and job.cancelled_by == "bob"
        assert "🛑 Stopped by bob" in card.block_texts()
        assert started.action_ids() == ["od_view_live"] and (native or live.action_ids() == [])
        assert stack.sprites.destroyed == [sidecar.sprite.id]
        # "Cancelling …" went into the job's thread, not the channel
        assert any("Cancelling" in m.text for m in stack.fake.thread(started))


async def test_bad_input_gets_an_ephemeral_usage_message_through_the_response_url() -> None:
    async with open_stack() as stack:
        envelope = await stack.fake.slash_command("/od-run", "--agent nope")
        with trio.fail_after(3):
            await envelope.acked.wait()
        answer = await stack.wait_for(lambda: stack.fake.ephemerals)
        (reply,) = answer
        assert reply["via"] == "response_url" and reply["response_type"] == "ephemeral"
        assert reply["replace_original"] is False
        assert "Usage" in reply["text"] or "usage" in reply["text"].lower()
        assert stack.fake.channel_messages() == []  # nothing public


async def test_a_stop_click_for_a_finished_job_is_answered_only_to_the_clicker() -> None:
    async with open_stack() as stack:
        await stack.fake.slash_command("/od-run", '--agent shell "quick"')
        started = await stack.started_message()
        payload = stack.fake.stop_click_payload(started, user_id="U0BOB", username="bob")
        sidecar = await stack.sidecar()
        await sidecar.status("completed", 0)
        await stack.settled(sidecar.job_id, started)
        await stack.fake.deliver("interactive", payload)  # a click on a stale button
        (reply,) = await stack.wait_for(lambda: stack.fake.ephemerals)
        assert reply["via"] == "chat.postEphemeral" and reply["user"] == "U0BOB" and reply["channel"] == "C0DEV"
        assert "already ended" in reply["text"]


async def test_our_own_messages_are_ignored_and_mentions_and_dms_are_commands() -> None:
    async with open_stack() as stack:
        fake = stack.fake
        own = [
            {"type": "message", "channel": "D0ALICE", "channel_type": "im", "user": BOT_USER_ID, "text": "/od-jobs", "ts": "1.1"},
            {"type": "message", "channel": "D0ALICE", "channel_type": "im", "bot_id": BOT_ID, "text": "/od-jobs", "ts": "1.2"},
            {"type": "app_mention", "channel": "C0DEV", "user": BOT_USER_ID, "text": f"<@{BOT_USER_ID}> /od-jobs", "ts": "1.3"},
            {"type": "message", "subtype": "message_changed", "channel": "D0ALICE", "channel_type": "im", "ts": "1.4"},
            {"type": "message", "channel": "C0DEV", "channel_type": "channel", "user": "U0ALICE", "text": "/od-jobs", "ts": "1.5"},
        ]
        ignored = [await fake.deliver("events_api", fake.event_payload(event)) for event in own]
        mention = await fake.deliver("events_api", fake.event_payload(
            {"type": "app_mention", "channel": "C0DEV", "user": "U0ALICE", "text": f"<@{BOT_USER_ID}> /od-jobs --limit 5", "ts": "2.1"}
        ))
        dm = await fake.deliver("events_api", fake.event_payload(
            {"type": "message", "channel": "D0ALICE", "channel_type": "im", "user": "U0ALICE", "text": "/od-list", "ts": "2.2"}
        ))
        with trio.fail_after(CEILING_S):
            for envelope in [*ignored, mention, dm]:
                await envelope.acked.wait()
        await stack.wait_for(lambda: len(fake.calls_of("chat.postMessage")) >= 2)
        posted = {(c.args["channel"], c.args["text"].split("\n")[0]) for c in fake.calls_of("chat.postMessage")}
        assert any(channel == "C0DEV" and "Recent jobs" in text for channel, text in posted)
        assert any(channel == "D0ALICE" and "Running jobs" in text for channel, text in posted)
        # each envelope is sorted right after its ack, in order: the ignored ones never got through
        assert sorted(i.text for i in stack.inbounds if i.addressed) == ["/od-jobs --limit 5", "/od-list"]
        # plain channel chat is handed over only as overheard (for a session there), never answered
        assert [i.text for i in stack.inbounds if not i.addressed] == ["/od-jobs"]
        assert len(fake.calls_of("chat.postMessage")) == 2


async def test_a_redelivered_envelope_is_handled_once() -> None:
    async with open_stack() as stack:
        payload = stack.fake.slash_payload("/od-jobs", "")
        first = await stack.fake.deliver("slash_commands", payload)
        with trio.fail_after(3):
            await first.acked.wait()
        await stack.wait_for(lambda: stack.fake.channel_messages())
        first.acked_at, first.acked = None, trio.Event()  # Slack did not see the ack...
        await stack.fake.drop_socket()  # ...and sends it again on the next socket
        with trio.fail_after(CEILING_S):
            await first.acked.wait()
        later = await stack.fake.slash_command("/od-list", "")
        with trio.fail_after(3):
            await later.acked.wait()
        await stack.wait_for(lambda: len(stack.fake.channel_messages()) == 2)
        assert first.retry_attempt == 1
        assert [i.text for i in stack.inbounds] == ["/od-jobs", "/od-list"]


async def test_disconnect_opens_a_new_socket_before_closing_the_old_one() -> None:
    async with open_stack() as stack:
        await stack.fake.send_disconnect("refresh_requested")
        await stack.fake.wait_connections(2)
        old, new = stack.fake.sockets
        with trio.fail_after(CEILING_S):
            await old.closed.wait()
        assert not new.closed.is_set()
        envelope = await stack.fake.slash_command("/od-jobs", "")
        with trio.fail_after(3):
            await envelope.acked.wait()
        await stack.wait_for(lambda: stack.fake.channel_messages())


@pytest.mark.parametrize("native", NATIVE_MODES)
async def test_a_long_log_is_attached_as_a_file_in_the_thread(native: bool) -> None:
    async with open_stack(attach_log_over_lines=20, native=native) as stack:
        await stack.fake.slash_command("/od-run", '--agent shell "verbose"')
        started = await stack.started_message()
        sidecar = await stack.sidecar()
        lines = [f"log line {i}" for i in range(50)]
        await sidecar.logs(lines, seq=0)
        await sidecar.status("completed", 0)
        await stack.settled(sidecar.job_id, started)
        shared = await stack.wait_for(lambda: [f for f in stack.fake.files.values() if "shared" in f])
        (file,) = shared
        assert file["content"].decode().splitlines() == lines
        assert file["shared"]["channel_id"] == "C0DEV" and file["shared"]["thread_ts"] == started.ts
        assert file["filename"] == f"{sidecar.job_id}.log"


async def test_envelopes_are_acknowledged_before_the_command_is_handled() -> None:
    async with open_stack() as stack:
        stack.hold = trio.Event()  # the dispatcher takes far longer than Slack's 3 s
        envelope = await stack.fake.slash_command("/od-jobs", "")
        with trio.fail_after(3):
            await envelope.acked.wait()
        assert stack.fake.channel_messages() == []
        stack.hold.set()
        await stack.wait_for(lambda: stack.fake.channel_messages())


async def test_every_command_is_answered_as_a_slash_command() -> None:
    async with open_stack() as stack:
        await stack.fake.slash_command("/od-run", '--agent shell "for logs"')
        sidecar = await stack.sidecar()
        await sidecar.logs(["hello"], seq=0)
        await sidecar.status("completed", 0)
        started = await stack.started_message()
        await stack.settled(sidecar.job_id, started)
        job = sidecar.job_id
        for command, text in [
            ("/od-jobs", ""), ("/od-list", ""), ("/od-logs", job), ("/od-cancel", job), ("/od-help", "run"),
            ("/od-start", "s1 --persistent"), ("/od-stop", "s1"), ("/od-send", "s1 hi"),
        ]:
            before = len(stack.fake.ephemerals) + len(stack.fake.channel_messages())
            envelope = await stack.fake.slash_command(command, text)
            with trio.fail_after(3):
                await envelope.acked.wait()
            await stack.wait_for(lambda: len(stack.fake.ephemerals) + len(stack.fake.channel_messages()) > before)
        channel = "\n".join(m.text for m in stack.fake.channel_messages())
        private = "\n".join(e["text"] for e in stack.fake.ephemerals)
        assert "Recent jobs" in channel and "Running jobs" in channel and f"Logs of {job}" in channel
        assert "already ended" in private and "/od-run" in private
        assert "Session s1 started" in channel and "Session s1 ended" in channel and "No running session s1" in private


def test_the_manifest_declares_every_command_and_socket_mode() -> None:
    manifest = (Path(__file__).parents[3] / "manifest" / "slack.yaml").read_text()
    declared = re.findall(r"^\s*- command: (/od-[a-z]+)\s*$", manifest, flags=re.MULTILINE)
    assert sorted(declared) == sorted(f"/{name}" for name in USAGE)
    assert re.search(r"^\s*socket_mode_enabled: true", manifest, flags=re.MULTILINE)
    for scope in ("commands", "chat:write", "files:write", "app_mentions:read", "im:history"):
        assert re.search(rf"^\s*- {re.escape(scope)}\b", manifest, flags=re.MULTILINE), scope


async def test_a_channel_we_are_not_in_gets_one_private_hint_to_invite_us() -> None:
    async with open_stack() as stack:
        stack.fake.not_member.add("C0SECRET")
        envelope = await stack.fake.slash_command("/od-jobs", "", channel_id="C0SECRET")
        with trio.fail_after(3):
            await envelope.acked.wait()
        (hint,) = await stack.wait_for(lambda: stack.fake.ephemerals)
        assert hint["via"] == "response_url" and "/invite @open-dispatch" in hint["text"]
        assert [c.error for c in stack.fake.calls_of("chat.postMessage")] == ["not_in_channel"]


async def test_a_raw_transcript_is_attached_as_a_file() -> None:
    async with open_stack() as stack:
        await stack.fake.slash_command("/od-run", '--agent claude "work"')
        started = await stack.started_message()
        sidecar = await stack.sidecar()
        transcript = [f'{{"type":"assistant","n":{i}}}' for i in range(300)]
        answer = await sidecar.post("/webhooks/transcript", {"jobId": sidecar.job_id, "part": 0, "lines": transcript})
        assert answer.status_code == 200
        await sidecar.status("completed", 0)
        await stack.settled(sidecar.job_id, started)
        await stack.fake.slash_command("/od-logs", f"{sidecar.job_id} --raw")
        shared = await stack.wait_for(
            lambda: [f for f in stack.fake.files.values() if "shared" in f and f["filename"].endswith(".jsonl")]
        )
        (file,) = shared
        assert file["filename"] == f"{sidecar.job_id}.transcript.jsonl"
        assert file["content"].decode().splitlines() == transcript  # whole, where the text shows a tail
        texts = "\n".join(m.text for m in stack.fake.channel_messages())
        assert f"Raw agent transcript of {sidecar.job_id} · showing 200 of 300 lines" in texts


async def test_a_kept_artifact_file_is_attached_as_a_file_after_the_job() -> None:
    async with open_stack() as stack:
        await stack.fake.slash_command("/od-run", '-a shell "make report"')
        started = await stack.started_message()
        sidecar = await stack.sidecar()
        content = "".join(f"check {i} ok\n" for i in range(250)).encode()
        body = {"jobId": sidecar.job_id, "name": "test report", "path": "/w/out/report.txt",
                "content": base64.b64encode(content).decode()}
        assert (await sidecar.post("/webhooks/artifact-file", body)).status_code == 200
        await sidecar.status("completed", 0)
        await stack.settled(sidecar.job_id, started)
        assert f"test report (3.1 KB): /od-logs {sidecar.job_id} --artifact 'test report'" in stack.fake.everything_said()
        await stack.fake.slash_command("/od-logs", f'{sidecar.job_id} --artifact "test report"')
        (file,) = await stack.wait_for(
            lambda: [f for f in stack.fake.files.values() if "shared" in f and f["filename"] == "report.txt"]
        )
        assert file["content"] == content  # whole, where the text shows the first 200 lines
        assert "showing the first 200 of 250 lines" in stack.fake.everything_said()
