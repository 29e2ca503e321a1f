"""Every statement is timed and aggregated by shape; slow ones are logged and kept, never with their values."""

from __future__ import annotations

import logging

import pytest
from tortoise import Tortoise
from tortoise.exceptions import OperationalError

from datalayer import Settings
from datalayer.config import connection_config
from datalayer.monitoring import QueryMonitor, statement_shape
from tests.models import Article


def _shape_containing(ctx, *fragments: str):
    matches = [s for s in ctx.stats().queries.shapes if all(f in s.shape for f in fragments)]
    assert matches, f"no statement shape contains {fragments}: {[s.shape for s in ctx.stats().queries.shapes]}"
    return matches


@pytest.mark.postgres_only
async def test_slow_pg_sleep_lands_in_slow_list_with_its_shape_and_without_its_values(ctx, caplog):
    ctx.reset_stats()
    connection = Tortoise.get_connection("default")
    with caplog.at_level(logging.WARNING, logger="datalayer.queries"):
        await connection.execute_query("SELECT pg_sleep($1), $2::text AS token", [0.3, "hunter2-secret-value"])

    slow = ctx.stats().queries.slow_queries
    assert [q.shape for q in slow] == ["SELECT pg_sleep(?), ?::text AS token"]
    assert slow[0].duration_ms >= 300
    logged = [r for r in caplog.records if r.name == "datalayer.queries"]
    assert logged and logged[0].shape == "SELECT pg_sleep(?), ?::text AS token"
    assert logged[0].duration_ms >= 300
    assert "hunter2" not in caplog.text and "hunter2" not in ctx.stats().model_dump_json()


async def test_fast_statements_stay_out_of_the_slow_list(ctx):
    ctx.reset_stats()
    await ctx.manager(Article).create({"title": "quick"})
    assert ctx.stats().queries.slow_queries == []


async def test_gets_of_different_rows_aggregate_under_one_shape(ctx):
    articles = ctx.manager(Article)
    ids = [(await articles.create({"title": f"a{i}"})).id for i in range(5)]
    ctx.reset_stats()
    for article_id in ids:
        await articles.get(article_id)

    [select] = _shape_containing(ctx, "SELECT", '"test_article"')
    assert select.count == 5
    assert str(ids[0]) not in select.shape
    assert 0 < select.mean_ms <= select.p95_ms <= select.max_ms
    assert select.total_ms == pytest.approx(select.mean_ms * 5)
    assert ctx.stats().queries.statements == 5


async def test_statements_inside_a_transaction_are_timed(ctx):
    ctx.reset_stats()
    async with ctx.transaction():
        await ctx.manager(Article).create({"title": "in tx"})
        await ctx.manager(Article).create({"title": "in tx too"})
    [insert] = _shape_containing(ctx, "INSERT INTO", '"test_article"')
    assert insert.count == 2


async def test_reset_stats_clears_timings_and_the_slow_list(ctx):
    await ctx.manager(Article).create({"title": "x"})
    assert ctx.stats().queries.statements > 0
    ctx.reset_stats()
    queries = ctx.stats().queries
    assert (queries.statements, queries.shapes, queries.slow_queries) == (0, [], [])


async def test_failed_statements_are_counted_as_errors(ctx):
    ctx.reset_stats()
    with pytest.raises(OperationalError):  # raw Tortoise, below the manager's translator
        await Tortoise.get_connection("default").execute_query("SELECT * FROM no_such_table_here")
    [failed] = _shape_containing(ctx, "no_such_table_here")
    assert (failed.count, failed.errors) == (1, 1)


def test_shapes_replace_literals_placeholders_and_in_lists():
    assert statement_shape("SELECT * FROM t WHERE a = $1 AND b IN ($2, $3, $4) LIMIT 10") == (
        "SELECT * FROM t WHERE a = ? AND b IN (...) LIMIT ?"
    )
    assert statement_shape("SELECT * FROM t WHERE name = 'o''brien' AND x IN (?,?)") == (
        "SELECT * FROM t WHERE name = ? AND x IN (...)"
    )
    assert statement_shape('INSERT INTO "t" ("a","b") VALUES (?,?),(?,?),(?,?)') == (
        'INSERT INTO "t" ("a","b") VALUES (?,?), ...'
    )
    assert statement_shape('SELECT "col2" FROM "t1"') == 'SELECT "col2" FROM "t1"'


def test_db_logging_logs_every_statement_shape_at_debug(caplog):
    credentials = connection_config(Settings(DB_LOGGING="true", _env_file=None))["credentials"]
    assert credentials["log_statements"] is True
    monitor = QueryMonitor(slow_query_ms=1000, log_statements=credentials["log_statements"])
    with caplog.at_level(logging.DEBUG, logger="datalayer.queries"):
        monitor.record("SELECT * FROM users WHERE email = 'alice@example.com'", 0.002)
    [record] = caplog.records
    assert record.levelno == logging.DEBUG
    assert record.shape == "SELECT * FROM users WHERE email = ?"
    assert "alice" not in caplog.text


def test_p95_comes_from_a_bounded_reservoir():
    monitor = QueryMonitor(slow_query_ms=10_000, reservoir=50)
    for i in range(1, 1001):
        monitor.record("SELECT 1", i / 1000)
    [shape] = monitor.snapshot().shapes
    assert shape.count == 1000
    assert shape.max_ms == pytest.approx(1000)
    assert 500 < shape.p95_ms <= 1000
    assert len(monitor._shapes["SELECT ?"].samples) == 50


async def test_no_log_line_shows_parameter_values_even_at_debug(ctx, caplog):
    import logging

    from tests.models import Author

    secret = "hash-that-must-not-be-logged"
    with caplog.at_level(logging.DEBUG):
        author = await ctx.manager(Author).create({"name": "A", "email": "a@example.com", "password_hash": secret})
        await ctx.manager(Author).update(author.id, {"name": "B"})
        await ctx.manager(Author).find_many({"email": "a@example.com"})
    assert any("INSERT" in record.getMessage() for record in caplog.records)  # statements are logged
    assert not any(secret in record.getMessage() or "a@example.com" in record.getMessage()
                   for record in caplog.records)
