"""Bar charts as server-rendered SVG geometry: no script, no library, numbers beside bars.

The template draws rectangles from these values; every label is escaped there.
"""

from __future__ import annotations

from collections.abc import Sequence

import attrs

from ...domain.usage import UsageBar

BAR_HEIGHT = 22
GAP = 6
LABEL_WIDTH = 220
PLOT_WIDTH = 420
MAX_BARS = 60


@attrs.frozen
class ChartBar:
    label: str
    y: int
    width: int
    cost: str
    jobs: int


@attrs.frozen
class Chart:
    title: str
    bars: tuple[ChartBar, ...]
    height: int
    label_width: int = LABEL_WIDTH
    plot_width: int = PLOT_WIDTH
    #: Bars left out (more than MAX_BARS); the table beside lists every one.
    omitted: int = 0

    @property
    def width(self) -> int:
        return self.label_width + self.plot_width + 140


def bar_chart(bars: Sequence[UsageBar], *, title: str) -> Chart:
    """Bars scaled to the largest cost (or job count, when nothing was costed)."""
    shown = list(bars[:MAX_BARS])
    by_cost = any(bar.cost_usd > 0 for bar in shown)
    top = max((bar.cost_usd if by_cost else bar.jobs for bar in shown), default=0) or 1
    out = []
    for index, bar in enumerate(shown):
        value = bar.cost_usd if by_cost else bar.jobs
        out.append(
            ChartBar(
                label=bar.label if len(bar.label) <= 32 else bar.label[:31] + "…",
                y=index * (BAR_HEIGHT + GAP),
                width=max(1, round(PLOT_WIDTH * value / top)) if value else 0,
                cost=f"${bar.cost_usd:,.2f}",
                jobs=bar.jobs,
            )
        )
    return Chart(
        title=title,
        bars=tuple(out),
        height=max(BAR_HEIGHT, len(out) * (BAR_HEIGHT + GAP)),
        omitted=len(bars) - len(shown),
    )
