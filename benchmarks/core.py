"""Core operations: datalayer against raw Tortoise (and raw asyncpg for reads) on one PostgreSQL table.

    python benchmarks/core.py [--quick] [--pg postgres://postgres@127.0.0.1:5432/postgres]

Creates a scratch database, runs every library in interleaved rounds so machine drift hits them alike,
prints the median ops/s of each and the ratios, then drops the database.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path

import asyncpg

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from datalayer import Settings, close_context, get_context  # noqa: E402
from tests.models import Article  # noqa: E402

Op = Callable[[], Awaitable[object]]


async def rate(op: Op, seconds: float) -> float:
    """Calls per second of ``op`` run back to back for about ``seconds``."""
    calls, start = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - start) < seconds:
        await op()
        calls += 1
    return calls / elapsed


async def compare(contenders: dict[str, Op], rounds: int, seconds: float) -> dict[str, float]:
    results: dict[str, list[float]] = {name: [] for name in contenders}
    for _ in range(rounds):
        for name, op in contenders.items():
            results[name].append(await rate(op, seconds))
    return {name: statistics.median(values) for name, values in results.items()}


async def timed(op: Op, rounds: int) -> float:
    durations = []
    for _ in range(rounds):
        start = time.perf_counter()
        await op()
        durations.append(time.perf_counter() - start)
    return statistics.median(durations)


def line(label: str, ours: float, theirs: float, unit: str = "ops/s", baseline: str = "Tortoise") -> str:
    return f"{label:<34} datalayer {ours:>10.1f} {unit}  {baseline} {theirs:>10.1f} {unit}  ratio {ours / theirs:5.2f}x"


async def main(admin_url: str, quick: bool) -> None:
    name = f"datalayer_bench_{uuid.uuid4().hex[:6]}"
    admin = await asyncpg.connect(admin_url)
    await admin.execute(f'CREATE DATABASE "{name}"')
    url = admin_url.rsplit("/", 1)[0] + f"/{name}"
    rounds, seconds = (3, 0.3) if quick else (7, 1.0)
    try:
        ctx = await get_context(settings=Settings(DATABASE_URL=url, DB_MAX_CONNECTIONS=10, _env_file=None),
                                models=["tests.models"], generate_schemas=True)
        articles = ctx.manager(Article)
        raw = await asyncpg.connect(url)
        seeded = await articles.bulk_create([{"title": f"row {i}", "views": i} for i in range(2000)])
        ids = [a.id for a in seeded]
        picks = iter(range(10**9))

        def next_id():
            return ids[next(picks) % len(ids)]

        print(f"PostgreSQL, {rounds} interleaved rounds of {seconds}s, medians\n")
        get = await compare({
            "datalayer": lambda: articles.get(next_id()),
            "tortoise": lambda: Article.get(id=next_id()),
            "asyncpg": lambda: raw.fetchrow('SELECT * FROM "test_article" WHERE "id" = $1 AND "deleted_at" IS NULL',
                                            next_id()),
        }, rounds, seconds)
        print(line("get by id", get["datalayer"], get["tortoise"]))
        print(line("get by id", get["datalayer"], get["asyncpg"], baseline="asyncpg "))

        async def raw_page():
            await Article.all().order_by("-created_at", "-id").offset(40).limit(20)
            await Article.all().count()

        page = await compare({
            "datalayer": lambda: articles.find_many(page=3, limit=20, sort_by="created_at", sort_order="desc"),
            "tortoise": raw_page,
        }, rounds, seconds)
        print(line("page of 20 + total", page["datalayer"], page["tortoise"]))

        counter = iter(range(10**9))

        async def raw_update():
            article = await Article.get(id=next_id())
            article.views = next(counter)
            await article.save(update_fields=["views", "updated_at"])

        update = await compare({
            "datalayer": lambda: articles.update(next_id(), {"views": next(counter)}),
            "tortoise": raw_update,
            "tortoise_qs": lambda: Article.filter(id=next_id()).update(views=next(counter)),
        }, rounds, seconds)
        print(line("update (vs get + save)", update["datalayer"], update["tortoise"]))
        print(line("update (vs queryset update)", update["datalayer"], update["tortoise_qs"]))

        size = 2_000 if quick else 20_000
        ours_bulk = await timed(lambda: articles.bulk_create([{"title": f"b{i}", "views": i} for i in range(size)]),
                                rounds)
        theirs_bulk = await timed(
            lambda: Article.bulk_create([Article(title=f"b{i}", views=i) for i in range(size)], batch_size=1000),
            rounds,
        )
        print(line(f"bulk_create {size} rows (+audit)", size / ours_bulk, size / theirs_bulk, "rows/s"))

        depth_rows = 20_000 if quick else 1_000_000
        await raw.execute('TRUNCATE "test_article", "audit_log" CASCADE')
        await raw.execute(
            """INSERT INTO "test_article" (id, created_at, updated_at, version, title, body, status, views)
               SELECT gen_random_uuid(), now() - (g * interval '1 millisecond'), now(), 1, 'r' || g, '', 'draft', g
               FROM generate_series(1, $1) g""", depth_rows)
        await raw.execute('VACUUM ANALYZE "test_article"')
        middle = await raw.fetchrow(
            'SELECT created_at, id FROM "test_article" ORDER BY created_at, id OFFSET $1 LIMIT 1', depth_rows // 2)
        from datalayer.managers.pagination import encode_cursor
        deep_cursor = encode_cursor("created_at", False, middle["created_at"], middle["id"])
        keyset = await compare({
            "first": lambda: articles.find_after(None, limit=100),
            "deep": lambda: articles.find_after(deep_cursor, limit=100),
        }, rounds, seconds)
        print(line(f"keyset at row {depth_rows // 2:,} vs first page", keyset["deep"], keyset["first"],
                   baseline="page 1  "))
        await raw.close()
    finally:
        await close_context()
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes and short rounds (CI smoke run)")
    parser.add_argument("--pg", default="postgres://postgres@127.0.0.1:5432/postgres", help="admin URL")
    args = parser.parse_args()
    asyncio.run(main(args.pg, args.quick))
