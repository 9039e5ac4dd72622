"""The wire contract's strict parsing of a stream record, without a server in the way."""

from __future__ import annotations

import re
from typing import Any

import pytest

from opendispatch.adapters.webhook import wire
from opendispatch.domain.sidecar import LogBatch


def test_a_record_becomes_a_batch_of_the_streams_job() -> None:
    batch = wire.stream_record({"seq": 3, "lines": ["a", ""], "jobId": "someone-else"}, "job-1")
    assert batch == LogBatch(job_id="job-1", lines=("a", ""), seq=3)


@pytest.mark.parametrize(
    ("record", "message"),
    [
        ([], "the body must be a JSON object"),
        ({"lines": ["a"]}, "a stream record needs seq (an integer)"),
        ({"seq": True, "lines": ["a"]}, "a stream record needs seq (an integer)"),
        ({"seq": 1.0, "lines": ["a"]}, "a stream record needs seq (an integer)"),
        ({"seq": -1, "lines": ["a"]}, "seq must be at least 0"),
        ({"seq": 2**60, "lines": ["a"]}, "seq is out of range"),
        ({"seq": 0}, "a stream record needs lines (a list of strings)"),
        ({"seq": 0, "lines": "a"}, "lines must be a list of strings"),
        ({"seq": 0, "lines": ["a", 1]}, "lines must be a list of strings"),
        ({"seq": 0, "lines": ["a"] * (wire.MAX_LINES_PER_BATCH + 1)}, "lines per batch"),
    ],
)
def test_a_record_off_the_contract_is_refused_with_a_reason(record: Any, message: str) -> None:
    with pytest.raises(wire.BadRequest, match=re.escape(message)):
        wire.stream_record(record, "job-1")


def test_an_artifact_file_is_decoded_from_base64() -> None:
    file = wire.artifact_file({"jobId": "j-1", "name": "report", "path": "/w/r.txt", "content": "AAEC/w=="})
    assert (file.job_id, file.name, file.path, file.content) == ("j-1", "report", "/w/r.txt", b"\x00\x01\x02\xff")


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"jobId": "j-1", "content": ""}, "name must be a string"),
        ({"jobId": "j-1", "name": "", "content": ""}, "an artifact file needs a name"),
        ({"jobId": "j-1", "name": "r", "content": "not base64!"}, "content must be base64"),
        ({"jobId": "j-1", "name": "r", "content": "AAE"}, "content must be base64"),
        ({"jobId": "j-1", "name": "r", "content": "A" * 700_000}, "at most 524288 bytes"),
        ({"jobId": "j-1", "name": "r"}, "content must be a string"),
    ],
)
def test_a_malformed_artifact_file_gets_a_message_to_act_on(body: dict[str, Any], message: str) -> None:
    with pytest.raises(wire.BadRequest, match=re.escape(message)):
        wire.artifact_file(body)


def test_an_artifacts_report_keeps_each_file_size() -> None:
    report = wire.artifact_report({"jobId": "j-1", "artifacts": [{"name": "r", "url": "/w/r", "type": "file", "size": 12}]})
    assert report.artifacts[0].size == 12
    with pytest.raises(wire.BadRequest, match=re.escape("artifacts[0].size must be an integer")):
        wire.artifact_report({"jobId": "j-1", "artifacts": [{"name": "r", "size": "12"}]})


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"status": "failed"}, "jobId must be a string"),
        ({"jobId": "j-1"}, "status must be one of running, completed, failed, cancelled"),
        ({"jobId": "j-1", "status": 3}, "status must be a string"),
        ({"jobId": "j-1", "status": "failed", "exitCode": 1.5}, "exitCode must be an integer"),
        ({"jobId": "j-1", "status": "failed", "exitCode": 2**60}, "exitCode is out of range"),
        ({"jobId": "j-1", "status": "failed", "stage": ["clone"]}, "stage must be a string"),
    ],
)
def test_a_malformed_status_report_names_the_field_and_what_it_must_be(body: dict[str, Any], message: str) -> None:
    with pytest.raises(wire.BadRequest) as refused:
        wire.status_report(body)
    assert str(refused.value) == message


def test_a_log_batch_takes_a_whole_float_seq_and_reads_text_only_without_lines() -> None:
    batch = wire.log_batch({"jobId": "j-1", "seq": 4.0, "lines": ["a"], "text": 5})
    assert (batch.seq, batch.lines) == (4, ("a",))
    with pytest.raises(wire.BadRequest, match="text must be a string"):
        wire.log_batch({"jobId": "j-1", "text": None})


def test_events_are_lenient_inside_a_strict_record() -> None:
    events = [{"type": "text", "text": "hi"}, {"type": "text", "text": 5}, {"type": ["odd"]}, {"type": "usage", "inputTokens": 3.0}]
    batch = wire.stream_record({"seq": 1, "events": events}, "job-1")
    assert batch.lines == () and [type(event).__name__ for event in batch.events] == ["AgentText", "UsageReported"]
