"""Redis killed, paused or absent: no exception reaches the caller, reads stay correct from the database,
every call returns within the bound, the circuit opens, and the cache recovers by itself."""

from __future__ import annotations

import asyncio
import time
import uuid
from decimal import Decimal

import pytest

from datalayer.cache import CircuitBreaker
from tests.cache_support import free_port, redis_cache

TIMEOUT_S = 0.05
BOUND_S = 0.5  # generous for a loaded 2-core machine: 10x the per-call timeout
RESET_S = 0.3


@pytest.fixture
async def down_ctx(ctx, private_redis):
    """``ctx`` whose cache lives on the private Redis, with a quick circuit breaker."""
    cache = redis_cache(url=private_redis.url, timeout_s=TIMEOUT_S, failure_threshold=3, reset_after_s=RESET_S,
                        invalidation_guard=0.05)
    previous = ctx.use_cache(cache)
    yield ctx
    ctx.use_cache(previous)
    await cache.close()


async def timed(call):
    started = time.perf_counter()
    result = await call
    elapsed = time.perf_counter() - started
    assert elapsed < BOUND_S, f"cache call took {elapsed * 1000:.0f} ms with Redis down"
    return result


async def wait_until_recovered(cache, deadline_s=10.0):
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        if (await cache.health())["status"] == "healthy":
            return
        await asyncio.sleep(0.05)
    pytest.fail(f"cache did not recover within {deadline_s}s: {cache.stats()}")


async def test_redis_killed_mid_test_falls_back_to_database_and_recovers_after_restart(down_ctx, private_redis):
    ctx, cache = down_ctx, down_ctx.cache
    created = await ctx.cached_notes.create({"title": "v1", "amount": Decimal("1.5000")})
    await asyncio.sleep(0.1)
    await ctx.cached_notes.get(created.id)
    assert cache.stats()["sets"] >= 1

    private_redis.kill()

    for round_ in range(8):  # reads and writes keep working, each within the bound
        await timed(ctx.cached_notes.update(created.id, {"title": f"v{round_ + 2}"}))
        got = await timed(ctx.cached_notes.get(created.id))
        assert got.title == f"v{round_ + 2}"
        assert await timed(cache.set("k", {"x": 1})) is False
        assert await timed(cache.get("k", "fallback")) == "fallback"
        assert await timed(cache.get_or_set("computed", _fresh)) == "fresh"
        await timed(cache.delete("k"))
        await timed(cache.invalidate_prefix("api:"))
    stats = cache.stats()
    assert stats["errors"] > 0 and stats["circuit"]["state"] in ("open", "half_open")
    assert stats["circuit"]["times_opened"] >= 1
    health = await timed(cache.health())
    assert health["status"] == "degraded" and health["error"]

    private_redis.start()  # same port, empty data set
    await wait_until_recovered(cache)
    await ctx.cached_notes.update(created.id, {"title": "after restart"})
    await asyncio.sleep(0.1)
    assert (await ctx.cached_notes.get(created.id)).title == "after restart"
    hits = cache.stats()["hits"]
    assert (await ctx.cached_notes.get(created.id)).title == "after restart"
    assert cache.stats()["hits"] == hits + 1  # served from Redis again
    assert cache.stats()["circuit"]["state"] == "closed"


async def _fresh():
    return "fresh"


async def test_paused_redis_bounds_every_call_and_replays_missed_invalidations(down_ctx, private_redis):
    """A Redis that stops answering (SIGSTOP) keeps its data: the invalidation missed meanwhile is replayed
    when it answers again, so the committed write is never hidden behind the old cached row."""
    ctx, cache = down_ctx, down_ctx.cache
    created = await ctx.cached_notes.create({"title": "before"})
    await asyncio.sleep(0.1)
    await ctx.cached_notes.get(created.id)

    private_redis.pause()
    await timed(ctx.cached_notes.update(created.id, {"title": "during outage"}))
    assert (await timed(ctx.cached_notes.get(created.id))).title == "during outage"
    assert cache.stats()["pending_invalidations"] >= 1
    private_redis.resume()

    await wait_until_recovered(cache)
    await asyncio.sleep(0.1)
    assert (await ctx.cached_notes.get(created.id)).title == "during outage"
    assert cache.stats()["pending_invalidations"] == 0


async def test_unreachable_redis_never_raises_and_loaders_still_run():
    cache = redis_cache(url=f"redis://127.0.0.1:{free_port()}/0", timeout_s=TIMEOUT_S)
    try:
        calls = 0

        async def loader():
            nonlocal calls
            calls += 1
            return {"n": calls}

        for _ in range(5):
            assert await timed(cache.get_or_set("x", loader)) == {"n": calls}
        assert calls == 5
        assert await timed(cache.set("y", 1)) is False
        assert await timed(cache.get_cached_user_data(uuid.uuid4())) is None
        await timed(cache.invalidate_user_cache(uuid.uuid4()))
        assert (await timed(cache.health()))["status"] == "degraded"
        assert "password" not in str(cache.stats())
    finally:
        await cache.close()


def test_circuit_opens_after_repeated_failures_and_half_opens_by_itself():
    breaker = CircuitBreaker(failure_threshold=2, reset_after_s=0.05)
    breaker.failed("boom")
    assert breaker.state == "closed" and breaker.allow()
    breaker.failed("boom")
    assert breaker.state == "open" and not breaker.allow()
    time.sleep(0.08)
    assert breaker.state == "half_open"
    assert breaker.allow() and not breaker.allow()  # one probe at a time
    breaker.failed("still down")
    assert breaker.state == "open"
    time.sleep(0.08)
    assert breaker.allow()
    breaker.succeeded()
    assert breaker.state == "closed" and breaker.allow()
