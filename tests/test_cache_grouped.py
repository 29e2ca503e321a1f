"""Concurrent invalidations go out together (``datalayer.cache.grouped``) and keep every guarantee of one each.

Under load every write through a cached manager invalidates its row. Grouped, concurrent writers share one
epoch read and one Redis round trip; each still returns only once its own keys are dropped, so a reader in
another process never sees the old row after the write returned, and a lone writer waits for nobody.
"""

from __future__ import annotations

import asyncio

import pytest

from datalayer.cache.grouped import GroupedCalls
from tests.cache_support import (
    GUARD,
    redis_cache,
    require_redis,
    writer_behind_the_epoch,
)


class Recorder:
    """A ``send`` that takes ``delay_s`` and records which items went out together, and when it began."""

    def __init__(self, delay_s: float = 0.01, fail_on: str | None = None) -> None:
        self.delay_s = delay_s
        self.fail_on = fail_on
        self.sends: list[tuple[float, list[str]]] = []

    async def __call__(self, items: list[str]) -> None:
        self.sends.append((asyncio.get_running_loop().time(), list(items)))
        await asyncio.sleep(self.delay_s)
        if self.fail_on in items:
            raise RuntimeError(f"send of {items} failed")


async def test_a_lone_caller_sends_at_once_in_its_own_task():
    recorder = Recorder(delay_s=0)
    grouped = GroupedCalls(recorder)
    await grouped.submit(["a"])
    await grouped.submit(["b", "c"])
    assert [items for _, items in recorder.sends] == [["a"], ["b", "c"]]


async def test_concurrent_callers_share_sends_each_begun_after_they_asked():
    recorder = Recorder(delay_s=0.01)
    grouped = GroupedCalls(recorder)
    asked: dict[str, float] = {}
    returned: dict[str, float] = {}

    async def caller(name: str, wait_s: float) -> None:
        await asyncio.sleep(wait_s)
        asked[name] = asyncio.get_running_loop().time()
        await grouped.submit([name])
        returned[name] = asyncio.get_running_loop().time()

    await asyncio.gather(*(caller(f"k{i}", (i % 5) * 0.003) for i in range(50)))
    sent = [item for _, items in recorder.sends for item in items]
    assert sorted(sent) == sorted(asked)  # every item sent exactly once
    assert len(recorder.sends) < 10  # 50 callers, a handful of round trips
    for began, items in recorder.sends:
        for item in items:
            assert began >= asked[item]  # a send never carries an item asked for after it began
            assert returned[item] >= began + recorder.delay_s * 0.9  # nobody returns before its send ended


async def test_a_cancelled_caller_does_not_cancel_the_send_others_wait_on():
    recorder = Recorder(delay_s=0.02)
    grouped = GroupedCalls(recorder)
    first = asyncio.create_task(grouped.submit(["first"]))
    await asyncio.sleep(0)
    queued = [asyncio.create_task(grouped.submit([f"q{i}"])) for i in range(3)]
    await asyncio.sleep(0)
    queued[0].cancel()
    await asyncio.gather(first, *queued[1:])
    assert [items for _, items in recorder.sends] == [["first"], ["q0", "q1", "q2"]]


async def test_a_failed_send_reaches_the_callers_of_that_send_only():
    recorder = Recorder(delay_s=0.01, fail_on="bad")
    grouped = GroupedCalls(recorder)
    first = asyncio.create_task(grouped.submit(["first"]))
    await asyncio.sleep(0)
    in_bad_group = [asyncio.create_task(grouped.submit([name])) for name in ("bad", "unlucky")]
    results = await asyncio.gather(first, *in_bad_group, return_exceptions=True)
    assert results[0] is None
    assert all(isinstance(result, RuntimeError) for result in results[1:])
    await grouped.submit(["later"])  # the next caller starts afresh
    assert recorder.sends[-1][1] == ["later"]


async def test_concurrent_cached_writes_are_never_read_stale_by_another_process(cached_ctx):
    """40 writers update cached rows at once; the moment each update returns, a cache of another process (own
    connections, same namespace) must not find the old row; on PostgreSQL (writes in parallel) the
    invalidations took fewer Redis round trips than writes."""
    notes = cached_ctx.cached_notes
    rows = [await notes.create({"title": f"v1 {i}"}) for i in range(40)]
    await asyncio.sleep(GUARD * 2)  # past the guard of the creates
    for row in rows:
        assert (await notes.get(row.id)).title == row.title  # cached in Redis now
    elsewhere = redis_cache(cached_ctx.cache.namespace, timeout_s=0.5, invalidation_guard=GUARD)
    keys = [notes.read_through.key(row.id) for row in rows]
    assert [await elsewhere.get(key) is not None for key in keys] == [True] * len(keys)
    calls_before = cached_ctx.cache.stats()["latency_ms"]["calls"]
    stale: list[str] = []

    async def write(index: int) -> None:
        await notes.update(rows[index].id, {"title": f"v2 {index}"})
        seen = await elsewhere.get(keys[index])
        if seen is not None:
            stale.append(f"{index}: {seen['title']}")

    try:
        await asyncio.gather(*(write(i) for i in range(len(rows))))
    finally:
        await elsewhere.close()
    assert stale == []
    invalidation_calls = cached_ctx.cache.stats()["latency_ms"]["calls"] - calls_before
    if cached_ctx.target.is_postgres:  # SQLite commits one write at a time: its invalidations rarely overlap
        assert invalidation_calls < len(rows)
    else:
        assert invalidation_calls <= len(rows)
    assert [(await notes.get(row.id)).title for row in rows] == [f"v2 {i}" for i in range(len(rows))]


async def test_grouped_invalidations_land_under_an_epoch_the_writer_had_not_heard_of(ctx):
    """Rule 2 of the epoch, with grouping: writers behind on the epoch invalidate concurrently; every key a
    reader filled under the new epoch before the writes is dropped when they return."""
    require_redis()
    async with writer_behind_the_epoch() as (reader, writer, cut_off):
        names = [f"report-{i}" for i in range(20)]
        for name in names:
            await reader.set(name, "old")  # read before the writes, cached under the new epoch
        await asyncio.gather(*(writer.invalidate(name) for name in names))
        assert [await reader.get(name) for name in names] == [None] * len(names)
        assert writer.epoch.value == cut_off.epoch.value


@pytest.mark.parametrize("in_transaction", [False, True])
async def test_a_write_inside_a_transaction_invalidates_after_commit(cached_ctx, in_transaction):
    """Hooks run after commit either way; inside a block the invalidation is not handed to another task."""
    notes = cached_ctx.cached_notes
    row = await notes.create({"title": "v1"})
    await asyncio.sleep(GUARD * 2)
    assert (await notes.get(row.id)).title == "v1"
    if in_transaction:
        async with cached_ctx.transaction():
            await notes.update(row.id, {"title": "v2"})
    else:
        await notes.update(row.id, {"title": "v2"})
    assert (await notes.get(row.id)).title == "v2"
