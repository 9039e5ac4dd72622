"""Per-job webhook tokens: HMAC-SHA256 over the job id and an expiry.

The key is a server secret that outlives restarts, so a restarted dispatcher still accepts
the sprites it launched. Nothing is stored per token: the job id and expiry are enough.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re

import attrs

from .errors import InvalidToken

TOKEN_PREFIX = "odj1"
TOKEN_PATTERN = re.compile(r"odj1\.[0-9]{1,12}\.[A-Za-z0-9_-]{43}")
#: The expiry: ASCII digits only. `str.isdigit` also accepts "²" and "٣", which `int()` then
#: refuses (or reads as another number): a token is checked with this, never with isdigit.
_EXPIRY = re.compile(r"[0-9]{1,12}")
MIN_SECRET_BYTES = 16


def _mac(secret: bytes, job_id: str, expires_at: int) -> str:
    # "replace": a job id from a request body may hold a lone surrogate; it cannot match a
    # real job, and must not crash the check on its way to being refused.
    digest = hmac.new(secret, f"{job_id}\n{expires_at}".encode("utf-8", "replace"), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


@attrs.frozen
class TokenIssuer:
    secret: bytes = attrs.field(repr=lambda _: "***")

    def __attrs_post_init__(self) -> None:
        if len(self.secret) < MIN_SECRET_BYTES:
            raise ValueError(f"the token secret must be at least {MIN_SECRET_BYTES} bytes")

    def issue(self, job_id: str, expires_at: int) -> str:
        return f"{TOKEN_PREFIX}.{expires_at}.{_mac(self.secret, job_id, expires_at)}"

    def verify(self, token: str, job_id: str, now: float) -> None:
        """Raise `InvalidToken` unless `token` was issued for `job_id` and has not expired."""
        if not isinstance(token, str) or not isinstance(job_id, str):
            raise InvalidToken()
        parts = token.split(".")
        if len(parts) != 3 or parts[0] != TOKEN_PREFIX or not _EXPIRY.fullmatch(parts[1]):
            raise InvalidToken()
        expires_at = int(parts[1])
        expected = _mac(self.secret, job_id, expires_at)
        if not hmac.compare_digest(expected.encode(), parts[2].encode("utf-8", "replace")):
            raise InvalidToken()
        if now >= expires_at:
            raise InvalidToken()


def bearer_token(authorization: str | None) -> str:
    """The token from an `Authorization: Bearer ...` header, or `InvalidToken`."""
    if not authorization:
        raise InvalidToken()
    scheme, _, token = authorization.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise InvalidToken()
    return token.strip()
