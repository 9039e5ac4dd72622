"""10,000 generated requests against the real webhook server over loopback HTTP.

Valid and malformed bodies, bad and foreign tokens, unicode, control characters, huge and
deeply nested values. The server must answer every one with a documented 2xx/4xx within a
ceiling, and job B, for which no request carries a valid token, must not change at all.
A fixed seed keeps failures reproducible; `OPENDISPATCH_FUZZ_SEED` explores other corners.
"""

from __future__ import annotations

import json
import os
import random
from typing import Any

import httpx
import pytest
import trio

from harness import open_harness

REQUESTS = int(os.environ.get("OPENDISPATCH_FUZZ_REQUESTS", "10000"))
LOOPBACK_REQUESTS = 1_000
CONCURRENCY = 16
PATHS = ["/webhooks/logs", "/webhooks/status", "/webhooks/artifacts", "/webhooks/session/state"]
NASTY_STRINGS = [
    "", " ", "\x00", "\u202e", "😀" * 50, "\r\n", "\n\n\n", "null", "[]", "{}", "-1", "1e309", "\ud800".encode(
        "utf-8", "surrogatepass"
    ).decode("utf-8", "replace"), "A" * 5000, "<script>", "' OR 1=1 --", "$(rm -rf /)", "\t\x1b[31mred",
]
DOCUMENTED = {200, 204, 400, 401, 405, 409, 410, 413}


def random_value(rng: random.Random, depth: int = 0) -> Any:
    kind = rng.randrange(9 if depth < 3 else 6)
    if kind == 0:
        return None
    if kind == 1:
        return rng.choice([True, False])
    if kind == 2:
        return rng.choice([0, -1, 1, 2**31, 2**63, -(2**70), 3.5, float("1e300")])
    if kind in (3, 4, 5):
        return rng.choice(NASTY_STRINGS) if rng.random() < 0.5 else "".join(
            chr(rng.randrange(1, 0x3000)) for _ in range(rng.randrange(12))
        )
    if kind in (6, 7):
        return [random_value(rng, depth + 1) for _ in range(rng.randrange(4))]
    return {rng.choice(["jobId", "seq", "lines", "text", "x"]): random_value(rng, depth + 1) for _ in range(3)}


def random_body(rng: random.Random, job_ids: list[str]) -> Any:
    """Mostly contract-shaped bodies with one thing wrong (or nothing), sometimes pure noise."""
    job_id = rng.choice([*job_ids, "j-00000000", "", random_value(rng)])
    shape = rng.randrange(10)
    if shape == 0:
        return random_value(rng)
    body: dict[str, Any] = {"jobId": job_id}
    if shape <= 4:
        body.update(rng.choice([{"text": rng.choice(NASTY_STRINGS)}, {"lines": [rng.choice(NASTY_STRINGS)]}]))
        if rng.random() < 0.6:
            body["seq"] = rng.choice([0, 1, 2, rng.randrange(10**6), -3, "1", None, True])
    elif shape <= 7:
        body.update(status=rng.choice(["running", "completed", "failed", "cancelled", "exploded", 3, None]))
        body.update(exitCode=rng.choice([0, 1, 137, None, "1", 1.5, 2**60]), error=rng.choice(NASTY_STRINGS + [7]))
    else:
        body["artifacts"] = rng.choice([[], [None], [{"name": "PR", "url": "https://x/pull/1"}], "x", [random_value(rng)]])
    if rng.random() < 0.2:
        key = rng.choice(list(body))
        body[key] = random_value(rng)
    return body


def encode(rng: random.Random, body: Any) -> bytes:
    roll = rng.random()
    if roll < 0.03:
        return b'{"jobId": "j-' + bytes(rng.randrange(256) for _ in range(20))
    if roll < 0.04:
        return b"[" * 20_000 + b"]" * 20_000  # deep nesting
    if roll < 0.045:
        return json.dumps({"jobId": "x", "lines": ["y" * 1024] * 1100}).encode()  # > 1 MiB
    return json.dumps(body, allow_nan=True).encode("utf-8", "surrogatepass")


@pytest.mark.parametrize(
    "transport,requests",
    [("in-process ASGI", REQUESTS), ("loopback HTTP", LOOPBACK_REQUESTS)],
)
async def test_generated_requests_never_get_a_5xx_or_change_an_unauthorised_job(transport: str, requests: int) -> None:
    """10,000 through the app in-process (fast), plus 1,000 over real sockets for connection bugs."""
    rng = random.Random(int(os.environ.get("OPENDISPATCH_FUZZ_SEED", "20261124")))
    async with open_harness() as h:
        client = h.http
        if transport == "in-process ASGI":
            client = httpx.AsyncClient(transport=httpx.ASGITransport(app=h.running.webhook_app), base_url="http://fuzz")
        job_a = await h.run('/od-run -a shell "a"')
        sidecar_a = await h.sidecar()
        job_b = await h.run('/od-run -a shell "b"')
        sidecar_b = await h.sidecar()
        tokens = h.running.dispatcher.runner.tokens
        before_b = await h.store.get(job_b.id)
        assert before_b.sprite_id == sidecar_b.sprite.id
        token_choices = [
            sidecar_a.token,
            sidecar_a.token,
            "",
            "garbage",
            tokens.issue(job_b.id, expires_at=1),  # expired token for B
            sidecar_b.token[:-2] + "AA",  # tampered token for B
            sidecar_a.token.replace("odj1", "odj2"),
        ]
        statuses: dict[int, int] = {}
        rng_get = random.Random(rng.random())
        send, receive = trio.open_memory_channel[tuple[str, bytes, str]](CONCURRENCY)

        async def produce() -> None:
            async with send:
                for _ in range(requests):
                    if rng.random() < 0.3:  # authorised for A: exercises the paths past the token check
                        body_value = random_body(rng, [job_a.id])
                        if isinstance(body_value, dict):
                            body_value["jobId"] = job_a.id
                        body, header = encode(rng, body_value), f"Bearer {sidecar_a.token}"
                    else:
                        body = encode(rng, random_body(rng, [job_a.id, job_b.id]))
                        token = rng.choice(token_choices)
                        header = rng.choice([f"Bearer {token}", token, f"Basic {token}", "Bearer"]).strip() or "none"
                    await send.send((rng.choice(PATHS), body, header))

        async def consume() -> None:
            async for path, body, header in receive:
                with trio.move_on_after(10) as hang:  # no request may hang
                    if path == "/webhooks/session/state" and body[:1] == b"{" and len(body) % 3 == 0:
                        # the session routes also take query strings: fuzz them with GETs too
                        target = rng_get.choice(["/webhooks/session/next", "/webhooks/session/state"])
                        response = await client.get(
                            target,
                            params={"sessionId": body[:40].decode("latin-1"), "jobId": body[:30].decode("latin-1"),
                                    "waitS": rng_get.choice(["0", "0.01", "-1", "1e9", "nan", "x"]),
                                    "running": rng_get.choice(["", job_a.id, "j-00000000"])},
                            headers={"Authorization": header},
                        )
                    else:
                        response = await client.post(
                            path, content=body, headers={"Authorization": header, "Content-Type": "application/json"}
                        )
                assert not hang.cancelled_caught, f"hung: {path} {len(body)} bytes {body[:120]!r} {header[:20]}"
                statuses[response.status_code] = statuses.get(response.status_code, 0) + 1
                assert response.status_code in DOCUMENTED, (path, body[:200], response.status_code, response.text)
                if response.status_code != 204:
                    assert response.headers["content-type"].startswith("application/json")

        async with trio.open_nursery() as nursery:
            nursery.start_soon(produce)
            for _ in range(CONCURRENCY):
                nursery.start_soon(consume)
        receive.close()

        assert sum(statuses.values()) == requests
        assert all(statuses.get(code, 0) > requests // 50 for code in (200, 400, 401)), statuses
        after_b = await h.store.get(job_b.id)
        assert after_b == before_b, (before_b, after_b)
        assert await h.store.output(job_b.id) == []
        assert (await h.http.get("/health")).status_code == 200
