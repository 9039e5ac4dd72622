"""The Machines API's JSON, in one place, shared by the client and the emulator.

Shapes follow docs/reference (shared/reference/fly-machines.md §2-§8). The exit event inside
a machine event is not in the public docs: its shape is fly-go's `machine_types.go`
(`MachineRequest.exit_event` or `MachineRequest.MonitorEvent.exit_event`, `exit_code`
omitted when 0), which is what flyd writes and flyctl reads.

What we read of a Machine object is described as attrs classes shaped as the JSON (attributes
named as its keys) and read by this dialect's cattrs converter (`support.wire`); a Machine we
cannot read is a `SpriteError` that says which field was wrong, never a KeyError from deep in
the client.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import attrs

from ...domain.errors import SpriteError
from ...support.wire import WireError, hooked, make_converter, parser, string_map, strict_str, whole_number

API_PREFIX = "/v1"
DEFAULT_API_URL = "https://api.machines.dev"

#: Metadata keys that mark a machine as created by an Open-Dispatch instance for a job.
META_DISPATCHER = "od_dispatcher"
META_JOB = "od_job"

#: Longest single `wait` the API honours (fly-go clamps to 1..60 because of the proxy).
MAX_WAIT_S = 60

CPU_KINDS = ("shared", "performance")


def machines_path(app: str, *rest: str) -> str:
    return "/".join([f"{API_PREFIX}/apps/{app}/machines", *rest])


@attrs.frozen
class Guest:
    cpu_kind: str = "shared"
    cpus: int = 1
    memory_mb: int = 1024

    def as_json(self) -> dict[str, Any]:
        return {"cpu_kind": self.cpu_kind, "cpus": self.cpus, "memory_mb": self.memory_mb}


def guest_problem(cpu_kind: str, cpus: int, memory_mb: int) -> str | None:
    """Fly's sizing rules (reference §3); None when the guest is valid."""
    if cpu_kind not in CPU_KINDS:
        return f"cpu_kind must be shared or performance, not {cpu_kind!r}"
    if cpus < 1 or cpus > 16:
        return f"cpus must be between 1 and 16, not {cpus}"
    if memory_mb % 256:
        return f"memory_mb must be a multiple of 256, not {memory_mb}"
    low, high = (256, 2048) if cpu_kind == "shared" else (2048, 8192)
    if not low * cpus <= memory_mb <= high * cpus:
        return f"{cpu_kind} guests with {cpus} CPU(s) take {low * cpus}-{high * cpus} MB of memory, not {memory_mb}"
    if cpu_kind == "performance" and memory_mb % 2048:
        return f"performance guests take memory in multiples of 2048 MB, not {memory_mb}"
    return None


def create_body(
    *,
    name: str,
    region: str,
    image: str,
    env: Mapping[str, str],
    guest: Guest,
    metadata: Mapping[str, str],
) -> dict[str, Any]:
    """A one-shot sprite: destroys itself when the sidecar exits and is never restarted."""
    return {
        "name": name,
        "region": region,
        "config": {
            "image": image,
            "env": dict(env),
            "guest": guest.as_json(),
            "auto_destroy": True,
            "restart": {"policy": "no"},
            "metadata": dict(metadata),
        },
    }


def _text(value: object, _: object) -> str:
    """A string; null (or absent) is ""."""
    return "" if value is None else strict_str(value)


_TEXT = hooked(_text)


@attrs.define
class _ExitEvent:
    exit_code: int = attrs.field(default=0, metadata=hooked(lambda value, _: 0 if value is None else whole_number(value)))


def _exit_event(value: object, _: object) -> _ExitEvent | None:
    """An exit event; an empty one (`{}`) counts as none, as flyctl reads it."""
    return _CONVERTER.structure(value, _ExitEvent) if value else None


_EXIT_EVENT = hooked(_exit_event)


@attrs.define
class _MonitorEvent:
    exit_event: _ExitEvent | None = attrs.field(default=None, metadata=_EXIT_EVENT)


@attrs.define
class _EventRequest:
    MonitorEvent: _MonitorEvent | None = None
    exit_event: _ExitEvent | None = attrs.field(default=None, metadata=_EXIT_EVENT)


@attrs.define
class _Event:
    request: _EventRequest | None = None


@attrs.define
class _Config:
    metadata: dict[str, str] = attrs.field(factory=dict, metadata=hooked(string_map))


@attrs.define
class _Machine:
    id: str
    name: str = attrs.field(default="", metadata=_TEXT)
    state: str = attrs.field(default="", metadata=_TEXT)
    instance_id: str = attrs.field(default="", metadata=_TEXT)
    config: _Config | None = None
    events: list[_Event] | None = None


_CONVERTER = make_converter()
_read_machine = parser(_CONVERTER, _Machine, what="the machine")
_read_events = parser(_CONVERTER, list[_Event], what="the events")


@attrs.frozen
class MachineView:
    """What the client reads from a Machine object; everything else is ignored."""

    id: str
    name: str
    state: str
    instance_id: str
    metadata: Mapping[str, str]
    exit_code: int | None

    @classmethod
    def from_json(cls, body: object) -> MachineView:
        """A Machine object as the API answers it; SpriteError when it is not one."""
        try:
            machine = _read_machine(body)
        except WireError as error:
            raise SpriteError(f"the Fly Machines API answered a machine we cannot read: {error}") from None
        return cls(
            id=machine.id,
            name=machine.name,
            state=machine.state,
            instance_id=machine.instance_id,
            metadata=machine.config.metadata if machine.config else {},
            exit_code=_exit_code(machine.events or ()),
        )


def exit_code_of(events: object) -> int | None:
    """The newest exit event's code in a Machine's `events` (JSON); None when it never exited."""
    try:
        return _exit_code(_read_events(events))
    except WireError as error:
        raise SpriteError(f"the Fly Machines API answered events we cannot read: {error}") from None


def _exit_code(events: Sequence[_Event]) -> int | None:
    """The newest exit event's code (events are newest first); None when it never exited."""
    for event in events:
        request = event.request
        if request is None:
            continue
        monitor = request.MonitorEvent
        exit_event = (monitor.exit_event if monitor else None) or request.exit_event
        if exit_event is not None:
            return exit_event.exit_code
    return None


def error_text(body: object, raw: str) -> str:
    """Fly answers `{"error": ..., "status": ...}` or `{"message": ...}`; parse leniently."""
    if isinstance(body, Mapping):
        for key in ("message", "error"):
            value = body.get(key)
            if isinstance(value, str) and value:
                return value
    return raw.strip()[:500]


def error_code(body: object) -> str | None:
    if isinstance(body, Mapping):
        status = body.get("status")
        return status if isinstance(status, str) else None
    return None
