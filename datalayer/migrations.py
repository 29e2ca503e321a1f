"""The committed migration history (aerich): apply, roll back, list, and create new migrations.

Each database operation runs in its own task with a fresh ``TortoiseContext`` and one aerich ``Command``
(aerich keeps state in class attributes and a stale context breaks a second ``Command``), so it is safe to
call beside an open ``DataContext``. Creating a migration runs aerich in child processes, never in-process.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Awaitable, Callable
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

from datalayer.config import APP_LABEL, CONNECTION_NAME, tortoise_config
from datalayer.connection import scrub
from datalayer.errors import ConfigurationError, DatabaseUnavailableError, DataLayerError
from datalayer.migration_writer import DIALECTS, load_module, merge, render, version_files
from datalayer.settings import Settings
from datalayer.translate import translated

log = logging.getLogger("datalayer.migrations")
T = TypeVar("T")

#: the folder aerich's ``location`` points at (``[tool.aerich] location`` in pyproject.toml)
MIGRATIONS_DIR = Path(os.environ.get("DATALAYER_MIGRATIONS_DIR", Path(__file__).resolve().parents[1] / "migrations"))


def migration_folder(location: Path | None = None) -> Path:
    return (location or MIGRATIONS_DIR) / APP_LABEL


def history(location: Path | None = None) -> list[str]:
    """Every migration file, oldest first (what exists on disk, applied or not)."""
    folder = migration_folder(location)
    return [p.name for p in version_files(folder)] if folder.exists() else []


async def _with_command(settings: Settings | None, action: Callable[[Any], Awaitable[T]]) -> T:
    from aerich import Command
    from tortoise.backends.base.executor import EXECUTOR_CACHE
    from tortoise.context import TortoiseContext

    settings = settings or Settings()
    if not migration_folder().exists():
        raise ConfigurationError(f"no migrations folder at {migration_folder()}; set DATALAYER_MIGRATIONS_DIR")
    config = tortoise_config(settings, with_aerich=True)

    async def run() -> T:
        async with TortoiseContext():
            async with Command(tortoise_config=config, app=APP_LABEL, location=str(MIGRATIONS_DIR)) as command:
                return await action(command)

    try:
        with translated("migration"):
            return await asyncio.get_running_loop().create_task(run())  # own task: own contextvars
    except DatabaseUnavailableError as exc:
        raise DatabaseUnavailableError(
            f"could not connect to {settings.target.describe()}: {scrub(str(exc), settings)}"
        ) from None
    finally:
        EXECUTOR_CACHE.clear()  # cached SQL is keyed by connection name, not dialect


async def upgrade(settings: Settings | None = None) -> list[str]:
    """Apply every pending migration, each in its own transaction; returns the files applied."""
    applied = await _with_command(settings, lambda command: command.upgrade(run_in_transaction=True))
    if applied:
        log.info("migrations applied", extra={"migrations": applied})
    return applied


async def downgrade(version: int = -1, settings: Settings | None = None) -> list[str]:
    """Roll back the last migration (``version=-1``) or migration ``version`` and every one after it.

    Raises:
        DataLayerError: the version is not applied, or it is the initial migration (which cannot be undone).
    """
    from aerich.exceptions import DowngradeError

    if version == 0:
        raise DataLayerError("cannot downgrade the initial migration (0); `datalayer reset` rebuilds the database")
    try:
        rolled_back = await _with_command(settings, lambda command: command.downgrade(version, delete=False))
    except DowngradeError as exc:
        raise DataLayerError(f"cannot downgrade to {version}: {exc} (the initial migration cannot be undone)") from None
    log.info("migrations rolled back", extra={"migrations": rolled_back})
    return rolled_back


async def _read_applied() -> list[str]:
    from tortoise import Tortoise

    connection = Tortoise.get_connection(CONNECTION_NAME)
    try:
        _, rows = await connection.execute_query("SELECT version FROM aerich WHERE app = 'models' ORDER BY id")
    except Exception as exc:  # noqa: BLE001 - a missing table means nothing is applied
        if "aerich" in str(exc) and ("exist" in str(exc) or "no such table" in str(exc)):
            return []
        raise
    return [row["version"] for row in rows]


async def applied_migrations(settings: Settings | None = None) -> list[str]:
    """The files recorded in the ``aerich`` table, oldest first ([] when the table does not exist).

    Reuses the open ``DataContext``'s connection when it is on these settings (health checks call this often).
    """
    from datalayer import context

    current = context._current
    if current is not None and not current.closed and (settings is None or settings is current.settings):
        with translated("migration"):
            return await _read_applied()
    return await _with_command(settings, lambda _: _read_applied())


async def pending_migrations(settings: Settings | None = None) -> list[str]:
    """Migration files not applied to the database yet, oldest first."""
    done = set(await applied_migrations(settings))
    return [name for name in history() if name not in done]


# -- creating migrations (development time) -------------------------------------------------------------


#: what ``datalayer migrate`` writes for SQLite when aerich cannot (it fails loudly until replaced by hand)
SQLITE_BY_HAND = 'SELECT * FROM "aerich cannot alter this column on SQLite: write this SQL by hand (see README)"'


def _run_writer(dialect: str, location: Path, name: str) -> dict[str, Any]:
    """Ask aerich (offline, in a child process) what changed, for one dialect."""
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "DB_NAME")}
    done = subprocess.run(
        [sys.executable, "-m", "datalayer.migration_writer", dialect, str(location), name],
        capture_output=True, text=True, env=env, cwd=str(Path(__file__).resolve().parents[1]),
    )
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["aerich failed"])[-1]
        hint = " (aerich cannot alter column types, defaults or NULL on SQLite; see README)" if dialect == "sqlite" else ""
        raise DataLayerError(f"generating the {dialect} migration failed: {last}{hint}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def _plan(name: str) -> tuple[str, str] | None:
    """(file name, text) of the migration the models need now, or ``None`` when they match the history."""
    previous_files = version_files(migration_folder())
    previous = load_module(previous_files[-1]) if previous_files else None
    number = int(previous_files[-1].stem.split("_", 1)[0]) + 1 if previous_files else 0
    fallback = f"{number}_{datetime.now():%Y%m%d%H%M%S}_{name}.py"
    with tempfile.TemporaryDirectory(prefix="datalayer-migrate-") as tmp:
        results = {}
        for dialect in DIALECTS:
            location = Path(tmp, dialect)
            if migration_folder().exists():
                shutil.copytree(migration_folder(), location / APP_LABEL)
            try:
                results[dialect] = _run_writer(dialect, location, name)
            except DataLayerError as exc:
                if dialect != "sqlite" or "NotSupportError" not in str(exc):
                    raise
                log.warning("aerich cannot express this change on SQLite; the file's SQLite SQL must be written by hand")
                results[dialect] = {**results["postgres"], "upgrade": SQLITE_BY_HAND, "downgrade": SQLITE_BY_HAND}
    return merge(results, previous, fallback)


def make_migration(name: str = "update", *, empty: bool = False) -> Path | None:
    """Write the next migration file for the current models; ``None`` when nothing changed.

    ``empty=True`` writes a file with no SQL, to fill in by hand (data migrations, SQLite table rebuilds).
    """
    if not name.replace("_", "").isalnum():
        raise ConfigurationError(f"migration name {name!r} must be letters, digits and underscores")
    folder = migration_folder()
    folder.mkdir(parents=True, exist_ok=True)
    if empty:
        files = version_files(folder)
        if not files:
            raise ConfigurationError("the first migration cannot be empty; run `datalayer migrate` without --empty")
        last = load_module(files[-1])
        number = int(files[-1].stem.split("_", 1)[0]) + 1
        planned = (f"{number}_{datetime.now():%Y%m%d%H%M%S}_{name}.py",
                   render({}, {}, tuple(last.LIVE_UNIQUE_INDEXES), last.MODELS_STATE))
    else:
        planned = _plan(name)
    if planned is None:
        return None
    path = folder / planned[0]
    path.write_text(planned[1], encoding="utf-8")
    return path


def check_migrations() -> str | None:
    """The drift check: the name of the migration the models would need, or ``None`` when in sync."""
    planned = _plan("drift")
    return planned[0] if planned else None
