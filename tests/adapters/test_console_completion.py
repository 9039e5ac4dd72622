"""What Tab offers at the console prompt, as a function of the text before the cursor."""

from __future__ import annotations

from opendispatch.adapters.console.completion import completions
from opendispatch.domain.commands import USAGE

JOBS = ("j-0000000c", "j-0000000b", "j-1234abcd")  # newest first, as the console keeps them


def test_the_first_word_completes_to_a_command_with_or_without_the_slash() -> None:
    assert completions("/od-j", JOBS) == ["/od-jobs"]
    assert completions("od-j", JOBS) == ["od-jobs"]
    assert completions("/OD-L", JOBS) == ["/od-list", "/od-logs"]
    assert completions("q", JOBS) == ["quit"]


def test_every_command_of_the_grammar_is_offered_in_its_order() -> None:
    assert completions("/od-", JOBS) == [f"/{name}" for name in USAGE]
    assert completions("", JOBS) == [*USAGE, "quit", "exit"]


def test_a_complete_word_is_not_offered_again() -> None:
    assert completions("/od-jobs", JOBS) == []


def test_options_come_from_the_command_usage() -> None:
    assert completions("/od-run --re", JOBS) == ["--repo"]
    assert completions("/od-jobs --", JOBS) == ["--all", "--status", "--limit"]
    assert completions("/od-logs j-1234abcd --t", JOBS) == ["--tail"]


def test_commands_that_take_a_job_are_offered_the_jobs_seen_newest_first() -> None:
    assert completions("/od-logs ", JOBS) == list(JOBS)
    assert completions("/od-cancel j-0", JOBS) == ["j-0000000c", "j-0000000b"]
    assert completions("od-logs J-12", JOBS) == ["j-1234abcd"]


def test_a_word_that_starts_like_a_job_id_is_completed_anywhere_after_a_command() -> None:
    assert completions("/od-send fixer look at j-12", JOBS) == ["j-1234abcd"]
    assert completions("/od-send fixer look at ", JOBS) == []


def test_help_is_offered_the_command_names() -> None:
    assert completions("/od-help r", JOBS) == ["run"]
    assert completions("/od-help od-r", JOBS) == ["od-run"]
    assert completions("/od-help run ", JOBS) == []


def test_nothing_is_offered_after_an_unknown_word_or_inside_a_task() -> None:
    assert completions("/od-frob ", JOBS) == []
    assert completions('/od-run "fix the ', JOBS) == []
