"""The near cache: read-through rows kept in process, dropped the moment Redis reports a change to them.

A hot row is served without a round trip; a write through this cache is seen at once, a write through any
other client as soon as Redis' invalidation message arrives; and while the invalidation link is down or
Redis does not answer, nothing is served from process memory.
"""

from __future__ import annotations

import asyncio
import time

import pytest
import redis

from datalayer.cache.near import MISS, NearCache
from tests.cache_support import raw_redis, redis_cache, require_redis
from tests.models import CachedNote

GUARD = 0.05
HEARTBEAT_S = 0.1


@pytest.fixture
async def near_ctx(ctx):
    require_redis()
    cache = redis_cache(near=True, heartbeat_s=HEARTBEAT_S, timeout_s=0.5, invalidation_guard=GUARD)
    previous = ctx.use_cache(cache)
    yield ctx
    ctx.use_cache(previous)
    await cache.invalidate_prefix("")
    await cache.close()


async def eventually(predicate, within_s: float = 3.0, what: str = "condition") -> None:
    deadline = time.monotonic() + within_s
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail(f"{what} not reached within {within_s}s")
        await asyncio.sleep(0.01)


async def warm(ctx, pk):
    """Read a row until it is held in process: the first read fills Redis, a later one the near cache (a fill
    is refused while the invalidation of the first read's own SET is still on its way)."""
    await asyncio.sleep(GUARD * 2)
    deadline = time.monotonic() + 5
    while near_entries(ctx.cache) == 0:
        if time.monotonic() > deadline:
            pytest.fail(f"the row never reached the near cache: {ctx.cache.stats()}")
        await ctx.cached_notes.get(pk)
        await asyncio.sleep(0.01)


def near_entries(cache) -> int:
    return cache.near.describe()["entries"]


async def behind_the_cache(pk, title):
    await CachedNote.filter(pk=pk).update(title=title)


def redis_calls(cache) -> int:
    return cache.stats()["latency_ms"]["calls"]


async def test_hot_row_is_served_from_process_memory_without_a_redis_round_trip(near_ctx):
    created = await near_ctx.cached_notes.create({"title": "first"})
    await warm(near_ctx, created.id)
    await behind_the_cache(created.id, "changed underneath")
    calls, near_hits = redis_calls(near_ctx.cache), near_ctx.cache.near.hits
    for _ in range(5):
        assert (await near_ctx.cached_notes.get(created.id)).title == "first"
    assert redis_calls(near_ctx.cache) == calls
    assert near_ctx.cache.near.hits == near_hits + 5


async def test_a_write_through_this_cache_is_read_back_at_once(near_ctx):
    created = await near_ctx.cached_notes.create({"title": "first"})
    await warm(near_ctx, created.id)
    await near_ctx.cached_notes.update(created.id, {"title": "second"})
    assert (await near_ctx.cached_notes.get(created.id)).title == "second"
    await near_ctx.cached_notes.delete(created.id)
    assert await near_ctx.cached_notes.find(created.id) is None


async def test_a_write_by_another_process_reaches_this_near_cache(near_ctx):
    """Another cache on the same namespace (its own connections, as another process has) writes the row."""
    created = await near_ctx.cached_notes.create({"title": "first"})
    await warm(near_ctx, created.id)
    mine = near_ctx.cache
    other = redis_cache(mine.namespace, timeout_s=0.5, invalidation_guard=GUARD)
    near_ctx.use_cache(other)
    try:
        await near_ctx.cached_notes.update(created.id, {"title": "from elsewhere"})
    finally:
        near_ctx.use_cache(mine)
        await other.close()
    await eventually(lambda: near_entries(mine) == 0, what="invalidation received")
    assert (await near_ctx.cached_notes.get(created.id)).title == "from elsewhere"


async def test_any_redis_client_changing_the_key_drops_the_copy(near_ctx):
    created = await near_ctx.cached_notes.create({"title": "first"})
    await warm(near_ctx, created.id)
    await behind_the_cache(created.id, "second")
    key = near_ctx.cached_notes.read_through.key(created.id)
    client = raw_redis()
    try:
        client.delete(near_ctx.cache.ns(key))
    finally:
        client.close()
    await eventually(lambda: near_entries(near_ctx.cache) == 0, what="invalidation received")
    assert (await near_ctx.cached_notes.get(created.id)).title == "second"


async def test_each_caller_gets_its_own_copy_of_json_fields(near_ctx):
    created = await near_ctx.cached_notes.create({"title": "first", "meta": {"tags": ["a"]}})
    await warm(near_ctx, created.id)
    row = await near_ctx.cached_notes.get(created.id)
    row.meta["tags"].append("changed by a caller")
    assert (await near_ctx.cached_notes.get(created.id)).meta == {"tags": ["a"]}


async def test_only_tracked_row_keys_are_kept_in_process(near_ctx):
    """Redis reports changes only under the read-through prefix; any other key must keep its round trip."""
    cache = near_ctx.cache
    await cache.set("api:report", {"n": 1})
    for _ in range(3):
        assert await cache.get_or_set("api:report", _never_called, near=True) == {"n": 1}
    assert near_entries(cache) == 0
    await cache.set("api:report", {"n": 2})
    assert await cache.get_or_set("api:report", _never_called, near=True) == {"n": 2}


async def _never_called():
    raise AssertionError("the value was cached; the loader must not run")


async def test_near_cache_is_reported_in_stats(near_ctx):
    created = await near_ctx.cached_notes.create({"title": "first"})
    await warm(near_ctx, created.id)
    await near_ctx.cached_notes.get(created.id)
    near = near_ctx.cache.stats()["near"]
    assert near == {"live": True, "entries": 1, "max_entries": 10_000, "hits": 1}


@pytest.fixture
async def private_near_ctx(ctx, private_redis):
    cache = redis_cache(url=private_redis.url, near=True, heartbeat_s=HEARTBEAT_S, timeout_s=0.05,
                        failure_threshold=3, reset_after_s=0.3, invalidation_guard=GUARD)
    previous = ctx.use_cache(cache)
    yield ctx
    ctx.use_cache(previous)
    await cache.close()


async def test_killed_redis_takes_the_near_cache_offline_and_it_returns_after_restart(private_near_ctx,
                                                                                      private_redis):
    ctx, near = private_near_ctx, private_near_ctx.cache.near
    created = await ctx.cached_notes.create({"title": "first"})
    await warm(ctx, created.id)

    private_redis.kill()
    await eventually(lambda: not near.live, what="near cache offline")
    await behind_the_cache(created.id, "changed while Redis was down")
    assert (await ctx.cached_notes.get(created.id)).title == "changed while Redis was down"
    assert near_entries(ctx.cache) == 0

    private_redis.start()
    await eventually(lambda: near.live, within_s=10, what="near cache live again")
    await warm(ctx, created.id)
    hits = near.hits
    assert (await ctx.cached_notes.get(created.id)).title == "changed while Redis was down"
    assert near.hits == hits + 1


async def test_paused_redis_is_noticed_by_the_heartbeat_and_nothing_stale_is_served(private_near_ctx,
                                                                                    private_redis):
    """SIGSTOP keeps the connection open but silent: only the heartbeat can tell."""
    ctx, near = private_near_ctx, private_near_ctx.cache.near
    created = await ctx.cached_notes.create({"title": "first"})
    await warm(ctx, created.id)

    private_redis.pause()
    try:
        await eventually(lambda: not near.live, what="near cache offline")
        await behind_the_cache(created.id, "changed while Redis was paused")
        assert (await ctx.cached_notes.get(created.id)).title == "changed while Redis was paused"
    finally:
        private_redis.resume()
    await eventually(lambda: near.live, within_s=10, what="near cache live again")


async def test_flushdb_clears_the_near_cache(private_near_ctx, private_redis):
    ctx = private_near_ctx
    created = await ctx.cached_notes.create({"title": "first"})
    await warm(ctx, created.id)
    client = redis.Redis(port=private_redis.port, socket_timeout=1)
    try:
        client.flushdb()
    finally:
        client.close()
    await eventually(lambda: near_entries(ctx.cache) == 0, what="flush received")


def test_a_fill_raced_by_an_invalidation_is_refused():
    """A GET answered before a write may arrive after the write's invalidation: its value must not land."""
    near = NearCache()
    near.set_live(True)
    token = near.begin_fill("k")
    near.drop(["k"])  # the invalidation overtakes the GET's answer
    near.fill("k", token, {"title": "stale"}, ttl=60)
    assert near.get("k") is MISS

    token = near.begin_fill("k")
    near.fill("k", token, {"title": "fresh"}, ttl=60)
    assert near.get("k") == {"title": "fresh"}


def test_an_offline_near_cache_keeps_nothing():
    near = NearCache()
    near.set_live(True)
    near.fill("k", near.begin_fill("k"), 1, ttl=60)
    near.set_live(False)
    assert near.get("k") is MISS
    assert near.begin_fill("k") is None
