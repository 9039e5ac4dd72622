"""Each channel's defaults (`/od-config`; the `ChannelSettingsStore` port)."""

from __future__ import annotations

import sqlite3

from ...domain.channel_settings import ChannelSettings
from .codec import converter
from .writer import SqliteWriter


class ChannelSettingsRepository(SqliteWriter):
    """The `ChannelSettingsStore` port: a row per channel (a channel never set has the defaults)."""

    async def channel_settings(self, channel: str) -> ChannelSettings:
        def select(db: sqlite3.Connection) -> str | None:
            rows = db.execute("SELECT body FROM channel_settings WHERE channel = ?", (channel,)).fetchall()
            return str(rows[0][0]) if rows else None

        body = await self._read(select)
        return ChannelSettings() if body is None else converter.loads(body, ChannelSettings)

    async def save_channel_settings(self, channel: str, settings: ChannelSettings) -> None:
        body = converter.dumps(settings)

        def upsert(db: sqlite3.Connection) -> None:
            db.execute(
                "INSERT INTO channel_settings (channel, body) VALUES (?, ?)"
                " ON CONFLICT (channel) DO UPDATE SET body = excluded.body",
                (channel, body),
            )

        await self._write(upsert)
