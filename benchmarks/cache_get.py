"""Cached ``get`` by id (read-through on Redis) against raw asyncpg's uncached get by id, in one run.

    /work/venv/bin/python benchmarks/cache_get.py [--rows 200] [--reads 5000] [--concurrency 16]

Needs PostgreSQL (DATALAYER_BENCH_PG_URL, default postgres://postgres@127.0.0.1:5432/postgres) and Redis
(REDIS_URL, default redis://127.0.0.1:6379/0). Creates and drops its own database.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import sys
import time
import uuid
from pathlib import Path

import asyncpg

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from datalayer import Settings, close_context, get_context  # noqa: E402
from datalayer.cache import Cache, RedisBackend  # noqa: E402

PG_ADMIN = os.environ.get("DATALAYER_BENCH_PG_URL", "postgres://postgres@127.0.0.1:5432/postgres")
REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")


async def run_concurrently(reads: int, concurrency: int, read_one) -> float:
    """ops/s for ``reads`` calls of ``read_one`` spread over ``concurrency`` workers."""
    per_worker = reads // concurrency

    async def worker() -> None:
        for _ in range(per_worker):
            await read_one()

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return per_worker * concurrency / (time.perf_counter() - started)


async def main(rows: int, reads: int, concurrency: int) -> None:
    name = f"datalayer_bench_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(PG_ADMIN)
    await admin.execute(f'CREATE DATABASE "{name}"')
    url = PG_ADMIN.rsplit("/", 1)[0] + f"/{name}"
    try:
        settings = Settings(DATABASE_URL=url, DATALAYER_ENV="test", DB_MAX_CONNECTIONS=concurrency, _env_file=None)
        ctx = await get_context(settings=settings, generate_schemas=True)
        cache = Cache(RedisBackend(REDIS_URL, timeout_s=0.5), namespace=f"bench-{uuid.uuid4().hex[:8]}",
                      read_through_models={"Configuration"}, default_ttl=600)
        ctx.use_cache(cache)
        configs = ctx.configurations
        created = [await configs.create({"key": f"k{i}", "value": {"i": i, "tags": ["x"] * 5},
                                         "description": "benchmark row"}) for i in range(rows)]
        ids = [c.id for c in created]
        await asyncio.sleep(cache.invalidation_guard * 2)
        for pk in ids:  # warm: every row in Redis
            await configs.get(pk)

        pool = await asyncpg.create_pool(url, min_size=concurrency, max_size=concurrency)
        sql = 'SELECT * FROM "configurations" WHERE "id" = $1 AND "deleted_at" IS NULL LIMIT 1'

        async def raw_get() -> None:
            async with pool.acquire() as connection:
                await connection.fetchrow(sql, random.choice(ids))

        async def cached_get() -> None:
            await configs.get(random.choice(ids))

        await run_concurrently(reads // 5, concurrency, raw_get)  # warm both paths
        await run_concurrently(reads // 5, concurrency, cached_get)
        raw = await run_concurrently(reads, concurrency, raw_get)
        cached = await run_concurrently(reads, concurrency, cached_get)
        stats = cache.stats()
        print(f"rows={rows} reads={reads} concurrency={concurrency}")
        print(f"raw asyncpg get by id (uncached): {raw:10.0f} ops/s")
        print(f"datalayer cached get (Redis):      {cached:10.0f} ops/s")
        print(f"ratio cached/raw:                  {cached / raw:10.2f}x  (target >= 1.5x)")
        print(f"cache hit ratio {stats['hit_ratio']}, p95 Redis call {stats['latency_ms']['p95']} ms")
        await pool.close()
        await cache.invalidate_prefix("")
        await close_context()
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=200)
    parser.add_argument("--reads", type=int, default=5000)
    parser.add_argument("--concurrency", type=int, default=16)
    args = parser.parse_args()
    asyncio.run(main(args.rows, args.reads, args.concurrency))
