"""What the dispatcher keeps in memory for a job while it runs in this process."""

from __future__ import annotations

from collections.abc import Sequence

import attrs
import trio

from ..domain.agent_events import AgentEvent
from ..domain.agent_progress import AgentProgress
from ..domain.job import Job
from ..domain.messages import MessageRef
from ..domain.output_buffer import OutputBuffer
from ..domain.output_quota import OutputQuota
from ..domain.redaction import Redactor
from ..domain.seq_order import InSeqOrder


@attrs.define(eq=False)
class LiveJob:
    job: Job
    buffer: OutputBuffer
    redactor: Redactor
    started_ref: MessageRef | None = None
    page_refs: dict[int, MessageRef] = attrs.Factory(dict)
    #: The seq'd batches' lines and events, handed to the buffer in seq order, each seq once.
    order: InSeqOrder[tuple[tuple[str, ...], tuple[AgentEvent, ...]]] = attrs.Factory(InSeqOrder)
    #: The agent's work so far, from its events (docs/agents.md); empty for plain sidecars.
    progress: AgentProgress = attrs.Factory(AgentProgress)
    #: Set once the agent's cost reached the job's `--max-cost` (the cost then, in USD).
    cap_reached: trio.Event = attrs.Factory(trio.Event)
    cost_at_cap: float | None = None
    saw_unsequenced: bool = False
    #: Lines or agent events were handed to the buffer (the live message is on its way).
    saw_output: bool = False
    #: How much of its output may still be stored (output_quota.py).
    quota: OutputQuota = attrs.Factory(OutputQuota)
    finished: trio.Event = attrs.Factory(trio.Event)
    done: trio.Event = attrs.Factory(trio.Event)
    cancel_scope: trio.CancelScope = attrs.Factory(trio.CancelScope)
    _output_changed: trio.Event = attrs.Factory(trio.Event)
    #: trio time the oldest line not yet shown in chat arrived (for the relay latency metric)
    pending_since: float | None = None
    #: The output pump's scope: shielded, so it is stopped only by `stop_pump` (see there).
    pump_scope: trio.CancelScope = attrs.Factory(lambda: trio.CancelScope(shield=True))
    pump_in_chat_call: bool = False
    pump_stopping: bool = False

    def stop_pump(self, now: float, chat_call_timeout_s: float) -> None:
        """Stop the output pump: at once when it waits, after its chat call when it is in one.

        Why not cancel it: a chat call cancelled in flight may still post, and its message
        ref would be lost, so the final flush would post that page again. A cancel scope
        shielding each call cost ~6 % of the server's CPU with a thousand jobs streaming
        (docs/performance.md, round 5); one shielded scope per job, stopped here, costs
        nothing per call. A call that hangs is cancelled after `chat_call_timeout_s`.
        """
        if self.pump_in_chat_call:
            self.pump_stopping = True
            self.pump_scope.deadline = min(self.pump_scope.deadline, now + chat_call_timeout_s)
        else:
            self.pump_scope.cancel()

    def accept(
        self, seq: int | None, lines: Sequence[str], now: float, events: Sequence[AgentEvent] = ()
    ) -> None:
        """Feed a stored batch to the chat buffer and the agent's progress in `seq` order.

        Batches may arrive out of order over several connections; later ones wait here
        until the gap is filled (the sidecar retries until acknowledged, so gaps close).
        """
        if seq is None:
            self.saw_unsequenced = True
            self._append(lines, events, now)
            return
        for ready_lines, ready_events in self.order.accept(seq, (tuple(lines), tuple(events))):
            self._append(ready_lines, ready_events, now)

    def release_held(self, now: float) -> None:
        """At the end nothing more will fill a gap: show what we have, in order."""
        for lines, events in self.order.release_all():
            self._append(lines, events, now)

    def _append(self, lines: Sequence[str], events: Sequence[AgentEvent], now: float) -> None:
        self.saw_output = True
        if self.pending_since is None:
            self.pending_since = now
        if lines:
            self.buffer.append(lines, now)
        if events:
            for event in events:
                self.progress.apply(event)
            self.buffer.touch(now)  # the progress shown on the open page changed
            self._check_cost_cap()
        self._output_changed.set()

    def _check_cost_cap(self) -> None:
        if self.cost_at_cap is not None:
            return
        cost = self.progress.cost_over(self.job.spec.max_cost_usd)
        if cost is not None:
            self.cost_at_cap = cost
            self.cap_reached.set()

    async def wait_output_changed(self) -> None:
        await self._output_changed.wait()
        self._output_changed = trio.Event()

    def show_running(self) -> None:
        """The job runs: its live message goes up now, even with no output yet.

        A job that prints nothing (an agent thinking, a quiet build) otherwise showed only
        "queued" until its card; with the page up, the heartbeat keeps its elapsed time fresh.
        A job whose output is already on its way to chat needs nothing more (one edit less
        when the first output is what told us it runs).
        """
        if self.saw_output:
            return
        self.buffer.touch(trio.current_time())
        self.poke()

    def poke(self) -> None:
        """Wake `wait_output_changed` without new output (a heartbeat is due)."""
        self._output_changed.set()

    def output_seen(self) -> None:
        """What changed so far is in hand (a flush is about to take it): wait for newer."""
        if self._output_changed.is_set():
            self._output_changed = trio.Event()
