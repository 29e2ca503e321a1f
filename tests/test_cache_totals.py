"""Totals of unfiltered listings on read-through managers come from the cache, and are never stale for a
write through datalayer: every write that adds or removes rows drops them, updates leave them alone.

``find_many(...).total`` and ``count()`` with no filter and no search count the whole table (an O(rows)
``COUNT(*)``), and they only change when rows come or go: create, bulk create, delete (soft or hard),
restore and their ``_many`` forms. Those writes drop the cached totals after commit, as they drop the rows.
"""

from __future__ import annotations

import asyncio

import pytest

from datalayer import ModelManager
from datalayer.cache.read_through import apply_read_through
from tests.cache_support import GUARD, redis_cache
from tests.models import CachedNote


class NearNotes(ModelManager[CachedNote]):
    """``CachedNote`` read through another cache, as another process would (no ``model``: not registered)."""

    cached = True


async def counted(rows: str = "live") -> int:
    """The truth, from the database."""
    if rows == "live":
        return await CachedNote.filter(deleted_at__isnull=True).count()
    if rows == "deleted":
        return await CachedNote.all_objects.filter(deleted_at__isnull=False).count()
    return await CachedNote.all_objects.all().count()


async def totals(notes) -> dict[str, int]:
    """What a user sees: the page totals and ``count()`` of the three unfiltered listings."""
    live = await notes.find_many(limit=5)
    deleted = await notes.find_many(limit=5, only_deleted=True)
    every = await notes.find_many(limit=5, include_deleted=True)
    assert await notes.count() == live.total
    assert await notes.count(only_deleted=True) == deleted.total
    assert await notes.count(include_deleted=True) == every.total
    return {"live": live.total, "deleted": deleted.total, "all": every.total}


async def truth() -> dict[str, int]:
    return {rows: await counted(rows) for rows in ("live", "deleted", "all")}


async def test_an_unfiltered_total_is_served_from_the_cache(cached_ctx):
    notes = cached_ctx.cached_notes
    await notes.bulk_create([{"title": f"n{i}"} for i in range(3)])
    await asyncio.sleep(GUARD * 2)  # past the guard of the write: loads may fill the cache again
    assert (await notes.find_many()).total == 3
    hits = cached_ctx.cache.stats()["hits"]
    await CachedNote.create(title="written around datalayer")  # not through a manager: the cache cannot know
    assert (await notes.find_many()).total == 3
    assert await notes.count() == 3
    assert cached_ctx.cache.stats()["hits"] >= hits + 2
    assert (await notes.find_many({"title": "written around datalayer"})).total == 1  # filtered: always counted


async def test_every_write_that_adds_or_removes_rows_updates_the_totals_at_once(cached_ctx):
    notes = cached_ctx.cached_notes
    assert await totals(notes) == await truth() == {"live": 0, "deleted": 0, "all": 0}
    steps = {}
    first = await notes.create({"title": "a"})
    steps["create"] = await totals(notes)
    rows = await notes.bulk_create([{"title": f"b{i}"} for i in range(4)])
    steps["bulk_create"] = await totals(notes)
    await notes.bulk_create(({"title": f"c{i}"} for i in range(2)), returning="none")
    steps["bulk_create returning none"] = await totals(notes)
    await notes.delete(first.id)
    steps["soft delete"] = await totals(notes)
    await notes.restore(first.id)
    steps["restore"] = await totals(notes)
    await notes.delete(rows[0].id, hard=True)
    steps["hard delete"] = await totals(notes)
    await notes.delete_many({"title__startswith": "b"})
    steps["delete_many"] = await totals(notes)
    await notes.restore_many({"title__startswith": "b"})
    steps["restore_many"] = await totals(notes)
    await notes.delete_many({"title__startswith": "c"}, hard=True)
    steps["hard delete_many"] = await totals(notes)
    assert steps == {
        "create": {"live": 1, "deleted": 0, "all": 1},
        "bulk_create": {"live": 5, "deleted": 0, "all": 5},
        "bulk_create returning none": {"live": 7, "deleted": 0, "all": 7},
        "soft delete": {"live": 6, "deleted": 1, "all": 7},
        "restore": {"live": 7, "deleted": 0, "all": 7},
        "hard delete": {"live": 6, "deleted": 0, "all": 6},
        "delete_many": {"live": 3, "deleted": 3, "all": 6},
        "restore_many": {"live": 6, "deleted": 0, "all": 6},
        "hard delete_many": {"live": 4, "deleted": 0, "all": 4},
    }
    assert await totals(notes) == await truth()


async def test_updates_keep_the_cached_total(cached_ctx):
    notes = cached_ctx.cached_notes
    row = await notes.create({"title": "a"})
    await asyncio.sleep(GUARD * 2)
    assert (await notes.find_many()).total == 1  # cached now
    await notes.update(row.id, {"title": "b"})
    await notes.update_many({"title": "b"}, {"title": "c"})
    await CachedNote.create(title="written around datalayer")  # shows whether the total is still the cached one
    assert (await notes.find_many()).total == 1
    assert await notes.count() == 1


async def test_a_rolled_back_create_leaves_the_total_and_inside_a_transaction_it_is_counted(cached_ctx):
    notes = cached_ctx.cached_notes
    await notes.create({"title": "a"})
    assert (await notes.find_many()).total == 1
    with pytest.raises(RuntimeError):
        async with cached_ctx.transaction():
            await notes.create({"title": "b"})
            assert (await notes.find_many()).total == 2  # its own write, uncommitted: counted in the transaction
            assert await notes.count() == 2
            raise RuntimeError("roll back")
    assert (await notes.find_many()).total == await counted() == 1


async def test_a_create_in_another_process_reaches_this_process_s_cached_total(cached_ctx):
    """This process keeps the total in its near cache; another one (own connections, same namespace) creates
    a row: Redis' invalidation message drops the copy here."""
    near = redis_cache(cached_ctx.cache.namespace, near=True, heartbeat_s=0.1, timeout_s=0.5,
                       invalidation_guard=GUARD)
    here = NearNotes(CachedNote)
    apply_read_through(here, near)
    try:
        await cached_ctx.cached_notes.create({"title": "a"})
        await asyncio.sleep(GUARD * 2)
        deadline = asyncio.get_running_loop().time() + 5
        while near.near.describe()["entries"] == 0:  # the first read fills Redis, a later one this process
            assert asyncio.get_running_loop().time() < deadline, near.stats()
            assert (await here.find_many()).total == 1
            await asyncio.sleep(0.01)
        await cached_ctx.cached_notes.create({"title": "b"})  # through the other cache
        deadline = asyncio.get_running_loop().time() + 5
        while (await here.find_many()).total != 2:
            assert asyncio.get_running_loop().time() < deadline, "the other process's create never arrived"
            await asyncio.sleep(0.01)
    finally:
        await near.invalidate_prefix("")
        await near.close()


async def test_an_in_process_cache_always_counts(ctx):
    """Without Redis the cache lives in one process: a write by another one (a CLI command, a worker) could not
    drop its totals, so they are counted every time."""
    assert not ctx.cache.backend.shared
    notes = ctx.cached_notes
    await notes.create({"title": "a"})
    assert (await notes.find_many()).total == 1
    await CachedNote.create(title="written by another process")
    assert (await notes.find_many()).total == await notes.count() == 2
