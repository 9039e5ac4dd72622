"""How often sidecars should send output, so one server can take many of them at once.

A POST costs this server about a millisecond of CPU whatever its size (see
docs/performance.md), so what limits it is requests per second, not lines. With few sprites
each sidecar sends every 100 ms (its default); with many, the server asks each one for
`batchIntervalMs` = (sidecars sending recently) / (requests per second we budget for), so the
request rate stays near the budget and batches grow instead. Sidecars honour the value until
an answer says otherwise, and an answer without it means "your own default".
"""

from __future__ import annotations

import math

#: Log requests per second the server budgets for: about half a core at ~1 ms each.
DEFAULT_REQUEST_BUDGET_PER_S = 400.0
#: Below this we say nothing and the sidecar keeps its own default (100 ms).
MIN_ADVISED_INTERVAL_S = 0.1
#: A sidecar counts as sending if it posted within this window (widened to twice the
#: interval we advise, so senders that obey us are not forgotten between their posts).
MIN_WINDOW_S = 2.0
MAX_ADVISED_INTERVAL_S = 10.0


class SenderPacer:
    """Counts the sidecars that sent output recently and derives the interval to advise.

    Pure apart from its own memory: `now` is a parameter (trio time in the Relay).
    """

    def __init__(
        self,
        request_budget_per_s: float = DEFAULT_REQUEST_BUDGET_PER_S,
        *,
        min_interval_s: float = MIN_ADVISED_INTERVAL_S,
        max_interval_s: float = MAX_ADVISED_INTERVAL_S,
    ) -> None:
        if request_budget_per_s <= 0:
            raise ValueError("request_budget_per_s must be positive")
        self.request_budget_per_s = request_budget_per_s
        self.min_interval_s = min_interval_s
        self.max_interval_s = max_interval_s
        self._last_sent: dict[str, float] = {}
        self._pruned_at = -math.inf
        self._interval_s = 0.0

    @property
    def active_senders(self) -> int:
        return len(self._last_sent)

    def note(self, job_id: str, now: float) -> int | None:
        """Record a log request of `job_id`; the `batchIntervalMs` to answer, or None for none."""
        self._last_sent[job_id] = now
        window = max(MIN_WINDOW_S, 2.0 * self._interval_s)
        if now - self._pruned_at >= window / 2.0:
            self._pruned_at = now
            self._last_sent = {job: at for job, at in self._last_sent.items() if now - at <= window}
        interval = min(len(self._last_sent) / self.request_budget_per_s, self.max_interval_s)
        self._interval_s = interval if interval > self.min_interval_s else 0.0
        return math.ceil(self._interval_s * 1000.0) if self._interval_s else None

    def forget(self, job_id: str) -> None:
        """A finished job no longer sends."""
        self._last_sent.pop(job_id, None)


#: Stream records per second the server budgets for. A record read from an open stream
#: costs a fraction of a POST (on the fast ingest path, fast/front.py and fast/stream_hub.py), and all records that arrived
#: together are stored in one write; what still grows with the count is the records' parsing
#: and their live-output hand-offs. With a thousand sprites streaming, 3,000 a second keep
#: the server near 70-80 % of a core and a line's p50 near 200 ms; 3,300 and 3,600 saturate
#: it in some runs, and the queueing costs more latency than the shorter batches save
#: (docs/performance.md, rounds 4 and 8).
DEFAULT_STREAM_RECORD_BUDGET_PER_S = 3000.0


def stream_interval_ms(
    live_jobs: int,
    record_budget_per_s: float = DEFAULT_STREAM_RECORD_BUDGET_PER_S,
    *,
    min_interval_s: float = MIN_ADVISED_INTERVAL_S,
    max_interval_s: float = MAX_ADVISED_INTERVAL_S,
) -> int | None:
    """The `batchIntervalMs` to give a streaming sidecar when `live_jobs` may be streaming.

    A stream has no answer per record, so the advice travels on the resume-point answer a
    sidecar reads before each stream and on each stream's final answer; the count it rests
    on must be known before the streams open, hence live jobs (every one may stream) rather
    than senders seen lately. None: the sidecar's own default (100 ms) is fine.
    """
    interval = min(live_jobs / record_budget_per_s, max_interval_s)
    return math.ceil(interval * 1000.0) if interval > min_interval_s else None
