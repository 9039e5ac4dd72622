"""Configuration from the environment (and a `.env` file), read once, validated early.

This is the only module that reads `os.environ`. Names follow the seed's table; new ones
are prefixed `OPENDISPATCH_`. Secret values never appear in `repr()` or in `doctor`.

Every variable read here is declared once below as a `Setting` (support/settings.py: its name,
meaning and default as shown, whether it is required or a secret); `Config._parse` reads them
through a `SettingsReader`, and `doctor` lists them from the same declarations (the chat
adapters and the GitHub App declare theirs in their own settings modules).
"""

from __future__ import annotations

import functools
import importlib
import json
import os
import select
import re
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import urlsplit

import attrs
from dotenv import dotenv_values

from .adapters.fly.wire import CPU_KINDS, DEFAULT_API_URL, guest_problem
from .adapters.github import settings as github_app
from .adapters.github.settings import GitHubAppSettings
from .adapters.postgres.url import redact_url, url_passwords
from .domain.access import AccessPolicy, host_repo_patterns
from .domain.errors import ConfigError
from .domain.job_spec import AgentKind, parse_duration, validate_image
from .domain.ownership import Ownership
from .domain.output_quota import DEFAULT_MAX_OUTPUT_CHARS, DEFAULT_MAX_OUTPUT_LINES
from .domain.repo_credentials import DEFAULT_RENEW_MARGIN_S
from .domain.repo_credentials import GITHUB_SERVER_URL as DEFAULT_GITHUB_SERVER_URL
from .domain.sidecar import PASSTHROUGH_SECRETS, is_public_setting
from .domain.tokens import MIN_SECRET_BYTES
from .support.settings import Problem, Setting, SettingsReader, names, switch, whole_number

__all__ = ["Config", "FlyOptions", "Problem", "SETTINGS", "chat_settings", "read_environment"]

CHAT_PROVIDERS = ("console", "slack", "teams", "discord")
AVAILABLE_CHAT_PROVIDERS = ("console", "slack", "teams", "discord")
SPRITE_BACKENDS = ("local", "fly", "fly-emulator")
DEFAULT_FLY_REGION = "iad"
DEFAULT_DB_PATH = ".opendispatch/jobs.db"
DEFAULT_MAX_JOBS_PER_USER = 5
DEFAULT_SILENCE_S: float | None = 1800.0
DEFAULT_WEBHOOK_PORT = 8080
DEFAULT_FLY_CPU_KIND = "shared"
DEFAULT_FLY_CPUS = 1
DEFAULT_FLY_MEMORY_MB = 1024
DEFAULT_MAX_OUTPUT_MB = DEFAULT_MAX_OUTPUT_CHARS // (1024 * 1024)
DEFAULT_REAPER_PERIOD_S = 60
DEFAULT_SESSION_IDLE_S = 900.0
DEFAULT_SESSION_MAX_IDLE_S = 86400.0
#: A card's "View live" link works a week; `/od-web`'s link to the whole list, 12 hours.
DEFAULT_WEB_LINK_S = 7 * 86400.0
DEFAULT_WEB_GRANT_S = 12 * 3600.0
#: Dispatchers sharing a database: a job lease's length (OPENDISPATCH_LEASE_S).
DEFAULT_LEASE_S = 10.0
#: The value of OPENDISPATCH_UNSANDBOXED_LOCAL_SPRITES that lets shared chat run local sprites
#: without a sandbox: spelled out so nobody sets it by accident.
UNSANDBOXED_OPT_IN = "i-understand"

# --- The service's settings, each declared once (`doctor` lists them from here) -----------

CHAT_PROVIDER = Setting("CHAT_PROVIDER", "console (default), slack, teams or discord", "console")
OPENDISPATCH_SPRITES = Setting(
    "OPENDISPATCH_SPRITES", "sprite backend: local, fly, or fly-emulator (Fly API on loopback)", "local"
)
WEBHOOK_PORT = Setting("WEBHOOK_PORT", "port the webhook server listens on", str(DEFAULT_WEBHOOK_PORT))
OPENDISPATCH_WEBHOOK_HOST = Setting("OPENDISPATCH_WEBHOOK_HOST", "address the webhook server listens on", "127.0.0.1")
OPEN_DISPATCH_URL = Setting("OPEN_DISPATCH_URL", "URL sprites use to reach the webhook server", "the server's own URL")
OPENDISPATCH_DB = Setting("OPENDISPATCH_DB", "SQLite file for jobs and output, or a postgresql:// URL", DEFAULT_DB_PATH)
OPENDISPATCH_LEASE_S = Setting(
    "OPENDISPATCH_LEASE_S",
    "on PostgreSQL: a job lease; a standby takes over a dead leader's jobs within it",
    f"{DEFAULT_LEASE_S:g}",
)
OPENDISPATCH_FAST_INGEST = Setting(
    "OPENDISPATCH_FAST_INGEST",
    "1: the measured fast path for sidecars' output, for hundreds of jobs at once (Linux; docs/performance.md)",
    "0: Quart on hypercorn",
)
OPENDISPATCH_PEER_URL = Setting(
    "OPENDISPATCH_PEER_URL",
    "on PostgreSQL: where the other dispatchers reach this one",
    "on Fly the machine's private address, else the bound one",
)
SPRITE_IMAGE = Setting(
    "SPRITE_IMAGE",
    "default image for sprites (Fly backend): an agent image with sprite-reporter, pushed to "
    "registry.fly.io/<sprite app>/<name>:<tag>",
)
SPRITE_IMAGES = Setting("SPRITE_IMAGES", 'aliases for --image, JSON: {"py": "registry.fly.io/app/py:1"}')
SPRITE_AGENT_TYPE = Setting("SPRITE_AGENT_TYPE", "default agent: claude, opencode or shell", AgentKind.CLAUDE.value)
OPENDISPATCH_TOKEN_SECRET = Setting(
    "OPENDISPATCH_TOKEN_SECRET", "key for job tokens (else generated once and kept in the DB)", secret=True
)
#: Passed to sprites (domain/sidecar.py, PASSTHROUGH_SECRETS).
GH_TOKEN = Setting(
    "GH_TOKEN", "GitHub token passed to sprites for private clones: `gh auth token` (a GitHub App is safer)", secret=True
)
ANTHROPIC_API_KEY = Setting("ANTHROPIC_API_KEY", "passed to sprites for Claude Code: console.anthropic.com", secret=True)
DATABASE_URL = Setting("DATABASE_URL", "passed to sprites when your agents need a database", secret=True)
OPENDISPATCH_PASSTHROUGH_ENV = Setting(
    "OPENDISPATCH_PASSTHROUGH_ENV", "more variables passed to sprites, comma-separated (secrets unless known public)"
)

#: Local sprites' sandbox (adapters/local).
OPENDISPATCH_SANDBOX_ALLOW = Setting(
    "OPENDISPATCH_SANDBOX_ALLOW",
    "more places sandboxed sprites may reach: 127.0.0.1:4000, 10.0.0.0/8, git.internal:443",
)
OPENDISPATCH_SANDBOX_READ_ONLY = Setting("OPENDISPATCH_SANDBOX_READ_ONLY", "more folders sandboxed sprites may read")
OPENDISPATCH_UNSANDBOXED_LOCAL_SPRITES = Setting(
    "OPENDISPATCH_UNSANDBOXED_LOCAL_SPRITES", f"{UNSANDBOXED_OPT_IN}: run shared chat's local sprites without a sandbox"
)
OPENDISPATCH_SPRITE_LOG_DIR = Setting("OPENDISPATCH_SPRITE_LOG_DIR", "a folder for local sprites' logs")

#: Sprites as Fly Machines (docs/deploy-fly.md, steps 1-3 say where each comes from).
FLY_API_TOKEN = Setting(
    "FLY_API_TOKEN",
    "a deploy token for the sprite app: `fly tokens create deploy -a <sprite app>`; check with `fly auth whoami`",
    required=True,
    secret=True,
)
FLY_SPRITE_APP = Setting("FLY_SPRITE_APP", "the app the sprite machines live in: `fly apps create <name>`", required=True)
FLY_REGION = Setting("FLY_REGION", "region for sprites: `fly platform regions`", DEFAULT_FLY_REGION)
FLY_API_URL = Setting("FLY_API_URL", "Machines API (inside Fly: http://_api.internal:4280)", DEFAULT_API_URL)
OPENDISPATCH_SPRITE_CPU_KIND = Setting("OPENDISPATCH_SPRITE_CPU_KIND", "shared or performance", DEFAULT_FLY_CPU_KIND)
OPENDISPATCH_SPRITE_CPUS = Setting("OPENDISPATCH_SPRITE_CPUS", "CPUs per sprite", str(DEFAULT_FLY_CPUS))
OPENDISPATCH_SPRITE_MEMORY_MB = Setting(
    "OPENDISPATCH_SPRITE_MEMORY_MB", "memory per sprite (multiple of 256)", str(DEFAULT_FLY_MEMORY_MB)
)
OPENDISPATCH_INSTANCE = Setting(
    "OPENDISPATCH_INSTANCE", "marks this dispatcher's machines (metadata)", "FLY_APP_NAME or opendispatch"
)
#: Set by Fly on its machines.
FLY_APP_NAME = Setting("FLY_APP_NAME", "the dispatcher's own Fly app (set by Fly)")
FLY_PRIVATE_IP = Setting("FLY_PRIVATE_IP", "the machine's private (6PN) address (set by Fly)")

#: Who may do what (docs/security.md).
OPENDISPATCH_ALLOWED_USERS = Setting("OPENDISPATCH_ALLOWED_USERS", "who may run jobs, comma-separated (unset: everyone)")
OPENDISPATCH_ALLOWED_CHANNELS = Setting(
    "OPENDISPATCH_ALLOWED_CHANNELS", "where jobs may run, comma-separated (unset: everywhere)"
)
OPENDISPATCH_ALLOWED_REPOS = Setting(
    "OPENDISPATCH_ALLOWED_REPOS", "repositories jobs may use, owner/name or patterns; host paths such as /srv/git/*"
)
OPENDISPATCH_ALLOWED_IMAGES = Setting("OPENDISPATCH_ALLOWED_IMAGES", "images --image may name besides the aliases")
OPENDISPATCH_MAX_JOBS_PER_USER = Setting(
    "OPENDISPATCH_MAX_JOBS_PER_USER", "active jobs per user (0 = no limit)", str(DEFAULT_MAX_JOBS_PER_USER)
)
OPENDISPATCH_ADMIN_USERS = Setting("OPENDISPATCH_ADMIN_USERS", "users who may read and stop every job")
OPENDISPATCH_CHANNEL_MAY_READ = Setting(
    "OPENDISPATCH_CHANNEL_MAY_READ", "1: a channel's members may read each other's jobs there", "0"
)

#: Limits, the reaper and sessions.
OPENDISPATCH_REAPER_PERIOD_S = Setting(
    "OPENDISPATCH_REAPER_PERIOD_S", "seconds between two rounds of the reaper", str(DEFAULT_REAPER_PERIOD_S)
)
OPENDISPATCH_MAX_OUTPUT_LINES = Setting(
    "OPENDISPATCH_MAX_OUTPUT_LINES", "lines of output kept per job", str(DEFAULT_MAX_OUTPUT_LINES)
)
OPENDISPATCH_MAX_OUTPUT_MB = Setting("OPENDISPATCH_MAX_OUTPUT_MB", "MB of output kept per job", str(DEFAULT_MAX_OUTPUT_MB))
OPENDISPATCH_SILENCE_S = Setting(
    "OPENDISPATCH_SILENCE_S", "reap a job whose sidecar sent nothing this long (0 = never)", f"{DEFAULT_SILENCE_S:g}"
)
OPENDISPATCH_ALLOW_SHELL_SESSIONS = Setting("OPENDISPATCH_ALLOW_SHELL_SESSIONS", "1: sessions may run the shell agent", "0")
OPENDISPATCH_SESSION_IDLE = Setting(
    "OPENDISPATCH_SESSION_IDLE", "an idle session is suspended after this long", f"{DEFAULT_SESSION_IDLE_S:g}"
)
OPENDISPATCH_SESSION_MAX_IDLE = Setting(
    "OPENDISPATCH_SESSION_MAX_IDLE", "a suspended session ends after this long", f"{DEFAULT_SESSION_MAX_IDLE_S:g}"
)
OPENDISPATCH_CREDENTIAL_RENEW_S = Setting(
    "OPENDISPATCH_CREDENTIAL_RENEW_S",
    "a job's repository token is renewed when it has less than this left",
    f"{DEFAULT_RENEW_MARGIN_S:g}",
)

#: The web view (docs/web.md).
OPENDISPATCH_WEB = Setting("OPENDISPATCH_WEB", "0 turns the web view of jobs off", "1")
OPENDISPATCH_WEB_URL = Setting(
    "OPENDISPATCH_WEB_URL",
    "the base URL people open the web view at",
    "on Fly https://<app>.fly.dev, else OPEN_DISPATCH_URL, else the bound address",
)
OPENDISPATCH_WEB_LINK_S = Setting(
    "OPENDISPATCH_WEB_LINK_S", "how long a card's View live link works", f"{DEFAULT_WEB_LINK_S:g}"
)
OPENDISPATCH_WEB_GRANT_S = Setting(
    "OPENDISPATCH_WEB_GRANT_S", "how long /od-web's link to the list works", f"{DEFAULT_WEB_GRANT_S:g}"
)

#: What `doctor` lists for every deployment (with the GitHub App's id and key, and the
#: variables passed to sprites), for local sprites, and for Fly sprites.
GENERAL = (
    CHAT_PROVIDER,
    OPENDISPATCH_SPRITES,
    WEBHOOK_PORT,
    OPEN_DISPATCH_URL,
    OPENDISPATCH_DB,
    OPENDISPATCH_LEASE_S,
    OPENDISPATCH_FAST_INGEST,
    OPENDISPATCH_PEER_URL,
    SPRITE_IMAGE,
    SPRITE_IMAGES,
    SPRITE_AGENT_TYPE,
    OPENDISPATCH_TOKEN_SECRET,
)
PASSTHROUGH = (GH_TOKEN, ANTHROPIC_API_KEY, DATABASE_URL)
LOCAL_SPRITES = (OPENDISPATCH_SANDBOX_ALLOW, OPENDISPATCH_SANDBOX_READ_ONLY, OPENDISPATCH_UNSANDBOXED_LOCAL_SPRITES)
#: What Fly sprites need first, one problem each when missing (the seed's "Missing required env vars").
FLY_REQUIRED = (FLY_API_TOKEN, FLY_SPRITE_APP, SPRITE_IMAGE.but_required())
FLY_SPRITES = (
    *FLY_REQUIRED,
    FLY_REGION,
    FLY_API_URL,
    OPENDISPATCH_SPRITE_CPU_KIND,
    OPENDISPATCH_SPRITE_CPUS,
    OPENDISPATCH_SPRITE_MEMORY_MB,
    OPENDISPATCH_INSTANCE,
)

#: Every setting this module reads (the GitHub App's are in adapters/github/settings.py).
SETTINGS: tuple[Setting, ...] = (
    *GENERAL,
    OPENDISPATCH_WEBHOOK_HOST,
    *PASSTHROUGH,
    OPENDISPATCH_PASSTHROUGH_ENV,
    *LOCAL_SPRITES,
    OPENDISPATCH_SPRITE_LOG_DIR,
    *FLY_SPRITES[:2],
    *FLY_SPRITES[3:],
    FLY_APP_NAME,
    FLY_PRIVATE_IP,
    OPENDISPATCH_ALLOWED_USERS,
    OPENDISPATCH_ALLOWED_CHANNELS,
    OPENDISPATCH_ALLOWED_REPOS,
    OPENDISPATCH_ALLOWED_IMAGES,
    OPENDISPATCH_MAX_JOBS_PER_USER,
    OPENDISPATCH_ADMIN_USERS,
    OPENDISPATCH_CHANNEL_MAY_READ,
    OPENDISPATCH_REAPER_PERIOD_S,
    OPENDISPATCH_MAX_OUTPUT_LINES,
    OPENDISPATCH_MAX_OUTPUT_MB,
    OPENDISPATCH_SILENCE_S,
    OPENDISPATCH_ALLOW_SHELL_SESSIONS,
    OPENDISPATCH_SESSION_IDLE,
    OPENDISPATCH_SESSION_MAX_IDLE,
    OPENDISPATCH_CREDENTIAL_RENEW_S,
    OPENDISPATCH_WEB,
    OPENDISPATCH_WEB_URL,
    OPENDISPATCH_WEB_LINK_S,
    OPENDISPATCH_WEB_GRANT_S,
)


@functools.cache
def chat_settings(provider: str) -> tuple[Setting, ...]:
    """The declarations of a chat adapter's settings: `SETTINGS` of adapters/<provider>/settings.py.

    The adapter packages import their chat modules (and so their extras: slack_sdk, discord.py,
    PyJWT) only when first used, so this needs only the domain and the support layer, and
    `doctor` lists a provider's variables (and every secret is redacted) whether or not the
    extra is installed.
    """
    if provider not in CHAT_PROVIDERS or provider == "console":
        return ()
    module = importlib.import_module(f"{__package__}.adapters.{provider}.settings")
    declared: tuple[Setting, ...] = module.SETTINGS
    return declared


@functools.cache
def secret_variables() -> tuple[str, ...]:
    """Every variable whose value is a secret: redacted from chat, the store and logs."""
    every = (*SETTINGS, *github_app.SETTINGS, *(s for provider in CHAT_PROVIDERS for s in chat_settings(provider)))
    return tuple(setting.name for setting in every if setting.secret)


def _hidden(_: object) -> str:
    return "***"


@attrs.frozen
class FlyOptions:
    """Sprites as Fly Machines (OPENDISPATCH_SPRITES=fly, or fly-emulator on this machine)."""

    api_token: str | None = attrs.field(default=None, repr=_hidden)
    sprite_app: str | None = None
    region: str = DEFAULT_FLY_REGION
    api_url: str = DEFAULT_API_URL
    cpu_kind: str = DEFAULT_FLY_CPU_KIND
    cpus: int = DEFAULT_FLY_CPUS
    memory_mb: int = DEFAULT_FLY_MEMORY_MB
    instance: str = "opendispatch"


@attrs.frozen
class Config:
    chat_provider: str = "console"
    sprite_backend: str = "local"
    webhook_host: str = "127.0.0.1"
    webhook_port: int = DEFAULT_WEBHOOK_PORT
    open_dispatch_url: str | None = None
    #: A SQLite file, or a PostgreSQL URL (its password hidden from repr, redacted everywhere).
    database_path: str = attrs.field(default=DEFAULT_DB_PATH, repr=lambda path: repr(redact_url(path)))
    sprite_image: str | None = None
    sprite_images: Mapping[str, str] = attrs.field(factory=dict)
    agent_type: AgentKind = AgentKind.CLAUDE
    token_secret: str | None = attrs.field(default=None, repr=_hidden)
    passthrough: Mapping[str, str] = attrs.field(factory=dict, repr=_hidden)
    secret_values: tuple[str, ...] = attrs.field(default=(), repr=_hidden)
    local_sprite_log_dir: str | None = None
    access: AccessPolicy = attrs.field(factory=AccessPolicy)
    ownership: Ownership = attrs.field(factory=Ownership)
    fly: FlyOptions = FlyOptions()
    reaper_period_s: float = float(DEFAULT_REAPER_PERIOD_S)
    silence_s: float | None = DEFAULT_SILENCE_S
    allow_shell_sessions: bool = False
    session_idle_s: float = DEFAULT_SESSION_IDLE_S
    session_max_idle_s: float = DEFAULT_SESSION_MAX_IDLE_S
    #: Local sprites' sandbox (adapters/local): destinations it may reach besides the webhook
    #: and public addresses, folders it may read, and the loud opt-out for shared chat.
    sandbox_allow: tuple[str, ...] = ()
    sandbox_read_only: tuple[str, ...] = ()
    unsandboxed_local_sprites: bool = False
    max_output_lines: int = DEFAULT_MAX_OUTPUT_LINES
    max_output_mb: int = DEFAULT_MAX_OUTPUT_MB
    #: Where `--repo owner/name` lives and jobs' repository tokens are for (docs/github.md).
    github_server_url: str = DEFAULT_GITHUB_SERVER_URL
    #: A job's repository token is renewed when it has less than this left.
    credential_renew_s: float = DEFAULT_RENEW_MARGIN_S
    #: The web view of jobs (docs/web.md): on unless OPENDISPATCH_WEB=0.
    web_enabled: bool = True
    #: The base URL people open the web view at (OPENDISPATCH_WEB_URL, else on Fly the app's
    #: https://<app>.fly.dev, else OPEN_DISPATCH_URL when set; else the bound address).
    web_url: str | None = None
    #: How long a card's "View live" link works (OPENDISPATCH_WEB_LINK_S).
    web_link_s: float = DEFAULT_WEB_LINK_S
    #: How long `/od-web`'s link to the list works (OPENDISPATCH_WEB_GRANT_S).
    web_grant_s: float = DEFAULT_WEB_GRANT_S
    #: Dispatchers sharing a PostgreSQL database (docs/deploy-fly.md, "Two machines"): how
    #: long a job lease lasts unless the leader renews it (OPENDISPATCH_LEASE_S), so about how
    #: long a standby waits before it takes over from a leader that died.
    lease_s: float = DEFAULT_LEASE_S
    #: Where standbys pass requests on to when this process leads (OPENDISPATCH_PEER_URL; on
    #: Fly the machine's private address, else the bound address).
    peer_url: str | None = None
    #: The measured fast path for sidecars' output (OPENDISPATCH_FAST_INGEST=1, Linux only;
    #: adapters/webhook/fast/, docs/performance.md says when to turn it on); off: Quart on hypercorn.
    fast_ingest: bool = False
    environ: Mapping[str, str] = attrs.field(factory=dict, repr=False, eq=False)

    @property
    def webhook_bind(self) -> str:
        return f"{self.webhook_host}:{self.webhook_port}"

    @classmethod
    def embedded(cls, **overrides: object) -> Config:
        """The no-configuration default: console chat, local sprites, SQLite, loopback."""
        return attrs.evolve(cls(), **overrides)  # type: ignore[arg-type]

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, *, dotenv: str | Path | None = ".env") -> Config:
        """The configuration, or a `ConfigError` whose lines are every problem found (see `problems`)."""
        config, problems = cls._parse(read_environment(environ, dotenv=dotenv))
        if problems:
            raise ConfigError("\n".join(problem.message for problem in problems))
        return config

    @classmethod
    def problems(cls, env: Mapping[str, str]) -> list[Problem]:
        """Every problem of the settings this module reads (the chat adapters' own settings are
        checked by `validation.validate`, which `serve` and `doctor` both call)."""
        return cls._parse(env)[1]

    @classmethod
    def read(cls, env: Mapping[str, str]) -> tuple[Config, list[Problem]]:
        """The configuration as far as it can be read (a wrong setting at its default) and its
        problems: `doctor` still checks the port and the database of a partly wrong one."""
        return cls._parse(env)

    @classmethod
    def _parse(cls, env: Mapping[str, str]) -> tuple[Config, list[Problem]]:
        read = SettingsReader(env)
        text = read.text
        provider = read.parse(CHAT_PROVIDER, _provider, "console")
        backend = read.parse(OPENDISPATCH_SPRITES, _backend, "local")
        port = read.parse(WEBHOOK_PORT, _port, DEFAULT_WEBHOOK_PORT)
        agent = read.parse(SPRITE_AGENT_TYPE, _agent, AgentKind.CLAUDE)
        image = text(SPRITE_IMAGE)
        if image is not None:
            read.value(SPRITE_IMAGE, lambda: _check_image(SPRITE_IMAGE.name, image), None)
        fly = _fly_options(read)
        extra = [name.strip() for name in (text(OPENDISPATCH_PASSTHROUGH_ENV) or "").split(",") if name.strip()]
        passthrough = {name: env[name] for name in (*PASSTHROUGH_SECRETS, *extra) if env.get(name)}
        if GitHubAppSettings.configured(env):
            passthrough.pop(GH_TOKEN.name, None)  # each job gets its own repository's token instead
        if backend == "fly":
            _check_fly_requirements(read, fly, image, extra)
        token_secret = text(OPENDISPATCH_TOKEN_SECRET)
        if token_secret is not None and len(token_secret.encode()) < MIN_SECRET_BYTES:
            read.add(OPENDISPATCH_TOKEN_SECRET, TOKEN_SECRET_TOO_SHORT)
        secrets = tuple(
            env[name] for name in (*secret_variables(), *extra) if env.get(name) and not is_public_setting(name)
        ) + url_passwords(text(OPENDISPATCH_DB) or "")
        aliases: Mapping[str, str] = read.parse(SPRITE_IMAGES, _image_aliases, {})
        fly_app_name = text(FLY_APP_NAME)
        config = cls(
            chat_provider=provider,
            sprite_backend=backend,
            webhook_host=text(OPENDISPATCH_WEBHOOK_HOST) or "127.0.0.1",
            webhook_port=port,
            open_dispatch_url=text(OPEN_DISPATCH_URL) or _default_callback_url(backend, fly_app_name, str(port)),
            database_path=text(OPENDISPATCH_DB) or DEFAULT_DB_PATH,
            sprite_image=image,
            sprite_images=aliases,
            agent_type=agent,
            token_secret=token_secret,
            passthrough=passthrough,
            secret_values=secrets,
            local_sprite_log_dir=text(OPENDISPATCH_SPRITE_LOG_DIR),
            access=read.value(OPENDISPATCH_MAX_JOBS_PER_USER, lambda: _access_policy(read, provider, aliases), AccessPolicy()),
            ownership=Ownership(
                admins=names(text(OPENDISPATCH_ADMIN_USERS)),
                channel_members_may_read=read.switch(OPENDISPATCH_CHANNEL_MAY_READ),
            ),
            fly=fly,
            reaper_period_s=float(_count(read, OPENDISPATCH_REAPER_PERIOD_S, DEFAULT_REAPER_PERIOD_S)),
            sandbox_allow=tuple(sorted(names(text(OPENDISPATCH_SANDBOX_ALLOW)))),
            sandbox_read_only=tuple(sorted(names(text(OPENDISPATCH_SANDBOX_READ_ONLY)))),
            unsandboxed_local_sprites=text(OPENDISPATCH_UNSANDBOXED_LOCAL_SPRITES) == UNSANDBOXED_OPT_IN,
            max_output_lines=_count(read, OPENDISPATCH_MAX_OUTPUT_LINES, DEFAULT_MAX_OUTPUT_LINES),
            max_output_mb=_count(read, OPENDISPATCH_MAX_OUTPUT_MB, DEFAULT_MAX_OUTPUT_MB),
            silence_s=read.parse(OPENDISPATCH_SILENCE_S, _silence, DEFAULT_SILENCE_S),
            allow_shell_sessions=read.switch(OPENDISPATCH_ALLOW_SHELL_SESSIONS),
            session_idle_s=_duration(read, OPENDISPATCH_SESSION_IDLE, DEFAULT_SESSION_IDLE_S),
            session_max_idle_s=_duration(read, OPENDISPATCH_SESSION_MAX_IDLE, DEFAULT_SESSION_MAX_IDLE_S),
            github_server_url=read.parse(github_app.GITHUB_SERVER_URL, _server_url, DEFAULT_GITHUB_SERVER_URL),
            credential_renew_s=float(_count(read, OPENDISPATCH_CREDENTIAL_RENEW_S, int(DEFAULT_RENEW_MARGIN_S))),
            web_enabled=read.switch(OPENDISPATCH_WEB, default=True),
            fast_ingest=read.parse(OPENDISPATCH_FAST_INGEST, _fast_ingest, False),
            web_url=read.value(
                OPENDISPATCH_WEB_URL,
                lambda: _web_url(
                    text(OPENDISPATCH_WEB_URL)
                    # On Fly, the app's public address (sprites use the private one).
                    or (f"https://{fly_app_name}.fly.dev" if fly_app_name else None)
                    or text(OPEN_DISPATCH_URL)
                ),
                None,
            ),
            web_link_s=float(_count(read, OPENDISPATCH_WEB_LINK_S, int(DEFAULT_WEB_LINK_S))),
            web_grant_s=float(_count(read, OPENDISPATCH_WEB_GRANT_S, int(DEFAULT_WEB_GRANT_S))),
            lease_s=read.parse(OPENDISPATCH_LEASE_S, _lease, DEFAULT_LEASE_S),
            peer_url=read.value(
                OPENDISPATCH_PEER_URL,
                lambda: _peer_url(text(OPENDISPATCH_PEER_URL), text(FLY_PRIVATE_IP), str(port)),
                None,
            ),
            environ=dict(env),
        )
        return config, read.problems


def _count(read: SettingsReader, setting: Setting, default: int) -> int:
    """A whole number setting (at least 1), or its problem recorded and `default`."""
    return read.parse(setting, lambda text: whole_number(setting, text, default), default)


def _duration(read: SettingsReader, setting: Setting, default: float) -> float:
    """A duration setting (see `_session_duration`), or its problem recorded and `default`."""
    return read.parse(setting, lambda text: _session_duration(setting.name, text, default), default)


def _lease(text: str | None) -> float:
    """OPENDISPATCH_LEASE_S: seconds, at least 1 (the heartbeat renews every third of it)."""
    if text is None:
        return DEFAULT_LEASE_S
    try:
        value = float(text)
    except ValueError:
        value = 0.0
    if not 1.0 <= value <= 600.0:
        raise ConfigError(f"OPENDISPATCH_LEASE_S={text!r} must be seconds between 1 and 600 (default {DEFAULT_LEASE_S:g}).")
    return value


def _peer_url(text: str | None, fly_private_ip: str | None, port_text: str) -> str | None:
    """Where the other dispatchers reach this one: the setting, or on Fly the machine's own
    private (6PN) address; None: the address the server bound."""
    if text is not None:
        parts = urlsplit(text)
        if parts.scheme != "http" or not parts.netloc or parts.username or parts.password or parts.path not in ("", "/"):
            raise ConfigError(
                f"OPENDISPATCH_PEER_URL must be this dispatcher's address for the other dispatchers, "
                f"e.g. http://10.0.0.2:8080 (got {text!r})."
            )
        return text.rstrip("/")
    if fly_private_ip:
        return f"http://[{fly_private_ip}]:{port_text}"
    return None


def _web_url(text: str | None) -> str | None:
    """The web view's public base URL: http(s), a host, no credentials, query or fragment."""
    if text is None:
        return None
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.netloc or parts.username or parts.password or parts.query or parts.fragment:
        raise ConfigError(f"OPENDISPATCH_WEB_URL must be the base URL people open, e.g. https://od.example.com (got {text!r}).")
    return text.rstrip("/")


def _server_url(text: str | None) -> str:
    if text is None:
        return DEFAULT_GITHUB_SERVER_URL
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.netloc or parts.username or parts.password or parts.query:
        raise ConfigError(
            f"{github_app.GITHUB_SERVER_URL.name} must be the server's base URL, e.g. https://github.com (got {text!r})."
        )
    return text.rstrip("/")


#: What `serve` says about a job-token key too short to be safe (bootstrap checks it again for
#: embedders that build a `Config` themselves).
TOKEN_SECRET_TOO_SHORT = f"OPENDISPATCH_TOKEN_SECRET must be at least {MIN_SECRET_BYTES} characters."


def _provider(text: str | None) -> str:
    provider = (text or "console").lower()
    if provider not in CHAT_PROVIDERS:
        raise ConfigError(f"CHAT_PROVIDER={provider!r} is not known: use one of {', '.join(CHAT_PROVIDERS)}.")
    return provider


def _backend(text: str | None) -> str:
    backend = (text or "local").lower()
    if backend not in SPRITE_BACKENDS:
        raise ConfigError(
            f"OPENDISPATCH_SPRITES={backend!r} is not available in this build: use one of {', '.join(SPRITE_BACKENDS)}."
        )
    return backend


def _port(text: str | None) -> int:
    if text is None:
        return DEFAULT_WEBHOOK_PORT
    if not text.isdigit() or not 0 <= int(text) <= 65535:
        raise ConfigError(f"WEBHOOK_PORT={text!r} must be a port number (0-65535).")
    return int(text)


def _agent(text: str | None) -> AgentKind:
    if text is None:
        return AgentKind.CLAUDE
    try:
        return AgentKind(text.lower())
    except ValueError:
        raise ConfigError(f"SPRITE_AGENT_TYPE={text!r} must be claude, opencode or shell.") from None


def _access_policy(read: SettingsReader, provider: str, aliases: Mapping[str, str]) -> AccessPolicy:
    limit_text = read.text(OPENDISPATCH_MAX_JOBS_PER_USER) or str(DEFAULT_MAX_JOBS_PER_USER)
    if not re.fullmatch(r"[0-9]{1,9}", limit_text):
        raise ConfigError(f"OPENDISPATCH_MAX_JOBS_PER_USER={limit_text!r} must be a whole number (0 = no limit).")
    repos = names(read.text(OPENDISPATCH_ALLOWED_REPOS))
    return AccessPolicy(
        users=names(read.text(OPENDISPATCH_ALLOWED_USERS)),
        channels=names(read.text(OPENDISPATCH_ALLOWED_CHANNELS)),
        repos=repos,
        # Shared chat may clone only the host paths the operator lists (`/srv/git/*`); at the
        # console the user is the operator and their own disk is theirs.
        host_repos=host_repo_patterns(repos) if provider != "console" else None,
        # Shared chat without an image allowlist: the default and the aliases only.
        known_images=frozenset(aliases.values()) if provider != "console" else None,
        images=names(read.text(OPENDISPATCH_ALLOWED_IMAGES)),
        max_active_jobs_per_user=int(limit_text) or None,
    )


def read_environment(
    environ: Mapping[str, str] | None = None, *, dotenv: str | Path | None = ".env"
) -> dict[str, str]:
    """The process environment layered over `.env` (real variables win, as with docker/fly)."""
    env: dict[str, str] = {}
    if dotenv is not None and Path(dotenv).is_file():
        env.update({k: v for k, v in dotenv_values(dotenv).items() if v is not None})
    env.update(os.environ if environ is None else environ)
    return env


def _check_image(name: str, image: str) -> None:
    """Raises `ConfigError` unless `image` is an image reference."""
    try:
        validate_image(image)
    except Exception:
        raise ConfigError(f"{name}={image!r} is not an image reference such as registry.fly.io/app/agent:latest.") from None


def _image_aliases(text: str | None) -> dict[str, str]:
    if not text:
        return {}
    try:
        aliases = json.loads(text)
    except ValueError:
        raise ConfigError('SPRITE_IMAGES must be a JSON object such as {"py": "registry.fly.io/app/py:1"}.') from None
    if not isinstance(aliases, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in aliases.items()):
        raise ConfigError('SPRITE_IMAGES must be a JSON object mapping alias names to image references.')
    for alias, image in aliases.items():
        _check_image(f"SPRITE_IMAGES[{alias}]", image)
    return dict(aliases)


def _fly_options(read: SettingsReader) -> FlyOptions:
    """FLY_* settings and the sprite size, checked against Fly's rules before any job runs."""
    region = (read.text(FLY_REGION) or DEFAULT_FLY_REGION).lower()
    if not re.fullmatch(r"[a-z]{3}", region):
        read.add(FLY_REGION, f"FLY_REGION={region!r} is not a Fly region code such as iad or ams: see `fly platform regions`.")
    api_url = (read.text(FLY_API_URL) or DEFAULT_API_URL).rstrip("/")
    if not re.match(r"https?://[^/\s]+", api_url):
        read.add(FLY_API_URL, f"FLY_API_URL={api_url!r} must be an http(s) URL such as {DEFAULT_API_URL}.")
    cpu_kind = (read.text(OPENDISPATCH_SPRITE_CPU_KIND) or DEFAULT_FLY_CPU_KIND).lower()
    if cpu_kind not in CPU_KINDS:
        read.add(OPENDISPATCH_SPRITE_CPU_KIND, f"OPENDISPATCH_SPRITE_CPU_KIND={cpu_kind!r} must be shared or performance.")
    def size(setting: Setting, default: int) -> int | None:
        """A whole number, or None after its problem is recorded (no size is checked then)."""
        return read.parse(setting, lambda text: whole_number(setting, text, default), None)

    cpus = size(OPENDISPATCH_SPRITE_CPUS, DEFAULT_FLY_CPUS)
    memory_mb = size(OPENDISPATCH_SPRITE_MEMORY_MB, DEFAULT_FLY_MEMORY_MB)
    problem = guest_problem(cpu_kind, cpus, memory_mb) if cpus and memory_mb and cpu_kind in CPU_KINDS else None
    if problem is not None:
        read.add(
            None,
            f"Sprite size is not one Fly offers: {problem}. Fix OPENDISPATCH_SPRITE_CPUS, "
            "OPENDISPATCH_SPRITE_MEMORY_MB or OPENDISPATCH_SPRITE_CPU_KIND (see `fly platform vm-sizes`).",
        )
    app = read.text(FLY_SPRITE_APP)
    if app is not None and not re.fullmatch(r"[a-z0-9][a-z0-9-]{1,62}", app):
        read.add(FLY_SPRITE_APP, f"FLY_SPRITE_APP={app!r} is not a Fly app name (lowercase letters, digits and dashes).")
    return FlyOptions(
        api_token=read.text(FLY_API_TOKEN),
        sprite_app=app,
        region=region,
        api_url=api_url,
        cpu_kind=cpu_kind,
        cpus=cpus or DEFAULT_FLY_CPUS,
        memory_mb=memory_mb or DEFAULT_FLY_MEMORY_MB,
        instance=read.text(OPENDISPATCH_INSTANCE) or read.text(FLY_APP_NAME) or "opendispatch",
    )


def _check_fly_requirements(read: SettingsReader, fly: FlyOptions, image: str | None, extra_passthrough: list[str]) -> None:
    """The seed's "Missing required env vars": one problem per missing variable, each saying
    where to get it (its meaning), so `doctor` counts three missing variables as three problems."""
    given = {FLY_API_TOKEN.name: fly.api_token, FLY_SPRITE_APP.name: fly.sprite_app, SPRITE_IMAGE.name: image}
    for setting in FLY_REQUIRED:
        if not given[setting.name]:
            read.add(
                setting,
                f"OPENDISPATCH_SPRITES=fly needs {setting.name}, {setting.meaning} (docs/deploy-fly.md, steps 1-3); "
                "or use OPENDISPATCH_SPRITES=fly-emulator to try it locally.",
            )
    reserved = [name for name in extra_passthrough if name.upper().startswith("FLY_")]
    if reserved:
        read.add(
            OPENDISPATCH_PASSTHROUGH_ENV,
            f"OPENDISPATCH_PASSTHROUGH_ENV names {reserved[0]}: Fly reserves FLY_* variables inside machines; rename it.",
        )


def _default_callback_url(backend: str, fly_app_name: str | None, port_text: str) -> str | None:
    """On Fly, sprites reach the dispatcher over the private network (`<app>.internal`)."""
    if backend != "fly":
        return None
    return f"http://{fly_app_name or 'open-dispatch'}.internal:{port_text}"


def _silence(text: str | None) -> float | None:
    """OPENDISPATCH_SILENCE_S: reap a job whose sidecar sent nothing for this long; 0 turns it off."""
    if text is None:
        return DEFAULT_SILENCE_S
    if not text.isdigit():
        raise ConfigError(f"OPENDISPATCH_SILENCE_S={text!r} must be whole seconds (0 = never reap silent jobs).")
    return float(text) or None


def _fast_ingest(text: str | None) -> bool:
    """OPENDISPATCH_FAST_INGEST: the fast path reads streams with epoll, which only Linux has."""
    wanted = switch(OPENDISPATCH_FAST_INGEST, text)
    if wanted and not hasattr(select, "epoll"):
        raise ConfigError("OPENDISPATCH_FAST_INGEST=1 needs Linux (select.epoll); unset it on this system.")
    return wanted


def _session_duration(name: str, text: str | None, default: float) -> float:
    """Whole seconds (any length) or a duration such as 15m, 24h."""
    if text is None:
        return default
    if text.isdigit() and int(text) >= 1:
        return float(text)
    try:
        return parse_duration(text)
    except Exception:
        raise ConfigError(f"{name}={text!r} must be a duration such as 15m or 24h, or whole seconds.") from None
