"""How much output one job may store: a job that prints forever must not fill the disk.

A review's job printed two million lines (a 95 MB write-ahead log) and nothing stopped it.
Past the quota the job goes on (its agent may still finish its work and report), but its
lines are no longer stored: one notice line says where the output stops, and the card says
so. Characters stand in for bytes: counting them is one C call per line, and a job that
writes multi-byte text reaches the cap a little later, never much later.
"""

from __future__ import annotations

from collections.abc import Sequence

import attrs

DEFAULT_MAX_OUTPUT_LINES = 200_000
DEFAULT_MAX_OUTPUT_CHARS = 50 * 1024 * 1024


def format_count(count: int) -> str:
    return f"{count:,}"


def truncation_notice(max_lines: int, max_chars: int) -> str:
    """The last stored line of a job whose output reached its quota."""
    return (
        f"… output truncated here: a job keeps at most {format_count(max_lines)} lines and "
        f"{format_count(max_chars // (1024 * 1024))} MB of output (OPENDISPATCH_MAX_OUTPUT_LINES, "
        "OPENDISPATCH_MAX_OUTPUT_MB); the job went on, later lines were not kept"
    )


@attrs.define
class OutputQuota:
    """The lines and characters a job has stored, against its limits."""

    max_lines: int = attrs.field(default=DEFAULT_MAX_OUTPUT_LINES, validator=attrs.validators.ge(1))
    max_chars: int = attrs.field(default=DEFAULT_MAX_OUTPUT_CHARS, validator=attrs.validators.ge(1))
    lines: int = 0
    chars: int = 0
    #: The notice has been given: nothing more is admitted.
    truncated: bool = False

    def admit(self, lines: Sequence[str]) -> tuple[Sequence[str], bool]:
        """The lines to store, and whether this call reached the quota.

        Lines that fit are kept whole; the call that reaches the quota gets the notice as its
        last line (it is counted, so the stored total may exceed `max_lines` by one).
        """
        if self.truncated:
            return (), False
        size = sum(map(len, lines))
        if self.lines + len(lines) <= self.max_lines and self.chars + size <= self.max_chars:
            self.lines += len(lines)
            self.chars += size
            return lines, False
        kept: list[str] = []
        for line in lines:
            if self.lines + 1 > self.max_lines or self.chars + len(line) > self.max_chars:
                break
            kept.append(line)
            self.lines += 1
            self.chars += len(line)
        notice = truncation_notice(self.max_lines, self.max_chars)
        kept.append(notice)
        self.lines += 1
        self.chars += len(notice)
        self.truncated = True
        return kept, True

    def refund(self, lines: Sequence[str]) -> None:
        """Lines admitted but not stored after all (a batch the store already had)."""
        self.lines = max(0, self.lines - len(lines))
        self.chars = max(0, self.chars - sum(map(len, lines)))
