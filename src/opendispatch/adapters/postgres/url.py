"""`OPENDISPATCH_DB` as a PostgreSQL URL: how to recognise one and how to show it without its password.

Pure string work (no driver import), so the configuration and `doctor` can use it on a
machine without the `postgres` extra.
"""

from __future__ import annotations

from urllib.parse import unquote

SCHEMES = ("postgresql://", "postgres://")
HIDDEN = "***"


def is_postgres_url(text: str) -> bool:
    return text.strip().lower().startswith(SCHEMES)


def _parts(url: str) -> tuple[str, str | None, str, str | None, str]:
    """(scheme://, user-info or None, host and path, query or None, #fragment or "").

    The user-info ends at the last "@" before any "?", so a password holding an unencoded
    "/" or "@" is still all of it."""
    scheme, separator, rest = url.strip().partition("://")
    rest, hashmark, fragment = rest.partition("#")
    head = rest.split("?", 1)[0]
    userinfo: str | None = None
    if "@" in head:
        cut = head.rindex("@")
        userinfo, rest = rest[:cut], rest[cut + 1 :]
    location, question, query = rest.partition("?")
    return scheme + separator, userinfo, location, query if question else None, hashmark + fragment


def url_passwords(url: str) -> tuple[str, ...]:
    """The password(s) a URL carries, as written and percent-decoded (its user-info part and a
    `password=` query parameter, libpq's two places): what must never be printed or logged."""
    if not is_postgres_url(url):
        return ()
    _, userinfo, _, query, _ = _parts(url)
    found: list[str] = []
    if userinfo is not None and ":" in userinfo:
        written = userinfo.split(":", 1)[1]
        found.extend((written, unquote(written)))
    for parameter in (query or "").split("&"):
        key, _, written = parameter.partition("=")
        if key == "password":
            found.extend((written, unquote(written.replace("+", " "))))
    return tuple(dict.fromkeys(password for password in found if password))


def redact_url(url: str) -> str:
    """The URL with its password replaced by `***` (user, host, port, database and other
    parameters kept, so a message still says which database it means). Not a URL: unchanged."""
    if not is_postgres_url(url):
        return url
    prefix, userinfo, location, query, fragment = _parts(url)
    if userinfo is not None:
        user, colon, _ = userinfo.partition(":")
        location = f"{user}{colon}{HIDDEN if colon else ''}@{location}"
    if query is not None:
        query = "&".join(
            f"password={HIDDEN}" if parameter.partition("=")[0] == "password" else parameter
            for parameter in query.split("&")
        )
        location = f"{location}?{query}"
    return f"{prefix}{location}{fragment}"


def without_passwords(text: str, url: str) -> str:
    """`text` (an error message about `url`) with the URL's password(s) replaced by `***`."""
    for password in sorted(url_passwords(url), key=len, reverse=True):
        text = text.replace(password, HIDDEN)
    return text
