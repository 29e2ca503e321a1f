"""The side-by-side table: each operation through datalayer, raw Tortoise and raw asyncpg, interleaved."""

from __future__ import annotations

import asyncio
import datetime as dt
import itertools
import random
import uuid
from dataclasses import dataclass

from tortoise.expressions import Q

from benchmarks.harness import Latencies, Rounds, concurrent_latencies, interleaved, interleaved_once
from benchmarks.models import BenchItem, BulkItem, CachedItem
from benchmarks.scratch import Stage
from benchmarks.sqlalchemy_peer import Peer
from datalayer import ModelManager
from datalayer.cache.read_through import apply_read_through
from datalayer.managers.pagination import encode_cursor

COLUMNS = "id, created_at, updated_at, deleted_at, deleted_by, created_by, updated_by, version, title, body, status, views"
GET = f"SELECT {COLUMNS} FROM bench_item WHERE id = $1 AND deleted_at IS NULL LIMIT 1"
GET_CACHED_TABLE = GET.replace("bench_item", "bench_cached_item").replace(", status", "")
INSERT = ("INSERT INTO bench_item (id, created_at, updated_at, version, title, body, status, views) "
          "VALUES ($1, now(), now(), 1, $2, '', 'draft', $3)")
UPDATE = "UPDATE bench_item SET views = $2, updated_at = now(), version = version + 1 WHERE id = $1 AND deleted_at IS NULL"
PAGE = f"SELECT {COLUMNS} FROM bench_item WHERE deleted_at IS NULL ORDER BY created_at DESC, id DESC LIMIT 20 OFFSET 40"
COUNT = "SELECT count(*) FROM bench_item WHERE deleted_at IS NULL"
ESTIMATE = "EXPLAIN (FORMAT JSON) SELECT 1 FROM bench_item WHERE deleted_at IS NULL"
KEYSET = (f"SELECT {COLUMNS} FROM bench_item WHERE deleted_at IS NULL AND (created_at, id) > ($1, $2) "
          "ORDER BY created_at, id LIMIT 20")
SOFT_DELETE = "UPDATE bench_item SET deleted_at = now(), version = version + 1 WHERE id = $1 AND deleted_at IS NULL"
RESTORE = "UPDATE bench_item SET deleted_at = NULL, version = version + 1 WHERE id = $1 AND deleted_at IS NOT NULL"
READERS = 16
BULK_COLUMNS = ["id", "created_at", "updated_at", "version", "title", "body", "status", "views"]


@dataclass
class Result:
    """One line of the table: units per second for each library (None where it has no such operation)."""

    operation: str
    unit: str
    datalayer: float
    tortoise: float | None
    asyncpg: float | None
    note: str = ""
    p50_ms: dict[str, float] | None = None
    p99_ms: dict[str, float] | None = None
    sqlalchemy: float | None = None  # SQLAlchemy 2 async ORM (benchmarks.sqlalchemy_peer), where it has the operation
    row_by_row: float | None = None  # writes by filter: the same units/s of the row-by-row path they replace


async def seeded(stage: Stage, rows: int) -> tuple[list[uuid.UUID], list[uuid.UUID]]:
    items = await stage.ctx.manager(BenchItem).bulk_create({"title": f"item {i}", "views": i} for i in range(rows))
    cached = await stage.ctx.manager(CachedItem).bulk_create({"title": f"cached {i}"} for i in range(200))
    await stage.sql("VACUUM ANALYZE bench_item")
    return [item.id for item in items], [item.id for item in cached]


async def measure(stage: Stage, plan: Rounds, *, rows: int, bulk_rows: int, mixed_calls: int,
                  peer: Peer) -> list[Result]:
    ids, cached_ids = await seeded(stage, rows)
    items = stage.ctx.manager(BenchItem)
    pool, counter = stage.pool, itertools.count()
    pick = lambda: random.choice(ids)
    results = []

    get = await interleaved({
        "datalayer": lambda: items.get(pick()),
        "tortoise": lambda: BenchItem.get(id=pick()),
        "asyncpg": lambda: pool.fetchrow(GET, pick()),
        "sqlalchemy": lambda: peer.get(pick()),
    }, plan)
    results.append(Result("get by id", "ops/s", get["datalayer"], get["tortoise"], get["asyncpg"],
                          sqlalchemy=get["sqlalchemy"]))

    await asyncio.sleep(stage.ctx.cache.invalidation_guard * 2)  # past the guard after the seeding writes
    results += await cached_gets(stage, cached_ids, plan, "cached get", "near cache on (the default)")
    near_on = stage.ctx.use_cache(stage.round_trip_cache)
    try:
        results += await cached_gets(stage, cached_ids, plan, "cached get via Redis",
                                     "near cache off: one Redis round trip per get")
    finally:
        stage.ctx.use_cache(near_on)

    create = await interleaved({
        "datalayer": lambda: items.create({"title": f"new {next(counter)}", "views": 1}),
        "tortoise": lambda: BenchItem.create(title=f"new {next(counter)}", views=1),
        "asyncpg": lambda: pool.execute(INSERT, uuid.uuid4(), f"new {next(counter)}", 1),
        "sqlalchemy": lambda: peer.create(f"new {next(counter)}", 1),
    }, plan)
    results.append(Result("create", "ops/s", create["datalayer"], create["tortoise"], create["asyncpg"],
                          "datalayer and SQLAlchemy also write the audit row", sqlalchemy=create["sqlalchemy"]))

    update = await interleaved({
        "datalayer": lambda: items.update(pick(), {"views": next(counter)}),
        "tortoise": lambda: BenchItem.filter(id=pick()).update(views=next(counter)),
        "asyncpg": lambda: pool.execute(UPDATE, pick(), next(counter)),
        "sqlalchemy": lambda: peer.update(pick(), next(counter)),
    }, plan)
    results.append(Result("update one field", "ops/s", update["datalayer"], update["tortoise"], update["asyncpg"],
                          "datalayer and SQLAlchemy: version check + audit row", sqlalchemy=update["sqlalchemy"]))

    async def tortoise_page() -> None:
        await asyncio.gather(BenchItem.all().order_by("-created_at", "-id").offset(40).limit(20),
                             BenchItem.all().count())

    async def asyncpg_page() -> None:
        await asyncio.gather(pool.fetch(PAGE), pool.fetchval(COUNT))

    page = await interleaved({
        "datalayer": lambda: items.find_many(page=3, limit=20, sort_by="created_at", sort_order="desc"),
        "tortoise": tortoise_page,
        "asyncpg": asyncpg_page,
        "sqlalchemy": peer.page,
    }, plan)
    results.append(Result("page of 20 + total", "ops/s", page["datalayer"], page["tortoise"], page["asyncpg"],
                          sqlalchemy=page["sqlalchemy"]))
    results += await page_variants(stage, plan, peer=peer)

    middle = await pool.fetchrow("SELECT created_at, id FROM bench_item ORDER BY created_at, id OFFSET $1 LIMIT 1",
                                 rows // 2)
    cursor = encode_cursor("created_at", False, middle["created_at"], middle["id"])
    after = Q(created_at__gt=middle["created_at"]) | Q(created_at=middle["created_at"], id__gt=middle["id"])
    keyset = await interleaved({
        "datalayer": lambda: items.find_after(cursor, limit=20),
        "tortoise": lambda: BenchItem.filter(after).order_by("created_at", "id").limit(20),
        "asyncpg": lambda: pool.fetch(KEYSET, middle["created_at"], middle["id"]),
        "sqlalchemy": lambda: peer.keyset(middle["created_at"], middle["id"]),
    }, plan)
    results.append(Result("keyset page of 20", "ops/s", keyset["datalayer"], keyset["tortoise"], keyset["asyncpg"],
                          sqlalchemy=keyset["sqlalchemy"]))

    async def delete_restore_datalayer() -> None:
        key = pick()
        await items.delete(key)
        await items.restore(key)

    async def delete_restore_tortoise() -> None:
        key = pick()
        await BenchItem.filter(id=key).update(deleted_at=dt.datetime.now(dt.timezone.utc))
        await BenchItem.all_objects.filter(id=key).update(deleted_at=None)

    async def delete_restore_asyncpg() -> None:
        key = pick()
        await pool.execute(SOFT_DELETE, key)
        await pool.execute(RESTORE, key)

    soft = await interleaved({
        "datalayer": delete_restore_datalayer, "tortoise": delete_restore_tortoise, "asyncpg": delete_restore_asyncpg,
        "sqlalchemy": lambda: peer.delete_restore(pick()),
    }, plan)
    results.append(Result("soft delete + restore", "pairs/s", soft["datalayer"], soft["tortoise"], soft["asyncpg"],
                          "datalayer and SQLAlchemy: version check + audit rows", sqlalchemy=soft["sqlalchemy"]))

    results.append(await bulk_insert(stage, bulk_rows, rounds=plan.rounds, peer=peer))
    results.append(await mixed_load(stage, ids, calls=mixed_calls, rounds=max(1, plan.rounds // 2), peer=peer))
    cached = await warm_read_through(stage, ids[:100 * mixed_calls])
    results.append(await mixed_load(stage, ids, calls=mixed_calls, rounds=max(1, plan.rounds // 2), cached=cached))
    return results


async def page_variants(stage: Stage, plan: Rounds, *, label: str = "", peer: Peer | None = None) -> list[Result]:
    """Page 3 of 20 without a total, and with the planner's estimate instead of ``count(*)``."""
    items, pool = stage.ctx.manager(BenchItem), stage.pool

    async def asyncpg_estimated() -> None:
        await asyncio.gather(pool.fetch(PAGE), pool.fetchval(ESTIMATE))

    bare = await interleaved({
        "datalayer": lambda: items.find_many(page=3, limit=20, sort_by="created_at", sort_order="desc", total="none"),
        "tortoise": lambda: BenchItem.all().order_by("-created_at", "-id").offset(40).limit(20),
        "asyncpg": lambda: pool.fetch(PAGE),
        **({} if peer is None else {"sqlalchemy": lambda: peer.page(total=False)}),
    }, plan)
    estimated = await interleaved({
        "datalayer": lambda: items.find_many(page=3, limit=20, sort_by="created_at", sort_order="desc",
                                             total="estimated"),
        "asyncpg": asyncpg_estimated,
    }, plan)
    return [
        Result(f"page of 20, no total{label}", "ops/s", bare["datalayer"], bare["tortoise"], bare["asyncpg"],
               "datalayer fetches 21 rows to know has_next", sqlalchemy=bare.get("sqlalchemy")),
        Result(f"page of 20 + estimated total{label}", "ops/s", estimated["datalayer"], None, estimated["asyncpg"],
               "the planner's row estimate (EXPLAIN), no count; asyncpg: the same page + EXPLAIN"),
    ]


async def cached_gets(
    stage: Stage, cached_ids: list[uuid.UUID], plan: Rounds, name: str, variant: str
) -> list[Result]:
    """Read-through ``get`` against asyncpg's uncached primary-key lookup: one caller, then 16 at once."""
    cached, pool = stage.ctx.manager(CachedItem), stage.pool
    for key in cached_ids:  # every row read: in Redis (and, with the near cache, in process) from now on
        await cached.get(key)
        await cached.get(key)
    hot = await interleaved({
        "datalayer": lambda: cached.get(random.choice(cached_ids)),
        "asyncpg": lambda: pool.fetchrow(GET_CACHED_TABLE, random.choice(cached_ids)),
    }, plan)

    def burst(read):
        async def sixteen() -> None:
            await asyncio.gather(*(read(random.choice(cached_ids)) for _ in range(READERS)))
        return sixteen

    crowd = await interleaved({
        "datalayer": burst(cached.get),
        "asyncpg": burst(lambda key: pool.fetchrow(GET_CACHED_TABLE, key)),
    }, plan)
    return [
        Result(f"{name}, {READERS} readers", "ops/s", crowd["datalayer"] * READERS, None, crowd["asyncpg"] * READERS,
               f"{variant}; asyncpg: the same gets, uncached, pool of 10"),
        Result(f"{name}, 1 caller", "ops/s", hot["datalayer"], None, hot["asyncpg"],
               f"{variant}; asyncpg: the same get, uncached"),
    ]


def bulk_contenders(stage: Stage, size: int) -> dict[str, object]:
    """Insert ``size`` fresh rows into ``bench_bulk_item``; building the input is part of each call."""
    bulk = stage.ctx.manager(BulkItem)

    async def with_datalayer() -> None:
        await bulk.bulk_create([{"title": f"bulk {i}", "views": i} for i in range(size)])

    async def with_tortoise() -> None:
        await BulkItem.bulk_create([BulkItem(title=f"bulk {i}", views=i) for i in range(size)])

    async def with_asyncpg() -> None:
        now = dt.datetime.now(dt.timezone.utc)
        records = [(uuid.uuid4(), now, now, 1, f"bulk {i}", "", "draft", i) for i in range(size)]
        await stage.pool.copy_records_to_table("bench_bulk_item", records=records, columns=BULK_COLUMNS)

    return {"datalayer": with_datalayer, "tortoise": with_tortoise, "asyncpg": with_asyncpg}


async def empty_bulk_table(stage: Stage) -> None:
    await stage.sql("TRUNCATE bench_bulk_item")
    await stage.sql("DELETE FROM audit_log WHERE table_name = 'bench_bulk_item'")


async def bulk_insert(stage: Stage, size: int, *, rounds: int, peer: Peer) -> Result:
    contenders = {**bulk_contenders(stage, size), "sqlalchemy": lambda: peer.bulk_insert(size)}
    rates = await interleaved_once(contenders, rounds, size, before=lambda: empty_bulk_table(stage))
    await empty_bulk_table(stage)
    return Result(f"bulk insert {size:,} rows", "rows/s", rates["datalayer"], rates["tortoise"], rates["asyncpg"],
                  "datalayer + audit rows; Tortoise bulk_create; asyncpg COPY; SQLAlchemy bulk insert() + audit rows",
                  sqlalchemy=rates["sqlalchemy"])


class ReadThroughItems(ModelManager[BenchItem]):
    """``bench_item`` read through the cache (no ``model`` in the class: not registered as its manager)."""

    cached = True


async def warm_read_through(stage: Stage, ids: list[uuid.UUID]) -> ModelManager[BenchItem]:
    """A read-through manager of ``bench_item`` on the stage's cache, with ``ids`` read twice: the first read
    fills Redis, the second the near cache (the cache warm, as for a hot row)."""
    cached = ReadThroughItems(BenchItem)
    apply_read_through(cached, stage.ctx.cache)
    await asyncio.sleep(stage.ctx.cache.invalidation_guard * 2)  # past the guard after earlier writes
    for _ in range(2):
        for start in range(0, len(ids), 50):
            await asyncio.gather(*(cached.get(key) for key in ids[start:start + 50]))
    return cached


async def mixed_load(stage: Stage, ids: list[uuid.UUID], *, calls: int, rounds: int, tasks: int = 100,
                     peer: Peer | None = None, cached: ModelManager[BenchItem] | None = None) -> Result:
    """100 tasks over the pool of 10: 7 reads, 2 updates and 1 page in every 10 calls.

    With ``cached`` (``warm_read_through``), datalayer reads through the cache, against asyncpg without one:
    the same calls on the same rows (the rows updated are not among those read, so reads hit once warm; the
    page's unfiltered total is cached too, and updates leave it, so only the page's rows are read).
    """
    items, pool = cached if cached is not None else stage.ctx.manager(BenchItem), stage.pool
    counter = itertools.count()

    def datalayer_call(index: int):
        kind, key = index % 10, ids[index % len(ids)]
        if kind < 7:
            return lambda: items.get(key)
        if kind < 9:
            return lambda: items.update(key, {"views": next(counter)})
        return lambda: items.find_many(page=2, limit=20, sort_by="created_at", sort_order="desc")

    def tortoise_call(index: int):
        kind, key = index % 10, ids[index % len(ids)]
        if kind < 7:
            return lambda: BenchItem.get(id=key)
        if kind < 9:
            return lambda: BenchItem.filter(id=key).update(views=next(counter))
        return lambda: asyncio.gather(BenchItem.all().order_by("-created_at", "-id").offset(20).limit(20),
                                      BenchItem.all().count())

    def asyncpg_call(index: int):
        kind, key = index % 10, ids[index % len(ids)]
        if kind < 7:
            return lambda: pool.fetchrow(GET, key)
        if kind < 9:
            return lambda: pool.execute(UPDATE, key, next(counter))
        return lambda: asyncio.gather(pool.fetch(PAGE.replace("OFFSET 40", "OFFSET 20")), pool.fetchval(COUNT))

    def sqlalchemy_call(index: int):
        kind, key = index % 10, ids[index % len(ids)]
        assert peer is not None
        if kind < 7:
            return lambda: peer.get(key)
        if kind < 9:
            return lambda: peer.update(key, next(counter))
        return lambda: peer.page(offset=20)

    pickers = {"datalayer": datalayer_call, "tortoise": tortoise_call, "asyncpg": asyncpg_call}
    if cached is not None:
        del pickers["tortoise"]
    if peer is not None:
        pickers["sqlalchemy"] = sqlalchemy_call
    runs: dict[str, list[Latencies]] = {name: [] for name in pickers}
    for round_index in range(rounds):
        names = list(pickers)
        shift = round_index % len(names)
        for name in names[shift:] + names[:shift]:
            runs[name].append(await concurrent_latencies(tasks, calls, pickers[name]))
    best = {name: sorted(found, key=lambda run: run.ops_per_s)[len(found) // 2] for name, found in runs.items()}
    rate = {name: run.ops_per_s for name, run in best.items()}
    return Result(
        f"mixed load{'' if cached is None else ', cache on'}, {tasks} tasks / pool of 10", "ops/s",
        rate["datalayer"], rate.get("tortoise"), rate["asyncpg"],
        "70% get, 20% update, 10% page+total" + (
            "; datalayer's gets and the page's total read through the cache (Redis + near cache, warm), its "
            "updates invalidate the rows; asyncpg uncached" if cached is not None else ""),
        p50_ms={name: run.percentile(0.50) for name, run in best.items()},
        p99_ms={name: run.percentile(0.99) for name, run in best.items()},
        sqlalchemy=rate.get("sqlalchemy"),
    )
