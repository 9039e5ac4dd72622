"""A loopback emulator of the Fly Machines API subset Open-Dispatch uses, that really runs machines.

Paths, JSON shapes, states and error codes follow shared/reference/fly-machines.md. Creating a
machine runs it: the image is recorded (not pulled) and `program` (by default the real
`sprite-reporter`) starts as a local subprocess in its own workspace and process group, with
the request's `config.env` plus the FLY_* variables Fly injects. The machine moves
created → starting → started; when the process exits it records an exit event and moves
stopping → stopped, then (with `auto_destroy`) destroying → destroyed.

Implemented: list (filters `metadata.*`, `state`, `region`, `include_deleted`), create,
get, stop, suspend (SIGSTOP to the process group: memory and workspace kept, as Fly's
snapshot keeps them) and start of a suspended machine (SIGCONT), destroy (`force`/`kill`; 412 on a running machine without it), wait (`state`,
`timeout`, 408 on expiry, 400 on bad parameters), metadata read, and leases (409 when held).
Faults on demand: `inject_fault(429 | 5xx, ...)`, optionally after the create took effect.

Deliberate simplifications: a force destroy answers once the process is gone (Fly answers
earlier and finishes asynchronously); `restart.policy` is recorded, never acted on.

Run it with `await nursery.start(serve_emulator, emulator)`, which returns the base URL.

Part of `opendispatch.testing` (see its docstring for why it ships in the package): it was
`adapters/fly/emulator.py`, and lives here since it is no adapter of ours but a stand-in for
Fly's side, used by the Fly adapter's tests, `--sprites fly-emulator` and library users'
own tests and demos.
"""

from __future__ import annotations

import hmac
import io
import itertools
import json
import logging
import os
import secrets
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime, timezone
from functools import partial
from pathlib import Path
from typing import Any

import attrs
import trio
from hypercorn.config import Config as HypercornConfig
from hypercorn.trio import serve
from quart import Response, request
from quart_trio import QuartTrio

from ..adapters.fly.wire import API_PREFIX, MAX_WAIT_S, guest_problem
from ..adapters.local.sidecar import sidecar_path
from ..support.process_group import signal_group, start_group_leader, terminate_group

log = logging.getLogger(__name__)

DEFAULT_APP = "opendispatch-sprites"
KILL_GRACE_S = 2.0

#: Fly region codes (`fly platform regions`), for 422 on an unknown one.
REGIONS = frozenset(
    "ams arn atl bog bom bos cdg den dfw ewr eze fra gdl gig gru hkg iad jnb lax lhr mad mia "
    "nrt ord otp phx qro scl sea sin sjc syd waw yul yyz".split()
)
WAITABLE = frozenset({"started", "stopped", "suspended", "destroyed", "failed", "settled"})
TRANSIENT = frozenset(
    {"creating", "starting", "stopping", "restarting", "suspending", "destroying", "updating", "replacing"}
)
_ADJECTIVES = ("quiet", "brave", "misty", "rapid", "silent", "lively", "ancient", "polished")
_NOUNS = ("river", "meadow", "forest", "harbor", "canyon", "glade", "summit", "lagoon")
_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


def _ulid() -> str:
    value = (int(time.time() * 1000) << 80) | secrets.randbits(80)
    return "".join(_CROCKFORD[(value >> (5 * i)) & 31] for i in reversed(range(26)))


def _now_iso() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _error(status: int, message: str, code: str | None = None, headers: Mapping[str, str] | None = None) -> Response:
    body: dict[str, Any] = {"error": message}
    if code is not None:
        body["status"] = code
    response = Response(json.dumps(body), status=status, mimetype="application/json")
    response.headers.update(dict(headers or {}))
    return response


def _ok(body: Any, status: int = 200) -> Response:
    return Response(json.dumps(body), status=status, mimetype="application/json")


@attrs.frozen
class Fault:
    """An answer the emulator gives instead of doing the work (or after it, `after_effect`)."""

    status: int
    method: str | None = None
    retry_after: str | None = None
    after_effect: bool = False

    def applies_to(self, method: str) -> bool:
        return self.method is None or self.method == method

    def response(self) -> Response:
        headers = {"Retry-After": self.retry_after} if self.retry_after is not None else {}
        if self.status == 429:
            return _error(429, "rate limit exceeded", "rate_limited", headers)
        return _error(self.status, "internal error, please retry", "unknown", headers)


@attrs.define(eq=False)
class EmulatedMachine:
    id: str
    name: str
    app: str
    region: str
    config: dict[str, Any]
    instance_id: str = attrs.Factory(_ulid)
    private_ip: str = attrs.Factory(
        lambda: f"fdaa:0:18:a7b:{secrets.token_hex(2)}:{secrets.token_hex(2)}:{secrets.token_hex(2)}:2"
    )
    created_at: str = attrs.Factory(_now_iso)
    updated_at: str = attrs.Factory(_now_iso)
    state: str = "created"
    reached: set[str] = attrs.Factory(set)
    events: list[dict[str, Any]] = attrs.Factory(list)
    process: trio.Process | None = None
    workspace: Path | None = None
    exit_code: int | None = None
    exited: trio.Event = attrs.Factory(trio.Event)
    lease_nonce: str | None = None
    destroying: bool = False
    _changed: trio.Event = attrs.Factory(trio.Event)

    @property
    def metadata(self) -> dict[str, str]:
        return dict(self.config.get("metadata") or {})

    def move(self, state: str, event_type: str, source: str = "flyd", request: dict[str, Any] | None = None) -> None:
        self.state = state
        self.reached.add(state)
        self.updated_at = _now_iso()
        event: dict[str, Any] = {
            "id": _ulid(),
            "type": event_type,
            "status": state,
            "source": source,
            "timestamp": int(time.time() * 1000),
        }
        if request is not None:
            event["request"] = request
        self.events.insert(0, event)  # newest first, as the API lists them
        self._changed.set()
        self._changed = trio.Event()

    async def wait_changed(self) -> None:
        await self._changed.wait()

    def satisfies(self, states: Iterable[str]) -> bool:
        for state in states:
            if state == "settled" and self.state not in TRANSIENT:
                return True
            if state in self.reached:
                return True
            if state == "stopped" and "destroyed" in self.reached:
                return True  # a force-destroyed machine stopped on the way (it skips `stopped`)
        return False

    def as_json(self) -> dict[str, Any]:
        image = str(self.config.get("image", ""))
        repository, _, tag = image.rpartition(":") if ":" in image.split("/")[-1] else (image, "", "latest")
        registry, _, repo = repository.partition("/") if "/" in repository else ("docker.io", "", repository)
        return {
            "id": self.id,
            "name": self.name,
            "state": self.state,
            "region": self.region,
            "instance_id": self.instance_id,
            "private_ip": self.private_ip,
            "image_ref": {"registry": registry, "repository": repo, "tag": tag, "digest": "sha256:" + "0" * 64},
            "config": {**self.config, "dns": self.config.get("dns", {})},
            "created_at": self.created_at,
            "updated_at": self.updated_at,
            "events": list(self.events),
            "checks": [],
            "host_status": "ok",
        }


@attrs.define(eq=False)
class MachinesEmulator:
    """The emulated Machines API: apps, machines, processes, and the faults a test asks for.

    `program` is the argv every machine runs (default: this Python running `sprite-reporter`);
    `missing_images` are image references the emulated registry does not have (create → 422).
    """

    token: str = attrs.field(repr=lambda _: "***")
    apps: set[str] = attrs.Factory(lambda: {DEFAULT_APP})
    program: Sequence[str] | None = None
    missing_images: set[str] = attrs.Factory(set)
    workspace_root: Path = attrs.field(
        factory=lambda: Path(tempfile.gettempdir()) / "opendispatch-fly-emulator", converter=Path
    )
    log_dir: Path | None = attrs.field(default=None, converter=attrs.converters.optional(Path))
    kill_grace_s: float = KILL_GRACE_S
    search_path: str = attrs.Factory(lambda: os.pathsep.join(os.get_exec_path()))
    machines: dict[str, EmulatedMachine] = attrs.field(factory=dict, init=False)
    requests: list[tuple[str, str]] = attrs.field(factory=list, init=False)
    _faults: list[Fault] = attrs.field(factory=list, init=False)
    _nursery: trio.Nursery | None = attrs.field(default=None, init=False)
    _changed: trio.Event = attrs.field(factory=trio.Event, init=False)
    _names: itertools.count[int] = attrs.field(factory=lambda: itertools.count(1000), init=False)

    # --- for tests and the demo -----------------------------------------------------------

    def inject_fault(
        self,
        status: int,
        *,
        times: int = 1,
        method: str | None = None,
        retry_after: str | None = None,
        after_effect: bool = False,
    ) -> None:
        """The next `times` matching requests get `status` (429 or 5xx) instead of an answer."""
        self._faults.extend([Fault(status, method, retry_after, after_effect)] * times)

    def live_machines(self, app: str | None = None) -> list[EmulatedMachine]:
        """Machines not yet destroyed (what a `fly machines list` would show)."""
        return [m for m in self.machines.values() if m.state != "destroyed" and (app is None or m.app == app)]

    async def wait_until(self, condition: Callable[[MachinesEmulator], bool]) -> None:
        """Return once `condition(self)` holds; re-checked whenever any machine changes state."""
        while not condition(self):
            await self._changed.wait()

    def add_machine_record(self, app: str, config: dict[str, Any], *, region: str = "iad") -> EmulatedMachine:
        """A machine that exists without a process (e.g. left over from a dead dispatcher)."""
        machine = EmulatedMachine(id=secrets.token_hex(7), name=self._name(), app=app, region=region, config=config)
        self.machines[machine.id] = machine
        machine.move("created", "launch", "user")
        machine.move("started", "start", "flyd")
        self._notify()
        return machine

    # --- lifecycle ------------------------------------------------------------------------

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Own the machines' processes; cancelling this kills every one of them."""
        try:
            async with trio.open_nursery() as nursery:
                self._nursery = nursery
                task_status.started()
                await trio.sleep_forever()
        finally:
            self._nursery = None
            for machine in self.machines.values():
                if not machine.exited.is_set():
                    _kill_group(machine, signal.SIGKILL)

    def _notify(self) -> None:
        self._changed.set()
        self._changed = trio.Event()

    def _move(self, machine: EmulatedMachine, state: str, event_type: str, **extra: Any) -> None:
        machine.move(state, event_type, **extra)
        self._notify()

    def _name(self) -> str:
        return f"{secrets.choice(_ADJECTIVES)}-{secrets.choice(_NOUNS)}-{next(self._names)}"

    async def _run_machine(self, machine: EmulatedMachine) -> None:
        self._move(machine, "starting", "start", source="user")
        try:
            machine.process = await self._start_process(machine)
        except OSError as exc:
            log.warning("emulated machine %s: cannot start %s: %s", machine.id, self._argv(), exc)
            code = 127  # what Fly's init reports when the entrypoint cannot be run
        else:
            self._move(machine, "started", "start")
            try:
                code = _exit_status(await machine.process.wait())
            finally:
                _kill_group(machine, signal.SIGKILL)  # children left behind, or we were cancelled
        self._record_exit(machine, code)
        if machine.destroying:
            return  # the destroy request finishes the story
        self._move(machine, "stopping", "exit")
        self._move(machine, "stopped", "exit")
        if machine.config.get("auto_destroy"):
            self._move(machine, "destroying", "destroy")
            self._finish_destroy(machine)

    def _record_exit(self, machine: EmulatedMachine, code: int) -> None:
        machine.exit_code = code
        exit_event: dict[str, Any] = {"exited_at": _now_iso(), "requested_stop": machine.destroying}
        if code:
            exit_event["exit_code"] = code  # fly-go's `omitempty`: a clean exit carries no code
        if code > 128:
            exit_event["signal"] = code - 128
        machine.move(machine.state, "exit", request={"exit_event": exit_event})
        machine.exited.set()
        self._notify()

    def _finish_destroy(self, machine: EmulatedMachine) -> None:
        if machine.workspace is not None:
            shutil.rmtree(machine.workspace, ignore_errors=True)
        self._move(machine, "destroyed", "destroy")

    def _argv(self) -> list[str]:
        if self.program is not None:
            return list(self.program)
        return [sys.executable, str(sidecar_path())]

    async def _start_process(self, machine: EmulatedMachine) -> trio.Process:
        self.workspace_root.mkdir(parents=True, exist_ok=True)
        machine.workspace = Path(tempfile.mkdtemp(prefix=f"{machine.id}-", dir=self.workspace_root))
        env = {
            "PATH": self.search_path,
            "HOME": str(machine.workspace),
            "LANG": "C.UTF-8",
            "LC_ALL": "C.UTF-8",
            **{str(k): str(v) for k, v in (machine.config.get("env") or {}).items()},
            "OPENDISPATCH_WORKSPACE": str(machine.workspace),  # stands in for the image's WORKDIR
            "FLY_APP_NAME": machine.app,
            "FLY_MACHINE_ID": machine.id,
            "FLY_ALLOC_ID": machine.id,
            "FLY_REGION": machine.region,
            "FLY_PRIVATE_IP": machine.private_ip,
            "FLY_IMAGE_REF": str(machine.config.get("image", "")),
            "FLY_MACHINE_VERSION": machine.instance_id,
            "PRIMARY_REGION": machine.region,
        }
        log_file = self._open_log(machine)
        try:
            return await start_group_leader(self._argv(), cwd=machine.workspace, env=env, output=log_file)
        finally:
            if log_file is not None:
                log_file.close()

    def _open_log(self, machine: EmulatedMachine) -> io.BufferedWriter | None:
        if self.log_dir is None:
            return None
        self.log_dir.mkdir(parents=True, exist_ok=True)
        return open(self.log_dir / f"{machine.id}.log", "ab")

    async def _destroy(self, machine: EmulatedMachine) -> None:
        machine.destroying = True
        self._move(machine, "destroying", "destroy", source="user")
        if machine.process is not None and not machine.exited.is_set():
            await terminate_group(machine.process.pid, machine.exited.wait, grace_s=self.kill_grace_s)
            await machine.exited.wait()
        self._finish_destroy(machine)

    async def _stop(self, machine: EmulatedMachine, signum: signal.Signals) -> None:
        if machine.process is None or machine.exited.is_set():
            return
        await terminate_group(machine.process.pid, machine.exited.wait, grace_s=self.kill_grace_s, first=(signum,))
        await machine.exited.wait()

    # --- HTTP -----------------------------------------------------------------------------

    def build_app(self) -> QuartTrio:  # noqa: C901 - one route table, read top to bottom
        app = QuartTrio(__name__)
        base = f"{API_PREFIX}/apps/<app_name>/machines"

        @app.before_request
        async def authenticate_and_inject() -> Response | None:
            self.requests.append((request.method, request.path))
            given = request.headers.get("Authorization", "")
            expected = f"Bearer {self.token}"
            if not hmac.compare_digest(given.encode(), expected.encode()):
                return _error(401, "You must be authenticated to view this.", "unauthorized")
            for index, fault in enumerate(self._faults):
                if fault.applies_to(request.method) and not fault.after_effect:
                    del self._faults[index]
                    return fault.response()
            return None

        def find_app(app_name: str) -> Response | None:
            return None if app_name in self.apps else _error(404, f"app {app_name!r} not found", "not_found")

        def find_machine(app_name: str, machine_id: str) -> EmulatedMachine | Response:
            missing = find_app(app_name)
            if missing is not None:
                return missing
            machine = self.machines.get(machine_id)
            if machine is None or machine.app != app_name or machine.state == "destroyed":
                return _error(404, f"machine {machine_id} not found", "not_found")
            return machine

        def find_leased_machine(app_name: str, machine_id: str) -> EmulatedMachine | Response:
            """The machine, unless it is missing or leased to someone else (then the error)."""
            machine = find_machine(app_name, machine_id)
            if isinstance(machine, Response):
                return machine
            held = self._lease_problem(machine)
            return held if held is not None else machine

        @app.get(base)
        async def list_machines(app_name: str) -> Response:
            missing = find_app(app_name)
            if missing is not None:
                return missing
            args = request.args
            include_deleted = args.get("include_deleted", "").lower() == "true"
            states = {s for value in args.getlist("state") for s in value.split(",") if s}
            region = args.get("region")
            wanted = {key[len("metadata."):]: value for key, value in args.items() if key.startswith("metadata.")}
            summary = args.get("summary", "").lower() == "true"
            found = []
            for machine in self.machines.values():
                if machine.app != app_name or (machine.state == "destroyed" and not include_deleted):
                    continue
                if states and machine.state not in states:
                    continue
                if region and machine.region != region:
                    continue
                if any(machine.metadata.get(k) != v for k, v in wanted.items()):
                    continue
                body = machine.as_json()
                if summary:
                    for key in ("config", "events", "checks"):
                        body.pop(key, None)
                found.append(body)
            return _ok(found)

        @app.post(base)
        async def create_machine(app_name: str) -> Response:
            missing = find_app(app_name)
            if missing is not None:
                return missing
            body = await request.get_json(force=True, silent=True)
            problem = self._create_problem(app_name, body)
            if problem is not None:
                return problem
            machine = EmulatedMachine(
                id=secrets.token_hex(7),
                name=body.get("name") or self._name(),
                app=app_name,
                region=body.get("region") or "iad",
                config=dict(body["config"]),
            )
            self.machines[machine.id] = machine
            self._move(machine, "created", "launch", source="user")
            if not body.get("skip_launch"):
                if self._nursery is None:
                    return _error(503, "the emulator is not running (use serve_emulator)", "unknown")
                self._nursery.start_soon(self._run_machine, machine)
            for index, fault in enumerate(self._faults):
                if fault.after_effect and fault.applies_to("POST"):
                    del self._faults[index]
                    return fault.response()
            return _ok(machine.as_json())

        @app.get(f"{base}/<machine_id>")
        async def get_machine(app_name: str, machine_id: str) -> Response:
            machine = find_machine(app_name, machine_id)
            return machine if isinstance(machine, Response) else _ok(machine.as_json())

        @app.delete(f"{base}/<machine_id>")
        async def destroy_machine(app_name: str, machine_id: str) -> Response:
            machine = find_leased_machine(app_name, machine_id)
            if isinstance(machine, Response):
                return machine
            force = any(request.args.get(key, "").lower() == "true" for key in ("force", "kill"))
            if machine.state in ("started", "starting", "created") and machine.process is not None and not force:
                return _error(
                    412,
                    f"unable to destroy machine {machine_id}: machine is {machine.state}, stop it first or use force=true",
                    "failed_precondition",
                )
            if not machine.destroying:
                await self._destroy(machine)
            return _ok({"ok": True})

        @app.post(f"{base}/<machine_id>/stop")
        async def stop_machine(app_name: str, machine_id: str) -> Response:
            machine = find_leased_machine(app_name, machine_id)
            if isinstance(machine, Response):
                return machine
            body = await request.get_json(force=True, silent=True) or {}
            name = str(body.get("signal") or "SIGINT").upper()
            signum = getattr(signal, name if name.startswith("SIG") else f"SIG{name}", None)
            if not isinstance(signum, signal.Signals):
                return _error(400, f"unknown signal {name}", "invalid_argument")
            await self._stop(machine, signum)
            return _ok({"ok": True})

        @app.post(f"{base}/<machine_id>/suspend")
        async def suspend_machine(app_name: str, machine_id: str) -> Response:
            machine = find_machine(app_name, machine_id)
            if isinstance(machine, Response):
                return machine
            if machine.state == "suspended":
                return _ok({"ok": True})
            if machine.state != "started" or machine.process is None or machine.exited.is_set():
                return _error(412, f"machine {machine_id} is {machine.state}; only a started machine can be suspended",
                              "failed_precondition")
            self._move(machine, "suspending", "suspend", source="user")
            _kill_group(machine, signal.SIGSTOP)
            self._move(machine, "suspended", "suspend")
            return _ok({"ok": True})

        @app.post(f"{base}/<machine_id>/start")
        async def start_machine(app_name: str, machine_id: str) -> Response:
            machine = find_machine(app_name, machine_id)
            if isinstance(machine, Response):
                return machine
            previous = machine.state
            if previous == "suspended":
                self._move(machine, "starting", "start", source="user")
                machine.reached.discard("started")  # a `wait` for started now means "started again"
                _kill_group(machine, signal.SIGCONT)
                self._move(machine, "started", "start")
            elif previous != "started":
                return _error(412, f"machine {machine_id} is {previous}; this emulator resumes suspended machines only",
                              "failed_precondition")
            return _ok({"previous_state": previous, "migrated": False, "new_host": ""})

        @app.get(f"{base}/<machine_id>/wait")
        async def wait_machine(app_name: str, machine_id: str) -> Response:
            machine = find_machine(app_name, machine_id)
            if isinstance(machine, Response):
                return machine
            states = [s for value in request.args.getlist("state") for s in value.split(",") if s] or ["started"]
            unknown = [s for s in states if s not in WAITABLE]
            if unknown:
                return _error(400, f"invalid state {unknown[0]!r}; use one of {', '.join(sorted(WAITABLE))}", "invalid_argument")
            if "stopped" in states and not (request.args.get("instance_id") or request.args.get("version")):
                return _error(400, "instance_id or version is required when waiting for stopped", "invalid_argument")
            timeout_text = request.args.get("timeout", str(MAX_WAIT_S))
            if not timeout_text.isdigit() or int(timeout_text) < 1:
                return _error(400, f"invalid timeout {timeout_text!r}: whole seconds, 1-60", "invalid_argument")
            with trio.move_on_after(min(int(timeout_text), MAX_WAIT_S)):
                while not machine.satisfies(states):
                    if machine.state == "destroyed":
                        return _error(404, f"machine {machine_id} not found", "not_found")
                    await machine.wait_changed()
                reached = next((s for s in states if s in machine.reached), machine.state)
                return _ok({"ok": True, "state": reached})
            return _error(408, f"deadline_exceeded: machine {machine_id} did not reach {','.join(states)}", "deadline_exceeded")

        @app.get(f"{base}/<machine_id>/metadata")
        async def read_metadata(app_name: str, machine_id: str) -> Response:
            machine = find_machine(app_name, machine_id)
            return machine if isinstance(machine, Response) else _ok(machine.metadata)

        @app.post(f"{base}/<machine_id>/lease")
        async def acquire_lease(app_name: str, machine_id: str) -> Response:
            machine = find_machine(app_name, machine_id)
            if isinstance(machine, Response):
                return machine
            if machine.lease_nonce is not None:
                return _error(409, "lease currently held by another client", "conflict")
            machine.lease_nonce = secrets.token_hex(6)
            data = {"nonce": machine.lease_nonce, "expires_at": int(time.time()) + 60, "owner": "", "description": "",
                    "version": machine.instance_id}
            return _ok({"status": "success", "data": data}, status=201)

        @app.delete(f"{base}/<machine_id>/lease")
        async def release_lease(app_name: str, machine_id: str) -> Response:
            machine = find_leased_machine(app_name, machine_id)
            if isinstance(machine, Response):
                return machine
            machine.lease_nonce = None
            return _ok({"ok": True})

        return app

    def _lease_problem(self, machine: EmulatedMachine) -> Response | None:
        if machine.lease_nonce is None:
            return None
        if request.headers.get("fly-machine-lease-nonce") == machine.lease_nonce:
            return None
        return _error(412, "machine is leased: send fly-machine-lease-nonce", "failed_precondition")

    def _create_problem(self, app_name: str, body: Any) -> Response | None:
        if not isinstance(body, dict) or not isinstance(body.get("config"), dict):
            return _error(422, "invalid request: config is required", "invalid_argument")
        config = body["config"]
        image = config.get("image")
        if not isinstance(image, str) or not image:
            return _error(422, "invalid config: image is required", "invalid_argument")
        if image in self.missing_images:
            return _error(422, f"failed to resolve image {image}: manifest unknown", "unknown")
        region = body.get("region")
        if region is not None and region not in REGIONS:
            return _error(422, f"invalid region {region!r}", "invalid_argument")
        env = config.get("env") or {}
        if not isinstance(env, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in env.items()):
            return _error(422, "invalid config: env must map names to strings", "invalid_argument")
        reserved = sorted(name for name in env if name.startswith("FLY_"))
        if reserved:
            return _error(422, f"invalid config: env names may not start with FLY_ ({reserved[0]})", "invalid_argument")
        guest = config.get("guest")
        if guest is not None:
            try:
                problem = guest_problem(str(guest["cpu_kind"]), int(guest["cpus"]), int(guest["memory_mb"]))
            except (KeyError, TypeError, ValueError):
                problem = "guest needs cpu_kind, cpus and memory_mb"
            if problem is not None:
                return _error(422, f"invalid guest: {problem}", "invalid_argument")
        name = body.get("name")
        if name and any(m.name == name and m.app == app_name and m.state != "destroyed" for m in self.machines.values()):
            return _error(422, f"a machine named {name!r} already exists", "name_taken")
        return None


def _exit_status(returncode: int) -> int:
    """A process killed by signal N exits as 128+N, as an init reports it."""
    return 128 - returncode if returncode < 0 else returncode


def _kill_group(machine: EmulatedMachine, signum: signal.Signals) -> None:
    """Signal the machine's process group (its leader's pid), if it ever had a process."""
    if machine.process is not None:
        signal_group(machine.process.pid, signum)


def _hypercorn_config(bind: str) -> HypercornConfig:
    config = HypercornConfig()
    config.bind = [bind]
    config.graceful_timeout = 1.0
    config.accesslog = None
    config.errorlog = logging.getLogger("opendispatch.fly.emulator.server")
    config.keep_alive_timeout = 75.0
    return config


async def serve_emulator(
    emulator: MachinesEmulator,
    bind: str = "127.0.0.1:0",
    *,
    task_status: trio.TaskStatus[str] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve the emulator until cancelled; `started()` reports its base URL (port 0 works)."""
    async with trio.open_nursery() as nursery:
        await nursery.start(emulator.run)
        binds = await nursery.start(partial(serve, emulator.build_app(), _hypercorn_config(bind), mode="asgi"))
        task_status.started(binds[0].replace("://0.0.0.0:", "://127.0.0.1:"))
