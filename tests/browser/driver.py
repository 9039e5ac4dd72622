"""Headless Chromium for the browser tests, driven by Selenium through Debian's chromedriver.

`start_chromium` starts it (sync, blocking: Selenium is sync). `Browser` wraps the driver for
Trio tests: every method is async and runs its Selenium calls in a worker thread
(`trio.to_thread.run_sync`), one call at a time, so a test never blocks the event loop that
serves the pages it loads. Waits (`wait_text`, `wait_count`) poll a condition with Selenium's
`WebDriverWait` in that thread; nothing sleeps. The raw driver is `Browser.driver` for anything
not wrapped: call it with `await trio.to_thread.run_sync(lambda: b.driver....)`.

Nothing here touches the network: the driver is the one given (`CHROMEDRIVER`), never one found
or fetched by Selenium Manager, SE_OFFLINE=true is set, and the browser's own background
traffic (component updates, sync, QUIC, first-run) is switched off by its flags.
"""

from __future__ import annotations

import os
import re
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal, TypeVar

import trio
from selenium import webdriver
from selenium.common.exceptions import StaleElementReferenceException, TimeoutException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select, WebDriverWait

#: A page may replace what a wait looks at while it reads it (the web view swaps in the final
#: card again when the agent's summary arrives): the wait tries again, it does not fail.
_REPLACED = (StaleElementReferenceException,)

REPO = Path(__file__).resolve().parents[2]
CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
APT_INSTALL = "sudo apt-get install -y chromium chromium-driver"
# Kept by CI as artifacts (.gitignore'd): `<test name>-<name>.png`.
SCREENSHOTS = REPO / ".ci" / "artifacts" / "screenshots"
WINDOW = (1280, 900)
CHROMIUM_FLAGS = (
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    f"--window-size={WINDOW[0]},{WINDOW[1]}",
)

# For the run's terminal summary (tests/browser/conftest.py).
screenshots_taken: list[Path] = []
startup_seconds: list[float] = []

T = TypeVar("T")


def missing_chromium() -> str | None:
    """What is missing to run the browser tests, or None."""
    missing = [str(path) for path in (CHROMIUM, CHROMEDRIVER) if not path.is_file()]
    return f"{' and '.join(missing)} missing" if missing else None


def start_chromium(user_data_dir: Path) -> webdriver.Chrome:
    """Headless Chromium with a fresh profile in `user_data_dir`; blocks about a second."""
    os.environ["SE_OFFLINE"] = "true"  # Selenium Manager, were it ever reached, stays offline
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in (*CHROMIUM_FLAGS, f"--user-data-dir={user_data_dir}"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    with warnings.catch_warnings():
        # Talk to chromedriver on 127.0.0.1 directly even when http_proxy is set (CI machines).
        warnings.simplefilter("ignore", DeprecationWarning)
        options.ignore_local_proxy_environment_variables()
    service = Service(
        executable_path=str(CHROMEDRIVER), env={**os.environ, "SE_OFFLINE": "true"}
    )
    started = time.monotonic()
    driver = webdriver.Chrome(options=options, service=service)
    startup_seconds.append(time.monotonic() - started)
    return driver


def _file_part(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("_") or "_"


class Browser:
    """One headless Chromium for one test; see the module docstring."""

    def __init__(self, driver: webdriver.Chrome, test_name: str) -> None:
        self.driver = driver
        self.test_name = test_name
        self._lock = trio.Lock()
        self._log: list[dict[str, Any]] = []

    async def _run(self, call: Callable[[], T]) -> T:
        async with self._lock:  # a WebDriver session takes one command at a time
            return await trio.to_thread.run_sync(call)

    async def open(self, url: str) -> None:
        """Navigate and wait for the page's load event."""
        await self._run(lambda: self.driver.get(url))

    async def current_url(self) -> str:
        return await self._run(lambda: self.driver.current_url)

    async def status_of_last_navigation(self) -> int | None:
        """The HTTP status of the document loaded last (Navigation Timing's responseStatus);
        None when the browser does not say (0 for pages not loaded over HTTP)."""
        script = (
            "const e = performance.getEntriesByType('navigation')[0];"
            " return e && typeof e.responseStatus === 'number' ? e.responseStatus : null;"
        )
        status = await self.execute(script)
        return status if isinstance(status, int) else None

    async def text(self, css: str) -> str:
        """The rendered text of the first element matching `css` (NoSuchElementException if
        none)."""
        return await self._run(lambda: self.driver.find_element(By.CSS_SELECTOR, css).text)

    async def texts(self, css: str) -> list[str]:
        """The rendered texts of every element matching `css`, in document order."""
        return await self._run(
            lambda: [e.text for e in self.driver.find_elements(By.CSS_SELECTOR, css)]
        )

    async def wait_text(self, css: str, substring: str, timeout_s: float = 10) -> str:
        """Wait until an element matching `css` has `substring` in its text; returns that text.
        On timeout, AssertionError naming the texts there were."""

        def matching(driver: webdriver.Chrome) -> tuple[str] | Literal[False]:
            for element in driver.find_elements(By.CSS_SELECTOR, css):
                text = element.text
                if substring in text:
                    return (text,)  # truthy even when the text is ""
            return False

        def wait() -> str:
            try:
                (found,) = WebDriverWait(
                    self.driver, timeout_s, poll_frequency=0.05, ignored_exceptions=_REPLACED
                ).until(
                    matching
                )
                return found
            except TimeoutException:
                seen = [e.text for e in self.driver.find_elements(By.CSS_SELECTOR, css)]
                raise AssertionError(
                    f"no {css!r} with text {substring!r} after {timeout_s}s; there were {seen!r}"
                ) from None

        return await self._run(wait)

    async def wait_count(self, css: str, n: int, timeout_s: float = 10) -> int:
        """Wait until at least `n` elements match `css`; returns how many do. On timeout,
        AssertionError."""

        def enough(driver: webdriver.Chrome) -> tuple[int] | Literal[False]:
            count = len(driver.find_elements(By.CSS_SELECTOR, css))
            return (count,) if count >= n else False  # truthy even when n is 0

        def wait() -> int:
            try:
                (count,) = WebDriverWait(
                    self.driver, timeout_s, poll_frequency=0.05, ignored_exceptions=_REPLACED
                ).until(
                    enough
                )
                return count
            except TimeoutException:
                seen = len(self.driver.find_elements(By.CSS_SELECTOR, css))
                raise AssertionError(
                    f"{seen} {css!r} after {timeout_s}s, wanted at least {n}"
                ) from None

        return await self._run(wait)

    async def click(self, css: str) -> None:
        await self._run(lambda: self.driver.find_element(By.CSS_SELECTOR, css).click())

    async def fill(self, css: str, text: str) -> None:
        """Replace the value of the input or textarea matching `css` by typing `text`."""

        def fill() -> None:
            element = self.driver.find_element(By.CSS_SELECTOR, css)
            element.clear()
            element.send_keys(text)

        await self._run(fill)

    async def select(self, css: str, value: str) -> None:
        """Choose the <option value=...> of the <select> matching `css`."""
        await self._run(
            lambda: Select(self.driver.find_element(By.CSS_SELECTOR, css)).select_by_value(value)
        )

    async def execute(self, js: str, *args: Any) -> Any:
        """Run `js` as a function body in the page (`return` gives the result back)."""
        return await self._run(lambda: self.driver.execute_script(js, *args))

    async def screenshot(self, name: str) -> Path:
        """Save the viewport as `.ci/artifacts/screenshots/<test name>-<name>.png`."""
        path = SCREENSHOTS / f"{_file_part(self.test_name)}-{_file_part(name)}.png"

        def save() -> None:
            SCREENSHOTS.mkdir(parents=True, exist_ok=True)
            if not self.driver.save_screenshot(str(path)):
                raise AssertionError(f"screenshot {path} was not written")

        await self._run(save)
        screenshots_taken.append(path)
        return path

    async def console_log(self) -> list[dict[str, Any]]:
        """Every browser log entry so far ({'level', 'message', 'source', 'timestamp'});
        Chromium hands each out once, so they are kept here."""
        entries: list[dict[str, Any]] = await self._run(
            lambda: self.driver.get_log("browser")  # type: ignore[no-untyped-call]
        )
        self._log.extend(entries)
        return list(self._log)

    async def console_errors(self) -> list[str]:
        """The messages of the browser log entries of level SEVERE so far: console.error,
        uncaught exceptions, failed loads, Content-Security-Policy refusals."""
        return [e["message"] for e in await self.console_log() if e.get("level") == "SEVERE"]

    async def cookies(self) -> list[dict[str, Any]]:
        return await self._run(lambda: list(self.driver.get_cookies()))
