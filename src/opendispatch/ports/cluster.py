"""Dispatchers sharing one database: who leads, which jobs it holds, where their messages are.

Several `opendispatch serve` processes may share a PostgreSQL database (docs/deploy-fly.md,
"Two machines"). One of them leads: it runs the jobs, the sessions, the chat connection and
the duties that must run once (start-up reconciliation, the stale-job reaper, a Discord
gateway). The others stand by and pass every request on to it, so whichever instance a sidecar
or a chat platform reaches, each record is stored once, by one process, in order, and one
process edits each live message. When the leader dies its database session ends and with it
its advisory lock; a standby takes the lock, waits until the dead leader's job leases have
expired (a leader that is merely cut off stops before they do), and takes its jobs and
sessions over as a restarted dispatcher would, editing the same chat messages.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Protocol, runtime_checkable

from ..domain.messages import JobMessages


class LeadershipLost(Exception):
    """This process no longer holds the leader's lock (its database session ended)."""


@runtime_checkable
class Cluster(Protocol):
    """What the leader and the standbys ask of the shared database."""

    #: This process's name among the dispatchers (unique while it runs).
    member: str
    #: How long a job lease lasts unless renewed, in seconds.
    lease_s: float

    async def lead(self) -> None:
        """Wait until this process holds the leader's lock (returns at once if it does)."""
        ...

    async def leader_url(self) -> str | None:
        """Where the current leader serves, when one leads (its lease on leadership is live)."""
        ...

    async def heartbeat(self, url: str, jobs: Collection[str]) -> None:
        """As leader: publish `url`, hold a lease on each of `jobs` for `lease_s`, let go of any
        other lease this process held. Raises `LeadershipLost` when the lock is gone."""
        ...

    async def wait_for_expired_leases(self) -> float:
        """Wait until no other member holds a live job lease or leadership; the seconds waited."""
        ...

    async def hand_over(self) -> None:
        """Stop leading now: release the lock and every lease of this process, so a standby need
        not wait for them to expire."""
        ...


@runtime_checkable
class JobMessageStore(Protocol):
    """Where each running job's chat messages are, kept while the job runs (see `JobMessages`)."""

    async def remember(self, job_id: str, messages: JobMessages) -> None: ...

    async def recall(self, job_id: str) -> JobMessages | None: ...

    async def forget(self, job_id: str) -> None: ...
