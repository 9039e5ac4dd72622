"""`opendispatch doctor`: what is configured, what is missing, and how to get it.

Secret values are never printed: a secret shows as "set" with its length class only.
"""

from __future__ import annotations

import shutil
import sys
from collections.abc import Mapping

import attrs

from .config import SECRET_VARIABLES, Config, read_environment
from .domain.errors import ConfigError


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
    Variable("OPENDISPATCH_DB", False, "SQLite file for jobs and output", ".opendispatch/jobs.db"),
    Variable("SPRITE_IMAGE", False, "default image for sprites (Fly backend)", None),
    Variable("SPRITE_IMAGES", False, 'aliases for --image, JSON: {"py": "registry.fly.io/app/py:1"}', None),
    Variable("SPRITE_AGENT_TYPE", False, "default agent: claude, opencode or shell", "claude"),
    Variable("OPENDISPATCH_TOKEN_SECRET", False, "key for job tokens (else generated once and kept in the DB)", None),
    Variable("GH_TOKEN", False, "GitHub token passed to sprites for private clones: `gh auth token`", None),
    Variable("ANTHROPIC_API_KEY", False, "passed to sprites for Claude Code: console.anthropic.com", None),
    Variable("DATABASE_URL", False, "passed to sprites when your agents need a database", None),
)

SPRITE_BACKENDS: Mapping[str, tuple[Variable, ...]] = {
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
    ),
    "teams": (
        Variable("TEAMS_APP_ID", True, "Azure Bot registration → Microsoft App ID"),
        Variable("TEAMS_APP_PASSWORD", True, "Azure Bot registration → client secret"),
        Variable("TEAMS_TENANT_ID", False, "single-tenant bots (all new ones): Azure → Microsoft Entra ID → Tenant ID"),
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
    if name in SECRET_VARIABLES:
        return "set (secret, not shown)"
    return f"set: {value}"


def report(env: Mapping[str, str]) -> tuple[list[str], int]:
    """The doctor's lines and its exit status (0 when nothing required is missing)."""
    lines: list[str] = []
    problems = 0
    try:
        config = Config.from_env(env, dotenv=None)
        lines.append(f"Configuration is valid: chat={config.chat_provider}, sprites={config.sprite_backend}.")
        provider = config.chat_provider
        backend = config.sprite_backend
    except ConfigError as exc:
        lines.append(f"✗ {exc}")
        problems += 1
        provider = env.get("CHAT_PROVIDER", "console").strip().lower() or "console"
        backend = env.get("OPENDISPATCH_SPRITES", "local").strip().lower() or "local"
    lines.append("")
    general = tuple(v for v in GENERAL if backend != "fly" or v.name != "SPRITE_IMAGE")  # listed as required below
    for variable in (*general, *SPRITE_BACKENDS.get(backend, ()), *PROVIDERS.get(provider, ())):
        state = describe(variable.name, env)
        if state == "missing" and variable.required:
            mark, problems = "✗", problems + 1
        elif state == "missing":
            mark = "·"
            state = f"not set (default: {variable.default})" if variable.default else "not set"
        else:
            mark = "✓"
        lines.append(f"{mark} {variable.name:<27} {state}  — {variable.how}")
    lines.append("")
    lines.append(f"{'✓' if shutil.which('git') else '✗'} git on PATH (needed by local sprites to clone)")
    if not shutil.which("git"):
        problems += 1
    lines.append(f"{'✓' if sys.version_info >= (3, 9) else '✗'} python {sys.version.split()[0]} for the sidecar")
    lines.append("")
    lines.append("Nothing required is missing." if problems == 0 else f"{problems} problem(s) to fix before `serve`.")
    return lines, 0 if problems == 0 else 1


def doctor() -> int:
    lines, status = report(read_environment())
    print("\n".join(lines))
    return status
