"""Peak memory and time of one big streamed ``bulk_create`` (each row with its audit row), per ``returning``.

    python -m benchmarks.bulk_memory --rows 1000000                 # returning "none" and "ids" (PostgreSQL)
    python -m benchmarks.bulk_memory --rows 100000 --returning none ids instances --source async

The rows come from a generator (``--source async``: an async generator), never from a list, so the input
costs nothing to hold. Each load runs in a Python process of its own on a scratch database beside
DATABASE_URL's, so the peak resident memory (``ru_maxrss``) it reports belongs to that load alone. "MB added"
is that peak minus the resident memory just before the load (the context open, every module imported). Flat
memory means MB added stays about the same whatever ``--rows`` is, for ``returning="none"``; ``"ids"`` adds the
returned ids (about 85 MB a million UUIDs), ``"instances"`` a model instance a row.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import asyncpg

from benchmarks.models import BulkItem
from benchmarks.scale import rss_mb
from benchmarks.scratch import scratch_database, server_urls
from datalayer import Settings, close_context, get_context

MODELS = ["benchmarks.models"]
RETURNING = ("none", "ids", "instances")


def _settings(url: str) -> Settings:
    return Settings(DATABASE_URL=url, DATALAYER_ENV="test", _env_file=None)


def _rows(count: int) -> Iterator[dict[str, Any]]:
    return ({"title": f"bulk {i}", "body": "streamed", "views": i} for i in range(count))


async def _async_rows(count: int) -> AsyncIterator[dict[str, Any]]:
    for i in range(count):
        yield {"title": f"bulk {i}", "body": "streamed", "views": i}
        if i % 1000 == 0:
            await asyncio.sleep(0)  # as a reader of a file or a socket would


async def _counts(url: str) -> tuple[int, int]:
    connection = await asyncpg.connect(url)
    try:
        rows = await connection.fetchval("SELECT count(*) FROM bench_bulk_item")
        audits = await connection.fetchval("SELECT count(*) FROM audit_log WHERE table_name = 'bench_bulk_item'")
        return rows, audits
    finally:
        await connection.close()


async def _empty(url: str) -> None:
    connection = await asyncpg.connect(url)
    try:
        await connection.execute("TRUNCATE bench_bulk_item")
        await connection.execute("DELETE FROM audit_log WHERE table_name = 'bench_bulk_item'")
    finally:
        await connection.close()


async def _measure(url: str, rows: int, returning: str, source: str) -> dict[str, float]:
    """One load in this process: seconds, peak MB added, and what it wrote (rows, audit rows, items returned)."""
    await _empty(url)
    context = await get_context(settings=_settings(url), models=MODELS, apps=["core"])
    try:
        manager = context.manager(BulkItem)
        before = rss_mb()
        started = time.perf_counter()
        given = _async_rows(rows) if source == "async" else _rows(rows)
        result = await manager.bulk_create(given, returning=returning)  # type: ignore[call-overload]
        seconds = time.perf_counter() - started
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
        returned = 0 if result is None else len(result)
        del result
    finally:
        await close_context()
    stored, audits = await _counts(url)
    await _empty(url)
    return {"seconds": seconds, "mb_added": max(0.0, peak - before), "mb_before": before,
            "stored": stored, "audit_rows": audits, "returned": returned}


def _in_subprocess(url: str, rows: int, returning: str, source: str) -> dict[str, float]:
    output = subprocess.run(
        [sys.executable, "-m", "benchmarks.bulk_memory", "--child", url, "--rows", str(rows),
         "--returning", returning, "--source", source],
        check=True, capture_output=True, text=True,
    ).stdout
    return json.loads(output.strip().splitlines()[-1])


async def _prepare(url: str) -> None:
    await get_context(settings=_settings(url), models=MODELS, apps=["core"], generate_schemas=True)
    await close_context()


async def _run(rows: int, modes: list[str], source: str) -> None:
    async with scratch_database(server_urls()[0]) as url:
        await _prepare(url)
        for returning in modes:
            found = await asyncio.to_thread(_in_subprocess, url, rows, returning, source)
            print(f"bulk_create {rows:,} rows from {'an async generator' if source == 'async' else 'a generator'}, "
                  f"returning={returning!r}: "
                  f"{found['seconds']:7.1f} s ({rows / found['seconds']:,.0f} rows/s)   "
                  f"peak memory added {found['mb_added']:6.1f} MB   (process at {found['mb_before']:.0f} MB before; "
                  f"stored {found['stored']:,} rows + {found['audit_rows']:,} audit rows, "
                  f"returned {found['returned']:,})", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=100_000, help="rows to insert (default 100000)")
    parser.add_argument("--returning", nargs="+", choices=RETURNING, default=["none", "ids"])
    parser.add_argument("--source", choices=("generator", "async"), default="generator")
    parser.add_argument("--child", metavar="URL", help=argparse.SUPPRESS)
    options = parser.parse_args()
    if options.child:
        print(json.dumps(asyncio.run(_measure(options.child, options.rows, options.returning[0], options.source))))
        return
    asyncio.run(_run(options.rows, options.returning, options.source))


if __name__ == "__main__":
    main()
