"""The real sidecar streaming to the real webhook server over `/webhooks/stream`.

Every line must be stored exactly once and in order, and the final status must come after
the last line, whether the server stays up or goes away in the middle of a stream.
"""

from __future__ import annotations

import re
import secrets
import socket
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
import trio

from harness import open_harness
from opendispatch.adapters.local import sidecar_path
from opendispatch.adapters.memory.chat import MemoryChat
from opendispatch.adapters.memory.sprites import FakeSprites
from opendispatch.adapters.memory.store import MemoryJobStore
from opendispatch.bootstrap import TOKEN_SECRET_NAME, open_dispatcher
from opendispatch.config import Config
from opendispatch.domain.job import Conversation, Job, JobState, User
from opendispatch.domain.job_spec import AgentKind, JobSpec
from opendispatch.domain.sidecar import sprite_environment
from opendispatch.domain.tokens import TokenIssuer
from webhook_paths import webhook_path  # noqa: F401  (autouse: every test on both webhook paths)



def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def _prepare(store: MemoryJobStore, task: str, url: str, home: Path) -> tuple[Job, dict[str, str]]:
    key = await store.secret(TOKEN_SECRET_NAME, lambda: secrets.token_bytes(32))
    job = Job.queued("j-5e1f0002", JobSpec(task=task, agent=AgentKind.SHELL), Conversation("memory", "c1"), User("u1", "alice"), at=0.0)
    await store.add(job.starting(at=0.0))
    token = TokenIssuer(key).issue(job.id, expires_at=2**36)
    env = {
        "PATH": "/usr/bin:/bin",
        "HOME": str(home),
        "OPENDISPATCH_WORKSPACE": str(home),
        "OPENDISPATCH_BATCH_MS": "20",
        "OPENDISPATCH_RETRY_MAX_S": "0.2",
        **sprite_environment(job, token=token, callback_url=url, passthrough={}),
    }
    return job, env


async def run_sidecar(env: dict[str, str], workspace: Path) -> None:
    """The real sidecar, to its end; it must exit 0."""
    with trio.fail_after(30):
        process = await trio.run_process(
            [sys.executable, str(sidecar_path())], env=env, cwd=workspace, capture_stdout=True, capture_stderr=True
        )
    assert process.returncode == 0, process.stderr


def _requests(metrics_text: str, endpoint: str) -> int:
    pattern = re.compile(r'^\w*webhook\w*_total\{[^}]*endpoint="' + re.escape(endpoint) + r'"[^}]*\} (\S+)$', re.M)
    return sum(int(float(value)) for value in pattern.findall(metrics_text))


@pytest.mark.parametrize("stream", ["1", "0"])
async def test_the_sidecar_streams_every_line_once_in_order_unless_told_to_post(tmp_path: Path, stream: str) -> None:
    store = MemoryJobStore()
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    job, env = await _prepare(store, 'for i in $(seq 1 500); do echo "line $i"; done', url, tmp_path)
    env["OPENDISPATCH_STREAM"] = stream
    async with open_dispatcher(
        Config.embedded(), chat=MemoryChat(), sprites=FakeSprites(), store=store, bind=f"127.0.0.1:{port}"
    ):
        await run_sidecar(env, tmp_path)
        async with httpx.AsyncClient(base_url=url) as http:
            metrics = (await http.get("/metrics")).text
    assert await store.output(job.id) == [f"line {i}" for i in range(1, 501)]
    final = await store.get(job.id)
    assert final.state is JobState.SUCCEEDED and final.exit_code == 0
    if stream == "1":
        assert _requests(metrics, "/webhooks/stream") >= 2  # the resume-point GET and at least one stream
        assert _requests(metrics, "/webhooks/logs") == 0
    else:
        assert _requests(metrics, "/webhooks/stream") == 0
        assert _requests(metrics, "/webhooks/logs") >= 1


async def test_the_server_going_away_mid_stream_loses_and_repeats_nothing(tmp_path: Path) -> None:
    store = MemoryJobStore()
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    lines = 400
    task = f'for i in $(seq 1 {lines}); do echo "line $i"; if [ $i = 100 ]; then sleep 1; fi; done'
    job, env = await _prepare(store, task, url, tmp_path)
    env["OPENDISPATCH_GIVE_UP_S"] = "60"
    process = await trio.lowlevel.open_process(
        [sys.executable, str(sidecar_path())], env=env, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    config = Config.embedded()
    with trio.fail_after(40):
        async with open_dispatcher(config, chat=MemoryChat(), sprites=FakeSprites(), store=store, bind=f"127.0.0.1:{port}") as od:

            async def fifty_stored() -> bool:
                return len(await store.output(job.id)) >= 50

            await od.until(job.id, fifty_stored)
        # The server is gone with the stream open; the agent goes on writing to the spool.
        await trio.sleep(0.3)
        async with open_dispatcher(config, chat=MemoryChat(), sprites=FakeSprites(), store=store, bind=f"127.0.0.1:{port}"):
            assert await process.wait() == 0
            async with httpx.AsyncClient(base_url=url) as http:
                metrics = (await http.get("/metrics")).text
    assert _requests(metrics, "/webhooks/stream") >= 2  # the restarted server: where to resume, then a stream
    assert await store.output(job.id) == [f"line {i}" for i in range(1, lines + 1)]
    final = await store.get(job.id)
    assert final.state is JobState.SUCCEEDED and final.exit_code == 0


async def test_a_stream_record_over_the_limit_falls_back_to_posts_that_split_it(tmp_path: Path) -> None:
    store = MemoryJobStore()
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    task = "for i in $(seq 1 80); do printf 'line %s %030000d\\n' $i 0; done"
    job, env = await _prepare(store, task, url, tmp_path)
    env["OPENDISPATCH_BATCH_BYTES"] = str(4 * 1024 * 1024)  # records far over the server's 1 MiB
    env["OPENDISPATCH_BATCH_MS"] = "2000"
    async with open_dispatcher(
        Config.embedded(), chat=MemoryChat(), sprites=FakeSprites(), store=store, bind=f"127.0.0.1:{port}"
    ):
        await run_sidecar(env, tmp_path)
        async with httpx.AsyncClient(base_url=url) as http:
            metrics = (await http.get("/metrics")).text
    assert await store.output(job.id) == [f"line {i} " + "0" * 30000 for i in range(1, 81)]
    assert (await store.get(job.id)).state is JobState.SUCCEEDED
    assert 'endpoint="/webhooks/stream",status="413"' in metrics


async def test_a_streaming_sidecar_gathers_records_as_long_as_the_server_asks(tmp_path: Path) -> None:
    script = "for i in $(seq 1 60); do echo line $i; sleep 0.02; done"
    async with open_harness() as h:
        job = await h.run(f'/od-run -a shell "{script}"')
        sidecar = await h.sidecar()
        h.running.dispatcher.runner.relay.stream_record_budget_per_s = 2.5  # 1 live job: 400 ms
        env = {
            **sidecar.request.env,
            "PATH": "/usr/bin:/bin",
            "HOME": str(tmp_path),
            "OPENDISPATCH_WORKSPACE": str(tmp_path),
            "OPENDISPATCH_BATCH_MS": "20",  # its own default: a record every 20 ms
        }
        await run_sidecar(env, tmp_path)
        assert await h.store.output(job.id) == [f"line {i}" for i in range(1, 61)]
        last_seq = await h.store.last_seq(job.id)
        assert last_seq is not None
        # ~1.5 s of output: ~60 records at 20 ms, a handful at the 400 ms the server asked for
        assert last_seq + 1 <= 8, f"{last_seq + 1} records"
