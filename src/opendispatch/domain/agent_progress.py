"""What an agent has done so far, folded from its events: the live view, the summary, the cap.

`AgentProgress` is fed every event of one job in order and answers three questions: what the
live message shows now (`view`), what the card and the store keep once the run ended
(`summary`), and whether the job's cost cap was reached (`cost_over`). Pure: no clock (the
elapsed time arrives with the view's caller), no I/O.
"""

from __future__ import annotations

from collections import deque

import attrs

from .agent_events import (
    AgentEvent,
    AgentFinished,
    AgentStarted,
    AgentText,
    ErrorKind,
    FileChange,
    FilesChanged,
    PlanItem,
    PlanUpdated,
    ToolFinished,
    ToolStarted,
    UsageReported,
    one_line,
    step_label,
)
from .job_spec import format_cost

RECENT_STEPS = 5

#: USD per million input and output tokens, for agents that report tokens as they go but
#: cost only at the end (Claude Code): the live total and the cost cap use this estimate
#: until the agent's own figure arrives. Matched by the longest key contained in the model id.
PRICES_PER_MTOK: dict[str, tuple[float, float]] = {
    "opus-4-5": (5.0, 25.0),
    "opus-4-6": (5.0, 25.0),
    "opus": (15.0, 75.0),
    "sonnet": (3.0, 15.0),
    "haiku-4-5": (1.0, 5.0),
    "haiku": (0.8, 4.0),
}


def estimate_cost_usd(model: str, input_tokens: int, output_tokens: int) -> float | None:
    """What `input_tokens` and `output_tokens` cost on `model`, or None for an unknown model."""
    keys = [key for key in PRICES_PER_MTOK if key in model.lower()]
    if not keys:
        return None
    per_in, per_out = PRICES_PER_MTOK[max(keys, key=len)]
    return (input_tokens * per_in + output_tokens * per_out) / 1_000_000


@attrs.frozen
class Step:
    """One tool call as the live message lists it; `ok` is None while it runs."""

    label: str
    ok: bool | None = None


@attrs.frozen
class ProgressView:
    """What the live message shows about the agent's work at one moment."""

    current: Step | None
    recent: tuple[Step, ...]
    #: False for agents that report a tool only when it finished (OpenCode): the view then
    #: says "last step" instead of pretending to know the current one.
    knows_current_step: bool
    input_tokens: int
    output_tokens: int
    cost_usd: float | None
    cost_is_estimate: bool
    latest_text: str
    plan: tuple[PlanItem, ...]
    steps_done: int


@attrs.frozen
class AgentSummary:
    """What a finished (or stopped) agent run leaves on its job: the card's facts and the bill."""

    answer: str = ""
    ok: bool | None = None
    cost_usd: float | None = None
    input_tokens: int = 0
    output_tokens: int = 0
    turns: int | None = None
    model: str = ""
    session_id: str = ""
    error_kind: ErrorKind | None = None
    error: str = ""
    files: tuple[FileChange, ...] = ()
    files_summary: str = ""
    tool_calls: int = 0


@attrs.define
class AgentProgress:
    agent: str = ""
    model: str = ""
    session_id: str = ""
    input_tokens: int = 0
    output_tokens: int = 0
    reported_cost_usd: float | None = None
    latest_text: str = ""
    answer: str = ""
    plan: tuple[PlanItem, ...] = ()
    result: AgentFinished | None = None
    files: FilesChanged | None = None
    saw_events: bool = False
    knows_current_step: bool = True
    _running: dict[str, Step] = attrs.field(factory=dict)
    _recent: deque[Step] = attrs.field(factory=lambda: deque(maxlen=RECENT_STEPS))
    _steps_done: int = 0
    _saw_tool_start: bool = False

    def apply(self, event: AgentEvent) -> None:
        self.saw_events = True
        if isinstance(event, AgentStarted):
            self.agent = event.agent or self.agent
            self.model = event.model or self.model
            self.session_id = event.session_id or self.session_id
        elif isinstance(event, AgentText):
            text = event.text.strip()
            if text:
                # The first line, once: the view is asked for at every chat hand-off.
                self.latest_text = one_line(text.lstrip("# "))
                self.answer = text
        elif isinstance(event, ToolStarted):
            self._saw_tool_start = True
            self._running[event.id] = Step(step_label(event.tool, event.summary))
        elif isinstance(event, ToolFinished):
            started = self._running.pop(event.id, None)
            label = started.label if started is not None else step_label(event.tool, event.summary)
            self._recent.append(Step(label, event.ok))
            self._steps_done += 1
            if not self._saw_tool_start:
                self.knows_current_step = False
        elif isinstance(event, PlanUpdated):
            self.plan = event.items
        elif isinstance(event, UsageReported):
            self.input_tokens = max(self.input_tokens, event.input_tokens)
            self.output_tokens = max(self.output_tokens, event.output_tokens)
            if event.cost_usd is not None:
                self.reported_cost_usd = event.cost_usd
        elif isinstance(event, FilesChanged):
            self.files = event
        elif isinstance(event, AgentFinished):
            self.result = event
            self.model = event.model or self.model
            self.session_id = event.session_id or self.session_id
            if event.answer.strip():
                self.answer = event.answer.strip()
            if event.input_tokens is not None:
                self.input_tokens = max(self.input_tokens, event.input_tokens)
            if event.output_tokens is not None:
                self.output_tokens = max(self.output_tokens, event.output_tokens)
            if event.cost_usd is not None:
                self.reported_cost_usd = event.cost_usd

    @property
    def cost_usd(self) -> float | None:
        """The agent's own figure when it gave one, else an estimate from the tokens."""
        if self.reported_cost_usd is not None:
            return self.reported_cost_usd
        return estimate_cost_usd(self.model, self.input_tokens, self.output_tokens)

    def cost_over(self, cap_usd: float | None) -> float | None:
        """The cost so far when it reached `cap_usd`, else None."""
        cost = self.cost_usd
        if cap_usd is None or cost is None or cost < cap_usd:
            return None
        return cost

    def view(self) -> ProgressView:
        current = next(reversed(self._running.values()), None) if self._running else None
        return ProgressView(
            current=current,
            recent=tuple(self._recent),
            knows_current_step=self.knows_current_step,
            input_tokens=self.input_tokens,
            output_tokens=self.output_tokens,
            cost_usd=self.cost_usd,
            cost_is_estimate=self.reported_cost_usd is None,
            latest_text=self.latest_text,
            plan=self.plan,
            steps_done=self._steps_done,
        )

    def summary(self) -> AgentSummary:
        result = self.result
        return AgentSummary(
            answer=self.answer,
            ok=result.ok if result is not None else None,
            cost_usd=self.cost_usd,
            input_tokens=self.input_tokens,
            output_tokens=self.output_tokens,
            turns=result.turns if result is not None else None,
            model=self.model,
            session_id=self.session_id,
            error_kind=result.error_kind if result is not None else None,
            error=result.error if result is not None else "",
            files=self.files.files if self.files is not None else (),
            files_summary=self.files.summary if self.files is not None else "",
            tool_calls=self._steps_done,
        )


#: Failures of the model API rather than of the agent: the card names the API as the stage.
MODEL_API_ERRORS = frozenset({ErrorKind.AUTH, ErrorKind.RATE_LIMIT, ErrorKind.OVERLOADED})


def stopped_at_cost_cap(cap_usd: float, cost_usd: float) -> str:
    """`stopped: cost cap $2.50 reached at $2.61`, the card's reason for a capped job."""
    return f"stopped: cost cap {format_cost(cap_usd)} reached at {format_cost(cost_usd)}"


def explain_agent_failure(kind: ErrorKind | None, error: str, agent: str) -> str | None:
    """A failure reason a user can act on, from the agent's own account; None when it gave none."""
    detail = f" ({one_line(error, 160)})" if error.strip() else ""
    name = {"claude": "Claude Code", "opencode": "OpenCode"}.get(agent, agent or "the agent")
    if kind is ErrorKind.AUTH:
        return (
            f"{name} could not authenticate to its model API{detail}: check the API key the sprites "
            "get (ANTHROPIC_API_KEY, or the provider key in the agent's configuration)"
        )
    if kind is ErrorKind.RATE_LIMIT:
        return f"the model API kept refusing {name} for its rate limit, after the agent's own retries{detail}; try again later"
    if kind is ErrorKind.OVERLOADED:
        return f"the model API was overloaded, after {name}'s own retries{detail}; try again later"
    if kind is ErrorKind.MAX_TURNS:
        return f"{name} stopped at its turn limit before finishing{detail}"
    if kind is ErrorKind.BUDGET:
        return f"{name} stopped at its own cost budget{detail}"
    if kind is ErrorKind.CRASH:
        return f"{name} crashed without reporting a result{detail}"
    if kind is ErrorKind.AGENT_ERROR:
        return f"{name} reported an error{detail}"
    return None
