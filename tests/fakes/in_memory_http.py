"""An httpx client whose requests go straight to a fake's ASGI app, in this process.

No socket, no server task: a request is a few awaits on the test's own trio loop, so tests
that use it run on trio's autojump clock (`trio.testing.MockClock(autojump_threshold=0)`),
where a loopback server would let the clock jump past every HTTP timeout while the kernel
moved the bytes. The fakes' apps read `trio.current_time()`, so their windows, token
lifetimes and rate limits follow the same clock.
"""

from __future__ import annotations

from typing import Any

import httpx

#: The address the in-memory fakes answer at (any host: no request leaves the process).
IN_MEMORY_URL = "http://fake.invalid"


def in_memory_client(app: Any, *, base_url: str = IN_MEMORY_URL, **options: Any) -> httpx.AsyncClient:
    """A client for `app` (an ASGI app, e.g. a fake's QuartTrio app) without a network."""
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=base_url, **options)
