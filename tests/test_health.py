"""``await ctx.health()`` against a live database, a stopped one, a missing table, a pending migration and
a Redis that went away; nothing in a report ever shows a password."""

from __future__ import annotations

import pytest
from tortoise import Tortoise

from datalayer import close_context, get_context
from datalayer.cache import build_cache
from datalayer.health import HealthReport
from tests.cache_support import PrivateRedis
from tests.conftest import TEST_MODELS, make_settings
from tests.models import Article
from tests.private_postgres import PrivatePostgres

CHECKS = {"connectivity", "latency", "tables", "migrations", "cache", "pool"}
PASSWORD = "s3cret-Pa55word"


@pytest.fixture(scope="module")
def private_pg():
    server = PrivatePostgres()
    server.start()
    yield server
    server.destroy()


async def test_live_database_reports_healthy_with_every_check(ctx):
    report = await ctx.health()

    assert isinstance(report, HealthReport)
    assert report.status == "healthy", report.errors
    assert set(report.checks) == CHECKS
    assert report.checks["connectivity"].status == "healthy"
    assert report.checks["connectivity"].response_time_ms > 0
    assert report.checks["tables"].details["tables"] == len(ctx.models)
    assert report.checks["pool"].details["engine"] == ctx.target.engine
    assert report.uptime_seconds >= 0 and report.checked_at.tzinfo is not None
    assert report.target == ctx.target.describe()
    assert await ctx.quick_health() is True


async def test_ping_slower_than_the_threshold_degrades_the_report(ctx):
    threshold = ctx.settings.db_health_latency_ms
    ctx.settings.db_health_latency_ms = 1e-6
    try:
        report = await ctx.health()
    finally:
        ctx.settings.db_health_latency_ms = threshold
    assert report.status == "degraded"
    assert report.checks["latency"].status == "degraded"
    assert "threshold" in report.checks["latency"].error


async def test_missing_table_makes_the_report_unhealthy_and_names_it(ctx):
    connection = Tortoise.get_connection("default")
    await connection.execute_script('ALTER TABLE "test_comment" RENAME TO "test_comment_away"')
    try:
        report = await ctx.health()
    finally:
        await connection.execute_script('ALTER TABLE "test_comment_away" RENAME TO "test_comment"')
    assert report.status == "unhealthy"
    assert report.checks["tables"].details["missing"] == ["test_comment"]
    assert "test_comment" in report.checks["tables"].error


async def test_pending_migration_degrades_the_report_with_its_name(ctx):
    migrations = pytest.importorskip("datalayer.migrations")
    files = migrations.history(ctx.project)
    assert files[-1].startswith("models/"), "the suite's own app is migrated after datalayer's packs"
    app, version = files[-1].split("/")
    connection = Tortoise.get_connection("default")
    _, rows = await connection.execute_query(f"SELECT * FROM aerich WHERE app = '{app}' AND version = '{version}'")
    await connection.execute_query(f"DELETE FROM aerich WHERE app = '{app}' AND version = '{version}'")
    try:
        report = await ctx.health()
    finally:
        await connection.execute_query("INSERT INTO aerich (version, app, content) VALUES ('%s', '%s', '{}')"
                                       % (rows[0]["version"], rows[0]["app"]))
    assert report.status == "degraded", report.errors
    assert report.checks["migrations"].details["pending"] == [files[-1]]
    assert files[-1] in report.checks["migrations"].error


async def test_redis_down_degrades_the_report_but_never_makes_it_unhealthy(ctx):
    redis = PrivateRedis()
    redis.start()
    cache = build_cache(make_settings("sqlite://:memory:", REDIS_URL=redis.url))
    previous = ctx.use_cache(cache)
    try:
        assert (await ctx.health()).checks["cache"].status == "healthy"
        redis.kill()
        report = await ctx.health()
    finally:
        ctx.use_cache(previous)
        await cache.close()
        redis.kill()
    assert report.status == "degraded"
    assert report.checks["cache"].status == "degraded"
    assert report.checks["cache"].error
    assert report.checks["connectivity"].status == "healthy"


async def test_stopped_database_reports_unhealthy_without_revealing_the_password(private_pg):
    await close_context()
    settings = make_settings(private_pg.url(PASSWORD), DB_CONNECTION_TIMEOUT_MS=2000)
    ctx = await get_context(settings=settings, models=TEST_MODELS, migrate=True)
    try:
        live = await ctx.health()
        assert live.status == "healthy", live.errors
        private_pg.stop()
        report = await ctx.health()
        assert await ctx.quick_health() is False
    finally:
        await close_context()
    assert report.status == "unhealthy"
    assert report.checks["connectivity"].status == "unhealthy"
    assert report.checks["connectivity"].error
    assert report.checks["tables"].status == "skipped"
    text = report.model_dump_json() + live.model_dump_json() + repr(report)
    assert PASSWORD not in text
    assert f"postgres:***@127.0.0.1:{private_pg.port}" in report.target


async def test_database_stats_count_rows_per_table_tasks_by_status_and_the_size(ctx):
    await ctx.manager(Article).create({"title": "counted"})
    for title in ("a", "b"):
        await ctx.tasks.create({"title": title})
    done = await ctx.tasks.create({"title": "c"})
    await ctx.tasks.start_task(done.id, "worker-1")
    await ctx.tasks.complete_task(done.id)
    stats = await ctx.get_database_stats()
    assert stats["tables"]["test_article"]["rows"] == 1
    assert stats["tasks_by_status"] == {"pending": 2, "completed": 1}
    assert stats["database_size_bytes"] > 0
    assert stats["target"] == ctx.target.describe()
