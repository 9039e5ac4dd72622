"""Sprites as Fly.io Machines: the Machines API client and a loopback emulator of it.

Names load lazily, so `config.py` can use `wire` (sizing rules, the default URL) without
pulling in httpx or the emulator's web framework.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

_EXPORTS = {
    "FlySettings": "machines",
    "FlySprites": "machines",
    "RetryPolicy": "machines",
    "MachinesEmulator": "emulator",
    "serve_emulator": "emulator",
    "sidecar_program": "sidecar",
    "DEFAULT_API_URL": "wire",
    "Guest": "wire",
    "guest_problem": "wire",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(import_module(f".{_EXPORTS[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
