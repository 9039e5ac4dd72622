"""A package whose heavy module is imported only when one of its names is first used.

The chat adapters' packages export their chat classes, which import the adapter's extra
(slack_sdk, discord.py, PyJWT); their settings need only the domain and this layer. With the
chat module loaded lazily, reading an adapter's settings declarations (config, doctor) works
whether or not the extra is installed, and importing the chat module is where a missing extra
shows (validation and bootstrap say which to install).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Collection
from typing import Any


def lazy_exports(package: str, module: str, names: Collection[str]) -> Callable[[str], Any]:
    """A module `__getattr__` for `package` that imports `package.module` the first time one of
    `names` is asked for (PEP 562): `__getattr__ = lazy_exports(__name__, "chat", {...})`."""
    lazy = frozenset(names)

    def __getattr__(name: str) -> Any:
        if name in lazy:
            return getattr(importlib.import_module(f"{package}.{module}"), name)
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    return __getattr__
