"""Where channels' defaults (`/od-config`) are kept, so they survive a restart.

The job stores implement this too (one database, one file): `MemoryJobStore` and
`SqliteJobStore`.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from ..domain.channel_settings import ChannelSettings


@runtime_checkable
class ChannelSettingsStore(Protocol):
    async def channel_settings(self, channel: str) -> ChannelSettings:
        """The channel's settings (empty ones when it has none). `channel` is
        `platform:channel id`, as `channel_key` makes it."""
        ...

    async def save_channel_settings(self, channel: str, settings: ChannelSettings) -> None:
        """Replace the channel's settings."""
        ...
