"""The webhook server over real HTTP on 127.0.0.1: each endpoint and each error answer."""

from __future__ import annotations

import json
import re

import httpx
import pytest
import trio

from harness import open_harness
from opendispatch.domain.job import JobState
from webhook_paths import webhook_path  # noqa: F401  (autouse: every test on both paths)


async def test_health_answers_ok() -> None:
    async with open_harness() as h:
        response = await h.http.get("/health")
        assert response.status_code == 200 and response.json()["ok"] is True
        assert response.json()["status"] == "healthy"  # the seed's server's field, for its monitors
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", response.json()["timestamp"])


@pytest.mark.parametrize(
    "path,body,message",
    [
        ("/webhooks/logs", None, "JSON object"),
        ("/webhooks/logs", [], "JSON object"),
        ("/webhooks/logs", {"jobId": 5, "text": "x"}, "jobId must be a string"),
        ("/webhooks/logs", {"jobId": "J", "lines": "x"}, "lines must be a list of strings"),
        ("/webhooks/logs", {"jobId": "J", "lines": [1]}, "lines must be a list of strings"),
        ("/webhooks/logs", {"jobId": "J", "lines": ["x"], "seq": -1}, "seq must be at least 0"),
        ("/webhooks/logs", {"jobId": "J", "lines": ["x"], "seq": True}, "seq must be an integer"),
        ("/webhooks/logs", {"jobId": "J", "lines": ["x"], "seq": "1"}, "seq must be an integer"),
        ("/webhooks/logs", {"jobId": "J"}, "needs text"),
        ("/webhooks/status", {"jobId": "J", "status": "exploded"}, "status must be one of"),
        ("/webhooks/status", {"jobId": "J", "status": "failed", "exitCode": "1"}, "exitCode must be an integer"),
        ("/webhooks/status", {"jobId": "J", "status": "failed", "error": 5}, "error must be a string"),
        ("/webhooks/artifacts", {"jobId": "J", "artifacts": [None]}, "artifacts[0] must be an object"),
        ("/webhooks/artifacts", {"jobId": "J", "artifacts": {}}, "artifacts must be a list"),
    ],
)
async def test_malformed_bodies_get_400_with_a_message(path: str, body: object, message: str) -> None:
    async with open_harness() as h:
        job = await h.run('/od-run -a shell "x"')
        sidecar = await h.sidecar()
        if isinstance(body, dict) and body.get("jobId") == "J":
            body = {**body, "jobId": job.id}
        response = await sidecar.post(path, body)
        assert response.status_code == 400, response.text
        assert message in response.json()["error"]
        assert (await h.store.get(job.id)).state is JobState.STARTING
        assert await h.store.output(job.id) == []


async def test_invalid_json_gets_400() -> None:
    async with open_harness() as h:
        await h.run('/od-run -a shell "x"')
        sidecar = await h.sidecar()
        response = await h.http.post(
            "/webhooks/logs", content=b'{"jobId": ', headers={"Authorization": f"Bearer {sidecar.token}"}
        )
        assert response.status_code == 400 and "valid JSON" in response.json()["error"]


async def test_missing_bad_expired_or_foreign_tokens_and_unknown_jobs_all_get_the_same_401() -> None:
    async with open_harness() as h:
        job = await h.run('/od-run -a shell "x"')
        sidecar = await h.sidecar()
        tokens = h.running.dispatcher.runner.tokens
        body = {"jobId": job.id, "lines": ["x"]}
        answers = [
            await h.http.post("/webhooks/logs", json=body),
            await sidecar.post("/webhooks/logs", body, token="not-a-token"),
            await sidecar.post("/webhooks/logs", body, token=tokens.issue(job.id, expires_at=1)),
            await sidecar.post("/webhooks/logs", body, token=tokens.issue("j-99999999", expires_at=2**36)),
            await sidecar.post("/webhooks/logs", {"jobId": "j-99999999", "lines": ["x"]}),
            await h.http.post("/webhooks/logs", json=body, headers={"Authorization": f"Basic {sidecar.token}"}),
        ]
        assert [a.status_code for a in answers] == [401] * len(answers)
        assert len({a.text for a in answers}) == 1
        assert await h.store.output(job.id) == []


async def test_bodies_over_one_mebibyte_get_413() -> None:
    async with open_harness() as h:
        job = await h.run('/od-run -a shell "x"')
        sidecar = await h.sidecar()
        huge = {"jobId": job.id, "lines": ["x" * (1024 * 1024)]}
        response = await sidecar.post("/webhooks/logs", huge)
        assert response.status_code == 413
        with trio.fail_after(5):
            assert (await h.http.get("/health")).status_code == 200
        try:  # no Content-Length: the server stops reading at the limit, answers 413 and closes
            streamed = await h.http.post(
                "/webhooks/logs",
                content=_chunks(json.dumps(huge).encode()),
                headers={"Authorization": f"Bearer {sidecar.token}", "Content-Type": "application/json"},
                timeout=2,
            )
            assert streamed.status_code == 413
        except httpx.TransportError:
            pass  # the client was still writing when the server closed: refused all the same
        assert (await h.http.get("/health")).status_code == 200
        assert await h.store.output(job.id) == []
        # the connection that carried the refused body must not swallow the next request
        with trio.fail_after(5):
            assert (await sidecar.logs(["after"], seq=0)).status_code == 200


async def _chunks(data: bytes):  # type: ignore[no-untyped-def]
    for start in range(0, len(data), 65536):
        yield data[start : start + 65536]


async def test_writes_after_the_grace_period_get_409_but_repeats_within_it_are_fine(
    autojump_clock: trio.abc.Clock,
) -> None:
    async with open_harness() as h:
        job = await h.run('/od-run -a shell "x"')
        sidecar = await h.sidecar()
        await sidecar.logs(["done"], seq=0)
        await sidecar.status("completed", 0)
        await h.card(job.id)
        assert (await sidecar.status("completed", 0)).status_code == 200
        assert (await sidecar.logs(["done"], seq=0)).status_code == 200
        assert (await sidecar.logs(["late but kept"])).status_code == 200  # stored, as the docs say
        assert (await h.store.get(job.id)).state is JobState.SUCCEEDED  # a repeat changes nothing
        assert await h.store.output(job.id) == ["done", "late but kept"]
        await trio.sleep(120)
        assert (await sidecar.logs(["late"], seq=1)).status_code == 409
        assert (await sidecar.status("failed", 1)).status_code == 409
        assert await h.store.output(job.id) == ["done", "late but kept"]


async def test_unknown_paths_and_methods_answer_json() -> None:
    async with open_harness() as h:
        assert (await h.http.get("/nope")).status_code == 404
        response = await h.http.get("/webhooks/logs")
        assert response.status_code == 405 and response.json()["ok"] is False


async def test_concurrent_unsequenced_chunks_are_all_kept() -> None:
    async with open_harness() as h:
        job = await h.run('/od-run -a shell "x"')
        sidecar = await h.sidecar()

        async def post(n: int) -> None:
            response = await sidecar.post("/webhooks/logs", {"jobId": job.id, "text": f"chunk {n}"})
            assert response.status_code == 200

        async with trio.open_nursery() as nursery:
            for n in range(20):
                nursery.start_soon(post, n)
        await sidecar.status("completed", 0)
        card = await h.card(job.id)
        assert sorted(await h.store.output(job.id)) == sorted(f"chunk {n}" for n in range(20))
        assert card.total_lines == 20
        assert isinstance(h.http, httpx.AsyncClient)


async def test_the_openapi_description_is_served_and_names_every_endpoint() -> None:
    async with open_harness() as h:
        response = await h.http.get("/openapi.json")
        assert response.status_code == 200
        spec = response.json()
        assert spec["openapi"].startswith("3.")
        assert {"/health", "/webhooks/logs", "/webhooks/status", "/webhooks/artifacts"} <= set(spec["paths"])
        for path in ("/webhooks/logs", "/webhooks/status", "/webhooks/artifacts", "/webhooks/artifact-file"):
            assert set(spec["paths"][path]["post"]["responses"]) == {"200", "400", "401", "409", "413"}
        assert {"/webhooks/session/next", "/webhooks/session/state"} <= set(spec["paths"])
        assert set(spec["paths"]["/webhooks/credentials"]["post"]["responses"]) == {"200", "400", "401", "404", "409", "413", "502"}


@pytest.mark.parametrize("path", ["/webhooks/logs", "/webhooks/stream"])
async def test_a_lone_surrogate_in_a_line_is_stored_as_a_replacement_character(path: str, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """JSON may escape half a UTF-16 pair alone; SQLite cannot store it, and the connection dropped."""
    from opendispatch.adapters.sqlite import open_sqlite_store

    async with open_sqlite_store(tmp_path / "jobs.db") as store:
        async with open_harness(store=store) as h:
            job = await h.run('/od-run -a shell "x"')
            sidecar = await h.sidecar()
            if path == "/webhooks/logs":
                body = ('{"jobId": "%s", "seq": 0, "lines": ["a\\ud800b", "\\udfff"]}' % job.id).encode()
                url = path
            else:
                body = b'{"seq": 0, "lines": ["a\\ud800b", "\\udfff"]}\n'
                url = f"{path}?jobId={job.id}"
            answer = await h.http.post(url, content=body, headers={"Authorization": f"Bearer {sidecar.token}"})
            assert answer.status_code == 200, answer.text
            assert await store.output(job.id) == ["a\ufffdb", "\ufffd"]


async def test_a_request_head_that_never_ends_is_closed_on_either_path(monkeypatch: pytest.MonkeyPatch) -> None:
    """Trickled headers must not hold a connection (and its descriptor) for good: the fast
    path's head deadline, or hypercorn's keep-alive timer, which runs until a head is whole."""
    from urllib.parse import urlsplit

    from opendispatch.adapters.webhook import server
    from opendispatch.adapters.webhook.fast import SIDECAR_FRONT

    monkeypatch.setattr(server, "KEEP_ALIVE_S", 0.3)
    async with open_harness() as h:
        front = h.running.webhook_app.extensions.get(SIDECAR_FRONT)
        if front is not None:
            front.head_timeout_s = 0.3
        url = urlsplit(h.running.webhook_url)
        assert url.hostname is not None and url.port is not None
        client = await trio.open_tcp_stream(url.hostname, url.port)
        await client.send_all(b"GET /health HTTP/1.1\r\nX-Slow: ")
        with trio.fail_after(5):
            while await client.receive_some():
                pass  # (a 408 on the fast path) then the end of the connection
        await client.aclose()
        assert (await h.http.get("/health")).status_code == 200
