"""Request bodies → domain values, strictly, with messages a sidecar author can act on.

The seed's Node sidecar sends `{jobId, text}`, `{jobId, status, exitCode, error}` and
`{jobId, artifacts}`; ours adds `seq`, `lines` and `stage`. Anything else (wrong types,
`null`, booleans posing as numbers) is a 400 here and never reaches the application.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from typing import Any

import attrs

from ...domain.job import MAX_KEPT_ARTIFACT_BYTES, Artifact
from ...domain.sidecar import ArtifactFile, ArtifactReport, LogBatch, ReportedStatus, StatusReport, TranscriptPart
from .agent_events_wire import agent_events

MAX_LINES_PER_BATCH = 100_000
MAX_ARTIFACTS = 100
MAX_FIELD_CHARS = 4096


class BadRequest(ValueError):
    """The body is not what the contract says; `str()` is the client's error message."""


#: A `\\uD800`-style escape of a UTF-16 surrogate: JSON allows one alone, UTF-8 cannot hold it.
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89abcdefABCDEF]")
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


def loads(raw: bytes) -> Any:
    """Parse a JSON body; a lone surrogate in it becomes U+FFFD.

    JSON may escape half of a UTF-16 pair alone (`"\\ud800"`); Python keeps it in the string,
    and the first UTF-8 encode (SQLite, a chat API) then fails, which dropped the connection.
    Only bodies with such an escape are walked, so the usual body costs one byte scan.
    """
    value = json.loads(raw)
    if _SURROGATE_ESCAPE.search(raw):
        value = _without_lone_surrogates(value)
    return value


def _without_lone_surrogates(value: Any) -> Any:
    if isinstance(value, str):
        return _LONE_SURROGATE.sub("\ufffd", value)
    if isinstance(value, list):
        return [_without_lone_surrogates(item) for item in value]
    if isinstance(value, dict):
        return {_without_lone_surrogates(key): _without_lone_surrogates(item) for key, item in value.items()}
    return value


def _object(body: Any) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise BadRequest("the body must be a JSON object")
    return body


def job_id_of(body: Any) -> object:
    """The claimed job id, unchecked: authorisation decides what it is worth."""
    return body.get("jobId") if isinstance(body, dict) else None


def _string(body: dict[str, Any], key: str, *, required: bool = True, default: str = "") -> str:
    value = body.get(key)
    if value is None and not required:
        return default
    if not isinstance(value, str):
        raise BadRequest(f"{key} must be a string")
    return value


def _optional_int(body: dict[str, Any], key: str, *, minimum: int | None = None) -> int | None:
    value = body.get(key)
    if value is None:
        return None
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise BadRequest(f"{key} must be an integer")
    if minimum is not None and value < minimum:
        raise BadRequest(f"{key} must be at least {minimum}")
    if abs(value) > 2**53:
        raise BadRequest(f"{key} is out of range")
    return value


def log_batch(body: Any) -> LogBatch:
    data = _object(body)
    job_id = _string(data, "jobId")
    seq = _optional_int(data, "seq", minimum=0)
    events = agent_events(data.get("events"))
    if "lines" in data and data["lines"] is not None:
        return LogBatch(job_id=job_id, lines=_lines(data["lines"]), seq=seq, events=events)
    if "text" not in data:
        if events:
            return LogBatch(job_id=job_id, lines=(), seq=seq, events=events)
        raise BadRequest("a log batch needs text (a string) or lines (a list of strings)")
    batch = LogBatch.from_text(job_id, _string(data, "text"), seq=seq)
    return attrs.evolve(batch, events=events) if events else batch


def _lines(lines: Any) -> tuple[str, ...]:
    if not isinstance(lines, list) or not all(isinstance(line, str) for line in lines):
        raise BadRequest("lines must be a list of strings")
    if len(lines) > MAX_LINES_PER_BATCH:
        raise BadRequest(f"at most {MAX_LINES_PER_BATCH} lines per batch")
    return tuple(lines)


def status_report(body: Any) -> StatusReport:
    data = _object(body)
    job_id = _string(data, "jobId")
    raw_status = _string(data, "status")
    try:
        status = ReportedStatus(raw_status)
    except ValueError:
        allowed = ", ".join(s.value for s in ReportedStatus)
        raise BadRequest(f"status must be one of {allowed}") from None
    error = _string(data, "error", required=False)[:MAX_FIELD_CHARS]
    stage = data.get("stage")
    if stage is not None and not isinstance(stage, str):
        raise BadRequest("stage must be a string")
    return StatusReport(
        job_id=job_id,
        status=status,
        exit_code=_optional_int(data, "exitCode"),
        error=error,
        stage=stage[:64] if stage else None,
    )


#: A sidecar keeps at most 32 MiB of transcript and sends ~512 KiB parts: 64 parts; this leaves
#: room for bigger parts while a sprite cannot fill the store with its "transcript".
MAX_TRANSCRIPT_PARTS = 256


def transcript_part(body: Any) -> TranscriptPart:
    """`{jobId, part, lines}`: one part of the agent's raw transcript, parts numbered from 0."""
    data = _object(body)
    job_id = _string(data, "jobId")
    part = _optional_int(data, "part", minimum=0)
    if part is None:
        raise BadRequest("a transcript part needs part (an integer from 0)")
    if part >= MAX_TRANSCRIPT_PARTS:
        raise BadRequest(f"at most {MAX_TRANSCRIPT_PARTS} transcript parts per job")
    return TranscriptPart(job_id=job_id, part=part, lines=_lines(data.get("lines")))


def artifact_report(body: Any) -> ArtifactReport:
    data = _object(body)
    job_id = _string(data, "jobId")
    items = data.get("artifacts")
    if not isinstance(items, list):
        raise BadRequest("artifacts must be a list")
    if len(items) > MAX_ARTIFACTS:
        raise BadRequest(f"at most {MAX_ARTIFACTS} artifacts per request")
    artifacts = []
    for index, item in enumerate(items):
        if not isinstance(item, dict):
            raise BadRequest(f"artifacts[{index}] must be an object with name, url and type")
        name = _string(item, "name", required=False)[:MAX_FIELD_CHARS]
        url = _string(item, "url", required=False)[:MAX_FIELD_CHARS]
        kind = _string(item, "type", required=False, default="link")[:64] or "link"
        if not name and not url:
            raise BadRequest(f"artifacts[{index}] needs a name or a url")
        size = _optional_int(item, "size", minimum=0)
        artifacts.append(Artifact(name=name or url, url=url, type=kind, size=size))
    return ArtifactReport(job_id=job_id, artifacts=tuple(artifacts))


def artifact_file(body: Any) -> ArtifactFile:
    """`{jobId, name, path, content}`: an artifact file's bytes, base64, at most 512 KiB decoded."""
    data = _object(body)
    job_id = _string(data, "jobId")
    name = _string(data, "name")[:MAX_FIELD_CHARS]
    path = _string(data, "path", required=False)[:MAX_FIELD_CHARS]
    if not name:
        raise BadRequest("an artifact file needs a name")
    encoded = _string(data, "content")
    if len(encoded) > (MAX_KEPT_ARTIFACT_BYTES + 2) // 3 * 4:
        raise BadRequest(f"an artifact file may be at most {MAX_KEPT_ARTIFACT_BYTES} bytes")
    try:
        content = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        raise BadRequest("content must be base64 (RFC 4648, with padding)") from None
    return ArtifactFile(job_id=job_id, name=name, path=path, content=content)


def stream_record(body: Any, job_id: str) -> LogBatch:
    """One NDJSON record of `POST /webhooks/stream`: `{"seq": n, "lines": [...]}`.

    The job comes from the stream's start (its token was checked once); `seq` is required,
    since a stream has no answer per record and resumes from the last stored seq.
    """
    data = _object(body)
    seq = data.get("seq")
    if not isinstance(seq, int) or isinstance(seq, bool):
        raise BadRequest("a stream record needs seq (an integer)")
    lines = data.get("lines")
    raw_events = data.get("events")
    if lines is None and raw_events is not None:
        lines = []
    if not isinstance(lines, list):
        raise BadRequest("a stream record needs lines (a list of strings)")
    # Checked here rather than through `log_batch`: a thousand streams send thousands of
    # records a second, and building a request body to check again cost ~2 % of the server.
    events = agent_events(raw_events) if raw_events is not None else ()
    return LogBatch(job_id=job_id, lines=_lines(lines), seq=_optional_int(data, "seq", minimum=0), events=events)
