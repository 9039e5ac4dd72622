"""A standby's listener: /health answered itself, everything else passed on to the leader as is."""

from __future__ import annotations

from functools import partial

import httpx
import trio
from quart_trio import QuartTrio

from opendispatch.adapters.webhook import serve_webhooks
from opendispatch.adapters.webhook.standby import serve_standby

CEILING_S = 10.0


def _leader_app() -> QuartTrio:
    app = QuartTrio("leader")

    @app.post("/webhooks/stream")
    async def stream() -> tuple[str, int]:
        from quart import request

        body = b""
        async for chunk in request.body:  # a chunked stream, as sidecars send
            body += chunk
        return f"leader got {len(body.splitlines())} records", 200

    @app.get("/health")
    async def health() -> tuple[str, int]:
        return "the leader's health", 200

    return app


async def test_health_is_the_standbys_own_and_requests_wait_for_a_leader() -> None:
    leader: list[str | None] = [None]
    with trio.fail_after(CEILING_S):
        async with trio.open_nursery() as nursery, httpx.AsyncClient() as http:
            url = await nursery.start(partial(serve_standby, "127.0.0.1:0", lambda: leader[0]))
            health = await http.get(url + "/health")
            assert health.status_code == 200 and health.json() == {"status": "ok", "role": "standby", "leader": False}
            waiting = await http.post(url + "/webhooks/logs", json={"jobId": "j-1", "logs": ["x"]})
            assert waiting.status_code == 503 and waiting.headers["retry-after"] == "1"

            leader[0] = await nursery.start(serve_webhooks, _leader_app(), "127.0.0.1:0")

            async def records():  # type: ignore[no-untyped-def]
                for n in range(50):
                    yield f'{{"seq": {n}, "lines": ["line {n}"]}}\n'.encode()

            passed = await http.post(url + "/webhooks/stream", content=records())
            assert passed.status_code == 200 and passed.text == "leader got 50 records"
            # A connection goes where its first request went: the client's kept-alive one now
            # reaches the leader; a new one (as health checks open) is the standby's.
            assert (await http.get(url + "/health")).text == "the leader's health"
            async with httpx.AsyncClient() as fresh:
                health = await fresh.get(url + "/health")
            assert health.json() == {"status": "ok", "role": "standby", "leader": True}
            leader[0] = "http://127.0.0.1:1"  # a leader that died before its row expired
            async with httpx.AsyncClient() as fresh:
                gone = await fresh.post(url + "/webhooks/logs", json={"jobId": "j-1", "logs": ["x"]})
            assert gone.status_code == 503 and "cannot be reached" in gone.text
            nursery.cancel_scope.cancel()
