"""Request bodies → domain values, strictly, with messages a sidecar author can act on.

The seed's Node sidecar sends `{jobId, text}`, `{jobId, status, exitCode, error}` and
`{jobId, artifacts}`; ours adds `seq`, `lines` and `stage`. Anything else (wrong types,
`null`, booleans posing as numbers) is a 400 here and never reaches the application.

Each body is an attrs class shaped as on the wire (attributes named as the JSON keys), read by
this dialect's cattrs converter (`support.wire`: strict hooks, generated class hooks, the first
problem as one line, "artifacts[0].size must be an integer"); what a type cannot say (at least
0, one of the statuses, text or lines) is checked as the body becomes a domain value.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from typing import Any, ClassVar

import attrs

from ...domain.job import MAX_KEPT_ARTIFACT_BYTES, Artifact
from ...domain.sidecar import ArtifactFile, ArtifactReport, LogBatch, ReportedStatus, StatusReport, TranscriptPart
from ...support.wire import Invalid, WireError, as_is, hooked, make_converter, parser, strict_str, whole_number
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


def job_id_of(body: Any) -> object:
    """The claimed job id, unchecked: authorisation decides what it is worth."""
    return body.get("jobId") if isinstance(body, dict) else None


def _integer(minimum: int | None = None) -> Any:
    """A hook: an integer (`3.0` is 3) of at most 2**53 in size, at least `minimum`; null is absent."""

    def hook(value: object, _: object) -> int | None:
        if value is None:
            return None
        number = whole_number(value)
        if minimum is not None and number < minimum:
            raise Invalid(f"must be at least {minimum}")
        if abs(number) > 2**53:
            raise Invalid("is out of range")
        return number

    return hooked(hook)


def _optional_text(value: object, _: object) -> str:
    """A string; null means absent ("")."""
    return "" if value is None else strict_str(value)


def _lines(value: object, _: object) -> tuple[str, ...] | None:
    """A list of strings (null: absent). Checked in one pass: a stream parses thousands a second."""
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(line, str) for line in value):
        raise Invalid("must be a list of strings")
    return tuple(value)


def _status(value: object, _: object) -> ReportedStatus:
    text = strict_str(value)
    try:
        return ReportedStatus(text)
    except ValueError:
        raise Invalid(f"must be one of {', '.join(s.value for s in ReportedStatus)}") from None


_AS_IS = hooked(as_is)
_TEXT = hooked(_optional_text)
_LINES = hooked(_lines)
_COUNT = _integer(minimum=0)


@attrs.define
class _LogBody:
    """`POST /webhooks/logs`: `{jobId, seq?, lines | text, events?}` (the seed's is `{jobId, text}`)."""

    jobId: str
    seq: int | None = attrs.field(default=None, metadata=_COUNT)
    lines: tuple[str, ...] | None = attrs.field(default=None, metadata=_LINES)
    #: Read only when there are no lines (then it must be a string).
    text: object = attrs.field(default=None, metadata=_AS_IS)
    events: object = attrs.field(default=None, metadata=_AS_IS)


@attrs.define
class _StatusBody:
    jobId: str
    status: ReportedStatus = attrs.field(metadata=hooked(_status))
    error: str = attrs.field(default="", metadata=_TEXT)
    stage: str | None = None
    exitCode: int | None = attrs.field(default=None, metadata=_integer())


@attrs.define
class _TranscriptBody:
    jobId: str
    part: int | None = attrs.field(default=None, metadata=_COUNT)
    lines: tuple[str, ...] | None = attrs.field(default=None, metadata=_LINES)


@attrs.define
class _ArtifactEntry:
    WIRE_SHAPE: ClassVar[str] = "an object with name, url and type"

    name: str = attrs.field(default="", metadata=_TEXT)
    url: str = attrs.field(default="", metadata=_TEXT)
    type: str = attrs.field(default="", metadata=_TEXT)
    size: int | None = attrs.field(default=None, metadata=_COUNT)


@attrs.define
class _ArtifactsBody:
    jobId: str
    artifacts: list[_ArtifactEntry]


@attrs.define(kw_only=True)
class _ArtifactFileBody:
    jobId: str
    name: str
    path: str = attrs.field(default="", metadata=_TEXT)
    content: str


@attrs.define
class _StreamRecord:
    """One NDJSON record of `POST /webhooks/stream` (its job comes from the stream's start)."""

    seq: int
    lines: tuple[str, ...] | None = attrs.field(default=None, metadata=_LINES)
    events: object = attrs.field(default=None, metadata=_AS_IS)


_CONVERTER = make_converter()


def _reader(cl: type[Any]) -> Any:
    parse = parser(_CONVERTER, cl)

    def read(body: Any) -> Any:
        try:
            return parse(body)
        except WireError as error:
            raise BadRequest(str(error)) from None

    return read


_read_log = _reader(_LogBody)
_read_status = _reader(_StatusBody)
_read_transcript = _reader(_TranscriptBody)
_read_artifacts = _reader(_ArtifactsBody)
_read_artifact_file = _reader(_ArtifactFileBody)
_parse_record = parser(_CONVERTER, _StreamRecord)


def _counted(lines: tuple[str, ...]) -> tuple[str, ...]:
    if len(lines) > MAX_LINES_PER_BATCH:
        raise BadRequest(f"at most {MAX_LINES_PER_BATCH} lines per batch")
    return lines


def log_batch(body: Any) -> LogBatch:
    data: _LogBody = _read_log(body)
    events = agent_events(data.events)
    if data.lines is not None:
        return LogBatch(job_id=data.jobId, lines=_counted(data.lines), seq=data.seq, events=events)
    if "text" not in body:
        if events:
            return LogBatch(job_id=data.jobId, lines=(), seq=data.seq, events=events)
        raise BadRequest("a log batch needs text (a string) or lines (a list of strings)")
    if not isinstance(data.text, str):
        raise BadRequest("text must be a string")
    batch = LogBatch.from_text(data.jobId, data.text, seq=data.seq)
    return attrs.evolve(batch, events=events) if events else batch


def status_report(body: Any) -> StatusReport:
    data: _StatusBody = _read_status(body)
    return StatusReport(
        job_id=data.jobId,
        status=data.status,
        exit_code=data.exitCode,
        error=data.error[:MAX_FIELD_CHARS],
        stage=data.stage[:64] if data.stage else None,
    )


#: A sidecar keeps at most 32 MiB of transcript and sends ~512 KiB parts: 64 parts; this leaves
#: room for bigger parts while a sprite cannot fill the store with its "transcript".
MAX_TRANSCRIPT_PARTS = 256


def transcript_part(body: Any) -> TranscriptPart:
    """`{jobId, part, lines}`: one part of the agent's raw transcript, parts numbered from 0."""
    data: _TranscriptBody = _read_transcript(body)
    if data.part is None:
        raise BadRequest("a transcript part needs part (an integer from 0)")
    if data.part >= MAX_TRANSCRIPT_PARTS:
        raise BadRequest(f"at most {MAX_TRANSCRIPT_PARTS} transcript parts per job")
    if data.lines is None:
        raise BadRequest("lines must be a list of strings")
    return TranscriptPart(job_id=data.jobId, part=data.part, lines=_counted(data.lines))


def artifact_report(body: Any) -> ArtifactReport:
    data: _ArtifactsBody = _read_artifacts(body)
    if len(data.artifacts) > MAX_ARTIFACTS:
        raise BadRequest(f"at most {MAX_ARTIFACTS} artifacts per request")
    artifacts = []
    for index, item in enumerate(data.artifacts):
        name, url = item.name[:MAX_FIELD_CHARS], item.url[:MAX_FIELD_CHARS]
        if not name and not url:
            raise BadRequest(f"artifacts[{index}] needs a name or a url")
        artifacts.append(Artifact(name=name or url, url=url, type=item.type[:64] or "link", size=item.size))
    return ArtifactReport(job_id=data.jobId, artifacts=tuple(artifacts))


def artifact_file(body: Any) -> ArtifactFile:
    """`{jobId, name, path, content}`: an artifact file's bytes, base64, at most 512 KiB decoded."""
    data: _ArtifactFileBody = _read_artifact_file(body)
    name = data.name[:MAX_FIELD_CHARS]
    if not name:
        raise BadRequest("an artifact file needs a name")
    encoded = data.content
    if len(encoded) > (MAX_KEPT_ARTIFACT_BYTES + 2) // 3 * 4:
        raise BadRequest(f"an artifact file may be at most {MAX_KEPT_ARTIFACT_BYTES} bytes")
    try:
        content = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        raise BadRequest("content must be base64 (RFC 4648, with padding)") from None
    return ArtifactFile(job_id=data.jobId, name=name, path=data.path[:MAX_FIELD_CHARS], content=content)


def stream_record(body: Any, job_id: str) -> LogBatch:
    """One NDJSON record of `POST /webhooks/stream`: `{"seq": n, "lines": [...]}`.

    The job comes from the stream's start (its token was checked once); `seq` is required,
    since a stream has no answer per record and resumes from the last stored seq. Read here
    rather than through `log_batch`: a thousand streams send thousands of records a second.
    """
    try:
        record = _parse_record(body)
    except WireError as error:
        raise BadRequest(_NEEDS_SEQ if error.path == "seq" else str(error)) from None
    seq, lines = record.seq, record.lines
    if lines is None:
        if record.events is None:
            raise BadRequest("a stream record needs lines (a list of strings)")
        lines = ()
    if seq < 0:
        raise BadRequest("seq must be at least 0")
    if seq > 2**53:
        raise BadRequest("seq is out of range")
    events = agent_events(record.events) if record.events is not None else ()
    return LogBatch(job_id=job_id, lines=_counted(lines), seq=seq, events=events)


_NEEDS_SEQ = "a stream record needs seq (an integer)"
