"""A user's app beside datalayer's packs: its own models and migration history (with foreign keys into the
packs), old databases adopted into the per-pack histories, and the one-context rule. Both engines."""

from __future__ import annotations

import asyncio
import sqlite3
import textwrap
import uuid
from pathlib import Path

import asyncpg
import pytest

from datalayer import ConfigurationError, DataLayerError, close_context, get_context, migrations
from datalayer.legacy_history import FILES as LEGACY_FILES
from datalayer.legacy_history import module as legacy_module
from datalayer.migration_files import EMPTY_UPGRADE
from datalayer.migration_writer import make_migration
from datalayer.project import Project, load_project
from datalayer.seeding import load_seed_set, seed
from tests.conftest import make_settings

NOTEBOOK_V1 = '''
from tortoise import fields
from datalayer import AuditedModel


class Shelf(AuditedModel):
    owner = fields.ForeignKeyField("core.User", related_name="shelves_{tag}")
    label = fields.CharField(max_length=50)

    class Meta:
        table = "shelf_{tag}"
'''

NOTEBOOK_V2 = NOTEBOOK_V1.replace('''    label = fields.CharField(max_length=50)''', '''    label = fields.CharField(max_length=50)
    model = fields.ForeignKeyField("ml.MLModel", related_name="shelves_{tag}", null=True)
    colour = fields.CharField(max_length=20, default="grey")''')


def write_app(root: Path, source: str) -> Project:
    """An app package of its own (a fresh module name per test: Tortoise remembers a model's app label)."""
    tag = root.name
    package = root / f"app_{tag}"
    package.mkdir(exist_ok=True)
    (package / "__init__.py").write_text("")
    (package / "models.py").write_text(textwrap.dedent(source.format(tag=tag)))
    return Project(root=root, models=(f"app_{tag}.models",), migrations_dir=root / "migrations",
                   seeds_dir=root / "seeds", src=root)


@pytest.fixture
def app_root(tmp_path, monkeypatch) -> Path:
    monkeypatch.delenv("DATALAYER_MIGRATIONS_DIR", raising=False)  # this app's history is in its own folder
    root = tmp_path / uuid.uuid4().hex[:8]
    root.mkdir()
    return root


async def query(url: str, sql: str) -> list[tuple]:
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


async def columns(url: str, table: str) -> list[str]:
    if url.startswith("postgres"):
        rows = await query(url, f"SELECT column_name FROM information_schema.columns WHERE table_name = '{table}'")
    else:
        rows = [(r[1],) for r in await query(url, f'PRAGMA table_info("{table}")')]
    return sorted(r[0] for r in rows)


async def test_an_apps_history_with_foreign_keys_into_the_packs_upgrades_and_downgrades(empty_database_url, app_root,
                                                                                         monkeypatch):
    url, settings = empty_database_url, make_settings(empty_database_url)
    project = write_app(app_root, NOTEBOOK_V1)
    monkeypatch.syspath_prepend(str(app_root))
    first = make_migration("init", project=project)
    write_app(app_root, NOTEBOOK_V2)  # a foreign key into another pack (ml), made by aerich's diff
    second = make_migration("add_model", project=project)
    assert first.parent == second.parent == app_root / "migrations" / "models"
    assert 'REFERENCES "ml_models"' in second.read_text()

    applied = await migrations.upgrade(settings, project)

    assert applied[-2:] == [f"models/{first.name}", f"models/{second.name}"]
    table = f"shelf_{app_root.name}"
    assert {"model_id", "colour", "owner_id"} <= set(await columns(url, table))
    await close_context()
    try:
        ctx = await get_context(settings=settings, models=project.models)
        shelf_model = next(m for m in ctx.models if m._meta.db_table == table)
        user = await ctx.users.create_user("shelf@example.com", "a long passphrase", username="shelver")
        await ctx.manager(shelf_model).create({"owner_id": user.id, "label": "kept", "colour": "red"})
    finally:
        await close_context()

    assert await migrations.downgrade(-1, settings, project=project) == [f"models/{second.name}"]
    assert "model_id" not in await columns(url, table)
    assert await migrations.pending_migrations(settings, project) == [f"models/{second.name}"]
    assert await migrations.upgrade(settings, project) == [f"models/{second.name}"]
    assert await query(url, f"SELECT label FROM {table}") == [("kept",)]
    with pytest.raises(Exception, match="initial migration"):
        await migrations.downgrade(0, settings, app="models", project=project)


async def test_a_migration_that_fails_half_way_leaves_nothing_and_runs_again_once_fixed(empty_database_url, app_root,
                                                                                        monkeypatch):
    """Its first statement is undone with it, on both engines (SQLite's executescript used to COMMIT each
    statement, so the column stayed, the migration was not recorded, and every later upgrade failed on
    "duplicate column name")."""
    url, settings = empty_database_url, make_settings(empty_database_url)
    project = write_app(app_root, NOTEBOOK_V1)
    monkeypatch.syspath_prepend(str(app_root))
    make_migration("init", project=project)
    await migrations.upgrade(settings, project)
    table = f"shelf_{app_root.name}"
    boom = make_migration("boom", empty=True, project=project)
    text = boom.read_text()
    failing = text.replace(EMPTY_UPGRADE, f'ALTER TABLE "{table}" ADD "weight" INT;\n        SELECT * FROM no_such_table')
    boom.write_text(failing)

    with pytest.raises(DataLayerError, match="no_such_table") as caught:
        await migrations.upgrade(settings, project)
    assert f"migration models/{boom.name}" in str(caught.value), "the error names the file that failed"
    assert "weight" not in await columns(url, table), "the failed migration's first statement stayed"
    assert await migrations.pending_migrations(settings, project) == [f"models/{boom.name}"]

    boom.write_text(text.replace(EMPTY_UPGRADE, f'ALTER TABLE "{table}" ADD "weight" INT'))
    assert await migrations.upgrade(settings, project) == [f"models/{boom.name}"]
    assert "weight" in await columns(url, table)


@pytest.mark.parametrize("statement", ["BEGIN", "COMMIT", "PRAGMA foreign_keys = OFF", "END TRANSACTION"])
async def test_a_script_in_a_sqlite_transaction_refuses_what_a_transaction_cannot_honour(ctx, statement):
    """Transaction control, and PRAGMA foreign_keys (a no-op inside a transaction, so a table rebuild would
    run with foreign keys on): refused before anything runs, naming RUN_IN_TRANSACTION = False."""
    if ctx.target.engine != "sqlite":
        pytest.skip("PostgreSQL runs a script in its transaction as written (no implicit COMMIT)")
    with pytest.raises(ConfigurationError, match="RUN_IN_TRANSACTION = False"):
        async with ctx.transaction() as tx:
            await tx.connection.execute_script(f'CREATE TABLE "t_refused" (x INT); {statement};')
    assert not await ctx.raw("SELECT name FROM sqlite_master WHERE name = 't_refused'")


async def test_get_context_with_the_apps_models_migrates_its_tables_too(empty_database_url, app_root, monkeypatch):
    project = write_app(app_root, NOTEBOOK_V1)
    monkeypatch.syspath_prepend(str(app_root))  # the app's own process imports its models,
    monkeypatch.chdir(app_root)  # from its own folder, where its migrations are
    make_migration("init", project=project)
    settings = make_settings(empty_database_url)
    await close_context()
    try:
        ctx = await get_context(settings=settings, models=project.models, migrate=True)
        assert f"shelf_{app_root.name}" in {m._meta.db_table for m in ctx.models}
        user = await ctx.users.create_user("owner@example.com", "a long passphrase", username="owner")
        shelf_model = next(m for m in ctx.models if m._meta.db_table == f"shelf_{app_root.name}")
        shelf = await ctx.manager(shelf_model).create({"owner_id": user.id, "label": "first"})
        assert (await ctx.manager(shelf_model).get(shelf.id)).label == "first"
    finally:
        await close_context()


async def test_migrate_at_start_without_the_apps_history_is_an_error_not_a_missing_table(empty_database_url, app_root,
                                                                                          monkeypatch):
    project = write_app(app_root, NOTEBOOK_V1)
    monkeypatch.syspath_prepend(str(app_root))
    monkeypatch.chdir(app_root)
    await close_context()
    with pytest.raises(ConfigurationError, match="datalayer migrate init"):
        await get_context(settings=make_settings(empty_database_url), models=project.models, migrate=True)
    with pytest.raises(ConfigurationError, match="cannot import the app's models 'no_such_app.models'"):
        await get_context(settings=make_settings(empty_database_url), models=["no_such_app.models"])


async def build_with_the_old_history(url: str) -> None:
    """A database made by datalayer's single history (app ``models``), as a user upgrading has it."""
    from aerich.models import Aerich
    from aerich.utils import decompress_dict
    from tortoise import Tortoise
    from tortoise.context import TortoiseContext
    from tortoise.transactions import in_transaction

    from datalayer.config import tortoise_config

    async with TortoiseContext():
        await Tortoise.init(config=tortoise_config(make_settings(url), load_project(models=()), with_aerich=True))
        for name in LEGACY_FILES:
            old = legacy_module(name)
            async with in_transaction("default") as connection:
                await connection.execute_script(await old.upgrade(connection))
                await Aerich.create(version=name, app="models", content=decompress_dict(old.MODELS_STATE))
        await Tortoise.close_connections()


async def every_row(url: str) -> dict[str, list[tuple]]:
    """Every row of every table but aerich's, sorted."""
    if url.startswith("postgres"):  # a partitioned table's rows are read through it, not its partitions
        tables = [r[0] for r in await query(url, "SELECT tablename FROM pg_tables WHERE schemaname = 'public' "
                                                 "AND tablename NOT IN (SELECT relname FROM pg_class WHERE relispartition)")]
    else:
        tables = [r[0] for r in await query(url, "SELECT name FROM sqlite_master WHERE type='table' AND name NOT LIKE 'sqlite_%'")]
    return {t: sorted(map(str, await query(url, f'SELECT * FROM "{t}"'))) for t in tables if t != "aerich"}


async def schema(url: str) -> tuple[list, list]:
    if url.startswith("postgres"):
        cols = await query(url, "SELECT table_name, column_name, data_type, is_nullable FROM information_schema.columns "
                                "WHERE table_schema = 'public' ORDER BY 1, 2")
        indexes = await query(url, "SELECT tablename, indexname, indexdef FROM pg_indexes WHERE schemaname = 'public' "
                                   "ORDER BY 1, 2")
        return cols, indexes
    tables = [r[0] for r in await query(url, "SELECT name FROM sqlite_master WHERE type='table' AND name NOT LIKE 'sqlite_%'")]
    cols = []
    for table in tables:
        cols += [(table, r[1], r[2], r[3]) for r in await query(url, f'PRAGMA table_info("{table}")')]
    cols.sort()
    indexes = await query(url, "SELECT tbl_name, name, sql FROM sqlite_master WHERE type='index' ORDER BY 1, 2")
    return cols, indexes


async def test_a_database_of_the_old_single_history_is_adopted_with_every_row(empty_database_url, tmp_path):
    url, settings = empty_database_url, make_settings(empty_database_url)
    await build_with_the_old_history(url)
    await close_context()
    try:  # real rows in every pack's tables, written through datalayer as an app did before upgrading
        ctx = await get_context(settings=settings, models=())
        await seed(ctx, load_seed_set("test"))
    finally:
        await close_context()
    before_rows = await every_row(url)
    assert before_rows["users"] and before_rows["characters"] and before_rows["audit_log"]

    applied = await migrations.upgrade(settings)

    adopted = [name for name in applied if "adopted" in name]
    assert sorted(name.split("/")[0] for name in adopted) == sorted(("core", "agent", "analysis", "ml", "characters"))
    assert all(name.split("/")[1].startswith("0_") for name in adopted), "only the initial files are adopted"
    assert all(not name.split("/")[1].startswith("0_") for name in applied if name not in adopted), \
        "later pack migrations really run"
    assert await migrations.pending_migrations(settings) == []
    assert await every_row(url) == before_rows
    assert await query(url, "SELECT count(*) FROM aerich WHERE app = 'models'") == [(0,)]
    assert await migrations.upgrade(settings) == [], "adoption happens once"

    fresh = f"sqlite://{tmp_path / 'fresh.sqlite3'}" if not url.startswith("postgres") else None
    if fresh is None:
        from tests.conftest import create_pg_database, drop_pg_database

        fresh = await create_pg_database("datalayer_fresh")
    try:
        await migrations.upgrade(make_settings(fresh))
        adopted_schema, fresh_schema = await schema(url), await schema(fresh)
        assert adopted_schema[0] == fresh_schema[0], "same columns"
        assert adopted_schema[1] == fresh_schema[1], "same indexes"
    finally:
        if fresh.startswith("postgres"):
            await drop_pg_database(fresh)


async def test_a_database_half_way_through_the_old_history_is_finished_then_adopted(empty_database_url):
    url, settings = empty_database_url, make_settings(empty_database_url)
    await build_with_the_old_history(url)
    last = LEGACY_FILES[-1]
    await query(url, f"DELETE FROM aerich WHERE version = '{last}'")  # as if the last file never ran
    await query(url, 'DROP INDEX IF EXISTS "idx_audit_log_record__4ba9dd"')  # harmless if named otherwise

    applied = await migrations.upgrade(settings)

    assert applied[0] == f"models/{last}"
    assert await migrations.pending_migrations(settings) == []


async def test_a_second_context_with_other_settings_is_refused_not_silently_shared(backend, tmp_path):
    await close_context()
    first = await get_context(settings=backend.settings, models=("tests.models",), migrate=True)
    try:
        other = make_settings(f"sqlite://{tmp_path / 'other.sqlite3'}")
        with pytest.raises(ConfigurationError, match="already open"):
            await get_context(settings=other)
        with pytest.raises(ConfigurationError, match="other packs"):
            await get_context(apps=["ml"])
        assert await get_context(settings=backend.settings) is first
        assert await get_context() is first
    finally:
        await close_context()


async def test_concurrent_upgrades_apply_each_migration_once(empty_database_url, app_root, monkeypatch):
    """Two workers starting at once (get_context(migrate=True) in each) must not run a data migration twice."""
    url, settings = empty_database_url, make_settings(empty_database_url)
    project = write_app(app_root, NOTEBOOK_V1)
    monkeypatch.syspath_prepend(str(app_root))
    make_migration("init", project=project)
    data = make_migration("count_runs", empty=True, project=project)
    table = f"runs_{app_root.name}"
    text = data.read_text()
    for dialect in ("postgres", "sqlite"):
        text = text.replace(f'    "{dialect}": """\n        ', f'    "{dialect}": """\n        CREATE TABLE IF NOT EXISTS "{table}" '
                            f'(n INTEGER); INSERT INTO "{table}" (n) VALUES (1);', 1)
    data.write_text(text)

    results = await asyncio.gather(*(migrations.upgrade(settings, project) for _ in range(3)))

    assert sorted(len(applied) for applied in results)[:2] == [0, 0], "one run applied everything, the others nothing"
    assert await query(url, f'SELECT count(*) FROM "{table}"') == [(1,)]
    assert await query(url, f"SELECT count(*) FROM aerich WHERE version = '{data.name}'") == [(1,)]


async def test_an_app_model_may_not_take_a_packs_table_or_manager_name(empty_database_url, app_root, monkeypatch):
    clash = write_app(app_root, """
from tortoise import fields
from datalayer import AuditedModel


class User(AuditedModel):
    nickname = fields.CharField(max_length=20)

    class Meta:
        table = "users"
""")
    monkeypatch.syspath_prepend(str(app_root))
    with pytest.raises(Exception, match="both use table 'users'"):
        make_migration("init", project=clash)
    await close_context()
    with pytest.raises(ConfigurationError, match="both use table 'users'"):
        await get_context(settings=make_settings(empty_database_url), models=clash.models)
    await close_context()


def test_a_models_module_without_models_is_refused_before_it_can_drop_tables(app_root, monkeypatch):
    (app_root / "empty_pkg").mkdir()
    (app_root / "empty_pkg" / "__init__.py").write_text("VALUE = 1\n")
    monkeypatch.syspath_prepend(str(app_root))
    project = Project(root=app_root, models=("empty_pkg",), migrations_dir=app_root / "migrations",
                      seeds_dir=app_root / "seeds", src=app_root)
    with pytest.raises(ConfigurationError, match="defines no Tortoise model"):
        project.importable()


def test_a_command_run_in_a_subfolder_finds_the_apps_project(app_root, monkeypatch):
    (app_root / "pyproject.toml").write_text('[tool.datalayer]\nmodels = ["app_x.models"]\n')
    deep = app_root / "src" / "deeper"
    deep.mkdir(parents=True)
    monkeypatch.chdir(deep)
    found = load_project()
    assert found.root == app_root and found.models == ("app_x.models",)
    assert found.migrations_dir == app_root / "migrations"
