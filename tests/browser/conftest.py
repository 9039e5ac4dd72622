"""The `browser` fixture: a fresh headless Chromium per test (about 1 s to start here), wrapped
in `Browser` (tests/browser/driver.py), whose methods are async. Without /usr/bin/chromium and
/usr/bin/chromedriver the test fails under CI=true (the session fixture `chromium`, in
tests/conftest.py, installs them there first) and skips elsewhere, naming the apt-get command.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Generator, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

import pytest

if TYPE_CHECKING:
    from browser.driver import Browser

_CI = os.environ.get("CI", "").lower() == "true"


def _unavailable(reason: str) -> NoReturn:
    if _CI:
        pytest.fail(f"browser tests need Chromium under CI=true: {reason}", pytrace=False)
    pytest.skip(reason)


@pytest.fixture
def browser(request: pytest.FixtureRequest, chromium: str) -> Iterator[Browser]:
    try:
        from browser import driver
    except ImportError as error:  # selenium: the `test` extra
        _unavailable(f"{error}; run: .venv/bin/python -m pip install -e '.[test]'")
    missing = driver.missing_chromium()
    if missing:
        _unavailable(f"{missing}{f' ({chromium})' if chromium else ''}; run: {driver.APT_INSTALL}")
    profile = Path(tempfile.mkdtemp(prefix="od-chromium-"))
    try:
        chrome = driver.start_chromium(profile)
        try:
            yield driver.Browser(chrome, request.node.name)
            report = getattr(request.node, "_browser_call_report", None)
            if report is not None and report.failed:
                # What the page looked like when the test failed, kept with the artifacts.
                path = driver.SCREENSHOTS / f"{driver._file_part(request.node.name)}-failed.png"
                path.parent.mkdir(parents=True, exist_ok=True)
                try:
                    if chrome.save_screenshot(str(path)):
                        driver.screenshots_taken.append(path)
                except Exception:  # the browser may be what failed
                    pass
        finally:
            chrome.quit()
    finally:
        shutil.rmtree(profile, ignore_errors=True)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    if report.when == "call":
        item._browser_call_report = report  # type: ignore[attr-defined]
    return report


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Where the screenshots are (CI keeps the folder as artifacts) and how the browser
    started."""
    try:
        from browser import driver
    except ImportError:
        return
    if not driver.startup_seconds and not driver.screenshots_taken:
        return
    starts = driver.startup_seconds
    timing = (
        f"; {len(starts)} browser start(s), {sum(starts) / len(starts):.2f}s mean, "
        f"{max(starts):.2f}s max"
        if starts
        else ""
    )
    terminalreporter.write_line(
        f"browser screenshots: {len(driver.screenshots_taken)} in {driver.SCREENSHOTS}{timing}"
    )
