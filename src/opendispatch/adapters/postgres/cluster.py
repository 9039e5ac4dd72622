"""`PostgresCluster`: leadership, job leases and job messages for dispatchers sharing a database.

Leadership is a session-level advisory lock held on a connection of its own for as long as the
process leads: PostgreSQL lets go of it when that session ends, which a killed process's
closed socket ends at once (and TCP keepalives end for a machine that vanished). So no clock
decides who leads; the `leader` row only tells standbys where to pass requests, and the
`job_leases` rows fence a leader that is cut off but still running: it stops (its heartbeat
fails) before its leases expire, and the next leader adopts jobs only once they have.

Two connections, both in autocommit, each used by one worker thread at a time (a `trio.Lock`
each): the lock's, which does nothing but hold the lock and answer the heartbeat's liveness
check, and the work connection for everything else. psycopg's sync API in Trio worker threads,
as the store (store.py says why).
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import socket
from collections.abc import AsyncIterator, Callable, Collection
from contextlib import asynccontextmanager
from functools import partial
from typing import TYPE_CHECKING, Any, TypeVar

import cattrs.preconf.json
import trio

from ...domain.errors import ConfigError
from ...domain.messages import JobMessages
from ...ports.cluster import LeadershipLost
from .store import CONNECT_TIMEOUT_S, _connect_and_migrate, _driver
from .url import redact_url, without_passwords

if TYPE_CHECKING:
    import psycopg

    _Connection = psycopg.Connection[tuple[Any, ...]]

log = logging.getLogger(__name__)

_T = TypeVar("_T")

#: The advisory lock the leader holds, named by the schema the tables are in: advisory locks
#: are per database, and two deployments may share one database in two schemas.
_TRY_LEAD = "SELECT pg_try_advisory_lock(hashtextextended('opendispatch leader ' || current_schema(), 0))"
DEFAULT_LEASE_S = 10.0

_converter = cattrs.preconf.json.make_converter()


def member_name(environ: dict[str, str] | None = None) -> str:
    """This process's name among the dispatchers: the Fly Machine's id when on Fly (so logs
    name the machine), always with a random part, since a restarted process is a new member."""
    env = os.environ if environ is None else environ
    host = env.get("FLY_MACHINE_ID") or socket.gethostname() or "dispatcher"
    return f"{host}-{secrets.token_hex(3)}"


class _Connection1:
    """One connection, one worker thread at a time."""

    def __init__(self, db: _Connection) -> None:
        self.db = db
        self.lock = trio.Lock()

    async def run(self, work: Callable[[_Connection], _T]) -> _T:
        async with self.lock:
            return await trio.to_thread.run_sync(work, self.db)


class PostgresCluster:
    """The `Cluster` and `JobMessageStore` ports on the shared database (see the module doc)."""

    def __init__(self, url: str, member: str, lease_s: float, work: _Connection1, connect: Callable[[], _Connection]) -> None:
        self.url = url
        self.member = member
        self.lease_s = lease_s
        self._work = work
        self._connect = connect
        self._lock: _Connection1 | None = None
        #: Set by `hand_over`: heartbeats from then on do nothing (a renewal queued behind the
        #: release would otherwise take the leases back).
        self._handing_over = False
        #: How often a standby asks for the lock: a fifth of the lease, so a dead leader's place
        #: is taken well within it.
        self.poll_s = max(0.05, lease_s / 5)

    # --- leadership ---------------------------------------------------------------------

    async def lead(self) -> None:
        while self._lock is None:
            db = await trio.to_thread.run_sync(self._connect)
            row = await trio.to_thread.run_sync(
                lambda: db.execute(_TRY_LEAD).fetchone()
            )
            if row is not None and row[0]:
                self._lock = _Connection1(db)
                log.info("cluster: %s leads", self.member)
                return
            await trio.to_thread.run_sync(db.close)
            await trio.sleep(self.poll_s)

    @property
    def leads(self) -> bool:
        return self._lock is not None

    async def leader_url(self) -> str | None:
        row = await self._work.run(
            lambda db: db.execute("SELECT url FROM leader WHERE expires_at > now()").fetchone()
        )
        return None if row is None else str(row[0])

    async def heartbeat(self, url: str, jobs: Collection[str]) -> None:
        if self._handing_over:
            return
        lock = self._lock
        if lock is None:
            raise LeadershipLost("this process does not lead")
        try:
            await lock.run(lambda db: db.execute("SELECT 1").fetchone())
        except Exception as exc:
            raise LeadershipLost(f"the leader's database session ended: {self._reason(exc)}") from None
        await self._work.run(partial(self._renew, url, sorted(jobs)))

    def _renew(self, url: str, jobs: list[str], db: _Connection) -> None:
        if self._handing_over:  # read under the work connection's lock, after any release
            return
        lease = f"{self.lease_s} seconds"
        with db.transaction():
            db.execute(
                "INSERT INTO leader (only_row, member, url, expires_at) VALUES (true, %s, %s, now() + %s::interval) "
                "ON CONFLICT (only_row) DO UPDATE SET member = excluded.member, url = excluded.url, "
                "expires_at = excluded.expires_at",
                (self.member, url, lease),
            )
            db.execute("DELETE FROM job_leases WHERE member = %s AND NOT (job_id = ANY(%s))", (self.member, jobs))
            if jobs:
                # Taken over from a dead leader only once expired (wait_for_expired_leases).
                db.execute(
                    "INSERT INTO job_leases (job_id, member, expires_at) "
                    "SELECT job_id, %s, now() + %s::interval FROM unnest(%s::text[]) AS job_id "
                    "ON CONFLICT (job_id) DO UPDATE SET member = excluded.member, expires_at = excluded.expires_at "
                    "WHERE job_leases.member = excluded.member OR job_leases.expires_at <= now()",
                    (self.member, lease, jobs),
                )

    async def wait_for_expired_leases(self) -> float:
        waited = 0.0
        while True:
            row = await self._work.run(
                lambda db: db.execute(
                    "SELECT GREATEST("
                    " (SELECT EXTRACT(EPOCH FROM MAX(expires_at) - now()) FROM job_leases WHERE member <> %s),"
                    " (SELECT EXTRACT(EPOCH FROM MAX(expires_at) - now()) FROM leader WHERE member <> %s))",
                    (self.member, self.member),
                ).fetchone()
            )
            remaining = None if row is None or row[0] is None else float(row[0])
            if remaining is None or remaining <= 0:
                return waited
            pause = min(remaining + 0.01, self.lease_s)
            await trio.sleep(pause)
            waited += pause

    async def held_leases(self) -> dict[str, str]:
        """Every live job lease: job id -> member (for tests and doctor)."""
        rows = await self._work.run(
            lambda db: db.execute("SELECT job_id, member FROM job_leases WHERE expires_at > now()").fetchall()
        )
        return {str(job_id): str(member) for job_id, member in rows}

    async def hand_over(self) -> None:
        self._handing_over = True
        await self._work.run(self._release)
        lock, self._lock = self._lock, None
        if lock is not None:
            await lock.run(lambda db: db.close())

    def _release(self, db: _Connection) -> None:
        with db.transaction():
            db.execute("DELETE FROM job_leases WHERE member = %s", (self.member,))
            db.execute("DELETE FROM leader WHERE member = %s", (self.member,))

    # --- job messages ---------------------------------------------------------------------

    async def remember(self, job_id: str, messages: JobMessages) -> None:
        body = json.dumps(_converter.unstructure(messages), separators=(",", ":"))
        await self._work.run(
            lambda db: db.execute(
                "INSERT INTO job_messages (job_id, body) VALUES (%s, %s) "
                "ON CONFLICT (job_id) DO UPDATE SET body = excluded.body",
                (job_id, body),
            )
        )

    async def recall(self, job_id: str) -> JobMessages | None:
        row = await self._work.run(
            lambda db: db.execute("SELECT body FROM job_messages WHERE job_id = %s", (job_id,)).fetchone()
        )
        return None if row is None else _converter.structure(json.loads(row[0]), JobMessages)

    async def forget(self, job_id: str) -> None:
        await self._work.run(lambda db: db.execute("DELETE FROM job_messages WHERE job_id = %s", (job_id,)))

    @staticmethod
    def _reason(exc: BaseException) -> str:
        return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


@asynccontextmanager
async def open_postgres_cluster(
    url: str,
    *,
    member: str | None = None,
    lease_s: float = DEFAULT_LEASE_S,
    connect_timeout_s: float = CONNECT_TIMEOUT_S,
) -> AsyncIterator[PostgresCluster]:
    """Join the dispatchers sharing the database at `url` (migrated first) as a standby;
    `lead()` makes this process the leader. Leaving closes both connections, which lets go of
    the lock (what `hand_over` also does, with the leases)."""
    psycopg, _ = _driver()
    if lease_s <= 0:
        raise ValueError(f"lease_s must be positive, not {lease_s}")
    applied = await trio.to_thread.run_sync(_connect_and_migrate, url, connect_timeout_s)
    if applied:
        log.info("migrated the job database to schema %d", applied[-1])

    def connect() -> _Connection:
        try:
            db: _Connection = psycopg.connect(
                url,
                autocommit=True,
                connect_timeout=max(1, round(connect_timeout_s)),
                application_name="opendispatch-cluster",
                # A leader whose machine vanished must lose its lock within about a lease.
                keepalives=1,
                keepalives_idle=max(1, round(lease_s / 3)),
                keepalives_interval=1,
                keepalives_count=3,
            )
            return db
        except psycopg.OperationalError as exc:
            raise ConfigError(
                f"cannot connect to the database {redact_url(url)}: {without_passwords(str(exc).strip(), url)}; "
                "check OPENDISPATCH_DB."
            ) from None

    work = _Connection1(await trio.to_thread.run_sync(connect))
    cluster = PostgresCluster(url, member or member_name(), lease_s, work, connect)
    try:
        yield cluster
    finally:
        with trio.CancelScope(shield=True):
            if cluster._lock is not None:
                await trio.to_thread.run_sync(cluster._lock.db.close)
            await trio.to_thread.run_sync(work.db.close)
