"""Secret redaction for everything we send to chat or store.

Agent output echoes environment variables, `git remote -v` prints tokens, and a stack trace can
carry an API key. Every line therefore passes through a `Redactor` before it reaches chat, the
job store or a log. It knows the configured secrets by value and, without being told, anything
shaped like one of our own job tokens.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

import attrs

from .tokens import TOKEN_PATTERN

MIN_SECRET_LENGTH = 6
"""Shorter values (not counting surrounding whitespace) are ignored: redacting "dev", "1234" or
a run of spaces would mangle ordinary output."""

REDACTED = "***"


def _secret_candidates(value: str) -> list[str]:
    """The value itself plus each of its lines, stripped.

    Output is redacted line by line, so a multi-line secret (a PEM key) or one read from a file
    with a trailing newline must also be found one line at a time.
    """
    candidates = [value]
    if "\n" in value or value != value.strip():
        candidates.extend(line.strip() for line in value.splitlines())
    return [candidate for candidate in candidates if _long_enough(candidate)]


def _long_enough(secret: str) -> bool:
    return len(secret.strip()) >= MIN_SECRET_LENGTH


def _check_secret_lengths(instance: object, attribute: object, secrets: tuple[str, ...]) -> None:
    for secret in secrets:
        if not _long_enough(secret):
            raise ValueError(
                f"secrets must be at least {MIN_SECRET_LENGTH} characters; use Redactor.of() to skip short values"
            )


@attrs.frozen
class Redactor:
    """Replaces known secrets and job-token-shaped strings with `***`.

    Build one with `Redactor.of(...)`, which skips unset and too-short values. Overlapping
    occurrences (one secret running into another) are redacted as one span, so no fragment of
    either is left behind, and the result never contains a secret or a token.
    """

    secrets: tuple[str, ...] = attrs.field(
        default=(),
        validator=_check_secret_lengths,
        repr=lambda secrets: f"<{len(secrets)} hidden>",
    )
    _pattern: re.Pattern[str] = attrs.field(init=False, repr=False, eq=False)
    _anything: re.Pattern[str] = attrs.field(init=False, repr=False, eq=False)

    @_pattern.default
    def _compile_pattern(self) -> re.Pattern[str]:
        # The lookahead finds a match at *every* position, overlapping ones included, and
        # `redact` merges them into spans.
        return re.compile("(?=(" + self._alternatives() + "))")

    @_anything.default
    def _compile_quick_check(self) -> re.Pattern[str]:
        # Most lines hold no secret; a plain search says so ~4x faster than the lookahead scan.
        return re.compile(self._alternatives())

    def _alternatives(self) -> str:
        # Longest first, so that of two secrets where one is a prefix of the other, the longer
        # wins at that position.
        alternatives = [re.escape(secret) for secret in sorted(self.secrets, key=len, reverse=True)]
        alternatives.append(TOKEN_PATTERN.pattern)
        return "|".join(alternatives)

    @classmethod
    def of(cls, values: Iterable[str | None]) -> Redactor:
        """A redactor for `values`, ignoring None, empty and short values, and duplicates."""
        secrets: dict[str, None] = {}
        for value in values:
            if value:
                secrets.update(dict.fromkeys(_secret_candidates(value)))
        return cls(tuple(secrets))

    def with_secrets(self, *values: str | None) -> Redactor:
        """This redactor plus `values` (e.g. a job's own token once it is issued)."""
        return Redactor.of((*self.secrets, *values))

    def covers(self, value: str) -> bool:
        """Whether `value` is already one of the secrets (a repeated one need not rebuild us)."""
        return value in self.secrets

    def redact(self, text: str) -> str:
        # Each pass replaces spans of at least MIN_SECRET_LENGTH characters with three, so the
        # text shrinks and the loop ends. A second pass is needed only in the odd case where
        # the asterisks and their neighbours spell another secret.
        if self._anything.search(text) is None:
            return text
        while True:
            spans = self._spans(text)
            if not spans:
                return text
            text = _replace_spans(text, spans)

    def redact_lines(self, lines: Iterable[str]) -> list[str]:
        return [self.redact(line) for line in lines]

    def _spans(self, text: str) -> list[tuple[int, int]]:
        """Where secrets occur in `text`, overlapping occurrences merged."""
        spans: list[tuple[int, int]] = []
        for match in self._pattern.finditer(text):
            start, end = match.start(1), match.end(1)
            if spans and start < spans[-1][1]:
                spans[-1] = (spans[-1][0], max(end, spans[-1][1]))
            else:
                spans.append((start, end))
        return spans


def _replace_spans(text: str, spans: list[tuple[int, int]]) -> str:
    parts: list[str] = []
    position = 0
    for start, end in spans:
        parts.append(text[position:start])
        parts.append(REDACTED)
        position = end
    parts.append(text[position:])
    return "".join(parts)
