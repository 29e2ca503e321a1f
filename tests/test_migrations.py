"""The packs' committed migration histories: empty databases reach the current schema, packs load alone,
the initial migrations refuse to downgrade, and a model change without a migration is caught (the CI drift
check). An app's own history (with foreign keys into the packs) is in ``test_app_migrations.py``."""

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
from datalayer.migration_files import load_module
from datalayer.migration_writer import check_migrations, make_migration
from datalayer.project import load_project
from tests.conftest import create_pg_database, drop_pg_database, make_settings

FILES = migrations.history()
PACK_ORDER = ["core", "agent", "analysis", "ml", "characters"]


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
        await context.init(config=tortoise_config(make_settings("sqlite://:memory:"), load_project(models=())))
        models = list(context.apps.get_models_iterable())
        tables = {m._meta.db_table for m in models}
        indexes = {s.split('"')[1] for m in models for s in live_unique_sql(m)}
    return tables, indexes


async def test_one_upgrade_takes_an_empty_database_to_the_current_schema(empty_db):
    settings = make_settings(empty_db)
    assert await migrations.pending_migrations(settings) == FILES
    assert list(dict.fromkeys(name.split("/")[0] for name in FILES)) == PACK_ORDER, "pack by pack, core first"
    firsts = {}
    for name in FILES:
        firsts.setdefault(name.split("/")[0], name.split("/")[1])
    assert all(file.startswith("0_") for file in firsts.values()), "each pack's history starts with its 0_ file"

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
            await context.init(config=tortoise_config(make_settings(generated), load_project(models=())))
            await context.generate_schemas()
        # system_logs is partitioned by the migrations (datalayer/partitions.py): its partitions are left out, its
        # indexes are partitioned ones ("ON ONLY"), and its primary key holds the partition key (checked below)
        partitions = "(SELECT relname FROM pg_class WHERE relispartition)"
        columns_sql = ("SELECT table_name, column_name, data_type, is_nullable FROM information_schema.columns "
                       f"WHERE table_schema = 'public' AND table_name <> 'aerich' AND table_name NOT IN {partitions} "
                       "ORDER BY 1, 2")
        # (the live-unique ux_* indexes are datalayer's own DDL, not generate_schemas'; tested elsewhere)
        indexes_sql = ("SELECT tablename, indexname, replace(indexdef, ' ON ONLY ', ' ON ') FROM pg_indexes "
                       f"WHERE schemaname = 'public' AND tablename <> 'aerich' AND tablename NOT IN {partitions} "
                       "AND indexname NOT LIKE 'ux\\_%' ORDER BY 1, 2")
        columns, indexes = [], []
        for url in (migrated, generated):
            connection = await asyncpg.connect(url)
            try:
                columns.append([tuple(r) for r in await connection.fetch(columns_sql)])
                indexes.append([tuple(r) for r in await connection.fetch(indexes_sql)])
            finally:
                await connection.close()
        assert columns[0] == columns[1]
        keys = [{name: definition for _, name, definition in found}.pop("system_logs_pkey") for found in indexes]
        assert keys[0].endswith("(id, created_at)") and keys[1].endswith("(id)"), keys
        assert [i for i in indexes[0] if i[1] != "system_logs_pkey"] == [i for i in indexes[1] if i[1] != "system_logs_pkey"]
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


async def test_an_app_loading_one_pack_gets_core_and_that_pack_then_more_later(empty_db):
    settings = make_settings(empty_db)
    ml_only = load_project(models=(), apps=["ml"])

    applied = await migrations.upgrade(settings, ml_only)

    assert list(dict.fromkeys(name.split("/")[0] for name in applied)) == ["core", "ml"]
    tables, _ = await tables_and_indexes(empty_db)
    assert {"users", "ml_models", "model_usage"} <= tables and not {"tasks", "characters"} & tables
    everything = load_project(models=())
    assert await migrations.pending_migrations(settings, everything) == [f for f in FILES if f.split("/")[0] not in ("core", "ml")]
    assert list(dict.fromkeys(n.split("/")[0] for n in await migrations.upgrade(settings, everything))) == [
        "agent", "analysis", "characters"]
    assert {"tasks", "characters"} <= (await tables_and_indexes(empty_db))[0]


async def test_the_initial_migrations_refuse_to_downgrade_and_change_nothing(empty_db):
    settings = make_settings(empty_db)
    await migrations.upgrade(settings)
    with pytest.raises(DataLayerError, match="initial migration"):
        await migrations.downgrade(0, settings, app="core")
    with pytest.raises(DataLayerError, match="initial migration"):
        await migrations.downgrade(-1, settings)  # the last applied: characters' initial migration
    assert await migrations.pending_migrations(settings) == []
    assert "users" in (await tables_and_indexes(empty_db))[0]


async def test_downgrade_of_an_app_that_is_not_loaded_names_the_loaded_ones(empty_db):
    with pytest.raises(DataLayerError, match="loaded: core, ml"):
        await migrations.downgrade(1, make_settings(empty_db), app="agent", project=load_project(models=(), apps="ml"))


def test_committed_histories_match_the_models():
    assert check_migrations(load_project(models=())) == [], "a model changed without a migration: run `datalayer migrate --app <pack>`"


@pytest.fixture
def pack_histories(tmp_path, monkeypatch) -> Path:
    """A writable copy of the packs' histories, used in place of the shipped ones."""
    shutil.copytree(migrations.bundled_migrations(), tmp_path / "packs", ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.setattr(migrations, "bundled_migrations", lambda: tmp_path / "packs")
    return tmp_path / "packs"


def test_drift_check_catches_a_changed_live_unique_rule(pack_histories):
    first = sorted((pack_histories / "core").glob("[0-9]*_*.py"), key=lambda p: int(p.name.split("_")[0]))[-1]
    dropped = load_module(first).LIVE_UNIQUE_INDEXES[0]
    first.write_text(first.read_text().replace(f"    {json.dumps(dropped)},\n", ""))

    assert check_migrations(load_project(models=())) == ["core"]


async def test_a_pack_migration_is_written_for_both_backends(pack_histories, tmp_path):
    first = sorted((pack_histories / "ml").glob("[0-9]*_*.py"), key=lambda p: int(p.name.split("_")[0]))[-1]
    dropped = load_module(first).LIVE_UNIQUE_INDEXES[0]
    first.write_text(first.read_text().replace(f"    {json.dumps(dropped)},\n", ""))

    path = make_migration("restore_unique", app="ml", project=load_project(models=()))

    assert path is not None and path.parent == pack_histories / "ml"
    assert int(path.name.split("_")[0]) == int(first.name.split("_")[0]) + 1
    module = load_module(path)
    assert all(dropped in module.UPGRADE[d] for d in ("postgres", "sqlite")) and all(module.DOWNGRADE.values())
    assert make_migration("again", app="ml", project=load_project(models=())) is None, "nothing left to record"


def _history_with_nullable_first_name(packs: Path) -> None:
    """Make core's recorded state say ``users.first_name`` was NOT NULL (the models say NULL)."""
    import re

    from aerich.utils import decompress_dict, get_formatted_compressed_data

    last = sorted((packs / "core").glob("[0-9]*_*.py"), key=lambda p: int(p.name.split("_")[0]))[-1]
    state = decompress_dict(load_module(last).MODELS_STATE)
    for field in state["core.User"]["data_fields"]:
        if field["name"] == "first_name":
            field["nullable"] = False
    compressed = "".join(re.findall(r'"([^"]*)"', get_formatted_compressed_data(state)))
    text = last.read_text()
    last.write_text(text[: text.index("MODELS_STATE = ")] + f"MODELS_STATE = {compressed!r}\n")


async def test_a_change_aerich_cannot_make_on_sqlite_gets_sql_that_fails_loudly(pack_histories, tmp_path):
    _history_with_nullable_first_name(pack_histories)

    path = make_migration("nullable_first_name", app="core", project=load_project(models=()))

    module = load_module(path)
    assert 'ALTER COLUMN "first_name" DROP NOT NULL' in module.UPGRADE["postgres"]
    assert "write this SQL by hand" in module.UPGRADE["sqlite"]
    with pytest.raises(DataLayerError, match="write this SQL by hand"):
        await migrations.upgrade(make_settings(f"sqlite://{tmp_path / 'db.sqlite3'}"), load_project(models=()))


def test_migrate_without_app_models_says_how_to_configure_them():
    with pytest.raises(DataLayerError, match="DATALAYER_MODELS"):
        make_migration("x", project=load_project(models=()))


async def test_get_context_with_migrate_applies_pending_migrations_first(empty_db):
    from datalayer import close_context, get_context

    settings = make_settings(empty_db)
    await close_context()  # the process context may be open on the shared test database
    try:
        context = await get_context(settings=settings, models=(), migrate=True)
        assert await migrations.pending_migrations(settings) == []
        user = await context.users.create_user("m@example.com", "a-long-password", username="migrated")
        assert (await context.users.get(user.id)).username == "migrated"
    finally:
        await close_context()
