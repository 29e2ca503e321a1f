"""Read-through caching of ``get`` by id: served from Redis, invalidated by every write path after commit,
untouched by rolled-back writes, and bypassed inside transactions."""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid
from decimal import Decimal

import pytest

from datalayer import NotFoundError, transaction
from datalayer.cache import Cache
from tests.cache_support import GUARD
from tests.models import Author, CachedNote




async def prime(ctx, pk):
    """Read a row once the write guard has passed, so the read fills the cache."""
    await asyncio.sleep(GUARD * 2)
    return await ctx.cached_notes.get(pk)


async def note(ctx, **values):
    data = {"title": "first", "amount": Decimal("12.5000"), "meta": {"tags": ["a"]},
            "due_at": dt.datetime(2030, 1, 2, 3, 4, 5, 678000, tzinfo=dt.timezone.utc), **values}
    return await ctx.cached_notes.create(data)


async def change_behind_the_cache(pk, title):
    """Change the row without going through the manager, so only a cache hit can still show the old title."""
    await CachedNote.filter(pk=pk).update(title=title)


async def test_get_is_served_from_the_cache_after_the_first_read(cached_ctx):
    created = await note(cached_ctx)
    first = await prime(cached_ctx, created.id)
    await change_behind_the_cache(created.id, "changed underneath")
    again = await cached_ctx.cached_notes.get(created.id)
    assert again.title == "first" == first.title
    assert cached_ctx.cache.stats()["hits"] >= 1


async def test_cached_row_round_trips_decimals_json_datetimes_and_foreign_keys(cached_ctx):
    author = await cached_ctx.authors.create({"name": "Ann", "email": f"{uuid.uuid4().hex}@x.io"})
    created = await note(cached_ctx, author_id=author.id)
    fresh = await CachedNote.get(pk=created.id)
    await prime(cached_ctx, created.id)
    cached = await cached_ctx.cached_notes.get(created.id)
    for name in ("id", "title", "amount", "meta", "due_at", "author_id", "created_at", "updated_at", "version"):
        assert getattr(cached, name) == getattr(fresh, name), name
    assert str(cached.amount) == "12.5000"
    assert (await cached.author).name == "Ann"


async def test_missing_and_deleted_rows_raise_not_found_and_are_not_cached(cached_ctx):
    with pytest.raises(NotFoundError):
        await cached_ctx.cached_notes.get(uuid.uuid4())
    assert await cached_ctx.cached_notes.find(uuid.uuid4()) is None


async def _update(ctx, pk):
    await ctx.cached_notes.update(pk, {"title": "updated"})


async def _update_many(ctx, pk):
    assert await ctx.cached_notes.update_many({"id": pk}, {"title": "updated"}) == 1


async def _upsert(ctx, pk):
    await ctx.cached_notes.upsert({"title": "updated"}, id=pk)


@pytest.mark.parametrize("write", [_update, _update_many, _upsert], ids=["update", "update_many", "upsert"])
async def test_every_update_path_invalidates_the_cached_row(cached_ctx, write):
    created = await note(cached_ctx)
    await prime(cached_ctx, created.id)
    await write(cached_ctx, created.id)
    assert (await cached_ctx.cached_notes.get(created.id)).title == "updated"


async def test_soft_delete_hard_delete_and_restore_invalidate_the_cached_row(cached_ctx):
    created = await note(cached_ctx)
    await prime(cached_ctx, created.id)
    await cached_ctx.cached_notes.delete(created.id)
    with pytest.raises(NotFoundError):
        await prime(cached_ctx, created.id)
    await cached_ctx.cached_notes.restore(created.id)
    assert (await cached_ctx.cached_notes.get(created.id)).deleted_at is None
    await cached_ctx.cached_notes.delete(created.id, hard=True)
    with pytest.raises(NotFoundError):
        await prime(cached_ctx, created.id)


async def test_bulk_create_reports_new_ids_so_no_stale_entry_can_hide_them(cached_ctx):
    rows = await cached_ctx.cached_notes.bulk_create([{"title": f"n{i}"} for i in range(3)])
    got = [await cached_ctx.cached_notes.get(row.id) for row in rows]
    assert [g.title for g in got] == ["n0", "n1", "n2"]


async def test_a_rolled_back_update_leaves_cache_and_database_agreeing(cached_ctx):
    created = await note(cached_ctx)
    await prime(cached_ctx, created.id)
    with pytest.raises(RuntimeError):
        async with transaction():
            await cached_ctx.cached_notes.update(created.id, {"title": "never committed"})
            inside = await cached_ctx.cached_notes.get(created.id)
            assert inside.title == "never committed"  # the transaction sees its own write, not the cache
            raise RuntimeError("abort")
    assert (await cached_ctx.cached_notes.get(created.id)).title == "first"
    assert (await CachedNote.get(pk=created.id)).title == "first"


async def test_a_committed_transaction_invalidates_after_commit(cached_ctx):
    created = await note(cached_ctx)
    await prime(cached_ctx, created.id)
    async with transaction():
        await cached_ctx.cached_notes.update(created.id, {"title": "committed"})
        await cached_ctx.cached_notes.update(created.id, {"amount": Decimal("1.0000")})
    after = await cached_ctx.cached_notes.get(created.id)
    assert (after.title, after.amount) == ("committed", Decimal("1.0000"))


async def test_models_without_opt_in_are_not_cached(cached_ctx):
    author = await cached_ctx.authors.create({"name": "Ann", "email": f"{uuid.uuid4().hex}@x.io"})
    await cached_ctx.authors.get(author.id)
    await Author.filter(pk=author.id).update(name="changed")
    assert (await cached_ctx.authors.get(author.id)).name == "changed"


async def test_opt_in_by_model_name_in_the_cache_config(cached_ctx):
    named = Cache(cached_ctx.cache.backend, namespace=cached_ctx.cache.namespace,
                  read_through_models={"Author"}, invalidation_guard=GUARD)
    previous = cached_ctx.use_cache(named)
    try:
        author = await cached_ctx.authors.create({"name": "Ann", "email": f"{uuid.uuid4().hex}@x.io"})
        await asyncio.sleep(GUARD * 2)
        await cached_ctx.authors.get(author.id)
        await Author.filter(pk=author.id).update(name="changed underneath")
        assert (await cached_ctx.authors.get(author.id)).name == "Ann"
        await cached_ctx.authors.update(author.id, {"name": "Bea"})
        assert (await cached_ctx.authors.get(author.id)).name == "Bea"
    finally:
        cached_ctx.use_cache(previous)
    await Author.filter(pk=author.id).update(name="changed again")
    assert (await cached_ctx.authors.get(author.id)).name == "changed again"  # switched off again


async def test_users_configurations_templates_and_endpoint_configs_are_read_through_by_default(ctx):
    for model_name in ("User", "Configuration", "CharacterTemplate", "EndpointConfig"):
        manager = next(m for m in ctx.managers().values() if m.model.__name__ == model_name)
        assert manager.read_through.enabled, model_name
    installed = ctx.authors.__dict__.get("read_through")
    assert installed is None or not installed.enabled


async def test_forgetting_cached_rows_drops_what_a_restore_or_reset_wrote_around(cached_ctx):
    from datalayer.cache.read_through import forget_cached_rows

    created = await note(cached_ctx)
    await prime(cached_ctx, created.id)
    await change_behind_the_cache(created.id, "restored from backup")
    assert (await cached_ctx.cached_notes.get(created.id)).title == "first"  # stale until told
    assert await forget_cached_rows(cached_ctx.cache) >= 1
    assert (await cached_ctx.cached_notes.get(created.id)).title == "restored from backup"
