"""A pool acquire never waits forever: it times out with PoolExhaustedError naming the pool size, and the
pool serves again once connections come back. Pool figures describe what is really held."""

from __future__ import annotations

import asyncio

import pytest
import pytest_asyncio

from datalayer import PoolExhaustedError, close_context, get_context
from tests.conftest import TEST_MODELS, _empty_tables, make_settings
from tests.models import Article


@pytest_asyncio.fixture
async def small_pool(backend):
    """The process context reopened on this backend with at most 2 connections and a 300 ms acquire wait."""
    await close_context()
    context = await get_context(
        settings=make_settings(backend.url, DB_MIN_CONNECTIONS=1, DB_MAX_CONNECTIONS=2, DB_POOL_TIMEOUT_MS=300),
        models=TEST_MODELS, migrate=True,
    )
    await _empty_tables(context)
    yield context
    await close_context()  # the next `ctx` fixture reopens with the suite's settings


async def _hold_connection(ctx, holding: asyncio.Event, release: asyncio.Event) -> None:
    async with ctx.transaction():
        await ctx.manager(Article).count()
        holding.set()
        await release.wait()


async def _until(condition, what: str) -> None:
    for _ in range(500):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"never reached: {what}")


async def test_busy_pool_times_out_with_its_size_then_recovers(small_pool, backend):
    ctx = small_pool
    capacity = 2 if backend.is_postgres else 1
    release = asyncio.Event()
    held = [asyncio.Event() for _ in range(capacity)]
    holders = [asyncio.create_task(_hold_connection(ctx, event, release)) for event in held]
    for event in held:
        await event.wait()

    with pytest.raises(PoolExhaustedError) as caught:
        await ctx.manager(Article).count()
    assert "pool exhausted" in str(caught.value)
    assert f"pool size {capacity}" in str(caught.value) and caught.value.pool_size == capacity
    assert ctx.pool_stats().timeouts == 1

    release.set()
    await asyncio.gather(*holders)
    await ctx.manager(Article).create({"title": "after the rush"})
    assert await ctx.manager(Article).count() == 1
    stats = ctx.pool_stats()
    assert (stats.in_use, stats.waiting) == (0, 0)


async def test_many_concurrent_transactions_on_a_small_pool_fail_fast_then_pool_serves_again(small_pool, backend):
    ctx = small_pool
    release = asyncio.Event()

    async def hold() -> str:
        try:
            async with ctx.transaction():
                await ctx.manager(Article).count()
                await release.wait()
        except PoolExhaustedError:
            return "timed out"
        return "done"

    tasks = [asyncio.create_task(hold()) for _ in range(12)]
    capacity = 2 if backend.is_postgres else 1
    await _until(lambda: sum(t.done() for t in tasks) == 12 - capacity, "every task beyond the pool timed out")
    release.set()
    outcomes = await asyncio.gather(*tasks)
    assert outcomes.count("done") == capacity
    assert outcomes.count("timed out") == 12 - capacity

    created = await asyncio.gather(*(ctx.manager(Article).create({"title": f"t{i}"}) for i in range(8)))
    assert len(created) == 8 and await ctx.manager(Article).count() == 8


async def test_pool_stats_count_connections_in_use_and_tasks_waiting(small_pool, backend):
    ctx = small_pool
    await ctx.manager(Article).count()
    idle = ctx.pool_stats()
    assert (idle.engine, idle.in_use, idle.waiting) == (backend.name, 0, 0)
    assert idle.idle == idle.size >= 1
    assert (idle.min, idle.max) == ((1, 2) if backend.is_postgres else (1, 1))
    assert idle.acquire_timeout_ms == 300

    release = asyncio.Event()
    held = [asyncio.Event() for _ in range(idle.max)]
    holders = [asyncio.create_task(_hold_connection(ctx, event, release)) for event in held]
    for event in held:
        await event.wait()
    waiter = asyncio.create_task(ctx.manager(Article).count())
    await _until(lambda: ctx.pool_stats().waiting == 1, "a task waits for a connection")
    busy = ctx.pool_stats()
    assert (busy.size, busy.in_use, busy.idle, busy.waiting) == (idle.max, idle.max, 0, 1)
    assert busy.saturated

    release.set()
    await asyncio.gather(*holders, waiter, return_exceptions=True)
    assert ctx.pool_stats().in_use == 0


@pytest.mark.postgres_only
async def test_a_released_connection_keeps_no_open_transaction_but_skips_the_session_reset(ctx):
    from tortoise.connection import get_connection

    client = get_connection("default")
    async with client.acquire_connection() as raw:
        await raw.execute("SET application_name = 'left-behind'")
        await raw.execute("BEGIN")
        await raw.execute("CREATE TEMP TABLE scratch (n int)")
    # the transaction was rolled back on release (the temp table is gone), and no RESET ALL round trip ran
    for _ in range(ctx.settings.db_max_connections):
        async with client.acquire_connection() as raw:
            assert await raw.fetchval("SELECT to_regclass('pg_temp.scratch')") is None


async def test_reset_on_release_is_a_postgres_only_credential(backend):
    from datalayer.config import connection_config

    credentials = connection_config(backend.settings)["credentials"]
    assert ("reset_on_release" in credentials) is backend.is_postgres
