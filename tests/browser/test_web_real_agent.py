"""A real Claude Code job's page in headless Chromium: the real sidecar in a local sprite runs
the pinned CLI against the scripted model (tests/real_agents.py); the page, opened from the
first reply's link while the job runs, shows its steps and then its card without a reload."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import trio

from opendispatch.domain.job import Conversation, User
from opendispatch.domain.messages import Inbound, JobAccepted
from real_agents import CEILING_S, open_real_agents

if TYPE_CHECKING:
    from browser.driver import Browser

ALICE = User("u1", "alice")
CHANNEL = Conversation("memory", "c1")


async def test_a_real_claude_code_jobs_page_shows_its_steps_and_card(agent_cli_bin: Path, browser: Browser) -> None:
    async with open_real_agents(agent_cli_bin, "tools") as stack:
        before = len(stack.chat.sent)
        await stack.running.dispatcher.handle(  # type: ignore[attr-defined]
            Inbound(CHANNEL, ALICE, f'/od-run --repo {stack.repo} -a claude "write the notes"')
        )
        accepted = next(s.message for s in stack.chat.sent[before:] if isinstance(s.message, JobAccepted))
        assert accepted.web_url is not None
        await browser.open(accepted.web_url)
        await browser.execute("window.__samePage = 'yes'")
        await browser.wait_text("#steps", "hello.py", timeout_s=CEILING_S)
        await browser.wait_text("#final-card", "Succeeded", timeout_s=CEILING_S)
        await browser.wait_text("#answer", "Done: notes.txt and hello.py are written.")
        await browser.wait_text("#files-changed", "notes.txt")
        assert await browser.execute("return window.__samePage") == "yes"
        steps = await browser.texts("#steps li.step-ok")
        assert any("echo hi > notes.txt" in step for step in steps), steps
        assert "$" in await browser.text("#cost")
        assert await browser.console_errors() == []
        # The whole page, top to bottom, for the README (docs/images/web-job-page.png).
        height = await browser.execute("return document.body.scrollHeight")
        await browser.execute("window.scrollTo(0, 0)")
        driver = browser.driver
        await trio.to_thread.run_sync(driver.set_window_size, 1280, min(int(height) + 140, 3000))
        await browser.screenshot("real-claude-job")
