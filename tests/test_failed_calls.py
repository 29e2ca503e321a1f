"""A failed call never damages the next one, and close_context() always closes.

The PostgreSQL cases alter a column's type from a second session while the pool holds prepared statements,
as a deploy running a migration next to live traffic does.
"""

from __future__ import annotations

import asyncio

import aiosqlite
import asyncpg
import pytest
from tortoise.connection import get_connection

from datalayer import DataLayerError, ValidationError, close_context, get_context
from datalayer.backends import root_client
from datalayer.cache import Cache
from datalayer.cache.memory import MemoryBackend
from tests.conftest import TEST_MODELS

POOL = 4  # transactions held at once to reach (and warm) that many pooled connections


async def _on_many_connections(ctx, work) -> None:
    """Run ``work()`` inside POOL concurrent transactions: each on a connection of its own."""
    started = asyncio.Barrier(POOL)

    async def one() -> None:
        async with ctx.transaction():
            await started.wait()
            await work()

    await asyncio.gather(*(one() for _ in range(POOL)))


async def _alter_views(backend, sql_type: str) -> None:
    other = await asyncpg.connect(backend.url)
    try:
        await other.execute(f"ALTER TABLE test_article ALTER COLUMN views TYPE {sql_type}")
    finally:
        await other.close()


@pytest.fixture
async def altered_later(ctx, backend):
    """Puts the column type back (and reopens a clean context) whatever the test did."""
    yield
    await close_context()
    await _alter_views(backend, "integer")


@pytest.mark.postgres_only
async def test_a_column_type_change_fails_one_call_in_a_transaction_and_never_the_next(ctx, backend, altered_later):
    article = await ctx.articles.create({"title": "before", "views": 1})

    async def warm() -> None:
        await ctx.articles.get(article.id)
        await ctx.articles.find_many()
        await ctx.articles.update(article.id, {"views": 2})

    await _on_many_connections(ctx, warm)
    await _alter_views(backend, "bigint")

    with pytest.raises(DataLayerError, match="altered after this statement was prepared") as caught:
        async with ctx.transaction():
            await ctx.articles.find_many()  # two statements at once on the transaction's connection
    assert "InvalidCachedStatement" not in type(caught.value).__name__  # a library error, not asyncpg's

    # the same task, then every pooled connection: nothing left broken
    assert (await ctx.articles.get(article.id)).title == "before"
    async with ctx.transaction():
        await ctx.articles.update(article.id, {"views": 3})
    await _on_many_connections(ctx, warm)
    assert (await ctx.articles.find_many()).total == 1

    pool = root_client()._pool
    await close_context()
    assert pool._closed  # the pool really closed, and no AttributeError on the way


@pytest.mark.postgres_only
async def test_bulk_create_after_a_column_type_change_fails_at_most_once(ctx, backend, altered_later):
    await _on_many_connections(ctx, lambda: ctx.articles.bulk_create([{"title": "warm"}]))
    await _alter_views(backend, "bigint")
    failures = 0
    for n in range(POOL + 2):
        try:
            await ctx.articles.bulk_create([{"title": f"after {n}", "views": n}])
        except DataLayerError:
            failures += 1  # the COPY prepared with the old type; the caches are cleared for everyone now
    assert failures <= 1
    await _on_many_connections(ctx, lambda: ctx.articles.bulk_create([{"title": "again"}]))


async def _deferred_violation(ctx) -> None:
    """Inside a transaction: a row that breaks a deferred foreign key, so the COMMIT itself fails."""
    await ctx.raw("CREATE TEMP TABLE parent_row (id integer PRIMARY KEY)")
    await ctx.raw("CREATE TEMP TABLE child_row (parent_id integer REFERENCES parent_row (id) "
                  "DEFERRABLE INITIALLY DEFERRED)")
    await ctx.raw("INSERT INTO child_row VALUES (1)")


async def _seen_by_another_session(backend, title: str) -> bool:
    if backend.is_postgres:
        other = await asyncpg.connect(backend.url)
        try:
            return await other.fetchval("SELECT count(*) FROM test_article WHERE title = $1", title) == 1
        finally:
            await other.close()
    path = backend.url.removeprefix("sqlite://")
    async with aiosqlite.connect(path) as other:
        rows = await other.execute_fetchall("SELECT count(*) FROM test_article WHERE title = ?", (title,))
        return rows[0][0] == 1


async def test_a_failed_commit_leaves_no_open_transaction_behind(ctx, backend):
    with pytest.raises(ValidationError):
        async with ctx.transaction():
            await ctx.articles.create({"title": "lost with the commit"})
            await _deferred_violation(ctx)
    assert await ctx.articles.count() == 0
    await ctx.articles.create({"title": "next call"})
    assert await _seen_by_another_session(backend, "next call")  # committed, not inside a stale transaction
    async with ctx.transaction():
        await ctx.articles.create({"title": "next transaction"})
    assert sorted(a.title for a in (await ctx.articles.find_many()).items) == ["next call", "next transaction"]


class _CacheThatFailsToClose(Cache):
    async def close(self) -> None:
        raise RuntimeError("cache close failed")


async def test_close_context_closes_the_database_even_when_a_step_fails(ctx, backend):
    await ctx.articles.count()
    ctx.use_cache(_CacheThatFailsToClose(MemoryBackend()))
    owner = root_client()
    with pytest.raises(DataLayerError, match="cache"):
        await close_context()
    if backend.is_postgres:
        assert owner._pool is None
    else:
        assert owner._connection is None
    reopened = await get_context(settings=backend.settings, models=TEST_MODELS)
    assert await reopened.articles.count() == 0


async def test_a_failed_statement_inside_a_transaction_leaves_the_task_on_the_pool(ctx):
    with pytest.raises(DataLayerError):
        async with ctx.transaction():
            await ctx.raw("SELECT * FROM no_such_table")
    assert get_connection("default") is root_client()  # the task no longer sees the transaction
    assert await ctx.articles.count() == 0
    stats = ctx.pool_stats()
    assert (stats.in_use, stats.waiting) == (0, 0)
