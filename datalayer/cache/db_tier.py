"""The persistent cache tier: ``CacheEntry`` rows with an expiry, read when Redis has nothing.

Values go in as tagged JSON (``serialization.to_jsonable``) wrapped in ``{"v": ...}`` (Tortoise would parse a
bare string as JSON text), so they decode exactly like Redis values.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from tortoise import timezone
from tortoise.exceptions import IntegrityError

from datalayer.cache.serialization import from_jsonable, to_jsonable
from datalayer.core.cache_entry import CacheEntry
from datalayer.translate import translated


class PersistentCache:
    """Get/set/delete on ``CacheEntry`` by full (namespaced) key. Database errors raise ``DataLayerError``."""

    async def get(self, key: str) -> tuple[bool, Any, float | None]:
        """``(found, value, seconds_left)``; an expired row counts as absent."""
        with translated("CacheEntry"):
            entry = await CacheEntry.filter(key=key).first()
        if entry is None:
            return False, None, None
        if entry.expires_at is None:
            return True, from_jsonable(entry.value["v"]), None
        left = (entry.expires_at - timezone.now()).total_seconds()
        if left <= 0:
            return False, None, None
        return True, from_jsonable(entry.value["v"]), left

    async def set(self, key: str, value: Any, ttl_s: float | None) -> None:
        """Insert or replace the row for ``key``."""
        expires = timezone.now() + dt.timedelta(seconds=ttl_s) if ttl_s is not None else None
        stored = {"v": to_jsonable(value)}
        with translated("CacheEntry"):
            for _ in range(2):  # a concurrent insert of the same key turns into an update
                if await CacheEntry.filter(key=key).update(value=stored, expires_at=expires, updated_at=timezone.now()):
                    return
                try:
                    await CacheEntry.create(key=key, value=stored, expires_at=expires)
                    return
                except IntegrityError:
                    continue

    async def delete(self, keys: list[str]) -> int:
        with translated("CacheEntry"):
            return await CacheEntry.filter(key__in=keys).delete()

    async def delete_prefix(self, prefix: str) -> int:
        with translated("CacheEntry"):
            return await CacheEntry.filter(key__startswith=prefix).delete()

    async def cleanup_expired(self) -> int:
        """Delete rows whose expiry has passed; returns how many. Run it from a scheduler or the CLI."""
        with translated("CacheEntry"):
            return await CacheEntry.filter(expires_at__lte=timezone.now()).delete()
