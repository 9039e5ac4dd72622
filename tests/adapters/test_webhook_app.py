"""The Quart routes, which embedders serve with their own ASGI server, answer as the front does."""

from __future__ import annotations

from opendispatch.adapters.webhook.app import build_webhook_app
from opendispatch.domain.errors import InvalidToken
from opendispatch.domain.sidecar import ArtifactFile, ArtifactReport, LogBatch, StatusReport, TranscriptPart


class RefusingSink:
    """Every token is bad: each report gets the 401 answer."""

    async def accept_logs(self, authorization: str | None, batch: LogBatch, *, arrived_at: float | None = None) -> int | None:
        raise InvalidToken()

    async def accept_status(self, authorization: str | None, report: StatusReport) -> None:
        raise InvalidToken()

    async def accept_artifacts(self, authorization: str | None, report: ArtifactReport) -> None:
        raise InvalidToken()

    async def accept_transcript(self, authorization: str | None, part: TranscriptPart) -> None:
        raise InvalidToken()

    async def accept_artifact_file(self, authorization: str | None, file: ArtifactFile) -> None:
        raise InvalidToken()


async def test_a_refused_token_is_answered_with_its_challenge_and_one_content_type() -> None:
    client = build_webhook_app(RefusingSink()).test_client()
    response = await client.post("/webhooks/logs", json={"jobId": "j-1", "lines": ["x"]})
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == 'Bearer realm="open-dispatch"'
    assert response.headers.getlist("Content-Type") == ["application/json"]
    assert (await response.get_json())["ok"] is False


async def test_a_too_large_body_closes_the_connection() -> None:
    client = build_webhook_app(RefusingSink()).test_client()
    response = await client.post("/webhooks/status", data=b"x" * (1024 * 1024 + 1))
    assert response.status_code == 413
    assert response.headers["Connection"] == "close"
