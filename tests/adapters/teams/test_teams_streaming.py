"""Live output in a personal chat: a Teams stream (informative updates, streamed text, the card
as the final message, Teams' Stop cancelling the job), and the same jobs with streaming off.

Each end-to-end test runs twice, `streaming` (the default) and `cards` (`TEAMS_STREAMING=0`):
what the user gets (every line, the card, who stopped the job) is asserted for both, and how
it reached the chat for each. Everything goes through the real adapter and dispatcher to the
loopback Bot Connector of fakes/teams.py, which enforces Teams' documented streaming rules.
"""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
import trio

from fakes.teams import ALICE, CHANNEL, PERSONAL, Activity, card_text
from opendispatch.adapters.teams import TeamsSettings
from opendispatch.adapters.teams.connector import BotConnector, ConnectorError, Target
from opendispatch.adapters.teams.credentials import ConnectorCredentials
from opendispatch.adapters.teams.outbox import Outbox
from opendispatch.adapters.teams.streaming import (
    HANDED_OVER,
    LiveStream,
    StreamEnd,
    classify,
    output_text,
    typing_activity,
)
from opendispatch.domain.errors import ConfigError
from opendispatch.domain.job import Conversation, Job, JobState, User
from opendispatch.domain.job_spec import AgentKind, JobSpec
from opendispatch.domain.messages import JobCard, LiveOutput
from teams_rig import CEILING_S, STREAM_INTERVAL_S, TeamsRig, open_cloud, open_rig, settings_for

MODES = pytest.mark.parametrize("streaming", [True, False], ids=["streaming", "cards"])
TOOL_START = {"type": "tool_start", "id": "t1", "tool": "Bash", "summary": "npm test"}


async def say_personal(rig: TeamsRig, text: str, **options: Any) -> None:
    await rig.say(text, conversation=PERSONAL, mention=False, thread=None, **options)


def shown_text(rig: TeamsRig, conversation: str = PERSONAL) -> str:
    """Everything the chat shows now: every activity's latest text and card."""
    return "\n".join(
        f"{a.latest.get('text') or ''}\n{card_text(a.card)}" for a in rig.cloud.in_conversation(conversation)
    )


def stream_activity(rig: TeamsRig) -> Activity:
    [stream_id] = list(rig.cloud.streams)
    return rig.cloud.activities[stream_id]


def stream_entities(activity: dict[str, Any]) -> dict[str, Any]:
    [entity] = [e for e in activity["entities"] if e["type"] == "streaminfo"]
    return entity


def record(rig: TeamsRig) -> list[str]:
    return [call.brief() for call in rig.cloud.calls if call.conversation == PERSONAL]


@MODES
async def test_a_job_in_a_personal_chat_shows_its_work_live_and_ends_with_the_card(streaming: bool) -> None:
    async with open_rig(streaming=streaming) as rig:
        await say_personal(rig, 'od-run --repo acme/api --agent shell "run the tests"')
        accepted = await rig.wait_for_card("queued")
        sidecar = await rig.sidecar()
        await sidecar.status("running")
        await sidecar.post("/webhooks/logs", {"jobId": sidecar.job_id, "lines": [], "seq": 0, "events": [TOOL_START]})
        if streaming:  # what the job does, as Teams' informative update
            await rig.wait_for_stream_call(lambda c: c.stream_type == "informative" and "Bash: npm test" in (c.text or ""))
        else:
            await rig.wait_for_card("npm test")
        await sidecar.logs(["collecting...", "3 passed"], seq=1)
        if streaming:
            await rig.wait_for_stream_call(lambda c: c.stream_type == "streaming" and "3 passed" in (c.text or ""))
        else:
            await rig.wait_for_card("3 passed")
        await sidecar.logs(["coverage 91%"], seq=2)
        await sidecar.status("completed", 0)
        final = await rig.wait_for_card("succeeded")

        assert "Exit code\n0" in card_text(final.card) and "acme/api" in card_text(final.card)
        assert (await rig.store.get(sidecar.job_id)).state is JobState.SUCCEEDED
        for line in ("collecting...", "3 passed", "coverage 91%"):
            assert line in shown_text(rig)
        with trio.fail_after(5):  # the first reply loses its Stop button either way
            await rig.cloud.wait_for(lambda c: "Ended" in card_text(c.activities[accepted.id].card))
        calls = rig.cloud.stream_calls()
        if not streaming:
            assert calls == []
            return
        # informative updates, then the streamed text, then the final message carrying the card
        kinds = [c.stream_type for c in calls]
        assert kinds[0] == "informative" and kinds[-1] == "final" and "streaming" in kinds
        assert kinds == sorted(kinds, key=["informative", "streaming", "final"].index)
        assert all(c.status in (201, 202) and c.code is None for c in calls), record(rig)
        assert [c.sequence for c in calls[:-1]] == list(range(1, len(calls)))
        assert all(b.at - a.at >= STREAM_INTERVAL_S for a, b in zip(calls, calls[1:]))  # paced
        stream = stream_activity(rig)
        assert final.id == stream.id and stream.reply_to is None
        first, last = stream.versions[0], stream.latest
        assert first["type"] == "typing" and stream_entities(first) == {
            "type": "streaminfo", "streamType": "informative", "streamSequence": 1,
        } and first["channelData"] == {"streamType": "informative", "streamSequence": 1}
        assert last["type"] == "message" and stream_entities(last) == {
            "type": "streaminfo", "streamType": "final", "streamId": stream.id,
        } and last["channelData"] == {"streamType": "final", "streamId": stream.id}
        assert last["text"] == "```\ncollecting...\n3 passed\ncoverage 91%\n```"
        assert last["attachments"][0]["contentType"] == "application/vnd.microsoft.card.adaptive"
        # no live card: the stream was the live output
        assert [a.id for a in rig.cloud.in_conversation(PERSONAL) if a.card is not None] == [accepted.id, stream.id]


@MODES
async def test_stop_in_a_personal_chat_cancels_the_job_in_the_name_of_who_pressed_it(streaming: bool) -> None:
    async with open_rig(streaming=streaming) as rig:
        await say_personal(rig, 'od-run -a shell "sleep 600"')
        sidecar = await rig.sidecar()
        await sidecar.logs(["working"], seq=0)
        if streaming:  # Teams' own Stop under the streamed message
            await rig.wait_for_stream_call(lambda c: c.stream_type == "streaming" and c.status == 202)
            rig.cloud.press_stop(PERSONAL)
            await sidecar.logs(["still working"], seq=1)  # the next update meets the Stop
        else:  # our card's Stop button
            live = await rig.wait_for_card("working")
            [stop] = [a for a in live.card["actions"] if a["title"] == "Stop"]
            await say_personal(rig, "", value=stop["data"], sender=ALICE)
        final = await rig.wait_for_card("cancelled")
        assert "Stopped by\nAlice Adams" in card_text(final.card)
        job = await rig.store.get(sidecar.job_id)
        assert job.state is JobState.CANCELLED and job.cancelled_by == "Alice Adams"
        assert rig.sprites.destroyed == [sidecar.sprite.id]  # type: ignore[attr-defined]
        await rig.wait_for_text(f"Cancelling {sidecar.job_id}")
        if streaming:
            refused = [c for c in rig.cloud.stream_calls() if c.status == 403]
            assert [(c.stream_type, c.code) for c in refused] == [("streaming", "ContentStreamNotAllowed")]
            assert rig.cloud.stream_calls()[-1] is refused[0]  # nothing more was streamed
            assert final.id not in rig.cloud.streams  # the card came as a message of its own


@MODES
async def test_in_a_channel_nothing_is_streamed(streaming: bool) -> None:
    async with open_rig(streaming=streaming) as rig:
        await rig.say('od-run -a shell "make"')
        sidecar = await rig.sidecar()
        await sidecar.logs(["building"], seq=0)
        live = await rig.wait_for_card("building")
        await sidecar.status("completed", 0)
        await rig.wait_for_card("succeeded")
        assert live.conversation.startswith(CHANNEL) and rig.cloud.stream_calls() == []


async def test_an_expired_stream_falls_back_to_cards_with_every_line_and_the_card_still_comes() -> None:
    async with open_rig() as rig:
        await say_personal(rig, 'od-run -a shell "make"')
        sidecar = await rig.sidecar()
        await sidecar.logs(["line 1"], seq=0)
        await rig.wait_for_stream_call(lambda c: c.stream_type == "streaming" and c.status == 202)
        rig.cloud.expire_stream(PERSONAL)
        await sidecar.logs(["line 2"], seq=1)
        live = await rig.wait_for_card("line 2")
        assert "line 1" in card_text(live.card)  # from the first line on: nothing is lost
        assert [a["title"] for a in live.card["actions"]] == ["Stop"]
        await sidecar.logs(["line 3"], seq=2)
        await sidecar.status("completed", 0)
        final = await rig.wait_for_card("succeeded")
        assert final.id != live.id and final.id not in rig.cloud.streams
        with trio.fail_after(5):
            await rig.cloud.wait_for(lambda c: "line 3" in card_text(c.activities[live.id].card))
        assert [(c.status, c.code) for c in rig.cloud.stream_calls() if c.status >= 300] == [
            (403, "ContentStreamNotAllowed")
        ]
        assert rig.cloud.stream_calls()[-1].status == 403  # no final after the refusal


async def test_a_stream_ends_before_teams_time_limit_and_the_output_goes_on_in_a_card() -> None:
    async with open_rig(stream_max_s=0.4) as rig:
        await say_personal(rig, 'od-run -a shell "make"')
        sidecar = await rig.sidecar()
        await sidecar.logs(["step 1"], seq=0)
        handed = await rig.wait_for_stream_call(lambda c: c.stream_type == "final")  # at its age limit
        assert handed.status == 202 and handed.text == f"```\nstep 1\n```\n\n{HANDED_OVER}"
        await sidecar.logs(["step 2"], seq=1)
        live = await rig.wait_for_card("step 2")
        assert "step 1" in card_text(live.card)  # the open page's card holds all of it
        await sidecar.status("completed", 0)
        final = await rig.wait_for_card("succeeded")
        assert final.id not in rig.cloud.streams
        assert all(c.status < 300 for c in rig.cloud.stream_calls())


async def test_output_too_long_for_one_message_ends_the_stream_and_goes_on_in_cards() -> None:
    lines = [f"line {n:02d} " + "x" * 30 for n in range(12)]
    async with open_rig(stream_text_chars=200, runner_settings=_pages(120)) as rig:
        await say_personal(rig, 'od-run -a shell "make"')
        sidecar = await rig.sidecar()
        await sidecar.logs(lines[:2], seq=0)
        await rig.wait_for_stream_call(lambda c: c.stream_type == "streaming" and c.status == 202)
        await sidecar.logs(lines[2:], seq=1)
        await rig.wait_for_stream_call(lambda c: c.stream_type == "final")
        await sidecar.status("completed", 0)
        await rig.wait_for_card("succeeded")
        for line in lines:  # each line is in the stream's text or a live card
            assert line in shown_text(rig), line
        assert all(c.status < 300 for c in rig.cloud.stream_calls())
        assert all(len(c.text or "") <= 200 for c in rig.cloud.stream_calls() if c.stream_type == "streaming")


async def test_a_stream_faster_than_teams_allows_waits_out_the_429() -> None:
    async with open_rig() as rig:
        rig.cloud.stream_min_interval_s = 0.25  # Teams says one a second; we pace at 0.05 s here
        await say_personal(rig, 'od-run -a shell "make"')
        sidecar = await rig.sidecar()
        for seq in range(3):
            await sidecar.logs([f"line {seq}"], seq=seq)
            await rig.wait_for_stream_call(lambda c: c.status == 202 and f"line {seq}" in (c.text or ""))
        await sidecar.status("completed", 0)
        final = await rig.wait_for_card("succeeded")
        calls = rig.cloud.stream_calls()
        assert 429 in [c.status for c in calls]
        accepted = [c for c in calls if c.status < 300]
        assert all(b.at - a.at >= 0.25 for a, b in zip(accepted, accepted[1:]))
        assert [c.sequence for c in accepted[:-1]] == list(range(1, len(accepted)))
        assert final.id in rig.cloud.streams and "line 2" in final.latest["text"]


async def test_teams_allows_one_stream_per_chat_so_a_second_job_gets_cards() -> None:
    async with open_rig() as rig:
        await say_personal(rig, 'od-run -a shell "first"')
        first = await rig.sidecar()
        await first.logs(["first job"], seq=0)
        await rig.wait_for_stream_call(lambda c: c.status == 202 and "first job" in (c.text or ""))
        await say_personal(rig, 'od-run -a shell "second"')
        second = await rig.sidecar()
        await second.logs(["second job"], seq=0)
        live = await rig.wait_for_card("second job")  # a live card, as in a channel
        await second.status("completed", 0)
        await first.status("completed", 0)
        with trio.fail_after(CEILING_S):
            await rig.cloud.wait_for(lambda c: len([a for a in c.activities.values() if "succeeded" in card_text(a.card)]) == 2)
        assert live.id not in rig.cloud.streams and len(rig.cloud.streams) == 1
        assert all(c.status < 300 for c in rig.cloud.stream_calls())


async def test_where_teams_refuses_to_stream_the_chat_gets_cards_from_then_on() -> None:
    async with open_rig() as rig:
        rig.cloud.refuse_streaming()
        await say_personal(rig, 'od-run -a shell "one"')
        sidecar = await rig.sidecar()
        await sidecar.logs(["one"], seq=0)
        await rig.wait_for_card("one")
        await sidecar.status("completed", 0)
        await rig.wait_for_card("succeeded")
        assert [(c.status, c.code) for c in rig.cloud.stream_calls()] == [(403, "ContentStreamNotAllowed")]
        await say_personal(rig, 'od-run -a shell "two"')
        again = await rig.sidecar()
        await again.logs(["two"], seq=0)
        await rig.wait_for_card("two")
        assert len(rig.cloud.stream_calls()) == 1  # not tried again in this chat


async def test_the_call_record_of_a_streamed_job_and_of_one_stopped_with_teams_stop() -> None:
    """The compact record quoted in docs/teams.md: one job streamed, one stopped."""
    async with open_rig() as rig:
        await say_personal(rig, 'od-run -a shell "npm test"')
        sidecar = await rig.sidecar()
        await sidecar.status("running")
        await sidecar.post("/webhooks/logs", {"jobId": sidecar.job_id, "lines": [], "seq": 0, "events": [TOOL_START]})
        await rig.wait_for_stream_call(lambda c: "npm test" in (c.text or ""))
        await sidecar.logs(["3 passed"], seq=1)
        await rig.wait_for_stream_call(lambda c: "3 passed" in (c.text or ""))
        await sidecar.status("completed", 0)
        await rig.wait_for_card("succeeded")
        await rig.wait_for_card("Ended: succeeded")  # the first reply's Stop button goes
        streamed = record(rig)
        rig.cloud.calls.clear()
        await say_personal(rig, 'od-run -a shell "sleep 600"')
        stopped = await rig.sidecar()
        await stopped.logs(["working"], seq=0)
        await rig.wait_for_stream_call(lambda c: c.status == 202 and "working" in (c.text or ""))
        rig.cloud.press_stop(PERSONAL)
        await stopped.logs(["more"], seq=1)
        await rig.wait_for_card("cancelled")
        await rig.wait_for_card("Ended: cancelled")
        print("streamed:", json.dumps(streamed, indent=1, ensure_ascii=False))
        print("stopped:", json.dumps(record(rig), indent=1, ensure_ascii=False))
        shape = [(c.stream_type, c.sequence, c.status, c.with_card) for c in rig.cloud.stream_calls()]
        assert shape == [("informative", 1, 201, False), ("streaming", 2, 202, False), ("streaming", 3, 403, False)]
        streamed_calls = [line for line in streamed if line.startswith("POST stream")]
        assert "'running Bash: npm test…'" in " ".join(streamed_calls)
        assert streamed_calls[-2].startswith("POST stream streaming") and streamed_calls[-1].startswith("POST stream final")
        assert streamed_calls[-1].endswith("+card -> 202")


def _pages(chars: int) -> Any:
    import attrs

    from harness import FAST

    return attrs.evolve(FAST, page_chars=chars)


async def test_a_final_message_too_big_for_the_card_ends_the_stream_and_the_card_follows() -> None:
    async with open_rig(stream_final_max_bytes=600) as rig:
        await say_personal(rig, 'od-run -a shell "make"')
        sidecar = await rig.sidecar()
        await sidecar.logs(["built"], seq=0)
        await rig.wait_for_stream_call(lambda c: c.stream_type == "streaming" and c.status == 202)
        await sidecar.status("completed", 0)
        final = await rig.wait_for_card("succeeded")
        [ended] = [c for c in rig.cloud.stream_calls() if c.stream_type == "final"]
        assert ended.status == 202 and not ended.with_card and ended.text == "```\nbuilt\n```"
        assert final.id not in rig.cloud.streams


# --- the stream on its own: Teams' Stop when the cancel does not take ---------------------------


def _live(job: Job, lines: list[str], *, page: int = 0, sealed: bool = False) -> LiveOutput:
    return LiveOutput(job=job, page=page, lines=tuple(lines), omitted=0, elapsed_s=1.0, sealed=sealed)


async def test_after_teams_stop_a_job_that_runs_on_shows_its_output_in_cards_from_the_first_line() -> None:
    job = Job.queued(
        "j-0a1b2c3d", JobSpec(repo="acme/api", task="x", agent=AgentKind.SHELL),
        Conversation("teams", PERSONAL), User("u", "Alice"), at=0.0,
    ).starting(at=1.0).running()
    stops: list[str] = []
    stopped = trio.Event()

    def refused_cancel(stream: LiveStream) -> None:  # "Only Bob may stop it": the job runs on
        stops.append(stream.job_id)
        stream.stop_handled()
        stopped.set()

    async with open_cloud() as cloud, httpx.AsyncClient(timeout=5) as http, trio.open_nursery() as nursery:
        cloud.stream_min_interval_s = 0.01
        settings = settings_for(cloud, stream_interval_s=0.02)
        outbox = Outbox(BotConnector(http, ConnectorCredentials(http, settings)), nursery, settings)
        stream = LiveStream(
            job=job, where=job.conversation, target=Target(cloud.service_url, PERSONAL), reply_to=None,
            outbox=outbox, settings=settings, on_stop=refused_cancel, on_refused=lambda _: None,
        )
        nursery.start_soon(stream.run)
        with trio.fail_after(CEILING_S):
            stream.show(_live(job, ["a"]))
            await cloud.wait_for(lambda c: any(x.stream_type == "streaming" and x.status == 202 for x in c.stream_calls()))
            cloud.press_stop(PERSONAL)
            stream.show(_live(job, ["a", "b"]))
            await stopped.wait()
            assert [(x.status, x.code) for x in cloud.stream_calls()][-1] == (403, "ContentStreamNotAllowed")
            assert stops == [job.id] and not stream.holds_stream
            stream.show(_live(job, ["a", "b", "c"]))  # output after the cancel was refused
            card = await cloud.wait_for(lambda c: next((a for a in c.activities.values() if "c" in card_text(a.card)), None))
            assert "a\nb\nc" in card_text(card.card)
            ended = job.succeeded(at=2.0, exit_code=0)
            stream.show(_live(ended, ["a", "b", "c"], sealed=True))
            assert await stream.finish(JobCard(ended, ("c",), 3, 1.0)) is None  # the adapter posts it
        nursery.cancel_scope.cancel()


# --- units ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "code", "message", "end"),
    [
        (403, "ContentStreamNotAllowed", "Content stream was cancelled by user.", StreamEnd.STOPPED),
        (403, "ContentStreamNotAllowed", "Content stream was canceled by user", StreamEnd.STOPPED),
        (403, "ContentStreamNotAllowed", "Content stream finished due to exceeded streaming time.", StreamEnd.BROKEN),
        (403, "ContentStreamNotAllowed", "Message size too large", StreamEnd.BROKEN),
        (403, "ContentStreamNotAllowed", "Content stream is not allowed on an already completed streamed message",
         StreamEnd.BROKEN),
        (403, "ContentStreamNotAllowed", "Content stream is not allowed", StreamEnd.REFUSED),
        (403, "ContentStreamNotAllowed", "", StreamEnd.BROKEN),  # unknown: never cancels a job
        (400, "BadArgument", "Streaming api is not enabled", StreamEnd.REFUSED),
        (400, "BadRequest", "Start streaming activities should include text", StreamEnd.BROKEN),
    ],
)
def test_only_a_user_s_stop_cancels_and_only_a_refusal_to_stream_at_all_sticks(
    status: int, code: str, message: str, end: StreamEnd
) -> None:
    assert classify(ConnectorError(status, f"{code}: {message}", code=code, reason=message)) is end


def test_the_streamed_text_is_every_page_in_an_open_code_block_that_a_fence_cannot_close() -> None:
    job = Job.queued(
        "j-0a1b2c3d", JobSpec(repo="acme/api", task="x", agent=AgentKind.SHELL), Conversation("teams", PERSONAL),
        User("u", "A"), at=0.0,
    )
    pages = {0: _live(job, ["one", "```"], sealed=True), 1: _live(job, ["two"], page=1)}
    text, settled = output_text(pages)
    assert text == "```\none\n`\u200b``\ntwo" and settled == 1
    assert output_text({}) == ("", 0)
    assert typing_activity("streaming", text, sequence=3, stream_id="s-1") == {
        "type": "typing", "text": text,
        "entities": [{"type": "streaminfo", "streamType": "streaming", "streamId": "s-1", "streamSequence": 3}],
        "channelData": {"streamType": "streaming", "streamId": "s-1", "streamSequence": 3},
    }


def test_teams_streaming_is_on_unless_turned_off() -> None:
    base = {"TEAMS_APP_ID": "c9e8c047-2a74-40a2-b28a-b162d5f5327c", "TEAMS_APP_PASSWORD": "x"}
    assert TeamsSettings.from_env(base).streaming
    assert not TeamsSettings.from_env({**base, "TEAMS_STREAMING": "0"}).streaming
    assert not TeamsSettings.from_env({**base, "TEAMS_STREAMING": "off"}).streaming
    assert TeamsSettings.from_env({**base, "TEAMS_STREAMING": "yes"}).streaming
    with pytest.raises(ConfigError, match="TEAMS_STREAMING"):
        TeamsSettings.from_env({**base, "TEAMS_STREAMING": "sometimes"})
