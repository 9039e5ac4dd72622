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
        ({"seq": 0, "lines": "a"}, "a stream record needs lines (a list of strings)"),
        ({"seq": 0, "lines": ["a", 1]}, "lines must be a list of strings"),
        ({"seq": 0, "lines": ["a"] * (wire.MAX_LINES_PER_BATCH + 1)}, "lines per batch"),
    ],
)
def test_a_record_off_the_contract_is_refused_with_a_reason(record: Any, message: str) -> None:
    with pytest.raises(wire.BadRequest, match=re.escape(message)):
        wire.stream_record(record, "job-1")
