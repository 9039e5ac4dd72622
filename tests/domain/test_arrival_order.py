"""Seq-less batches go in arrival order, each after its window (domain/arrival_order.py)."""

from __future__ import annotations

from opendispatch.domain.arrival_order import ArrivalOrder


def test_a_batch_waits_for_its_window() -> None:
    order = ArrivalOrder(window_s=0.1)
    ticket = order.enter(10.0)
    assert not order.may_go(ticket, 10.05)
    assert order.may_go(ticket, 10.1)


def test_a_batch_that_arrived_earlier_goes_first_whichever_entered_first() -> None:
    order = ArrivalOrder(window_s=0.1)
    later = order.enter(10.002)
    earlier = order.enter(10.001)
    assert not order.may_go(later, 11.0)
    assert order.may_go(earlier, 11.0)
    order.leave(earlier)
    assert order.may_go(later, 11.0)
    order.leave(later)
    assert order.is_empty


def test_equal_stamps_go_in_the_order_they_entered() -> None:
    order = ArrivalOrder(window_s=0.0)
    first, second = order.enter(5.0), order.enter(5.0)
    assert order.may_go(first, 5.0) and not order.may_go(second, 5.0)


def test_a_batch_that_leaves_out_of_turn_does_not_block_the_others() -> None:
    order = ArrivalOrder(window_s=0.1)
    first, second, third = order.enter(1.0), order.enter(2.0), order.enter(3.0)
    order.leave(second)  # refused (a bad token) or cancelled while waiting
    order.leave(first)
    assert order.may_go(third, 3.1)
