"""The `SessionStore` contract, run against the in-memory, SQLite and PostgreSQL stores."""

from __future__ import annotations

import attrs
import pytest

from opendispatch.domain.job import Conversation, User
from opendispatch.domain.job_spec import AgentKind, JobSpec
from opendispatch.domain.session import Session, SessionState, UnknownSession
from opendispatch.ports.session_store import SessionStore

UUID = "123e4567-e89b-12d3-a456-426614174000"
ROOM = Conversation("slack", "C1")


def new_session(session_id: str, at: float = 100.0, persistent: bool = True) -> Session:
    return Session.begin(
        session_id=session_id,
        name="work",
        spec=JobSpec(task="", agent=AgentKind.CLAUDE, repo="owner/repo"),
        persistent=persistent,
        conversation=ROOM,
        owner=User("u1", "alice"),
        agent_session_id=UUID,
        at=at,
    )


async def test_every_job_store_keeps_sessions(store: SessionStore) -> None:
    assert isinstance(store, SessionStore)


async def test_a_session_reads_back_as_added_and_as_saved(store: SessionStore) -> None:
    first = new_session("s-00000001")
    await store.add_session(first)
    assert await store.get_session(first.id) == first
    changed, _ = first.ready("sprite-1", at=101.0).with_thread("1700.01").submit("j-00000001", at=102.0)
    changed = changed.with_agent_state("Zm9v")
    await store.save_session(changed)
    read = await store.get_session(first.id)
    assert read == changed
    assert read.agent_state == "Zm9v" and read.queue == ("j-00000001",) and read.sprite_id == "sprite-1"


async def test_adding_an_id_twice_is_a_value_error(store: SessionStore) -> None:
    await store.add_session(new_session("s-00000001"))
    with pytest.raises(ValueError):
        await store.add_session(new_session("s-00000001", at=200.0))
    assert (await store.get_session("s-00000001")).created_at == 100.0


async def test_unknown_sessions_are_refused_on_read_and_save(store: SessionStore) -> None:
    with pytest.raises(UnknownSession):
        await store.get_session("s-ffffffff")
    with pytest.raises(UnknownSession):
        await store.save_session(new_session("s-eeeeeeee"))
    with pytest.raises(UnknownSession):
        await store.get_session("s-eeeeeeee")


async def test_live_sessions_are_the_not_stopped_ones_oldest_first(store: SessionStore) -> None:
    second = new_session("s-00000002", at=101.0)
    await store.add_session(second)
    await store.add_session(new_session("s-00000001", at=100.0))
    await store.add_session(new_session("s-00000003", at=102.0, persistent=False))
    assert [s.id for s in await store.live_sessions()] == ["s-00000001", "s-00000002", "s-00000003"]
    await store.save_session(second.stopped("done", at=110.0)[0])
    assert [s.id for s in await store.live_sessions()] == ["s-00000001", "s-00000003"]
    assert (await store.get_session(second.id)).state is SessionState.STOPPED
    suspended = new_session("s-00000004", at=103.0).ready("sprite-4", at=104.0).suspended()
    await store.add_session(suspended)
    assert [s.id for s in await store.live_sessions()][-1] == "s-00000004"


async def test_live_sessions_created_at_the_same_time_read_in_the_order_added(store: SessionStore) -> None:
    for session_id in ("s-00000009", "s-00000001", "s-00000005"):
        await store.add_session(new_session(session_id, at=100.0))
    assert [s.id for s in await store.live_sessions()] == ["s-00000009", "s-00000001", "s-00000005"]


async def test_a_session_with_odd_text_round_trips(store: SessionStore) -> None:
    odd = attrs.evolve(new_session("s-00000001"), name="wörk ✓ 'x'; --", agent_state="\x00\n" * 3)
    await store.add_session(odd)
    assert await store.get_session(odd.id) == odd
