from __future__ import annotations

import re

import attrs
import pytest
from hypothesis import given
from hypothesis import strategies as st

from opendispatch.domain.output_buffer import (
    MIN_SPLIT_LIMIT,
    OutputBuffer,
    PageUpdate,
    cut_line,
    split_message,
)


def page_size(lines: tuple[str, ...]) -> int:
    return len("\n".join(lines))


# --- OutputBuffer: timing ---------------------------------------------------------------------


def test_nothing_to_do_before_the_first_line() -> None:
    buffer = OutputBuffer()

    assert buffer.next_flush_at() is None
    assert buffer.flush(100.0) == []
    buffer.append([], now=5.0)
    assert buffer.next_flush_at() is None


def test_the_first_lines_are_flushable_at_once() -> None:
    buffer = OutputBuffer()
    buffer.append(["cloning", "installing"], now=50.0)

    assert buffer.next_flush_at() == 50.0
    assert buffer.flush(50.0) == [PageUpdate(page=0, lines=("cloning", "installing"), omitted=0, sealed=False)]


def test_the_due_time_is_that_of_the_first_pending_append() -> None:
    buffer = OutputBuffer()
    buffer.append(["a"], now=50.0)
    buffer.append(["b"], now=53.0)

    assert buffer.next_flush_at() == 50.0


def test_a_scheduled_flush_is_not_brought_forward_by_more_lines() -> None:
    """What lets the job runner sleep until the flush instead of waking for every batch."""
    buffer = OutputBuffer(min_interval_s=1.0, heartbeat_s=30.0)
    assert not buffer.flush_scheduled
    buffer.append(["a"], now=10.0)
    buffer.flush(10.0)
    assert not buffer.flush_scheduled  # only the heartbeat is due, and new lines come earlier

    buffer.append(["b"], now=10.2)
    assert buffer.flush_scheduled
    due = buffer.next_flush_at()
    buffer.append(["c"] * 50, now=10.5)
    assert buffer.next_flush_at() == due == 11.0
    assert buffer.flush(11.0)[-1].lines[-1] == "c"
    assert not buffer.flush_scheduled

    buffer.append(["d"], now=11.5)
    buffer.flush_final(11.6)
    assert not buffer.flush_scheduled


def test_flushes_are_at_least_min_interval_apart() -> None:
    buffer = OutputBuffer(min_interval_s=1.0)
    buffer.append(["a"], now=10.0)
    buffer.flush(10.0)
    buffer.append(["b"], now=10.2)

    assert buffer.next_flush_at() == 11.0
    assert buffer.flush(10.9) == []
    assert buffer.flush(11.0) == [PageUpdate(page=0, lines=("a", "b"), omitted=0, sealed=False)]


def test_lines_after_a_quiet_spell_are_due_when_they_arrive() -> None:
    buffer = OutputBuffer(min_interval_s=1.0, heartbeat_s=10.0)
    buffer.append(["a"], now=10.0)
    buffer.flush(10.0)
    buffer.append(["b"], now=15.0)

    assert buffer.next_flush_at() == 15.0


def test_without_new_lines_the_open_page_is_re_sent_after_the_heartbeat() -> None:
    buffer = OutputBuffer(heartbeat_s=10.0)
    buffer.append(["working"], now=0.0)
    buffer.flush(0.0)

    assert buffer.next_flush_at() == 10.0
    assert buffer.flush(9.9) == []
    assert buffer.flush(10.0) == [PageUpdate(page=0, lines=("working",), omitted=0, sealed=False)]
    assert buffer.next_flush_at() == 20.0


def test_an_infinite_heartbeat_means_no_re_sends() -> None:
    buffer = OutputBuffer(heartbeat_s=float("inf"))
    buffer.append(["working"], now=0.0)
    buffer.flush(0.0)

    assert buffer.next_flush_at() is None


def test_a_flush_without_changes_before_the_heartbeat_sends_nothing() -> None:
    buffer = OutputBuffer(min_interval_s=1.0, heartbeat_s=10.0)
    buffer.append(["a"], now=0.0)
    buffer.flush(0.0)

    assert buffer.flush(5.0) == []


# --- OutputBuffer: pages ----------------------------------------------------------------------


def test_a_full_page_is_sealed_and_the_next_one_starts_in_the_same_flush() -> None:
    buffer = OutputBuffer(max_chars=7)
    buffer.append(["abc", "def", "ghi"], now=0.0)  # "abc\ndef" is exactly 7

    assert buffer.flush(0.0) == [
        PageUpdate(page=0, lines=("abc", "def"), omitted=0, sealed=True),
        PageUpdate(page=1, lines=("ghi",), omitted=0, sealed=False),
    ]


def test_a_page_already_shown_gets_a_final_sealing_edit_then_only_the_new_page_changes() -> None:
    buffer = OutputBuffer(max_chars=7, min_interval_s=1.0)
    buffer.append(["abc", "def"], now=0.0)
    buffer.flush(0.0)
    buffer.append(["ghi"], now=0.5)
    assert buffer.flush(1.0) == [
        PageUpdate(page=0, lines=("abc", "def"), omitted=0, sealed=True),
        PageUpdate(page=1, lines=("ghi",), omitted=0, sealed=False),
    ]
    buffer.append(["jk"], now=1.5)

    assert buffer.flush(2.0) == [PageUpdate(page=1, lines=("ghi", "jk"), omitted=0, sealed=False)]


def test_a_line_is_never_split_across_pages() -> None:
    buffer = OutputBuffer(max_chars=10)
    buffer.append(["12345", "123456"], now=0.0)

    assert [update.lines for update in buffer.flush(0.0)] == [("12345",), ("123456",)]


def test_an_over_long_line_is_cut_into_pieces_of_max_chars() -> None:
    buffer = OutputBuffer(max_chars=4)
    buffer.append(["abcdefghij"], now=0.0)

    assert [update.lines for update in buffer.flush(0.0)] == [("abcd",), ("efgh",), ("ij",)]
    assert buffer.total_lines == 3


def test_empty_lines_are_kept() -> None:
    buffer = OutputBuffer(max_chars=5)
    buffer.append(["", "a", "", ""], now=0.0)

    assert buffer.flush(0.0) == [PageUpdate(page=0, lines=("", "a", "", ""), omitted=0, sealed=False)]
    assert buffer.total_lines == 4


def test_the_last_page_rolls_and_counts_what_it_dropped() -> None:
    buffer = OutputBuffer(max_chars=3, max_pages=2)
    buffer.append(["a", "b", "c", "d", "e"], now=0.0)

    assert buffer.flush(0.0) == [
        PageUpdate(page=0, lines=("a", "b"), omitted=0, sealed=True),
        PageUpdate(page=1, lines=("d", "e"), omitted=1, sealed=False),
    ]


def test_a_single_page_buffer_is_a_rolling_tail() -> None:
    buffer = OutputBuffer(max_chars=5, max_pages=1)
    buffer.append(["one", "two", "three"], now=0.0)
    buffer.append(["four"], now=0.0)

    assert buffer.flush_final(1.0) == [PageUpdate(page=0, lines=("four",), omitted=3, sealed=True)]


def test_flush_final_seals_the_open_page_at_once_and_ends_the_buffer() -> None:
    buffer = OutputBuffer(min_interval_s=1.0)
    buffer.append(["a"], now=0.0)
    buffer.flush(0.0)
    buffer.append(["b"], now=0.1)

    assert buffer.flush_final(0.2) == [PageUpdate(page=0, lines=("a", "b"), omitted=0, sealed=True)]
    assert buffer.next_flush_at() is None
    assert buffer.flush(100.0) == []
    assert buffer.flush_final(100.0) == []


def test_flush_final_seals_a_page_even_when_its_content_was_already_shown() -> None:
    buffer = OutputBuffer()
    buffer.append(["a"], now=0.0)
    buffer.flush(0.0)

    assert buffer.flush_final(0.5) == [PageUpdate(page=0, lines=("a",), omitted=0, sealed=True)]


def test_flush_final_without_output_has_nothing_to_send() -> None:
    buffer = OutputBuffer()

    assert buffer.flush_final(1.0) == []
    assert buffer.next_flush_at() is None


def test_lines_appended_after_the_final_flush_are_ignored() -> None:
    buffer = OutputBuffer()
    buffer.append(["a"], now=0.0)
    buffer.flush_final(1.0)

    buffer.append(["late"], now=2.0)

    assert buffer.total_lines == 1
    assert buffer.next_flush_at() is None
    assert buffer.flush(100.0) == []
    assert buffer.flush_final(100.0) == []


def test_repr_does_not_show_output() -> None:
    buffer = OutputBuffer()
    buffer.append(["the output itself"], now=0.0)

    assert "the output itself" not in repr(buffer)
    assert "the output itself" not in repr(buffer.flush(0.0))


@pytest.mark.parametrize(
    "settings",
    [{"max_chars": 0}, {"max_pages": 0}, {"min_interval_s": -1.0}, {"heartbeat_s": 0.0}],
)
def test_nonsense_settings_are_refused(settings: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        OutputBuffer(**settings)  # type: ignore[arg-type]


# --- OutputBuffer: the property ---------------------------------------------------------------


@attrs.define
class ChatScreen:
    """Applies updates the way a chat adapter would, checking the promises on the way."""

    max_chars: int
    max_pages: int
    pages: list[PageUpdate] = attrs.field(factory=list)

    def apply(self, updates: list[PageUpdate]) -> None:
        for update in updates:
            assert page_size(update.lines) <= self.max_chars
            assert update.page < self.max_pages
            assert update.omitted == 0 or update.page == self.max_pages - 1
            if update.page == len(self.pages):
                assert all(page.sealed for page in self.pages), "a new page before the last was sealed"
                self.pages.append(update)
            else:
                assert update.page == len(self.pages) - 1, "only the newest page changes"
                assert not self.pages[update.page].sealed, "a sealed page changed"
                self.pages[update.page] = update


output_line = st.one_of(
    st.just(""),
    st.text(alphabet="ab ", max_size=6),
    st.text(alphabet="xyz", min_size=5, max_size=40),  # often longer than max_chars
)
Step = tuple[str, list[str], float]
append_step: st.SearchStrategy[Step] = st.tuples(st.just("append"), st.lists(output_line, max_size=6), st.floats(0, 3))
flush_step: st.SearchStrategy[Step] = st.tuples(st.just("flush"), st.just([]), st.floats(0, 15))


@given(
    max_chars=st.integers(1, 30),
    max_pages=st.one_of(st.integers(1, 4), st.just(10_000)),
    min_interval_s=st.floats(0, 3),
    heartbeat_s=st.floats(0.1, 20),
    steps=st.lists(st.one_of(append_step, flush_step), max_size=30),
)
def test_every_line_is_accounted_for_and_every_page_fits(
    max_chars: int,
    max_pages: int,
    min_interval_s: float,
    heartbeat_s: float,
    steps: list[Step],
) -> None:
    buffer = OutputBuffer(
        max_chars=max_chars, min_interval_s=min_interval_s, heartbeat_s=heartbeat_s, max_pages=max_pages
    )
    screen = ChatScreen(max_chars=max_chars, max_pages=max_pages)
    expected: list[str] = []
    now = 0.0
    last_flush: float | None = None
    appended_since_flush = False
    for kind, lines, elapsed in steps:
        now += elapsed
        if kind == "append":
            buffer.append(lines, now)
            expected.extend(piece for line in lines for piece in cut_line(line, max_chars))
            appended_since_flush = appended_since_flush or bool(lines)
            continue
        due = buffer.next_flush_at()
        before = {page.page: page for page in screen.pages}
        updates = buffer.flush(now)
        if due is None or now < due:
            assert updates == []
            continue
        assert updates, "a due flush sends something"
        if last_flush is not None:
            assert now >= last_flush + min_interval_s
        for update in updates:
            if before.get(update.page) == update:  # an unchanged page: only as a heartbeat
                assert not appended_since_flush
                assert last_flush is not None and now >= last_flush + heartbeat_s
        screen.apply(updates)
        last_flush, appended_since_flush = now, False

    screen.apply(buffer.flush_final(now + 0.001))

    assert buffer.next_flush_at() is None
    assert buffer.total_lines == len(expected)
    assert all(page.sealed for page in screen.pages)
    shown = [line for page in screen.pages for line in page.lines]
    omitted = screen.pages[-1].omitted if screen.pages else 0
    assert len(shown) + omitted == len(expected)
    if len(screen.pages) < max_pages:  # no rollover
        assert omitted == 0
        assert shown == expected
    else:
        settled = [line for page in screen.pages[:-1] for line in page.lines]
        tail = list(screen.pages[-1].lines)
        assert expected[: len(settled)] == settled
        assert expected[len(expected) - len(tail) :] == tail


# --- split_message ----------------------------------------------------------------------------

FENCE_LINE = re.compile(r" {0,3}```")


def fence_count(text: str) -> int:
    return sum(1 for line in text.split("\n") if FENCE_LINE.match(line))


def recovers(chunks: list[str], text: str) -> bool:
    """True if removing fence pairs added at chunk breaks and rejoining gives back `text`.

    A chunk may end with an added "\\n```" only if the next one starts with an added fence line;
    between chunks the original had a newline (a cut between lines) or nothing (a cut inside a
    line), or a run of blank lines that made no message of its own. Searched exhaustively
    because an added fence can look exactly like one in the text.
    """

    def search(index: int, position: int, reopened: bool) -> bool:
        if index == len(chunks):
            return not text[position:].strip()
        skippable = len(text[position:]) - len(text[position:].lstrip())
        return any(match_chunk(index, start, reopened) for start in range(position, position + skippable + 1))

    def match_chunk(index: int, position: int, reopened: bool) -> bool:
        chunk = chunks[index]
        if reopened:
            head, newline, chunk = chunk.partition("\n")
            if not newline or not FENCE_LINE.match(head):
                return False
        for closed in (False, True):
            body = chunk
            if closed:
                if index == len(chunks) - 1 or not body.endswith("\n```"):
                    continue
                body = body[: -len("\n```")]
            if not text.startswith(body, position):
                continue
            end = position + len(body)
            if end < len(text) and text[end] == "\n" and search(index + 1, end + 1, closed):
                return True
            if search(index + 1, end, closed):
                return True
        return False

    return search(0, 0, False)


def test_a_short_text_is_one_message() -> None:
    assert split_message("hello\nworld", 100) == ["hello\nworld"]


def test_blank_text_is_no_message() -> None:
    assert split_message("", 100) == []
    assert split_message(" \n\n", 100) == []


def test_a_limit_too_small_for_fences_is_refused() -> None:
    with pytest.raises(ValueError, match=str(MIN_SPLIT_LIMIT)):
        split_message("text", MIN_SPLIT_LIMIT - 1)


def test_cuts_fall_between_lines() -> None:
    text = "\n".join(f"line {number:02}" for number in range(10))  # 7 chars a line

    chunks = split_message(text, 40)

    assert chunks == [
        "line 00\nline 01\nline 02\nline 03\nline 04",
        "line 05\nline 06\nline 07\nline 08\nline 09",
    ]


def test_an_over_long_line_is_cut_hard() -> None:
    chunks = split_message("x" * 100, 40)

    assert all(len(chunk) <= 40 for chunk in chunks)
    assert "".join(chunks) == "x" * 100


def test_a_code_block_cut_in_two_is_closed_and_reopened_with_its_language() -> None:
    code = "\n".join(f"print({number})" for number in range(6))  # 8 chars a line
    text = f"Result:\n```python\n{code}\n```\ndone"

    chunks = split_message(text, 40)

    assert chunks == [
        "Result:\n```python\nprint(0)\nprint(1)\n```",
        "```python\nprint(2)\nprint(3)\nprint(4)\n```",
        "```python\nprint(5)\n```\ndone",
    ]


def test_an_odd_fence_line_is_reopened_as_a_bare_fence() -> None:
    opener = "```" + "a-very-long-info-string"
    text = opener + "\n" + "\n".join(["code line"] * 6) + "\n```"

    chunks = split_message(text, 40)

    assert chunks[1].startswith("```\ncode line")


messages_line = st.one_of(
    st.just(""),
    st.sampled_from(["```", "```py", "  ```", "```" + "x" * 30, "    ```"]),
    st.text(alphabet="ab` \t", max_size=20),
    st.text(alphabet="cd`", min_size=30, max_size=120),
)


@given(lines=st.lists(messages_line, max_size=25), limit=st.integers(MIN_SPLIT_LIMIT, 80))
def test_chunks_fit_balance_their_fences_and_give_back_the_text(lines: list[str], limit: int) -> None:
    text = "\n".join(lines)

    chunks = split_message(text, limit)

    assert all(0 < len(chunk) <= limit for chunk in chunks)
    for chunk in chunks[:-1]:
        assert fence_count(chunk) % 2 == 0, chunk
    if chunks:
        assert recovers(chunks, text)
        if all(len(line) + 25 <= limit for line in lines):  # no line was cut, so no fence was
            assert fence_count(chunks[-1]) % 2 == fence_count(text) % 2
    else:
        assert not text.strip()


# --- OutputBuffer: taking over a job another process showed ------------------------------------


def test_resumed_pages_are_not_sent_again_until_they_change() -> None:
    shown = OutputBuffer(max_chars=20, min_interval_s=1.0)
    shown.append([f"line {i}" for i in range(1, 8)], now=0.0)
    before = shown.flush(0.0)
    resumed = OutputBuffer(max_chars=20, min_interval_s=1.0)
    resumed.resume([f"line {i}" for i in range(1, 8)], 5.0, shown_pages={update.page for update in before})
    assert resumed.next_flush_at() == 5.0 + resumed.heartbeat_s  # nothing but the heartbeat is due
    assert resumed.flush(6.0) == []
    resumed.append(["line 8"], now=7.0)
    [update] = resumed.flush(7.0)
    assert update.page == before[-1].page
    assert update.lines == (*before[-1].lines, "line 8")  # the same message, edited: nothing twice


def test_a_page_the_earlier_process_never_posted_is_sent() -> None:
    resumed = OutputBuffer(max_chars=20, min_interval_s=1.0)
    resumed.resume([f"line {i}" for i in range(1, 8)], 5.0, shown_pages={0})
    updates = resumed.flush(5.0 + 1.0)
    assert [u.page for u in updates] == [1, 2] and updates[0].lines == ("line 4", "line 5", "line 6")
