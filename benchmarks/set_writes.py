"""Writes that datalayer makes in one statement, against what they replace and against the raw driver.

    python -m benchmarks.set_writes            # full: 10,000-row writes by filter (a few minutes)
    python -m benchmarks.set_writes --quick    # 2,000 rows, short rounds

One-row writes (create, update, soft delete + restore) run against raw Tortoise's bare call and against
raw asyncpg sending the equivalent statement (the same rows and audit rows, in one round trip). Writes by
filter (``update_many``, ``delete_many`` + ``restore_many``) run against the row-by-row path they replace
(``one_statement_writes = False``, what they did before), Tortoise's bare queryset update and one raw
asyncpg statement doing the same work. ``python -m benchmarks`` runs this too.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import itertools
import json
import random
import sys
import time
import uuid

from rich.console import Console
from rich.table import Table

from benchmarks.harness import Rounds, interleaved, interleaved_once
from benchmarks.models import BenchItem
from benchmarks.operations import Result
from benchmarks.scratch import Stage, scratch_database, server_urls, stage
from datalayer import ModelManager

AUDIT = "audit_log (id, created_at, updated_at, actor_id, action, table_name, record_id, changes, correlation_id)"
STAMP = "GREATEST($3, old.updated_at + interval '1 microsecond')"
CREATE = (f"WITH aud AS (INSERT INTO {AUDIT} VALUES ($5, $4, $4, NULL, 'create', 'bench_item', $7, $6::jsonb, "
          "NULL)) INSERT INTO bench_item (id, created_at, updated_at, version, title, body, status, views) "
          "VALUES ($1, $4, $4, 1, $2, '', 'draft', $3)")
UPDATE = (
    "WITH old AS (SELECT id, version, updated_at, views FROM bench_item WHERE id = $1 AND deleted_at IS NULL FOR UPDATE), "
    f"upd AS (UPDATE bench_item AS t SET views = $2, updated_at = {STAMP}, updated_by = NULL, version = t.version + 1 "
    "FROM old WHERE t.id = old.id AND old.views IS DISTINCT FROM $2 RETURNING t.*), "
    f"aud AS (INSERT INTO {AUDIT} SELECT $4, upd.updated_at, upd.updated_at, NULL, 'update', 'bench_item', old.id::text, "
    "jsonb_build_object('views', jsonb_build_array(to_jsonb(old.views), $5::jsonb)), NULL FROM old JOIN upd USING (id)) "
    "SELECT * FROM upd"
)


SOFT_DELETE = (
    "WITH upd AS (UPDATE bench_item AS t SET deleted_at = GREATEST($3, t.updated_at + interval '1 microsecond'), "
    "deleted_by = NULL, updated_at = GREATEST($3, t.updated_at + interval '1 microsecond'), updated_by = NULL, "
    "version = t.version + 1 WHERE t.id = $1 AND t.deleted_at IS NULL RETURNING t.*), "
    f"aud AS (INSERT INTO {AUDIT} SELECT $2, upd.updated_at, upd.updated_at, NULL, 'delete', 'bench_item', "
    "upd.id::text, jsonb_build_object('deleted_at', jsonb_build_array(NULL, to_jsonb(upd.deleted_at))), NULL "
    "FROM upd) SELECT * FROM upd"
)
RESTORE = (
    "WITH old AS (SELECT id, updated_at, deleted_at FROM bench_item WHERE id = $1 AND deleted_at IS NOT NULL "
    f"FOR UPDATE), upd AS (UPDATE bench_item AS t SET deleted_at = NULL, deleted_by = NULL, updated_at = {STAMP}, "
    "updated_by = NULL, version = t.version + 1 FROM old WHERE t.id = old.id RETURNING t.*, old.deleted_at AS was), "
    f"aud AS (INSERT INTO {AUDIT} SELECT $2, upd.updated_at, upd.updated_at, NULL, 'restore', 'bench_item', "
    "upd.id::text, jsonb_build_object('deleted_at', jsonb_build_array(to_jsonb(upd.was), NULL)), NULL FROM upd) "
    "SELECT * FROM upd"
)
UPDATE_ALL = (
    "WITH old AS (SELECT id, version, updated_at, views FROM bench_item WHERE status = $1 AND deleted_at IS NULL "
    f"ORDER BY id FOR UPDATE), upd AS (UPDATE bench_item AS t SET views = $2, updated_at = {STAMP}, "
    "updated_by = NULL, version = t.version + 1 FROM old WHERE t.id = old.id AND old.views IS DISTINCT FROM $2 "
    f"RETURNING t.id, t.updated_at, old.views AS was), aud AS (INSERT INTO {AUDIT} SELECT gen_random_uuid(), "
    "upd.updated_at, upd.updated_at, NULL, 'update', 'bench_item', upd.id::text, "
    "jsonb_build_object('views', jsonb_build_array(to_jsonb(upd.was), $4::jsonb)), NULL FROM upd) "
    "SELECT count(*) FROM upd"
)
SET_STATUS = "set-writes"


async def one_row_writes(stage_: Stage, plan: Rounds, ids: list[uuid.UUID]) -> list[Result]:
    items, pool, counter = stage_.ctx.manager(BenchItem), stage_.pool, itertools.count()

    def pick() -> uuid.UUID:
        return random.choice(ids)

    async def create_raw() -> None:
        key, title, now = uuid.uuid4(), f"raw {next(counter)}", dt.datetime.now(dt.timezone.utc)
        changes = {"id": [None, str(key)], "title": [None, title], "body": [None, ""], "status": [None, "draft"],
                   "views": [None, 1]}
        await pool.execute(CREATE, key, title, 1, now, uuid.uuid4(), json.dumps(changes), str(key))

    create = await interleaved({
        "datalayer": lambda: items.create({"title": f"new {next(counter)}", "views": 1}),
        "tortoise": lambda: BenchItem.create(title=f"new {next(counter)}", views=1),
        "asyncpg": create_raw,
    }, plan)

    async def update_raw() -> None:
        views = next(counter)
        await pool.fetchrow(UPDATE, pick(), views, dt.datetime.now(dt.timezone.utc), uuid.uuid4(), json.dumps(views))

    update = await interleaved({
        "datalayer": lambda: items.update(pick(), {"views": next(counter)}),
        "tortoise": lambda: BenchItem.filter(id=pick()).update(views=next(counter)),
        "asyncpg": update_raw,
    }, plan)

    async def flip_datalayer() -> None:
        key = pick()
        await items.delete(key)
        await items.restore(key)

    async def flip_tortoise() -> None:
        key = pick()
        await BenchItem.filter(id=key).update(deleted_at=dt.datetime.now(dt.timezone.utc))
        await BenchItem.all_objects.filter(id=key).update(deleted_at=None)

    async def flip_raw() -> None:
        key = pick()
        await pool.fetchrow(SOFT_DELETE, key, uuid.uuid4(), dt.datetime.now(dt.timezone.utc))
        await pool.fetchrow(RESTORE, key, uuid.uuid4(), dt.datetime.now(dt.timezone.utc))

    flip = await interleaved({"datalayer": flip_datalayer, "tortoise": flip_tortoise, "asyncpg": flip_raw}, plan)
    return [
        Result("create, one round trip", "ops/s", create["datalayer"], create["tortoise"], create["asyncpg"],
               "datalayer + audit row; Tortoise create (no audit); asyncpg: INSERT + audit INSERT in one statement"),
        Result("update one field, one statement", "ops/s", update["datalayer"], update["tortoise"], update["asyncpg"],
               "datalayer: row lock, version, audit row; Tortoise bare queryset update; asyncpg: the same statement"),
        Result("soft delete + restore, one statement each", "pairs/s", flip["datalayer"], flip["tortoise"],
               flip["asyncpg"], "datalayer + audit rows; Tortoise bare queryset updates; asyncpg: the same statements"),
    ]


async def writes_by_filter(stage_: Stage, rows: int, rounds: int) -> list[Result]:
    """``update_many`` and ``delete_many`` + ``restore_many`` over ``rows`` rows, each round changing every row."""
    items, pool, counter = stage_.ctx.manager(BenchItem), stage_.pool, itertools.count(1)
    row_by_row = ModelManager(BenchItem)
    row_by_row.one_statement_writes = False
    made = await items.bulk_create({"title": f"set {n}", "status": SET_STATUS} for n in range(rows))
    await stage_.sql("VACUUM ANALYZE bench_item")
    where = {"status": SET_STATUS}

    async def update_raw() -> None:
        views = next(counter)
        await pool.fetchval(UPDATE_ALL, SET_STATUS, views, dt.datetime.now(dt.timezone.utc), json.dumps(views))

    update = await interleaved_once({
        "datalayer": lambda: items.update_many(where, {"views": next(counter)}),
        "tortoise": lambda: BenchItem.filter(status=SET_STATUS).update(views=next(counter)),
        "asyncpg": update_raw,
    }, rounds, rows)
    before = await _timed(lambda: row_by_row.update_many(where, {"views": next(counter)}), rows)

    async def flip(manager: ModelManager[BenchItem]) -> None:
        await manager.delete_many(where)
        await manager.restore_many(where)

    async def flip_tortoise() -> None:
        await BenchItem.filter(status=SET_STATUS).update(deleted_at=dt.datetime.now(dt.timezone.utc))
        await BenchItem.all_objects.filter(status=SET_STATUS).update(deleted_at=None)

    pairs = await interleaved_once({"datalayer": lambda: flip(items), "tortoise": flip_tortoise}, rounds, rows)
    flip_before = await _timed(lambda: flip(row_by_row), rows)
    await stage_.sql("DELETE FROM bench_item WHERE status = $1", SET_STATUS)  # the tables as they were
    await stage_.sql("DELETE FROM audit_log WHERE table_name = 'bench_item' AND record_id = ANY($1::text[])",
                     [str(row.id) for row in made])
    return [
        Result(f"update_many {rows:,} rows", "rows/s", update["datalayer"], update["tortoise"], update["asyncpg"],
               f"{update['datalayer'] / before:.1f}x the row-by-row path ({before:,.0f} rows/s); versions + audit "
               "rows; Tortoise bare queryset update; asyncpg: one equivalent statement", row_by_row=before),
        Result(f"delete_many + restore_many {rows:,} rows", "rows/s", pairs["datalayer"], pairs["tortoise"], None,
               f"{pairs['datalayer'] / flip_before:.1f}x the row-by-row path ({flip_before:,.0f} rows/s); "
               "Tortoise: two bare queryset updates", row_by_row=flip_before),
    ]


async def _timed(write, units: int) -> float:
    """Units per second of one call (the row-by-row path is too slow to repeat)."""
    start = time.perf_counter()
    await write()
    return units / (time.perf_counter() - start)


async def measure(stage_: Stage, plan: Rounds, *, rows: int) -> list[Result]:
    """Every row of this benchmark, on ``bench_item`` (one-row writes pick among its live rows; writes by
    filter add ``rows`` rows of their own and remove them afterwards)."""
    ids = [record["id"] for record in await stage_.pool.fetch(
        "SELECT id FROM bench_item WHERE deleted_at IS NULL LIMIT $1", rows)]
    results = await one_row_writes(stage_, plan, ids)
    return results + await writes_by_filter(stage_, rows, rounds=max(3, plan.rounds // 2))


async def _run(quick: bool) -> list[Result]:
    server_url, redis_url = server_urls()
    plan, rows = (Rounds(3, 0.3), 2_000) if quick else (Rounds(7, 1.0), 10_000)
    async with scratch_database(server_url) as url, stage(url, redis_url) as stage_:
        await stage_.ctx.manager(BenchItem).bulk_create({"title": f"item {n}"} for n in range(rows))
        await stage_.sql("VACUUM ANALYZE bench_item")
        print(f"measuring one-statement writes ({'quick' if quick else 'full'}) ...", file=sys.stderr)
        return await measure(stage_, plan, rows=rows)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.set_writes", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="2,000 rows and short rounds")
    results = asyncio.run(_run(parser.parse_args().quick))
    table = Table(title="one-statement writes (PostgreSQL; median of interleaved rounds)", title_justify="left")
    for name in ("operation", "unit", "datalayer", "Tortoise", "asyncpg", "vs Tortoise", "vs asyncpg"):
        table.add_column(name)
    for r in results:
        table.add_row(r.operation, r.unit, f"{r.datalayer:,.0f}", *(f"{v:,.0f}" if v else "—" for v in (r.tortoise, r.asyncpg)),
                      *(f"{r.datalayer / v:.2f}x" if v else "—" for v in (r.tortoise, r.asyncpg)))
    console = Console()
    console.print(table)
    for r in results:
        console.print(f"  {r.operation}: {r.note}")


if __name__ == "__main__":
    main()
