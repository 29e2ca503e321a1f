"""The persistent cache tier: ``CacheEntry`` rows with an expiry, read when Redis has nothing.

Values go in as tagged JSON (``serialization.to_jsonable``) wrapped in ``{"v": ...}`` (Tortoise would parse a
bare string as JSON text), so they decode exactly like Redis values. The same table keeps each namespace's
epoch (``epoch``) as a number under a reserved key, raised in place by one statement (``advance``), with the
Redis run it is used on (``enter_run``). Reads go to the primary, never to a read replica.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from tortoise import timezone
from tortoise.connection import get_connection
from tortoise.exceptions import IntegrityError

from datalayer.backends.replicas import primary_only
from datalayer.cache.serialization import from_jsonable, to_jsonable
from datalayer.config import CONNECTION_NAME
from datalayer.core.cache_entry import CacheEntry
from datalayer.errors import DataLayerError
from datalayer.raw import execute_raw
from datalayer.translate import translated

# max(current + step, floor) in place, returning the new number: one statement, so concurrent callers never
# lose an increment. It clears the recorded Redis run (``_ENTER_RUN``). ``updated_at`` keeps the row's creation time (a statement of its own would be needed to
# write it the way the ORM does on SQLite).
_ADVANCE = {
    "postgres": """UPDATE "{table}" SET value = jsonb_build_object(
                       'v', GREATEST(COALESCE((value->>'v')::bigint, 0) + $2, $3))
                   WHERE key = $1 RETURNING (value->>'v')::bigint AS n""",
    "sqlite": """UPDATE "{table}" SET value = json_object(
                     'v', max(COALESCE(json_extract(value, '$.v'), 0) + $2, $3))
                 WHERE key = $1 RETURNING json_extract(value, '$.v') AS n""",
}


# The number and the Redis run recorded with it (``read_record``).
_READ = {
    "postgres": """SELECT (value->>'v')::bigint AS n, value->>'run' AS run FROM "{table}" WHERE key = $1""",
    "sqlite": """SELECT json_extract(value, '$.v') AS n, json_extract(value, '$.run') AS run FROM "{table}"
                 WHERE key = ?""",
}


# The Redis run (``INFO`` ``run_id``) the namespace's epoch is used on. A different one than recorded (a failover,
# a restart) may lack invalidations the old one confirmed, so the epoch moves on (``v`` + 1); none recorded yet
# (a new row, or the epoch just advanced, which clears it) is only recorded. Returns the row when it changed.
_ENTER_RUN = {
    "postgres": """UPDATE "{table}" SET value = jsonb_build_object(
                       'v', COALESCE((value->>'v')::bigint, 0) + CASE WHEN value->>'run' IS NULL THEN 0 ELSE 1 END,
                       'run', $2::text)
                   WHERE key = $1 AND (value->>'run') IS DISTINCT FROM $2::text
                   RETURNING (value->>'v')::bigint AS n""",
    "sqlite": """UPDATE "{table}" SET value = json_object(
                     'v', COALESCE(json_extract(value, '$.v'), 0)
                          + CASE WHEN json_extract(value, '$.run') IS NULL THEN 0 ELSE 1 END,
                     'run', $2)
                 WHERE key = $1 AND (json_extract(value, '$.run') IS NULL OR json_extract(value, '$.run') != $2)
                 RETURNING json_extract(value, '$.v') AS n""",
}


class PersistentCache:
    """Get/set/delete on ``CacheEntry`` by full (namespaced) key. Database errors raise ``DataLayerError``."""

    async def get(self, key: str) -> tuple[bool, Any, float | None]:
        """``(found, value, seconds_left)``; an expired row counts as absent."""
        with translated("CacheEntry"), primary_only():  # a replica may still hold what was deleted
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
        return (await self.read_record(key))[0]

    async def read_record(self, key: str) -> tuple[int, str | None]:
        """The number under ``key`` (0 when there is none) and the Redis run recorded with it (``enter_run``)."""
        client = get_connection(CONNECTION_NAME)  # read on every cached write: SQL written once, not per call
        sql = _READ[client.capabilities.dialect].format(table=CacheEntry._meta.db_table)
        with translated("CacheEntry"), primary_only():  # a lagging replica would show an older number
            _, rows = await client.execute_query(sql, [key])
        return (int(rows[0]["n"]), rows[0]["run"]) if rows else (0, None)

    async def enter_run(self, key: str, run: str) -> int | None:
        """Record Redis run ``run`` with the number under ``key``, raising the number by one when another run
        was recorded (see ``_ENTER_RUN``), atomically. The number if it changed, ``None`` if not."""
        sql = _ENTER_RUN[get_connection(CONNECTION_NAME).capabilities.dialect].format(table=CacheEntry._meta.db_table)
        for _ in range(2):  # no row yet: create it at 0 with the run; a concurrent creation updates instead
            rows = await execute_raw(sql, [key, run])
            if rows:
                return int(rows[0]["n"])
            with translated("CacheEntry"), primary_only():
                if await CacheEntry.filter(key=key).exists():
                    return None
                try:
                    await CacheEntry.create(key=key, value={"v": 0, "run": run})
                    return None
                except IntegrityError:
                    continue
        raise DataLayerError(f"could not record the Redis run of {key!r}: its row keeps changing")

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
