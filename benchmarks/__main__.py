"""datalayer against raw Tortoise, raw asyncpg and SQLAlchemy 2's async ORM, side by side in one run.

    python -m benchmarks             # full run (about 12 minutes), prints the tables
    python -m benchmarks --quick     # smoke run for CI (about a minute); numbers are not judged
    python -m benchmarks --write-results benchmarks/RESULTS.md

PostgreSQL and Redis come from the settings (DATABASE_URL, REDIS_URL; default: the local servers). The run
creates a scratch database beside DATABASE_URL's and drops it afterwards.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import redis.asyncio as redis

from benchmarks import event_loop, operations, scale, set_writes, sqlalchemy_peer
from benchmarks.harness import Rounds, machine
from benchmarks.report import Report, markdown, print_report
from benchmarks.scratch import scratch_database, server_urls, stage


@dataclass
class Sizes:
    plan: Rounds
    rows: int
    bulk_rows: int
    mixed_calls: int
    depths: list[int]
    bulk_scale: list[int]
    logins: int


FULL = Sizes(Rounds(7, 1.0), rows=10_000, bulk_rows=20_000, mixed_calls=50,
             depths=[1_000, 100_000, 1_000_000], bulk_scale=[10_000, 100_000, 1_000_000], logins=50)
QUICK = Sizes(Rounds(3, 0.1), rows=2_000, bulk_rows=2_000, mixed_calls=5,
              depths=[1_000, 10_000], bulk_scale=[2_000, 10_000], logins=50)


async def servers(url: str, redis_url: str) -> dict[str, str]:
    async with stage(url, redis_url) as stage_:
        postgres = await stage_.pool.fetchval("SHOW server_version")
    client = redis.Redis.from_url(redis_url)
    try:
        redis_version = (await client.info("server"))["redis_version"]
    finally:
        await client.aclose()
    libraries = ", ".join(f"{name} {metadata.version(name)}" for name in ("tortoise-orm", "asyncpg", "redis"))
    return {"postgresql": postgres, "redis": redis_version, "libraries": libraries}


async def run(sizes: Sizes, mode: str) -> Report:
    server_url, redis_url = server_urls()
    async with scratch_database(server_url) as url:
        about = {**machine(), **await servers(url, redis_url)}
        print(f"measuring ({mode}) on {about['cpu']} ...", file=sys.stderr)
        async with stage(url, redis_url) as stage_, sqlalchemy_peer.peer(url) as peer:
            results = await operations.measure(stage_, sizes.plan, rows=sizes.rows, bulk_rows=sizes.bulk_rows,
                                               mixed_calls=sizes.mixed_calls, peer=peer)
            results += await set_writes.measure(stage_, sizes.plan, rows=sizes.rows)
            loop = await event_loop.heartbeat_lag(stage_, logins=sizes.logins, bulk_rows=sizes.bulk_rows)
            print("pagination at depth ...", file=sys.stderr)
            await scale.fill_to(stage_, sizes.depths[-1] + 1_000)
            first_page_ms, depths = await scale.depth_curve(stage_, sizes.depths, sizes.plan)
        print("bulk insert at scale ...", file=sys.stderr)
        bulk = [scale.bulk_in_subprocess(url, redis_url, library, rows)
                for rows in sizes.bulk_scale for library in ("datalayer", "tortoise", "asyncpg")]
    return Report(mode, about, results, first_page_ms, depths, bulk, loop)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes and short rounds (CI smoke run)")
    parser.add_argument("--write-results", type=Path, metavar="FILE", help="also write the tables as Markdown")
    args = parser.parse_args()
    mode = "quick" if args.quick else "full"
    report = asyncio.run(run(QUICK if args.quick else FULL, mode))
    print_report(report)
    if args.write_results:
        command = "python -m benchmarks" + (" --quick" if args.quick else "")
        args.write_results.write_text(markdown(report, command))
        print(f"wrote {args.write_results}", file=sys.stderr)


if __name__ == "__main__":
    main()
