"""The benchmark's ``get`` (one row by id, through ``ctx.manager(...).get``) direct to PostgreSQL and through
PgBouncer in transaction pooling mode, as a ratio to direct.

    python -m benchmarks.pgbouncer                    # starts a PgBouncer of its own on a free loopback port
    python -m benchmarks.pgbouncer --rounds 7 --seconds 1.0

Three contenders, each its own context (one per process at a time, so each round reopens them in turn):
``direct`` (asyncpg's statement cache on), ``direct, no statement cache`` (``statement_cache_size=0``: what
the PgBouncer setting alone costs) and ``pgbouncer`` (``DB_PGBOUNCER=true``). One caller, then 16 concurrent
callers over a pool of 10. PostgreSQL from ``DATABASE_URL`` (default the local server); a scratch database is
created and dropped. PgBouncer is ``/usr/sbin/pgbouncer``, run as the ``postgres`` user when run as root.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
from urllib.parse import urlsplit

import asyncpg

from benchmarks.harness import concurrent_latencies, machine, rate
from benchmarks.models import BenchItem
from benchmarks.scratch import POOL_SIZE, scratch_database, server_urls
from datalayer import Settings, close_context, get_context
from tests.replication_support import PgBouncer  # the suite's helper: start and stop by pid

MODELS = ["benchmarks.models"]
ROWS = 1_000
CALLERS = 16


def _settings(url: str, **extra: object) -> Settings:
    return Settings(DATABASE_URL=url, DB_MAX_CONNECTIONS=POOL_SIZE, DATALAYER_ENV="test", _env_file=None, **extra)


async def _fill(url: str) -> list[str]:
    await get_context(settings=_settings(url), models=MODELS, apps=["core"], generate_schemas=True)
    await close_context()
    connection = await asyncpg.connect(url)
    try:
        await connection.execute(
            "INSERT INTO bench_item (id, created_at, updated_at, version, title, body, status, views) "
            "SELECT gen_random_uuid(), now(), now(), 1, 'row ' || g, '', 'draft', g FROM generate_series(1, $1) g", ROWS)
        return [str(row["id"]) for row in await connection.fetch("SELECT id FROM bench_item")]
    finally:
        await connection.close()


async def _measure(settings: Settings, ids: list[str], seconds: float) -> tuple[float, float, float]:
    """(gets/s of one caller, gets/s of 16 callers, p99 ms of 16 callers) on a context of ``settings``."""
    ctx = await get_context(settings=settings, models=MODELS, apps=["core"])
    try:
        items = ctx.manager(BenchItem)

        async def one() -> object:
            return await items.get(random.choice(ids))

        await rate(one, 0.2)  # warm: pool connections, statement caches
        single = await rate(one, seconds)
        calls = max(20, int(single * seconds / CALLERS))
        concurrent = await concurrent_latencies(CALLERS, calls, lambda _: one)
        return single, concurrent.ops_per_s, concurrent.percentile(0.99)
    finally:
        await close_context()


async def main(rounds: int, seconds: float) -> None:
    server, _ = server_urls()
    async with scratch_database(server) as url:
        ids = await _fill(url)
        parts = urlsplit(url)
        bouncer = PgBouncer(parts.port or 5432, pool_size=POOL_SIZE)
        try:
            bouncer.start()
            contenders = {
                "direct": _settings(url),
                "direct, no statement cache": _settings(url + "?statement_cache_size=0"),
                "pgbouncer (transaction pooling)": _settings(bouncer.url(parts.path.lstrip("/")), DB_PGBOUNCER=True),
            }
            samples: dict[str, list[tuple[float, float, float]]] = {name: [] for name in contenders}
            names = list(contenders)
            for round_index in range(rounds):
                shift = round_index % len(names)
                for name in names[shift:] + names[:shift]:
                    samples[name].append(await _measure(contenders[name], ids, seconds))
        finally:
            bouncer.destroy()
    info = machine()
    print(f"get by id, median of {rounds} rounds of {seconds:g} s; {info.get('cpu', '')}; pool {POOL_SIZE}, "
          f"PgBouncer default_pool_size {POOL_SIZE}")
    print(f"{'contender':34} {'1 caller /s':>12} {'ratio':>6} {f'{CALLERS} callers /s':>14} {'ratio':>6} {'p99 ms':>8}")
    base_single = statistics.median(s[0] for s in samples["direct"])
    base_many = statistics.median(s[1] for s in samples["direct"])
    for name, values in samples.items():
        single = statistics.median(v[0] for v in values)
        many = statistics.median(v[1] for v in values)
        p99 = statistics.median(v[2] for v in values)
        print(f"{name:34} {single:12.0f} {single / base_single:6.2f} {many:14.0f} {many / base_many:6.2f} {p99:8.2f}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=1.0)
    options = parser.parse_args()
    asyncio.run(main(options.rounds, options.seconds))
