"""Numbered records handed on in order, each number once (domain/seq_order.py)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from opendispatch.domain.seq_order import InSeqOrder


def test_a_gap_holds_later_records_until_it_fills() -> None:
    order = InSeqOrder[str]()
    assert order.accept(1, "b") == [] and order.accept(2, "c") == []
    assert order.accept(0, "a") == ["a", "b", "c"] and order.next_seq == 3
    assert order.accept(1, "b again") == []  # handed on already


def test_the_end_releases_what_waits_in_order() -> None:
    order = InSeqOrder[str](next_seq=5)  # taken over after seq 4 was stored
    assert order.accept(3, "old") == [] and order.accept(8, "h") == [] and order.accept(7, "g") == []
    assert order.release_all() == ["g", "h"] and order.release_all() == []


@given(st.permutations(range(30)), st.lists(st.integers(0, 29), max_size=20))
def test_any_arrival_order_with_repeats_hands_each_on_once_in_order(arrival: list[int], repeats: list[int]) -> None:
    order = InSeqOrder[int]()
    handed = [item for seq in [*arrival[:15], *repeats, *arrival[15:]] for item in order.accept(seq, seq)]
    assert handed == list(range(30))
