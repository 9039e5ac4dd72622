"""A dispatcher on PostgreSQL, harness-free: the real composition root opens the store from
`database_path` (a postgresql:// URL, as OPENDISPATCH_DB gives it), a sidecar POSTs logs and
status over HTTP with its job token, and the output and card come back; a second dispatcher
on the same database (a restart) still has the job, its lines and its token key."""

from __future__ import annotations

import httpx
import trio

from harness import ALICE, CHANNEL, FakeSidecar
from opendispatch.adapters.memory.chat import MemoryChat
from opendispatch.adapters.memory.sprites import FakeSprites
from opendispatch.adapters.postgres import PostgresJobStore, open_postgres_store
from opendispatch.bootstrap import open_dispatcher
from opendispatch.config import Config
from opendispatch.domain.job import JobState
from opendispatch.domain.messages import Inbound, JobAccepted, LogExcerpt

CEILING_S = 30.0


async def test_a_job_runs_on_postgres_and_a_restarted_dispatcher_still_has_it(postgres_url: str) -> None:
    config = Config.embedded(database_path=postgres_url)
    chat, sprites = MemoryChat(), FakeSprites()
    with trio.fail_after(CEILING_S):
        async with open_dispatcher(config, chat=chat, sprites=sprites, bind="127.0.0.1:0") as running:
            assert isinstance(running.store, PostgresJobStore)
            await running.dispatcher.handle(Inbound(CHANNEL, ALICE, '/od-run --repo owner/project -a shell "run the tests"'))
            accepted = chat.sent[0].message
            assert isinstance(accepted, JobAccepted)
            job = accepted.job
            sprite, request = await sprites.wait_for_spawn()
            async with httpx.AsyncClient(base_url=running.webhook_url, timeout=10) as http:
                sidecar = FakeSidecar(http, request.env["JOB_ID"], request.env["JOB_TOKEN"], sprite, request)
                assert sidecar.job_id == job.id
                assert (await sidecar.status("running")).status_code == 200
                assert (await sidecar.logs(["3 passed"], seq=1)).json() == {"ok": True}
                assert (await sidecar.logs(["collecting...", ""], seq=0)).json() == {"ok": True}
                assert (await sidecar.logs(["collecting...", ""], seq=0)).json() == {"ok": True}  # a retry
                assert (await sidecar.status("completed", 0)).status_code == 200
            card = await chat.wait_for_card(job.id)
            assert card.job.state is JobState.SUCCEEDED and card.job.exit_code == 0
            assert card.tail == ("collecting...", "", "3 passed")
            assert await running.store.output(job.id) == ["collecting...", "", "3 passed"]
            assert sprites.destroyed == [sprite.id]

        # What a second dispatcher (or this one, restarted) finds in the database.
        async with open_postgres_store(postgres_url) as store:
            assert (await store.get(job.id)).state is JobState.SUCCEEDED
            assert await store.last_seq(job.id) == 1
        chat = MemoryChat()
        async with open_dispatcher(config, chat=chat, sprites=FakeSprites(), bind="127.0.0.1:0") as again:
            await again.dispatcher.handle(Inbound(CHANNEL, ALICE, f"/od-logs {job.id}"))
            excerpt = chat.sent[-1].message
            assert isinstance(excerpt, LogExcerpt)
            assert excerpt.lines[-3:] == ("collecting...", "", "3 passed")
            # The token key is the one the first dispatcher kept: the job's token still verifies
            # (a late line within a minute of the end is kept), and a forged one does not.
            async with httpx.AsyncClient(base_url=again.webhook_url, timeout=10) as http:
                late = FakeSidecar(http, job.id, request.env["JOB_TOKEN"], sprite, request)
                assert (await late.logs(["late"], seq=2)).json() == {"ok": True}
                forged = await late.post("/webhooks/logs", {"jobId": job.id, "lines": ["x"], "seq": 3}, token="odj1.1.forged")
                assert forged.status_code == 401
            assert await again.store.output(job.id) == ["collecting...", "", "3 passed", "late"]
