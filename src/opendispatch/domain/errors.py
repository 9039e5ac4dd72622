"""The error tree. Every `DispatchError`'s `str()` is a sentence a chat user can act on.

Subclasses are grouped by what the user can do about them, not by where they were raised.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Self


class DispatchError(Exception):
    """Base of every error whose message may be shown in chat as it is."""


class UsageError(DispatchError):
    """The user typed a command we cannot parse; the message carries the usage line."""


class NotAllowed(DispatchError):
    """The user, channel, repository or image is not allowed by the operator."""


class UnknownJob(DispatchError):
    def __init__(self, job_id: str) -> None:
        super().__init__(f"No job {job_id}. `/od-jobs` lists recent jobs.")
        self.job_id = job_id


class JobAlreadyFinished(DispatchError):
    """A command (cancel) aimed at a job that has already ended."""


class InvalidTransition(DispatchError):
    """A job was asked to move to a state its current state does not allow.

    This is a programming or protocol error, but its message still names both states so a
    log reader knows what happened.
    """

    def __init__(self, job_id: str, current: str, wanted: str) -> None:
        super().__init__(f"Job {job_id} cannot go from {current} to {wanted}.")
        self.job_id = job_id
        self.current = current
        self.wanted = wanted


class InvalidToken(DispatchError):
    """A webhook token is missing, malformed, expired, or for another job.

    One message for every case, so a caller cannot tell which check failed.
    """

    def __init__(self) -> None:
        super().__init__("Invalid or expired job token.")


class SpriteError(DispatchError):
    """The sprite backend could not do what was asked; the message says what to check."""


class SpawnFailed(SpriteError):
    pass


class SpriteProviderUnavailable(SpriteError):
    pass


class NotAvailableYet(DispatchError):
    """A command that parses but whose capability has not landed in this build."""


class ConfigError(DispatchError):
    """Configuration is missing or invalid; the message names the variable and the fix."""


class JobClosed(DispatchError):
    """A sidecar wrote to a job that finished longer ago than the grace period (HTTP 409)."""

    def __init__(self, job_id: str) -> None:
        super().__init__(f"Job {job_id} has finished; no more reports are accepted.")
        self.job_id = job_id


#: A setting's problem: (the variable to change, a message a user can act on).
SettingProblem = tuple[str, str]


class ReadsSettings:
    """What every chat adapter's settings do with their variables, written once.

    A subclass reads its variables in `_read`, recording each problem it finds; `from_env`
    then refuses with all of them at once (one per line, so a user fixes them in one go), and
    `problems` hands them to the validation `serve` and `doctor` share, so both refuse exactly
    what the adapter would.
    """

    @classmethod
    def _read(cls, env: Mapping[str, str], problems: list[SettingProblem]) -> Self | None:
        raise NotImplementedError

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Self:
        problems: list[SettingProblem] = []
        settings = cls._read(env, problems)
        if settings is None:
            raise ConfigError("\n".join(message for _, message in problems))
        return settings

    @classmethod
    def problems(cls, env: Mapping[str, str]) -> list[SettingProblem]:
        problems: list[SettingProblem] = []
        cls._read(env, problems)
        return problems
