"""Two `opendispatch serve` processes on one PostgreSQL database: the leader is killed with
SIGKILL in the middle of a job, and the standby carries the job on.

Real processes, real sidecar in local sprites, the loopback fake Slack (HTTP mode) as chat, and
a balancer in front of both dispatchers as Fly's proxy would be: sidecars and Slack reach
either. The job's lines must be stored once and in order, shown once in the same live message,
and its card posted once. The timeline is written to .ci/artifacts/failover-timeline-<signal>.txt.
"""

from __future__ import annotations

import os
import shutil
import signal
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest
import trio

from fakes import discord as fake_discord
from fakes.slack import BOT_TOKEN, SIGNING_SECRET, FakeMessage, FakeSlack, form_body, open_fake_slack, post_signed
from opendispatch.adapters.postgres import open_postgres_store
from opendispatch.config import UNSANDBOXED_OPT_IN
from opendispatch.domain.job import JobState
from serve_process import ServeProcess, free_port, serve_process
from tcp_balancer import open_balancer

LINES = 60
LEASE_S = 2
CEILING_S = 90
ARTIFACTS = Path(__file__).resolve().parents[2] / ".ci" / "artifacts"


def _env(tmp_path: Path, port: int, database: str, fake: FakeSlack | None, balancer_port: int) -> dict[str, str]:
    env = {
        "PATH": os.environ["PATH"],
        "HOME": str(tmp_path),
        "WEBHOOK_PORT": str(port),
        "OPENDISPATCH_DB": database,
        "OPENDISPATCH_LEASE_S": str(LEASE_S),
        "OPEN_DISPATCH_URL": f"http://127.0.0.1:{balancer_port}",  # what sprites call: either dispatcher
        "OPENDISPATCH_RETRY_MAX_S": "0.3",  # the sidecar retries quickly while the standby takes over
        "OPENDISPATCH_PASSTHROUGH_ENV": "OPENDISPATCH_RETRY_MAX_S",
    }
    if fake is not None:
        env |= {
            "CHAT_PROVIDER": "slack",
            "SLACK_MODE": "http",
            "SLACK_BOT_TOKEN": BOT_TOKEN,
            "SLACK_SIGNING_SECRET": SIGNING_SECRET,
            "OPENDISPATCH_SLACK_API_URL": fake.base_url + "/api/",
        }
    if shutil.which("bwrap") is None:  # CI installs bubblewrap; elsewhere the sprites run bare
        env["OPENDISPATCH_UNSANDBOXED_LOCAL_SPRITES"] = UNSANDBOXED_OPT_IN
    return env


def _live_lines(fake: FakeSlack, started: FakeMessage) -> list[str]:
    pages = [m for m in fake.thread(started) if m.blocks and "Output of" in json_text(m)]
    return [line for page in pages for line in page.code_lines()]


def json_text(message: FakeMessage) -> str:
    return " ".join(message.block_texts()[:1])


def _cards(fake: FakeSlack, started: FakeMessage) -> list[FakeMessage]:
    return [m for m in fake.thread(started) if m.blocks and m.blocks[0].get("type") == "header"]


async def _until(fake: FakeSlack, predicate, timeout: float = CEILING_S):  # type: ignore[no-untyped-def]
    with trio.fail_after(timeout):
        while not (value := predicate()):
            await fake.wait_change()
        return value


@pytest.mark.parametrize(
    ("stop", "ingest"),
    [(signal.SIGKILL, "plain"), (signal.SIGTERM, "plain"), (signal.SIGKILL, "fast")],
    ids=["SIGKILL", "SIGTERM", "SIGKILL-fast-ingest"],
)
async def test_the_standby_carries_the_leaders_job_on(
    tmp_path: Path, postgres_url: str, stop: signal.Signals, ingest: str
) -> None:
    """SIGKILL: the standby takes the lock when the leader's database session ends and waits for
    its job leases to expire. SIGTERM (a deploy): the leader hands over, so no wait."""
    port_a, port_b = free_port(), free_port()
    task = f"for i in $(seq 1 {LINES}); do echo line $i; sleep 0.1; done"
    timeline: list[tuple[float, str]] = []
    async with open_fake_slack() as fake, open_balancer([port_a, port_b]) as balancer, httpx.AsyncClient() as http:
        t0 = trio.current_time()

        def note(what: str) -> None:
            timeline.append((trio.current_time() - t0, what))

        ingest_env = {"OPENDISPATCH_FAST_INGEST": "1"} if ingest == "fast" else {}  # as fly.toml runs
        async with serve_process(_env(tmp_path, port_a, postgres_url, fake, balancer.port) | ingest_env, tmp_path) as a, _diagnosed(fake, a):
            await a.wait_for(r"leads \(waited", timeout=30)
            note("A leads")
            async with serve_process(_env(tmp_path, port_b, postgres_url, fake, balancer.port) | ingest_env, tmp_path) as b:
                await b.wait_for(r"stands by", timeout=30)
                note("B stands by")
                # Slack reaches the standby: it passes the command on to the leader.
                body = form_body(fake.slash_payload("/od-run", f'--agent shell "{task}"'))
                response = await post_signed(
                    http, f"http://127.0.0.1:{port_b}/slack/events", body, timestamp=int(time.time()),
                    content_type="application/x-www-form-urlencoded",
                )
                assert response.status_code == 200, response.text
                started = await _until(fake, lambda: next(iter(fake.channel_messages()), None))
                note("job accepted (first reply posted)")
                await _until(fake, lambda: len(_live_lines(fake, started)) >= 10)
                shown_at_kill = len(_live_lines(fake, started))
                # Only the leader opened the chat connection (`auth.test`); the sidecar's and
                # Slack's requests reached both dispatchers, the standby passing them on.
                assert len(fake.calls_of("auth.test")) == 1
                assert {port_a, port_b} <= set(balancer.picks), balancer.picks
                a.process.send_signal(stop)
                with trio.fail_after(20):
                    assert await a.process.wait() == (-signal.SIGKILL if stop == signal.SIGKILL else 0)
                note(f"A stopped with {stop.name} ({shown_at_kill} lines shown)")
                waited = float((await b.wait_for(r"leads \(waited ([0-9.]+)s", timeout=30)).group(1))
                note(f"B leads (waited {waited}s for A's leases)")
                assert waited <= LEASE_S and (waited == 0.0) == (stop == signal.SIGTERM)
                await _until(fake, lambda: len(_live_lines(fake, started)) > shown_at_kill)
                note(f"first line relayed by B: {_live_lines(fake, started)[shown_at_kill]!r}")
                cards = await _until(fake, lambda: _cards(fake, started))
                note("card posted by B")
                await _until(fake, lambda: len(_live_lines(fake, started)) >= LINES, timeout=10)
                job_id = started.metadata["event_payload"]["job_id"] if started.metadata else None
                assert "Traceback" not in a.text + b.text, a.text + b.text
                assert len(fake.calls_of("auth.test")) == 2  # the new leader's

    expected = [f"line {i}" for i in range(1, LINES + 1)]
    assert _live_lines(fake, started) == expected, "each line shown once, in order, in the same live message"
    assert len([m for m in fake.thread(started) if m.blocks and "Output of" in json_text(m)]) == 1
    assert len(cards) == 1 and "succeeded" in cards[0].all_text()
    async with open_postgres_store(postgres_url) as store:
        [job] = await store.recent(limit=5)
        assert job_id in (None, job.id)
        assert job.state is JobState.SUCCEEDED
        assert await store.output(job.id) == expected, "each line stored once, in order"
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    report = "\n".join(f"{at:7.2f}s  {what}" for at, what in timeline)
    suffix = "" if ingest == "plain" else f"-{ingest}-ingest"
    (ARTIFACTS / f"failover-timeline-{stop.name}{suffix}.txt").write_text(report + "\n")
    print("\n" + report)


@asynccontextmanager
async def _diagnosed(fake: FakeSlack, *processes: ServeProcess) -> AsyncIterator[None]:
    """On failure, what chat showed and what each dispatcher logged (pytest prints stdout)."""
    try:
        yield
    except BaseException:
        print("--- chat ---\n" + fake.everything_said()[-4000:])
        for name, process in zip("AB", processes):
            print(f"--- {name} ---\n" + process.text[-8000:])
        raise


async def _slash(http: httpx.AsyncClient, port: int, fake: FakeSlack, command: str, text: str) -> None:
    body = form_body(fake.slash_payload(command, text))
    response = await post_signed(
        http, f"http://127.0.0.1:{port}/slack/events", body, timestamp=int(time.time()),
        content_type="application/x-www-form-urlencoded",
    )
    assert response.status_code == 200, response.text


def _succeeded_cards(fake: FakeSlack) -> int:
    return sum(1 for m in fake.messages if m.blocks and m.blocks[0].get("type") == "header" and "succeeded" in m.all_text())


async def test_the_standby_takes_a_persistent_session_over(tmp_path: Path, postgres_url: str) -> None:
    """A persistent session started on the leader goes on after it is killed: the next leader
    resumes it, its sprite (still running, files and all) polls the new leader, and the next
    message runs there."""
    port_a, port_b = free_port(), free_port()
    async with open_fake_slack() as fake, open_balancer([port_a, port_b]) as balancer, httpx.AsyncClient() as http:
        env_a = _env(tmp_path, port_a, postgres_url, fake, balancer.port) | {"OPENDISPATCH_ALLOW_SHELL_SESSIONS": "1"}
        env_b = _env(tmp_path, port_b, postgres_url, fake, balancer.port) | {"OPENDISPATCH_ALLOW_SHELL_SESSIONS": "1"}
        async with serve_process(env_a, tmp_path) as a:
            await a.wait_for(r"leads \(waited", timeout=30)
            async with serve_process(env_b, tmp_path) as b, _diagnosed(fake, a, b):
                await b.wait_for(r"stands by", timeout=30)
                await _slash(http, port_b, fake, "/od-start", "keep --agent shell --persistent")
                await _until(fake, lambda: "Session keep started" in fake.everything_said())
                await _slash(http, port_b, fake, "/od-send", 'keep "echo from-before > f.txt && echo done"')
                await _until(fake, lambda: _succeeded_cards(fake) == 1)
                a.process.kill()
                await a.process.wait()
                await b.wait_for(r"Open-Dispatch ready", timeout=30)
                await _slash(http, port_b, fake, "/od-send", 'keep "cat f.txt"')
                await _until(fake, lambda: _succeeded_cards(fake) == 2)
                assert "from-before" in fake.everything_said()
                await _slash(http, port_b, fake, "/od-stop", "keep")
                await _until(fake, lambda: "Session keep ended" in fake.everything_said())
                assert "Traceback" not in a.text + b.text, a.text + b.text
    async with open_postgres_store(postgres_url) as store:
        jobs = await store.recent(limit=5)
        assert [job.state for job in jobs] == [JobState.SUCCEEDED, JobState.SUCCEEDED]
        assert jobs[0].sprite_id == jobs[1].sprite_id, "both messages ran on the session's one sprite"
        assert await store.output(jobs[0].id) == ["from-before"]


async def test_the_discord_gateway_is_held_by_the_leader_alone(tmp_path: Path, postgres_url: str) -> None:
    """A duty that must run once: one gateway connection, the leader's; it moves when it dies."""
    port_a, port_b = free_port(), free_port()
    async with fake_discord.open_fake_discord() as fake, open_balancer([port_a, port_b]) as balancer:
        discord = {
            "CHAT_PROVIDER": "discord",
            "DISCORD_BOT_TOKEN": fake_discord.BOT_TOKEN,
            "DISCORD_CLIENT_ID": fake_discord.APPLICATION_ID,
            "DISCORD_API_BASE_URL": fake.api_url,
            "DISCORD_GATEWAY_URL": fake.gateway_url,
        }

        def identified() -> list[fake_discord.GatewaySession]:
            return [s for s in fake.gateway_sessions if s.identified.is_set() and not s.ended.is_set()]

        async with serve_process(_env(tmp_path, port_a, postgres_url, None, balancer.port) | discord, tmp_path) as a:
            await a.wait_for(r"Open-Dispatch ready", timeout=30)
            with trio.fail_after(CEILING_S):
                await fake.wait_for(lambda _: len(identified()) == 1)
            async with serve_process(_env(tmp_path, port_b, postgres_url, None, balancer.port) | discord, tmp_path) as b:
                await b.wait_for(r"stands by", timeout=30)
                leaders_session = identified()[0]
                assert len(fake.gateway_sessions) == 1
                a.process.kill()
                await a.process.wait()
                await b.wait_for(r"Open-Dispatch ready", timeout=30)
                with trio.fail_after(CEILING_S):
                    await fake.wait_for(lambda _: leaders_session.ended.is_set() and len(identified()) == 1)
                assert len(fake.gateway_sessions) == 2
                assert "Traceback" not in a.text + b.text, a.text + b.text
