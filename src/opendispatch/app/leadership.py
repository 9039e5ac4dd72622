"""The leader's heartbeat: its job leases and its address, renewed a third of a lease apart.

Dispatchers sharing a database (ports/cluster.py): the leader holds a lease on every job it
runs and tells the standbys where it serves. When the heartbeat finds the lock gone, or cannot
renew for most of a lease, this process must stop touching chat and sprites before its leases
expire and the next leader adopts its jobs: `on_lost` stops it at once, without the shutdown
that would end jobs and destroy their sprites (they are the next leader's now).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection

import attrs
import trio

from ..ports.cluster import Cluster, LeadershipLost

log = logging.getLogger(__name__)


@attrs.define
class LeaderHeartbeat:
    cluster: Cluster
    #: Where this process serves, for the standbys.
    url: str
    #: The jobs this process runs now.
    jobs: Callable[[], Collection[str]]
    #: Stops the process at once; never returns.
    on_lost: Callable[[str], None]

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        await self.cluster.heartbeat(self.url, self.jobs())
        task_status.started()
        period = self.cluster.lease_s / 3
        renewed_at = trio.current_time()
        while True:
            await trio.sleep(period)
            try:
                await self.cluster.heartbeat(self.url, self.jobs())
                renewed_at = trio.current_time()
            except LeadershipLost as exc:
                self.on_lost(str(exc))
            except Exception as exc:
                silent_for = trio.current_time() - renewed_at
                log.warning("cluster: could not renew the leases (%ss since the last renewal): %s", round(silent_for, 1), exc)
                if silent_for >= 2 * period:  # the next miss would let them expire under us
                    self.on_lost(f"the leases could not be renewed for {silent_for:.1f}s")
