"""A loopback Microsoft cloud for the Teams adapter: identity provider, Bot Connector, channel.

One quart-trio app on 127.0.0.1 plays three parts, with the JSON shapes of
shared/reference/teams.md:
- the Bot Framework OpenID metadata and JWKS (our own RSA keys, with `endorsements`) and an
  Entra client-credentials token endpoint that checks id, secret and scope;
- the Bot Connector under `/amer/` (`POST …/activities[/{id}]`, `PUT …/activities/{id}`),
  requiring a token it issued, keeping every version of every activity, enforcing Teams'
  per-thread windows (7/1 s, 8/2 s, 60/30 s) with 429, 413 over the size limit, 404 for
  updates of ids it never made, and able to force 429s on demand;
- streaming (learn.microsoft.com, "Stream bot messages"): a POST whose `entities` hold a
  `streaminfo` is a stream's request. The first (informative or streaming, `streamSequence`
  1, no `streamId`) answers `201 {"id": streamId}` and makes the stream's activity; later ones
  name the `streamId` and answer `202 {}`; each is a version of that activity. It refuses what
  Teams documents it refuses: streams outside personal chats (400 BadArgument "streaming api
  is not enabled"), a second open stream in one chat (400, our guess at the code), typing
  without text and informative text over 1,000 characters (400 BadRequest), a sequence that
  is not the next one (202 `ContentStreamSequenceOrderPreConditionFailed`, dropped), a text
  that does not start with the one streamed before (403 `ContentStreamNotAllowed`), a final
  with a `streamSequence` (400), requests faster than `stream_min_interval_s` (429 with
  Retry-After), anything after the final (403 "…already completed streamed message"), a
  stream older than `stream_time_limit_s` (403 "…exceeded streaming time."), a message too
  large (403 "Message size too large"). `press_stop` is the user's click on Teams' Stop (the
  next request: 403 "Content stream was cancelled by user."), `expire_stream` ends a stream
  as the time limit would, `refuse_streaming` makes every stream start fail as for a bot that
  may not stream (403 "Content stream is not allowed");
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
INFORMATIVE_MAX_CHARS = 1000
CANCELLED_BY_USER = "Content stream was cancelled by user."
STREAM_TIMED_OUT = "Content stream finished due to exceeded streaming time."
STREAM_COMPLETED = "Content stream is not allowed on an already completed streamed message"
STREAM_NOT_ALLOWED = "Content stream is not allowed"
NOT_PREFIX = "Request streamed content should contain the previously streamed content"
SEQUENCE_DROPPED = "ContentStreamSequenceOrderPreConditionFailed"

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
    #: For a stream's request: its streamType, streamSequence, and the error code answered.
    stream_type: str | None = None
    sequence: int | None = None
    code: str | None = None
    text: str | None = None
    with_card: bool = False

    def brief(self) -> str:
        """One line of the call record, as the closing notes quote it (texts cut short)."""
        error = f" {self.code}" if self.code else ""
        text = ""
        if self.text:
            flat = self.text if len(self.text) <= 48 else self.text[:47] + "…"
            text = f" {flat!r}"
        if self.stream_type is None:
            return f"{self.method} {self.activity_id or 'activities'}{text} -> {self.status}{error}"
        seq = f" #{self.sequence}" if self.sequence is not None else ""
        card = " +card" if self.with_card else ""
        return f"POST stream {self.stream_type}{seq}{text}{card} -> {self.status}{error}"


@attrs.define
class FakeStream:
    """One stream the bot opened: its state as Teams keeps it."""

    id: str
    conversation: str
    started_at: float
    last_at: float
    sequence: int = 1
    text: str = ""
    #: "open", "final", or why it can take no more: "stopped", "expired".
    state: str = "open"


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
        self.streams: dict[str, FakeStream] = {}
        #: Teams takes one streaming request a second; tests that pace faster lower it.
        self.stream_min_interval_s = 1.0
        self.stream_time_limit_s = 120.0
        self.streaming_refused = False
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

    def press_stop(self, conversation: str) -> FakeStream:
        """The user presses Teams' Stop on the open stream of `conversation`."""
        stream = self.open_stream(conversation)
        assert stream is not None, f"no stream is open in {conversation}"
        stream.state = "stopped"
        return stream

    def expire_stream(self, conversation: str) -> FakeStream:
        """The open stream of `conversation` runs past Teams' time limit."""
        stream = self.open_stream(conversation)
        assert stream is not None, f"no stream is open in {conversation}"
        stream.state = "expired"
        return stream

    def refuse_streaming(self) -> None:
        """Streaming is not allowed for this bot or user: every stream's first request fails."""
        self.streaming_refused = True

    def open_stream(self, conversation: str) -> FakeStream | None:
        return next((s for s in self.streams.values() if s.conversation == conversation and s.state == "open"), None)

    def stream_calls(self, conversation: str | None = None) -> list[Call]:
        return [c for c in self.calls if c.stream_type is not None and conversation in (None, c.conversation)]

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
        what: str | None = None

        def answer(status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> Response:
            code = body.get("error", {}).get("code") if isinstance(body.get("error"), dict) else None
            self.calls.append(Call(request.method, conversation, activity_id, status, now, code=code, text=what))
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
        try:
            sent = json.loads(raw)
        except ValueError:
            sent = None
        what = (sent.get("summary") or sent.get("text")) if isinstance(sent, dict) else None
        stream_info = _stream_info(sent) if request.method == "POST" else None
        if stream_info is not None:
            return self._stream_request(conversation, json.loads(raw), stream_info, raw, now, answer)
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

    def _stream_request(
        self,
        conversation: str,
        body: dict[str, Any],
        info: dict[str, Any],
        raw: bytes,
        now: float,
        answer: Callable[..., Response],
    ) -> Response:
        """One request of a stream, with the rules of learn.microsoft.com "Stream bot messages"."""
        stream_type = str(info.get("streamType") or "streaming")
        sequence = info.get("streamSequence")
        text = body.get("text") if isinstance(body.get("text"), str) else ""

        def reply(status: int, code: str | None = None, message: str = "", *, headers: dict[str, str] | None = None,
                  body_out: dict[str, Any] | None = None) -> Response:
            out = body_out if body_out is not None else ({"error": {"code": code, "message": message}} if code else {})
            response = answer(status, out, headers)
            call = self.calls[-1]
            call.stream_type, call.sequence, call.text = stream_type, sequence if isinstance(sequence, int) else None, text
            call.with_card = card_of(body) is not None
            return response

        if not conversation.startswith("a:"):
            return reply(400, "BadArgument", "Streaming api is not enabled for this conversation")
        if stream_type not in ("informative", "streaming", "final"):
            return reply(400, "BadRequest", f"unknown streamType {stream_type!r}")
        if (body.get("type") == "message") != (stream_type == "final"):
            return reply(400, "BadRequest", "typing is for informative and streaming updates, message for the final one")
        if stream_type != "final" and not text:
            return reply(400, "BadRequest", "Start streaming activities should include text")
        if stream_type == "informative" and len(text) > INFORMATIVE_MAX_CHARS:
            return reply(400, "BadRequest", "Informative message is too long")
        if stream_type == "final" and sequence is not None:
            return reply(400, "BadRequest", "streamSequence must not be set on the final message")
        if stream_type != "final" and not isinstance(sequence, int):
            return reply(400, "BadRequest", "streamSequence is required")
        if len(raw.decode("utf-8").encode("utf-16-le")) > MAX_ACTIVITY_BYTES:
            return reply(403, "ContentStreamNotAllowed", "Message size too large")
        stream_id = info.get("streamId")
        if stream_id is None:
            if self.streaming_refused:
                return reply(403, "ContentStreamNotAllowed", STREAM_NOT_ALLOWED)
            if stream_type == "final" or sequence != 1:
                return reply(400, "BadRequest", "a stream starts with streamSequence 1")
            if self.open_stream(conversation) is not None:
                return reply(400, "BadRequest", "Only one streaming response per chat at a time")
            new_id = str(next(self._ids))
            self.streams[new_id] = FakeStream(new_id, conversation, now, now, text=text if stream_type == "streaming" else "")
            self.activities[new_id] = Activity(new_id, conversation, None, [body])
            self.order.append(new_id)
            return reply(201, body_out={"id": new_id})
        stream = self.streams.get(str(stream_id))
        if stream is None or stream.conversation != conversation:
            return reply(404, "ActivityNotFound", "no such stream")
        if stream.state == "final":
            return reply(403, "ContentStreamNotAllowed", STREAM_COMPLETED)
        if stream.state == "stopped":
            return reply(403, "ContentStreamNotAllowed", CANCELLED_BY_USER)
        if stream.state == "expired" or now - stream.started_at > self.stream_time_limit_s:
            stream.state = "expired"
            return reply(403, "ContentStreamNotAllowed", STREAM_TIMED_OUT)
        wait = stream.last_at + self.stream_min_interval_s - now
        if wait > 0:
            return reply(429, body_out={"error": {"code": "Throttled", "message": "API calls quota exceeded"}},
                         headers={"Retry-After": f"{wait:.3f}"})
        if stream_type != "final" and sequence != stream.sequence + 1:
            return reply(202, SEQUENCE_DROPPED, "PreCondition failed exception when processing streaming activity.")
        if stream_type == "streaming" and not text.startswith(stream.text):
            return reply(403, "ContentStreamNotAllowed", NOT_PREFIX)
        if stream_type == "informative" and stream.text:
            return reply(400, "BadRequest", "informative updates come before the streamed text")
        stream.last_at = now
        if stream_type == "final":
            stream.state = "final"
        else:
            stream.sequence = sequence  # type: ignore[assignment]
            if stream_type == "streaming":
                stream.text = text
        self.activities[stream.id].versions.append(body)
        return reply(202, body_out={})

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


def _stream_info(body: Any) -> dict[str, Any] | None:
    """The `streaminfo` entity of an activity, if it has one (Teams matches the type in any case)."""
    if not isinstance(body, dict):
        return None
    for entity in body.get("entities") or []:
        if isinstance(entity, dict) and str(entity.get("type", "")).lower() == "streaminfo":
            return entity
    return None


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
