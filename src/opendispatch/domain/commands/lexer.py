"""The tokenizer: chat text -> words (`Token`), and words -> options and positionals.

Separate from the parsers because it is the part that knows about characters (quotes, smart
quotes, dashes, the spaces chat clients insert) and nothing about what any command means; each
parser in parsers.py receives the tokens and asks `split_options` for its own options.

The grammar is POSIX-shell-like (`shlex`), with three deliberate differences that make it
safe and friendly for chat rather than for a shell:

- Backslashes are literal (`shlex` escapes are off): users paste regexes and Windows paths
  far more often than they escape quotes, and user text is never interpreted. To put a quote
  inside a quoted task, quote with the other kind (`"don't stop"`, `'say "hi"'`).
- "Smart" quotes that phones and Slack substitute (“ ” „ ‘ ’) count as quotes, except a ’
  between two letters (an apostrophe, as in don’t) and anything inside ASCII single quotes
  (so `format_command` can carry any text through exactly).
- A quoted word is never an option: `/od-run "-v is ignored"` is a task, not a flag. An
  unquoted em or en dash before a letter (`—repo`, which phones make of `--repo`) is `--`.
"""

from __future__ import annotations

import difflib
import io
import shlex
from collections.abc import Mapping, Sequence

import attrs

from .grammar import HELP_WORDS, Option, fail, show


# --- Tokens and options -------------------------------------------------------------------

# shlex's own whitespace plus the spaces chat clients insert (no-break, thin, ideographic...).
_WHITESPACE = " \t\r\n\x0b\x0c\u00a0\u1680" + "".join(map(chr, range(0x2000, 0x200B))) + "\u202f\u205f\u3000"
_SMART_DOUBLE = "\u201c\u201d\u201e"  # “ ” „
_SMART_OPEN_SINGLE = "\u2018"  # ‘
_SMART_CLOSE_SINGLE = "\u2019"  # ’, also the apostrophe in don’t
_DASHES = ("\u2014", "\u2013")  # em and en dash: what phones make of "--"


@attrs.frozen
class Token:
    text: str
    quoted: bool  # it began with a quote, so it is a word, never an option or `--`


@attrs.frozen
class Arguments:
    values: Mapping[str, str] = attrs.field(factory=dict)
    flags: frozenset[str] = frozenset()
    positionals: tuple[Token, ...] = ()
    wants_help: bool = False


def tokenise(command: str, text: str) -> list[Token]:
    normalised, open_quote = _normalise_quotes(text)
    if open_quote is not None:
        kind = "double" if open_quote == '"' else "single"
        hint = "."
        if kind == "single":
            hint = """; put a task with an apostrophe in double quotes, e.g. "don't stop"."""
        fail(command, f"Unbalanced {kind} quote{hint}")
    stream = io.StringIO(normalised)  # read one character at a time, so tell() marks a token's start
    lexer = shlex.shlex(stream, posix=True)
    lexer.whitespace_split = True
    lexer.whitespace = _WHITESPACE
    lexer.commenters = ""
    lexer.escape = ""
    tokens: list[Token] = []
    while True:
        start = _skip_whitespace(normalised, stream.tell())
        try:
            word = lexer.get_token()
        except ValueError:  # only "No closing quotation", which _normalise_quotes already caught
            fail(command, "Unbalanced quote.")
        if word is None:
            return tokens
        tokens.append(Token(word, quoted=start < len(normalised) and normalised[start] in "'\""))


def _skip_whitespace(text: str, position: int) -> int:
    while position < len(text) and text[position] in _WHITESPACE:
        position += 1
    return position


def _normalise_quotes(text: str) -> tuple[str, str | None]:
    """Smart quotes -> ASCII quotes, character for character; also say which quote is left open.

    A small state machine that agrees with shlex (no escapes): inside ASCII single quotes
    nothing changes, inside ASCII double quotes smart quotes are literal text, and a smart
    quote only closes what a smart quote opened.
    """
    out: list[str] = []
    state = ""  # "", "'", '"', or "‘", "“" when a smart quote opened it
    for index, char in enumerate(text):
        if state == "":
            if char in "'\"":
                state = char
            elif char in _SMART_DOUBLE:
                char, state = '"', "“"
            elif char == _SMART_OPEN_SINGLE or (
                char == _SMART_CLOSE_SINGLE and not _is_apostrophe(text, index)
            ):
                char, state = "'", "‘"
        elif state in ("'", '"'):
            if char == state:
                state = ""
        elif state == "‘":
            if char == "'":
                state = ""
            elif char == _SMART_CLOSE_SINGLE and not _is_apostrophe(text, index):
                char, state = "'", ""
        elif state == "“":
            if char == '"':
                state = ""
            elif char in _SMART_DOUBLE:
                char, state = '"', ""
        out.append(char)
    open_quote = {"": None, "'": "'", "‘": "'", '"': '"', "“": '"'}[state]
    return "".join(out), open_quote


def _is_apostrophe(text: str, index: int) -> bool:
    return 0 < index < len(text) - 1 and text[index - 1].isalnum() and text[index + 1].isalnum()


def split_options(command: str, tokens: Sequence[Token], options: tuple[Option, ...]) -> Arguments:
    """Options anywhere before a bare `--`; every other word is positional, in order."""
    by_name = {option.name: option for option in options}
    by_name.update({option.short: option for option in options if option.short})
    values: dict[str, str] = {}
    flags: set[str] = set()
    positionals: list[Token] = []
    words = iter(_dashes_as_options(tokens))
    for token in words:
        if token.quoted or not token.text.startswith("-") or token.text == "-":
            positionals.append(token)
        elif token.text == "--":
            positionals += list(words)
        elif token.text.lower() in HELP_WORDS:
            return Arguments(wants_help=True)
        else:
            written, has_value, value = token.text.partition("=")
            option = by_name.get(written.lower())
            if option is None:
                fail(command, _unknown_option(command, written, by_name))
            if option.metavar is None:
                if has_value:
                    fail(command, f"{option.name} takes no value.")
                flags.add(option.name)
                continue
            if not has_value:
                value = _option_value(command, option, next(words, None), by_name)
            values[option.name] = value
    return Arguments(values=values, flags=frozenset(flags), positionals=tuple(positionals))


def _dashes_as_options(tokens: Sequence[Token]) -> list[Token]:
    """`—repo` (a phone's `--repo`) -> `--repo`, up to the first real `--`."""
    result: list[Token] = []
    for position, token in enumerate(tokens):
        if not token.quoted and token.text == "--":
            return result + list(tokens[position:])
        if not token.quoted and token.text[:1] in _DASHES and token.text[1:2].isalpha():
            token = Token("--" + token.text[1:], quoted=False)
        result.append(token)
    return result


def _option_value(command: str, option: Option, token: Token | None, by_name: Mapping[str, Option]) -> str:
    wanted = f"Missing the value after {option.name} (e.g. {option.name} {option.metavar})."
    if token is None:
        fail(command, wanted)
    if not token.quoted and token.text.partition("=")[0].lower() in {*by_name, *HELP_WORDS, "--"}:
        fail(command, wanted)
    return token.text


def _unknown_option(command: str, written: str, by_name: Mapping[str, Option]) -> str:
    problem = f"Unknown option {show(written)}."
    long_names = [name for name in by_name if name.startswith("--")]
    close = difflib.get_close_matches(written.lower(), long_names, n=1)
    if close:
        problem += f" Did you mean {close[0]}?"
    if command == "od-run":
        problem += " If it is part of the task, quote the task or put it after --: /od-run -- run pytest -v."
    return problem


def refuse_positionals(command: str, positionals: Sequence[Token]) -> None:
    if positionals:
        fail(command, f"Unexpected text {show(join(positionals))}.")


def join(tokens: Sequence[Token]) -> str:
    """One word is kept exactly (a quoted task keeps its newlines); several are joined by spaces."""
    if len(tokens) == 1:
        return tokens[0].text
    return " ".join(token.text for token in tokens)
