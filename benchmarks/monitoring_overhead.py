"""What monitoring costs on ``get``: datalayer's instrumented engines against Tortoise's plain ones.

Both runs go through the same ``ModelManager.get`` on the same database; only the engine differs (timed
statements + acquire deadline vs. none). Rounds alternate between the engines to cancel drift.

    python benchmarks/monitoring_overhead.py                 # SQLite (temp file) and PostgreSQL
    BENCH_PG_URL=postgres://postgres@127.0.0.1:5432/postgres python benchmarks/monitoring_overhead.py
"""

from __future__ import annotations

import asyncio
import os
import statistics
import sys
import tempfile
import time
import uuid

import asyncpg
from tortoise import Tortoise, fields
from tortoise.backends.base.executor import EXECUTOR_CACHE

from datalayer import AuditedModel, Settings
from datalayer.config import tortoise_config
from datalayer.project import load_project
from datalayer.context import DataContext
from datalayer.monitoring import QueryMonitor

ROUNDS = int(os.environ.get("BENCH_ROUNDS", 21))
GETS_PER_ROUND = int(os.environ.get("BENCH_GETS", 800))
PG_URL = os.environ.get("BENCH_PG_URL", "postgres://postgres@127.0.0.1:5432/postgres")
PLAIN_ENGINES = {"datalayer.backends.sqlite": "tortoise.backends.sqlite",
                 "datalayer.backends.postgres": "tortoise.backends.asyncpg"}


class BenchRow(AuditedModel):
    name = fields.CharField(max_length=100)

    class Meta:
        table = "bench_monitoring_row"


def _config(settings: Settings, instrumented: bool) -> dict:
    config = tortoise_config(settings, load_project(models=["__main__"]))
    connection = config["connections"]["default"]
    if not instrumented:
        connection["engine"] = PLAIN_ENGINES[connection["engine"]]
        for key in ("acquire_timeout", "slow_query_ms", "log_statements"):
            connection["credentials"].pop(key)
    return config


async def _round(settings: Settings, instrumented: bool, ids: list[uuid.UUID]) -> tuple[float, float]:
    """(wall seconds, CPU seconds) per ``get`` over one round."""
    tortoise = await Tortoise.init(config=_config(settings, instrumented), _enable_global_fallback=True)
    try:
        rows = DataContext(settings, tortoise).manager(BenchRow)
        for row_id in ids[:50]:  # warm the pool, statement caches and executor cache
            await rows.get(row_id)
        wall, cpu = time.perf_counter(), time.process_time()
        for i in range(GETS_PER_ROUND):
            await rows.get(ids[i % len(ids)])
        return (time.perf_counter() - wall) / GETS_PER_ROUND, (time.process_time() - cpu) / GETS_PER_ROUND
    finally:
        await Tortoise.close_connections()
        EXECUTOR_CACHE.clear()


async def _prepare(settings: Settings) -> list[uuid.UUID]:
    tortoise = await Tortoise.init(config=_config(settings, False), _enable_global_fallback=True)
    try:
        await Tortoise.generate_schemas(safe=True)
        rows = DataContext(settings, tortoise).manager(BenchRow)
        return [(await rows.create({"name": f"row {i}"})).id for i in range(200)]
    finally:
        await Tortoise.close_connections()
        EXECUTOR_CACHE.clear()


def _record_cost_us(calls: int = 100_000) -> float:
    """What recording one statement costs (shape lookup, aggregation), free of I/O noise."""
    monitor = QueryMonitor()
    sql = 'SELECT "id","name" FROM "bench_monitoring_row" WHERE "deleted_at" IS NULL AND "id"=$1 LIMIT $2'
    started = time.perf_counter()
    for _ in range(calls):
        monitor.record(sql, 0.0004)
    return (time.perf_counter() - started) / calls * 1e6


async def measure(name: str, settings: Settings) -> dict[str, float]:
    """Median of paired ratios: each instrumented round is compared with the plain round next to it, so load
    from other processes (which drifts over seconds) cancels out."""
    ids = await _prepare(settings)
    pairs = []
    for index in range(ROUNDS):
        if index % 2:  # alternate which engine goes first, so a cost of going second cancels too
            monitored = await _round(settings, True, ids)
            pairs.append((await _round(settings, False, ids), monitored))
        else:
            plain = await _round(settings, False, ids)
            pairs.append((plain, await _round(settings, True, ids)))
    figures = {
        "plain_us": statistics.median(p[0][0] for p in pairs) * 1e6,
        "monitored_us": statistics.median(p[1][0] for p in pairs) * 1e6,
        "wall_overhead_pct": (statistics.median(p[1][0] / p[0][0] for p in pairs) - 1) * 100,
        "cpu_overhead_pct": (statistics.median(p[1][1] / p[0][1] for p in pairs) - 1) * 100,
    }
    figures["record_pct"] = _record_cost_us() / figures["plain_us"] * 100
    sys.stdout.write(
        f"{name:9} plain {figures['plain_us']:7.1f} us/get  monitored {figures['monitored_us']:7.1f} us/get  "
        f"overhead wall {figures['wall_overhead_pct']:+5.1f}%  client CPU {figures['cpu_overhead_pct']:+5.1f}%  "
        f"(median of {ROUNDS} paired rounds x {GETS_PER_ROUND} gets); recording alone "
        f"{figures['record_pct']:.2f}% of a get\n"
    )
    return figures


async def main() -> None:
    with tempfile.TemporaryDirectory() as folder:
        settings = Settings(DATABASE_URL=f"sqlite://{folder}/bench.sqlite3", _env_file=None)
        await measure("sqlite", settings)
    database = f"bench_monitoring_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(PG_URL)
    await admin.execute(f'CREATE DATABASE "{database}"')
    try:
        await measure("postgres", Settings(DATABASE_URL=PG_URL.rsplit("/", 1)[0] + f"/{database}", _env_file=None))
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
        await admin.close()


if __name__ == "__main__":
    asyncio.run(main())
