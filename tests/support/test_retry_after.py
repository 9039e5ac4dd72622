"""The one reading of Retry-After hints and the one backoff (support/retry_after.py)."""

from __future__ import annotations

import datetime
import random
from email.utils import format_datetime

import pytest

from opendispatch.support.retry_after import (
    backoff_s,
    exponential_s,
    json_retry_after_s,
    retry_after_s,
    seconds_or_none,
)

NOW = datetime.datetime(2025, 3, 1, 12, 0, 0, tzinfo=datetime.timezone.utc)


@pytest.mark.parametrize(
    ("value", "seconds"),
    [("120", 120.0), ("0", 0.0), ("0.5", 0.5), (" 3 ", 3.0), ("1e1", 10.0)],
)
def test_delay_seconds_are_read_as_given(value: str, seconds: float) -> None:
    assert retry_after_s(value, now=NOW) == seconds


@pytest.mark.parametrize("value", [None, "", "  ", "soon", "-5", "nan", "inf", "-inf", "1 2"])
def test_a_hint_that_gives_no_usable_wait_is_none(value: str | None) -> None:
    assert retry_after_s(value, now=NOW) is None


def test_an_http_date_is_counted_from_now_and_a_past_one_is_zero() -> None:
    assert retry_after_s("Sat, 01 Mar 2025 12:00:30 GMT", now=NOW) == 30.0
    assert retry_after_s(format_datetime(NOW + datetime.timedelta(minutes=2), usegmt=True), now=NOW) == 120.0
    assert retry_after_s("Sat, 01 Mar 2025 11:59:00 GMT", now=NOW) == 0.0
    assert retry_after_s("Saturday, 01-Mar-25 12:00:10 GMT", now=NOW) == 10.0  # RFC 850, obsolete but allowed


def test_an_http_date_without_now_uses_the_wall_clock() -> None:
    later = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(seconds=30)
    assert 25 <= (retry_after_s(format_datetime(later, usegmt=True)) or 0) <= 30


def test_discords_json_retry_after_is_the_precise_float() -> None:
    assert json_retry_after_s({"message": "You are being rate limited.", "retry_after": 0.352, "global": False}) == 0.352
    assert json_retry_after_s({"retry_after": 2}) == 2.0
    assert json_retry_after_s({"retry_after": "1.5"}) == 1.5


@pytest.mark.parametrize(
    "body",
    [None, [], "retry_after", {}, {"retry_after": None}, {"retry_after": True}, {"retry_after": -1},
     {"retry_after": float("inf")}, {"retry_after": "later"}],
)
def test_a_json_body_without_a_usable_retry_after_is_none(body: object) -> None:
    assert json_retry_after_s(body) is None


def test_seconds_or_none_takes_numbers_and_numeric_strings_only() -> None:
    assert seconds_or_none(3) == 3.0 and seconds_or_none(0.25) == 0.25 and seconds_or_none("7") == 7.0
    assert seconds_or_none(object()) is None and seconds_or_none(False) is None and seconds_or_none(float("nan")) is None


def test_exponential_doubles_from_the_base_up_to_the_cap() -> None:
    assert [exponential_s(n, base_s=0.25, max_s=8.0) for n in range(8)] == [0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 8.0, 8.0]
    assert exponential_s(10_000, base_s=1.0, max_s=30.0) == 30.0  # no overflow however many failures
    assert exponential_s(-1, base_s=1.0, max_s=30.0) == 1.0


def test_backoff_is_drawn_from_the_upper_half_of_the_ceiling() -> None:
    rng = random.Random(7)
    for attempt in range(12):
        ceiling = exponential_s(attempt, base_s=0.25, max_s=8.0)
        for _ in range(50):
            assert ceiling / 2 <= backoff_s(attempt, base_s=0.25, max_s=8.0, rng=rng) <= ceiling


class _Fixed:
    """A random source that always draws the same point of the interval."""

    def __init__(self, fraction: float) -> None:
        self.fraction = fraction

    def uniform(self, a: float, b: float, /) -> float:
        return a + (b - a) * self.fraction


def test_backoff_takes_its_randomness_from_the_source_it_is_given() -> None:
    assert backoff_s(3, base_s=1.0, max_s=60.0, rng=_Fixed(0.0)) == 4.0
    assert backoff_s(3, base_s=1.0, max_s=60.0, rng=_Fixed(1.0)) == 8.0
    assert backoff_s(3, base_s=1.0, max_s=60.0, rng=_Fixed(0.5)) == 6.0
    seeded = [backoff_s(n, base_s=0.5, max_s=10.0, rng=random.Random(42)) for n in range(5)]
    assert seeded == [backoff_s(n, base_s=0.5, max_s=10.0, rng=random.Random(42)) for n in range(5)]
