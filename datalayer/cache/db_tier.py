"""The persistent cache tier: ``CacheEntry`` rows with an expiry, read when Redis has nothing.

Values go in as tagged JSON (``serialization.to_jsonable``) wrapped in ``{"v": ...}`` (Tortoise would parse a
bare string as JSON text), so they decode exactly like Redis values. The same table keeps each namespace's
epoch (``epoch``) as a number under a reserved key, raised in place by one statement (``advance``).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from tortoise import timezone
from tortoise.connection import get_connection
from tortoise.exceptions import IntegrityError

from datalayer.cache.serialization import from_jsonable, to_jsonable
from datalayer.config import CONNECTION_NAME
from datalayer.core.cache_entry import CacheEntry
from datalayer.errors import DataLayerError
from datalayer.raw import execute_raw
from datalayer.translate import translated

# max(current + step, floor) in place, returning the new number: one statement, so concurrent callers never
# lose an increment. ``updated_at`` keeps the row's creation time (a statement of its own would be needed to
# write it the way the ORM does on SQLite).
_ADVANCE = {
    "postgres": """UPDATE "{table}" SET value = jsonb_build_object(
                       'v', GREATEST(COALESCE((value->>'v')::bigint, 0) + $2, $3))
                   WHERE key = $1 RETURNING (value->>'v')::bigint AS n""",
    "sqlite": """UPDATE "{table}" SET value = json_object(
                     'v', max(COALESCE(json_extract(value, '$.v'), 0) + $2, $3))
                 WHERE key = $1 RETURNING json_extract(value, '$.v') AS n""",
}


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

    async def read_number(self, key: str) -> int:
        """The number ``advance`` keeps under ``key``; 0 when there is none."""
        with translated("CacheEntry"):
            values: list[Any] = list(await CacheEntry.filter(key=key).limit(1).values_list("value", flat=True))
        return int(values[0]["v"]) if values else 0

    async def advance(self, key: str, *, step: int, floor: int = 0) -> int:
        """Set the number under ``key`` to ``max(current + step, floor)`` (a missing row counts 0), atomically.

        Returns:
            The new number.
        Raises:
            DataLayerError: the database did not answer or refused the statement.
        """
        sql = _ADVANCE[get_connection(CONNECTION_NAME).capabilities.dialect].format(table=CacheEntry._meta.db_table)
        for _ in range(2):  # the first advance of a key creates its row; a concurrent first one updates it
            rows = await execute_raw(sql, [key, step, floor])
            if rows:
                return int(rows[0]["n"])
            with translated("CacheEntry"):
                try:
                    await CacheEntry.create(key=key, value={"v": max(step, floor)})
                    return max(step, floor)
                except IntegrityError:
                    continue
        raise DataLayerError(f"could not advance the cache number {key!r}: its row keeps changing")

    async def cleanup_expired(self) -> int:
        """Delete rows whose expiry has passed; returns how many. Run it from a scheduler or the CLI."""
        with translated("CacheEntry"):
            return await CacheEntry.filter(expires_at__lte=timezone.now()).delete()
