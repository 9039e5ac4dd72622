"""Terminal residue out of output lines: what a terminal would show, never its control codes.

Agents and shell commands write for a terminal: colours (`ESC[0m`), cursor moves, window
titles (OSC), progress bars redrawn with a bare `\\r`. In chat they are noise at best, and a
`\\r` or a cursor move can make a line look like something it is not. Each line is cleaned
once, before it is stored or shown, so `/od-logs`, the live message and the card agree.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

#: CSI (`ESC [ ... final`), OSC (`ESC ] ... BEL` or `ESC \\`), and other two-character escapes.
_ESCAPE = re.compile(
    r"\x1b\[[0-?]*[ -/]*[@-~]"  # CSI: colours, cursor moves, erase
    r"|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)?"  # OSC: titles, hyperlinks
    r"|\x1b[PX^_][^\x1b]*(?:\x1b\\)?"  # DCS, SOS, PM, APC strings
    r"|\x1b[ -/]*[0-~]?"  # any other escape (and a lone ESC)
    r"|\x9b[0-?]*[ -/]*[@-~]"  # 8-bit CSI
)
#: C0 controls except tab, DEL and a stray 8-bit CSI: nothing a chat message should carry.
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f\x9b]")
#: Anything that needs cleaning; most lines have none, and this one search is all they cost.
_ANY = re.compile(r"[\x00-\x08\x0a-\x1f\x7f\x9b]")


def clean_line(line: str) -> str:
    """`line` as a terminal would leave it, without control codes.

    A bare `\\r` returns the cursor to the start of the line: what follows overwrote what came
    before, so (as a terminal shows it) the text after the last `\\r` wins where it is longer,
    and a trailing `\\r` (a CRLF split across reads) is dropped.
    """
    if _ANY.search(line) is None:
        return line
    text = _ESCAPE.sub("", line)
    if "\r" in text:
        text = _overwrite(text.rstrip("\r").split("\r"))
    return _CONTROL.sub("", text)


def clean_text(text: str) -> str:
    """`clean_line` for each line of a multi-line text (an agent's answer), newlines kept."""
    if _ANY.search(text.replace("\n", "")) is None:
        return text
    return "\n".join(clean_line(line) for line in text.replace("\r\n", "\n").split("\n"))


def clean_lines(lines: Sequence[str]) -> Sequence[str]:
    """`clean_line` for each; the same sequence when nothing needed cleaning (the usual case)."""
    if _ANY.search("".join(lines)) is None:
        return lines
    return [clean_line(line) for line in lines]


def _overwrite(segments: list[str]) -> str:
    shown = ""
    for segment in segments:
        shown = segment + shown[len(segment) :]
    return shown
