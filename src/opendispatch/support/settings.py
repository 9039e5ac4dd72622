"""Environment settings: each variable declared once, read through one reader that keeps every problem.

A `Setting` declares a variable: its name, what it means (the words `doctor` shows beside it),
the default shown when it is unset, whether a deployment must set it and whether its value is
a secret (never shown, redacted everywhere). Each module that reads settings exposes its
declarations as a `SETTINGS` tuple (`config.py`, and the Slack, Teams, Discord and GitHub
settings), reads through them, and `doctor` lists the variables from those same declarations:
a setting's name, default and meaning are written once.

A `SettingsReader` reads declared settings from an environment mapping: a value without
surrounding spaces, an empty one counting as unset, parsed by a function that raises
`ConfigError` with a message naming the variable. The reader records that message as the
setting's `Problem` and goes on with a fallback, so `serve` and `doctor` show every problem at
once (a user who fixes one variable, restarts and meets the next refusal wastes a deploy per
mistake). The parsers several readers share (a yes/no switch, a whole number) are here too.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Self, TypeVar

import attrs

from ..domain.errors import ConfigError, ReadsSettings, SettingProblem

T = TypeVar("T")


@attrs.frozen
class Setting:
    """One environment variable: what it is called, what it means, its default as shown."""

    name: str
    #: What the variable is for and where its value comes from, in words a user acts on.
    meaning: str
    #: The default as a user reads it ("8080", "the server's own URL"); None: none to show.
    default: str | None = None
    #: A deployment must set it (for the chat provider or sprite backend it belongs to).
    required: bool = False
    #: Its value is never shown, and is redacted from chat, the store and logs.
    secret: bool = False
    #: `doctor` lists it; False for an endpoint only tests (or a sovereign cloud) change.
    listed: bool = True

    def but_required(self) -> Setting:
        """The same setting, required where it is listed (SPRITE_IMAGE on Fly)."""
        return attrs.evolve(self, required=True)


@attrs.frozen
class Problem:
    """One reason `serve` refuses to start, in words a user can act on (the variable and the fix).

    `variable` is the setting the problem is about, so `doctor` can show it on that setting's
    row; None when it concerns several settings or the machine. The message never holds a
    secret value: it names the variable instead.
    """

    message: str
    variable: str | None = None


class SettingsReader:
    """Reads declared settings from `env`, collecting a problem per setting instead of stopping."""

    def __init__(self, env: Mapping[str, str]) -> None:
        self.env = env
        self.problems: list[Problem] = []

    def text(self, setting: Setting) -> str | None:
        """The variable's value without surrounding spaces; None when unset or empty."""
        value = self.env.get(setting.name, "").strip()
        return value or None

    def value(self, setting: Setting | None, parse: Callable[[], T], fallback: T) -> T:
        """`parse()`, or `fallback` with its `ConfigError` recorded as a problem of `setting`."""
        try:
            return parse()
        except ConfigError as exc:
            self.add(setting, str(exc))
            return fallback

    def parse(self, setting: Setting, parse: Callable[[str | None], T], fallback: T) -> T:
        """The setting parsed from its text (None when unset), or `fallback` with the problem recorded."""
        return self.value(setting, lambda: parse(self.text(setting)), fallback)

    def add(self, setting: Setting | None, message: str) -> None:
        """Records a problem of `setting` (None: of several settings, or none in particular)."""
        self.problems.append(Problem(message, None if setting is None else setting.name))

    def switch(self, setting: Setting, default: bool = False) -> bool:
        """A yes/no setting (see `switch`); `default` when unset or wrong."""
        return self.parse(setting, lambda text: switch(setting, text, default), default)

    def setting_problems(self) -> list[SettingProblem]:
        """The problems as the chat adapters' settings hand them on: (variable, message)."""
        return [(problem.variable or "", problem.message) for problem in self.problems]


class ReadsDeclaredSettings(ReadsSettings):
    """A chat adapter's (or the GitHub App's) settings, read from their declarations.

    A subclass reads its variables in `_settings` through the `SettingsReader` it is given,
    recording each problem there; `from_env` and `problems` (`ReadsSettings`) hand them on.
    """

    @classmethod
    def _read(cls, env: Mapping[str, str], problems: list[SettingProblem]) -> Self | None:
        read = SettingsReader(env)
        settings = cls._settings(read)
        problems.extend(read.setting_problems())
        return settings

    @classmethod
    def _settings(cls, read: SettingsReader) -> Self | None:
        raise NotImplementedError


def switch(setting: Setting, text: str | None, default: bool = False) -> bool:
    """A yes/no switch: 1/true/yes/on or 0/false/no/off, in any case; unset is `default`."""
    if text is None:
        return default
    value = text.strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise ConfigError(f"{setting.name}={text!r} must be 1 or 0 (true/false, yes/no, on/off).")


def whole_number(setting: Setting, text: str | None, default: int) -> int:
    """A whole number of at least 1; unset is `default`."""
    if text is None:
        return default
    if not re.fullmatch(r"[0-9]{1,12}", text) or int(text) < 1:  # isdigit() takes "²", int() does not
        raise ConfigError(f"{setting.name}={text!r} must be a whole number such as {default}.")
    return int(text)


def names(text: str | None) -> frozenset[str]:
    """A comma-separated list, each item without surrounding spaces, empty items dropped."""
    return frozenset(part.strip() for part in (text or "").split(",") if part.strip())
