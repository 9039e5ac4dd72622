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

import attrs

from .config import Config, Problem, read_environment, secret_variables
from .adapters.github import GitHubAppSettings
from .adapters.postgres.url import is_postgres_url, redact_url
from .validation import check_database, check_port, validate


@attrs.frozen
class Variable:
    name: str
    required: bool
    how: str
    default: str | None = None


GENERAL = (
    Variable("CHAT_PROVIDER", False, "console (default), slack, teams or discord", "console"),
    Variable("OPENDISPATCH_SPRITES", False, "sprite backend: local, fly, or fly-emulator (Fly API on loopback)", "local"),
    Variable("WEBHOOK_PORT", False, "port the webhook server listens on", "8080"),
    Variable("OPEN_DISPATCH_URL", False, "URL sprites use to reach the webhook server", "the server's own URL"),
    Variable("OPENDISPATCH_DB", False, "SQLite file for jobs and output, or a postgresql:// URL", ".opendispatch/jobs.db"),
    Variable("OPENDISPATCH_LEASE_S", False, "on PostgreSQL: a job lease; a standby takes over a dead leader's jobs within it", "10"),
    Variable("OPENDISPATCH_FAST_INGEST", False, "1: the measured fast path for sidecars' output, for hundreds of jobs at once (Linux; docs/performance.md)", "0: Quart on hypercorn"),
    Variable("OPENDISPATCH_PEER_URL", False, "on PostgreSQL: where the other dispatchers reach this one", "on Fly the machine's private address, else the bound one"),
    Variable("SPRITE_IMAGE", False, "default image for sprites (Fly backend)", None),
    Variable("SPRITE_IMAGES", False, 'aliases for --image, JSON: {"py": "registry.fly.io/app/py:1"}', None),
    Variable("SPRITE_AGENT_TYPE", False, "default agent: claude, opencode or shell", "claude"),
    Variable("OPENDISPATCH_TOKEN_SECRET", False, "key for job tokens (else generated once and kept in the DB)", None),
    Variable("GH_TOKEN", False, "GitHub token passed to sprites for private clones: `gh auth token` (a GitHub App is safer)", None),
    Variable("GITHUB_APP_ID", False, "GitHub App for per-job tokens, one repository each: the app's settings → App ID (docs/github.md)", None),
    Variable("GITHUB_APP_PRIVATE_KEY", False, "the app's private key (PEM), or a file in GITHUB_APP_PRIVATE_KEY_PATH", None),
    Variable("ANTHROPIC_API_KEY", False, "passed to sprites for Claude Code: console.anthropic.com", None),
    Variable("DATABASE_URL", False, "passed to sprites when your agents need a database", None),
)

#: Shown once a GitHub App is configured (GITHUB_APP_ID and its key are in GENERAL).
GITHUB_APP = (
    Variable("GITHUB_APP_CLIENT_ID", False, "the app's client ID: GitHub's recommended JWT issuer (instead of the App ID)", None),
    Variable("GITHUB_APP_PRIVATE_KEY_PATH", False, "a file holding the app's private key (instead of GITHUB_APP_PRIVATE_KEY)", None),
    Variable("GITHUB_APP_PERMISSIONS", False, "what each job's token may do", "contents:write,pull_requests:write"),
    Variable("GITHUB_SERVER_URL", False, "where `--repo owner/name` lives (GitHub Enterprise: its URL)", "https://github.com"),
    Variable("GITHUB_API_URL", False, "GitHub's REST API (GitHub Enterprise: https://HOST/api/v3)", "https://api.github.com"),
)

SPRITE_BACKENDS: Mapping[str, tuple[Variable, ...]] = {
    "local": (
        Variable("OPENDISPATCH_SANDBOX_ALLOW", False, "more places sandboxed sprites may reach: 127.0.0.1:4000, 10.0.0.0/8, git.internal:443", None),
        Variable("OPENDISPATCH_SANDBOX_READ_ONLY", False, "more folders sandboxed sprites may read", None),
        Variable("OPENDISPATCH_UNSANDBOXED_LOCAL_SPRITES", False, "i-understand: run shared chat's local sprites without a sandbox", None),
    ),
    "fly": (
        Variable("FLY_API_TOKEN", True, "`fly tokens create deploy -a <sprite app>`; check with `fly auth whoami`"),
        Variable("FLY_SPRITE_APP", True, "app the sprite machines live in: `fly apps create my-sprites`"),
        Variable("SPRITE_IMAGE", True, "agent image with sprite-reporter; check with `fly image show`"),
        Variable("FLY_REGION", False, "region for sprites: `fly platform regions`", "iad"),
        Variable("FLY_API_URL", False, "Machines API (inside Fly: http://_api.internal:4280)", "https://api.machines.dev"),
        Variable("OPENDISPATCH_SPRITE_CPU_KIND", False, "shared or performance", "shared"),
        Variable("OPENDISPATCH_SPRITE_CPUS", False, "CPUs per sprite", "1"),
        Variable("OPENDISPATCH_SPRITE_MEMORY_MB", False, "memory per sprite (multiple of 256)", "1024"),
        Variable("OPENDISPATCH_INSTANCE", False, "marks this dispatcher's machines (metadata)", "FLY_APP_NAME or opendispatch"),
    ),
}

PROVIDERS: Mapping[str, tuple[Variable, ...]] = {
    "console": (),
    "slack": (
        Variable("SLACK_BOT_TOKEN", True, "xoxb- token: Slack app → OAuth & Permissions"),
        Variable("SLACK_APP_TOKEN", False, "xapp- token for Socket Mode: Basic Information → App-Level Tokens"),
        Variable("SLACK_SIGNING_SECRET", False, "for HTTP mode: Basic Information → Signing Secret"),
        Variable("SLACK_MODE", False, "socket (needs SLACK_APP_TOKEN) or http (needs SLACK_SIGNING_SECRET)", "socket"),
        Variable("SLACK_AGENT_SESSIONS", False, "1 once the Slack app is declared an agent: status and Slack's own stop button (docs/slack.md)", "0"),
        Variable("SLACK_STREAMING", False, "1: the live output is a Slack stream with the agent's steps (docs/slack.md)", "0"),
    ),
    "teams": (
        Variable("TEAMS_APP_ID", True, "Azure Bot registration → Microsoft App ID"),
        Variable("TEAMS_APP_PASSWORD", True, "Azure Bot registration → client secret"),
        Variable("TEAMS_TENANT_ID", False, "single-tenant bots (all new ones): Azure → Microsoft Entra ID → Tenant ID"),
        Variable("TEAMS_STREAMING", False, "0 turns Teams' streaming off in personal chats (docs/teams.md)", "1"),
    ),
    "discord": (
        Variable("DISCORD_BOT_TOKEN", True, "Discord developer portal → Bot → Token"),
        Variable("DISCORD_CLIENT_ID", True, "Discord developer portal → General Information → Application ID"),
        Variable("DISCORD_GUILD_ID", False, "register commands in one server for instant updates (else global)"),
        Variable("DISCORD_PUBLIC_KEY", False, "HTTP-interactions mode: General Information → Public Key"),
    ),
}


def describe(name: str, env: Mapping[str, str]) -> str:
    value = env.get(name, "").strip()
    if not value:
        return "missing"
    if name in secret_variables():
        return "set (secret, not shown)"
    return f"set: {redact_url(value) if name == 'OPENDISPATCH_DB' else value}"


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

    general = tuple(v for v in GENERAL if backend != "fly" or v.name != "SPRITE_IMAGE")  # listed as required below
    github = GITHUB_APP if GitHubAppSettings.configured(env) else ()
    variables = (*general, *github, *SPRITE_BACKENDS.get(backend, ()), *PROVIDERS.get(provider, ()))
    width = max(len(variable.name) for variable in variables) + 1
    rows: list[str] = []
    for variable in variables:
        state = describe(variable.name, env)
        problem = claim(variable.name)
        if problem is not None:
            rows.append(f"✗ {variable.name:<{width}} {state}  — {problem.message}")
            continue
        if state == "missing" and not variable.required:
            state = f"not set (default: {variable.default})" if variable.default else "not set"
        rows.append(f"{'·' if state.startswith(('missing', 'not set')) else '✓'} {variable.name:<{width}} {state}  — {variable.how}")

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
