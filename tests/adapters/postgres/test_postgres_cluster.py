"""Leadership, job leases and job messages of dispatchers sharing a PostgreSQL database."""

from __future__ import annotations

import trio

from opendispatch.adapters.postgres.cluster import open_postgres_cluster
from opendispatch.domain.job import Conversation
from opendispatch.domain.messages import JobMessages, MessageRef
from opendispatch.ports.cluster import Cluster, JobMessageStore, LeadershipLost

CEILING_S = 20.0
LEASE_S = 0.6


async def test_one_leads_and_the_other_takes_over_when_its_session_ends(postgres_url: str) -> None:
    with trio.fail_after(CEILING_S):
        async with open_postgres_cluster(postgres_url, member="a", lease_s=LEASE_S) as a:
            async with open_postgres_cluster(postgres_url, member="b", lease_s=LEASE_S) as b:
                assert isinstance(a, Cluster) and isinstance(a, JobMessageStore)
                await a.lead()
                await a.heartbeat("http://a", ["j-1", "j-2"])
                assert await b.leader_url() == "http://a"
                assert await b.held_leases() == {"j-1": "a", "j-2": "a"}

                b_leads = trio.Event()

                async def stand_by() -> None:
                    await b.lead()
                    b_leads.set()

                async with trio.open_nursery() as nursery:
                    nursery.start_soon(stand_by)
                    await trio.sleep(LEASE_S)  # b asks several times meanwhile
                    assert not b_leads.is_set(), "two leaders at once"
                    await a.heartbeat("http://a", ["j-1", "j-2"])  # its last
                    # a's process dies: its sockets close, PostgreSQL ends its sessions.
                    assert a._lock is not None
                    a._lock.db.pgconn.finish()
                    await b_leads.wait()
                with_a_dead = trio.current_time()
                waited = await b.wait_for_expired_leases()
                assert 0 < waited <= LEASE_S + 0.2
                assert trio.current_time() - with_a_dead >= waited
                await b.heartbeat("http://b", ["j-2"])
                assert await b.held_leases() == {"j-2": "b"}
                assert await a.leader_url() == "http://b"
                try:
                    await a.heartbeat("http://a", ["j-1"])
                except LeadershipLost as exc:
                    assert "session ended" in str(exc)
                else:
                    raise AssertionError("a cut-off leader must learn it no longer leads")


async def test_hand_over_lets_the_next_leader_start_without_waiting(postgres_url: str) -> None:
    with trio.fail_after(CEILING_S):
        async with open_postgres_cluster(postgres_url, member="a", lease_s=30.0) as a:
            async with open_postgres_cluster(postgres_url, member="b", lease_s=30.0) as b:
                await a.lead()
                await a.heartbeat("http://a", ["j-1"])
                await a.hand_over()
                await b.lead()
                assert await b.wait_for_expired_leases() == 0.0
                assert await b.leader_url() is None
                assert await b.held_leases() == {}


async def test_a_lease_stays_with_its_holder_until_it_expires(postgres_url: str) -> None:
    with trio.fail_after(CEILING_S):
        async with open_postgres_cluster(postgres_url, member="a", lease_s=30.0) as a:
            async with open_postgres_cluster(postgres_url, member="b", lease_s=30.0) as b:
                await a.lead()
                await a.heartbeat("http://a", ["j-1"])
                b._lock = a._lock  # as if b believed it led (a paused leader's successor)
                await b.heartbeat("http://b", ["j-1"])
                assert await a.held_leases() == {"j-1": "a"}


async def test_job_messages_are_remembered_recalled_and_forgotten(postgres_url: str) -> None:
    conversation = Conversation("slack", "C0DEV", "17.1")
    messages = JobMessages(
        started=MessageRef(conversation, "17.1"),
        pages={0: MessageRef(conversation, "17.2"), 1: MessageRef(conversation, "17.5")},
    )
    with trio.fail_after(CEILING_S):
        async with open_postgres_cluster(postgres_url, member="a") as a:
            async with open_postgres_cluster(postgres_url, member="b") as b:
                assert await b.recall("j-1") is None
                await a.remember("j-1", messages)
                assert await b.recall("j-1") == messages
                await a.remember("j-1", JobMessages(started=None, pages={}))
                assert await b.recall("j-1") == JobMessages()
                await b.forget("j-1")
                assert await a.recall("j-1") is None


async def test_no_heartbeat_takes_the_leases_back_after_hand_over(postgres_url: str) -> None:
    with trio.fail_after(CEILING_S):
        async with open_postgres_cluster(postgres_url, member="a", lease_s=30.0) as a:
            await a.lead()
            await a.heartbeat("http://a", ["j-1"])
            async with trio.open_nursery() as nursery:
                nursery.start_soon(a.hand_over)
                nursery.start_soon(a.heartbeat, "http://a", ["j-1"])  # the heartbeat task's tick
            await a.heartbeat("http://a", ["j-1"])  # a late one: nothing
            assert await a.held_leases() == {} and await a.leader_url() is None
