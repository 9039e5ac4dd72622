"""The browser-test infrastructure works: headless Chromium loads pages from a server in the
test, runs same-origin scripts under a strict Content-Security-Policy (the one the jobs web view
is to be served with), refuses inline ones, and the `Browser` wrapper's calls do what they say.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest
import trio

from browser.site import Resource, Site, serve_site

if TYPE_CHECKING:
    from browser.driver import Browser

CSP = ("Content-Security-Policy", "default-src 'self'")
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
JS = "text/javascript; charset=utf-8"

PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>smoke</title>
<script src="/app.js" defer></script></head>
<body><h1>Open-Dispatch browser smoke</h1><ul id="lines"></ul>{extra}</body></html>"""

APP_JS = """
setTimeout(() => {
  const line = document.createElement('li');
  line.textContent = 'same-origin script ran under the CSP';
  document.getElementById('lines').append(line);
}, 200);
"""

INLINE = """<script>
document.getElementById('lines').insertAdjacentHTML('beforeend', '<li>inline script ran</li>');
</script>"""

FORM = """<!doctype html>
<html><head><meta charset="utf-8"><title>form</title>
<script src="/form.js" defer></script></head>
<body><form id="job"><input id="task" name="task" value="placeholder">
<select id="agent"><option value="claude">Claude</option><option value="shell">shell</option>
</select><button id="go" type="button">go</button></form><ul id="out"></ul></body></html>"""

FORM_JS = """
document.getElementById('go').addEventListener('click', () => {
  const line = document.createElement('li');
  line.textContent = document.getElementById('agent').value + ': ' +
    document.getElementById('task').value;
  document.getElementById('out').append(line);
  document.cookie = 'clicked=yes; path=/';
});
"""

SITE = {
    "/": Resource(PAGE.format(extra="")),
    "/inline.html": Resource(PAGE.format(extra=INLINE)),
    "/app.js": Resource(APP_JS, JS),
    "/form.html": Resource(FORM, headers=[("Set-Cookie", "session=abc; Path=/; HttpOnly")]),
    "/form.js": Resource(FORM_JS, JS),
    "/favicon.ico": Resource(b"", "image/x-icon", 204),
}


async def _serve(nursery: trio.Nursery) -> Site:
    return await serve_site(nursery, SITE, headers=[CSP])


async def test_same_origin_script_runs_under_the_csp(browser: Browser, nursery: trio.Nursery) -> None:
    site = await _serve(nursery)
    await browser.open(f"{site.url}/")
    assert await browser.status_of_last_navigation() == 200
    assert await browser.text("h1") == "Open-Dispatch browser smoke"

    line = await browser.wait_text("#lines li", "same-origin script ran")

    assert line == "same-origin script ran under the CSP"
    shot = await browser.screenshot("loaded")
    assert shot.name == "test_same_origin_script_runs_under_the_csp-loaded.png"
    assert shot.read_bytes()[:8] == PNG_SIGNATURE
    assert await browser.console_errors() == []
    assert "/app.js" in site.requested


async def test_inline_script_is_refused_by_the_csp(browser: Browser, nursery: trio.Nursery) -> None:
    site = await _serve(nursery)
    await browser.open(f"{site.url}/inline.html")
    # The deferred same-origin script runs after the inline one would have: once its line is
    # there, the inline line would be too, had it run.
    await browser.wait_text("#lines li", "same-origin script ran")

    assert await browser.texts("#lines li") == ["same-origin script ran under the CSP"]
    errors = await browser.console_errors()
    assert any("Content Security Policy" in e and "inline script" in e for e in errors), errors


async def test_the_browser_wrapper_api(browser: Browser, nursery: trio.Nursery) -> None:
    site = await _serve(nursery)
    await browser.open(f"{site.url}/form.html")
    assert await browser.current_url() == f"{site.url}/form.html"

    await browser.fill("#task", "run the tests")
    await browser.select("#agent", "shell")
    await browser.click("#go")
    await browser.click("#go")

    assert await browser.wait_count("#out li", 2) == 2
    assert await browser.texts("#out li") == ["shell: run the tests"] * 2
    assert await browser.wait_count("#nothing", 0) == 0
    with pytest.raises(AssertionError, match="no '#out li' with text 'never'"):
        await browser.wait_text("#out li", "never", timeout_s=0.3)
    assert await browser.execute("return document.title + arguments[0]", "!") == "form!"
    cookies = {c["name"]: c for c in await browser.cookies()}
    assert cookies["clicked"]["value"] == "yes"
    assert cookies["session"]["httpOnly"] is True

    await browser.open(f"{site.url}/nowhere")
    assert await browser.status_of_last_navigation() == 404
    assert any("404" in e for e in await browser.console_errors())
