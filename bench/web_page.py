"""How long a job page of the web view takes to load for a job with many lines (not a test).

Stores one finished job with `--lines` lines (in batches of 100, as a streaming sidecar
stores them) in a fresh SQLite store, serves the real dispatcher on 127.0.0.1, and measures:

- the server: `GET /jobs/<id>` answered in full, timed by the client (httpx), `--repeat` times;
- the browser: headless Chromium (Debian's, through chromedriver) opening the page from its
  chat link, by Navigation Timing (responseEnd, domContentLoaded, loadEventEnd), when the
  browser and selenium are installed (the test set-up installs both).

    bench/web_page --lines 100000
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx
import trio

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from opendispatch.adapters.memory.chat import MemoryChat  # noqa: E402
from opendispatch.adapters.memory.sprites import FakeSprites  # noqa: E402
from opendispatch.adapters.sqlite import open_sqlite_store  # noqa: E402
from opendispatch.bootstrap import open_dispatcher  # noqa: E402
from opendispatch.config import Config  # noqa: E402
from opendispatch.domain.job import Conversation, Job, User  # noqa: E402
from opendispatch.domain.job_spec import AgentKind, JobSpec  # noqa: E402


def _browser_timing(url: str) -> dict[str, float] | None:
    if not (shutil.which("chromium") and shutil.which("chromedriver")):
        return None
    try:
        from browser.driver import start_chromium  # tests/browser/driver.py
    except ImportError:
        return None
    with tempfile.TemporaryDirectory() as profile:
        driver = start_chromium(Path(profile))
        try:
            driver.get(url)  # the grant is traded for a cookie, then the page loads
            driver.get(url.split("?")[0])  # a second, warm load of the clean URL
            timing = driver.execute_script(
                "const n = performance.getEntriesByType('navigation')[0];"
                "return {response: n.responseEnd, dom: n.domContentLoadedEventEnd, load: n.loadEventEnd,"
                " lines: document.querySelectorAll('#output .line').length};"
            )
            return {key: float(value) for key, value in timing.items()}
        finally:
            driver.quit()


async def main(lines: int, repeat: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        async with open_sqlite_store(Path(tmp) / "jobs.db") as store:
            spec = JobSpec(task="print many lines", agent=AgentKind.SHELL, repo="acme/api")
            user = User("u1", "alice")
            job = Job.queued("j-0000beef", spec, Conversation("memory", "c1"), user, at=time.time())
            job = job.starting(at=time.time()).running().succeeded(at=time.time())
            await store.add(job)
            batch = 100
            for seq in range(0, lines // batch):
                await store.append_output(job.id, seq, [f"line {seq * batch + i}: " + "x" * 60 for i in range(batch)])
            async with open_dispatcher(
                Config.embedded(), chat=MemoryChat(), sprites=FakeSprites(), store=store, bind="127.0.0.1:0"
            ) as running:
                assert running.web_links is not None
                url = running.web_links.for_job(job)
                async with httpx.AsyncClient(timeout=60) as client:
                    traded = await client.get(url)
                    assert traded.status_code == 303, traded.status_code
                    clean = running.webhook_url + traded.headers["location"]
                    times = []
                    size = 0
                    for _ in range(repeat):
                        start = time.perf_counter()
                        page = await client.get(clean)
                        times.append((time.perf_counter() - start) * 1000)
                        size = len(page.content)
                        assert page.status_code == 200
                shown = page.text.count('class="line"')
                print(f"job with {lines:,} lines; the page shows the last {shown:,}, {size / 1024:.0f} KiB of HTML")
                print(
                    f"server: GET /jobs/<id> in {statistics.median(times):.1f} ms median, "
                    f"{min(times):.1f} min, {max(times):.1f} max over {repeat} requests"
                )
                timing = await trio.to_thread.run_sync(_browser_timing, url)
                if timing is None:
                    print("browser: skipped (chromium, chromedriver or selenium missing)")
                else:
                    print(
                        f"browser (headless Chromium, warm): response end {timing['response']:.0f} ms, "
                        f"DOM ready {timing['dom']:.0f} ms, load event {timing['load']:.0f} ms, "
                        f"{timing['lines']:.0f} lines on the page"
                    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lines", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=20)
    args = parser.parse_args()
    os.environ.setdefault("SE_OFFLINE", "true")
    trio.run(main, args.lines, args.repeat)
