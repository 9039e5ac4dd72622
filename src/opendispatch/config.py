"""Configuration from the environment (and a `.env` file), read once, validated early.

This is the only module that reads `os.environ`. Names follow the seed's table; new ones
are prefixed `OPENDISPATCH_`. Secret values never appear in `repr()` or in `doctor`.
"""

from __future__ import annotations

import json
import os
import re
import select
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TypeVar
from urllib.parse import urlsplit

import attrs
from dotenv import dotenv_values

from .adapters.fly.wire import CPU_KINDS, DEFAULT_API_URL, guest_problem
from .adapters.github.settings import GitHubAppSettings
from .adapters.postgres.url import redact_url, url_passwords
from .domain.access import AccessPolicy, host_repo_patterns
from .domain.errors import ConfigError
from .domain.job_spec import AgentKind, parse_duration, validate_image
from .domain.ownership import Ownership
from .domain.output_quota import DEFAULT_MAX_OUTPUT_CHARS, DEFAULT_MAX_OUTPUT_LINES
from .domain.repo_credentials import DEFAULT_RENEW_MARGIN_S, GITHUB_SERVER_URL
from .domain.sidecar import PASSTHROUGH_SECRETS, is_public_setting
from .domain.tokens import MIN_SECRET_BYTES

CHAT_PROVIDERS = ("console", "slack", "teams", "discord")
AVAILABLE_CHAT_PROVIDERS = ("console", "slack", "teams", "discord")
SPRITE_BACKENDS = ("local", "fly", "fly-emulator")
DEFAULT_FLY_REGION = "iad"
DEFAULT_DB_PATH = ".opendispatch/jobs.db"
DEFAULT_MAX_JOBS_PER_USER = 5
DEFAULT_SILENCE_S: float | None = 1800.0



#: Every variable whose value is a secret: redacted from chat, the store and logs.
SECRET_VARIABLES = (
    "GH_TOKEN",
    "ANTHROPIC_API_KEY",
    "DATABASE_URL",
    "FLY_API_TOKEN",
    "SLACK_BOT_TOKEN",
    "SLACK_APP_TOKEN",
    "SLACK_SIGNING_SECRET",
    "TEAMS_APP_PASSWORD",
    "DISCORD_BOT_TOKEN",
    "OPENDISPATCH_TOKEN_SECRET",
    "GITHUB_APP_PRIVATE_KEY",
)


def _hidden(_: object) -> str:
    return "***"


T = TypeVar("T")


@attrs.frozen
class Problem:
    """One reason `serve` refuses to start, in words a user can act on (the variable and the fix).

    `variable` is the setting the problem is about, so `doctor` can show it on that setting's
    row; None when it concerns several settings or the machine. The message never holds a
    secret value: it names the variable instead.
    """

    message: str
    variable: str | None = None


class _Problems:
    """Collects a problem per setting instead of stopping at the first one.

    A user who fixes one variable, restarts, and meets the next refusal wastes a deploy per
    mistake; `serve` and `doctor` both show every problem at once.
    """

    def __init__(self) -> None:
        self.found: list[Problem] = []

    def value(self, variable: str | None, parse: Callable[[], T], fallback: T) -> T:
        """`parse()`, or `fallback` with its `ConfigError` recorded as a problem of `variable`."""
        try:
            return parse()
        except ConfigError as exc:
            self.found.append(Problem(str(exc), variable))
            return fallback

    def add(self, variable: str | None, message: str) -> None:
        self.found.append(Problem(message, variable))


@attrs.frozen
class FlyOptions:
    """Sprites as Fly Machines (OPENDISPATCH_SPRITES=fly, or fly-emulator on this machine)."""

    api_token: str | None = attrs.field(default=None, repr=_hidden)
    sprite_app: str | None = None
    region: str = DEFAULT_FLY_REGION
    api_url: str = DEFAULT_API_URL
    cpu_kind: str = "shared"
    cpus: int = 1
    memory_mb: int = 1024
    instance: str = "opendispatch"


#: A card's "View live" link works a week; `/od-web`'s link to the whole list, 12 hours.
DEFAULT_WEB_LINK_S = 7 * 86400.0
DEFAULT_WEB_GRANT_S = 12 * 3600.0
#: Dispatchers sharing a database: a job lease's length (OPENDISPATCH_LEASE_S).
DEFAULT_LEASE_S = 10.0


@attrs.frozen
class Config:
    chat_provider: str = "console"
    sprite_backend: str = "local"
    webhook_host: str = "127.0.0.1"
    webhook_port: int = 8080
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
    reaper_period_s: float = 60.0
    silence_s: float | None = 1800.0
    allow_shell_sessions: bool = False
    session_idle_s: float = 900.0
    session_max_idle_s: float = 86400.0
    #: Local sprites' sandbox (adapters/local): destinations it may reach besides the webhook
    #: and public addresses, folders it may read, and the loud opt-out for shared chat.
    sandbox_allow: tuple[str, ...] = ()
    sandbox_read_only: tuple[str, ...] = ()
    unsandboxed_local_sprites: bool = False
    max_output_lines: int = DEFAULT_MAX_OUTPUT_LINES
    max_output_mb: int = DEFAULT_MAX_OUTPUT_CHARS // (1024 * 1024)
    #: Where `--repo owner/name` lives and jobs' repository tokens are for (docs/github.md).
    github_server_url: str = GITHUB_SERVER_URL
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
        def get(name: str) -> str | None:
            value = env.get(name, "").strip()
            return value or None

        check = _Problems()
        provider = check.value("CHAT_PROVIDER", lambda: _provider(get("CHAT_PROVIDER")), "console")
        backend = check.value("OPENDISPATCH_SPRITES", lambda: _backend(get("OPENDISPATCH_SPRITES")), "local")
        port_text = get("WEBHOOK_PORT") or "8080"
        port = check.value("WEBHOOK_PORT", lambda: _port(port_text), 8080)
        agent = check.value("SPRITE_AGENT_TYPE", lambda: _agent(get("SPRITE_AGENT_TYPE") or "claude"), AgentKind.CLAUDE)
        image = get("SPRITE_IMAGE")
        if image is not None:
            check.value("SPRITE_IMAGE", lambda: _check_image("SPRITE_IMAGE", image), None)
        fly = _fly_options(get, check)
        extra = [name.strip() for name in (get("OPENDISPATCH_PASSTHROUGH_ENV") or "").split(",") if name.strip()]
        passthrough = {name: env[name] for name in (*PASSTHROUGH_SECRETS, *extra) if env.get(name)}
        if GitHubAppSettings.configured(env):
            passthrough.pop("GH_TOKEN", None)  # each job gets its own repository's token instead
        if backend == "fly":
            _check_fly_requirements(fly, image, extra, check)
        token_secret = get("OPENDISPATCH_TOKEN_SECRET")
        if token_secret is not None and len(token_secret.encode()) < MIN_SECRET_BYTES:
            check.add("OPENDISPATCH_TOKEN_SECRET", TOKEN_SECRET_TOO_SHORT)
        secrets = tuple(
            env[name] for name in (*SECRET_VARIABLES, *extra) if env.get(name) and not is_public_setting(name)
        ) + url_passwords(get("OPENDISPATCH_DB") or "")

        def setting(name: str, parse: Callable[[str | None], T], fallback: T) -> T:
            """A setting parsed from its text, or its problem recorded."""
            return check.value(name, lambda: parse(get(name)), fallback)

        aliases: Mapping[str, str] = check.value("SPRITE_IMAGES", lambda: _image_aliases(get("SPRITE_IMAGES")), {})

        config = cls(
            chat_provider=provider,
            sprite_backend=backend,
            webhook_host=get("OPENDISPATCH_WEBHOOK_HOST") or "127.0.0.1",
            webhook_port=port,
            open_dispatch_url=get("OPEN_DISPATCH_URL") or _default_callback_url(backend, get("FLY_APP_NAME"), str(port)),
            database_path=get("OPENDISPATCH_DB") or DEFAULT_DB_PATH,
            sprite_image=image,
            sprite_images=aliases,
            agent_type=agent,
            token_secret=token_secret,
            passthrough=passthrough,
            secret_values=secrets,
            local_sprite_log_dir=get("OPENDISPATCH_SPRITE_LOG_DIR"),
            access=check.value("OPENDISPATCH_MAX_JOBS_PER_USER", lambda: _access_policy(get, provider, aliases), AccessPolicy()),
            ownership=Ownership(
                admins=_names(get("OPENDISPATCH_ADMIN_USERS")),
                channel_members_may_read=setting(
                    "OPENDISPATCH_CHANNEL_MAY_READ", lambda t: _flag("OPENDISPATCH_CHANNEL_MAY_READ", t), False
                ),
            ),
            fly=fly,
            reaper_period_s=float(
                setting("OPENDISPATCH_REAPER_PERIOD_S", lambda t: _whole_number("OPENDISPATCH_REAPER_PERIOD_S", t, 60), 60)
            ),
            sandbox_allow=tuple(sorted(_names(get("OPENDISPATCH_SANDBOX_ALLOW")))),
            sandbox_read_only=tuple(sorted(_names(get("OPENDISPATCH_SANDBOX_READ_ONLY")))),
            unsandboxed_local_sprites=get("OPENDISPATCH_UNSANDBOXED_LOCAL_SPRITES") == UNSANDBOXED_OPT_IN,
            max_output_lines=setting(
                "OPENDISPATCH_MAX_OUTPUT_LINES",
                lambda t: _whole_number("OPENDISPATCH_MAX_OUTPUT_LINES", t, DEFAULT_MAX_OUTPUT_LINES),
                DEFAULT_MAX_OUTPUT_LINES,
            ),
            max_output_mb=setting(
                "OPENDISPATCH_MAX_OUTPUT_MB",
                lambda t: _whole_number("OPENDISPATCH_MAX_OUTPUT_MB", t, DEFAULT_MAX_OUTPUT_CHARS // (1024 * 1024)),
                DEFAULT_MAX_OUTPUT_CHARS // (1024 * 1024),
            ),
            silence_s=check.value("OPENDISPATCH_SILENCE_S", lambda: _silence(get("OPENDISPATCH_SILENCE_S")), DEFAULT_SILENCE_S),
            allow_shell_sessions=setting(
                "OPENDISPATCH_ALLOW_SHELL_SESSIONS", lambda t: _flag("OPENDISPATCH_ALLOW_SHELL_SESSIONS", t), False
            ),
            session_idle_s=setting(
                "OPENDISPATCH_SESSION_IDLE", lambda t: _session_duration("OPENDISPATCH_SESSION_IDLE", t, 900.0), 900.0
            ),
            session_max_idle_s=setting(
                "OPENDISPATCH_SESSION_MAX_IDLE",
                lambda t: _session_duration("OPENDISPATCH_SESSION_MAX_IDLE", t, 86400.0),
                86400.0,
            ),
            github_server_url=check.value(
                "GITHUB_SERVER_URL", lambda: _server_url("GITHUB_SERVER_URL", get("GITHUB_SERVER_URL")), GITHUB_SERVER_URL
            ),
            credential_renew_s=float(
                setting(
                    "OPENDISPATCH_CREDENTIAL_RENEW_S",
                    lambda t: _whole_number("OPENDISPATCH_CREDENTIAL_RENEW_S", t, int(DEFAULT_RENEW_MARGIN_S)),
                    int(DEFAULT_RENEW_MARGIN_S),
                )
            ),
            web_enabled=setting("OPENDISPATCH_WEB", lambda t: t is None or _flag("OPENDISPATCH_WEB", t), True),
            fast_ingest=setting("OPENDISPATCH_FAST_INGEST", _fast_ingest, False),
            web_url=check.value(
                "OPENDISPATCH_WEB_URL",
                lambda: _web_url(
                    get("OPENDISPATCH_WEB_URL")
                    # On Fly, the app's public address (sprites use the private one).
                    or (f"https://{get('FLY_APP_NAME')}.fly.dev" if get("FLY_APP_NAME") else None)
                    or get("OPEN_DISPATCH_URL")
                ),
                None,
            ),
            web_link_s=float(
                setting(
                    "OPENDISPATCH_WEB_LINK_S",
                    lambda t: _whole_number("OPENDISPATCH_WEB_LINK_S", t, int(DEFAULT_WEB_LINK_S)),
                    int(DEFAULT_WEB_LINK_S),
                )
            ),
            web_grant_s=float(
                setting(
                    "OPENDISPATCH_WEB_GRANT_S",
                    lambda t: _whole_number("OPENDISPATCH_WEB_GRANT_S", t, int(DEFAULT_WEB_GRANT_S)),
                    int(DEFAULT_WEB_GRANT_S),
                )
            ),
            lease_s=float(
                setting("OPENDISPATCH_LEASE_S", lambda t: _lease(t), DEFAULT_LEASE_S)
            ),
            peer_url=check.value(
                "OPENDISPATCH_PEER_URL",
                lambda: _peer_url(get("OPENDISPATCH_PEER_URL"), get("FLY_PRIVATE_IP"), str(port)),
                None,
            ),
            environ=dict(env),
        )
        return config, check.found


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


def _server_url(name: str, text: str | None) -> str:
    if text is None:
        return GITHUB_SERVER_URL
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.netloc or parts.username or parts.password or parts.query:
        raise ConfigError(f"{name} must be the server's base URL, e.g. https://github.com (got {text!r}).")
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


def _port(text: str) -> int:
    if not text.isdigit() or not 0 <= int(text) <= 65535:
        raise ConfigError(f"WEBHOOK_PORT={text!r} must be a port number (0-65535).")
    return int(text)


def _agent(text: str) -> AgentKind:
    try:
        return AgentKind(text.lower())
    except ValueError:
        raise ConfigError(f"SPRITE_AGENT_TYPE={text!r} must be claude, opencode or shell.") from None


def _names(text: str | None) -> frozenset[str]:
    return frozenset(part.strip() for part in (text or "").split(",") if part.strip())


#: The value of OPENDISPATCH_UNSANDBOXED_LOCAL_SPRITES that lets shared chat run local sprites
#: without a sandbox: spelled out so nobody sets it by accident.
UNSANDBOXED_OPT_IN = "i-understand"


def _access_policy(get: Callable[[str], str | None], provider: str, aliases: Mapping[str, str]) -> AccessPolicy:
    limit_text = get("OPENDISPATCH_MAX_JOBS_PER_USER") or str(DEFAULT_MAX_JOBS_PER_USER)
    if not re.fullmatch(r"[0-9]{1,9}", limit_text):
        raise ConfigError(f"OPENDISPATCH_MAX_JOBS_PER_USER={limit_text!r} must be a whole number (0 = no limit).")
    repos = _names(get("OPENDISPATCH_ALLOWED_REPOS"))
    return AccessPolicy(
        users=_names(get("OPENDISPATCH_ALLOWED_USERS")),
        channels=_names(get("OPENDISPATCH_ALLOWED_CHANNELS")),
        repos=repos,
        # Shared chat may clone only the host paths the operator lists (`/srv/git/*`); at the
        # console the user is the operator and their own disk is theirs.
        host_repos=host_repo_patterns(repos) if provider != "console" else None,
        # Shared chat without an image allowlist: the default and the aliases only.
        known_images=frozenset(aliases.values()) if provider != "console" else None,
        images=_names(get("OPENDISPATCH_ALLOWED_IMAGES")),
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


def _whole_number(name: str, text: str | None, default: int) -> int:
    if text is None:
        return default
    if not re.fullmatch(r"[0-9]{1,12}", text) or int(text) < 1:  # isdigit() takes "²", int() does not
        raise ConfigError(f"{name}={text!r} must be a whole number such as {default}.")
    return int(text)


def _fly_options(get: Callable[[str], str | None], check: _Problems) -> FlyOptions:
    """FLY_* settings and the sprite size, checked against Fly's rules before any job runs."""
    region = (get("FLY_REGION") or DEFAULT_FLY_REGION).lower()
    if not re.fullmatch(r"[a-z]{3}", region):
        check.add("FLY_REGION", f"FLY_REGION={region!r} is not a Fly region code such as iad or ams: see `fly platform regions`.")
    api_url = (get("FLY_API_URL") or DEFAULT_API_URL).rstrip("/")
    if not re.match(r"https?://[^/\s]+", api_url):
        check.add("FLY_API_URL", f"FLY_API_URL={api_url!r} must be an http(s) URL such as {DEFAULT_API_URL}.")
    cpu_kind = (get("OPENDISPATCH_SPRITE_CPU_KIND") or "shared").lower()
    if cpu_kind not in CPU_KINDS:
        check.add("OPENDISPATCH_SPRITE_CPU_KIND", f"OPENDISPATCH_SPRITE_CPU_KIND={cpu_kind!r} must be shared or performance.")
    cpus = check.value(
        "OPENDISPATCH_SPRITE_CPUS", lambda: _whole_number("OPENDISPATCH_SPRITE_CPUS", get("OPENDISPATCH_SPRITE_CPUS"), 1), None
    )
    memory_mb = check.value(
        "OPENDISPATCH_SPRITE_MEMORY_MB",
        lambda: _whole_number("OPENDISPATCH_SPRITE_MEMORY_MB", get("OPENDISPATCH_SPRITE_MEMORY_MB"), 1024),
        None,
    )
    problem = guest_problem(cpu_kind, cpus, memory_mb) if cpus and memory_mb and cpu_kind in CPU_KINDS else None
    if problem is not None:
        check.add(
            None,
            f"Sprite size is not one Fly offers: {problem}. Fix OPENDISPATCH_SPRITE_CPUS, "
            "OPENDISPATCH_SPRITE_MEMORY_MB or OPENDISPATCH_SPRITE_CPU_KIND (see `fly platform vm-sizes`).",
        )
    app = get("FLY_SPRITE_APP")
    if app is not None and not re.fullmatch(r"[a-z0-9][a-z0-9-]{1,62}", app):
        check.add("FLY_SPRITE_APP", f"FLY_SPRITE_APP={app!r} is not a Fly app name (lowercase letters, digits and dashes).")
    return FlyOptions(
        api_token=get("FLY_API_TOKEN"),
        sprite_app=app,
        region=region,
        api_url=api_url,
        cpu_kind=cpu_kind,
        cpus=cpus or 1,
        memory_mb=memory_mb or 1024,
        instance=get("OPENDISPATCH_INSTANCE") or get("FLY_APP_NAME") or "opendispatch",
    )


#: Where each variable Fly sprites need comes from (docs/deploy-fly.md, steps 1-3).
FLY_REQUIREMENTS = {
    "FLY_API_TOKEN": "a deploy token for the sprite app: `fly tokens create deploy -a <sprite app>`",
    "FLY_SPRITE_APP": "the app the sprite machines live in: `fly apps create <name>`",
    "SPRITE_IMAGE": "an agent image with sprite-reporter, pushed to registry.fly.io/<sprite app>/<name>:<tag>",
}


def _check_fly_requirements(fly: FlyOptions, image: str | None, extra_passthrough: list[str], check: _Problems) -> None:
    """The seed's "Missing required env vars": one problem per missing variable, each saying
    where to get it, so `doctor` counts three missing variables as three problems."""
    given = {"FLY_API_TOKEN": fly.api_token, "FLY_SPRITE_APP": fly.sprite_app, "SPRITE_IMAGE": image}
    for name, value in given.items():
        if not value:
            check.add(
                name,
                f"OPENDISPATCH_SPRITES=fly needs {name}, {FLY_REQUIREMENTS[name]} (docs/deploy-fly.md, steps 1-3); "
                "or use OPENDISPATCH_SPRITES=fly-emulator to try it locally.",
            )
    reserved = [name for name in extra_passthrough if name.upper().startswith("FLY_")]
    if reserved:
        check.add(
            "OPENDISPATCH_PASSTHROUGH_ENV",
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


def _flag(name: str, text: str | None) -> bool:
    """A yes/no switch: 1/true/yes/on or 0/false/no/off (unset = off)."""
    if text is None:
        return False
    value = text.strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise ConfigError(f"{name}={text!r} must be 1 or 0 (true/false, yes/no, on/off).")


def _fast_ingest(text: str | None) -> bool:
    """OPENDISPATCH_FAST_INGEST: the fast path reads streams with epoll, which only Linux has."""
    wanted = _flag("OPENDISPATCH_FAST_INGEST", text)
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
