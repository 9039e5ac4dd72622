"""The final card of a job, posted the one way every path posts it.

The runner posts it when a job it supervises ends; reconciliation and the stale-job reaper
when they end a job nobody here supervises. Same card, same tail, same link either way.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import attrs

from ..domain.job import Job
from ..domain.messages import JobCard, MessageRef
from ..domain.render import card_tail
from ..ports.chat import ChatPort
from ..ports.job_store import JobStore
from .web_view import JobLink, no_link

log = logging.getLogger(__name__)

#: The last lines of output a card shows.
CARD_TAIL_LINES = 10


@attrs.frozen
class FinalCards:
    store: JobStore
    chat: ChatPort
    wall_clock: Callable[[], float]
    job_link: JobLink = no_link
    tail_lines: int = CARD_TAIL_LINES

    async def post(self, job: Job, *, reply_to: MessageRef | None = None) -> None:
        """Post `job`'s card (in the thread of `reply_to` where given); a chat failure is logged,
        never raised: the job has ended whatever chat says, and `/od-logs` has its output."""
        try:
            tail = await self.store.output(job.id, tail=self.tail_lines)
            total = await self.store.output_line_count(job.id)
            card = JobCard(
                job=job,
                tail=card_tail(tail, job.id),
                total_lines=total,
                duration_s=job.duration_s(self.wall_clock()),
                web_url=self.job_link(job),
            )
            await self.chat.send(job.conversation, card, reply_to=reply_to)
        except Exception:
            log.exception("job %s: could not post the final card", job.id)
