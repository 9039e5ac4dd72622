from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from opendispatch.domain.errors import InvalidToken
from opendispatch.domain.tokens import TOKEN_PATTERN, TokenIssuer, bearer_token

ISSUER = TokenIssuer(b"k" * 32)


def test_a_token_opens_its_own_job_until_it_expires() -> None:
    token = ISSUER.issue("j-0000abcd", expires_at=1000)
    ISSUER.verify(token, "j-0000abcd", now=999.9)
    with pytest.raises(InvalidToken):
        ISSUER.verify(token, "j-0000abcd", now=1000)
    assert TOKEN_PATTERN.fullmatch(token)


def test_a_token_for_job_a_is_refused_for_job_b() -> None:
    token = ISSUER.issue("j-aaaaaaaa", expires_at=10**9)
    with pytest.raises(InvalidToken):
        ISSUER.verify(token, "j-bbbbbbbb", now=0)


def test_a_token_from_another_key_or_with_a_changed_expiry_is_refused() -> None:
    other = TokenIssuer(b"o" * 32).issue("j-aaaaaaaa", expires_at=10**9)
    with pytest.raises(InvalidToken):
        ISSUER.verify(other, "j-aaaaaaaa", now=0)
    prefix, expiry, mac = ISSUER.issue("j-aaaaaaaa", expires_at=100).split(".")
    with pytest.raises(InvalidToken):
        ISSUER.verify(f"{prefix}.{10**9}.{mac}", "j-aaaaaaaa", now=200)


def test_the_secret_is_long_enough_and_never_printed() -> None:
    with pytest.raises(ValueError):
        TokenIssuer(b"short")
    assert "kkkk" not in repr(ISSUER)


@given(st.text(max_size=200))
def test_garbage_is_refused_with_the_one_domain_error(garbage: str) -> None:
    with pytest.raises(InvalidToken):
        ISSUER.verify(garbage, "j-aaaaaaaa", now=0)


@pytest.mark.parametrize("expiry", ["\u00b2", "1\u00b3", "\u0663\u0663", "\uff11"])
def test_an_expiry_of_digits_that_are_not_ascii_is_refused_not_a_crash(expiry: str) -> None:
    """Superscript, Arabic-Indic and full-width digits pass `str.isdigit`; `int()` crashed on some."""
    mac = ISSUER.issue("j-aaaaaaaa", expires_at=10**9).split(".")[2]
    with pytest.raises(InvalidToken):
        ISSUER.verify(f"odj1.{expiry}.{mac}", "j-aaaaaaaa", now=0)


@given(st.text(max_size=30), st.text(max_size=30))
def test_any_job_id_and_token_text_is_refused_with_the_one_domain_error(job_id: str, garbage: str) -> None:
    """Lone surrogates included: a job id from a request body is any text."""
    with pytest.raises(InvalidToken):
        ISSUER.verify(f"odj1.{garbage}", job_id + "\ud800", now=0)
    with pytest.raises(InvalidToken):
        ISSUER.verify(ISSUER.issue("j-aaaaaaaa", expires_at=10**9), job_id + "\ud800", now=0)


@pytest.mark.parametrize("header", [None, "", "Bearer", "Bearer   ", "Basic abc", "token"])
def test_bearer_header_parsing_refuses_everything_but_bearer(header: str | None) -> None:
    with pytest.raises(InvalidToken):
        bearer_token(header)


def test_bearer_header_parsing() -> None:
    assert bearer_token("Bearer abc.def") == "abc.def"
    assert bearer_token("bearer  abc ") == "abc"
