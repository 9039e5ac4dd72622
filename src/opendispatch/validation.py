"""The one validation `serve` and `doctor` share: every problem at once, each with its fix.

`doctor` used to keep its own list of required variables, so it passed what `serve` refused
(Slack with a bot token only, a provider whose extra is not installed) and counted problems
its own way. Now both ask `validate`: the configuration's own settings (`Config.problems`),
the chosen chat adapter's settings (each adapter's `Settings.problems`, the same reading its
`from_env` does), and whether that adapter can be imported at all. `serve` refuses with these
messages, one per line; `doctor` shows each of them once. The machine checks (`check_port`,
`check_database`) are here too, so `serve` and `doctor` word those alike as well.

No message holds a secret value: problems name the variable, never what it is set to.
"""

from __future__ import annotations

import errno
import importlib
import socket
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path

from .adapters.postgres.url import is_postgres_url
from .config import (
    CHAT_PROVIDER,
    OPENDISPATCH_SPRITES,
    OPENDISPATCH_UNSANDBOXED_LOCAL_SPRITES,
    UNSANDBOXED_OPT_IN,
    Config,
    Problem,
)
from .support.settings import SettingsReader

__all__ = ["Problem", "check_database", "check_port", "listen_problem", "missing_extra", "validate"]

#: The `pip install 'opendispatch[...]'` extra each chat provider needs.
EXTRA_FOR = {"slack": "slack", "teams": "teams", "discord": "discord"}

SettingsProblems = Callable[[Mapping[str, str]], list[tuple[str, str]]]


def validate(env: Mapping[str, str]) -> list[Problem]:
    """Every reason `serve` would refuse this environment, in the order a user meets them."""
    problems = Config.problems(env)
    read = SettingsReader(env)
    provider = (read.text(CHAT_PROVIDER) or "console").lower()
    if provider in EXTRA_FOR:
        problems.extend(chat_problems(provider, env))
    problems.extend(github_app_problems(env))
    backend = (read.text(OPENDISPATCH_SPRITES) or "local").lower()
    if backend == "local" and provider != "console":
        problem = sandbox_refusal(env)
        if problem is not None:
            problems.append(problem)
    return problems


def sandbox_refusal(env: Mapping[str, str]) -> Problem | None:
    """Shared chat on local sprites needs the sandbox: without it any member runs code on this
    host with its files, database and environment (docs/security.md). The opt-out is loud."""
    if SettingsReader(env).text(OPENDISPATCH_UNSANDBOXED_LOCAL_SPRITES) == UNSANDBOXED_OPT_IN:
        return None
    from .adapters.local import sandbox_problem

    why = sandbox_problem()
    if why is None:
        return None
    return Problem(
        f"Local sprites cannot be sandboxed here ({why}), and without a sandbox every member of "
        "the chat could run code on this machine with its files, database and secrets. Install "
        "bubblewrap (`apt-get install bubblewrap`), use OPENDISPATCH_SPRITES=fly, or accept it "
        f"with {OPENDISPATCH_UNSANDBOXED_LOCAL_SPRITES.name}={UNSANDBOXED_OPT_IN}.",
        OPENDISPATCH_SPRITES.name,
    )


def github_app_problems(env: Mapping[str, str]) -> list[Problem]:
    """A GitHub App for per-job repository tokens, when one is asked for (docs/github.md)."""
    from .adapters.github import GitHubAppSettings

    if not GitHubAppSettings.configured(env):
        return []
    return [Problem(message, variable) for variable, message in GitHubAppSettings.problems(env)]


def chat_problems(provider: str, env: Mapping[str, str]) -> list[Problem]:
    """The chat adapter's own settings, or the one problem that its extra is not installed
    (its settings cannot be read without it; they are checked once it is installed)."""
    try:
        problems = _settings_problems(provider)
    except ImportError as exc:
        return [missing_extra(provider, exc)]
    return [Problem(message, variable) for variable, message in problems(env)]


def _settings_problems(provider: str) -> SettingsProblems:
    """The adapter's `Settings.problems`, once its chat module imports (what `serve` does first:
    the packages import it only when first used, so this is where a missing extra shows)."""
    importlib.import_module(f"{__package__}.adapters.{provider}.chat")
    if provider == "slack":
        from .adapters.slack import SlackSettings

        return SlackSettings.problems
    if provider == "teams":
        from .adapters.teams import TeamsSettings

        return TeamsSettings.problems
    from .adapters.discord import DiscordSettings

    return DiscordSettings.problems


def missing_extra(provider: str, exc: ImportError) -> Problem:
    """What to install when a chat adapter cannot be imported (bootstrap says the same)."""
    missing = f"{exc.name} is missing" if exc.name else f"an import failed: {exc}"
    return Problem(
        f"CHAT_PROVIDER={provider} needs extra packages: pip install 'opendispatch[{EXTRA_FOR[provider]}]' ({missing}).",
        CHAT_PROVIDER.name,
    )


def listen_problem(bind: str, exc: OSError) -> Problem | None:
    """The words for a webhook address that cannot be listened on; None for other errors.

    `serve` says this when its bind fails, `doctor` when its trial bind does.
    """
    if exc.errno == errno.EADDRINUSE:
        return Problem(
            f"cannot listen on {bind}: the address is already in use; stop what listens there, "
            "or set WEBHOOK_PORT (and OPENDISPATCH_WEBHOOK_HOST) to a free one."
        )
    if exc.errno in (errno.EADDRNOTAVAIL, errno.EACCES):
        return Problem(f"cannot listen on {bind}: {exc.strerror}; check OPENDISPATCH_WEBHOOK_HOST and WEBHOOK_PORT.")
    return None


def check_port(host: str, port: int) -> Problem | None:
    """Bind `host:port` for a moment, as the webhook server will (hypercorn's socket options:
    SO_REUSEADDR, so a port only in TIME_WAIT counts as free, as it is for `serve`)."""
    bind = f"{host}:{port}"
    address = host.replace("[", "").replace("]", "")
    try:
        with socket.socket(socket.AF_INET6 if ":" in address else socket.AF_INET, socket.SOCK_STREAM) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind((address, port))
    except socket.gaierror as exc:
        return Problem(f"cannot listen on {bind}: {exc.strerror}; check OPENDISPATCH_WEBHOOK_HOST.")
    except OSError as exc:
        return listen_problem(bind, exc) or Problem(
            f"cannot listen on {bind}: {exc.strerror or exc}; check OPENDISPATCH_WEBHOOK_HOST and WEBHOOK_PORT."
        )
    return None


def check_database(path: str) -> Problem | None:
    """Whether `serve` can create (or open) and write the SQLite file at `path`.

    Nothing is created: `serve` makes the missing folders, so the nearest folder that exists
    must take a new file (SQLite also writes its journal beside the database); a temporary
    file there, deleted at once, is the test. It holds for root too, unlike permission bits.
    """
    if is_postgres_url(path):
        return None  # a server, not a file: `doctor` checks it takes a connection
    target = Path(path).absolute()

    def problem(reason: str) -> Problem:
        return Problem(
            f"cannot write the database {path}: {reason}; set OPENDISPATCH_DB to a file in a writable folder.",
            "OPENDISPATCH_DB",
        )

    if target.is_dir():
        return problem("it is a folder")
    if target.exists():
        try:
            with open(target, "r+b"):
                pass
        except OSError as exc:
            return problem(exc.strerror or str(exc))
    folder = next(p for p in (target.parent, *target.parent.parents) if p.exists() or p.is_symlink())
    if not folder.is_dir():
        return problem(f"{folder} is a file, not a folder")
    try:
        with tempfile.TemporaryFile(dir=folder, prefix=".opendispatch-doctor-"):
            pass
    except OSError as exc:
        return problem(f"the folder {folder} is not writable ({exc.strerror or exc})")
    return None

