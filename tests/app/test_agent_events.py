"""Agent events through the real webhook server, Relay and runner: live progress, card, cost cap."""

from __future__ import annotations

from typing import Any

import trio
import trio.testing

from harness import open_harness
from opendispatch.domain.agent_events import ErrorKind
from opendispatch.domain.job import FailureStage, JobState
from opendispatch.domain.messages import LiveOutput
from opendispatch.domain.render import render_text


def ev(kind: str, **fields: Any) -> dict[str, Any]:
    return {"v": 1, "type": kind, **fields}


def last_live(chat, job_id: str) -> LiveOutput:  # type: ignore[no-untyped-def]
    pages = [m for m in chat.messages() if isinstance(m, LiveOutput) and m.job.id == job_id]
    with_progress = [p for p in pages if p.progress is not None]
    assert with_progress, "no live message carried the agent's progress"
    return with_progress[-1]


async def post_events(sidecar, seq: int, events: list[dict[str, Any]], lines: list[str] | None = None) -> None:  # type: ignore[no-untyped-def]
    body = {"jobId": sidecar.job_id, "seq": seq, "lines": lines or [], "events": events}
    answer = await sidecar.post("/webhooks/logs", body)
    assert answer.status_code == 200, answer.text


async def test_the_live_message_shows_the_current_step_recent_steps_and_usage() -> None:
    async with open_harness() as h:
        job = await h.run('/od-run -a claude "fix it"')
        sidecar = await h.sidecar()
        await sidecar.status("running")
        await post_events(sidecar, 0, [
            ev("init", agent="claude", model="claude-sonnet-4-5", sessionId="s-1"),
            ev("text", text="I will run the tests first."),
            ev("tool_start", id="t1", tool="Read", summary="src/app.py"),
            ev("tool_end", id="t1", tool="Read", summary="src/app.py", ok=True, excerpt="..."),
            ev("tool_start", id="t2", tool="Bash", summary="npm test"),
            ev("usage", inputTokens=12_300, outputTokens=1_200),
        ], lines=["$ git clone acme/api (branch main)"])
        await trio.testing.wait_all_tasks_blocked()
        live = last_live(h.chat, job.id)
        text = render_text(live)
        assert "$ git clone acme/api (branch main)" in live.lines
        assert "▶ Now: Bash: npm test" in text
        assert "✓ Read: src/app.py" in text
        assert "12.3k tokens in · 1.2k out · ~$0.055" in text  # estimated from Sonnet's prices
        assert "💬 I will run the tests first." in text
        assert "{" not in text  # no raw JSON reaches chat

        await post_events(sidecar, 1, [
            ev("tool_end", id="t2", tool="Bash", summary="npm test", ok=False, excerpt="1 failed"),
            ev("files_changed", files=[{"path": "src/app.py", "added": 3, "removed": 1}],
               summary="1 file changed, 3 insertions(+), 1 deletion(-)"),
            ev("result", ok=True, answer="Fixed the **failing** test.", costUsd=0.0412, inputTokens=15_000,
               outputTokens=1_500, turns=4, model="claude-sonnet-4-5", sessionId="s-1"),
        ])
        await sidecar.status("completed", 0)
        card = await h.card(job.id)
        assert card.job.state is JobState.SUCCEEDED
        summary = card.job.agent
        assert summary is not None
        assert summary.answer == "Fixed the **failing** test." and summary.cost_usd == 0.0412
        assert (summary.input_tokens, summary.output_tokens, summary.turns) == (15_000, 1_500, 4)
        assert summary.session_id == "s-1" and summary.tool_calls == 2
        text = render_text(card)
        assert "15k tokens in · 1.5k out · $0.041 · 4 turns · claude-sonnet-4-5" in text
        assert "Files changed: 1 file changed, 3 insertions(+), 1 deletion(-)" in text
        assert "  src/app.py +3 −1" in text
        assert "Fixed the **failing** test." in text
        stored = await h.store.get(job.id)
        assert stored.agent == summary  # kept for /od-jobs and /od-usage
        logs = await h.store.output(job.id)
        assert "▶ Bash: npm test" in logs and "✗ Bash: npm test — 1 failed" in logs


async def test_an_agent_that_reports_tools_only_when_finished_shows_its_last_step() -> None:
    async with open_harness() as h:
        job = await h.run('/od-run -a opencode "fix it"')
        sidecar = await h.sidecar()
        await post_events(sidecar, 0, [
            ev("tool_end", id="c1", tool="bash", summary="ls", ok=True),
            ev("tool_end", id="c2", tool="edit", summary="a.py", ok=True),
            ev("usage", inputTokens=100, outputTokens=10, costUsd=0.002),
        ])
        await trio.testing.wait_all_tasks_blocked()
        text = render_text(last_live(h.chat, job.id))
        assert "Last step: ✓ edit: a.py" in text and "Now:" not in text
        assert "✓ bash: ls" in text and "$0.002" in text and "~" not in text
        await sidecar.status("completed", 0)
        await h.card(job.id)


async def test_a_model_api_that_refuses_the_key_is_named_on_the_card() -> None:
    async with open_harness() as h:
        job = await h.run('/od-run -a claude "fix it"')
        sidecar = await h.sidecar()
        await post_events(sidecar, 0, [
            ev("result", ok=False, errorKind="auth", error="Invalid API key · Please run /login"),
        ])
        await sidecar.status("failed", 1, "agent exited with code 1", stage="agent")
        card = await h.card(job.id)
        assert card.job.state is JobState.FAILED
        assert card.job.failure is not None and card.job.failure.stage is FailureStage.MODEL_API
        assert card.job.agent is not None and card.job.agent.error_kind is ErrorKind.AUTH
        assert "Claude Code could not authenticate to its model API (Invalid API key" in card.job.failure.reason


async def test_an_is_error_result_fails_the_job_even_when_the_agent_exits_0() -> None:
    async with open_harness() as h:
        job = await h.run('/od-run -a claude "fix it"')
        sidecar = await h.sidecar()
        await post_events(sidecar, 0, [ev("result", ok=False, errorKind="max_turns", error="")])
        await sidecar.status("completed", 0)
        card = await h.card(job.id)
        assert card.job.state is JobState.FAILED
        assert card.job.failure is not None and card.job.failure.stage is FailureStage.AGENT
        assert "turn limit" in card.job.failure.reason


async def test_the_cost_cap_stops_the_job_and_destroys_its_sprite() -> None:
    async with open_harness() as h:
        job = await h.run('/od-run -a opencode --max-cost 2.50 "spend"')
        assert job.spec.max_cost_usd == 2.5
        sidecar = await h.sidecar()
        await post_events(sidecar, 0, [ev("usage", inputTokens=1, outputTokens=1, costUsd=1.0)])
        await trio.testing.wait_all_tasks_blocked()
        assert not h.sprites.destroyed
        await post_events(sidecar, 1, [ev("usage", inputTokens=2, outputTokens=2, costUsd=2.61)])
        card = await h.card(job.id)
        assert card.job.state is JobState.FAILED
        assert card.job.failure is not None and card.job.failure.stage is FailureStage.COST_CAP
        assert card.job.failure.reason == "stopped: cost cap $2.50 reached at $2.61"
        assert h.sprites.destroyed == [sidecar.sprite.id]
        assert card.job.agent is not None and card.job.agent.cost_usd == 2.61


async def test_unknown_and_malformed_events_are_dropped_and_the_lines_kept() -> None:
    async with open_harness() as h:
        job = await h.run('/od-run -a claude "x"')
        sidecar = await h.sidecar()
        await post_events(sidecar, 0, [
            ev("brand_new_kind", whatever=1),
            ev("tool_start", id=5, tool="Bash"),  # id must be a string
            "not an object",  # type: ignore[list-item]
            ev("text", text="still here"),
        ], lines=["a line"])
        await sidecar.status("completed", 0)
        await h.card(job.id)
        assert await h.store.output(job.id) == ["a line", "still here"]


async def test_secrets_in_events_are_redacted_before_they_are_shown_or_stored() -> None:
    async with open_harness() as h:
        job = await h.run('/od-run -a claude "x"')
        sidecar = await h.sidecar()
        await post_events(sidecar, 0, [
            ev("tool_start", id="t", tool="Bash", summary=f"curl -H 'x: {sidecar.token}'"),
            ev("result", ok=True, answer=f"the token is {sidecar.token}"),
        ])
        await sidecar.status("completed", 0)
        card = await h.card(job.id)
        everything = "\n".join(render_text(m) for m in h.chat.messages()) + "\n".join(await h.store.output(job.id))
        assert sidecar.token not in everything
        assert card.job.agent is not None and sidecar.token not in card.job.agent.answer


async def test_od_jobs_shows_cost_and_od_usage_sums_it_per_user_and_channel() -> None:
    from harness import ALICE, BOB

    from opendispatch.config import Config

    async with open_harness(config=Config.from_env({"OPENDISPATCH_ADMIN_USERS": ALICE.id}, dotenv=None)) as h:
        for user, cost in ((None, 0.5), (None, 0.25), (BOB, 1.0)):
            job = await h.run('/od-run -a claude "x"', **({"user": user} if user else {}))
            sidecar = await h.sidecar()
            await post_events(sidecar, 0, [ev("result", ok=True, answer="ok", costUsd=cost, inputTokens=1000,
                                                outputTokens=100)])
            await sidecar.status("completed", 0)
            await h.card(job.id)
        await h.say("/od-jobs")
        table = render_text(h.chat.sent[-1].message)
        assert "$0.50" in table and "$0.25" in table and "$1.00" not in table  # alice's only
        await h.say("/od-usage")
        mine = h.notices()[-1]
        assert "alice in c1: 2 jobs · $0.75 · 2k tokens in · 200 out" in mine and "bob" not in mine
        await h.say("/od-usage --all --since 1d")
        everyone = h.notices()[-1]
        assert everyone.splitlines()[1].startswith("bob in c1: 1 job · $1.00")
        assert "Total: 3 jobs · $1.75" in everyone
        await h.say("/od-usage --since forever")
        assert "Bad period forever: use hours, days or weeks" in h.notices()[-1]


async def test_terminal_escape_sequences_never_reach_chat_or_the_log() -> None:
    async with open_harness() as h:
        job = await h.run('/od-run -a shell "ls --color"')
        sidecar = await h.sidecar()
        await sidecar.logs(["\x1b[0m$ \x1b[0mecho hi", "50%\r100%", "\x1b]0;title\x07done"], seq=0)
        await post_events(sidecar, 1, [ev("text", text="\x1b[1mbold\x1b[0m answer")])
        await sidecar.status("completed", 0)
        card = await h.card(job.id)
        shown = "\n".join(render_text(m) for m in h.chat.messages())
        assert "\x1b" not in shown and "\r" not in shown and "\x07" not in shown
        assert await h.store.output(job.id) == ["$ echo hi", "100%", "done", "bold answer"]
        assert card.job.agent is not None and card.job.agent.answer == "bold answer"


async def test_the_raw_transcript_is_kept_in_parts_redacted_and_refused_with_a_bad_token() -> None:
    async with open_harness() as h:
        job = await h.run('/od-run -a claude "x"')
        sidecar = await h.sidecar()
        part1 = {"jobId": job.id, "part": 1, "lines": ['{"type":"result"}']}
        part0 = {"jobId": job.id, "part": 0, "lines": ['{"type":"system","subtype":"init"}', f'{{"t":"{sidecar.token}"}}']}
        assert (await sidecar.post("/webhooks/transcript", part1)).status_code == 200
        assert (await sidecar.post("/webhooks/transcript", part0)).status_code == 200
        assert (await sidecar.post("/webhooks/transcript", part0)).status_code == 200  # a retry is harmless
        assert (await sidecar.post("/webhooks/transcript", part0, token="odj1.1.bad")).status_code == 401
        assert (await sidecar.post("/webhooks/transcript", {"jobId": job.id, "lines": []})).status_code == 400
        await sidecar.status("completed", 0)
        await h.card(job.id)
        stored = await h.store.transcript(job.id)
        assert stored[0] == '{"type":"system","subtype":"init"}' and stored[2] == '{"type":"result"}'
        assert sidecar.token not in stored[1]
        await h.say(f"/od-logs {job.id} --raw --tail 1")
        excerpt = h.chat.sent[-1].message
        assert render_text(excerpt).splitlines() == [f"Raw agent transcript of {job.id} · showing 1 of 3 lines", '{"type":"result"}']


async def test_a_transcript_part_past_the_limit_is_refused() -> None:
    from opendispatch.adapters.webhook.wire import MAX_TRANSCRIPT_PARTS

    async with open_harness() as h:
        job = await h.run('/od-run -a claude "x"')
        sidecar = await h.sidecar()
        too_far = {"jobId": job.id, "part": MAX_TRANSCRIPT_PARTS, "lines": ["{}"]}
        answer = await sidecar.post("/webhooks/transcript", too_far)
        assert answer.status_code == 400 and "at most 256 transcript parts" in answer.json()["error"]
        await sidecar.status("completed", 0)
        await h.card(job.id)
