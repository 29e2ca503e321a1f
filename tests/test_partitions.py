"""Partitioned system logs (datalayer/partitions.py, migration analysis/1_..._partition_system_logs): the
migration keeps every row both ways, partitions are made ahead idempotently, rows land where their date says,
retention drops whole partitions, and a query by time reads only the partitions it needs.

The partition tests are PostgreSQL-only (SQLite has no partitioned tables); on SQLite the same calls are
checked to be harmless on the plain table. Each PostgreSQL test works in a year of its own (2001-2006), far
from today's partitions in the session database.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
import re
import sqlite3
import uuid

import asyncpg
import pytest

from datalayer import close_context, describe_partitions, ensure_partitions, get_context, maintain, migrations
from datalayer.analysis.models import SystemLog
from datalayer.maintenance import cleanup
from datalayer.partitions import interval_start, next_start, partition_name
from datalayer.testing import TestDatabase

UTC = dt.timezone.utc
postgres_only = pytest.mark.postgres_only  # skipped on SQLite: "runs on postgres only"
MIGRATION = next(name for name in migrations.history() if name.startswith("analysis/1_"))


def at(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> dt.datetime:
    return dt.datetime(year, month, day, hour, minute, tzinfo=UTC)


async def logs_at(*moments: dt.datetime) -> list[SystemLog]:
    """Rows dated ``moments`` (the manager stamps ``created_at`` itself; a backfill writes the model directly)."""
    rows = [SystemLog(service="svc", level="INFO", message=f"at {m.isoformat()}", details={}, created_at=m)
            for m in moments]
    await SystemLog.bulk_create(rows)
    return rows


async def placement(ctx) -> dict[str, str]:
    """Row id -> the partition holding it."""
    rows = await ctx.raw("SELECT id::text AS id, tableoid::regclass::text AS partition FROM system_logs")
    return {row["id"]: row["partition"] for row in rows}


async def table_names(ctx) -> set[str]:
    return {p.name for p in (await describe_partitions()).partitions}


# -- the migration ------------------------------------------------------------------------------------------


async def on_database(url: str, sql: str, *args: object) -> list[tuple]:
    if url.startswith("postgres"):
        connection = await asyncpg.connect(url)
        try:
            return [tuple(r) for r in await connection.fetch(sql, *args)]
        finally:
            await connection.close()
    with sqlite3.connect(url.removeprefix("sqlite://")) as connection:
        rows = connection.execute(sql.replace("$", "?"), args).fetchall()
        connection.commit()
        return rows


async def insert_logs(url: str, dates: list[dt.datetime]) -> None:
    """One row per date, written straight into ``system_logs`` (message ``row <i>``)."""
    sql = ("INSERT INTO system_logs (id, created_at, updated_at, service, level, message, details) "
           "VALUES ($1, $2, $2, 'svc', 'INFO', $3, $4)")
    rows = [(uuid.uuid4(), moment, f"row {i}", json.dumps({"n": i})) for i, moment in enumerate(dates)]
    if url.startswith("postgres"):
        connection = await asyncpg.connect(url)
        try:
            await connection.executemany(sql, rows)
        finally:
            await connection.close()
        return
    with sqlite3.connect(url.removeprefix("sqlite://")) as connection:  # stored as Tortoise stores them
        connection.executemany(sql.replace("$", "?"), [(str(i), m.isoformat(sep=" "), n, d) for i, m, n, d in rows])


async def stored_logs(url: str) -> list[tuple]:
    return await on_database(url, "SELECT id, created_at, service, message, details FROM system_logs ORDER BY id")


async def test_the_migration_keeps_every_row_and_its_downgrade_gives_back_a_plain_table(datalayer_empty_database):
    database: TestDatabase = datalayer_empty_database
    url, settings = database.url, database.settings
    await migrations.upgrade(settings)
    assert await migrations.downgrade(1, settings, app="analysis") == [MIGRATION]  # a database from before it
    now = dt.datetime.now(UTC)
    dates = [now - dt.timedelta(hours=7 * i) for i in range(300)]  # 87 days back: daily and monthly partitions
    dates += [now - dt.timedelta(days=3 * 365), now + dt.timedelta(days=60)]  # a monthly one; the default one
    await insert_logs(url, dates)
    before = await stored_logs(url)
    assert len(before) == len(dates)

    assert await migrations.upgrade(settings) == [MIGRATION]

    assert await stored_logs(url) == before
    if database.is_postgres:
        assert await on_database(url, "SELECT relkind::text FROM pg_class WHERE relname = 'system_logs'") == [("p",)]
        where = dict(await on_database(url, "SELECT message, tableoid::regclass::text FROM system_logs"))
        assert where["row 0"] == partition_name("system_logs", interval_start(now, "day"))
        assert where[f"row {len(dates) - 2}"] == partition_name("system_logs", interval_start(dates[-2], "month"))
        assert where[f"row {len(dates) - 1}"] == "system_logs_default", "beyond next week: the default partition"
        key = await on_database(url, "SELECT pg_get_constraintdef(oid) FROM pg_constraint WHERE conname = 'system_logs_pkey'")
        assert key == [("PRIMARY KEY (id, created_at)",)]

    assert await migrations.downgrade(1, settings, app="analysis") == [MIGRATION]

    assert await stored_logs(url) == before
    if database.is_postgres:
        assert await on_database(url, "SELECT relkind::text FROM pg_class WHERE relname = 'system_logs'") == [("r",)]
        assert await on_database(url, "SELECT count(*) FROM pg_class WHERE relispartition AND relname LIKE 'system\\_logs%'") == [(0,)]
    await close_context()
    try:  # on the plain table every partition call is harmless, and retention deletes rows as before
        ctx = await get_context(settings=settings, models=())
        assert await ensure_partitions("day", 3) == []
        report = await maintain(settings)
        assert (report.created, report.logs.partitioned, report.logs.partitions) == ([], False, [])
        dry = await cleanup(ctx.models, days=30, dry_run=True)
        expected = sum(1 for moment in dates if moment < now - dt.timedelta(days=30))
        assert [r for r in dry if r[0] == "system_logs"] == [("system_logs", "logs older than 30 days", expected)]
        assert await cleanup(ctx.models, days=30) == dry
        assert len(await stored_logs(url)) == len(dates) - expected
    finally:
        await close_context()


# -- creating partitions ahead ------------------------------------------------------------------------------


@postgres_only
async def test_ensure_partitions_creates_each_interval_once_even_when_run_twice_at_once(ctx):
    names = await ensure_partitions("day", 3, now=at(2001, 3, 14, 22))

    assert names == [f"system_logs_p200103{d}" for d in (14, 15, 16, 17)]
    assert await ensure_partitions("day", 3, now=at(2001, 3, 14, 1)) == [], "idempotent"
    both = await asyncio.gather(*(ensure_partitions("day", 4, now=at(2001, 5, 1)) for _ in range(2)))
    assert sorted(both[0] + both[1]) == [f"system_logs_p2001050{d}" for d in range(1, 6)], "one of them made each"
    weeks = await ensure_partitions("week", 1, now=at(2001, 7, 4))  # a Wednesday
    months = await ensure_partitions("month", 1, now=at(2001, 9, 15))

    assert weeks == ["system_logs_p20010702", "system_logs_p20010709"]
    assert months == ["system_logs_p20010901", "system_logs_p20011001"]
    bounds = {p.name: (p.start, p.end) for p in (await describe_partitions()).partitions}
    assert bounds["system_logs_p20010314"] == (at(2001, 3, 14), at(2001, 3, 15))
    assert bounds["system_logs_p20010702"] == (at(2001, 7, 2), at(2001, 7, 9))
    assert bounds["system_logs_p20011001"] == (at(2001, 10, 1), at(2001, 11, 1))
    assert await ensure_partitions("month", 0, now=at(2001, 3, 20)) == ["system_logs_p20010301", "system_logs_p20010318"], \
        "a month over existing days fills only the gaps"


@postgres_only
async def test_rows_land_in_the_partition_of_their_date_and_far_past_ones_in_the_default(ctx, caplog):
    now = dt.datetime.now(UTC)
    yesterday = now - dt.timedelta(days=1)
    await ensure_partitions("day", 0, now=yesterday)
    today_row = await ctx.system_logs.log_system_event("api", "INFO", "today")
    copied = await ctx.system_logs.bulk_create([{"service": "api", "level": "ERROR", "message": "copied"}])
    old_rows = await logs_at(yesterday, at(2002, 2, 2))

    where = await placement(ctx)

    assert where[str(today_row.id)] == where[str(copied[0].id)] == partition_name("system_logs", interval_start(now, "day"))
    assert where[str(old_rows[0].id)] == partition_name("system_logs", interval_start(yesterday, "day"))
    assert where[str(old_rows[1].id)] == "system_logs_default"
    assert (await ctx.system_logs.get(old_rows[1].id)).message == old_rows[1].message
    with caplog.at_level(logging.WARNING, logger="datalayer.maintenance"):
        report = await maintain(ctx.settings)
    assert report.logs.partitioned and report.logs.default_rows == 1
    assert "1 row(s) in system_logs's default partition" in caplog.text
    assert await ensure_partitions("day", 0, now=at(2002, 2, 2)) == ["system_logs_p20020202"]
    assert (await placement(ctx))[str(old_rows[1].id)] == "system_logs_p20020202", "moved out of the default"
    await ctx.system_logs.delete(old_rows[1].id)
    assert await ctx.system_logs.count() == 3


# -- retention ----------------------------------------------------------------------------------------------


@postgres_only
async def test_cleanup_drops_old_partitions_whole_and_deletes_only_the_straddling_rows(ctx):
    await ensure_partitions("day", 9, now=at(2003, 6, 1))
    days = [at(2003, 6, d) for d in range(1, 11)]
    rows = await logs_at(*(day + dt.timedelta(hours=h, minutes=30) for day in days for h in (0, 12, 23)),
                         at(1995, 1, 1), at(1995, 1, 2))  # two in the default partition
    now = at(2003, 6, 10, 12, 15)  # 5 days: the cutoff is 2003-06-05 12:15
    cutoff = now - dt.timedelta(days=5)
    kept = sorted(str(r.id) for r in rows if r.created_at >= cutoff)
    before_tables, before_rows = await table_names(ctx), await ctx.system_logs.count()

    dry = [r for r in await cleanup(ctx.models, days=5, now=now, dry_run=True) if r[0] == "system_logs"]

    assert (await table_names(ctx), await ctx.system_logs.count()) == (before_tables, before_rows), "dry run: no change"
    assert [count for _, _, count in dry] == [12, 3], "4 whole days of 3 rows; 1 straddling row + 2 default rows"
    done = [r for r in await cleanup(ctx.models, days=5, now=now) if r[0] == "system_logs"]
    assert done == dry
    names = await table_names(ctx)
    assert not {f"system_logs_p2003060{d}" for d in range(1, 5)} & names, "dropped"
    assert {f"system_logs_p200306{d:02}" for d in range(5, 11)} <= names
    assert sorted(r["id"] for r in await ctx.raw("SELECT id::text AS id FROM system_logs")) == kept
    assert (await describe_partitions()).default_rows == 0


@postgres_only
async def test_a_partition_starting_at_the_cutoff_is_kept_whole(ctx):
    await ensure_partitions("day", 1, now=at(2006, 1, 1))
    rows = await logs_at(at(2006, 1, 1), at(2006, 1, 2, 9))  # the first one exactly at the cutoff

    results = [r for r in await cleanup(ctx.models, days=1, now=at(2006, 1, 2)) if r[0] == "system_logs"]

    assert [count for _, _, count in results] == [0, 0]
    assert {"system_logs_p20060101", "system_logs_p20060102"} <= await table_names(ctx)
    assert await ctx.system_logs.count() == len(rows)


# -- reading ------------------------------------------------------------------------------------------------


@postgres_only
async def test_a_query_by_time_reads_only_the_partitions_that_can_hold_its_rows(ctx):
    await ensure_partitions("day", 9, now=at(2004, 1, 1))
    await logs_at(*(at(2004, 1, d, 12) for d in range(1, 11)))
    since = at(2004, 1, 8)
    ctx.reset_stats()

    page = await ctx.system_logs.find_many(filters={"created_at__gte": since}, limit=50)

    assert [row.message for row in page.items] == [f"at 2004-01-{d:02}T12:00:00+00:00" for d in (8, 9, 10)]
    select = next(s.shape for s in ctx.stats().queries.shapes
                  if s.shape.startswith("SELECT") and "system_logs" in s.shape and "LIMIT" in s.shape.upper())
    numbered = iter(range(1, 10))
    sql = re.sub(r"\?", lambda _: f"${next(numbered)}", select)  # the statement the manager ran, as sent
    values = [since, 50, 0][: select.count("?")]  # the time bound, then LIMIT and OFFSET when bound too
    plan = "\n".join(row["QUERY PLAN"] for row in await ctx.raw(f"EXPLAIN {sql}", values))
    scanned = set(re.findall(r" on (system_logs_\w+)", plan))
    partitions = (await describe_partitions()).partitions
    assert scanned == {p.name for p in partitions if p.end is None or p.end > since} | {"system_logs_default"}, plan
    assert not {f"system_logs_p2004010{d}" for d in range(1, 8)} & scanned


# -- the background monitor ---------------------------------------------------------------------------------


@postgres_only
async def test_the_health_monitor_recreates_a_missing_partition(ctx):
    last = partition_name("system_logs", next_start(interval_start(dt.datetime.now(UTC), "day"), "day")
                          + dt.timedelta(days=ctx.settings.log_partitions_ahead - 1))
    await ctx.raw(f'DROP TABLE IF EXISTS "{last}"')
    assert last not in await table_names(ctx)
    ctx.start_monitoring(60)
    try:
        for _ in range(400):  # at most 20 s: the upkeep runs right after the first check
            if last in await table_names(ctx):
                break
            await asyncio.sleep(0.05)
    finally:
        ctx.stop_monitoring()
        await ctx.health_monitor.aclose()
    assert last in await table_names(ctx)


async def test_a_bad_interval_or_count_is_a_validation_error(ctx):
    from datalayer import ValidationError

    with pytest.raises(ValidationError, match="interval: must be one of day, week, month"):
        await ensure_partitions("hour", 1)  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match="ahead"):
        await ensure_partitions("day", -1)
