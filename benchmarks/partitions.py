"""System logs partitioned by day versus one plain table: insert rates, a one-day count, and retention.

    python -m benchmarks.partitions --rows 1000000            # about 2 minutes on a shared 2-core machine
    python -m benchmarks.partitions --rows 10000000 --days 60 --keep 30 --convert

Each layout gets a scratch database beside DATABASE_URL's (dropped afterwards), migrated by datalayer's
migrations; the plain one then has the partitioning migration rolled back. Both are filled by the server
with ``--rows`` rows spread evenly over the last ``--days`` days in time order (as logs arrive), with
time-ordered ids like datalayer's. Then, through datalayer: single-row ``log_system_event`` calls and a
``bulk_create`` (COPY), a count of one day's rows, ``cleanup --days KEEP`` (dry run, then real, with the
WAL it wrote) and the ``VACUUM`` a plain table's DELETE leaves behind.
``--convert`` also times the partitioning migration on what the plain table keeps after the cleanup.

``--audit`` measures instead whether the audit log would gain from the same layout: ``history()`` looks a
record up by ``record_id`` with no time bound, so it is timed on ``audit_log`` as migrated and on a copy
partitioned by day (same rows, same indexes). ``--usage`` does the same for ML usage rows (``model_usage``):
``usage_statistics()``'s query (one model over the last 7 days, one model over all time, every model over one
day) on a copy as migrated (its covering index), a copy with the plain ``(ml_model_id, at)`` index it had
before, and that copy partitioned by day (same rows; no foreign keys on any).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import random
import statistics
import sys
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from benchmarks.harness import machine, rate
from benchmarks.scratch import scratch_database, server_urls
from datalayer import Settings, close_context, ensure_partitions, get_context, migrations
from datalayer.maintenance import cleanup

FILL_CHUNK = 500_000
BULK_ROWS = 20_000
_FILL = """
INSERT INTO system_logs (id, created_at, updated_at, service, level, message, details)
SELECT (lpad(to_hex((extract(epoch FROM t) * 1000)::bigint), 12, '0') || '7' || substr(h, 1, 3) || '8'
        || substr(h, 4, 15))::uuid,
       t, t, 'svc-' || (g % 20), (ARRAY['DEBUG', 'INFO', 'WARNING', 'ERROR', 'CRITICAL'])[1 + g % 5],
       'event ' || g, jsonb_build_object('n', g, 'path', '/api/items/' || (g % 1000))
FROM (SELECT g, md5(g::text) AS h, $1::timestamptz + g * $2::float8 * interval '1 second' AS t
      FROM generate_series($3::bigint, $4::bigint) g) rows"""
_SIZE = """SELECT CASE WHEN (SELECT relkind FROM pg_class WHERE oid = 'system_logs'::regclass) = 'p'
            THEN (SELECT sum(pg_total_relation_size(relid)) FROM pg_partition_tree('system_logs'))
            ELSE pg_total_relation_size('system_logs') END::bigint AS bytes"""


@dataclass
class Figures:
    layout: str
    fill_rows_per_s: float = 0.0
    log_event_per_s: float = 0.0
    bulk_rows_per_s: float = 0.0
    one_day_count_ms: float = 0.0
    dry_run_s: float = 0.0
    cleanup_s: float = 0.0
    removed: int = 0
    cleanup_wal_mb: float = 0.0
    vacuum_s: float = 0.0
    bytes_before: int = 0
    bytes_after: int = 0
    convert_s: float | None = None
    notes: list[str] = field(default_factory=list)


def settings_for(url: str) -> Settings:
    return Settings(DATABASE_URL=url, DATALAYER_ENV="test", BCRYPT_ROUNDS=4, DB_SLOW_QUERY_MS=1e9, _env_file=None)


async def fill(ctx, rows: int, start: dt.datetime, days: int) -> float:
    """Rows per second of the server-side fill of ``rows`` rows from ``start`` over ``days`` days."""
    step = days * 86_400 / rows
    began = time.perf_counter()
    for first in range(0, rows, FILL_CHUNK):
        await ctx.raw(_FILL, [start, step, first, min(rows, first + FILL_CHUNK) - 1])
    elapsed = time.perf_counter() - began
    await ctx.raw("VACUUM ANALYZE system_logs")  # so the VACUUM after the cleanup measures only what it left
    return rows / elapsed


async def measure(layout: str, url: str, rows: int, days: int, keep: int, convert: bool) -> Figures:
    settings = settings_for(url)
    await migrations.upgrade(settings)
    if layout == "plain":
        await migrations.downgrade(1, settings, app="analysis")
    figures = Figures(layout)
    now = dt.datetime.now(dt.timezone.utc)
    start = now - dt.timedelta(days=days)
    ctx = await get_context(settings=settings, models=())
    try:
        if layout == "partitioned":  # as the migration leaves a database whose logs go back `days` days
            created = await ensure_partitions("day", days + 7, now=start)
            figures.notes.append(f"{len(created)} daily partitions created ahead of the fill")
        print(f"{layout}: filling {rows:,} rows ...", file=sys.stderr)
        figures.fill_rows_per_s = await fill(ctx, rows, start, days)
        figures.log_event_per_s = await rate(lambda: ctx.system_logs.log_system_event("bench", "INFO", "one"), 3.0)
        batch = [{"service": "bench", "level": "INFO", "message": f"bulk {i}", "details": {"i": i}}
                 for i in range(BULK_ROWS)]
        began = time.perf_counter()
        await ctx.system_logs.bulk_create(batch)
        figures.bulk_rows_per_s = BULK_ROWS / (time.perf_counter() - began)
        day = start + dt.timedelta(days=days // 2)
        began = time.perf_counter()
        await ctx.raw("SELECT count(*) FROM system_logs WHERE created_at >= $1 AND created_at < $2",
                      [day, day + dt.timedelta(days=1)])
        figures.one_day_count_ms = (time.perf_counter() - began) * 1000
        figures.bytes_before = (await ctx.raw(_SIZE))[0]["bytes"]
        print(f"{layout}: cleanup ...", file=sys.stderr)
        began = time.perf_counter()
        dry = await cleanup(ctx.models, days=keep, now=now, dry_run=True)
        figures.dry_run_s = time.perf_counter() - began
        wal = (await ctx.raw("SELECT pg_current_wal_lsn()::text AS lsn"))[0]["lsn"]
        began = time.perf_counter()
        done = await cleanup(ctx.models, days=keep, now=now)
        figures.cleanup_s = time.perf_counter() - began
        figures.cleanup_wal_mb = (await ctx.raw("SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), ($1::text)::pg_lsn) AS b",
                                                [wal]))[0]["b"] / 2**20
        began = time.perf_counter()
        await ctx.raw("VACUUM system_logs")  # what a DELETE leaves to (auto)vacuum
        figures.vacuum_s = time.perf_counter() - began
        figures.removed = sum(count for table, _, count in done if table == "system_logs")
        assert dry == done, (dry, done)
        figures.bytes_after = (await ctx.raw(_SIZE))[0]["bytes"]
    finally:
        await close_context()
    if convert and layout == "plain":
        print(f"{layout}: converting the remaining rows ...", file=sys.stderr)
        began = time.perf_counter()
        await migrations.upgrade(settings)
        figures.convert_s = time.perf_counter() - began
    return figures


def report(results: list[Figures], rows: int, days: int, keep: int) -> None:
    print(f"\nsystem_logs: {rows:,} rows over {days} days; cleanup keeps {keep} days  ({machine()['cpu']})\n")
    lines = [
        ("fill, server-side INSERT ... SELECT (rows/s)", lambda f: f"{f.fill_rows_per_s:,.0f}"),
        ("log_system_event, one row a call (calls/s)", lambda f: f"{f.log_event_per_s:,.0f}"),
        (f"bulk_create of {BULK_ROWS:,} rows, COPY (rows/s)", lambda f: f"{f.bulk_rows_per_s:,.0f}"),
        ("count of one day's rows (ms)", lambda f: f"{f.one_day_count_ms:,.1f}"),
        ("cleanup --dry-run (s)", lambda f: f"{f.dry_run_s:,.2f}"),
        ("cleanup (s)", lambda f: f"{f.cleanup_s:,.2f}"),
        ("rows removed", lambda f: f"{f.removed:,}"),
        ("WAL written by the cleanup (MB)", lambda f: f"{f.cleanup_wal_mb:,.1f}"),
        ("VACUUM after the cleanup (s)", lambda f: f"{f.vacuum_s:,.2f}"),
        ("table size before / after cleanup and VACUUM (MB)",
         lambda f: f"{f.bytes_before / 2**20:,.0f} / {f.bytes_after / 2**20:,.0f}"),
    ]
    if any(f.convert_s is not None for f in results):
        lines.append(("partitioning migration of the rows kept (s)",
                      lambda f: "" if f.convert_s is None else f"{f.convert_s:,.1f}"))
    width = max(len(label) for label, _ in lines)
    print(f"| {'':<{width}} | " + " | ".join(f"{f.layout:>12}" for f in results) + " |")
    print(f"| {'-' * width} | " + " | ".join("-" * 12 for _ in results) + " |")
    for label, value in lines:
        print(f"| {label:<{width}} | " + " | ".join(f"{value(f):>12}" for f in results) + " |")
    for f in results:
        for note in f.notes:
            print(f"{f.layout}: {note}")


_AUDIT_FILL = """
INSERT INTO {table} (id, created_at, updated_at, actor_id, action, table_name, record_id, changes, correlation_id)
SELECT gen_random_uuid(), t, t, NULL, 'update', 'items', 'item-' || (g % $5), jsonb_build_object('n', g), NULL
FROM (SELECT g, $1::timestamptz + g * $2::float8 * interval '1 second' AS t
      FROM generate_series($3::bigint, $4::bigint) g) rows"""
_AUDIT_BY_DAY = """
CREATE TABLE audit_by_day (LIKE audit_log INCLUDING DEFAULTS) PARTITION BY RANGE (created_at);
ALTER TABLE audit_by_day ADD PRIMARY KEY (id, created_at);
CREATE INDEX ON audit_by_day USING hash (record_id);
CREATE TABLE audit_by_day_default PARTITION OF audit_by_day DEFAULT;"""
_HISTORY = ("SELECT * FROM {table} WHERE table_name = 'items' AND record_id = $1 "
            "ORDER BY created_at, id LIMIT 100")


async def _add_day_partitions(connection: Any, table: str, start: dt.datetime, days: int) -> None:
    """``{table}_0`` .. ``{table}_{days}``: one partition of ``table`` per UTC day from ``start``'s."""
    for day in range(days + 1):
        low = (start + dt.timedelta(days=day)).strftime("%Y-%m-%d")
        high = (start + dt.timedelta(days=day + 1)).strftime("%Y-%m-%d")
        await connection.execute(f"CREATE TABLE {table}_{day} PARTITION OF {table} "
                                 f"FOR VALUES FROM ('{low} 00:00+00') TO ('{high} 00:00+00')")


async def _fill(connection: Any, sql: str, tables: tuple[str, ...], rows: int, start: dt.datetime, days: int,
                *extra: Any) -> None:
    """The same ``rows`` rows into each of ``tables`` (``sql``: $1 start, $2 seconds per row, $3..$4 the
    numbers of a chunk, then ``extra``), vacuumed and analysed afterwards."""
    for table in tables:
        print(f"filling {table} with {rows:,} rows ...", file=sys.stderr)
        for first in range(0, rows, FILL_CHUNK):
            await connection.execute(sql.format(table=table), start, days * 86_400 / rows, first,
                                     min(rows, first + FILL_CHUNK) - 1, *extra)
        await connection.execute(f"VACUUM ANALYZE {table}")  # as autovacuum leaves append-only rows


async def _interleaved_ms(connection: Any, calls: dict[str, list[tuple[str, tuple[Any, ...]]]]) -> dict[str, float]:
    """Median over 5 rounds (after a warm-up) of the mean ms per statement of each name's ``(sql, args)``
    list, the names taking turns."""
    timings: dict[str, list[float]] = {name: [] for name in calls}
    for round_index in range(6):
        for name, statements in calls.items():
            began = time.perf_counter()
            for sql, args in statements:
                await connection.fetch(sql, *args)
            if round_index:
                timings[name].append((time.perf_counter() - began) * 1000 / len(statements))
    return {name: statistics.median(values) for name, values in timings.items()}


async def audit_lookups(url: str, rows: int, days: int) -> dict[str, float]:
    """Mean ms of a ``history()`` lookup by record id, on ``audit_log`` and on a copy partitioned by day."""
    import asyncpg

    await migrations.upgrade(settings_for(url))
    connection = await asyncpg.connect(url)
    try:
        await connection.execute(_AUDIT_BY_DAY)
        start = dt.datetime.now(dt.timezone.utc) - dt.timedelta(days=days)
        await _add_day_partitions(connection, "audit_by_day", start, days)
        records = max(1, rows // 5)  # five changes per record, spread over the whole span
        await _fill(connection, _AUDIT_FILL, ("audit_log", "audit_by_day"), rows, start, days, records)
        picks = [(f"item-{random.randrange(records)}",) for _ in range(500)]
        return await _interleaved_ms(connection, {
            table: [(_HISTORY.format(table=table), pick) for pick in picks] for table in ("audit_log", "audit_by_day")})
    finally:
        await connection.close()


_USAGE_TABLES = """
CREATE TABLE usage_migrated (LIKE model_usage INCLUDING ALL);
CREATE TABLE usage_plain (LIKE model_usage INCLUDING DEFAULTS);
ALTER TABLE usage_plain ADD PRIMARY KEY (id);
CREATE INDEX ON usage_plain (ml_model_id, at);
CREATE INDEX ON usage_plain (api_key_id, at);
CREATE INDEX ON usage_plain (at);
CREATE TABLE usage_by_day (LIKE model_usage INCLUDING DEFAULTS) PARTITION BY RANGE (at);
ALTER TABLE usage_by_day ADD PRIMARY KEY (id, at);
CREATE INDEX ON usage_by_day (ml_model_id, at);
CREATE INDEX ON usage_by_day (api_key_id, at);
CREATE INDEX ON usage_by_day (at);
CREATE TABLE usage_by_day_default PARTITION OF usage_by_day DEFAULT;"""
_USAGE_FILL = """
INSERT INTO {table} (id, created_at, updated_at, ml_model_id, api_key_id, user_id, endpoint, latency_ms, status_code,
                     request_size, response_size, at)
SELECT gen_random_uuid(), t, t, ('00000000-0000-4000-8000-' || lpad(to_hex(g % $5), 12, '0'))::uuid, NULL, NULL,
       '/predict', (g % 997) / 10.0, CASE WHEN g % 50 = 0 THEN 500 ELSE 200 END, 512, 2048, t
FROM (SELECT g, $1::timestamptz + g * $2::float8 * interval '1 second' AS t
      FROM generate_series($3::bigint, $4::bigint) g) rows"""
#: ``ModelUsageManager.usage_statistics``' statement (PostgreSQL), on ``{table}``
_STATISTICS = (
    "SELECT ml_model_id, to_char(at AT TIME ZONE 'UTC', 'YYYY-MM-DD') AS day, COUNT(*) AS requests, "
    "SUM(CASE WHEN status_code >= 400 THEN 1 ELSE 0 END) AS errors, AVG(latency_ms), MAX(latency_ms), "
    "SUM(request_size), SUM(response_size) FROM {table} {where} GROUP BY ml_model_id, day ORDER BY day, ml_model_id")
USAGE_MODELS = 50


async def usage_statistics_timings(url: str, rows: int, days: int) -> dict[str, dict[str, float]]:
    """Mean ms of ``usage_statistics()``'s query per shape on three copies of ``model_usage``: as migrated
    (its covering index), plain with the index it had before, and that partitioned by day:
    ``{shape: {"usage_migrated" | "usage_plain" | "usage_by_day": ms}}``."""
    import asyncpg

    await migrations.upgrade(settings_for(url))
    connection = await asyncpg.connect(url)
    try:
        await connection.execute(_USAGE_TABLES)
        now = dt.datetime.now(dt.timezone.utc)
        start = now - dt.timedelta(days=days)
        await _add_day_partitions(connection, "usage_by_day", start, days)
        tables = ("usage_migrated", "usage_plain", "usage_by_day")
        await _fill(connection, _USAGE_FILL, tables, rows, start, days, USAGE_MODELS)
        models = [(uuid.UUID(f"00000000-0000-4000-8000-{n:012x}"),) for n in range(USAGE_MODELS)]
        day = (now - dt.timedelta(days=days // 2)).replace(hour=0, minute=0, second=0, microsecond=0)
        shapes = {
            "one model, last 7 days": ("WHERE ml_model_id = $1 AND at >= $2", [(m, now - dt.timedelta(days=7)) for m, in models]),
            "one model, all time": ("WHERE ml_model_id = $1", models),
            "every model, one day": ("WHERE at >= $1 AND at < $2", [(day, day + dt.timedelta(days=1))] * 5),
        }
        return {shape: await _interleaved_ms(connection, {
            table: [(_STATISTICS.format(table=table, where=where), args) for args in calls] for table in tables})
            for shape, (where, calls) in shapes.items()}
    finally:
        await connection.close()


async def run(rows: int, days: int, keep: int, convert: bool) -> list[Figures]:
    server_url, _ = server_urls()
    results = []
    for layout in ("partitioned", "plain"):
        async with scratch_database(server_url) as url:
            results.append(await measure(layout, url, rows, days, keep, convert))
    return results


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.partitions", description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="log rows in each table (default 1,000,000)")
    parser.add_argument("--days", type=int, default=60, help="days the rows span, ending now (default 60)")
    parser.add_argument("--keep", type=int, default=30, help="cleanup --days: days kept (default 30)")
    parser.add_argument("--convert", action="store_true", help="also time the migration on the plain table's rows")
    parser.add_argument("--audit", action="store_true", help="measure the audit log's lookups instead (see above)")
    parser.add_argument("--usage", action="store_true", help="measure usage_statistics() on model_usage instead")
    args = parser.parse_args()
    if args.rows < 1 or not 0 <= args.keep < args.days:
        parser.error("--rows must be >= 1 and 0 <= --keep < --days")
    if args.usage:
        async def usage() -> dict[str, dict[str, float]]:
            async with scratch_database(server_urls()[0]) as url:
                return await usage_statistics_timings(url, args.rows, args.days)

        timed = asyncio.run(usage())
        print(f"\nmodel_usage: {args.rows:,} rows over {args.days} days, {USAGE_MODELS} models, "
              "usage_statistics() mean ms per call")
        for shape, by_table in timed.items():
            print(f"  {shape}: as migrated (covering index) {by_table['usage_migrated']:.2f}   plain index "
                  f"{by_table['usage_plain']:.2f}   that partitioned by day {by_table['usage_by_day']:.2f}")
        return
    if args.audit:
        async def audit() -> dict[str, float]:
            async with scratch_database(server_urls()[0]) as url:
                return await audit_lookups(url, args.rows, args.days)

        found = asyncio.run(audit())
        print(f"\naudit_log: {args.rows:,} rows over {args.days} days, history() by record_id, mean ms per lookup")
        print(f"  plain (as migrated): {found['audit_log']:.3f}   partitioned by day: {found['audit_by_day']:.3f}")
        return
    report(asyncio.run(run(args.rows, args.days, args.keep, args.convert)), args.rows, args.days, args.keep)


if __name__ == "__main__":
    main()
