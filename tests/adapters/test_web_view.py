"""The web view over real HTTP: grants traded for cookies, pages, the live stream, refusals.

The dispatcher is the real composition root on 127.0.0.1 (tests/harness.py); only chat,
store and sprites are in-memory fakes. tests/browser/ drives the same pages in Chromium.
"""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import AsyncIterator
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from harness import ALICE, BOB, CHANNEL, Harness, open_harness
from opendispatch.config import Config
from opendispatch.domain.job import Conversation, User
from opendispatch.domain.messages import JobAccepted, Notice
from opendispatch.domain.ownership import Ownership
from opendispatch.domain.web_grants import GrantIssuer, WebGrant

HOSTILE = "<script>alert(1)</script>"
ADMIN = User("u-admin", "root")


def accepted_url(h: Harness, job_id: str) -> str:
    for sent in h.chat.sent:
        if isinstance(sent.message, JobAccepted) and sent.message.job.id == job_id:
            assert sent.message.web_url is not None
            return sent.message.web_url
    raise AssertionError("no first reply")


def browser(h: Harness) -> httpx.AsyncClient:
    """A client that keeps cookies, like a browser, and follows nothing by itself."""
    return httpx.AsyncClient(base_url=h.running.webhook_url, timeout=10)


@pytest.fixture
async def h() -> AsyncIterator[Harness]:
    config = Config.embedded(ownership=Ownership(admins=frozenset({ADMIN.id})))
    async with open_harness(config=config) as harness:
        yield harness


async def open_link(client: httpx.AsyncClient, url: str) -> httpx.Response:
    """Follow a chat link: the grant is traded for a cookie, then the clean URL is served."""
    parts = urlsplit(url)
    first = await client.get(parts.path + "?" + parts.query)
    assert first.status_code == 303, first.text
    location = first.headers["location"]
    assert "grant" not in location
    return await client.get(location)


async def test_a_cards_link_opens_the_job_page_and_the_grant_becomes_an_httponly_cookie(h: Harness) -> None:
    job = await h.run('/od-run --agent shell "make test"')
    sidecar = await h.sidecar()
    await sidecar.logs(["compiling", HOSTILE], seq=0)
    url = accepted_url(h, job.id)
    assert url.startswith(h.running.webhook_url + f"/jobs/{job.id}?grant=odw1.")
    async with browser(h) as client:
        parts = urlsplit(url)
        first = await client.get(parts.path + "?" + parts.query)
        assert first.status_code == 303 and first.headers["location"] == f"/jobs/{job.id}"
        cookie = first.headers["set-cookie"]
        assert "HttpOnly" in cookie and f"Path=/jobs/{job.id}" in cookie and "SameSite=Lax" in cookie
        page = await client.get(first.headers["location"])
    assert page.status_code == 200
    grant = parse_qs(parts.query)["grant"][0]
    assert grant not in page.text
    assert "compiling" in page.text
    assert HOSTILE not in page.text and "&lt;script&gt;alert(1)&lt;/script&gt;" in page.text
    csp = page.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "default-src 'none'" in csp and "unsafe-inline" not in csp
    assert page.headers["referrer-policy"] == "no-referrer"
    await sidecar.status("completed", 0)
    await h.card(job.id)


async def test_the_card_carries_the_same_kind_of_link(h: Harness) -> None:
    job = await h.run('/od-run --agent shell "make test"')
    sidecar = await h.sidecar()
    await sidecar.status("completed", 0)
    card = await h.card(job.id)
    assert card.web_url is not None and f"/jobs/{job.id}?grant=odw1." in card.web_url


async def test_forged_expired_and_missing_grants_get_a_plain_401_page(h: Harness) -> None:
    job = await h.run('/od-run --agent shell "make test"')
    url = accepted_url(h, job.id)
    parts = urlsplit(url)
    grant = parse_qs(parts.query)["grant"][0]
    forged = grant[:-2] + ("AA" if not grant.endswith("AA") else "BB")
    async with browser(h) as client:
        for bad in (forged, "odw1.1.x.y", "nonsense"):
            answer = await client.get(f"/jobs/{job.id}", params={"grant": bad})
            assert answer.status_code == 401
            assert "expired or is not valid" in answer.text
        assert (await client.get(f"/jobs/{job.id}")).status_code == 401
        assert (await client.get("/jobs")).status_code == 401
        assert (await client.get("/usage")).status_code == 401
    # Expired: a grant issued with the dispatcher's key that ended a second ago.
    key = await h.store.secret("job-token-key", lambda: b"")
    expired = GrantIssuer(key).issue(WebGrant(user=ALICE, asked_in=CHANNEL, expires_at=int(trio_wall()) - 1, job_id=job.id))
    async with browser(h) as client:
        answer = await client.get(f"/jobs/{job.id}", params={"grant": expired})
        assert answer.status_code == 401
    sidecar = await h.sidecar()
    await sidecar.status("completed", 0)
    await h.card(job.id)


def trio_wall() -> float:
    from harness import trio_wall_clock

    return trio_wall_clock()


async def test_a_job_link_opens_only_its_job(h: Harness) -> None:
    first = await h.run('/od-run --agent shell "one"')
    second = await h.run('/od-run --agent shell "two"')
    async with browser(h) as client:
        await open_link(client, accepted_url(h, first.id))
        assert (await client.get(f"/jobs/{second.id}")).status_code == 401
        assert (await client.get("/jobs")).status_code == 401
        # The first job's grant offered for the second job's page is refused too.
        grant = parse_qs(urlsplit(accepted_url(h, first.id)).query)["grant"][0]
        assert (await client.get(f"/jobs/{second.id}", params={"grant": grant})).status_code == 401
    for job in (first, second):
        sidecar = await h.sidecar()
        await sidecar.status("completed", 0)
        await h.card(sidecar.job_id)


async def private_link(h: Harness, user: User, conversation: Conversation = CHANNEL) -> str:
    before = len(h.chat.sent)
    await h.say("/od-web", user, conversation)
    notices = [s.message for s in h.chat.sent[before:] if isinstance(s.message, Notice)]
    assert len(notices) == 1 and notices[0].private and notices[0].ephemeral
    return next(word for word in notices[0].text.split() if word.startswith("http"))


async def test_od_web_gives_a_private_link_to_the_list_of_what_the_user_may_read(h: Harness) -> None:
    mine = await h.run('/od-run --agent shell "alice job"')
    theirs = await h.run('/od-run --agent shell "bob job"', user=BOB)
    async with browser(h) as client:
        page = await open_link(client, await private_link(h, ALICE))
        assert page.status_code == 200
        assert mine.id in page.text and theirs.id not in page.text
        assert (await client.get(f"/jobs/{theirs.id}")).status_code == 404  # not hers: not even its existence
        assert (await client.get(f"/jobs/{mine.id}")).status_code == 200
    async with browser(h) as client:
        page = await open_link(client, await private_link(h, ADMIN))
        assert mine.id in page.text and theirs.id in page.text
        only_bob = await client.get("/jobs", params={"user": BOB.id})
        assert theirs.id in only_bob.text and mine.id not in only_bob.text
        bad = await client.get("/jobs", params={"status": "sleeping"})
        assert bad.status_code == 400 and "status must be one of" in bad.text
        usage = await client.get("/usage")
        assert usage.status_code == 200 and "<svg" in usage.text and "alice" in usage.text and "bob" in usage.text
    for _ in range(2):
        sidecar = await h.sidecar()
        await sidecar.status("completed", 0)
        await h.card(sidecar.job_id)


async def read_events(lines: AsyncIterator[str], until: str) -> list[tuple[str, str, dict[str, object]]]:
    """Server-sent events (event, id, data) from a stream's lines until one named `until` arrives."""
    events: list[tuple[str, str, dict[str, object]]] = []
    name, event_id, data = "", "", ""
    async for line in lines:
        if line.startswith("event: "):
            name = line[7:]
        elif line.startswith("id: "):
            event_id = line[4:]
        elif line.startswith("data: "):
            data = line[6:]
        elif line == "" and name:
            events.append((name, event_id, json.loads(data)))
            if name == until:
                return events
            name, event_id, data = "", "", ""
    raise AssertionError(f"the stream ended before {until}: {events}")


async def test_the_live_stream_sends_lines_as_they_are_stored_and_resumes_after_a_reconnect(h: Harness) -> None:
    job = await h.run('/od-run --agent shell "make test"')
    sidecar = await h.sidecar()
    await sidecar.logs(["one", "two"], seq=0)
    async with browser(h) as client:
        await open_link(client, accepted_url(h, job.id))
        async with client.stream("GET", f"/jobs/{job.id}/events", params={"from": "1"}) as response:
            assert response.headers["content-type"].startswith("text/event-stream")
            stream = response.aiter_lines()
            first = await read_events(stream, "lines")
            assert first[-1] == ("lines", "2", {"from": 1, "lines": ["two"], "steps": []})
            await sidecar.logs(["▶ Bash: npm test", "✓ Bash: npm test"], seq=1)
            second = await read_events(stream, "lines")
            assert second[-1][2]["lines"] == ["▶ Bash: npm test", "✓ Bash: npm test"]
            assert second[-1][2]["steps"] == [
                {"label": "Bash: npm test", "state": "running"},
                {"label": "Bash: npm test", "state": "ok"},
            ]
            assert second[-1][1] == "4"
        # A reconnect says the last id it saw and gets only what came after.
        await sidecar.logs(["five"], seq=2)
        async with client.stream("GET", f"/jobs/{job.id}/events", headers={"Last-Event-ID": "4"}) as response:
            stream = response.aiter_lines()
            resumed = await read_events(stream, "lines")
            assert resumed[-1][2] == {"from": 4, "lines": ["five"], "steps": []}
            await sidecar.status("completed", 0)
            finished = await read_events(stream, "final")
            assert finished[-1][2]["state"] == "succeeded"
        final = await client.get(f"/jobs/{job.id}/final")
        assert final.status_code == 200 and "Succeeded" in final.text
    await h.card(job.id)


async def test_downloads_are_attachments_with_every_line(h: Harness) -> None:
    job = await h.run('/od-run --agent shell "make test"')
    sidecar = await h.sidecar()
    await sidecar.logs([f"line {i}" for i in range(2500)], seq=0)
    await sidecar.status("completed", 0)
    await h.card(job.id)
    async with browser(h) as client:
        page = await open_link(client, accepted_url(h, job.id))
        assert "line 2499" in page.text and "line 0<" not in page.text  # the page holds the last 2,000
        assert "500 earlier lines" in page.text
        text = await client.get(f"/jobs/{job.id}/output.txt")
        assert text.status_code == 200 and text.headers["content-disposition"].startswith("attachment;")
        assert text.text.splitlines() == [f"line {i}" for i in range(2500)]
        raw = await client.get(f"/jobs/{job.id}/transcript.jsonl")
        assert raw.status_code == 200


async def test_no_grant_reaches_the_logs(h: Harness, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    job = await h.run('/od-run --agent shell "make test"')
    url = accepted_url(h, job.id)
    grant = parse_qs(urlsplit(url).query)["grant"][0]
    async with browser(h) as client:
        await open_link(client, url)
        await client.get(f"/jobs/{job.id}", params={"grant": grant[:-3] + "xyz"})
    sidecar = await h.sidecar()
    await sidecar.status("completed", 0)
    await h.card(job.id)
    # The server's own logs (the test's HTTP client logs its URLs, as a browser's history would).
    ours = [r.getMessage() for r in caplog.records if r.name.split(".")[0] in ("opendispatch", "hypercorn", "quart")]
    assert ours, "the server logged nothing: the check would prove nothing"
    assert not [line for line in ours if grant[:40] in line]


async def test_the_web_view_can_be_turned_off() -> None:
    async with open_harness(config=Config.embedded(web_enabled=False)) as h:
        job = await h.run('/od-run --agent shell "make test"')
        assert all(
            s.message.web_url is None for s in h.chat.sent if isinstance(s.message, JobAccepted)
        )
        assert (await h.http.get(f"/jobs/{job.id}")).status_code == 404
        await h.say("/od-web")
        assert "turned off" in h.notices()[-1]
        sidecar = await h.sidecar()
        await sidecar.status("completed", 0)
        card = await h.card(job.id)
        assert card.web_url is None


async def test_the_list_pages_by_fifty_and_filters_by_date_repo_and_agent() -> None:
    from opendispatch.domain.job import Job
    from opendispatch.domain.job_spec import AgentKind, JobSpec

    config = Config.embedded(ownership=Ownership(admins=frozenset({ADMIN.id})))
    async with open_harness(config=config) as h:
        day = 86400.0 * 20500  # 2026-02-16, midnight UTC
        for i in range(60):
            spec = JobSpec(task=f"task {i}", agent=AgentKind.SHELL if i % 2 else AgentKind.CLAUDE, repo=f"acme/r{i % 3}")
            await h.store.add(Job.queued(f"j-{i:08x}", spec, CHANNEL, ALICE, at=day + i * 3600))
        async with browser(h) as client:
            first = await open_link(client, await private_link(h, ADMIN))
            rows = first.text.count('<tr class="job ')
            assert rows == 50 and "j-0000003b" in first.text and "j-00000009" not in first.text
            assert 'id="next-page"' in first.text and 'id="prev-page"' not in first.text
            second = await client.get("/jobs", params={"page": "2"})
            assert second.text.count('<tr class="job ') == 10 and "j-00000000" in second.text
            assert 'id="next-page"' not in second.text and 'id="prev-page"' in second.text
            one_day = await client.get("/jobs", params={"since": "2026-02-17", "until": "2026-02-17"})
            assert one_day.text.count('<tr class="job ') == 24  # hours 24..47
            assert "j-00000018" in one_day.text and "j-00000030" not in one_day.text
            narrowed = await client.get("/jobs", params={"repo": "acme/r1", "agent": "shell"})
            shown = narrowed.text.count('<tr class="job ')
            assert shown == len([i for i in range(60) if i % 3 == 1 and i % 2])


async def test_pages_redact_secrets_and_never_hold_the_job_token() -> None:
    secret = "sk-live-0123456789abcdef"
    async with open_harness(config=Config.embedded(secret_values=(secret,))) as h:
        job = await h.run('/od-run --agent shell "deploy"')
        sidecar = await h.sidecar()
        await sidecar.logs([f"using key {secret}", f"token {sidecar.token}"], seq=0)
        content = base64.b64encode(b"<html><script>alert(1)</script></html>").decode()
        answer = await sidecar.post(
            "/webhooks/artifact-file", {"jobId": job.id, "name": "report", "path": "out/report.html", "content": content}
        )
        assert answer.status_code == 200, answer.text
        await sidecar.post(
            "/webhooks/artifacts", {"jobId": job.id, "artifacts": [{"name": "report", "url": "out/report.html", "type": "file"}]}
        )
        await sidecar.status("completed", 0)
        await h.card(job.id)
        async with browser(h) as client:
            page = await open_link(client, accepted_url(h, job.id))
            assert secret not in page.text and "using key ***" in page.text
            assert sidecar.token not in page.text
            text = await client.get(f"/jobs/{job.id}/output.txt")
            assert secret not in text.text and sidecar.token not in text.text
            assert f'href="/jobs/{job.id}/artifacts/report"' in page.text
            kept = await client.get(f"/jobs/{job.id}/artifacts/report")
            assert kept.status_code == 200 and kept.content.startswith(b"<html>")
            assert kept.headers["content-type"] == "application/octet-stream"
            assert kept.headers["content-disposition"] == 'attachment; filename="report.html"'
            assert (await client.get(f"/jobs/{job.id}/artifacts/nothing")).status_code == 404
