"""A job's stored output is bounded: past the quota one notice line, then nothing (issue #20)."""

from __future__ import annotations

import pytest

from opendispatch.domain.output_quota import OutputQuota, truncation_notice


def test_lines_within_the_quota_pass_unchanged_and_the_same_object() -> None:
    quota = OutputQuota(max_lines=10, max_chars=100)
    lines = ["a", "bb"]
    assert quota.admit(lines) == (lines, False) and quota.admit(lines)[0] is lines
    assert (quota.lines, quota.chars) == (4, 6)


def test_the_batch_that_reaches_the_line_quota_keeps_what_fits_then_the_notice_then_nothing() -> None:
    quota = OutputQuota(max_lines=3, max_chars=1000)
    assert quota.admit(["1", "2"]) == (["1", "2"], False)
    kept, reached = quota.admit(["3", "4", "5"])
    assert reached and list(kept) == ["3", truncation_notice(3, 1000)]
    assert quota.admit(["6"]) == ((), False) and quota.truncated


def test_the_character_quota_cuts_too() -> None:
    quota = OutputQuota(max_lines=1000, max_chars=10)
    kept, reached = quota.admit(["12345", "67890", "x"])
    assert reached and list(kept) == ["12345", "67890", truncation_notice(1000, 10)]


def test_a_refund_gives_back_what_a_resent_batch_did_not_store() -> None:
    quota = OutputQuota(max_lines=3, max_chars=1000)
    quota.admit(["a", "b"])
    quota.refund(["a", "b"])
    assert quota.admit(["c", "d", "e"]) == (["c", "d", "e"], False)


def test_the_notice_names_both_settings() -> None:
    notice = truncation_notice(200_000, 50 * 1024 * 1024)
    assert "200,000 lines and 50 MB" in notice
    assert "OPENDISPATCH_MAX_OUTPUT_LINES" in notice and "OPENDISPATCH_MAX_OUTPUT_MB" in notice


@pytest.mark.parametrize("bad", [0, -1])
def test_a_quota_of_nothing_is_a_programming_error(bad: int) -> None:
    with pytest.raises(ValueError):
        OutputQuota(max_lines=bad)
