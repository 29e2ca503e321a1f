"""The committed migration history: empty databases reach the current schema, downgrades round-trip, and
a model change without a migration is caught (the CI drift check)."""

from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path

import asyncpg
import pytest
from tortoise.context import TortoiseContext

from datalayer import migrations
from datalayer.config import tortoise_config
from datalayer.errors import DataLayerError
from datalayer.migration_writer import load_module
from tests.conftest import create_pg_database, drop_pg_database, make_settings

FILES = migrations.history()
LAST_NUMBER = int(FILES[-1].split("_", 1)[0])


@pytest.fixture
def empty_db(empty_database_url: str) -> str:
    return empty_database_url


async def tables_and_indexes(url: str) -> tuple[set[str], set[str]]:
    if url.startswith("postgres"):
        connection = await asyncpg.connect(url)
        try:
            tables = {r["tablename"] for r in await connection.fetch("SELECT tablename FROM pg_tables WHERE schemaname='public'")}
            indexes = {r["indexname"] for r in await connection.fetch("SELECT indexname FROM pg_indexes WHERE schemaname='public'")}
        finally:
            await connection.close()
        return tables, indexes
    with sqlite3.connect(url.removeprefix("sqlite://")) as connection:
        rows = connection.execute("SELECT type, name FROM sqlite_master").fetchall()
    return {n for t, n in rows if t == "table" and not n.startswith("sqlite_")}, {n for t, n in rows if t == "index"}


async def model_tables() -> tuple[set[str], set[str]]:
    """Every table of datalayer's models and every live-unique index they declare."""
    from datalayer.schema import live_unique_sql

    async with TortoiseContext() as context:
        await context.init(config=tortoise_config(make_settings("sqlite://:memory:")))
        models = list(context.apps.get_models_iterable())
        tables = {m._meta.db_table for m in models}
        indexes = {s.split('"')[1] for m in models for s in live_unique_sql(m)}
    return tables, indexes


async def test_one_upgrade_takes_an_empty_database_to_the_current_schema(empty_db):
    settings = make_settings(empty_db)
    assert await migrations.pending_migrations(settings) == FILES

    applied = await migrations.upgrade(settings)

    assert applied == FILES
    assert await migrations.pending_migrations(settings) == []
    tables, indexes = await tables_and_indexes(empty_db)
    expected_tables, expected_indexes = await model_tables()
    assert expected_tables | {"aerich"} <= tables
    assert expected_indexes <= indexes, "the partial unique indexes among live rows come from the migrations"


async def test_migrated_schema_has_the_same_columns_and_indexes_as_the_models_on_postgres():
    migrated, generated = await create_pg_database("datalayer_mig"), await create_pg_database("datalayer_gen")
    try:
        await migrations.upgrade(make_settings(migrated))
        async with TortoiseContext() as context:
            await context.init(config=tortoise_config(make_settings(generated)))
            await context.generate_schemas()
        columns_sql = ("SELECT table_name, column_name, data_type, is_nullable FROM information_schema.columns "
                       "WHERE table_schema = 'public' AND table_name <> 'aerich' ORDER BY 1, 2")
        # (the live-unique ux_* indexes are datalayer's own DDL, not generate_schemas'; tested elsewhere)
        indexes_sql = ("SELECT tablename, indexname, indexdef FROM pg_indexes WHERE schemaname = 'public' "
                       "AND tablename <> 'aerich' AND indexname NOT LIKE 'ux\\_%' ORDER BY 1, 2")
        columns, indexes = [], []
        for url in (migrated, generated):
            connection = await asyncpg.connect(url)
            try:
                columns.append([tuple(r) for r in await connection.fetch(columns_sql)])
                indexes.append([tuple(r) for r in await connection.fetch(indexes_sql)])
            finally:
                await connection.close()
        assert columns[0] == columns[1]
        assert indexes[0] == indexes[1]
        audit = {name: definition for table, name, definition in indexes[0] if table == "audit_log"}
        assert any("USING hash (record_id)" in d for d in audit.values()), audit
        assert any("WHERE (actor_id IS NOT NULL)" in d for d in audit.values()), audit
    finally:
        await drop_pg_database(migrated)
        await drop_pg_database(generated)


async def _execute(url: str, sql: str) -> list[tuple]:
    if url.startswith("postgres"):
        connection = await asyncpg.connect(url)
        try:
            return [tuple(r) for r in await connection.fetch(sql)]
        finally:
            await connection.close()
    with sqlite3.connect(url.removeprefix("sqlite://")) as connection:
        rows = connection.execute(sql).fetchall()
        connection.commit()
        return rows


async def test_downgrade_then_upgrade_round_trips_and_keeps_the_core_data(empty_db):
    settings = make_settings(empty_db)
    await migrations.upgrade(settings)
    await _execute(empty_db, "INSERT INTO audit_log (id, created_at, updated_at, action, table_name, record_id, changes) "
                             "VALUES ('3f1c2c56-4a8e-4c0e-9a53-5a1d1e1b7a01', '2026-01-01 00:00:00+00:00', "
                             "'2026-01-01 00:00:00+00:00', 'create', 'users', 'x', '{}')")

    rolled_back = await migrations.downgrade(1, settings)

    assert rolled_back == FILES[1:][::-1]
    tables, indexes = await tables_and_indexes(empty_db)
    assert "users" not in tables and "ux_users_email_live" not in indexes
    assert await migrations.pending_migrations(settings) == FILES[1:]
    assert await migrations.upgrade(settings) == FILES[1:]
    tables, indexes = await tables_and_indexes(empty_db)
    assert {"users", "audit_log"} <= tables and "ux_users_email_live" in indexes
    assert await _execute(empty_db, "SELECT record_id FROM audit_log") == [("x",)]


async def test_the_initial_migration_refuses_to_downgrade_and_changes_nothing(empty_db):
    settings = make_settings(empty_db)
    await migrations.upgrade(settings)
    with pytest.raises(DataLayerError, match="initial migration"):
        await migrations.downgrade(0, settings)
    assert await migrations.pending_migrations(settings) == []


def test_committed_history_matches_the_models():
    assert migrations.check_migrations() is None, "a model changed without a migration: run `datalayer migrate`"


def test_drift_check_catches_models_missing_from_the_history(tmp_path, monkeypatch):
    (tmp_path / "models").mkdir()
    shutil.copy(migrations.migration_folder() / FILES[0], tmp_path / "models" / FILES[0])
    monkeypatch.setattr(migrations, "MIGRATIONS_DIR", tmp_path)

    assert migrations.check_migrations() is not None


def test_drift_check_catches_a_changed_live_unique_rule(tmp_path, monkeypatch):
    shutil.copytree(migrations.migration_folder(), tmp_path / "models")
    last = tmp_path / "models" / FILES[-1]
    module = load_module(last)
    dropped = module.LIVE_UNIQUE_INDEXES[0]
    last.write_text(last.read_text().replace(f"    {json.dumps(dropped)},\n", ""))
    monkeypatch.setattr(migrations, "MIGRATIONS_DIR", tmp_path)

    assert migrations.check_migrations() is not None


async def test_make_migration_writes_a_file_both_backends_can_apply(tmp_path, monkeypatch):
    (tmp_path / "models").mkdir()
    shutil.copy(migrations.migration_folder() / FILES[0], tmp_path / "models" / FILES[0])
    monkeypatch.setattr(migrations, "MIGRATIONS_DIR", tmp_path)

    path = migrations.make_migration("everything_else")

    assert path is not None and path.name.startswith("1_") and path.name.endswith("_everything_else.py")
    module = load_module(path)
    assert set(module.UPGRADE) == {"postgres", "sqlite"} and all(module.DOWNGRADE.values())
    assert migrations.make_migration("again") is None, "nothing left to record"
    url = f"sqlite://{tmp_path / 'fresh.sqlite3'}"
    assert await migrations.upgrade(make_settings(url)) == [FILES[0], path.name]
    assert (await model_tables())[0] <= (await tables_and_indexes(url))[0]


def test_history_files_are_numbered_without_gaps():
    assert [int(name.split("_", 1)[0]) for name in FILES] == list(range(LAST_NUMBER + 1))
    assert Path(migrations.migration_folder(), FILES[0]).exists()


def _history_with_nullable_first_name(tmp_path) -> Path:
    """A copy of the history whose recorded state says ``users.first_name`` was NOT NULL (the models say NULL)."""
    import re

    from aerich.utils import decompress_dict, get_formatted_compressed_data

    shutil.copytree(migrations.migration_folder(), tmp_path / "models")
    last = tmp_path / "models" / FILES[-1]
    state = decompress_dict(load_module(last).MODELS_STATE)
    for field in state["models.User"]["data_fields"]:
        if field["name"] == "first_name":
            field["nullable"] = False
    compressed = "".join(re.findall(r'"([^"]*)"', get_formatted_compressed_data(state)))
    text = last.read_text()
    last.write_text(text[: text.index("MODELS_STATE = ")] + f"MODELS_STATE = {compressed!r}\n")
    return tmp_path


async def test_a_change_aerich_cannot_make_on_sqlite_gets_sql_that_fails_loudly(tmp_path, monkeypatch):
    monkeypatch.setattr(migrations, "MIGRATIONS_DIR", _history_with_nullable_first_name(tmp_path))

    path = migrations.make_migration("nullable_first_name")

    module = load_module(path)
    assert 'ALTER COLUMN "first_name" DROP NOT NULL' in module.UPGRADE["postgres"]
    assert "write this SQL by hand" in module.UPGRADE["sqlite"]
    with pytest.raises(DataLayerError, match="write this SQL by hand"):
        await migrations.upgrade(make_settings(f"sqlite://{tmp_path / 'db.sqlite3'}"))


async def test_get_context_with_migrate_applies_pending_migrations_first(empty_db):
    from datalayer import close_context, get_context

    settings = make_settings(empty_db)
    await close_context()  # the process context may be open on the shared test database
    try:
        context = await get_context(settings=settings, migrate=True)
        assert await migrations.pending_migrations(settings) == []
        user = await context.users.create_user("m@example.com", "a-long-password", username="migrated")
        assert (await context.users.get(user.id)).username == "migrated"
    finally:
        await close_context()
