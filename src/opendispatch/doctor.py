"""`opendispatch doctor`: what is configured, what is missing, and how to get it.

Its problems are `serve`'s: both ask `validation.validate`, so doctor never passes what
serve refuses, and shows each problem once, in serve's words (on the row of the variable it
is about, or on a line of its own). It also checks the machine: git, the webhook port, the
database. Every ✗ line is one problem, and the last line counts them.

Secret values are never printed: a secret shows as "set (secret, not shown)".
"""

from __future__ import annotations

import shutil
import sys
from collections.abc import Mapping

from . import config as service
from .adapters.github import GitHubAppSettings
from .adapters.github import settings as github_app
from .adapters.postgres.url import is_postgres_url, redact_url
from .config import Config, Problem, read_environment
from .support.settings import Setting
from .validation import check_database, check_port, validate

# What doctor lists, from the declarations of the modules that read each setting
# (support/settings.py): a setting's name, default and meaning are written there once.

#: Listed for every deployment.
GENERAL: tuple[Setting, ...] = (
    *service.GENERAL,
    service.GH_TOKEN,
    github_app.GITHUB_APP_ID,
    github_app.GITHUB_APP_PRIVATE_KEY,
    service.ANTHROPIC_API_KEY,
    service.DATABASE_URL,
)
#: Shown once a GitHub App is configured (GITHUB_APP_ID and its key are in GENERAL).
GITHUB_APP = tuple(setting for setting in github_app.SETTINGS if setting not in GENERAL)

SPRITE_BACKENDS: Mapping[str, tuple[Setting, ...]] = {"local": service.LOCAL_SPRITES, "fly": service.FLY_SPRITES}


def provider_settings(provider: str) -> tuple[Setting, ...]:
    """What the chat provider's adapter reads (its settings module's declarations), as listed."""
    return tuple(setting for setting in service.chat_settings(provider) if setting.listed)


def describe(setting: Setting, env: Mapping[str, str]) -> str:
    value = env.get(setting.name, "").strip()
    if not value:
        return "missing"
    if setting.secret:
        return "set (secret, not shown)"
    return f"set: {redact_url(value) if setting == service.OPENDISPATCH_DB else value}"


def report(env: Mapping[str, str]) -> tuple[list[str], int]:
    """The doctor's lines and its exit status (0 when `serve` has nothing to refuse)."""
    config, _ = Config.read(env)
    problems = validate(env)
    provider, backend = config.chat_provider, config.sprite_backend
    unclaimed = list(problems)

    def claim(name: str) -> Problem | None:
        """The first problem about `name` not yet shown, so each problem is shown once."""
        found = next((problem for problem in unclaimed if problem.variable == name), None)
        if found is not None:
            unclaimed.remove(found)
        return found

    backend_settings = SPRITE_BACKENDS.get(backend, ())
    listed_below = {setting.name for setting in backend_settings}  # SPRITE_IMAGE, required on Fly
    general = tuple(setting for setting in GENERAL if setting.name not in listed_below)
    github = GITHUB_APP if GitHubAppSettings.configured(env) else ()
    settings = (*general, *github, *backend_settings, *provider_settings(provider))
    width = max(len(setting.name) for setting in settings) + 1
    rows: list[str] = []
    for setting in settings:
        state = describe(setting, env)
        problem = claim(setting.name)
        if problem is not None:
            rows.append(f"✗ {setting.name:<{width}} {state}  — {problem.message}")
            continue
        if state == "missing" and not setting.required:
            state = f"not set (default: {setting.default})" if setting.default else "not set"
        rows.append(f"{'·' if state.startswith(('missing', 'not set')) else '✓'} {setting.name:<{width}} {state}  — {setting.meaning}")

    if problems:
        count = _count(len(problems))
        lines = [f"The configuration has {count}: chat={provider}, sprites={backend}; `serve` refuses to start."]
    else:
        lines = [f"Configuration is valid: chat={provider}, sprites={backend}."]
    lines.extend(f"✗ {problem.message}" for problem in unclaimed)  # those without a row of their own
    lines.append("")
    lines.extend(rows)
    lines.append("")
    checks = _machine_checks(env, config, port_known=not any(p.variable == "WEBHOOK_PORT" for p in problems))
    lines.extend(line for line, _ in checks)
    failed = len(problems) + sum(1 for _, ok in checks if not ok)
    lines.append("")
    lines.append("Nothing required is missing." if failed == 0 else f"{_count(failed)} to fix before `serve`.")
    return lines, 0 if failed == 0 else 1


def _count(n: int) -> str:
    return f"{n} problem{'' if n == 1 else 's'}"


def _machine_checks(env: Mapping[str, str], config: Config, *, port_known: bool) -> list[tuple[str, bool]]:
    """What this machine needs beyond configuration: (line, passed) for each check."""
    checks: list[tuple[str, bool]] = []
    if shutil.which("git", path=env.get("PATH")):
        checks.append(("✓ git on PATH (needed by local sprites to clone)", True))
    else:
        checks.append(("✗ git is not on PATH: local sprites need it to clone repositories; install git.", False))
    checks.append((f"{'✓' if sys.version_info >= (3, 9) else '✗'} python {sys.version.split()[0]} for the sidecar", sys.version_info >= (3, 9)))
    if not port_known:
        checks.append(("· webhook port not checked: WEBHOOK_PORT is not a port number (see above)", True))
    elif config.webhook_port == 0:
        checks.append(("✓ port 0: the system picks a free port for the webhook server when it starts", True))
    else:
        taken = check_port(config.webhook_host, config.webhook_port)
        checks.append(
            (f"✗ {taken.message}", False)
            if taken is not None
            else (f"✓ port {config.webhook_port} on {config.webhook_host} is free for the webhook server", True)
        )
    if config.sprite_backend == "local":
        checks.append(_sandbox_check(config))
    checks.append(_repository_access_check(env))
    checks.append(_web_view_check(config))
    checks.append(_database_check(config.database_path))
    if is_postgres_url(config.database_path):
        checks.append(
            (
                f"✓ dispatchers sharing this database: one leads, the others stand by and pass requests on; "
                f"a standby takes a dead leader's jobs over within {config.lease_s:g}s (OPENDISPATCH_LEASE_S); "
                f"the others reach this one at {config.peer_url or 'its bound address'} (OPENDISPATCH_PEER_URL)",
                True,
            )
        )
    return checks


def _database_check(database: str) -> tuple[str, bool]:
    """The SQLite file can be created and written, or the PostgreSQL server takes a connection
    (the URL shown without its password)."""
    if is_postgres_url(database):
        from .adapters.postgres import check_connection

        problem = check_connection(database)
        if problem is not None:
            return (f"✗ cannot connect to the database {redact_url(database)}: {problem}; check OPENDISPATCH_DB.", False)
        return (f"✓ database {redact_url(database)} accepts connections", True)
    unwritable = check_database(database)
    if unwritable is not None:
        return (f"✗ {unwritable.message}", False)
    return (f"✓ database {database} can be created and written", True)


def _repository_access_check(env: Mapping[str, str]) -> tuple[str, bool]:
    """What a job's agent can reach on GitHub: its own repository, or all the operator's."""
    if GitHubAppSettings.configured(env):
        return ("✓ each job gets a short-lived token for its own repository from the GitHub App; GH_TOKEN is not passed to sprites", True)
    if env.get("GH_TOKEN", "").strip():
        return (
            "· warning: GH_TOKEN gives every job every repository the token reaches (an agent told to fix one "
            "can push to all of them); a GitHub App gives each job its own repository only: docs/github.md",
            True,
        )
    return ("· no GitHub credentials: jobs clone public repositories only (docs/github.md)", True)


def _web_view_check(config: Config) -> tuple[str, bool]:
    """Where the web view's links on cards point (docs/web.md)."""
    if not config.web_enabled:
        return ("· web view off (OPENDISPATCH_WEB=0): cards carry no View live link", True)
    if config.web_url is not None:
        return (f"✓ web view: cards link to {config.web_url}/jobs/…", True)
    if config.chat_provider == "console":
        return ("✓ web view at the server's own address (the demo and console print it)", True)
    return (
        "· warning: cards will link to the server's bind address, which chat users cannot open from their "
        "machines: set OPENDISPATCH_WEB_URL to its public https address (docs/web.md)",
        True,
    )


def _sandbox_check(config: Config) -> tuple[str, bool]:
    """Whether local sprites get their sandbox; a shared chat without one is a problem above."""
    from .adapters.local import sandbox_problem

    why = sandbox_problem()
    if why is None:
        return ("✓ local sprites run in a bubblewrap sandbox (docs/security.md)", True)
    if config.chat_provider == "console":
        return (f"· local sprites run without a sandbox here ({why}): fine for yourself at the console", True)
    if config.unsandboxed_local_sprites:
        return (f"· local sprites run WITHOUT a sandbox ({why}), as OPENDISPATCH_UNSANDBOXED_LOCAL_SPRITES says", True)
    return (f"· local sprites cannot be sandboxed here ({why}): see the problem above", True)


def doctor() -> int:
    lines, status = report(read_environment())
    print("\n".join(lines))
    return status
