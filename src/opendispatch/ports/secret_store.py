"""Where the dispatcher keeps its own small secrets (the job-token key, its instance id).

Its own port, not a `JobStore` method: what needs the key (bootstrap's token issuer) needs
nothing else of the job store, and a deployment may keep the key elsewhere than the jobs.
The job stores implement it too (one database, one file).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol, runtime_checkable


@runtime_checkable
class SecretStore(Protocol):
    async def secret(self, name: str, create: Callable[[], bytes]) -> bytes:
        """A named server secret, created with `create()` and kept on first use (the first
        value wins when two ask at once)."""
        ...
