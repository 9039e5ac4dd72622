"""A loopback Microsoft cloud for the Teams adapter: identity provider, Bot Connector, channel.

One quart-trio app on 127.0.0.1 plays three parts, with the JSON shapes of
shared/reference/teams.md:
- the Bot Framework OpenID metadata and JWKS (our own RSA keys, with `endorsements`) and an
  Entra client-credentials token endpoint that checks id, secret and scope;
- the Bot Connector under `/amer/` (`POST …/activities[/{id}]`, `PUT …/activities/{id}`),
  requiring a token it issued, keeping every version of every activity, enforcing Teams'
  per-thread windows (7/1 s, 8/2 s, 60/30 s) with 429, 413 over the size limit, 404 for
  updates of ids it never made, and able to force 429s on demand;
- the channel: `sign()` makes Connector-style JWTs (good or deliberately bad) and
  `message_activity()` builds the activity Teams would POST to the bot.
"""

from __future__ import annotations

import base64
import itertools
import json
import time
from collections.abc import Callable
from functools import cache, partial
from typing import Any

import attrs
import jwt
import trio
from cryptography.hazmat.primitives.asymmetric import rsa
from quart import Response, request
from quart_trio import QuartTrio

ISSUER = "https://api.botframework.com"
APP_ID = "c9e8c047-2a74-40a2-b28a-b162d5f5327c"
APP_PASSWORD = "fake-client-secret-value"
TENANT = "72f988bf-86f1-41af-91ab-2d7cd011db47"
SCOPE = "https://api.botframework.com/.default"
BOT_ID = f"28:{APP_ID}"
BOT_NAME = "Open Dispatch"
MAX_ACTIVITY_BYTES = 100_000
THREAD_LIMITS = ((1.0, 7), (2.0, 8), (30.0, 60))

ALICE = {"id": "29:1XJKJMvc5GBtc2-alice", "name": "Alice Adams", "aadObjectId": "7faf8ab2-3d56-4244-b585-20c8a42ed2b8"}
BOB = {"id": "29:1XJKJMvc5GBtc2-bob", "name": "Bob Brown", "aadObjectId": "0b0b0b0b-3d56-4244-b585-20c8a42ed2b8"}
CHANNEL = "19:aebd0ad4d6ab42c8b9ed19c251c2fc37@thread.tacv2"
PERSONAL = "a:1Vt2P6Ztq0-personal-chat-with-alice"


def _b64(number: int) -> str:
    raw = number.to_bytes((number.bit_length() + 7) // 8, "big")
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


@attrs.define
class SigningKey:
    kid: str
    private: rsa.RSAPrivateKey
    endorsements: list[str]

    def jwk(self) -> dict[str, Any]:
        numbers = self.private.public_key().public_numbers()
        return {
            "kty": "RSA",
            "use": "sig",
            "kid": self.kid,
            "x5t": self.kid,
            "n": _b64(numbers.n),
            "e": _b64(numbers.e),
            "endorsements": self.endorsements,
        }


@cache
def _private_key(name: str) -> rsa.RSAPrivateKey:
    """One RSA key per role per test run: generating them is the slow part of a fake cloud."""
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def new_key(kid: str, endorsements: list[str], *, role: str) -> SigningKey:
    return SigningKey(kid, _private_key(role), list(endorsements))


@attrs.define
class Activity:
    """One activity the bot posted, with every version it had (the first is the post)."""

    id: str
    conversation: str
    reply_to: str | None
    versions: list[dict[str, Any]]

    @property
    def latest(self) -> dict[str, Any]:
        return self.versions[-1]

    @property
    def card(self) -> dict[str, Any] | None:
        return card_of(self.latest)


def card_of(activity: dict[str, Any]) -> dict[str, Any] | None:
    for attachment in activity.get("attachments") or []:
        if attachment.get("contentType") == "application/vnd.microsoft.card.adaptive":
            content: dict[str, Any] = attachment["content"]
            return content
    return None


def card_text(card: dict[str, Any] | None) -> str:
    """Every string a reader sees on a card (text blocks, text runs, facts, action titles)."""
    if card is None:
        return ""
    out: list[str] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            for key in ("text", "title", "value"):
                if isinstance(node.get(key), str):
                    out.append(node[key])
            for key in ("body", "inlines", "facts", "actions", "items", "columns"):
                if key in node:
                    walk(node[key])
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(card)
    return "\n".join(out)


@attrs.define
class Call:
    method: str
    conversation: str
    activity_id: str | None
    status: int
    at: float


class FakeTeamsCloud:
    def __init__(self, *, token_lifetime_s: int = 3600) -> None:
        self.key = new_key("key-msteams", ["msteams"], role="published")
        self.unendorsed = new_key("key-other-channel", ["webchat"], role="other channel")
        self.rogue = new_key("key-msteams", ["msteams"], role="rogue")  # same kid, never published: a forgery
        self.token_lifetime_s = token_lifetime_s
        self.url = ""
        self.activities: dict[str, Activity] = {}
        self.order: list[str] = []
        self.calls: list[Call] = []
        self.token_requests = 0
        self.metadata_requests = 0
        self.forced: list[tuple[int, str | None]] = []
        self._tokens: dict[str, float] = {}
        self._windows: dict[str, list[float]] = {}
        self._ids = itertools.count(1632474074231)
        self._changed = trio.Event()

    # --- addresses ---------------------------------------------------------------------------

    @property
    def service_url(self) -> str:
        return f"{self.url}/amer/"

    @property
    def openid_url(self) -> str:
        return f"{self.url}/v1/.well-known/openidconfiguration"

    @property
    def token_url(self) -> str:
        return f"{self.url}/{TENANT}/oauth2/v2.0/token"

    # --- channel side --------------------------------------------------------------------------

    def sign(self, *, key: SigningKey | None = None, **overrides: Any) -> str:
        now = int(time.time())
        claims: dict[str, Any] = {
            "iss": ISSUER,
            "aud": APP_ID,
            "exp": now + 3600,
            "nbf": now - 60,
            "serviceurl": self.service_url,
        }
        claims.update(overrides)
        claims = {k: v for k, v in claims.items() if v is not None}
        signer = key or self.key
        return jwt.encode(claims, signer.private, algorithm="RS256", headers={"kid": signer.kid})

    def message_activity(
        self,
        text: str,
        *,
        sender: dict[str, str] = ALICE,
        conversation: str = CHANNEL,
        thread: str | None = "1632474000000",
        mention: bool = True,
        value: Any = None,
    ) -> dict[str, Any]:
        activity_id = str(next(self._ids))
        personal = conversation.startswith("a:")
        conversation_id = conversation if personal or thread is None else f"{conversation};messageid={thread}"
        body: dict[str, Any] = {
            "type": "message",
            "id": activity_id,
            "timestamp": "2026-05-01T10:00:00.123Z",
            "serviceUrl": self.service_url,
            "channelId": "msteams",
            "from": sender,
            "conversation": {
                "id": conversation_id,
                "conversationType": "personal" if personal else "channel",
                "tenantId": TENANT,
                **({} if personal else {"isGroup": True}),
            },
            "recipient": {"id": BOT_ID, "name": BOT_NAME},
            "textFormat": "plain",
            "text": f"<at>{BOT_NAME}</at> {text}" if mention else text,
            "entities": [{"type": "clientInfo", "locale": "en-US", "platform": "Web"}],
            "channelData": {"tenant": {"id": TENANT}},
            "locale": "en-US",
        }
        if mention:
            body["entities"].insert(
                0, {"type": "mention", "mentioned": {"id": BOT_ID, "name": BOT_NAME}, "text": f"<at>{BOT_NAME}</at>"}
            )
        if not personal:
            body["channelData"]["channel"] = {"id": conversation}
        if value is not None:
            body["value"] = value
            body["text"] = ""
        return body

    # --- connector side -------------------------------------------------------------------------

    def force(self, status: int, times: int = 1, retry_after: str | None = "0.05") -> None:
        """The next `times` Connector calls answer `status` (with this Retry-After)."""
        self.forced.extend([(status, retry_after)] * times)

    def in_conversation(self, conversation_prefix: str) -> list[Activity]:
        return [self.activities[i] for i in self.order if self.activities[i].conversation.startswith(conversation_prefix)]

    async def wait_for(self, predicate: Callable[[FakeTeamsCloud], Any]) -> Any:
        while True:
            found = predicate(self)
            if found:
                return found
            await self._changed.wait()

    def _notify(self) -> None:
        changed, self._changed = self._changed, trio.Event()
        changed.set()

    def _authorised(self) -> bool:
        header = request.headers.get("Authorization", "")
        expires = self._tokens.get(header.removeprefix("Bearer "))
        return expires is not None and trio.current_time() < expires

    def _over_limit(self, conversation: str, now: float) -> bool:
        times = self._windows.setdefault(conversation, [])
        if any(sum(1 for t in times if t > now - window) >= count for window, count in THREAD_LIMITS):
            return True
        times.append(now)
        return False

    async def _connector(self, conversation: str, activity_id: str | None) -> Response:
        now = trio.current_time()

        def answer(status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> Response:
            self.calls.append(Call(request.method, conversation, activity_id, status, now))
            self._notify()
            return Response(json.dumps(body), status=status, mimetype="application/json", headers=headers or {})

        def error(status: int, code: str) -> Response:
            return answer(status, {"error": {"code": code, "message": code}})

        if not self._authorised():
            return error(401, "Unauthorized")
        if self.forced:
            status, retry_after = self.forced.pop(0)
            return answer(status, {"error": {"code": "Throttled", "message": "forced"}},
                          {"Retry-After": retry_after} if retry_after else None)
        if self._over_limit(conversation, now):
            return answer(429, {"error": {"code": "Throttled", "message": "rate"}}, {"Retry-After": "1"})
        raw = await request.get_data(as_text=False)
        if len(raw.decode("utf-8").encode("utf-16-le")) > MAX_ACTIVITY_BYTES:
            return error(413, "MessageSizeTooBig")
        body = json.loads(raw)
        if request.method == "PUT":
            assert activity_id is not None
            existing = self.activities.get(activity_id)
            if existing is None or existing.conversation != conversation:
                return error(404, "ActivityNotFound")
            existing.versions.append(body)
            return answer(200, {"id": activity_id})
        new_id = str(next(self._ids))
        self.activities[new_id] = Activity(new_id, conversation, activity_id, [body])
        self.order.append(new_id)
        return answer(201, {"id": new_id})

    def app(self) -> QuartTrio:
        app = QuartTrio("fake-teams-cloud")
        cloud = self

        @app.get("/v1/.well-known/openidconfiguration")
        async def openid() -> dict[str, Any]:
            cloud.metadata_requests += 1
            return {
                "issuer": ISSUER,
                "authorization_endpoint": "https://invalid.botframework.com",
                "jwks_uri": f"{cloud.url}/v1/.well-known/keys",
                "id_token_signing_alg_values_supported": ["RS256"],
                "token_endpoint_auth_methods_supported": ["private_key_jwt"],
            }

        @app.get("/v1/.well-known/keys")
        async def keys() -> dict[str, Any]:
            return {"keys": [cloud.key.jwk(), cloud.unendorsed.jwk()]}

        @app.post("/<tenant>/oauth2/v2.0/token")
        async def token(tenant: str) -> Response:
            form = await request.form
            ok = (
                tenant == TENANT
                and form.get("grant_type") == "client_credentials"
                and form.get("client_id") == APP_ID
                and form.get("client_secret") == APP_PASSWORD
                and form.get("scope") == SCOPE
            )
            if not ok:
                body = {"error": "invalid_client", "error_description": "AADSTS7000215: Invalid client secret provided."}
                return Response(json.dumps(body), status=401, mimetype="application/json")
            cloud.token_requests += 1
            access = f"eyJfake.{cloud.token_requests}.token"
            cloud._tokens[access] = trio.current_time() + cloud.token_lifetime_s
            body2 = {"token_type": "Bearer", "expires_in": cloud.token_lifetime_s,
                     "ext_expires_in": cloud.token_lifetime_s, "access_token": access}
            return Response(json.dumps(body2), status=200, mimetype="application/json")

        @app.post("/amer/v3/conversations/<conversation>/activities")
        async def post(conversation: str) -> Response:
            return await cloud._connector(conversation, None)

        @app.route("/amer/v3/conversations/<conversation>/activities/<activity_id>", methods=["POST", "PUT"])
        async def reply_or_update(conversation: str, activity_id: str) -> Response:
            return await cloud._connector(conversation, activity_id)

        return app


async def serve_cloud(cloud: FakeTeamsCloud, *, task_status: trio.TaskStatus[FakeTeamsCloud] = trio.TASK_STATUS_IGNORED) -> None:
    from hypercorn.config import Config as HypercornConfig
    from hypercorn.trio import serve

    config = HypercornConfig()
    config.bind = ["127.0.0.1:0"]
    config.accesslog = None
    config.errorlog = None
    async with trio.open_nursery() as nursery:
        binds = await nursery.start(partial(serve, cloud.app(), config, mode="asgi"))
        cloud.url = binds[0]
        task_status.started(cloud)
