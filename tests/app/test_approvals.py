"""Approvals through the dispatcher (issue #22): the sidecar asks over HTTP with its job token,
the request is stored and posted in the job's thread, the owner or an admin answers with the
prompt's commands (what every platform's buttons send), the sidecar's long poll gets the
decision; timeouts deny; decisions are lines of the job's output; a restart re-posts.
(The real Claude Code CLI asking through the real sidecar: tests/modelserver/test_agent_approvals.py.)"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from harness import ALICE, BOB, CHANNEL, FakeSidecar, Harness, open_harness
from opendispatch.config import Config
from opendispatch.domain.approvals import ApprovalState, parse_policy
from opendispatch.domain.errors import UsageError
from opendispatch.domain.job import Conversation, User
from opendispatch.domain.messages import ApprovalPrompt

ADMIN = User("u-admin", "root")
CONFIG = Config.from_env({"OPENDISPATCH_ADMIN_USERS": ADMIN.id}, dotenv=None)


async def ask(sidecar: FakeSidecar, tool: str, arguments: dict[str, Any]) -> dict[str, Any]:
    answer = await sidecar.post("/webhooks/approval", {"jobId": sidecar.job_id, "tool": tool, "input": arguments})
    assert answer.status_code == 200, answer.text
    return dict(answer.json())


async def decision(h: Harness, sidecar: FakeSidecar, request_id: str, wait_s: float = 0) -> dict[str, Any]:
    answer = await h.http.get(
        "/webhooks/approval",
        params={"jobId": sidecar.job_id, "requestId": request_id, "waitS": str(wait_s)},
        headers={"Authorization": f"Bearer {sidecar.token}"},
    )
    assert answer.status_code == 200, answer.text
    return dict(answer.json())


async def job_with_policy(h: Harness, policy: str, timeout: str = "10m") -> FakeSidecar:
    await h.say(f"/od-config set approvals {policy}", ADMIN)
    await h.say(f"/od-config set approval-timeout {timeout}", ADMIN)
    await h.run('/od-run -a claude "tidy up"', ALICE)
    return await h.sidecar()


def prompts(h: Harness) -> list[ApprovalPrompt]:
    return [message for message in h.chat.messages() if isinstance(message, ApprovalPrompt)]


def test_rules_parse_and_match_as_documented() -> None:
    policy = parse_policy("ask Bash(git push*), WebFetch Write(/etc/*)")
    assert str(policy) == "ask Bash(git push*) WebFetch Write(/etc/*)"
    assert str(policy.needs_approval("Bash", {"command": "git push origin main"})) == "Bash(git push*)"
    assert policy.needs_approval("bash", {"command": "git status"}) is None
    assert str(policy.needs_approval("WebFetch", {"url": "https://x"})) == "WebFetch"
    assert policy.needs_approval("Write", {"file_path": "/srv/app.py"}) is None
    assert parse_policy("ask-all").needs_approval("Read", {"file_path": "a"}) is not None
    assert parse_policy("off").needs_approval("Bash", {"command": "rm -rf /"}) is None
    with pytest.raises(UsageError, match="Bad rule"):
        parse_policy("ask Bash(git push* WebFetch")


async def test_a_call_the_policy_names_waits_for_the_owner_and_runs_once_approved() -> None:
    async with open_harness(config=CONFIG) as h:
        sidecar = await job_with_policy(h, "ask Bash(git push*)")
        assert sidecar.request.env["OPENDISPATCH_APPROVALS"] == "ask Bash(git push*)"
        assert sidecar.request.env["OPENDISPATCH_APPROVAL_TIMEOUT_S"] == "600"

        assert (await ask(sidecar, "Bash", {"command": "ls -la"}))["decision"] == "approve"  # not named: runs
        asked = await ask(sidecar, "Bash", {"command": "git push origin main", "description": "Publish the fix"})
        assert asked["decision"] == "pending"
        request_id = asked["requestId"]
        [prompt] = prompts(h)
        assert (prompt.request.tool, prompt.request.detail, prompt.request.reason) == (
            "Bash", "git push origin main", "Publish the fix",
        )
        assert f"/od-approve {request_id}" in h.chat.transcript()
        assert (await decision(h, sidecar, request_id))["decision"] == "pending"

        await h.say(f"/od-approve {request_id}", BOB)  # not the owner, not an admin
        assert h.notices()[-1].startswith("Only alice, who started job")
        await h.say(f"/od-approve {request_id}", ALICE)
        answer = await decision(h, sidecar, request_id, wait_s=5)
        assert (answer["decision"], answer["by"]) == ("approve", "alice")
        assert "Approved by alice." in h.chat.transcript()  # the prompt, edited

        await sidecar.status("completed", exit_code=0)
        await h.card(sidecar.job_id)
        logged = await h.store.output(sidecar.job_id)
        assert any("waiting for approval" in line and request_id in line for line in logged)
        assert f"[approval] Bash: git push origin main — approved by alice ({request_id})" in logged


async def test_denied_and_approved_for_the_rest_of_the_job() -> None:
    async with open_harness(config=CONFIG) as h:
        sidecar = await job_with_policy(h, "ask Bash(rm -rf*) WebFetch")
        first = (await ask(sidecar, "Bash", {"command": "rm -rf build"}))["requestId"]
        await h.say(f"/od-deny {first}", ADMIN)  # an admin may answer
        answer = await decision(h, sidecar, first)
        assert answer["decision"] == "deny" and "denied in chat by root" in answer["message"]

        second = (await ask(sidecar, "WebFetch", {"url": "https://example.com"}))["requestId"]
        await h.say(f"/od-approve {second} --job", ALICE)
        assert (await decision(h, sidecar, second))["decision"] == "approve"
        again = await ask(sidecar, "WebFetch", {"url": "https://example.org"})
        assert again["decision"] == "approve" and again["requestId"] is None  # not asked again
        third = await ask(sidecar, "Bash", {"command": "rm -rf dist"})
        assert third["decision"] == "pending"  # another rule: asked
        await h.say(f"/od-deny {first}", ALICE)
        assert h.notices()[-1] == f"Request {first} was already denied by root."


async def test_no_answer_in_time_is_a_denial() -> None:
    async with open_harness(config=CONFIG) as h:
        sidecar = await job_with_policy(h, "ask-all", timeout="1s")  # real time: the poll's own deadline
        request_id = (await ask(sidecar, "Read", {"file_path": "README.md"}))["requestId"]
        answer = await decision(h, sidecar, request_id, wait_s=5)  # answered when the second is up
        assert answer["decision"] == "deny" and "within 1s" in answer["message"]
        assert "Timed out." in h.chat.transcript()


async def test_a_clean_shutdown_ends_the_job_and_what_it_waited_for(tmp_path: Path) -> None:
    """(A crash keeps the sprite and the request: test_a_request_that_waited_through_a_crash...)"""
    from opendispatch.adapters.sqlite import open_sqlite_store

    async with open_sqlite_store(tmp_path / "jobs.db") as store:
        async with open_harness(config=CONFIG, store=store) as h:
            sidecar = await job_with_policy(h, "ask Bash(git push*)")
            request_id = (await ask(sidecar, "Bash", {"command": "git push"}))["requestId"]
            assert len(prompts(h)) == 1
    async with open_sqlite_store(tmp_path / "jobs.db") as store:
        settled = await store.approval(request_id)
        assert settled is not None and settled.state is ApprovalState.TIMED_OUT


async def test_a_wrong_token_or_another_jobs_request_gets_nothing() -> None:
    async with open_harness(config=CONFIG) as h:
        sidecar = await job_with_policy(h, "ask-all")
        request_id = (await ask(sidecar, "Read", {"file_path": "x"}))["requestId"]
        await h.run('/od-run -a claude "other"', BOB)
        other = await h.sidecar()
        answer = await h.http.get(
            "/webhooks/approval",
            params={"jobId": other.job_id, "requestId": request_id, "waitS": "0"},
            headers={"Authorization": f"Bearer {other.token}"},
        )
        assert answer.status_code == 404
        forged = await h.http.post(
            "/webhooks/approval",
            json={"jobId": sidecar.job_id, "tool": "Bash", "input": {}},
            headers={"Authorization": "Bearer odj1.0.forged"},
        )
        assert forged.status_code == 401
        assert CHANNEL == Conversation("memory", CHANNEL.channel)


async def test_the_first_reply_says_what_approvals_mean_for_agents_that_cannot_ask() -> None:
    async with open_harness(config=CONFIG) as h:
        await h.say("/od-config set approvals ask Bash(git push*)", ADMIN)
        job = await h.run('/od-run -a opencode "x"', ALICE)
        assert "approvals ask Bash(git push*) (OpenCode cannot ask: the calls they name are denied)" in job.spec.summary()
        job = await h.run('/od-run -a claude "x"', ALICE)
        assert job.spec.from_channel == ("approvals ask Bash(git push*)",)


async def test_a_request_that_waited_through_a_crash_is_posted_again_and_can_be_answered() -> None:
    """The dispatcher died (no clean shutdown): the job's sprite lives on and is adopted, and
    the stored request is posted again in its thread; the answer reaches the sidecar's poll."""
    from harness import trio_wall_clock
    from opendispatch.adapters.memory.sprites import FakeSprites
    from opendispatch.adapters.memory.store import MemoryJobStore
    from opendispatch.domain.approvals import ApprovalRequest
    from opendispatch.domain.job import Job
    from opendispatch.domain.job_spec import AgentKind, JobSpec
    from opendispatch.ports.sprites import SpriteRequest

    store, sprites = MemoryJobStore(), FakeSprites()
    now = trio_wall_clock()
    spec = JobSpec(task="tidy", agent=AgentKind.CLAUDE, approvals="ask-all")
    sprite = await sprites.spawn(SpriteRequest(job_id="j-0000beef", image=None, env={}))
    job = Job.queued("j-0000beef", spec, CHANNEL, ALICE, at=now).starting(at=now).with_sprite(sprite.id).running()
    await store.add(job)
    waiting = ApprovalRequest("a-0000beef", job.id, "Bash", "make deploy", "Ship it", "*", asked_at=now)
    await store.save_approval(waiting)

    async with open_harness(config=CONFIG, store=store, sprites=sprites) as h:
        [prompt] = prompts(h)
        assert prompt.request.id == "a-0000beef" and prompt.job.id == job.id
        await h.say("/od-approve a-0000beef", ALICE)
        decided = await store.approval("a-0000beef")
        assert decided is not None and decided.state is ApprovalState.APPROVED and decided.decided_by == "alice"
        assert "Approved by alice." in h.chat.transcript()


async def test_what_a_job_still_waited_for_when_it_ended_no_longer_waits() -> None:
    async with open_harness(config=CONFIG) as h:
        sidecar = await job_with_policy(h, "ask-all")
        request_id = (await ask(sidecar, "Bash", {"command": "make"}))["requestId"]
        await sidecar.status("failed", exit_code=1)
        await h.card(sidecar.job_id)
        settled = await h.store.approval(request_id)
        assert settled is not None and settled.state is ApprovalState.TIMED_OUT
        assert "Timed out." in h.chat.transcript()
        await h.say(f"/od-approve {request_id}", ALICE)
        assert h.notices()[-1] == f"Request {request_id} was already timed out."


async def test_an_ask_sent_again_after_its_answer_was_lost_finds_its_request() -> None:
    """A dispatcher killed between storing a request and answering: the sidecar sends the same
    ask again (same askId) and must get that request, pending or decided, not a second one."""
    async with open_harness(config=CONFIG) as h:
        sidecar = await job_with_policy(h, "ask Bash(git push*)")
        body = {"jobId": sidecar.job_id, "tool": "Bash", "input": {"command": "git push"}, "askId": "k1"}
        first = (await sidecar.post("/webhooks/approval", body)).json()
        again = (await sidecar.post("/webhooks/approval", body)).json()
        assert first["decision"] == again["decision"] == "pending" and first["requestId"] == again["requestId"]
        assert len(prompts(h)) == 1
        await h.say(f"/od-approve {first['requestId']}", ALICE)
        decided = (await sidecar.post("/webhooks/approval", body)).json()
        assert (decided["decision"], decided["requestId"]) == ("approve", first["requestId"])
        other = (await sidecar.post("/webhooks/approval", {**body, "askId": "k2"})).json()
        assert other["decision"] == "pending" and other["requestId"] != first["requestId"]  # a new ask is asked
        bad = await sidecar.post("/webhooks/approval", {**body, "askId": 7})
        assert bad.status_code == 400 and "askId" in bad.text
