"""Is this request really from the Bot Connector? JWT checks on every inbound activity.

Every step of Microsoft's "Connector to bot" authentication is done here (docs/teams.md):
RS256 signature with a key from the published JWKS, issuer, audience (our app id), expiry
with five minutes of leeway, the key's endorsement of the activity's channel, and the
`serviceurl` claim equal to the activity's `serviceUrl` — the last one matters because we
later send our own bearer token to that URL. PyJWT does the cryptography; this module only
fetches and caches keys with httpx (PyJWKClient is blocking urllib, wrong under Trio).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import attrs
import httpx
import jwt
import trio

from .settings import TeamsSettings

log = logging.getLogger(__name__)

ALGORITHMS = ["RS256"]


class Unauthorized(Exception):
    """The request failed one of the checks; the message says which, for our log only."""


@attrs.frozen
class VerifiedToken:
    claims: Mapping[str, Any]
    endorsements: frozenset[str]

    def check_activity(self, *, service_url: str, channel_id: str) -> None:
        """The checks that need the activity body (parsed only after the signature held)."""
        if channel_id not in self.endorsements:
            raise Unauthorized(f"signing key does not endorse channel {channel_id!r}")
        claimed = self.claims.get("serviceurl", self.claims.get("serviceUrl"))
        if not isinstance(claimed, str) or claimed != service_url:
            raise Unauthorized("serviceurl claim does not match the activity's serviceUrl")


@attrs.frozen
class _Key:
    jwk: jwt.PyJWK
    endorsements: frozenset[str]


class KeySet:
    """The published signing keys, fetched from the OpenID metadata and cached.

    Keys are refetched after `keys_ttl_s`, and early when a token names an unknown `kid`
    (Microsoft rotates keys) — but at most once per `key_refetch_min_interval_s`, so
    forged tokens with random kids cannot make us hammer the identity provider.
    """

    def __init__(self, http: httpx.AsyncClient, settings: TeamsSettings) -> None:
        self._http = http
        self._settings = settings
        self._keys: dict[str, _Key] = {}
        self._fetched_at: float | None = None
        self._lock = trio.Lock()

    async def key(self, kid: str) -> _Key:
        now = trio.current_time()
        if self._fetched_at is None or now - self._fetched_at >= self._settings.keys_ttl_s:
            await self._refresh(stale_before=now)
        elif kid not in self._keys and now - self._fetched_at >= self._settings.key_refetch_min_interval_s:
            await self._refresh(stale_before=now)
        found = self._keys.get(kid)
        if found is None:
            raise Unauthorized(f"unknown signing key id {kid!r}")
        return found

    async def _refresh(self, *, stale_before: float) -> None:
        async with self._lock:
            if self._fetched_at is not None and self._fetched_at >= stale_before:
                return  # another request refreshed while we waited
            try:
                self._keys = await self._fetch()
            except (httpx.HTTPError, ValueError, KeyError, TypeError) as exc:
                if not self._keys:
                    raise Unauthorized(f"could not fetch signing keys: {exc}") from None
                log.warning("Teams: could not refresh signing keys, keeping the cached ones: %s", exc)
            self._fetched_at = trio.current_time()

    async def _fetch(self) -> dict[str, _Key]:
        metadata = await self._get_json(self._settings.openid_metadata_url)
        jwks = await self._get_json(str(metadata["jwks_uri"]))
        keys: dict[str, _Key] = {}
        for entry in jwks["keys"]:
            if not isinstance(entry, dict) or "kid" not in entry:
                continue
            try:
                jwk = jwt.PyJWK(entry, algorithm="RS256")
            except jwt.PyJWTError as exc:
                log.info("Teams: skipping unusable key %s: %s", entry.get("kid"), exc)
                continue
            endorsements = entry.get("endorsements") or []
            keys[str(entry["kid"])] = _Key(jwk, frozenset(str(e) for e in endorsements))
        return keys

    async def _get_json(self, url: str) -> Any:
        response = await self._http.get(url)
        response.raise_for_status()
        return response.json()


class InboundAuthenticator:
    """Checks the `Authorization` header of a Bot Connector request."""

    def __init__(self, keys: KeySet, settings: TeamsSettings) -> None:
        self._keys = keys
        self._settings = settings

    async def verify(self, authorization: str | None) -> VerifiedToken:
        token = _bearer(authorization)
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as exc:
            raise Unauthorized(f"malformed token: {exc}") from None
        if header.get("alg") not in ALGORITHMS:
            raise Unauthorized(f"algorithm {header.get('alg')!r} is not allowed")
        kid = header.get("kid")
        if not isinstance(kid, str):
            raise Unauthorized("token names no signing key")
        key = await self._keys.key(kid)
        try:
            claims = jwt.decode(
                token,
                key.jwk.key,
                algorithms=ALGORITHMS,
                audience=self._settings.app_id,
                issuer=self._settings.issuer,
                leeway=self._settings.clock_leeway_s,
                options={"require": ["exp", "iss", "aud"]},
            )
        except jwt.InvalidIssuerError:
            raise Unauthorized(f"token issuer {_unverified_issuer(token)!r} is not {self._settings.issuer}") from None
        except jwt.PyJWTError as exc:
            raise Unauthorized(f"token rejected: {type(exc).__name__}: {exc}") from None
        return VerifiedToken(claims=claims, endorsements=key.endorsements)


def _unverified_issuer(token: str) -> object:
    """For the log only: which issuer we refused (Entra-issued tokens would show up here)."""
    try:
        return jwt.decode(token, options={"verify_signature": False}).get("iss")
    except jwt.PyJWTError:
        return None


def _bearer(authorization: str | None) -> str:
    if not authorization:
        raise Unauthorized("no Authorization header")
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("Authorization is not a Bearer token")
    return token.strip()
