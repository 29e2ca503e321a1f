"""Applying, rolling back and listing the migration histories: one aerich history per Tortoise app.

Each of datalayer's packs (``core``, ``agent``, ...) ships its history inside the package
(``datalayer._migrations/<pack>/``, the repository's ``migrations/<pack>/``); the app's own models keep
theirs in the app's project (``<migrations>/<label>/``, see ``datalayer.project``). ``upgrade`` applies the
packs first (in dependency order), then the app's. aerich's ``aerich`` table records each app's files by label.

Every database operation runs in its own task with a fresh ``TortoiseContext`` (aerich keeps state in class
attributes and a stale context breaks a second ``Command``), so it is safe beside an open ``DataContext``.
Creating migrations lives in ``datalayer.migration_writer``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from datalayer.config import CONNECTION_NAME, tortoise_config
from datalayer.connection import scrub
from datalayer.errors import ConfigurationError, DatabaseUnavailableError, DataLayerError
from datalayer.migration_files import downgrade_refusal, version_files
from datalayer.migration_lock import migration_lock
from datalayer.packs import bundled_folder
from datalayer.project import Project, load_project
from datalayer.settings import Settings
from datalayer.translate import translated

log = logging.getLogger("datalayer.migrations")
T = TypeVar("T")


def bundled_migrations() -> Path:
    """The folder holding the packs' histories (``migrations/<pack>/``)."""
    return bundled_folder("migrations")


@dataclass(frozen=True)
class History:
    """One Tortoise app's migration history."""

    label: str
    location: Path
    """aerich's ``location``: the files are in ``location / label``."""
    bundled: bool
    """A datalayer pack's history (shipped in the package; written only from datalayer's own repository)."""

    @property
    def folder(self) -> Path:
        return self.location / self.label

    def files(self) -> list[str]:
        return [p.name for p in version_files(self.folder)]


def histories(project: Project | None = None) -> list[History]:
    """Every loaded app's history, in the order ``upgrade`` applies them: the packs, then the app's own."""
    project = project or load_project()
    packs = bundled_migrations()
    found = [History(label, packs, True) for label in project.pack_labels]
    empty = [item.label for item in found if not item.files()]
    if empty:  # never "nothing to apply" on an incomplete installation
        raise ConfigurationError(f"datalayer's pack(s) {', '.join(empty)} have no migrations in {packs}; "
                                 "the installation is incomplete (reinstall datalayer)")
    if project.models:
        found.append(History(project.label, project.migrations_dir, False))
    return found


def history_of(label: str, project: Project | None = None) -> History:
    project = project or load_project()
    for item in histories(project):
        if item.label == label:
            return item
    raise ConfigurationError(f"no app {label!r} is loaded; loaded: {', '.join(project.labels())}")


def history(project: Project | None = None) -> list[str]:
    """Every migration file of every loaded app as ``label/file``, in upgrade order (applied or not)."""
    return [f"{item.label}/{name}" for item in histories(project) for name in item.files()]


async def _with_database(settings: Settings | None, project: Project | None,
                         action: Callable[[dict[str, Any], Project], Awaitable[T]], *, exclusive: bool = False) -> T:
    """Run ``action(config, project)`` in a task of its own, with Tortoise initialised on ``settings``.

    ``exclusive`` holds the database's migration lock meanwhile (``datalayer.migration_lock``).
    """
    from tortoise import Tortoise
    from tortoise.backends.base.executor import EXECUTOR_CACHE
    from tortoise.context import TortoiseContext

    settings = settings or Settings()
    project = project or load_project()
    project.importable()
    config = tortoise_config(settings, project, with_aerich=True)

    async def run() -> T:
        lock = migration_lock(settings) if exclusive else contextlib.nullcontext()
        async with lock, TortoiseContext():
            await Tortoise.init(config=config)
            try:
                return await action(config, project)
            finally:
                await Tortoise.close_connections()

    try:
        with translated("migration"):
            return await asyncio.get_running_loop().create_task(run())  # own task: own contextvars
    except DatabaseUnavailableError as exc:
        raise DatabaseUnavailableError(
            f"could not connect to {settings.target.describe()}: {scrub(str(exc), settings)}"
        ) from None
    finally:
        EXECUTOR_CACHE.clear()  # cached SQL is keyed by connection name, not dialect


async def _command(config: dict[str, Any], item: History) -> Any:
    from aerich import Command

    command = Command(tortoise_config=config, app=item.label, location=str(item.location))
    await command.init()
    return command


async def _naming_the_file(exc: Exception, item: History) -> BaseException:
    """``exc`` (a migration of ``item`` failed) as the library's error, its message naming the file that
    failed: the first of the app's files not recorded as applied (each file runs in its own transaction)."""
    try:
        done = {name for _, name in await _read_applied([item.label])}
    except Exception:  # noqa: BLE001 - the database may be gone: report the first error as it is
        return exc
    failing = next((name for name in item.files() if name not in done), None)
    if failing is None:
        return exc
    where = f"migration {item.label}/{failing}"
    try:
        with translated(where):
            raise exc
    except DataLayerError as known:
        if where not in str(known):
            known.args = (f"{where}: {known}",)
        return known
    except Exception as other:  # noqa: BLE001 - not the library's: as it was
        return other


async def _read_applied(labels: list[str]) -> list[tuple[str, str]]:
    """(app, file) rows of aerich's table for ``labels``, oldest first ([] when the table does not exist)."""
    from tortoise import Tortoise

    from datalayer.introspect import existing_tables

    connection = Tortoise.get_connection(CONNECTION_NAME)
    if "aerich" not in await existing_tables(connection):
        return []
    _, rows = await connection.execute_query("SELECT app, version FROM aerich ORDER BY id")
    return [(row["app"], row["version"]) for row in rows if row["app"] in labels]


async def upgrade(settings: Settings | None = None, project: Project | None = None, *,
                  require_app_history: bool = True) -> list[str]:
    """Apply every pending migration of every loaded app (packs first), each file in its own transaction.

    A database built by datalayer's earlier single history (app ``models``) is first brought to its last
    file and adopted into the per-pack histories, keeping every row (``datalayer.legacy_history``).

    Returns:
        The files applied, as ``label/file``.
    ``require_app_history=False`` lets an app whose models have no history yet through (their tables then
    come from ``generate_schemas``).

    Raises:
        ConfigurationError: the app's models have no migration history yet (``datalayer migrate init``).
        DatabaseUnavailableError: the database did not answer. A file that fails is rolled back whole.
    """
    from datalayer.legacy_history import adopt

    async def work(config: dict[str, Any], project: Project) -> list[str]:
        applied = await adopt()
        for item in histories(project):
            if not item.files():
                if not item.bundled and require_app_history:
                    raise ConfigurationError(
                        f"the app's models ({', '.join(project.models)}) have no migrations in {item.folder}; "
                        "run `datalayer migrate init` in the app's folder (or set DATALAYER_MIGRATIONS_DIR)")
                continue
            command = await _command(config, item)
            try:
                applied += [f"{item.label}/{name}" for name in await command.upgrade(run_in_transaction=True)]
            except Exception as exc:  # noqa: BLE001 - re-raised, translated, with the file's name
                raise await _naming_the_file(exc, item) from None
        return applied

    applied = await _with_database(settings, project, work, exclusive=True)
    if applied:
        log.info("migrations applied", extra={"migrations": applied})
    return applied


async def downgrade(version: int = -1, settings: Settings | None = None, *, app: str | None = None,
                    project: Project | None = None) -> list[str]:
    """Roll back migrations of one app: its migration ``version`` and every later one of that app.

    ``version=-1`` rolls back the last migration applied (of ``app``, or of any app when ``app`` is None).
    A pack's migration is rolled back only after the later migrations of other apps (that may refer to
    its tables) are; roll those back first.

    Returns:
        The files rolled back, as ``label/file``.
    Raises:
        DataLayerError: nothing to roll back, the version is not applied, or it is an app's initial migration
            (which cannot be undone: ``datalayer reset`` rebuilds the database).
        ConfigurationError: ``app`` is not loaded, or a version was given without ``app`` on several apps.
    """
    from aerich.exceptions import DowngradeError

    async def work(config: dict[str, Any], project: Project) -> list[str]:
        loaded = [item.label for item in histories(project)]
        label = app
        if label is None:
            if version != -1 and len(loaded) > 1:
                raise ConfigurationError(f"name the app whose migration {version} to roll back: "
                                         f"--app one of {', '.join(loaded)}")
            rows = await _read_applied(loaded)
            if not rows:
                raise DataLayerError("no migration is applied; nothing to roll back")
            label = rows[-1][0] if version == -1 else loaded[0]
        item = history_of(label, project)
        if version == 0:
            raise DataLayerError(f"cannot downgrade the initial migration of {label} (0); "
                                 "`datalayer reset` rebuilds the database")
        applied = [name for app_label, name in await _read_applied([label]) if app_label == label]
        undoing = applied[-1:] if version == -1 else [n for n in applied if int(n.split("_", 1)[0]) >= version]
        dialect = "postgres" if (settings or Settings()).target.is_postgres else "sqlite"
        for name in undoing:  # say which file cannot be undone, and why, before undoing any
            if reason := downgrade_refusal(item.folder / name, dialect):
                raise DataLayerError(reason)
        command = await _command(config, item)
        try:
            done = await command.downgrade(version, delete=False)
        except DowngradeError as exc:
            raise DataLayerError(f"cannot downgrade {label} to {version}: {exc} "
                                 "(an app's initial migration cannot be undone)") from None
        return [f"{label}/{name}" for name in done]

    rolled_back = await _with_database(settings, project, work, exclusive=True)
    log.info("migrations rolled back", extra={"migrations": rolled_back})
    return rolled_back


async def applied_migrations(settings: Settings | None = None, project: Project | None = None) -> list[str]:
    """The files aerich's table records for the loaded apps, as ``label/file``, oldest first.

    Reuses the open ``DataContext``'s connection when it is on these settings (health checks call this often).
    """
    from datalayer import context

    current = context._current
    if current is not None and not current.closed and (settings is None or settings is current.settings):
        project = project or current.project
        labels = [item.label for item in histories(project)]
        with translated("migration"):
            return [f"{label}/{name}" for label, name in await _read_applied(labels)]

    async def work(config: dict[str, Any], project: Project) -> list[str]:
        labels = [item.label for item in histories(project)]
        return [f"{label}/{name}" for label, name in await _read_applied(labels)]

    return await _with_database(settings, project, work)


async def pending_migrations(settings: Settings | None = None, project: Project | None = None) -> list[str]:
    """Migration files of the loaded apps not applied yet, as ``label/file``, in upgrade order."""
    from datalayer import context

    current = context._current
    if project is None and current is not None and not current.closed and settings in (None, current.settings):
        project = current.project  # the open context's apps (only when asking about its database)
    done = set(await applied_migrations(settings, project))
    return [name for name in history(project) if name not in done]
