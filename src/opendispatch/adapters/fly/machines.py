"""`FlySprites`: a sprite is a Fly Machine, created per job through the Machines API.

The composition root builds the `httpx.AsyncClient` (base URL, Bearer FLY_API_TOKEN,
timeouts); this module never sees the token except to keep it out of messages.

Retries: 429, 5xx and connection errors are retried with exponential backoff and jitter,
honouring `Retry-After` (seconds or an HTTP date, read by `support/retry_after.py`); other
4xx answers will not change and are never retried.
Create is not idempotent, so after an ambiguous failure (5xx, a dropped connection) we look
for the machine by its metadata and name before creating again (reference §9).
"""

from __future__ import annotations

import logging
import random
import secrets
from collections.abc import Mapping
from typing import Any

import attrs
import httpx
import trio

from ...domain.errors import SpawnFailed, SpriteError, SpriteProviderUnavailable
from ...ports.sprites import Sprite, SpriteRequest
from ...support.retry_after import backoff_s, retry_after_s
from . import wire
from .wire import META_DISPATCHER, META_JOB, Guest, MachineView, machines_path

log = logging.getLogger(__name__)

DEFAULT_REGION = "iad"
DEFAULT_START_TIMEOUT_S = 120.0
HTTP_SLACK_S = 15.0  # a `wait` may take its full timeout before answering

#: States after which a one-shot sprite will never run again (it destroys itself).
ENDED_STATES = frozenset({"stopping", "stopped", "destroying", "destroyed", "replaced", "migrated"})

TROUBLESHOOTING = (
    "Check your token with `fly auth whoami`, the image with `fly image show`, "
    "and regions with `fly platform regions`."
)


@attrs.frozen
class RetryPolicy:
    """How hard to try before telling the user Fly.io is unavailable."""

    attempts: int = 5
    base_delay_s: float = 0.25
    max_delay_s: float = 8.0
    max_retry_after_s: float = 60.0

    def delay(self, attempt: int, retry_after: str | None, rng: random.Random) -> float:
        """Seconds before try `attempt + 1`: the server's Retry-After (capped), else backoff with jitter."""
        hinted = retry_after_s(retry_after)
        if hinted is not None:
            return min(hinted, self.max_retry_after_s)
        return backoff_s(attempt, base_s=self.base_delay_s, max_s=self.max_delay_s, rng=rng)


@attrs.frozen
class FlySettings:
    """Everything FlySprites needs besides the HTTP client; validated by config.py."""

    app: str
    region: str = DEFAULT_REGION
    image: str | None = None
    guest: Guest = Guest()
    instance: str = "opendispatch"
    start_timeout_s: float = DEFAULT_START_TIMEOUT_S
    retry: RetryPolicy = RetryPolicy()


class _Exhausted(Exception):
    """Retries ran out; `what` says what the last try saw (a status or a connection error)."""

    def __init__(self, what: str) -> None:
        super().__init__(what)
        self.what = what


@attrs.define
class FlySprites:
    http: httpx.AsyncClient
    settings: FlySettings
    rng: random.Random = attrs.field(factory=random.Random)
    _instance_ids: dict[str, str] = attrs.field(factory=dict, init=False)
    _job_ids: dict[str, str] = attrs.field(factory=dict, init=False)
    _exit_codes: dict[str, int | None] = attrs.field(factory=dict, init=False)

    # --- SpritePort -----------------------------------------------------------------------

    async def spawn(self, request: SpriteRequest) -> Sprite:
        image = request.image or self.settings.image
        if not image:
            raise SpawnFailed(
                "No sprite image is configured: set SPRITE_IMAGE (or pass --image) to an image "
                "such as registry.fly.io/my-sprites/agent:latest."
            )
        name = f"od-{request.job_id}-{secrets.token_hex(3)}"
        body = wire.create_body(
            name=name,
            region=self.settings.region,
            image=image,
            env=request.env,
            guest=self.settings.guest,
            metadata={META_DISPATCHER: self.settings.instance, META_JOB: request.job_id},
        )
        machine = await self._create(body, name, request.job_id, image)
        self._instance_ids[machine.id] = machine.instance_id
        self._job_ids[machine.id] = request.job_id
        sprite = Sprite(id=machine.id, job_id=request.job_id)
        with trio.move_on_after(self.settings.start_timeout_s) as starting:
            await self._wait_for(machine.id, "started", image=image)
        if starting.cancelled_caught:
            with trio.CancelScope(shield=True), trio.move_on_after(HTTP_SLACK_S):
                await self.destroy(machine.id)
            raise SpawnFailed(
                f"Fly machine {machine.id} did not start within {self.settings.start_timeout_s:g}s. "
                f"See `fly logs -a {self.settings.app}`; {TROUBLESHOOTING}"
            )
        return sprite

    async def wait_exited(self, sprite_id: str) -> int | None:
        if sprite_id in self._exit_codes:
            return self._exit_codes[sprite_id]
        instance_id = self._instance_ids.get(sprite_id)
        if instance_id is None:
            found = await self._get(sprite_id)
            if found is None:
                return None
            instance_id = self._instance_ids[sprite_id] = found.instance_id
            self._job_ids[sprite_id] = found.metadata.get(META_JOB, "")
        await self._wait_for(sprite_id, "stopped", instance_id=instance_id)
        code = await self._exit_code(sprite_id)
        self._exit_codes[sprite_id] = code
        return code

    async def destroy(self, sprite_id: str) -> None:
        """Force-delete (kills a running machine); a machine that is already gone is fine."""
        response = await self._call("DELETE", machines_path(self.settings.app, sprite_id), params={"force": "true"})
        if response.status_code == 404 or response.is_success:
            return
        raise SpriteProviderUnavailable(
            f"Fly.io refused to destroy machine {sprite_id}: {self._message(response)}. "
            f"Remove it with `fly machine destroy --force {sprite_id} -a {self.settings.app}`."
        )

    async def suspend(self, sprite_id: str) -> None:
        """`POST /suspend` (RAM and disk snapshot), then wait until `suspended` (reference §2, §5)."""
        await self._lifecycle(sprite_id, "suspend", "suspended")

    async def wake(self, sprite_id: str) -> None:
        """`POST /start` resumes a suspended machine; then wait until `started`."""
        await self._lifecycle(sprite_id, "start", "started")

    async def _lifecycle(self, sprite_id: str, action: str, state: str) -> None:
        response = await self._call("POST", machines_path(self.settings.app, sprite_id, action))
        if response.status_code == 404:
            raise SpriteProviderUnavailable(f"Fly machine {sprite_id} is gone; a new sprite is needed.")
        if not response.is_success:
            raise SpriteProviderUnavailable(
                f"Fly.io could not {action} machine {sprite_id}: {self._message(response)}. {TROUBLESHOOTING}"
            )
        with trio.move_on_after(self.settings.start_timeout_s) as waiting:
            await self._wait_for(sprite_id, state)
        if waiting.cancelled_caught:
            raise SpriteProviderUnavailable(
                f"Fly machine {sprite_id} did not become {state} within {self.settings.start_timeout_s:g}s."
            )

    async def list_sprites(self) -> list[Sprite]:
        """Machines carrying this dispatcher's metadata that have not ended."""
        machines = await self._list({f"metadata.{META_DISPATCHER}": self.settings.instance})
        return [
            Sprite(id=m.id, job_id=m.metadata.get(META_JOB, ""))
            for m in machines
            if m.metadata.get(META_DISPATCHER) == self.settings.instance
            and META_JOB in m.metadata
            and m.state not in ENDED_STATES
        ]

    # --- the steps ------------------------------------------------------------------------

    async def _create(self, body: dict[str, Any], name: str, job_id: str, image: str) -> MachineView:
        path = machines_path(self.settings.app)
        attempt = 0
        while True:
            try:
                response = await self.http.post(path, json=body)
            except httpx.TransportError as exc:
                what = f"connection error: {type(exc).__name__}"
                ambiguous = True
            else:
                if response.is_success:
                    return MachineView.from_json(response.json())
                if not _retryable(response.status_code):
                    raise self._spawn_error(response, image)
                what = f"HTTP {response.status_code}"
                ambiguous = response.status_code != 429
            attempt += 1
            if attempt >= self.settings.retry.attempts:
                raise self._unavailable(what)
            retry_after = None if ambiguous else response.headers.get("Retry-After")
            log.warning("Fly create for %s: %s; retrying (%d/%d)", job_id, what, attempt, self.settings.retry.attempts)
            await trio.sleep(self.settings.retry.delay(attempt - 1, retry_after, self.rng))
            if ambiguous:
                existing = await self._find(job_id, name)
                if existing is not None:
                    return existing

    async def _find(self, job_id: str, name: str) -> MachineView | None:
        """The machine an ambiguous create may have made after all."""
        try:
            machines = await self._list({f"metadata.{META_JOB}": job_id})
        except SpriteError:
            return None
        return next((m for m in machines if m.name == name), None)

    async def _wait_for(
        self, machine_id: str, state: str, *, instance_id: str | None = None, image: str | None = None
    ) -> None:
        """Loop `wait` (each at most 60 s) until the state; a machine that is gone counts as past it."""
        params = {"state": state, "timeout": str(wire.MAX_WAIT_S)}
        if instance_id:
            params["instance_id"] = instance_id
        path = machines_path(self.settings.app, machine_id, "wait")
        while True:
            response = await self._call("GET", path, params=params, timeout=wire.MAX_WAIT_S + HTTP_SLACK_S)
            if response.is_success or response.status_code == 404:
                return
            if response.status_code != 408:
                raise self._spawn_error(response, image) if image else self._provider_error(response)

    async def _get(self, machine_id: str) -> MachineView | None:
        response = await self._call("GET", machines_path(self.settings.app, machine_id))
        if response.status_code == 404:
            return None
        if not response.is_success:
            raise self._provider_error(response)
        return MachineView.from_json(response.json())

    async def _list(self, params: Mapping[str, str]) -> list[MachineView]:
        response = await self._call("GET", machines_path(self.settings.app), params=dict(params))
        if not response.is_success:
            raise self._provider_error(response)
        return [MachineView.from_json(item) for item in response.json()]

    async def _exit_code(self, machine_id: str) -> int | None:
        """From the machine's exit event; a destroyed machine is read with `include_deleted`."""
        found = await self._get(machine_id)
        if found is None:
            params = {"include_deleted": "true"}
            if self._job_ids.get(machine_id):
                params[f"metadata.{META_JOB}"] = self._job_ids[machine_id]
            found = next((m for m in await self._list(params) if m.id == machine_id), None)
        return None if found is None else found.exit_code

    # --- HTTP with retries ----------------------------------------------------------------

    async def _call(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        timeout: float | None = None,
    ) -> httpx.Response:
        """A safe-to-repeat request, retried on 429/5xx/connection errors; other answers returned."""
        extra: dict[str, Any] = {} if timeout is None else {"timeout": timeout}
        attempt = 0
        while True:
            retry_after = None
            try:
                response = await self.http.request(method, path, params=params, **extra)
            except httpx.TransportError as exc:
                what = f"connection error: {type(exc).__name__}"
            else:
                if not _retryable(response.status_code):
                    return response
                what = f"HTTP {response.status_code}"
                retry_after = response.headers.get("Retry-After")
            attempt += 1
            if attempt >= self.settings.retry.attempts:
                raise self._unavailable(what)
            log.info("Fly %s %s: %s; retrying (%d/%d)", method, path, what, attempt, self.settings.retry.attempts)
            await trio.sleep(self.settings.retry.delay(attempt - 1, retry_after, self.rng))

    # --- errors a user can act on ---------------------------------------------------------

    def _message(self, response: httpx.Response) -> str:
        try:
            body: object = response.json()
        except ValueError:
            body = None
        text = wire.error_text(body, response.text) or f"HTTP {response.status_code}"
        return self._redact(text)

    def _redact(self, text: str) -> str:
        token = self.http.headers.get("Authorization", "").removeprefix("Bearer ").strip()
        return text.replace(token, "***") if token else text

    def _unavailable(self, what: str) -> SpriteProviderUnavailable:
        return SpriteProviderUnavailable(
            f"Fly.io Machines API is not answering ({what}) after {self.settings.retry.attempts} tries. "
            f"Try again in a minute; check https://status.flyio.net and FLY_API_URL ({self.http.base_url})."
        )

    def _provider_error(self, response: httpx.Response) -> SpriteError:
        status, message = response.status_code, self._message(response)
        if status == 401:
            return SpriteProviderUnavailable(
                f"Fly.io rejected FLY_API_TOKEN (401: {message}). Check it with `fly auth whoami` "
                f"and create a deploy token with `fly tokens create deploy -a {self.settings.app}`."
            )
        if status == 404:
            return SpriteProviderUnavailable(
                f"Fly app {self.settings.app!r} was not found (404). Create it with "
                f"`fly apps create {self.settings.app}` or fix FLY_SPRITE_APP."
            )
        return SpriteProviderUnavailable(f"Fly.io answered HTTP {status}: {message}. {TROUBLESHOOTING}")

    def _spawn_error(self, response: httpx.Response, image: str | None) -> SpriteError:
        status, message = response.status_code, self._message(response)
        code = _json_status(response)
        lowered = message.lower()
        if status in (401, 404):
            return self._provider_error(response)
        if code == "insufficient_capacity" or "capacity" in lowered:
            return SpawnFailed(
                f"Fly.io has no capacity for this sprite in {self.settings.region} ({message}). "
                "Try another FLY_REGION; `fly platform regions` lists them."
            )
        if "region" in lowered:
            return SpawnFailed(
                f"Fly.io refused region {self.settings.region!r} ({message}). "
                "Set FLY_REGION to one that `fly platform regions` lists."
            )
        if "image" in lowered or "manifest" in lowered:
            return SpawnFailed(
                f"Fly.io could not use image {image} ({message}). Verify the image exists: "
                f"`fly image show -a {self.settings.app}`, or push it with `docker push {image}`."
            )
        if "memory" in lowered or "cpu" in lowered or "guest" in lowered:
            return SpawnFailed(
                f"Fly.io refused the sprite size ({message}). Fix OPENDISPATCH_SPRITE_CPUS, "
                "OPENDISPATCH_SPRITE_MEMORY_MB or OPENDISPATCH_SPRITE_CPU_KIND."
            )
        return SpawnFailed(f"Fly.io could not create the sprite (HTTP {status}: {message}). {TROUBLESHOOTING}")


def _retryable(status: int) -> bool:
    return status == 429 or status >= 500


def _json_status(response: httpx.Response) -> str | None:
    try:
        return wire.error_code(response.json())
    except ValueError:
        return None
