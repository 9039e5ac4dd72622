"""The GitHub App's settings: whether per-job tokens are asked for, and with what.

App mode is asked for as soon as any of the app's id or key variables is set; from then on a
missing half is a problem to report, not a reason to fall back quietly to `GH_TOKEN` (which
reaches every repository its owner can: exactly what the app is there to avoid).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from urllib.parse import urlsplit

import attrs
import httpx

from ...domain.errors import ConfigError, ReadsSettings, SettingProblem
from ...domain.repo_credentials import DEFAULT_PERMISSIONS, parse_permissions
from ...domain.repo_credentials import GITHUB_SERVER_URL as DEFAULT_SERVER_URL
from ...support.settings import Setting
from .app_tokens import DEFAULT_API_URL, GitHubAppTokens, load_app_key

GITHUB_APP_ID = Setting(
    "GITHUB_APP_ID",
    "GitHub App for per-job tokens, one repository each: the app's settings → App ID (docs/github.md)",
)
GITHUB_APP_PRIVATE_KEY = Setting(
    "GITHUB_APP_PRIVATE_KEY", "the app's private key (PEM), or a file in GITHUB_APP_PRIVATE_KEY_PATH", secret=True
)
GITHUB_APP_CLIENT_ID = Setting(
    "GITHUB_APP_CLIENT_ID", "the app's client ID: GitHub's recommended JWT issuer (instead of the App ID)"
)
GITHUB_APP_PRIVATE_KEY_PATH = Setting(
    "GITHUB_APP_PRIVATE_KEY_PATH", "a file holding the app's private key (instead of GITHUB_APP_PRIVATE_KEY)"
)
GITHUB_APP_PERMISSIONS = Setting(
    "GITHUB_APP_PERMISSIONS",
    "what each job's token may do",
    ",".join(f"{name}:{access}" for name, access in DEFAULT_PERMISSIONS.items()),
)
GITHUB_SERVER_URL = Setting(
    "GITHUB_SERVER_URL", "where `--repo owner/name` lives (GitHub Enterprise: its URL)", DEFAULT_SERVER_URL
)
GITHUB_API_URL = Setting("GITHUB_API_URL", "GitHub's REST API (GitHub Enterprise: https://HOST/api/v3)", DEFAULT_API_URL)

#: Every setting of the GitHub App (`config.py` reads GITHUB_SERVER_URL too, for `--repo`).
SETTINGS = (
    GITHUB_APP_ID,
    GITHUB_APP_PRIVATE_KEY,
    GITHUB_APP_CLIENT_ID,
    GITHUB_APP_PRIVATE_KEY_PATH,
    GITHUB_APP_PERMISSIONS,
    GITHUB_SERVER_URL,
    GITHUB_API_URL,
)
ID_VARIABLES = (GITHUB_APP_CLIENT_ID.name, GITHUB_APP_ID.name)
KEY_VARIABLES = (GITHUB_APP_PRIVATE_KEY.name, GITHUB_APP_PRIVATE_KEY_PATH.name)

NOT_CONFIGURED = (
    "Per-job GitHub tokens need a GitHub App: set GITHUB_APP_CLIENT_ID (or GITHUB_APP_ID) and "
    "GITHUB_APP_PRIVATE_KEY (or GITHUB_APP_PRIVATE_KEY_PATH)."
)
ID_WITHOUT_KEY = (
    "{variable} is set but not the GitHub App's private key: set GITHUB_APP_PRIVATE_KEY to the .pem "
    "the app's settings page generated (on one line with \\n for line breaks if your host needs it) "
    "or GITHUB_APP_PRIVATE_KEY_PATH to the file holding it."
)
KEY_WITHOUT_ID = (
    "{variable} is set but not the GitHub App's id: set GITHUB_APP_CLIENT_ID (recommended) or "
    "GITHUB_APP_ID, both shown on the app's settings page (General → About)."
)
#: `_read`'s `get(name)`: the variable's value without surrounding spaces, or None if empty.
_Get = Callable[[str], "str | None"]

BOTH_KEYS = (
    "Set one of GITHUB_APP_PRIVATE_KEY and GITHUB_APP_PRIVATE_KEY_PATH, not both: it is unclear "
    "which key the app should sign with."
)


def _hidden(_: object) -> str:
    return "***"


@attrs.frozen
class GitHubAppSettings(ReadsSettings):
    #: The JWT's `iss`: the app's client id (GitHub's recommendation) or its numeric app id.
    app_id: str
    private_key: str = attrs.field(repr=_hidden)
    permissions: Mapping[str, str] = attrs.field(factory=lambda: dict(DEFAULT_PERMISSIONS))
    api_url: str = DEFAULT_API_URL
    #: Where repositories are cloned from: github.com, a GitHub Enterprise host, or in tests a
    #: loopback git server.
    server_url: str = DEFAULT_SERVER_URL

    @classmethod
    def configured(cls, env: Mapping[str, str]) -> bool:
        """Whether app mode is asked for at all (any of its id or key variables is set).

        `from_env` and `problems` report an unconfigured environment as a problem, so ask
        this first where app mode is optional.
        """
        return any(env.get(name, "").strip() for name in (*ID_VARIABLES, *KEY_VARIABLES))

    def tokens(self, http: httpx.AsyncClient) -> GitHubAppTokens:
        """The minter these settings describe, over the service's long-lived client."""
        return GitHubAppTokens(
            http=http,
            app_id=self.app_id,
            private_key=self.private_key,
            permissions=self.permissions,
            api_url=self.api_url,
        )

    @classmethod
    def _read(cls, env: Mapping[str, str], problems: list[SettingProblem]) -> GitHubAppSettings | None:
        def get(name: str) -> str | None:
            value = env.get(name, "").strip()
            return value or None

        if not cls.configured(env):
            problems.append(("GITHUB_APP_CLIENT_ID", NOT_CONFIGURED))
            return None
        app_id = _app_id(get, problems)
        private_key = _private_key(get, problems)
        if not any(get(name) for name in ID_VARIABLES):
            given = next(name for name in KEY_VARIABLES if get(name))
            problems.append(("GITHUB_APP_CLIENT_ID", KEY_WITHOUT_ID.format(variable=given)))
        permissions: Mapping[str, str] = dict(DEFAULT_PERMISSIONS)
        if (text := get("GITHUB_APP_PERMISSIONS")) is not None:
            try:
                permissions = parse_permissions(text)
            except ValueError as exc:
                problems.append(("GITHUB_APP_PERMISSIONS", f"GITHUB_APP_PERMISSIONS: {exc}."))
        api_url = _url(get, "GITHUB_API_URL", DEFAULT_API_URL, problems)
        server_url = _url(get, "GITHUB_SERVER_URL", DEFAULT_SERVER_URL, problems)
        if problems or app_id is None or private_key is None:
            return None
        return cls(app_id=app_id, private_key=private_key, permissions=permissions, api_url=api_url, server_url=server_url)


def _app_id(get: _Get, problems: list[SettingProblem]) -> str | None:
    client_id, numeric_id = get("GITHUB_APP_CLIENT_ID"), get("GITHUB_APP_ID")
    if client_id is not None and any(c.isspace() for c in client_id):
        problems.append(("GITHUB_APP_CLIENT_ID", "GITHUB_APP_CLIENT_ID has spaces in it: copy the client id (Iv…) again."))
        return None
    if numeric_id is not None and not numeric_id.isdigit():
        problems.append((
            "GITHUB_APP_ID",
            f"GITHUB_APP_ID={numeric_id!r} is not the app's numeric id: copy App ID from the app's settings "
            "page (General → About), or set its client id as GITHUB_APP_CLIENT_ID instead.",
        ))
        return None
    return client_id or numeric_id


def _private_key(get: _Get, problems: list[SettingProblem]) -> str | None:
    """The key's PEM text from one of its two variables, checked; None after recording why not."""
    text, path = get("GITHUB_APP_PRIVATE_KEY"), get("GITHUB_APP_PRIVATE_KEY_PATH")
    given_id = next((name for name in ID_VARIABLES if get(name)), None)
    if text is not None and path is not None:
        problems.append(("GITHUB_APP_PRIVATE_KEY_PATH", BOTH_KEYS))
        return None
    if text is None and path is None:
        if given_id is not None:
            problems.append(("GITHUB_APP_PRIVATE_KEY", ID_WITHOUT_KEY.format(variable=given_id)))
        return None
    variable = "GITHUB_APP_PRIVATE_KEY"
    if path is not None:
        variable = "GITHUB_APP_PRIVATE_KEY_PATH"
        try:
            text = Path(path).expanduser().read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else "not a text file"
            problems.append((
                variable,
                f"GITHUB_APP_PRIVATE_KEY_PATH={path} cannot be read ({reason}): point it at the .pem file "
                "the GitHub App's settings page generated, readable by the dispatcher's user.",
            ))
            return None
    assert text is not None
    # Many hosts keep a variable on one line, so the PEM's line breaks arrive as `\n`.
    pem = text.replace("\\r\\n", "\n").replace("\\n", "\n").strip() + "\n"
    try:
        load_app_key(pem, variable)
    except ConfigError as exc:
        problems.append((variable, str(exc)))
        return None
    return pem


def _url(get: _Get, variable: str, default: str, problems: list[SettingProblem]) -> str:
    value = get(variable)
    if value is None:
        return default
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc or parts.query or parts.fragment:
        problems.append((variable, f"{variable}={value!r} must be an http(s) URL such as {default}."))
        return default
    return value.rstrip("/")
