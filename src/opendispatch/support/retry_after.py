"""How long to wait before trying a call again: what the server asked for, else backoff.

One reading of the hints servers give with a 429 or a 503, for every adapter that talks HTTP:

- `retry_after_s`: a `Retry-After` header, delay-seconds or an HTTP date (RFC 9110, 10.2.3);
  fractional seconds are accepted, since some fakes and proxies send them.
- `json_retry_after_s`: Discord's JSON `retry_after` (seconds, a float, more precise than its
  header).
- `exponential_s` and `backoff_s`: capped exponential backoff, without and with jitter, for
  when the server said nothing.

Each parser answers None for a hint it cannot use (absent, not a number or a date, negative,
not finite), so the caller chooses its own fallback: a fixed wait (Slack, Discord) or backoff
(Teams, Fly). Nothing here sleeps, reads the monotonic clock or draws from a global random
source: an HTTP date is measured from `now` (the wall clock unless given) and the jitter comes
from the `rng` the caller passes, so tests can fix both.
"""

from __future__ import annotations

import datetime
import math
from email.utils import parsedate_to_datetime
from typing import Protocol

#: 2.0 ** 1024 overflows a float; every delay this code computes reaches its ceiling long before.
_MAX_EXPONENT = 1023


class UniformSource(Protocol):
    """What `backoff_s` needs of a random source (a `random.Random` has it)."""

    def uniform(self, a: float, b: float, /) -> float: ...


def seconds_or_none(value: object) -> float | None:
    """`value` as a wait in seconds (a number or a numeric string), or None when it is not one.

    Negative, infinite and NaN values are not waits; neither is a bool (JSON `true` is no number
    of seconds).
    """
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        return None
    try:
        seconds = float(value)
    except ValueError:
        return None
    return seconds if math.isfinite(seconds) and seconds >= 0 else None


def retry_after_s(value: str | None, *, now: datetime.datetime | None = None) -> float | None:
    """Seconds a `Retry-After` header value asks for, or None when it gives none we can use.

    `value` is delay-seconds ("120", also "0.5") or an HTTP date ("Wed, 21 Oct 2015 07:28:00
    GMT"), whose wait is counted from `now` (timezone-aware; default: the wall clock now) and is
    0 once the date has passed.
    """
    if value is None or not value.strip():
        return None
    seconds = seconds_or_none(value.strip())
    if seconds is not None:
        return seconds
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:  # RFC 850 / asctime forms carry no zone; HTTP dates are GMT
        when = when.replace(tzinfo=datetime.timezone.utc)
    reference = now if now is not None else datetime.datetime.now(datetime.timezone.utc)
    return max(0.0, (when - reference).total_seconds())


def json_retry_after_s(body: object) -> float | None:
    """Discord's `retry_after` from a 429's JSON body (`{"retry_after": 0.352, "global": false}`).

    None when `body` is not an object or its `retry_after` is missing or not a usable number.
    """
    if not isinstance(body, dict):
        return None
    return seconds_or_none(body.get("retry_after"))


def exponential_s(attempt: int, *, base_s: float, max_s: float) -> float:
    """`base_s` doubled `attempt` times (attempt 0 waits `base_s`), never more than `max_s`."""
    return min(max_s, base_s * 2.0 ** min(max(attempt, 0), _MAX_EXPONENT))


def backoff_s(attempt: int, *, base_s: float, max_s: float, rng: UniformSource) -> float:
    """Capped exponential backoff with jitter: uniform in the upper half of `exponential_s`.

    The jitter spreads retries of many callers that failed together; keeping the lower half out
    keeps each wait at least half its ceiling, so the backoff still grows. `rng` is the random
    source (a seeded `random.Random` makes the delays reproducible).
    """
    ceiling = exponential_s(attempt, base_s=base_s, max_s=max_s)
    return ceiling / 2 + rng.uniform(0, ceiling / 2)
