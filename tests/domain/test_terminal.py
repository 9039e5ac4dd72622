"""Terminal residue never reaches chat or the log."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from opendispatch.domain.terminal import clean_line, clean_lines, clean_text


@pytest.mark.parametrize(
    ("raw", "shown"),
    [
        ("plain text", "plain text"),
        ("\x1b[0m$ \x1b[0mecho hi", "$ echo hi"),  # OpenCode's default output
        ("\x1b[1;31mred\x1b[39;49m and \x1b[38;5;208morange\x1b[0m", "red and orange"),
        ("\x1b]0;window title\x07prompt", "prompt"),
        ("\x1b]8;;https://example.com\x1b\\link\x1b]8;;\x1b\\", "link"),
        ("\x1b[2K\x1b[1Gprogress", "progress"),
        ("downloading 10%\rdownloading 100%", "downloading 100%"),
        ("abcdef\rXY", "XYcdef"),  # a shorter rewrite leaves the rest, as a terminal would
        ("line ending in CR\r", "line ending in CR"),
        ("bell\x07 and backspace\x08 and nul\x00", "bell and backspace and nul"),
        ("tab\tstays", "tab\tstays"),
        ("lone escape \x1b", "lone escape "),
        ("8-bit csi \x9b31mred", "8-bit csi red"),
        ("unicode ✓ – fine", "unicode ✓ – fine"),
    ],
)
def test_clean_line(raw: str, shown: str) -> None:
    assert clean_line(raw) == shown


def test_clean_lines_returns_the_same_sequence_when_nothing_needs_cleaning() -> None:
    lines = ("a", "b")
    assert clean_lines(lines) is lines
    assert clean_lines(["\x1b[0ma", "b"]) == ["a", "b"]


@given(st.text())
def test_no_control_character_survives(text: str) -> None:
    cleaned = clean_line(text)
    assert not any(ord(c) < 32 and c != "\t" or c in "\x7f\x9b" for c in cleaned)
    assert clean_line(cleaned) == cleaned


def test_clean_text_keeps_the_lines_of_an_answer() -> None:
    assert clean_text("# Title\n\x1b[1mbold\x1b[0m\r\nnext") == "# Title\nbold\nnext"
    text = "unchanged\ntext"
    assert clean_text(text) is text
