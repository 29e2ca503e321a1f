"""The ``datalayer`` command line, run the way a user runs it: ``python -m datalayer ...`` in a subprocess,
against a fresh PostgreSQL database and a fresh SQLite file."""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import subprocess
import sys
import uuid
from pathlib import Path

import asyncpg
import pytest
import pytest_asyncio

from datalayer import migrations
from datalayer.migration_files import load_module, render
from tests.conftest import PG_ADMIN_URL, create_pg_database, drop_pg_database
from tests.private_postgres import PrivatePostgres

REPO = Path(__file__).resolve().parents[1]


def cli(url: str, *args: str, cwd: Path = REPO, **env: str) -> subprocess.CompletedProcess[str]:
    environ = {**{k: v for k, v in os.environ.items() if k != "DATALAYER_MIGRATIONS_DIR"}, "DATABASE_URL": url, "DATALAYER_ENV": "test", "BCRYPT_ROUNDS": "4",
               "DB_RETRY_ATTEMPTS": "1", "COLUMNS": "200", **env}
    return subprocess.run([sys.executable, "-m", "datalayer", *args], capture_output=True, text=True,
                          env=environ, cwd=cwd, timeout=180)


def ok(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


@pytest.fixture
def url(empty_database_url: str) -> str:
    return empty_database_url


async def all_rows(url: str) -> dict[str, list[tuple]]:
    """Every row of every table but aerich's, as the driver returns it, ordered by id."""
    if url.startswith("postgres"):
        connection = await asyncpg.connect(url)
        try:
            tables = [r[0] for r in await connection.fetch(
                "SELECT tablename FROM pg_tables WHERE schemaname='public' AND tablename <> 'aerich'")]
            return {t: [tuple(r) for r in await connection.fetch(f'SELECT * FROM "{t}" ORDER BY id')] for t in tables}
        finally:
            await connection.close()
    with sqlite3.connect(url.removeprefix("sqlite://")) as connection:
        tables = [r[0] for r in connection.execute(
            "SELECT name FROM sqlite_master WHERE type='table' AND name NOT LIKE 'sqlite_%' AND name <> 'aerich'")]
        return {t: connection.execute(f'SELECT * FROM "{t}" ORDER BY id').fetchall() for t in tables}


async def sql(url: str, statement: str) -> None:
    if url.startswith("postgres"):
        connection = await asyncpg.connect(url)
        try:
            await connection.execute(statement)
        finally:
            await connection.close()
    else:
        with sqlite3.connect(url.removeprefix("sqlite://")) as connection:
            connection.execute(statement)


async def test_upgrade_status_history_seed_as_a_user_runs_them(url):
    assert "applied" in ok(cli(url, "upgrade"))
    assert "Already up to date" in ok(cli(url, "upgrade"))

    history = ok(cli(url, "history"))
    for name in migrations.history():
        app, file = name.split("/")
        assert any(app in line and file in line and "applied" in line for line in history.splitlines()), name
    assert "pending" not in history
    first = ok(cli(url, "seed"))
    assert "created" in first
    second = ok(cli(url, "seed", "--verbose"))
    assert "created" not in second.replace("seed set", "") and "unchanged" in second

    status = ok(cli(url, "status"))
    assert f"{len(migrations.history())} applied, 0 pending" in status
    assert "character_templates" in status and " 10 " in status
    assert "round trip" in ok(cli(url, "verify"))
    assert "users" in ok(cli(url, "stats"))


async def test_backup_reset_restore_gives_back_identical_rows(url, tmp_path):
    ok(cli(url, "upgrade"))
    ok(cli(url, "seed", "--env", "development"))
    await sql(url, "UPDATE characters SET deleted_at = created_at WHERE name = 'Hana'")  # a soft-deleted row too
    before = await all_rows(url)
    backup = tmp_path / "backup.jsonl"

    assert "wrote" in ok(cli(url, "backup", str(backup)))
    ok(cli(url, "reset", "--env", "none"))
    assert sum(map(len, (await all_rows(url)).values())) == 0
    assert "restored" in ok(cli(url, "restore", str(backup)))

    assert await all_rows(url) == before
    refused = cli(url, "restore", str(backup))
    assert refused.returncode == 1 and "not empty" in refused.stderr and "Traceback" not in refused.stderr


async def test_restore_refuses_a_backup_from_a_newer_schema_and_changes_nothing(url, tmp_path):
    ok(cli(url, "upgrade"))
    ok(cli(url, "seed"))
    backup = tmp_path / "backup.jsonl"
    ok(cli(url, "backup", str(backup)))
    lines = backup.read_text().splitlines()
    lines[0] = lines[0].replace('"core": "', '"core": "9')  # core "90_..." is newer than anything applied
    trailer = json.loads(lines[-1])  # sealed again, as a newer datalayer would have written it
    trailer["sha256"] = hashlib.sha256("".join(line + "\n" for line in lines[:-1]).encode()).hexdigest()
    lines[-1] = json.dumps(trailer)
    backup.write_text("\n".join(lines) + "\n")
    before = await all_rows(url)

    result = cli(url, "restore", "--replace", str(backup))

    assert result.returncode == 1 and "newer schema (core 9" in result.stderr
    assert await all_rows(url) == before


async def test_cleanup_dry_run_counts_and_real_run_removes_old_soft_deleted_rows(url):
    ok(cli(url, "upgrade"))
    ok(cli(url, "seed"))
    await sql(url, "UPDATE characters SET deleted_at = '2020-01-01 00:00:00+00:00' WHERE name = 'Test Sketch'")

    dry = ok(cli(url, "cleanup", "--days", "30", "--dry-run"))
    assert "dry run: nothing changed (1 rows)" in dry
    assert len((await all_rows(url))["characters"]) == 2
    assert "done (1 rows)" in ok(cli(url, "cleanup", "--days", "30"))
    assert len((await all_rows(url))["characters"]) == 1


async def test_production_guard_refuses_reset_and_clear(url):
    ok(cli(url, "upgrade"))
    ok(cli(url, "seed", "--env", "production"))
    before = await all_rows(url)

    for args in (("reset",), ("seed", "--clear"), ("seed", "--clear", "--env", "production")):
        environment = "production" if args[-1] != "production" else "test"
        refused = cli(url, *args, DATALAYER_ENV=environment)
        assert refused.returncode == 2 and "--yes-i-mean-production" in refused.stderr

    assert await all_rows(url) == before
    cleared = cli(url, "seed", "--clear", "--env", "production", "--yes-i-mean-production")
    assert "10 removed" in ok(cleared) or "removed" in cleared.stdout
    assert (await all_rows(url))["character_templates"] == []


async def test_health_exit_codes_follow_the_database_state(url, app_folder):
    assert cli(url, "health", cwd=app_folder).returncode == 2  # empty database: tables missing
    ok(cli(url, "upgrade", cwd=app_folder))
    assert cli(url, "health", cwd=app_folder).returncode == 0

    history = app_folder / "migrations" / "models"
    last = load_module(sorted(history.glob("[0-9]*.py"))[-1])
    (history / "7_20990101000000_pending.py").write_text(render({}, {}, tuple(last.LIVE_UNIQUE_INDEXES), last.MODELS_STATE))
    degraded = cli(url, "health", "--json", cwd=app_folder)
    assert degraded.returncode == 1 and "models/7_20990101000000_pending.py" in degraded.stdout

    await sql(url, 'DROP TABLE "notes_note"')  # a table of the app's own models
    missing = cli(url, "health", "--json", cwd=app_folder)
    assert missing.returncode == 2 and "notes_note" in missing.stdout


def test_health_is_unhealthy_when_the_postgres_server_is_stopped():
    server = PrivatePostgres()
    server.start()
    try:
        url = server.url(password="stop-test-pw")
        ok(cli(url, "upgrade"))
        assert cli(url, "health").returncode == 0
        server.stop()
        down = cli(url, "health", "--json")
        assert down.returncode == 2 and '"unhealthy"' in down.stdout
        assert "stop-test-pw" not in down.stdout + down.stderr and "Traceback" not in down.stderr
    finally:
        server.destroy()


def test_unreachable_sqlite_file_is_unhealthy(tmp_path):
    result = cli(f"sqlite://{tmp_path / 'no' / 'such' / 'dir' / 'db.sqlite3'}", "health")
    assert result.returncode == 2


@pytest_asyncio.fixture
async def password_url():
    """A fresh database owned by a role with a password (trust auth accepts it; it must never be shown)."""
    role, password = f"dl_cli_{uuid.uuid4().hex[:8]}", f"Pw-{uuid.uuid4().hex}"
    admin = await asyncpg.connect(PG_ADMIN_URL)
    await admin.execute(f"CREATE ROLE {role} LOGIN PASSWORD '{password}'")
    await admin.close()
    database = await create_pg_database("datalayer_pw")
    admin = await asyncpg.connect(PG_ADMIN_URL)
    await admin.execute(f'ALTER DATABASE "{database.rsplit("/", 1)[1]}" OWNER TO {role}')
    await admin.close()
    yield database.replace("postgres@", f"{role}:{password}@"), password
    await drop_pg_database(database)
    admin = await asyncpg.connect(PG_ADMIN_URL)
    await admin.execute(f"DROP ROLE IF EXISTS {role}")
    await admin.close()


async def test_no_command_ever_prints_the_password(password_url):
    url, password = password_url
    outputs = []
    for args in (("upgrade",), ("status",), ("history",), ("health", "--json"), ("health",), ("verify",),
                 ("seed", "--verbose"), ("stats",)):
        result = cli(url, *args)
        assert result.returncode == 0, result.stderr
        outputs.append(result.stdout + result.stderr)
    for broken in (url.rsplit("/", 1)[0] + "/no_such_database", url.replace("127.0.0.1:5432", "127.0.0.1:1")):
        result = cli(broken, "status")
        assert result.returncode != 0 and "Traceback" not in result.stderr
        outputs.append(result.stdout + result.stderr)

    assert not [out for out in outputs if password in out]
    assert ":***@" in outputs[1]


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"DATABASE_URL": "mysql://db/app"}, "not supported"),
        ({"DATALAYER_ENV": "staging"}, "unknown environment"),
        ({"DATABASE_URL": "postgres://postgres@127.0.0.1:1/x"}, "could not connect"),
    ],
)
def test_user_errors_are_one_clear_line_and_a_non_zero_exit(env, message):
    result = cli("sqlite://:memory:", "status", **env)
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and message in lines[0]


def test_unknown_seed_environment_is_a_clear_error(tmp_path):
    result = cli(f"sqlite://{tmp_path / 'x.sqlite3'}", "seed", "--env", "staging")
    assert result.returncode == 1 and "unknown environment 'staging'" in result.stderr


def test_check_migrations_passes_on_the_committed_history():
    assert "in sync" in ok(cli("sqlite://:memory:", "check-migrations"))


def aerich(url: str, *args: str) -> str:
    """The plain ``aerich`` command from the repository root, configured only by pyproject.toml."""
    environ = {**{k: v for k, v in os.environ.items() if k != "DATALAYER_MIGRATIONS_DIR"}, "DATABASE_URL": url, "AERICH_NO_TORTOISE_V1_WARNING": "1"}
    result = subprocess.run([str(Path(sys.executable).with_name("aerich")), *args], capture_output=True,
                            text=True, env=environ, cwd=REPO, timeout=180)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


async def test_plain_aerich_commands_work_from_the_repository_root(url):
    """aerich's own CLI, one app at a time (``--app``), on the packs' histories in ``migrations/<pack>/``."""
    for app in ("core", "ml"):
        files = sorted(p.name for p in (REPO / "migrations" / app).glob("[0-9]*_*.py"))
        assert "Success upgrading to " + files[-1] in aerich(url, "--app", app, "upgrade")
        assert aerich(url, "--app", app, "history").split() == files
        assert "No available heads" in aerich(url, "--app", app, "heads")
    assert "Success upgrading to" in aerich(url, "--app", "characters", "upgrade")


async def test_every_command_sees_the_apps_own_models(url, app_folder, tmp_path):
    """Run in the app's folder, the commands load its [tool.datalayer] models beside datalayer's packs."""
    assert "Applied models/0_" in ok(cli(url, "upgrade", cwd=app_folder))
    assert "created" in ok(cli(url, "seed", "--env", "development", cwd=app_folder))
    assert "notes_notebook" in ok(cli(url, "status", cwd=app_folder))
    history = ok(cli(url, "history", cwd=app_folder))
    assert "models" in history and "add_note_editor" in history
    assert "in sync" in ok(cli(url, "check-migrations", cwd=app_folder))
    backup = tmp_path / "app.jsonl"
    ok(cli(url, "backup", str(backup), cwd=app_folder))
    assert '"table": "notes_notebook"' in backup.read_text() and '"table": "notes_note"' in backup.read_text()
    assert (await all_rows(url))["notes_notebook"], "the app's seed set ran after the packs' (it refers to core users)"

    elsewhere = cli(url, "restore", "--replace", str(backup))  # from a folder that does not load the app
    assert elsewhere.returncode == 1 and "notes_" in elsewhere.stderr and "does not know" in elsewhere.stderr
    assert "Rolled back models/1_" in ok(cli(url, "downgrade", cwd=app_folder))
    assert "Applied models/1_" in ok(cli(url, "upgrade", cwd=app_folder))


async def test_backup_of_a_database_without_tables_is_an_error(url, tmp_path):
    target = tmp_path / "nothing.jsonl"
    result = cli(url, "backup", str(target))
    assert result.returncode == 1 and "none of the loaded models' tables" in result.stderr
    assert not target.exists() or target.read_text() == ""


def test_init_scaffolds_an_app_once_and_explains_what_is_missing(tmp_path):
    app = tmp_path / "shop"
    (app / "shop").mkdir(parents=True)
    (app / "shop" / "__init__.py").write_text("")
    (app / "shop" / "models.py").write_text("from tortoise import fields\nfrom datalayer import AuditedModel\n\n\n"
                                            "class Order(AuditedModel):\n    total = fields.IntField()\n")
    (app / "pyproject.toml").write_text('[project]\nname = "shop"\n')
    url = f"sqlite://{tmp_path / 'shop.sqlite3'}"

    missing = cli(url, "init", cwd=app)
    assert missing.returncode == 1 and "DATALAYER_MODELS" in missing.stderr
    wrong = cli(url, "init", cwd=app, DATALAYER_MODELS="shop.nope")
    assert wrong.returncode == 1 and "cannot import the app's models 'shop.nope'" in wrong.stderr

    assert "wrote [tool.datalayer]" in ok(cli(url, "init", cwd=app, DATALAYER_MODELS="shop.models"))
    text = (app / "pyproject.toml").read_text()
    assert text.startswith('[project]\nname = "shop"\n') and 'models = ["shop.models"]' in text
    assert (app / "migrations" / "models").is_dir() and (app / "seeds").is_dir()
    assert "left as it is" in ok(cli(url, "init", cwd=app))
    assert (app / "pyproject.toml").read_text() == text
    assert "Created migrations/models/0_" in ok(cli(url, "migrate", "init", cwd=app))
    assert "Applied models/0_" in ok(cli(url, "upgrade", cwd=app))
    unknown = cli(url, "status", "--apps", "core,shopping", cwd=app)
    assert unknown.returncode == 1 and "unknown pack(s) shopping" in unknown.stderr
