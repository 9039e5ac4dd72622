"""The `ChannelSettingsStore` contract, run against the in-memory, SQLite and PostgreSQL stores."""

from __future__ import annotations

from opendispatch.domain.channel_settings import ChannelSettings
from opendispatch.ports.channel_settings_store import ChannelSettingsStore


async def test_every_job_store_keeps_channel_settings(store: ChannelSettingsStore) -> None:
    assert isinstance(store, ChannelSettingsStore)


async def test_a_channel_without_settings_has_empty_ones(store: ChannelSettingsStore) -> None:
    empty = await store.channel_settings("slack:C1")
    assert empty.values == {} and empty.changed_by is None and empty.changed_at is None


async def test_saved_settings_read_back_and_a_save_replaces_them(store: ChannelSettingsStore) -> None:
    first = ChannelSettings().with_value("repo", "acme/api", by="u1", at=10.0).with_value("branch", "develop", by="u1", at=11.0)
    await store.save_channel_settings("slack:C1", first)
    read = await store.channel_settings("slack:C1")
    assert read.values == {"repo": "acme/api", "branch": "develop"}
    assert (read.changed_by, read.changed_at) == ("u1", 11.0)
    second = first.without("branch", by="u2", at=12.5)
    await store.save_channel_settings("slack:C1", second)
    read = await store.channel_settings("slack:C1")
    assert read.values == {"repo": "acme/api"} and (read.changed_by, read.changed_at) == ("u2", 12.5)


async def test_settings_are_per_channel_and_platform(store: ChannelSettingsStore) -> None:
    await store.save_channel_settings("slack:C1", ChannelSettings().with_value("agent", "opencode", by="u1", at=1.0))
    await store.save_channel_settings("discord:C1", ChannelSettings().with_value("agent", "shell", by="u1", at=2.0))
    assert (await store.channel_settings("slack:C1")).values == {"agent": "opencode"}
    assert (await store.channel_settings("discord:C1")).values == {"agent": "shell"}
    assert (await store.channel_settings("slack:C2")).values == {}


async def test_settings_with_every_key_unset_are_stored_empty(store: ChannelSettingsStore) -> None:
    await store.save_channel_settings("slack:C1", ChannelSettings().with_value("model", "opus", by="u1", at=1.0))
    await store.save_channel_settings("slack:C1", ChannelSettings().with_value("model", "opus", by="u1", at=1.0).without("model", by="u1", at=2.0))
    read = await store.channel_settings("slack:C1")
    assert read.values == {} and read.changed_at == 2.0
