"""ctx.raw(sql, params): $1-style placeholders on both engines, inside or outside a transaction, rows as dicts,
library errors only, and no session state left on a connection for the next request."""

from __future__ import annotations

import asyncio
import re

import asyncpg
import pytest
from tortoise.connection import get_connection

from datalayer import ConflictError, DataLayerError, TransactionClosedError, ValidationError
from tests.models import Article, Author


async def _articles(ctx, *views: int) -> list[Article]:
    return [await ctx.articles.create({"title": f"v{v}", "views": v}) for v in views]


async def test_select_returns_rows_as_dicts(ctx):
    await _articles(ctx, 1, 5, 9)
    rows = await ctx.raw("SELECT title, views FROM test_article WHERE views >= $1 ORDER BY views", [5])
    assert rows == [{"title": "v5", "views": 5}, {"title": "v9", "views": 9}]


async def test_placeholders_in_any_order_repeated_and_untouched_inside_strings(ctx):
    await _articles(ctx, 1, 5, 9)
    rows = await ctx.raw(
        "SELECT title, '$1 stays text' AS note FROM test_article "
        "WHERE views >= $2 AND title <> $1 AND views <= $2 * 2 -- a comment with $3 in it\n ORDER BY views",
        ["v9", 5],
    )
    assert rows == [{"title": "v5", "note": "$1 stays text"}]


async def test_writes_with_returning_and_a_uuid_parameter(ctx):
    (article,) = await _articles(ctx, 1)
    rows = await ctx.raw("UPDATE test_article SET views = $1 WHERE id = $2 RETURNING views", [42, article.id])
    assert rows == [{"views": 42}]
    assert (await ctx.articles.get(article.id)).views == 42
    assert await ctx.raw("DELETE FROM test_article WHERE id = $1", [article.id]) == []  # no rows to return
    assert await ctx.articles.count(include_deleted=True) == 0


async def test_inside_a_transaction_it_sees_uncommitted_rows_and_rolls_back_with_it(ctx):
    with pytest.raises(RuntimeError):
        async with ctx.transaction() as tx:
            await tx.articles.create({"title": "uncommitted", "views": 3})
            assert await tx.raw("SELECT title FROM test_article WHERE views = $1", [3]) == [{"title": "uncommitted"}]
            await ctx.raw("UPDATE test_article SET title = $1", ["changed"])
            raise RuntimeError("roll back")
    assert await ctx.raw("SELECT count(*) AS n FROM test_article") == [{"n": 0}]


async def test_concurrent_raw_statements_in_one_transaction_are_serialised(ctx):
    (article,) = await _articles(ctx, 0)
    async with ctx.transaction() as tx:
        await asyncio.gather(*(tx.raw("UPDATE test_article SET views = views + 1 WHERE id = $1", [article.id])
                               for _ in range(20)))
    assert (await ctx.articles.get(article.id)).views == 20


async def test_raw_from_a_task_outliving_its_transaction_is_refused(ctx):
    async with ctx.transaction() as tx:
        async def late() -> None:
            await asyncio.sleep(0.02)
            await ctx.raw("INSERT INTO test_label (id, name, colour, version, created_at, updated_at) "
                          "VALUES ($1, 'x', 'y', 1, $2, $2)", ["00000000-0000-7000-8000-000000000001", "2020-01-01"])

        task = asyncio.create_task(late())
    with pytest.raises(TransactionClosedError):
        await task
    with pytest.raises(TransactionClosedError):
        await tx.raw("SELECT 1")
    assert await ctx.raw("SELECT count(*) AS n FROM test_label") == [{"n": 0}]


@pytest.mark.parametrize(
    ("sql", "params", "message"),
    [
        ("SELECT $1, $2", [1], "placeholders $1..$2 but 1 value"),
        ("SELECT 1", [1], "placeholders $1..$0 but 1 value"),
        ("SELECT $0", [], "start at $1"),
        ("SELECT 1; SELECT 2", [], "one statement per call"),
        ("COMMIT", [], "use `async with ctx.transaction()`"),
        ("  /* x */ begin", [], "use `async with ctx.transaction()`"),
        ("SELECT $1", "abc", "params must be a list"),
        ("SELECT $1", {"a": 1}, "params must be a list"),
        ("", [], "non-empty string"),
    ],
)
async def test_malformed_calls_are_rejected_before_any_sql_runs(ctx, sql, params, message):
    with pytest.raises(ValidationError, match=re.escape(message)):
        await ctx.raw(sql, params)


async def test_sqlite_placeholder_styles_are_refused_on_sqlite(ctx, backend):
    if backend.is_postgres:
        assert await ctx.raw("SELECT '{\"a\": 1}'::jsonb ? 'a' AS has") == [{"has": True}]  # ? is an operator
        return
    for sql in ("SELECT ?", "SELECT :name", "SELECT @name"):
        with pytest.raises(ValidationError, match=r"use \$1, \$2"):
            await ctx.raw(sql, [])


async def test_database_errors_come_back_as_library_errors(ctx):
    await ctx.manager(Author).create({"name": "A", "email": "a@example.com"})
    with pytest.raises(DataLayerError) as caught:
        await ctx.raw("SELECT nope FROM no_such_table")
    assert "no_such_table" in str(caught.value)
    with pytest.raises(ConflictError):
        async with ctx.transaction():
            await ctx.raw("UPDATE test_author SET email = $1", ["A@example.com"])  # lower-case unique index
            await ctx.manager(Author).create({"name": "B", "email": "b@example.com"})
            await ctx.raw("UPDATE test_author SET email = $1", ["a@example.com"])
    assert await ctx.manager(Author).count() == 1


# ------------------------------------------------------------------ session state never leaks (PostgreSQL)

HELD = 6  # transactions held at once: every pooled connection the raw calls may have used


async def _every_pooled_connection(ctx) -> list[dict]:
    """What each of HELD simultaneously held pooled connections reports, through plain (non-raw) statements."""
    barrier = asyncio.Barrier(HELD)

    async def one() -> dict:
        async with ctx.transaction():
            await barrier.wait()
            connection = get_connection("default")
            rows = await connection.execute_query_dict(
                "SELECT pg_backend_pid() AS pid, current_setting('TimeZone') AS tz, "
                "(SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid()) AS locks, "
                "(SELECT count(*) FROM pg_listening_channels()) AS listening, "
                "to_regclass('pg_temp.raw_scratch') IS NOT NULL AS temp_table"
            )
            return rows[0]

    return list(await asyncio.gather(*(one() for _ in range(HELD))))


async def _lock_is_free(backend, key: int) -> bool:
    other = await asyncpg.connect(backend.url)
    try:
        taken = await other.fetchval("SELECT pg_try_advisory_lock($1)", key)
        if taken:
            await other.execute("SELECT pg_advisory_unlock($1)", key)
        return taken
    finally:
        await other.close()


@pytest.mark.postgres_only
async def test_session_state_set_by_raw_sql_never_reaches_another_request(ctx, backend):
    (before,) = await get_connection("default").execute_query_dict("SELECT current_setting('TimeZone') AS tz")

    async def dirty_everything() -> None:
        await ctx.raw("SET TIME ZONE 'Pacific/Kiritimati'")
        assert await ctx.raw("SELECT current_setting('TimeZone') AS tz") == [before]  # reset after each call
        await ctx.raw("SELECT pg_advisory_lock($1)", [4242])
        await ctx.raw("LISTEN raw_channel")
        await ctx.raw("CREATE TEMP TABLE raw_scratch (x integer)")

    await asyncio.gather(*(dirty_everything() for _ in range(HELD)))  # spread over several connections
    assert await _lock_is_free(backend, 4242)

    async with ctx.transaction() as tx:  # inside a transaction the state lasts until the transaction ends
        await tx.raw("SET TIME ZONE 'Pacific/Kiritimati'")
        await tx.raw("SELECT pg_advisory_lock($1)", [4243])
        await tx.raw("CREATE TEMP TABLE raw_scratch (x integer)")
        await tx.raw("INSERT INTO raw_scratch VALUES ($1)", [1])
        assert await tx.raw("SELECT current_setting('TimeZone') AS tz, count(*) AS n FROM raw_scratch") == [
            {"tz": "Pacific/Kiritimati", "n": 1}]
        assert not await _lock_is_free(backend, 4243)
    with pytest.raises(RuntimeError):
        async with ctx.transaction() as tx:  # a rollback keeps a session advisory lock: reset anyway
            await tx.raw("SELECT pg_advisory_lock($1)", [4244])
            raise RuntimeError("roll back")

    seen = await _every_pooled_connection(ctx)
    assert len({row["pid"] for row in seen}) == HELD
    assert all(row["tz"] == before["tz"] for row in seen), seen
    assert all(row["locks"] == 0 and row["listening"] == 0 and not row["temp_table"] for row in seen), seen
    assert await _lock_is_free(backend, 4243) and await _lock_is_free(backend, 4244)


# ------------------------------------------------------------------ session state never leaks (SQLite)

async def _pragma(name: str) -> object:
    rows = await get_connection("default").execute_query_dict(f"PRAGMA {name}")
    return next(iter(rows[0].values()))


async def _temp_objects() -> list[dict]:
    return await get_connection("default").execute_query_dict("SELECT name FROM temp.sqlite_master")


async def test_sqlite_session_settings_are_restored_after_raw_sql(ctx, backend):
    if backend.is_postgres:
        pytest.skip("SQLite's shared connection; the PostgreSQL pool is covered above")
    await ctx.raw("PRAGMA foreign_keys = OFF")
    assert await _pragma("foreign_keys") == 1
    await ctx.raw("/* leading comment */ PRAGMA cache_size(-1234)")
    assert await _pragma("cache_size") != -1234
    await ctx.raw("CREATE TEMP TABLE raw_scratch (x integer)")
    assert await _temp_objects() == []
    with pytest.raises(ValidationError, match="ATTACH"):
        await ctx.raw("ATTACH DATABASE ':memory:' AS other")
    with pytest.raises(ValidationError, match="case_sensitive_like"):
        await ctx.raw("PRAGMA case_sensitive_like = OFF")  # write-only: could not be put back
    assert await ctx.raw("PRAGMA table_info(test_label)")  # a pragma that reads is just a query

    async with ctx.transaction() as tx:
        await tx.raw("PRAGMA cache_size = -4321")
        await tx.raw("CREATE TEMP TABLE raw_scratch (x integer)")
        await tx.raw("INSERT INTO raw_scratch VALUES ($1)", [1])
        assert await tx.raw("SELECT count(*) AS n FROM raw_scratch") == [{"n": 1}]
        assert await _pragma("cache_size") == -4321  # lasts for the transaction
    assert await _pragma("cache_size") != -4321
    assert await _temp_objects() == []

    # foreign keys are still enforced for everyone
    with pytest.raises(ValidationError):
        await ctx.manager(Article).create({"title": "orphan", "author_id": "00000000-0000-7000-8000-00000000beef"})


@pytest.mark.postgres_only  # SQLite's 1 / 0 is NULL
async def test_a_value_error_the_server_raises_says_what_it_was_not_that_it_fit_no_column(ctx):
    with pytest.raises(ValidationError) as caught:
        await ctx.raw("SELECT 1 / $1::int AS q", [0])
    message = caught.value.errors["__all__"]
    assert "DivisionByZeroError: division by zero" in message and "column" not in message


async def test_a_caught_raw_error_inside_a_transaction_keeps_the_transaction(ctx):
    """A failed raw statement runs in its own savepoint: catching it leaves the caller's work in place."""
    async with ctx.transaction() as tx:
        kept = await tx.manager(Author).create({"name": "kept", "email": "kept@example.com"})
        with pytest.raises(DataLayerError):
            await tx.raw("SELEC 1")  # (1 / 0 is NULL on SQLite, an error only on PostgreSQL)
        with pytest.raises(DataLayerError):
            await tx.raw('SELECT * FROM "no_such_table"')
        assert (await tx.manager(Author).get(kept.id)).name == "kept"
    assert (await ctx.manager(Author).get(kept.id)).name == "kept"


@pytest.mark.parametrize("statement", ["DEALLOCATE ALL", "discard all", "PREPARE p1 AS SELECT 1", "EXECUTE p1",
                                       "  /* x */ DEALLOCATE p1"])
async def test_statements_that_manage_prepared_statements_are_refused(ctx, statement):
    with pytest.raises(ValidationError, match="prepared statements"):
        await ctx.raw(statement)
    for _ in range(12):  # every pooled connection still serves cached statements
        assert (await ctx.manager(Author).find_many()).total == 0
