"""datalayer's pytest plugin as an app's suite meets it: a pytest run in a folder of its own (a subprocess,
loading the plugin from its entry point) gets a migrated database per engine, each test isolated by truncation
or by a rolled-back transaction, the session's databases dropped afterwards; an unreachable PostgreSQL fails
the run, a function-scoped event loop is refused with the settings to add."""

from __future__ import annotations

import textwrap

import asyncpg
import pytest

from tests.conftest import PG_ADMIN_URL

pytest_plugins = ["pytester"]

PROJECT = """
[project]
name = "plugin-check"
version = "0"

[tool.datalayer]
apps = ["core"]
{models}
[tool.pytest.ini_options]
asyncio_mode = "auto"
asyncio_default_fixture_loop_scope = "session"
asyncio_default_test_loop_scope = "{loop}"
datalayer_isolation = "rollback"
"""

ISOLATION_TESTS = """
import asyncio
import pytest
from datalayer import ConflictError

async def person(ctx, name):
    return await ctx.users.create_user(f"{name}@example.com", "a long passphrase", username=name)

@pytest.mark.parametrize("turn", ["one", "two"])
async def test_rolled_back(ctx, turn):
    assert await ctx.users.count() == 0
    await person(ctx, f"user_{turn}")

@pytest.mark.datalayer_isolation("truncate")
@pytest.mark.parametrize("turn", ["one", "two"])
async def test_truncated(ctx, turn):
    assert await ctx.users.count() == 0
    await person(ctx, f"user_{turn}")

async def test_a_conflict_leaves_the_rolled_back_transaction_usable(ctx):
    await person(ctx, "taken")
    with pytest.raises(ConflictError):
        await person(ctx, "taken")
    async with ctx.transaction() as tx:  # a savepoint in the test's transaction
        await asyncio.gather(*(person(tx, f"task_{i}") for i in range(3)))
    assert await ctx.users.count() == 4

async def test_the_test_context_hashes_cheaply(ctx, datalayer_database, datalayer_engine):
    assert ctx.settings.bcrypt_rounds == 4 and ctx.settings is datalayer_database.settings
    assert datalayer_database.engine == datalayer_engine
    with open("database.url", "w") as file:
        file.write(datalayer_database.url)
"""


def app_suite(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, tests: str, *, loop: str = "session",
              models: str = "") -> None:
    monkeypatch.delenv("DATALAYER_MIGRATIONS_DIR", raising=False)  # the suite's own, not the app's
    pytester.makefile(".toml", pyproject=PROJECT.format(loop=loop, models=models))
    pytester.makepyfile(test_app=textwrap.dedent(tests))


async def postgres_database_exists(url: str) -> bool:
    admin = await asyncpg.connect(PG_ADMIN_URL)
    try:
        return await admin.fetchval("SELECT count(*) FROM pg_database WHERE datname = $1", url.rsplit("/", 1)[1]) == 1
    finally:
        await admin.close()


async def test_each_test_starts_empty_whether_truncated_or_rolled_back(pytester, monkeypatch, datalayer_engine):
    app_suite(pytester, monkeypatch, ISOLATION_TESTS)

    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", f"--datalayer-engines={datalayer_engine}")

    result.assert_outcomes(passed=6)
    url = (pytester.path / "database.url").read_text()
    assert url.startswith(f"{datalayer_engine}://")
    if datalayer_engine == "postgres":
        assert not await postgres_database_exists(url)  # created for the session, dropped at its end


async def test_an_unreachable_postgres_fails_the_run_and_skips_nothing(pytester, monkeypatch):
    app_suite(pytester, monkeypatch, ISOLATION_TESTS)

    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "--datalayer-engines=sqlite,postgres",
                                           "--datalayer-postgres-url=postgres://postgres@127.0.0.1:1/postgres")

    result.assert_outcomes(passed=6, errors=6)
    unreachable = "PostgreSQL is unreachable at postgres://postgres@127.0.0.1:1/postgres (from --datalayer-postgres-url)"
    result.stdout.fnmatch_lines([f"*DatabaseUnavailableError: {unreachable}*"])


async def test_a_function_scoped_loop_is_refused_with_the_settings_to_add(pytester, monkeypatch):
    app_suite(pytester, monkeypatch, ISOLATION_TESTS, loop="function")

    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "--datalayer-engines=sqlite")

    result.assert_outcomes(errors=6)
    result.stdout.fnmatch_lines(['*asyncio_default_test_loop_scope = "session"*'])


async def test_models_without_history_get_their_tables_from_generate_schemas_and_a_warning(pytester, monkeypatch):
    app_suite(pytester, monkeypatch, """
        from tortoise import fields
        from datalayer import AuditedModel

        class Shelf(AuditedModel):
            label = fields.CharField(max_length=40)

        async def test_the_model_is_there(ctx):
            assert (await ctx.manager(Shelf).create({"label": "top"})).label == "top"
    """, models='models = ["test_app"]')

    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "--datalayer-engines=sqlite")

    result.assert_outcomes(passed=1, warnings=1)
    result.stdout.fnmatch_lines(["*DatalayerTestWarning: the app's models (test_app) have no migration history*"])
