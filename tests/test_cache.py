"""The ``Cache`` against the real Redis and the in-process backend: JSON round-trips, TTLs, keys and
namespaces, stampede protection, counters, health, and the persistent database tier."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import uuid
from decimal import Decimal

import pytest

from datalayer import ValidationError
from datalayer.cache import MemoryBackend, build_cache, keys
from datalayer.core.models import CacheEntry
from tests.cache_support import REDIS_URL, memory_cache, namespace, raw_redis, redis_cache, require_redis
from tests.conftest import make_settings


@pytest.fixture(params=["redis", "memory"])
async def cache(request):
    if request.param == "redis":
        require_redis()
        made = redis_cache(timeout_s=0.5)  # a loaded test machine must not turn into spurious misses here
    else:
        made = memory_cache()
    yield made
    await made.invalidate_prefix("")
    await made.close()


async def test_datetimes_uuids_decimals_and_bytes_round_trip_exactly(cache):
    value = {
        "aware": dt.datetime(2024, 5, 17, 9, 30, 1, 123456, tzinfo=dt.timezone(dt.timedelta(hours=2))),
        "naive": dt.datetime(2024, 5, 17, 9, 30),
        "day": dt.date(2024, 2, 29),
        "at": dt.time(23, 59, 59, 999),
        "span": dt.timedelta(days=2, seconds=5, microseconds=7),
        "id": uuid.UUID("12345678-1234-5678-1234-567812345678"),
        "price": Decimal("12.3400"),
        "tiny": Decimal("1E-30"),
        "raw": b"\x00\xffpng",
        "nested": [{"$t": "looks like a tag but is data", "v": 1}, None, True, 1.5, "text"],
    }
    await cache.set("mixed", value)
    got = await cache.get("mixed")
    assert got == value
    assert str(got["price"]) == "12.3400" and got["aware"].utcoffset() == dt.timedelta(hours=2)
    assert type(got["id"]) is uuid.UUID and type(got["raw"]) is bytes


async def test_values_are_stored_as_json_never_pickle():
    require_redis()
    cache = redis_cache(timeout_s=0.5)
    try:
        await cache.set("doc", {"id": uuid.UUID(int=1), "n": 1})
        raw = await asyncio.to_thread(raw_redis().get, f"{cache.namespace}:doc")
        assert json.loads(raw) == {"id": {"$t": "uuid", "v": str(uuid.UUID(int=1))}, "n": 1}
    finally:
        await cache.invalidate_prefix("")
        await cache.close()


async def test_a_value_json_cannot_hold_raises_validation_error_naming_value(cache):
    with pytest.raises(ValidationError) as caught:
        await cache.set("bad", {"obj": object()})
    assert caught.value.fields == ["value"]
    assert await cache.get("bad") is None


async def test_bad_ttl_or_key_raises_validation_error_naming_the_field(cache):
    with pytest.raises(ValidationError) as caught:
        await cache.set("k", 1, ttl=0)
    assert caught.value.fields == ["ttl"]
    with pytest.raises(ValidationError) as caught:
        await cache.get("")
    assert caught.value.fields == ["key"]


async def test_per_call_ttl_expires_the_value(cache):
    await cache.set("short", "v", ttl=0.15)
    await cache.set("long", "v")
    assert await cache.get("short") == "v"
    await asyncio.sleep(0.4)
    assert await cache.get("short") is None
    assert await cache.get("long") == "v"


async def test_default_ttl_applies_when_a_call_names_none():
    cache = memory_cache(default_ttl=0.1)
    await cache.set("k", "v")
    await asyncio.sleep(0.25)
    assert await cache.get("k", "gone") == "gone"


async def test_none_is_a_cached_value_distinct_from_a_miss(cache):
    await cache.set("nothing", None)
    assert await cache.get("nothing", "default") is None
    assert await cache.get("absent", "default") == "default"


async def test_delete_and_invalidate_prefix_remove_only_matching_keys(cache):
    for key in ("api:/a:1", "api:/a:2", "api:/b:1", "user:1"):
        await cache.set(key, key)
    assert await cache.delete("user:1", "user:missing") == 1
    assert await cache.invalidate_prefix("api:/a:") == 2
    assert await cache.get("api:/a:1") is None
    assert await cache.get("api:/b:1") == "api:/b:1"


async def test_two_namespaces_on_one_redis_do_not_see_each_other():
    require_redis()
    first, second = redis_cache(timeout_s=0.5), redis_cache(timeout_s=0.5)
    try:
        await first.set("system_stats", {"app": 1})
        await second.set("system_stats", {"app": 2})
        await second.invalidate_prefix("")
        assert await first.get("system_stats") == {"app": 1}
        assert await second.get("system_stats") is None
    finally:
        await first.invalidate_prefix("")
        await first.close()
        await second.close()


async def test_seed_helpers_write_the_seed_key_scheme():
    require_redis()
    cache = redis_cache(timeout_s=0.5)
    user_id, analysis_id = uuid.uuid4(), uuid.uuid4()
    client = raw_redis()
    try:
        await cache.cache_user_data(user_id, {"name": "Ada"})
        await cache.set(keys.user_analyses(user_id), [str(analysis_id)])
        await cache.cache_analysis_result(analysis_id, {"score": Decimal("0.97")}, ttl=60)
        assert await cache.get_cached_user_data(user_id) == {"name": "Ada"}
        assert await cache.get_cached_analysis_result(analysis_id) == {"score": Decimal("0.97")}
        ns = cache.namespace
        assert await asyncio.to_thread(client.exists, f"{ns}:user:{user_id}", f"{ns}:user_analyses:{user_id}",
                                       f"{ns}:analysis_result:{analysis_id}") == 3
        assert 0 < await asyncio.to_thread(client.pttl, f"{ns}:analysis_result:{analysis_id}") <= 60_000
        await cache.invalidate_user_cache(user_id)
        assert await cache.get_cached_user_data(user_id) is None
        assert await cache.get(keys.user_analyses(user_id)) is None
        assert await cache.get_cached_analysis_result(analysis_id) == {"score": Decimal("0.97")}
    finally:
        await cache.invalidate_prefix("")
        await cache.close()
        client.close()


def test_key_scheme_names_and_stable_api_hash():
    assert keys.user(7) == "user:7" and keys.user_analyses(7) == "user_analyses:7"
    assert keys.analysis_result("a") == "analysis_result:a" and keys.tool_generation("t") == "tool_generation:t"
    assert keys.SYSTEM_STATS == "system_stats"
    first = keys.api("/reports", {"b": 2, "a": [1, uuid.UUID(int=3)]})
    assert first == keys.api("/reports", {"a": [1, uuid.UUID(int=3)], "b": 2})
    assert first.startswith("api:/reports:") and first != keys.api("/reports", {"a": 1})


async def test_hundred_concurrent_readers_of_an_expired_key_run_the_loader_once(cache):
    calls = 0

    async def loader():
        nonlocal calls
        calls += 1
        await asyncio.sleep(0.2)
        return {"hot": True, "at": dt.datetime(2024, 1, 1, tzinfo=dt.timezone.utc)}

    await cache.set("hot", {"old": True}, ttl=0.05)
    await asyncio.sleep(0.15)  # expired
    results = await asyncio.gather(*(cache.get_or_set("hot", loader, ttl=30) for _ in range(100)))
    assert calls == 1
    assert all(r == {"hot": True, "at": dt.datetime(2024, 1, 1, tzinfo=dt.timezone.utc)} for r in results)
    assert await cache.get("hot") == results[0]


async def test_two_processes_sharing_redis_run_the_loader_once_through_the_lock():
    """Two ``Cache`` objects (as two processes would hold) share one namespace: one loader call in all."""
    require_redis()
    ns = namespace()
    first, second = redis_cache(ns, timeout_s=0.5), redis_cache(ns, timeout_s=0.5)
    calls = 0

    async def loader():
        nonlocal calls
        calls += 1
        await asyncio.sleep(0.3)
        return "computed"

    try:
        results = await asyncio.gather(
            *(cache.get_or_set("report", loader, ttl=30) for _ in range(50) for cache in (first, second))
        )
        assert calls == 1
        assert results == ["computed"] * 100
    finally:
        await first.invalidate_prefix("")
        await first.close()
        await second.close()


async def test_a_failing_loader_reaches_every_waiter_and_the_next_call_retries(cache):
    calls = 0

    async def loader():
        nonlocal calls
        calls += 1
        await asyncio.sleep(0.05)
        if calls == 1:
            raise LookupError("upstream down")
        return "ok"

    outcomes = await asyncio.gather(*(cache.get_or_set("flaky", loader) for _ in range(10)),
                                    return_exceptions=True)
    assert calls == 1 and all(isinstance(o, LookupError) for o in outcomes)
    assert await cache.get_or_set("flaky", loader) == "ok" and calls == 2


async def test_cache_none_false_does_not_store_a_missing_result(cache):
    calls = 0

    async def loader():
        nonlocal calls
        calls += 1
        return None

    assert await cache.get_or_set("maybe", loader, cache_none=False) is None
    assert await cache.get_or_set("maybe", loader, cache_none=False) is None
    assert calls == 2


async def test_a_load_started_before_an_invalidation_cannot_write_back_its_stale_value(cache):
    await cache.invalidate("row")  # a write committed while this load was reading the old row

    async def stale_loader():
        return "old row"

    assert await cache.get_or_set("row", stale_loader) == "old row"
    assert await cache.get("row") is None  # not cached: the next read goes to the database again


async def test_stats_count_hits_misses_and_latency(cache):
    await cache.set("k", 1)
    await cache.get("k")
    await cache.get("k")
    await cache.get("nope")
    stats = cache.stats()
    assert (stats["hits"], stats["misses"], stats["errors"]) == (2, 1, 0)
    assert stats["hit_ratio"] == pytest.approx(2 / 3, abs=1e-3)
    assert stats["latency_ms"]["calls"] >= 4 and stats["namespace"] == cache.namespace
    json.dumps(stats)  # a plain dict the stats command can print


async def test_health_reports_healthy_backend(cache):
    report = await cache.health()
    assert report["status"] == "healthy" and report["error"] is None
    assert report["backend"] in ("redis", "memory")


async def test_memory_backend_evicts_least_recently_used_beyond_its_bound():
    backend = MemoryBackend(max_entries=3)
    for key in "abc":
        await backend.set(key, key, None)
    await backend.get("a")
    await backend.set("d", "d", None)
    assert await backend.get("b") is None
    assert [await backend.get(k) for k in "acd"] == ["a", "c", "d"]


def test_context_cache_is_redis_with_redis_url_and_memory_without():
    with_redis = build_cache(make_settings("sqlite://:memory:", REDIS_URL="redis://:s3cret@127.0.0.1:6379/0"))
    without = build_cache(make_settings("sqlite://:memory:"))
    assert with_redis.backend.name == "redis" and without.backend.name == "memory"
    assert without.namespace == "datalayer:test"
    assert "s3cret" not in repr(with_redis) and "s3cret" not in json.dumps(with_redis.stats())


async def test_ctx_cache_is_ready_without_redis(ctx):
    await ctx.cache.set("system_stats", {"users": 3}, ttl=5)
    assert await ctx.cache.get("system_stats") == {"users": 3}
    assert isinstance(ctx.cache.stats(), dict)
    assert (await ctx.cache.health())["status"] == "healthy"


async def test_persistent_tier_keeps_values_across_a_redis_flush(ctx):
    require_redis()
    cache = redis_cache(timeout_s=0.5)
    cache.persistent = ctx.cache.persistent
    try:
        await cache.set("model_card", {"acc": Decimal("0.91")}, ttl=60, persist=True)
        await cache.invalidate_prefix("")  # what a Redis restart does
        assert await cache.get("model_card") is None
        assert await cache.get("model_card", persist=True) == {"acc": Decimal("0.91")}
        assert await cache.get("model_card") == {"acc": Decimal("0.91")}  # refilled from the database
        assert await CacheEntry.filter(key=f"{cache.namespace}:model_card").count() == 1
    finally:
        await cache.close()


async def test_persistent_tier_ignores_and_cleans_up_expired_entries(ctx):
    cache = memory_cache(persistent=ctx.cache.persistent)
    await cache.set("brief", "v", ttl=0.1, persist=True)
    await cache.set("kept", "v", ttl=60, persist=True)
    await asyncio.sleep(0.3)
    assert await cache.get("brief", persist=True) is None
    assert await ctx.cache.persistent.cleanup_expired() == 1
    assert await CacheEntry.all().values_list("key", flat=True) == [f"{cache.namespace}:kept"]
    assert await cache.delete("kept", persist=True) == 1
    assert await CacheEntry.all().count() == 0


async def test_counters_of_every_process_add_up_in_the_namespace_totals():
    require_redis()
    ns = namespace()
    first, second = redis_cache(ns), redis_cache(ns)
    try:
        await first.set("a", 1)
        assert await first.get("a") == 1          # hit
        assert await second.get("missing") is None  # miss
        assert await second.get("a") == 1         # hit
        await first.publish_stats()
        await second.publish_stats()
        await second.publish_stats()  # publishing twice adds nothing new
        totals = await first.shared_stats()
        assert (totals["hits"], totals["misses"], totals["sets"]) == (2, 1, 1)
        assert totals["hit_ratio"] == round(2 / 3, 4)
    finally:
        await first.invalidate_prefix("")
        await first.close()
        await second.close()


async def test_the_stats_command_shows_what_app_processes_published(tmp_path):
    import os
    import subprocess
    import sys

    require_redis()
    ns = namespace()
    app_cache = redis_cache(ns)
    await app_cache.set("k", "v")
    for _ in range(3):
        await app_cache.get("k")
    await app_cache.close()  # an app shutting down publishes its counters
    env = {**os.environ, "DATABASE_URL": f"sqlite:///{tmp_path}/stats.sqlite3", "REDIS_URL": REDIS_URL,
           "CACHE_NAMESPACE": ns, "COLUMNS": "200"}
    result = subprocess.run([sys.executable, "-m", "datalayer", "stats"], capture_output=True, text=True,
                            env=env, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "all processes: 3 hits, 0 misses (hit ratio 100.0%)" in result.stdout
    cleanup = redis_cache(ns)
    await cleanup.invalidate_prefix("")
    await cleanup.close()
