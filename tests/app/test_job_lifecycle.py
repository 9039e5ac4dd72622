"""A job from command to card through the real Dispatcher, Relay and webhook server."""

from __future__ import annotations

import re
from typing import Any

import attrs

import trio
import trio.testing

from harness import ALICE, BOB, FAST, open_harness
from opendispatch.adapters.memory.chat import MemoryChat
from opendispatch.adapters.memory.sprites import FakeSprites
from opendispatch.adapters.memory.store import MemoryJobStore
from opendispatch.config import Config
from opendispatch.domain.job import Conversation, FailureStage, JobState, User
from opendispatch.domain.render import render_lines, render_text
from opendispatch.domain.messages import ChatMessage, Inbound, JobAccepted, JobTable, LiveOutput, LogExcerpt, MessageRef, Notice


def live_lines(chat, job_id: str) -> list[str]:  # type: ignore[no-untyped-def]
    """Every line shown live for a job, page by page, in the final version of each page."""
    pages = [m for m in chat.messages() if isinstance(m, LiveOutput) and m.job.id == job_id]
    return [line for page in sorted(pages, key=lambda p: p.page) for line in page.lines]


async def test_a_job_runs_end_to_end_and_its_sprite_is_destroyed() -> None:
    async with open_harness() as h:
        job = await h.run('/od-run --repo owner/project --agent shell "run the tests"')
        accepted = h.chat.sent[0].message
        assert isinstance(accepted, JobAccepted)
        assert accepted.job.spec.summary() == "owner/project @ main · shell · default image"
        sidecar = await h.sidecar()
        env = sidecar.request.env
        assert env["JOB_ID"] == job.id and env["REPO"] == "owner/project" and env["BRANCH"] == "main"
        assert env["TASK"] == "run the tests" and env["AGENT"] == "shell"
        assert env["OPEN_DISPATCH_URL"] == h.running.webhook_url

        assert (await sidecar.status("running")).status_code == 200
        assert (await sidecar.logs(["collecting...", "", "3 passed"], seq=0)).json() == {"ok": True}
        assert (await sidecar.status("completed", 0)).status_code == 200

        card = await h.card(job.id)
        assert card.job.state is JobState.SUCCEEDED and card.job.exit_code == 0
        assert card.tail == ("collecting...", "", "3 passed")
        assert live_lines(h.chat, job.id) == ["collecting...", "", "3 passed"]
        assert h.sprites.destroyed == [sidecar.sprite.id]
        assert (await h.store.get(job.id)).state is JobState.SUCCEEDED
        # every live message and the card are threaded under the first reply
        first = h.chat.sent[0].ref
        assert all(s.reply_to == first for s in h.chat.sent[1:] if not isinstance(s.message, JobAccepted))


async def test_batches_arriving_out_of_order_are_shown_and_stored_in_seq_order() -> None:
    async with open_harness() as h:
        job = await h.run('/od-run -a shell "x"')
        sidecar = await h.sidecar()
        await sidecar.logs(["c", "d"], seq=1)
        await sidecar.logs(["e"], seq=2)
        await sidecar.logs(["a", "b"], seq=0)
        await sidecar.logs(["a", "b"], seq=0)  # a retry: acknowledged, not repeated
        await sidecar.status("completed", 0)
        await h.card(job.id)
        assert await h.store.output(job.id) == ["a", "b", "c", "d", "e"]
        assert live_lines(h.chat, job.id) == ["a", "b", "c", "d", "e"]


async def test_the_seeds_original_bodies_are_accepted_unchanged() -> None:
    async with open_harness() as h:
        job = await h.run('/od-run -a shell "x"')
        sidecar = await h.sidecar()
        for body in (
            {"jobId": job.id, "status": "running"},
            {"jobId": job.id, "text": "line one\nline two\n"},
            {"jobId": job.id, "text": ""},
            {"jobId": job.id, "artifacts": [{"name": "PR", "url": "https://github.com/o/r/pull/7", "type": "pr"}]},
        ):
            path = "/webhooks/status" if "status" in body else "/webhooks/artifacts" if "artifacts" in body else "/webhooks/logs"
            response = await sidecar.post(path, body)
            assert response.status_code == 200, response.text
            if "artifacts" in body:
                assert response.json() == {"ok": True, "count": 1}  # the seed's server said how many
        response = await sidecar.post("/webhooks/status", {"jobId": job.id, "status": "failed", "exitCode": 2, "error": "boom"})
        assert response.status_code == 200
        card = await h.card(job.id)
        assert card.job.state is JobState.FAILED and card.job.exit_code == 2
        assert card.job.failure is not None and card.job.failure.reason == "boom"
        assert card.job.failure.stage is FailureStage.AGENT
        assert [a.url for a in card.job.artifacts] == ["https://github.com/o/r/pull/7"]
        assert await h.store.output(job.id) == ["line one", "line two", ""]


async def test_a_failing_agent_says_which_stage_failed_and_shows_the_last_lines() -> None:
    async with open_harness() as h:
        job = await h.run('/od-run -a shell "x"')
        sidecar = await h.sidecar()
        await sidecar.logs(["fatal: branch nope not found"], seq=0)
        await sidecar.status("failed", 128, "could not clone owner/r at branch nope", stage="clone")
        card = await h.card(job.id)
        assert card.job.failure is not None
        assert card.job.failure.stage is FailureStage.CLONE
        assert "could not clone" in card.job.failure.reason
        assert card.tail == ("fatal: branch nope not found",)


async def test_spawn_failure_is_reported_with_the_backends_advice() -> None:
    async with open_harness(sprites=FakeSprites(fail_spawn_with="check FLY_API_TOKEN with `fly auth whoami`")) as h:
        job = await h.run('/od-run -a shell "x"')
        card = await h.card(job.id)
        assert card.job.state is JobState.FAILED
        assert card.job.failure is not None and card.job.failure.stage is FailureStage.SPAWN
        assert "fly auth whoami" in card.job.failure.reason


async def test_a_sprite_that_stops_without_reporting_fails_the_job_at_the_relay_stage() -> None:
    async with open_harness() as h:
        job = await h.run('/od-run -a shell "x"')
        sidecar = await h.sidecar()
        h.sprites.exit(sidecar.sprite.id, 137)
        card = await h.card(job.id)
        assert card.job.state is JobState.FAILED and card.job.exit_code == 137
        assert card.job.failure is not None and card.job.failure.stage is FailureStage.RELAY
        assert "OPEN_DISPATCH_URL" in card.job.failure.reason


async def test_timeout_ends_the_job_and_destroys_the_sprite(autojump_clock: trio.abc.Clock) -> None:
    async with open_harness() as h:
        job = await h.run('/od-run -a shell --timeout 90s "sleep forever"')
        sidecar = await h.sidecar()
        await h.sprites.wait_exited(sidecar.sprite.id)  # returns when destroyed at the deadline
        card = await h.card(job.id)
        assert card.job.state is JobState.TIMED_OUT
        assert card.duration_s == 90
        assert h.sprites.destroyed == [sidecar.sprite.id]


async def test_cancel_says_who_cancelled_and_destroys_the_sprite() -> None:
    admins = Config.from_env({"OPENDISPATCH_ADMIN_USERS": BOB.id}, dotenv=None)
    async with open_harness(config=admins) as h:
        job = await h.run('/od-run -a shell "x"')
        sidecar = await h.sidecar()
        await sidecar.logs(["working"], seq=0)
        await h.say(f"/od-cancel {job.id}", BOB)
        card = await h.card(job.id)
        assert card.job.state is JobState.CANCELLED and card.job.cancelled_by == "bob"
        assert re.search(r"Cancelled by bob at \d\d:\d\d:\d\d UTC", render_text(card))
        assert h.sprites.destroyed == [sidecar.sprite.id]
        # the sidecar's own "cancelled" report after the kill changes nothing
        assert (await sidecar.status("cancelled", 143, "cancelled")).status_code == 200
        assert (await h.store.get(job.id)).cancelled_by == "bob"
        await h.say(f"/od-cancel {job.id}")
        assert "already ended (cancelled)" in h.notices()[-1]


async def test_cancelling_the_whole_service_ends_every_job_and_destroys_every_sprite() -> None:
    sprites = FakeSprites()
    async with open_harness(sprites=sprites) as h:
        jobs = [await h.run(f'/od-run -a shell "job {n}"') for n in range(3)]
        spawned = [await h.sidecar() for _ in jobs]
    assert sorted(sprites.destroyed) == sorted(s.sprite.id for s in spawned)
    assert sprites.live == set()
    for job in jobs:
        stored = await h.store.get(job.id)
        assert stored.state is JobState.CANCELLED and stored.cancelled_by == "the dispatcher shutting down"


async def test_secrets_and_the_job_token_never_reach_chat_or_the_store() -> None:
    config = Config.from_env({"GH_TOKEN": "ghp_supersecretvalue123", "ANTHROPIC_API_KEY": "sk-ant-0123456789"}, dotenv=None)
    async with open_harness(config=config) as h:
        job = await h.run('/od-run -a shell "x"')
        sidecar = await h.sidecar()
        assert sidecar.request.env["GH_TOKEN"] == "ghp_supersecretvalue123"  # passed through to the sprite
        await sidecar.logs(["token ghp_supersecretvalue123", f"mine {sidecar.token}", "key=sk-ant-0123456789"], seq=0)
        await sidecar.status("failed", 1, f"leaked {sidecar.token}")
        await h.card(job.id)
        everything = h.chat.transcript() + "\n".join(await h.store.output(job.id))
        for secret in ("ghp_supersecretvalue123", sidecar.token, "sk-ant-0123456789"):
            assert secret not in everything
        assert "token ***" in everything
        assert "ghp_supersecretvalue123" not in repr(config)


class StoreOnFire(MemoryJobStore):
    async def output_line_count(self, job_id: str) -> int:
        raise RuntimeError("disk on fire")


async def test_bad_commands_get_usage_and_internal_errors_get_a_reference() -> None:
    async with open_harness(store=StoreOnFire()) as h:
        await h.say("/od-run --bogus x")
        await h.say("/od-frobnicate")
        await h.say("/od-start mybot --persistent --agent shell")  # shell sessions are off by default
        await h.say("hello there")
        notices = h.notices()
        assert "--bogus" in notices[0] and "Usage" in notices[0]
        assert "od-run" in notices[1]
        assert "OPENDISPATCH_ALLOW_SHELL_SESSIONS" in notices[2]
        assert "/od-help" in notices[3]
        assert all("Traceback" not in n for n in notices)
        job = await h.run('/od-run -a shell "x"')
        await h.say(f"/od-logs {job.id}")
        assert h.notices()[-1].startswith("Something went wrong on our side (ref ")
        assert "disk on fire" not in h.notices()[-1]


async def test_jobs_and_logs_come_from_the_store() -> None:
    async with open_harness(config=Config.from_env({"OPENDISPATCH_ADMIN_USERS": ALICE.id}, dotenv=None)) as h:
        job = await h.run('/od-run -a shell "x"')
        sidecar = await h.sidecar()
        await sidecar.logs([f"line {n}" for n in range(5)], seq=0)
        await sidecar.status("completed", 0)
        await h.card(job.id)
        other = await h.run('/od-run -a shell "y"', BOB)
        await h.say(f"/od-logs {job.id} --tail 2")
        excerpt = h.chat.messages()[-1]
        assert isinstance(excerpt, LogExcerpt) and excerpt.lines == ("line 3", "line 4") and excerpt.total_lines == 5
        await h.say("/od-jobs")
        mine = h.chat.messages()[-1]
        assert isinstance(mine, JobTable) and [j.id for j in mine.jobs] == [job.id]
        await h.say("/od-jobs --all")
        everyone = h.chat.messages()[-1]
        assert isinstance(everyone, JobTable) and [j.id for j in everyone.jobs] == [other.id, job.id]
        await h.say("/od-logs j-00000000")
        assert "No job j-00000000" in h.notices()[-1]


async def test_a_token_only_opens_its_own_job() -> None:
    async with open_harness() as h:
        first = await h.run('/od-run -a shell "x"')
        sidecar_a = await h.sidecar()
        await h.run('/od-run -a shell "y"')
        sidecar_b = await h.sidecar()
        response = await sidecar_a.post("/webhooks/logs", {"jobId": sidecar_b.job_id, "lines": ["intrusion"]})
        assert response.status_code == 401
        assert await h.store.output(sidecar_b.job_id) == []
        assert first.id == sidecar_a.job_id
        assert ALICE.name == "alice"




async def test_only_the_owner_or_an_admin_may_cancel() -> None:
    async with open_harness() as h:
        job = await h.run('/od-run -a shell "x"')
        sidecar = await h.sidecar()
        await h.say(f"/od-cancel {job.id}", BOB)
        assert f"Only alice, who started {job.id}, or an Open-Dispatch admin can stop it" in h.notices()[-1]
        assert h.sprites.destroyed == []
        await h.say(f"/od-cancel {job.id}", ALICE)
        card = await h.card(job.id)
        assert card.job.cancelled_by == "alice"
        assert h.sprites.destroyed == [sidecar.sprite.id]


async def test_without_new_output_the_live_page_is_re_sent_at_the_heartbeat(autojump_clock: trio.abc.Clock) -> None:
    """The pump's heartbeat comes from the shared timer, not from a deadline of its own."""
    async with open_harness(settings=attrs.evolve(FAST, heartbeat_s=30.0)) as h:
        job = await h.run('/od-run -a shell "quiet after one line"')
        sidecar = await h.sidecar()
        shown: list[float] = []

        def page_version(message: object) -> bool:
            if isinstance(message, LiveOutput) and message.job.id == job.id and message.lines == ("one line",):
                shown.append(trio.current_time())
            return len(shown) >= 2

        assert (await sidecar.logs(["one line"], seq=0)).status_code == 200
        with trio.fail_after(120):
            await h.chat.wait_for(page_version)
        assert 30.0 <= shown[1] - shown[0] <= 30.0 + 0.1


class SlowLiveChat(MemoryChat):
    """Posting a live page is slow to answer: the message is up, its ref comes back later.

    That is when cancelling a call would lose the ref, and the final flush would post the
    page a second time.
    """

    def __init__(self) -> None:
        super().__init__()
        self.answer = trio.Event()
        self.posting = trio.Event()

    async def send(self, where: Any, message: ChatMessage, *, reply_to: MessageRef | None = None) -> MessageRef:
        ref = await super().send(where, message, reply_to=reply_to)
        if isinstance(message, LiveOutput) and not self.posting.is_set():  # the first page only
            self.posting.set()
            await self.answer.wait()
        return ref


def live_posts(chat: MemoryChat, job_id: str) -> list[int]:
    return [s.message.page for s in chat.sent if isinstance(s.message, LiveOutput) and s.message.job.id == job_id]


async def test_a_live_page_being_posted_when_the_job_ends_is_edited_not_posted_again() -> None:
    chat = SlowLiveChat()
    async with open_harness(chat=chat) as h:
        job = await h.run('/od-run -a shell "ends while its page is posted"')
        sidecar = await h.sidecar()
        assert (await sidecar.logs(["first"], seq=0)).status_code == 200
        with trio.fail_after(10):
            await chat.posting.wait()
        assert (await sidecar.status("completed", exitCode=0)).status_code == 200
        await trio.testing.wait_all_tasks_blocked()
        chat.answer.set()
        card = await h.card(job.id)
        assert card.job.state is JobState.SUCCEEDED
        assert live_posts(chat, job.id) == [0]  # posted once, then edited with the final flush


async def test_a_chat_call_that_never_answers_holds_the_job_only_for_the_chat_timeout(
    autojump_clock: trio.abc.Clock,
) -> None:
    chat = SlowLiveChat()  # never answers the first page's post
    async with open_harness(chat=chat, settings=attrs.evolve(FAST, chat_call_timeout_s=5.0)) as h:
        try:
            job = await h.run('/od-run -a shell "chat hangs"')
            sidecar = await h.sidecar()
            assert (await sidecar.logs(["first"], seq=0)).status_code == 200
            with trio.fail_after(10):
                await chat.posting.wait()
            ended_at = trio.current_time()
            assert (await sidecar.status("completed", exitCode=0)).status_code == 200
            with trio.fail_after(60):
                card = await chat.wait_for_card(job.id)
            assert card.job.state is JobState.SUCCEEDED
            assert 5.0 <= trio.current_time() - ended_at < 30.0  # the call's timeout, not the clean-up's
        finally:
            chat.answer.set()  # should the bound be missing, a failure here rather than a hang


async def test_a_huge_last_line_is_cut_on_the_card_with_a_pointer_to_the_log() -> None:
    async with open_harness() as h:
        job = await h.run('/od-run -a shell "cat bundle.min.js"')
        sidecar = await h.sidecar()
        huge = "x" * 200_000
        await sidecar.logs(["before", huge, "after"], seq=0)
        await sidecar.status("completed", 0)
        card = await h.card(job.id)
        assert card.tail[0] == "before" and card.tail[2] == "after"
        assert card.tail[1] == "x" * 500 + f"… (199500 more characters: /od-logs {job.id})"
        assert len(render_text(card)) < 2_000
        assert (await h.store.output(job.id))[1] == huge  # the log keeps it whole


async def test_a_job_keeps_at_most_ten_artifact_files_and_the_card_says_why_the_rest_are_not() -> None:
    async with open_harness() as h:
        job = await h.run('/od-run -a shell "x"')
        sidecar = await h.sidecar()
        for n in range(11):
            body = {"jobId": job.id, "name": f"file {n}", "path": f"/w/{n}.txt", "content": "aGk="}
            assert (await sidecar.post("/webhooks/artifact-file", body)).status_code == 200
        await sidecar.status("completed", 0)
        card = await h.card(job.id)
        late = {"jobId": job.id, "name": "late", "path": "/w/late.txt", "content": "aGk="}
        after_the_end = await sidecar.post("/webhooks/artifact-file", late)
        assert [a.kept for a in card.job.artifacts] == [True] * 10 + [False]
        assert await h.store.artifact_file(job.id, "file 9") == b"hi"
        assert await h.store.artifact_file(job.id, "file 10") is None
        assert "file 10: not kept (a job keeps at most 10 files)" in render_text(card)
        assert after_the_end.status_code == 200 and await h.store.artifact_file(job.id, "late") is None  # after the card


async def test_a_silent_job_shows_running_with_its_elapsed_time_before_any_output(
    autojump_clock: trio.abc.Clock,
) -> None:
    """Before: only "queued" until the card. After: a live page at `running`, kept fresh by the heartbeat."""
    async with open_harness(settings=attrs.evolve(FAST, heartbeat_s=10.0)) as h:
        job = await h.run('/od-run -a shell "sleep 60"')
        sidecar = await h.sidecar()
        shown: list[LiveOutput] = []

        def quiet_page(message: object) -> bool:
            if isinstance(message, LiveOutput) and message.job.id == job.id:
                shown.append(message)
            return len(shown) >= 3

        assert (await sidecar.status("running")).status_code == 200
        with trio.fail_after(60):
            await h.chat.wait_for(quiet_page)
        assert [m.lines for m in shown] == [(), (), ()]
        first, _, third = (render_lines(m) for m in shown)
        assert first[1:] == ["(running; no output yet)"] and "⏱ 0s" in first[0]
        assert "⏱ 20s" in third[0], third
        assert (await sidecar.logs(["at last"], seq=0)).status_code == 200
        await sidecar.status("completed", 0)
        await h.card(job.id)
        assert live_lines(h.chat, job.id) == ["at last"]


async def test_a_job_past_its_output_quota_goes_on_but_stores_no_more_and_its_card_says_so() -> None:
    """A job printed two million lines (a 95 MB write-ahead log) and nothing stopped it (issue #20)."""
    async with open_harness(settings=attrs.evolve(FAST, max_output_lines=5)) as h:
        job = await h.run('/od-run -a shell "yes"')
        sidecar = await h.sidecar()
        assert (await sidecar.logs(["1", "2", "3"], seq=0)).status_code == 200
        assert (await sidecar.logs(["4", "5", "6", "7"], seq=1)).status_code == 200
        assert (await sidecar.logs(["8"], seq=2)).status_code == 200
        assert (await sidecar.logs(["4", "5", "6", "7"], seq=1)).status_code == 200  # a resend
        assert (await sidecar.status("completed", 0)).status_code == 200
        card = await h.card(job.id)
        stored = await h.store.output(job.id)
        assert stored[:5] == ["1", "2", "3", "4", "5"] and stored[5].startswith("… output truncated here")
        assert len(stored) == 6 and await h.store.last_seq(job.id) == 2  # seq 2 kept, empty
        assert card.job.state is JobState.SUCCEEDED and card.job.output_truncated
        assert f"Output truncated: the job printed more than it may keep; /od-logs {job.id}" in render_text(card)



async def test_another_users_job_is_theirs_to_read_and_stop_unless_the_channel_may_read() -> None:
    """One rule (domain/ownership.py) for /od-logs, /od-jobs --all, /od-usage --all and /od-cancel."""
    async with open_harness() as h:
        job = await h.run('/od-run -a shell "x"', ALICE)
        sidecar = await h.sidecar()
        await sidecar.logs(["alice's secret plan"], seq=0)
        for command in (f"/od-logs {job.id}", f"/od-logs {job.id} --raw", f"/od-logs {job.id} --artifact a"):
            await h.say(command, BOB)
            assert h.notices()[-1] == f"{job.id} is alice's job: only they or an Open-Dispatch admin may read it."
        for command in ("/od-jobs --all", "/od-usage --all"):
            await h.say(command, BOB)
            assert h.notices()[-1].startswith("--all shows everyone's jobs, which only Open-Dispatch admins may see")
        await h.say(f"/od-cancel {job.id}", BOB)
        assert "Only alice, who started" in h.notices()[-1]
        assert all(isinstance(s.message, Notice) and s.message.ephemeral for s in h.chat.sent[-6:])  # privately
        assert not any(isinstance(s.message, LogExcerpt) for s in h.chat.sent)


async def test_channel_members_may_read_when_the_operator_says_so_but_only_from_that_channel() -> None:
    config = Config.from_env({"OPENDISPATCH_CHANNEL_MAY_READ": "1"}, dotenv=None)
    async with open_harness(config=config) as h:
        job = await h.run('/od-run -a shell "x"', ALICE)
        sidecar = await h.sidecar()
        await sidecar.logs(["shared"], seq=0)
        elsewhere = await h.running.dispatcher.store.get(job.id)
        await h.say(f"/od-logs {job.id}", BOB)
        excerpt = h.chat.messages()[-1]
        assert isinstance(excerpt, LogExcerpt) and excerpt.lines == ("shared",)
        await h.say("/od-jobs --all", BOB)
        table = h.chat.messages()[-1]
        assert isinstance(table, JobTable) and table.title == "Recent jobs in this channel" and [j.id for j in table.jobs] == [job.id]
        await h.running.dispatcher.handle(Inbound(Conversation("memory", "other"), BOB, f"/od-logs {job.id}"))
        assert "only they or an Open-Dispatch admin may read it from the channel it ran in" in h.notices()[-1]
        await h.say(f"/od-cancel {job.id}", BOB)  # reading is not stopping
        assert "Only alice, who started" in h.notices()[-1]
        assert elsewhere.conversation == job.conversation


async def test_a_display_name_never_makes_an_admin_or_passes_an_allowlist() -> None:
    """Users choose their names on Slack and Discord: one named like an admin is not one."""
    admins = Config.from_env({"OPENDISPATCH_ADMIN_USERS": "U0ADMIN"}, dotenv=None)
    async with open_harness(config=admins) as h:
        job = await h.run('/od-run -a shell "x"', ALICE)
        await h.sidecar()
        await h.say(f"/od-cancel {job.id}", User("U0MALLORY", "U0ADMIN"))
        assert "Only alice, who started" in h.notices()[-1]
        await h.say(f"/od-cancel {job.id}", User("U0ADMIN", "the real admin"))
        assert h.notices()[-1] == f"Cancelling {job.id}…"
    allowlist = Config.from_env({"OPENDISPATCH_ALLOWED_USERS": ALICE.id}, dotenv=None)
    async with open_harness(config=allowlist) as h:
        await h.say("/od-jobs", User("U0MALLORY", ALICE.id))
        assert "not on this Open-Dispatch's list of allowed users" in h.notices()[-1]
        await h.say("/od-jobs", ALICE)
        assert isinstance(h.chat.messages()[-1], JobTable)
