"""The web view in a real browser: headless Chromium against the real dispatcher on 127.0.0.1.

A job's page is opened from its chat link while the job runs; its lines and steps arrive
live; the final card appears without a reload; hostile output stays inert; `/jobs` filters;
an expired link is refused. Screenshots land in .ci/artifacts/screenshots (the run prints it).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

import pytest

from harness import ALICE, BOB, CHANNEL, Harness, open_harness, trio_wall_clock
from opendispatch.config import Config
from opendispatch.domain.job import User
from opendispatch.domain.messages import JobAccepted, Notice
from opendispatch.domain.ownership import Ownership
from opendispatch.domain.web_grants import GrantIssuer, WebGrant

if TYPE_CHECKING:
    from browser.driver import Browser

ADMIN = User("u-admin", "root")
HOSTILE = [
    "<script>document.title = 'pwned'</script>",
    '<img src="x" onerror="document.title = \'pwned\'">',
]


def ev(kind: str, **fields: Any) -> dict[str, Any]:
    return {"v": 1, "type": kind, **fields}


@pytest.fixture
async def h() -> AsyncIterator[Harness]:
    config = Config.embedded(ownership=Ownership(admins=frozenset({ADMIN.id})))
    async with open_harness(config=config) as harness:
        yield harness


def link_of(h: Harness, job_id: str) -> str:
    for sent in h.chat.sent:
        if isinstance(sent.message, JobAccepted) and sent.message.job.id == job_id:
            assert sent.message.web_url is not None
            return sent.message.web_url
    raise AssertionError("no first reply with a link")


async def od_web(h: Harness, user: User) -> str:
    before = len(h.chat.sent)
    await h.say("/od-web", user)
    notice = next(s.message for s in h.chat.sent[before:] if isinstance(s.message, Notice))
    assert notice.private
    return next(word for word in notice.text.split() if word.startswith("http"))


async def test_a_running_jobs_page_shows_lines_and_steps_live_then_the_final_card_without_reload(
    h: Harness, browser: Browser
) -> None:
    job = await h.run('/od-run -a claude --repo acme/api "fix the failing test"')
    sidecar = await h.sidecar()
    await sidecar.status("running")
    await sidecar.post(
        "/webhooks/logs",
        {"jobId": job.id, "seq": 0, "lines": ["$ git clone acme/api (branch main)", *HOSTILE], "events": []},
    )
    await browser.open(link_of(h, job.id))
    assert (await browser.current_url()).endswith(f"/jobs/{job.id}")  # the grant left the address bar
    await browser.wait_text("#output", "git clone acme/api")
    await browser.wait_text("#live-status", "Live")
    await browser.execute("window.__samePage = 'yes'")  # gone if the page reloads

    # Lines and steps stored now appear on the open page.
    answer = await sidecar.post(
        "/webhooks/logs",
        {
            "jobId": job.id,
            "seq": 1,
            "lines": ["this line arrived live"],
            "events": [
                ev("init", agent="claude", model="claude-sonnet-4-5", sessionId="s-1"),
                ev("tool_start", id="t1", tool="Bash", summary="npm test"),
            ],
        },
    )
    assert answer.status_code == 200, answer.text
    await browser.wait_text("#output", "this line arrived live")
    await browser.wait_text("#steps li.step-running", "Bash: npm test")
    await sidecar.post(
        "/webhooks/logs",
        {
            "jobId": job.id,
            "seq": 2,
            "lines": [],
            "events": [
                ev("tool_end", id="t1", tool="Bash", summary="npm test", ok=True, excerpt="3 passed"),
                ev("files_changed", files=[{"path": "src/app.py", "added": 3, "removed": 1}], summary="1 file changed"),
                ev(
                    "result", ok=True, answer="Fixed the **failing** test.\n\n<script>document.title='pwned'</script>",
                    costUsd=0.0412, inputTokens=15_000, outputTokens=1_500, turns=4, model="claude-sonnet-4-5",
                ),
            ],
        },
    )
    await browser.wait_text("#steps li.step-ok", "Bash: npm test")
    await sidecar.status("completed", 0)
    await h.card(job.id)

    await browser.wait_text("#final-card", "Succeeded")
    await browser.wait_text("#answer strong", "failing")  # markdown rendered
    await browser.wait_text("#cost", "$0.0412")
    await browser.wait_text("#files-changed", "src/app.py")
    assert await browser.execute("return window.__samePage") == "yes"  # no reload happened
    assert await browser.text("#job-state") == "succeeded"

    # Hostile output and answer are text on the page, never markup.
    lines = await browser.texts("#output .line")
    assert HOSTILE[0] in lines and HOSTILE[1] in lines
    assert "<script>document.title='pwned'</script>" in await browser.text("#answer")
    assert await browser.execute("return document.title") != "pwned"
    assert await browser.execute("return document.querySelectorAll('#output script, #output img, #answer script').length") == 0
    assert await browser.console_errors() == []
    cookies = await browser.cookies()
    assert all(cookie["httpOnly"] for cookie in cookies if cookie["name"].startswith("od_"))
    await browser.screenshot("job-page")


async def test_the_jobs_list_filters_and_links_to_each_job(h: Harness, browser: Browser) -> None:
    ok = await h.run('/od-run -a shell --repo acme/api "passes"')
    sidecar = await h.sidecar()
    await sidecar.status("completed", 0)
    await h.card(ok.id)
    bad = await h.run('/od-run -a shell --repo acme/web "fails"', user=BOB)
    sidecar = await h.sidecar()
    await sidecar.status("failed", 1, error="tests failed")
    await h.card(bad.id)

    await browser.open(await od_web(h, ADMIN))
    await browser.wait_count("#jobs tr.job", 2)
    await browser.screenshot("jobs-list")
    await browser.select("#filter-status", "failed")
    await browser.click("#apply-filters")
    await browser.wait_text("#jobs", bad.id)
    assert "status=failed" in await browser.current_url()
    rows = await browser.execute("return Array.from(document.querySelectorAll('#jobs tr.job')).map(r => r.dataset.jobId)")
    assert rows == [bad.id]
    await browser.click(f"#jobs tr[data-job-id='{bad.id}'] a")
    await browser.wait_text("#job-state", "failed")
    await browser.wait_text("#failure", "tests failed")

    # Alice's own link shows her job, not Bob's.
    await browser.open(await od_web(h, ALICE))
    await browser.wait_count("#jobs tr.job", 1)
    assert await browser.execute("return document.querySelector('#jobs tr.job').dataset.jobId") == ok.id

    await browser.open(h.running.webhook_url + "/usage")
    await browser.wait_count("svg.chart rect", 1)
    await browser.wait_text("#usage-by-user", "alice")
    await browser.screenshot("usage")


async def test_an_expired_or_forged_link_is_refused_with_a_plain_401_page(h: Harness, browser: Browser) -> None:
    job = await h.run('/od-run -a shell "x"')
    key = await h.store.secret("job-token-key", lambda: b"")
    expired = GrantIssuer(key).issue(
        WebGrant(user=ALICE, asked_in=CHANNEL, expires_at=int(trio_wall_clock()) - 1, job_id=job.id)
    )
    await browser.open(f"{h.running.webhook_url}/jobs/{job.id}?grant={expired}")
    await browser.wait_text("#refused-message", "expired or is not valid")
    assert await browser.status_of_last_navigation() == 401
    assert not [c for c in await browser.cookies() if c["name"].startswith("od_")]
    await browser.open(link_of(h, job.id).replace("grant=odw1.", "grant=odw1.9"))
    assert await browser.status_of_last_navigation() == 401
    await browser.screenshot("expired-link")
    sidecar = await h.sidecar()
    await sidecar.status("completed", 0)
    await h.card(job.id)
