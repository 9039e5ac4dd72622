"""The GitHub App's settings: whether per-job tokens are asked for, and with what.

App mode is asked for as soon as any of the app's id or key variables is set; from then on a
missing half is a problem to report, not a reason to fall back quietly to `GH_TOKEN` (which
reaches every repository its owner can: exactly what the app is there to avoid).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from urllib.parse import urlsplit

import attrs
import httpx

from ...domain.errors import ConfigError
from ...domain.repo_credentials import DEFAULT_PERMISSIONS, parse_permissions
from ...domain.repo_credentials import GITHUB_SERVER_URL as DEFAULT_SERVER_URL
from ...support.settings import ReadsDeclaredSettings, Setting, SettingsReader
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
IDS = (GITHUB_APP_CLIENT_ID, GITHUB_APP_ID)
KEYS = (GITHUB_APP_PRIVATE_KEY, GITHUB_APP_PRIVATE_KEY_PATH)
ID_VARIABLES = tuple(setting.name for setting in IDS)
KEY_VARIABLES = tuple(setting.name for setting in KEYS)

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
BOTH_KEYS = (
    "Set one of GITHUB_APP_PRIVATE_KEY and GITHUB_APP_PRIVATE_KEY_PATH, not both: it is unclear "
    "which key the app should sign with."
)


def _hidden(_: object) -> str:
    return "***"


@attrs.frozen
class GitHubAppSettings(ReadsDeclaredSettings):
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
    def _settings(cls, read: SettingsReader) -> GitHubAppSettings | None:
        if not cls.configured(read.env):
            read.add(GITHUB_APP_CLIENT_ID, NOT_CONFIGURED)
            return None
        app_id = _app_id(read)
        private_key = _private_key(read)
        if not any(read.text(setting) for setting in IDS):
            given = next(setting for setting in KEYS if read.text(setting))
            read.add(GITHUB_APP_CLIENT_ID, KEY_WITHOUT_ID.format(variable=given.name))
        fallback: Mapping[str, str] = dict(DEFAULT_PERMISSIONS)
        permissions = read.parse(GITHUB_APP_PERMISSIONS, _permissions, fallback)
        api_url = read.parse(GITHUB_API_URL, lambda text: _url(GITHUB_API_URL, text), DEFAULT_API_URL)
        server_url = read.parse(GITHUB_SERVER_URL, lambda text: _url(GITHUB_SERVER_URL, text), DEFAULT_SERVER_URL)
        if read.problems or app_id is None or private_key is None:
            return None
        return cls(app_id=app_id, private_key=private_key, permissions=permissions, api_url=api_url, server_url=server_url)


def _app_id(read: SettingsReader) -> str | None:
    client_id, numeric_id = read.text(GITHUB_APP_CLIENT_ID), read.text(GITHUB_APP_ID)
    if client_id is not None and any(c.isspace() for c in client_id):
        read.add(GITHUB_APP_CLIENT_ID, "GITHUB_APP_CLIENT_ID has spaces in it: copy the client id (Iv…) again.")
        return None
    if numeric_id is not None and not numeric_id.isdigit():
        read.add(
            GITHUB_APP_ID,
            f"GITHUB_APP_ID={numeric_id!r} is not the app's numeric id: copy App ID from the app's settings "
            "page (General → About), or set its client id as GITHUB_APP_CLIENT_ID instead.",
        )
        return None
    return client_id or numeric_id


def _private_key(read: SettingsReader) -> str | None:
    """The key's PEM text from one of its two variables, checked; None after recording why not."""
    text, path = read.text(GITHUB_APP_PRIVATE_KEY), read.text(GITHUB_APP_PRIVATE_KEY_PATH)
    given_id = next((setting for setting in IDS if read.text(setting)), None)
    if text is not None and path is not None:
        read.add(GITHUB_APP_PRIVATE_KEY_PATH, BOTH_KEYS)
        return None
    if text is None and path is None:
        if given_id is not None:
            read.add(GITHUB_APP_PRIVATE_KEY, ID_WITHOUT_KEY.format(variable=given_id.name))
        return None
    variable = GITHUB_APP_PRIVATE_KEY
    if path is not None:
        variable = GITHUB_APP_PRIVATE_KEY_PATH
        try:
            text = Path(path).expanduser().read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else "not a text file"
            read.add(
                variable,
                f"GITHUB_APP_PRIVATE_KEY_PATH={path} cannot be read ({reason}): point it at the .pem file "
                "the GitHub App's settings page generated, readable by the dispatcher's user.",
            )
            return None
    assert text is not None
    # Many hosts keep a variable on one line, so the PEM's line breaks arrive as `\n`.
    pem = text.replace("\\r\\n", "\n").replace("\\n", "\n").strip() + "\n"
    try:
        load_app_key(pem, variable.name)
    except ConfigError as exc:
        read.add(variable, str(exc))
        return None
    return pem


def _permissions(text: str | None) -> Mapping[str, str]:
    if text is None:
        return dict(DEFAULT_PERMISSIONS)
    try:
        return parse_permissions(text)
    except ValueError as exc:
        raise ConfigError(f"GITHUB_APP_PERMISSIONS: {exc}.") from None


def _url(setting: Setting, text: str | None) -> str:
    default = setting.default or ""
    if text is None:
        return default
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.netloc or parts.query or parts.fragment:
        raise ConfigError(f"{setting.name}={text!r} must be an http(s) URL such as {default}.")
    return text.rstrip("/")
