"""Signed, expiring grants to the web view: who may look, at what, until when.

A grant is the web view's only credential. Chat hands one out (a job card's "View live" link,
`/od-web`); nothing is stored per grant, as with job tokens: the HMAC over its fields is the
proof. It is bound to the user it was given to (their platform id, and the channel they
asked in, for the channel-read rule of ownership.py) and, for a job link, to that job.

The key is derived from the job-token key with a label of its own, so a job token can never
pass as a grant or a grant as a job token, and one secret still covers both.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re

import attrs

from .errors import DispatchError
from .job import Conversation, User

GRANT_PREFIX = "odw1"
_KEY_LABEL = b"opendispatch web grants v1"
_EXPIRY = re.compile(r"[0-9]{1,12}")
_BASE64URL = re.compile(r"[A-Za-z0-9_-]{1,2048}")
#: Longer than any grant we issue; a longer one is refused before any decoding.
MAX_GRANT_CHARS = 3000


class InvalidGrant(DispatchError):
    """A web link's grant is missing, malformed, forged or expired: one answer for each case."""

    def __init__(self) -> None:
        super().__init__("This link has expired or is not valid. Ask for a new one in chat with /od-web.")


@attrs.frozen
class WebGrant:
    """What a valid grant allows: `job_id` set for one job's page, None for the whole view."""

    user: User
    #: Where the grant was asked for (the channel a card was posted in, or where `/od-web`
    #: was typed): members of a channel may read its jobs when the operator allows it.
    asked_in: Conversation
    expires_at: int
    job_id: str | None = None

    @property
    def is_list_grant(self) -> bool:
        return self.job_id is None


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@attrs.frozen
class GrantIssuer:
    """Issues and checks grants; `key` is the job-token key (a label derives the grant key)."""

    key: bytes = attrs.field(repr=lambda _: "***")

    def _mac(self, expires_at: str, payload: str) -> str:
        grant_key = hmac.new(self.key, _KEY_LABEL, hashlib.sha256).digest()
        return _b64(hmac.new(grant_key, f"{expires_at}.{payload}".encode("ascii"), hashlib.sha256).digest())

    def issue(self, grant: WebGrant) -> str:
        fields = {
            "u": grant.user.id,
            "n": grant.user.name,
            "p": grant.asked_in.platform,
            "c": grant.asked_in.channel,
            "j": grant.job_id,
        }
        payload = _b64(json.dumps(fields, separators=(",", ":"), ensure_ascii=False).encode("utf-8"))
        expires_at = str(int(grant.expires_at))
        return f"{GRANT_PREFIX}.{expires_at}.{payload}.{self._mac(expires_at, payload)}"

    def verify(self, text: object, now: float) -> WebGrant:
        """The grant `text` carries, or `InvalidGrant` (malformed, forged or expired alike)."""
        if not isinstance(text, str) or len(text) > MAX_GRANT_CHARS:
            raise InvalidGrant()
        parts = text.split(".")
        if len(parts) != 4 or parts[0] != GRANT_PREFIX or not _EXPIRY.fullmatch(parts[1]):
            raise InvalidGrant()
        if not _BASE64URL.fullmatch(parts[2]) or not _BASE64URL.fullmatch(parts[3]):
            raise InvalidGrant()
        expected = self._mac(parts[1], parts[2])
        if not hmac.compare_digest(expected.encode("ascii"), parts[3].encode("ascii")):
            raise InvalidGrant()
        if now >= int(parts[1]):
            raise InvalidGrant()
        try:
            fields = json.loads(_unb64(parts[2]).decode("utf-8"))
            job_id = fields["j"]
            return WebGrant(
                user=User(str(fields["u"]), str(fields["n"])),
                asked_in=Conversation(str(fields["p"]), str(fields["c"])),
                expires_at=int(parts[1]),
                job_id=None if job_id is None else str(job_id),
            )
        except (ValueError, KeyError, TypeError):  # signed by us, so only a bug lands here
            raise InvalidGrant() from None
