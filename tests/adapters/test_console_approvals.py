"""Approval prompts at the console (issue #22): printed with "answer y / a / n"; while one waits
a bare `y`, `a` or `n` line is `/od-approve ID`, `/od-approve ID --job` or `/od-deny ID` for the
oldest waiting request, through the real dispatcher; anything else is handled as always."""

from __future__ import annotations

import io
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import attrs
import httpx
import trio

from harness import FAST, FakeSidecar, trio_wall_clock
from opendispatch.adapters.console import ConsoleChat
from opendispatch.adapters.memory.sprites import FakeSprites
from opendispatch.adapters.memory.store import MemoryJobStore
from opendispatch.bootstrap import open_dispatcher
from opendispatch.config import Config
from opendispatch.domain.approvals import ApprovalRequest, ApprovalState
from opendispatch.domain.job import Conversation, Job, User
from opendispatch.domain.job_spec import AgentKind, JobSpec
from opendispatch.domain.messages import ApprovalPrompt, Inbound, JobCard
from opendispatch.domain.ownership import Ownership

CEILING_S = 10
WHERE = Conversation("console", "console")
JOB = Job.queued("j-0123abcd", JobSpec(task="t", agent=AgentKind.CLAUDE), WHERE, User("console", "ada"), at=0.0)
REQUEST = ApprovalRequest(
    id="a-1a2b3c4d", job_id=JOB.id, tool="Bash", detail="git push", reason="Publish", rule="*", asked_at=0.0
)


@attrs.define
class Console:
    """A console on a pipe (typed lines), the real dispatcher behind it, and what it handled."""

    output: io.StringIO
    typing: io.TextIOWrapper
    handled: trio.MemoryReceiveChannel[str]
    sprites: FakeSprites
    store: MemoryJobStore
    http: httpx.AsyncClient

    async def type(self, line: str) -> str:
        """Type a line; returns the command the dispatcher got for it, once it has handled it."""
        self.typing.write(line + "\n")
        self.typing.flush()
        with trio.fail_after(CEILING_S):
            return await self.handled.receive()

    async def sidecar(self) -> FakeSidecar:
        with trio.fail_after(CEILING_S):
            sprite, request = await self.sprites.wait_for_spawn()
        return FakeSidecar(self.http, request.env["JOB_ID"], request.env["JOB_TOKEN"], sprite, request)

    async def stored(self, request_id: str) -> ApprovalRequest:
        request = await self.store.approval(request_id)
        assert request is not None
        return request


@asynccontextmanager
async def open_console() -> AsyncIterator[Console]:
    read_end, write_end = os.pipe()
    output = io.StringIO()
    with open(read_end, encoding="utf-8") as typed, open(write_end, "w", encoding="utf-8") as typing:
        chat = ConsoleChat(output, typed, color=False, env={"USER": "ada"}, line_editor=False)
        sprites, store = FakeSprites(), MemoryJobStore()
        config = Config.embedded(ownership=Ownership(admins=frozenset({"console"})))
        async with open_dispatcher(
            config, chat=chat, sprites=sprites, store=store, bind="127.0.0.1:0", runner_settings=FAST, wall_clock=trio_wall_clock
        ) as running:
            send, receive = trio.open_memory_channel[str](10)

            async def handle(inbound: Inbound) -> None:
                await running.dispatcher.handle(inbound)
                await send.send(inbound.text)

            async with trio.open_nursery() as nursery, httpx.AsyncClient(base_url=running.webhook_url, timeout=10) as http:
                await nursery.start(chat.listen, handle)
                yield Console(output, typing, receive, sprites, store, http)
                typing.close()  # the end of input: the console stops listening on its own


async def ask(sidecar: FakeSidecar, tool: str, arguments: dict[str, Any]) -> str:
    answer = await sidecar.post("/webhooks/approval", {"jobId": sidecar.job_id, "tool": tool, "input": arguments})
    assert answer.status_code == 200 and answer.json()["decision"] == "pending", answer.text
    return str(answer.json()["requestId"])


async def test_a_bare_y_approves_the_oldest_waiting_request_and_n_denies_the_next() -> None:
    async with open_console() as console:
        assert await console.type("/od-config set approvals ask-all") == "/od-config set approvals ask-all"
        await console.type('/od-run -a claude "tidy up"')
        sidecar = await console.sidecar()
        first = await ask(sidecar, "Bash", {"command": "git push origin main", "description": "Publish the fix"})
        second = await ask(sidecar, "Read", {"file_path": "README.md"})
        printed = console.output.getvalue()
        assert f"? ✋ Job {sidecar.job_id} asks to run Bash: git push origin main — answer y / a / n" in printed
        assert f"? ✋ Job {sidecar.job_id} asks to run Read: README.md — answer y / a / n" in printed

        assert await console.type("y") == f"/od-approve {first}"
        approved = await console.stored(first)
        assert (approved.state, approved.decided_by, approved.for_job) == (ApprovalState.APPROVED, "ada", False)
        assert (await console.stored(second)).state is ApprovalState.PENDING
        printed = console.output.getvalue()
        assert f"• y → /od-approve {first} (job {sidecar.job_id}, Bash: git push origin main; the oldest of 2 waiting)" in printed
        assert "Approved by ada." in printed  # the prompt, edited: printed again with the decision

        assert await console.type("N") == f"/od-deny {second}"
        assert (await console.stored(second)).state is ApprovalState.DENIED
        assert f"• N → /od-deny {second} (job {sidecar.job_id}, Read: README.md)\n" in console.output.getvalue()

        assert await console.type("y") == "y"  # nothing waits: an ordinary line again
        assert console.output.getvalue().count("• Not a command. Type /od-help for the list.\n") == 1


async def test_a_bare_a_approves_for_the_rest_of_the_job() -> None:
    async with open_console() as console:
        await console.type("/od-config set approvals ask-all")
        await console.type('/od-run -a claude "tidy up"')
        sidecar = await console.sidecar()
        request_id = await ask(sidecar, "WebFetch", {"url": "https://example.com"})
        assert await console.type("a") == f"/od-approve {request_id} --job"
        approved = await console.stored(request_id)
        assert (approved.state, approved.for_job) == (ApprovalState.APPROVED, True)
        again = await sidecar.post("/webhooks/approval", {"jobId": sidecar.job_id, "tool": "Read", "input": {"file_path": "x"}})
        assert again.json()["decision"] == "approve" and again.json()["requestId"] is None


async def test_what_the_agent_asked_is_printed_harmlessly_and_ended_jobs_take_no_answers() -> None:
    output = io.StringIO()
    chat = ConsoleChat(output, io.StringIO("y\n"), color=False, env={"USER": "ada"}, line_editor=False)
    nasty = attrs.evolve(REQUEST, detail="echo hi\x1b[2J\nrm -rf /tmp/x\r", reason="because\x07")
    ref = await chat.send(WHERE, ApprovalPrompt(JOB, nasty))
    printed = output.getvalue()
    assert "\x1b" not in printed and "\x07" not in printed and "\r" not in printed
    assert "asks to run Bash: echo hi\\x1b[2J ⏎ rm -rf /tmp/x\\x0d — answer y / a / n" in printed
    assert "  Why: because\\x07" in printed

    before = len(output.getvalue())
    timed_out = attrs.evolve(nasty.decided(ApprovalState.TIMED_OUT, by="", at=1.0), decided_by=None)
    await chat.edit(ref, ApprovalPrompt(JOB, timed_out))
    edited = output.getvalue()[before:]
    assert edited.endswith("  Timed out.\n") and "answer y / a / n" not in edited

    await chat.send(WHERE, ApprovalPrompt(JOB, attrs.evolve(REQUEST, id="a-00000002")))
    await chat.send(WHERE, JobCard(JOB.starting(at=1.0).running().succeeded(at=2.0), (), 0, 1.0))
    received: list[str] = []

    async def handler(inbound: Inbound) -> None:
        received.append(inbound.text)

    with trio.fail_after(CEILING_S):
        await chat.listen(handler)
    assert received == ["y"]  # the job ended: its prompt no longer waits, `y` is an ordinary line
