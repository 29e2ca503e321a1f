"""Redis away, then back: no process serves a row older than the last committed write, whatever it missed.

For real: a private redis-server (with AOF persistence, and without), stopped by its pid (SIGKILL) and
restarted on the same port and folder; the other process is a real one (a subprocess that opens its own
context on the same database and updates the row). ``pytest -s`` prints the figures of each scenario.

The reader reads for 1.5 s after Redis is back; for a soak, ``DATALAYER_OUTAGE_READ_S=20 pytest -s
tests/test_cache_outage.py -k another_process``.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from pathlib import Path

import pytest
import redis

from datalayer import ValidationError
from datalayer.cache import Cache, CacheSettings, MemoryBackend, build_cache
from datalayer.cache.epoch import RECOVERY_CHECK_S
from datalayer.core.cache_entry import CacheEntry
from tests.cache_support import (
    PrivateRedis,
    epoch_cache,
    free_port,
    namespace,
    redis_cache,
    require_redis,
    writer_behind_the_epoch,
)
from tests.conftest import make_settings

ROOT = Path(__file__).resolve().parents[1]
CHECK_MS = 200.0  # CACHE_EPOCH_CHECK_MS of these tests
READ_FOR_S = float(os.environ.get("DATALAYER_OUTAGE_READ_S", "1.5"))  # seconds of reads once Redis is back
GUARD = 0.05

WRITER = """
import asyncio, json, sys, time
from datalayer import close_context, get_context

async def main(pk, title):
    ctx = await get_context(models=["tests.models"])
    try:
        await ctx.cached_notes.update(pk, {"title": title})
        done = time.time()
        print(json.dumps({"written_at": done, "cache": ctx.cache.stats()}, default=str))
    finally:
        await close_context()

asyncio.run(main(sys.argv[1], sys.argv[2]))
"""


def cache_on(backend, url: str, ns: str):
    """The cache ``get_context`` builds with ``REDIS_URL=url``: Redis, near cache, database tier and epoch."""
    options = CacheSettings(_env_file=None, namespace=ns, epoch_check_ms=CHECK_MS, timeout_ms=250,
                            reset_after_ms=200, near_heartbeat_ms=100, invalidation_guard_ms=GUARD * 1000)
    return build_cache(make_settings(backend.url, REDIS_URL=url), options)


@pytest.fixture
def redis_server(tmp_path, request):
    """A private Redis persisting to an AOF in its own folder (``appendonly`` param: with or without)."""
    server = PrivateRedis(appendonly=getattr(request, "param", True), folder=str(tmp_path))
    server.start()
    yield server
    if server.process is not None:
        server.kill()


@pytest.fixture
async def reader(ctx, backend, redis_server, request):
    """``ctx`` reading through a cache on the private Redis, in a namespace of the test's own: the one
    ``get_context`` builds (param ``"database"``, the default), or one without a database tier (``"none"``)."""
    if getattr(request, "param", "database") == "database":
        cache = cache_on(backend, redis_server.url, namespace())
    else:
        cache = redis_cache(namespace(), redis_server.url, near=True, heartbeat_s=0.1, timeout_s=0.25,
                            failure_threshold=5, reset_after_s=0.2, invalidation_guard=GUARD)
    previous = ctx.use_cache(cache)
    yield ctx
    ctx.use_cache(previous)
    await cache.close()


async def write_in_another_process(backend, redis_url: str, ns: str, pk, title: str) -> dict:
    """Update the row from a separate Python process (its own context, cache and connections); its report."""
    env = {**os.environ, "DATABASE_URL": backend.url, "REDIS_URL": redis_url, "CACHE_NAMESPACE": ns,
           "DATALAYER_ENV": "test", "DB_RETRY_ATTEMPTS": "1", "PYTHONPATH": str(ROOT)}
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-c", WRITER, str(pk), title, cwd=str(ROOT), env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 0, err.decode()[-2000:]
    return json.loads(out.decode().strip().splitlines()[-1])


async def warm(ctx, pk, title: str) -> None:
    """Read the row until it is cached (in Redis and in process)."""
    await asyncio.sleep(GUARD * 2)
    deadline = time.monotonic() + 5
    while ctx.cache.stats()["hits"] < 2:
        assert time.monotonic() < deadline, f"the row never got cached: {ctx.cache.stats()}"
        assert (await ctx.cached_notes.get(pk)).title == title
        await asyncio.sleep(0.01)


async def read_repeatedly(ctx, pk, fresh: str, seconds: float = READ_FOR_S) -> dict:
    """Read the row for ``seconds``; how many reads, how many showed another title, when the first fresh one came."""
    started = time.monotonic()
    reads = stale = 0
    first_fresh: float | None = None
    hits_before = ctx.cache.stats()["hits"]
    while time.monotonic() - started < seconds:
        title = (await ctx.cached_notes.get(pk)).title
        reads += 1
        if title != fresh:
            stale += 1
        elif first_fresh is None:
            first_fresh = time.monotonic() - started
        await asyncio.sleep(0)  # let the cache's background work run, as a server's other requests would
    return {"reads": reads, "stale": stale, "first_fresh_s": first_fresh,
            "cache_hits": ctx.cache.stats()["hits"] - hits_before}


def report(scenario: str, figures: dict) -> None:
    print(f"\n[{scenario}] " + ", ".join(f"{name}={value:.3f}" if isinstance(value, float) else f"{name}={value}"
                                          for name, value in figures.items()))


def stored_title(redis_url: str, key: str) -> str | None:
    """The title Redis itself holds under ``key`` (bypassing every cache), or None."""
    client = redis.Redis.from_url(redis_url, decode_responses=True, socket_timeout=2)
    try:
        raw = client.get(key)
    finally:
        client.close()
    return None if raw is None else json.loads(raw)["title"]


@pytest.mark.parametrize("redis_server", [True, False], ids=["aof", "no-persistence"], indirect=True)
async def test_a_write_by_another_process_during_an_outage_is_never_hidden_once_redis_is_back(
    reader, backend, redis_server,
):
    ctx, cache = reader, reader.cache
    created = await ctx.cached_notes.create({"title": "v1"})
    await warm(ctx, created.id, "v1")
    row_key = cache.ns(ctx.cached_notes.read_through.key(created.id))
    assert stored_title(redis_server.url, row_key) == "v1"

    redis_server.kill()
    writer = await write_in_another_process(backend, redis_server.url, cache.namespace, created.id, "v2")
    redis_server.start()  # same port, same folder: with AOF the old row is back
    kept = stored_title(redis_server.url, row_key)
    assert kept == ("v1" if redis_server.appendonly else None)

    figures = await read_repeatedly(ctx, created.id, "v2")
    report(f"other process, {'AOF' if redis_server.appendonly else 'no persistence'}",
           {**figures, "old_row_restored": kept == "v1", "writer_epoch": writer["cache"]["epoch"],
            "reader_epoch": cache.epoch.value})
    assert figures["stale"] == 0
    assert cache.epoch.value == writer["cache"]["epoch"] >= 1
    assert figures["cache_hits"] > 0  # the cache serves again: the fix is not to stop caching


async def circuit_lets_calls_through(cache) -> None:
    """Wait until the circuit breaker lets the next call reach Redis (its reset time has passed)."""
    deadline = time.monotonic() + 5
    while cache.stats()["circuit"]["state"] == "open":
        assert time.monotonic() < deadline, "the circuit never half-opened"
        await asyncio.sleep(0.02)


@pytest.mark.parametrize("reader", ["database", "none"], ids=["database-tier", "no-database-tier"], indirect=True)
async def test_the_writers_own_first_read_after_the_outage_is_fresh(reader, redis_server):
    ctx, cache = reader, reader.cache
    created = await ctx.cached_notes.create({"title": "v1"})
    await warm(ctx, created.id, "v1")
    row_key = cache.ns(ctx.cached_notes.read_through.key(created.id))

    redis_server.kill()
    await ctx.cached_notes.update(created.id, {"title": "v2"})
    assert (await ctx.cached_notes.get(created.id)).title == "v2"  # from the database meanwhile
    redis_server.start()
    assert stored_title(redis_server.url, row_key) == "v1"  # AOF brought the old row back
    await circuit_lets_calls_through(cache)

    first = (await ctx.cached_notes.get(created.id)).title  # the first call that reaches Redis again
    figures = await read_repeatedly(ctx, created.id, "v2", seconds=0.3)
    tier = "database tier" if cache.persistent else "no database tier"
    report(f"writer's own process, AOF, {tier}", {"first_read": first, **figures, "epoch": cache.epoch.value})
    assert first == "v2"
    assert figures["stale"] == 0
    assert figures["cache_hits"] > 0


async def test_a_writer_cut_off_from_redis_is_seen_by_readers_within_the_epoch_check(reader, backend):
    """Only the writer cannot reach Redis (its REDIS_URL points at a dead port): the reader never lost Redis,
    so it learns of the write from its periodic epoch check."""
    ctx, cache = reader, reader.cache
    created = await ctx.cached_notes.create({"title": "v1"})
    await warm(ctx, created.id, "v1")

    reads: list[tuple[float, str]] = []
    writing = asyncio.ensure_future(write_in_another_process(
        backend, f"redis://127.0.0.1:{free_port()}/0", cache.namespace, created.id, "v2"))
    deadline = time.monotonic() + 60
    while not writing.done() or not reads or reads[-1][1] != "v2":
        assert time.monotonic() < deadline, "the reader never saw the write"
        reads.append((time.time(), (await ctx.cached_notes.get(created.id)).title))
        await asyncio.sleep(0)
    writer = writing.result()
    written_at = writer["written_at"]
    for _ in range(200):  # and it stays fresh
        reads.append((time.time(), (await ctx.cached_notes.get(created.id)).title))
        await asyncio.sleep(0)

    after = [(at, title) for at, title in reads if at >= written_at]
    stale_after = [at for at, title in after if title != "v2"]
    fresh_after_s = (stale_after[-1] - written_at) if stale_after else 0.0
    report("writer cut off from Redis", {
        "reads_after_write": len(after), "stale_after_write": len(stale_after),
        "seconds_until_fresh": fresh_after_s, "epoch_check_s": CHECK_MS / 1000,
        "writer_errors": writer["cache"]["errors"], "reader_epoch": cache.epoch.value})
    assert all(title == "v2" for _, title in reads[-200:])
    assert cache.epoch.value >= 1
    assert writer["cache"]["errors"] > 0  # the writer really could not reach Redis


async def test_health_is_degraded_while_redis_is_away_and_healthy_once_it_is_back(reader, redis_server):
    ctx = reader
    created = await ctx.cached_notes.create({"title": "v1"})
    await warm(ctx, created.id, "v1")
    assert (await ctx.health()).checks["cache"].status == "healthy"

    redis_server.kill()
    await ctx.cached_notes.update(created.id, {"title": "v2"})
    during = await ctx.health()
    assert during.status == "degraded", during.errors
    assert during.checks["cache"].status == "degraded" and during.checks["cache"].error

    redis_server.start()
    deadline = time.monotonic() + 10
    while (after := await ctx.health()).checks["cache"].status != "healthy":
        assert time.monotonic() < deadline, f"the cache never recovered: {after.errors}"
        await asyncio.sleep(0.05)
    assert after.status == "healthy", after.errors
    assert after.checks["cache"].details["pending_invalidations"] == 0
    assert (await ctx.cached_notes.get(created.id)).title == "v2"


async def test_an_invalidation_from_a_process_behind_on_the_epoch_still_reaches_the_readers(ctx):
    """The writer has not heard that the epoch moved (its periodic check is far off) while a reader already
    cached under the new epoch what it read before the write: the invalidation must land there."""
    require_redis()
    async with writer_behind_the_epoch() as (reader, writer, _):
        assert await reader.get_or_set("report", _old_report) == "old"  # read before the write, cached in epoch 1
        await writer.invalidate("report")  # after the write committed
        assert await reader.get("report") is None
        assert writer.epoch.value == 1


async def _old_report() -> str:
    return "old"


async def test_a_reader_whose_calls_failed_checks_the_epoch_before_trusting_redis_again(ctx, private_redis):
    """Redis paused (SIGSTOP), not restarted: same run, same data. A reader whose call failed meanwhile may have
    missed an epoch change, so the first value Redis gives it afterwards is checked against the database."""
    ns = namespace()
    reader, writer = epoch_cache(private_redis.url, ns, 0.1), epoch_cache(private_redis.url, ns, 0.1)
    try:
        await reader.set("report", "old")
        assert await reader.get("report") == "old"
        private_redis.pause()
        assert await reader.get("report") is None  # fails: a miss
        await writer.invalidate("report")  # fails too: the epoch advances
        private_redis.resume()
        assert await reader.get("report") is None
        assert reader.epoch.value == writer.epoch.value == 1
    finally:
        private_redis.resume()
        for cache in (reader, writer):
            await cache.close()


async def test_answers_from_a_redis_run_this_process_had_not_seen_are_checked(ctx, redis_server):
    """The reader checked the epoch during the outage (its periodic check), before the writer advanced it, and
    made no Redis call since: only the new run id of the restarted Redis tells it that it may have missed one."""
    ns = namespace()
    reader = epoch_cache(redis_server.url, ns)
    writer = epoch_cache(f"redis://127.0.0.1:{free_port()}/0", ns, timeout_s=0.05)
    try:
        await reader.set("report", "old")
        assert await reader.get("report") == "old"
        redis_server.kill()
        assert await reader.get("report") is None  # fails: its connection is dropped
        assert await reader.epoch.refresh() and reader.epoch.trusted  # epoch 0 still
        await writer.invalidate("report")  # its write is missed by Redis: the epoch advances
        redis_server.start()  # with "old" back from the AOF
        assert await reader.get("report") is None
        assert reader.epoch.value == 1
    finally:
        for cache in (reader, writer):
            await cache.close()


async def test_after_an_outage_of_its_own_a_reader_checks_the_epoch_often(ctx, private_redis):
    """Redis paused for everyone, then back; a writer still kept from it (a circuit not closed yet: here a dead
    URL) misses an invalidation and advances the epoch after the reader re-read it. The recovering reader moves
    within a few of its short checks (``RECOVERY_CHECK_S``), not its full interval (2 s here; measured before:
    up to 0.97 s of stale reads at 1 s)."""
    ns = namespace()
    reader = epoch_cache(private_redis.url, ns, timeout_s=0.1, epoch_check=2.0)
    cut_off = epoch_cache(f"redis://127.0.0.1:{free_port()}/0", ns, timeout_s=0.05)
    try:
        await reader.set("report", "old")
        private_redis.pause()
        assert await reader.get("report") is None  # fails: a miss, and the reader doubts its epoch
        private_redis.resume()
        assert await reader.get("report") == "old"  # Redis answers again: the epoch was re-read (rule 3)
        assert reader.epoch.trusted and reader.epoch.value == 0
        await cut_off.invalidate("report")  # missed by Redis there: the epoch advances
        changed_at = time.monotonic()
        while await reader.get("report") == "old":
            assert time.monotonic() - changed_at < 2.0, "the reader kept serving the old value"
            await asyncio.sleep(0.005)
        seen_after_s = time.monotonic() - changed_at
        report("recovering reader, writer still cut off", {"seen_after_s": round(seen_after_s, 3),
                                                            "recovery_check_s": RECOVERY_CHECK_S})
        assert seen_after_s < 0.5
        assert reader.epoch.value == cut_off.epoch.value == 1
    finally:
        private_redis.resume()
        await reader.invalidate_prefix("")
        for cache in (reader, cut_off):
            await cache.close()


async def test_an_epoch_row_deleted_from_the_database_is_put_back(ctx):
    ns = namespace()
    cache = epoch_cache(f"redis://127.0.0.1:{free_port()}/0", ns, timeout_s=0.05)
    try:
        await cache.invalidate("a")
        await cache.invalidate("b")
        assert cache.epoch.value == 2
        await CacheEntry.filter(key=f"#epoch:{ns}").delete()  # e.g. every table emptied
        assert await cache.epoch.refresh()
        assert await cache.persistent.read_number(f"#epoch:{ns}") == 2
        await cache.invalidate("c")
        assert cache.epoch.value == 3  # never back to a number some process already used
    finally:
        await cache.close()


def test_a_namespace_cannot_contain_the_epoch_mark():
    with pytest.raises(ValidationError) as caught:
        Cache(MemoryBackend(), namespace="app#1")
    assert caught.value.fields == ["namespace"]
