"""Sprites as Fly.io Machines: the Machines API client.

Names load lazily, so `config.py` can use `wire` (sizing rules, the default URL) without
pulling in httpx. The loopback emulator of the Machines API is `opendispatch.testing.fly_emulator`.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

_EXPORTS = {
    "FlySettings": "machines",
    "FlySprites": "machines",
    "RetryPolicy": "machines",
    "DEFAULT_API_URL": "wire",
    "Guest": "wire",
    "guest_problem": "wire",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(import_module(f".{_EXPORTS[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
