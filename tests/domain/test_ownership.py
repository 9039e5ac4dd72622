"""One rule for whose work is whose (domain/ownership.py)."""

from __future__ import annotations

import pytest

from opendispatch.domain.errors import NotAllowed
from opendispatch.domain.job import Conversation, User
from opendispatch.domain.ownership import Ownership

ALICE, BOB, ADMIN = User("U1", "alice"), User("U2", "bob"), User("U9", "root")
HERE, THREAD, THERE = Conversation("slack", "C1"), Conversation("slack", "C1", thread="1.2"), Conversation("slack", "C2")


def test_owner_and_admin_may_read_and_act_others_may_not() -> None:
    rule = Ownership(admins=frozenset({"U9"}))
    assert rule.may_read(ALICE, ALICE, HERE, THERE) and rule.may_read(ADMIN, ALICE, HERE, THERE)
    assert not rule.may_read(BOB, ALICE, HERE, HERE)
    rule.check_may_act(ADMIN, ALICE, "j-1")
    with pytest.raises(NotAllowed, match="Only alice, who started j-1, or an Open-Dispatch admin can stop it"):
        rule.check_may_act(BOB, ALICE, "j-1")


def test_admins_are_ids_never_names() -> None:
    rule = Ownership(admins=frozenset({"U9", "root"}))
    assert rule.is_admin(ADMIN) and not rule.is_admin(User("U3", "U9")) and rule.is_admin(User("root", "x"))


def test_channel_members_may_read_what_ran_in_their_channel_from_there_only() -> None:
    rule = Ownership(channel_members_may_read=True)
    assert rule.may_read(BOB, ALICE, THREAD, HERE) and not rule.may_read(BOB, ALICE, HERE, THERE)
    assert not rule.may_read(BOB, ALICE, HERE, Conversation("discord", "C1"))
    with pytest.raises(NotAllowed):
        rule.check_may_act(BOB, ALICE, "j-1")  # reading is not stopping


def test_everyone_scope() -> None:
    assert Ownership(admins=frozenset({"U9"})).everyone_scope(ADMIN, HERE) is None
    assert Ownership(channel_members_may_read=True).everyone_scope(BOB, HERE) == HERE
    with pytest.raises(NotAllowed, match="only Open-Dispatch admins"):
        Ownership().everyone_scope(BOB, HERE)
