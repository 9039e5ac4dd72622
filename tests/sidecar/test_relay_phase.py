"""The sidecar's send schedule when the server slows it down (`batchIntervalMs`), and how
long each of its streams stays open.

Sidecars of jobs started together would otherwise send in the same slice of every interval,
and end their streams in the same instant, so the server would get their batches and their
new connections in bursts. The sidecar's `Relay` is used in process,
with its clock and random source given, and never sends anything here.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest

import harness  # noqa: F401  (puts sidecar/src on sys.path)
from sprite_reporter.config import Connection, Tuning
from sprite_reporter.relay import STREAM_MAX_S, Relay


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def relay(tmp_path: Path, clock: Clock, fraction: float) -> Relay:
    connection = Connection("job-1", "token", "http", "127.0.0.1", 9, "")
    return Relay(connection, Tuning(), str(tmp_path / "spool.jsonl"), clock=clock, random_fraction=lambda: fraction)


def test_without_advice_the_next_batch_may_go_at_once(tmp_path: Path) -> None:
    sender = relay(tmp_path, Clock(100.0), fraction=0.25)
    sender.note_interval({})
    assert sender.next_batch_not_before() == -math.inf


def test_first_advice_puts_the_next_batch_at_a_random_point_of_the_interval(
    tmp_path: Path
) -> None:
    early = relay(tmp_path / "a", Clock(100.0), fraction=0.25)
    late = relay(tmp_path / "b", Clock(100.0), fraction=0.75)
    for sender in (early, late):
        sender.note_interval({"batchIntervalMs": 400})
    # As if the last batch had gone 0.1 s and 0.3 s ago: the next may go 0.3 s and 0.1 s from now.
    assert early.next_batch_not_before() == pytest.approx(100.3)
    assert late.next_batch_not_before() == pytest.approx(100.1)


def test_later_advice_keeps_the_phase(tmp_path: Path) -> None:
    clock = Clock(100.0)
    sender = relay(tmp_path, clock, fraction=0.25)
    sender.note_interval({"batchIntervalMs": 400})
    clock.now = 100.2
    sender.note_interval({"batchIntervalMs": 500})  # still slowed down: no new random point
    assert sender.next_batch_not_before() == pytest.approx(99.9 + 0.5)
    sender.note_interval({})  # no longer slowed down
    clock.now = 101.0
    sender.note_interval({"batchIntervalMs": 400})  # slowed down again: a new random point
    assert sender.next_batch_not_before() == pytest.approx(101.0 - 0.1 + 0.4)


def test_streams_opened_together_end_at_different_times_in_the_last_half_of_the_limit(
    tmp_path: Path
) -> None:
    lifetimes = [
        relay(tmp_path / str(i), Clock(100.0), fraction=fraction).stream_lifetime()
        for i, fraction in enumerate((0.0, 0.5, 0.999))
    ]
    assert lifetimes == pytest.approx([STREAM_MAX_S, 0.75 * STREAM_MAX_S, 0.5005 * STREAM_MAX_S])
