from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from opendispatch.domain.redaction import MIN_SECRET_LENGTH, REDACTED, Redactor
from opendispatch.domain.tokens import TOKEN_PATTERN, TokenIssuer

API_KEY = "sk-live-4f9a8b7c6d5e"
GITHUB_TOKEN = "ghp_0123456789abcdefABCDEF"


def test_a_secret_in_the_middle_of_text_is_replaced() -> None:
    redactor = Redactor.of([API_KEY])

    assert redactor.redact(f"export KEY={API_KEY} && run") == "export KEY=*** && run"


def test_every_occurrence_is_replaced() -> None:
    redactor = Redactor.of([API_KEY])

    assert redactor.redact(f"{API_KEY} and {API_KEY}") == "*** and ***"


def test_adjacent_secrets_are_each_replaced() -> None:
    redactor = Redactor.of([API_KEY, GITHUB_TOKEN])

    assert redactor.redact(f"[{API_KEY}{GITHUB_TOKEN}]") == "[******]"


def test_when_one_secret_is_a_prefix_of_another_the_longer_one_is_replaced_whole() -> None:
    short, long = "hunter22", "hunter22-extended"
    for order in ([short, long], [long, short]):
        redactor = Redactor.of(order)

        assert redactor.redact(f"a {long} b {short} c") == "a *** b *** c"


def test_overlapping_secrets_are_replaced_as_one_span_leaving_no_fragment() -> None:
    redactor = Redactor.of(["abcdef12", "ef12ghij"])

    assert redactor.redact("x abcdef12ghij y") == "x *** y"


def test_regex_metacharacters_in_secrets_are_literal() -> None:
    secret = "p@ss.w*rd(1)+[x]|$^\\"
    redactor = Redactor.of([secret])

    assert redactor.redact(f"pw={secret};") == "pw=***;"
    assert redactor.redact("pXss-wwwrd11x") == "pXss-wwwrd11x"


def test_unset_empty_and_short_values_are_ignored() -> None:
    redactor = Redactor.of([None, "", "dev", "12345", "      ", "  abc  ", API_KEY])

    assert redactor.secrets == (API_KEY,)
    assert redactor.redact("dev 12345 abc") == "dev 12345 abc"


def test_a_value_exactly_the_minimum_length_is_a_secret() -> None:
    value = "x" * MIN_SECRET_LENGTH

    assert Redactor.of([value]).redact(f"[{value}]") == "[***]"


def test_duplicates_are_dropped_keeping_order() -> None:
    assert Redactor.of([API_KEY, GITHUB_TOKEN, API_KEY]).secrets == (API_KEY, GITHUB_TOKEN)


def test_a_multiline_secret_is_also_found_line_by_line() -> None:
    key = "-----BEGIN KEY-----\nMIIEvQIBADANBgkqhkiG9w0B\n-----END KEY-----\n"
    redactor = Redactor.of([key])

    assert redactor.redact_lines(["key:", "  MIIEvQIBADANBgkqhkiG9w0B", "done"]) == ["key:", "  ***", "done"]
    assert redactor.redact(f"<{key}>") == "<***>"


def test_a_secret_with_a_trailing_newline_is_found_without_it() -> None:
    assert Redactor.of([API_KEY + "\n"]).redact(f"{API_KEY}.") == "***."


def test_the_constructor_refuses_short_secrets() -> None:
    with pytest.raises(ValueError, match="at least"):
        Redactor(("abc",))


def test_with_secrets_adds_to_the_existing_ones() -> None:
    redactor = Redactor.of([API_KEY]).with_secrets(None, "abc", GITHUB_TOKEN)

    assert redactor.secrets == (API_KEY, GITHUB_TOKEN)
    assert redactor.redact(f"{API_KEY} {GITHUB_TOKEN}") == "*** ***"


def test_a_job_token_is_redacted_without_being_registered() -> None:
    token = TokenIssuer(b"0123456789abcdef0123").issue("j-0000abcd", expires_at=1_900_000_000)
    assert TOKEN_PATTERN.fullmatch(token)

    redacted = Redactor().redact(f"curl -H 'Authorization: Bearer {token}' http://x")

    assert token not in redacted
    assert redacted == "curl -H 'Authorization: Bearer ***' http://x"


def test_text_without_secrets_is_returned_unchanged() -> None:
    text = "odj1 is a prefix but odj1.123.short is not a token"

    assert Redactor.of([API_KEY]).redact(text) == text


def test_redact_lines_redacts_each_line() -> None:
    redactor = Redactor.of([API_KEY])

    assert redactor.redact_lines(["a", f"b{API_KEY}", ""]) == ["a", "b***", ""]


def test_repr_hides_the_secrets() -> None:
    redactor = Redactor.of([API_KEY, GITHUB_TOKEN])

    assert API_KEY not in repr(redactor)
    assert GITHUB_TOKEN not in repr(redactor)
    assert "2 hidden" in repr(redactor)


def test_redactors_with_the_same_secrets_are_equal_and_hashable() -> None:
    assert Redactor.of([API_KEY]) == Redactor.of([API_KEY, "abc"])
    assert len({Redactor.of([API_KEY]), Redactor.of([API_KEY])}) == 1


def test_asterisks_that_spell_another_secret_are_redacted_too() -> None:
    redactor = Redactor.of(["AB***CD", "secret-value"])

    assert redactor.redact("ABsecret-valueCD") == REDACTED


# Small alphabets make overlaps, prefixes and accidental matches likely.
secret_text = st.text(alphabet="ab*.\\(x \n", min_size=MIN_SECRET_LENGTH, max_size=12).filter(
    lambda value: len(value.strip()) >= MIN_SECRET_LENGTH
)
filler = st.text(alphabet="ab*.x \n", max_size=8)


@given(secrets=st.lists(secret_text, min_size=1, max_size=4), data=st.data())
def test_no_secret_survives_redaction(secrets: list[str], data: st.DataObject) -> None:
    pieces = data.draw(st.lists(st.one_of(filler, st.sampled_from(secrets)), max_size=10))
    text = "".join(pieces)
    redactor = Redactor.of(secrets)

    redacted = redactor.redact(text)

    for secret in redactor.secrets:
        assert secret not in redacted
    assert redactor.redact(redacted) == redacted


@given(text=st.text(alphabet="abx \n", max_size=40))
def test_text_without_any_secret_is_untouched(text: str) -> None:
    assert Redactor.of(["*******"]).redact(text) == text
