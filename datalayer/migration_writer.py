"""``datalayer migrate``: writing the next migration file of one app, for both dialects.

aerich diffs the app's models against its last file, one dialect at a time, offline, in a child process per
dialect (it keeps the diff in class attributes). The two answers are merged into one file
(``datalayer.migration_files``). Two of aerich's gaps with several apps are closed in the child:

- an app's *first* file: aerich's ``init`` writes ``CREATE TABLE`` for every model on the connection, every
  app's (tortoise/aerich#436); here it gets the tables of its own app only;
- a foreign key to another app's model (``"core.User"``): aerich looks the target up among the app's own
  models only and fails with "cyclic fk references" or a ``KeyError``; here it also sees the other apps.

Run as ``python -m datalayer.migration_writer DIALECT LOCATION LABEL NAME`` (internal: the child process).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
import shutil
import subprocess
import sys
import tempfile
from datetime import datetime
from pathlib import Path
from typing import Any

from datalayer.errors import ConfigurationError, DataLayerError
from datalayer.migration_files import (
    DIALECTS,
    EMPTY_DOWNGRADE,
    EMPTY_UPGRADE,
    load_module,
    merge,
    render,
    version_files,
)

log = logging.getLogger("datalayer.migrations")

# Never contacted: offline generation needs only the dialect of the URL.
_OFFLINE_URLS = {"postgres": "postgres://postgres@127.0.0.1:1/offline", "sqlite": "sqlite://:memory:"}

#: what ``datalayer migrate`` writes for SQLite when aerich cannot (it fails loudly until replaced by hand)
#: the longest migration name ``datalayer migrate`` takes (file names must stay well under 255 bytes)
MAX_NAME_LENGTH = 100

SQLITE_BY_HAND = 'SELECT * FROM "aerich cannot alter this column on SQLite: write this SQL by hand (see README)"'


# -- the child process ----------------------------------------------------------------------------------


def current_live_unique_indexes(label: str) -> tuple[str, ...]:
    """The live-unique index statements app ``label``'s models declare (call with Tortoise initialised)."""
    from tortoise import Tortoise

    from datalayer.schema import live_unique_sql

    models = sorted(Tortoise.apps[label].values(), key=lambda m: m._meta.db_table)
    return tuple(statement for model in models for statement in live_unique_sql(model))


def app_schema_sql(connection: Any, label: str, safe: bool = True) -> str:
    """``CREATE TABLE`` statements of app ``label``'s models only, each after the tables it refers to."""
    from tortoise import Tortoise

    generator = connection.schema_generator(connection)
    own = [model for model in Tortoise.apps[label].values() if model._meta.db == connection]
    others = {model._meta.db_table for model in Tortoise.apps.get_models_iterable()} - {m._meta.db_table for m in own}
    tables = [generator._get_table_sql(model, safe) for model in own]
    created, ordered, m2m = set(others), [], []
    while tables:
        ready = next((t for t in tables if t["references"] <= created | {t["table"]}), None)
        if ready is None:
            raise DataLayerError(f"app {label}: cyclic foreign keys between its tables")
        tables.remove(ready)
        created.add(ready["table"])
        ordered.append(ready["table_creation_string"])
        m2m += ready["m2m_tables"]
    return "\n".join(ordered + m2m)


class _SeesOtherApps(dict):
    """A model-state dict that also answers for other apps' models (for foreign keys across apps)."""

    def __missing__(self, key: str) -> dict[str, Any]:
        from tortoise import Tortoise

        app, _, name = key.partition(".")
        if app in Tortoise.apps and name in Tortoise.apps[app]:
            return Tortoise.apps[app][name].describe()
        raise KeyError(key)


def _teach_aerich_other_apps(label: str) -> None:
    """Close aerich's cross-app gaps (see the module docstring) for this process, which writes app ``label``."""
    import aerich
    from aerich.migrate import Migrate
    from tortoise import Tortoise

    # aerich's own functions, patched in this child process only (the module docstring says why)
    aerich.get_schema_sql = lambda client, safe: app_schema_sql(client, label, safe)
    diff_models = Migrate.diff_models.__func__  # type: ignore[attr-defined]
    add_models = Migrate._handle_add_models.__func__  # type: ignore[attr-defined]

    def diff_across_apps(cls: Any, old: dict, new: dict, upgrade: bool = True, no_input: bool = False) -> None:
        diff_models(cls, _SeesOtherApps(old), _SeesOtherApps(new), upgrade, no_input)

    def add_after_other_apps(cls: Any, upgrade: bool, new_models: dict, new_items: list, other_items: Any = None) -> None:
        apps: Any = Tortoise.apps
        elsewhere: list[tuple[str, dict[str, Any], None]] = [
            (f"{app}.{name}", {}, None) for app in apps if app != label for name in apps[app]]
        add_models(cls, upgrade, new_models, new_items, [*(other_items or []), *elsewhere])

    Migrate.diff_models = classmethod(diff_across_apps)  # type: ignore[method-assign,assignment]
    Migrate._handle_add_models = classmethod(add_after_other_apps)  # type: ignore[method-assign,assignment]


async def _refuse_collisions(config: dict[str, Any]) -> None:
    """No migration for an app model that takes a pack's table or manager name (it would be a silent no-op)."""
    from tortoise.context import TortoiseContext

    from datalayer.context import check_collisions

    async with TortoiseContext() as context:  # a context of its own: aerich's comes after, untouched
        await context.init(config=config)
        apps: Any = context.apps
        check_collisions([m for m in apps.get_models_iterable() if not m.__module__.startswith("aerich")])


async def _generate(dialect: str, location: Path, label: str, name: str) -> dict[str, Any]:
    """In a child process: let aerich (offline) write app ``label``'s next file for one dialect."""
    from aerich import Command
    from tortoise.context import TortoiseContext

    from datalayer.config import tortoise_config
    from datalayer.project import load_project
    from datalayer.settings import Settings

    project = load_project()
    project.importable()
    settings = Settings(DATABASE_URL=_OFFLINE_URLS[dialect], DATALAYER_ENV="development", _env_file=None)
    config = tortoise_config(settings, project, with_aerich=True)
    if label not in config["apps"]:
        raise ConfigurationError(f"no app {label!r} is loaded; loaded: {', '.join(config['apps'])}")
    _teach_aerich_other_apps(label)
    folder = location / label
    before = {p.name for p in version_files(folder)}
    await _refuse_collisions(config)
    async with TortoiseContext():
        command = Command(tortoise_config=config, app=label, location=str(location))
        command._init_when_aenter = False
        try:
            if not before:
                await command.init_migrations(safe=True)
            else:
                await command.init(offline=True)
                await command.migrate(name, no_input=True, offline=True)
            indexes = current_live_unique_indexes(label)
        finally:
            await command.aclose()
    new = [p for p in version_files(folder) if p.name not in before]
    if not new:
        return {"file": None, "live_unique_indexes": list(indexes)}
    module = load_module(new[0])
    return {
        "file": new[0].name,
        "upgrade": await module.upgrade(None),
        "downgrade": await module.downgrade(None),
        "models_state": module.MODELS_STATE,
        "live_unique_indexes": list(indexes),
    }


def main(argv: list[str]) -> None:
    dialect, location, label, name = argv
    result = asyncio.run(_generate(dialect, Path(location), label, name))
    sys.stdout.write("\n" + json.dumps(result))


# -- the parent: planning and writing a file -------------------------------------------------------------

_ADD_FK = re.compile(r'ALTER TABLE "(?P<table>[^"]+)" ADD CONSTRAINT "[^"]+" FOREIGN KEY \("(?P<column>[^"]+)"\) '
                     r'(?P<reference>REFERENCES .+?);?$')
_DROP_FK = re.compile(r'ALTER TABLE "[^"]+" DROP FOREIGN KEY "[^"]+";?$')


def sqlite_foreign_keys(sql: str) -> str:
    """Rewrite aerich's MySQL-style foreign-key statements into SQLite's form.

    SQLite cannot ``ADD CONSTRAINT`` or ``DROP FOREIGN KEY``: a foreign key added with its column becomes a
    ``REFERENCES`` clause of that ``ADD`` column, and dropping it is left to the ``DROP COLUMN`` that drops the
    column. A foreign key on a column that already exists needs a table rebuild, written by hand.
    """
    statements = [s.strip() for s in sql.strip().split(";\n") if s.strip()]
    kept: list[str] = []
    for statement in statements:
        added = _ADD_FK.match(statement)
        if added:
            column = f'ALTER TABLE "{added["table"]}" ADD "{added["column"]}" '
            target = next((i for i, s in enumerate(kept) if s.startswith(column)), None)
            if target is None:
                kept.append(SQLITE_BY_HAND)
            else:
                kept[target] = f"{kept[target].rstrip(';')} {added['reference'].rstrip(';')}"
        elif not _DROP_FK.match(statement):
            kept.append(statement)
    return ";\n".join(s.rstrip(";") for s in kept) + (";" if kept else "")



def _run_writer(dialect: str, location: Path, label: str, name: str, project: Any) -> dict[str, Any]:
    """Ask aerich (offline, in a child process) what changed in app ``label``, for one dialect."""
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "DB_NAME")}
    env.update(DATALAYER_MODELS=",".join(project.models), DATALAYER_APPS=",".join(project.pack_labels),
               DATALAYER_APP_LABEL=project.label, DATALAYER_SRC=str(project.src))
    if project.configured_in:
        env["DATALAYER_PROJECT"] = str(project.configured_in)
    done = subprocess.run(
        [sys.executable, "-m", "datalayer.migration_writer", dialect, str(location), label, name],
        capture_output=True, text=True, env=env, cwd=str(project.root),
    )
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["aerich failed"])[-1]
        hint = " (aerich cannot alter column types, defaults or NULL on SQLite; see README)" if dialect == "sqlite" else ""
        raise DataLayerError(f"generating the {dialect} migration of {label} failed: {last}{hint}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def _plan(label: str, name: str, project: Any) -> tuple[str, str] | None:
    """(file name, text) of the migration app ``label`` needs now, or ``None`` when it matches its history."""
    from datalayer.migrations import history_of

    folder = history_of(label, project).folder
    previous_files = version_files(folder)
    previous = load_module(previous_files[-1]) if previous_files else None
    number = int(previous_files[-1].stem.split("_", 1)[0]) + 1 if previous_files else 0
    fallback = f"{number}_{datetime.now():%Y%m%d%H%M%S}_{name}.py"
    with tempfile.TemporaryDirectory(prefix="datalayer-migrate-") as tmp:
        results = {}
        for dialect in DIALECTS:
            location = Path(tmp, dialect)
            (location / label).mkdir(parents=True)
            for path in previous_files:
                shutil.copy(path, location / label / path.name)
            try:
                results[dialect] = _run_writer(dialect, location, label, name, project)
            except DataLayerError as exc:
                if dialect != "sqlite" or "NotSupportError" not in str(exc):
                    raise
                log.warning("aerich cannot express this change on SQLite; the file's SQLite SQL must be written by hand")
                results[dialect] = {**results["postgres"], "upgrade": SQLITE_BY_HAND, "downgrade": SQLITE_BY_HAND}
    for key in ("upgrade", "downgrade"):
        if key in results["sqlite"]:
            results["sqlite"][key] = sqlite_foreign_keys(results["sqlite"][key])
    return merge(results, previous, fallback)


def _app_to_write(app: str | None, project: Any) -> str:
    """The app ``migrate`` writes for: ``app``, else the project's own app; never a pack from an install."""
    from datalayer.migrations import history_of

    label = app or (project.label if project.models else None)
    if label is None:
        raise ConfigurationError(
            "no app models are configured: set DATALAYER_MODELS (or [tool.datalayer] models, `datalayer init`), "
            "or name a pack with --app when working on datalayer itself"
        )
    item = history_of(label, project)
    if item.bundled and {"site-packages", "dist-packages"} & set(item.folder.parts):
        raise ConfigurationError(f"{label} is a datalayer pack; its migrations ship with datalayer and are not "
                                 "written from an installed copy. Put your models in your own app (DATALAYER_MODELS)")
    return label


def make_migration(name: str = "update", *, empty: bool = False, app: str | None = None,
                   project: Any = None) -> Path | None:
    """Write app ``app``'s next migration file (default: the project's own app); ``None`` when nothing changed.

    ``empty=True`` writes a file to fill in by hand (data migrations, SQLite table rebuilds): its UPGRADE and
    DOWNGRADE are a no-op statement (``EMPTY_UPGRADE``, ``EMPTY_DOWNGRADE``) under a comment saying what to
    write, so it applies and rolls back on both engines as it is.

    Raises:
        ConfigurationError: a bad name (not letters, digits and underscores, or longer than
            ``MAX_NAME_LENGTH``), no app models configured, or a pack of an installed datalayer.
        DataLayerError: aerich could not express the change (the message says why).
    """
    from datalayer.migrations import history_of
    from datalayer.project import load_project

    project = project or load_project()
    if len(name.encode("utf-8")) > MAX_NAME_LENGTH:  # checked first: the other message would quote it all
        raise ConfigurationError(f"migration name is too long ({len(name)} characters); keep it to "
                                 f"{MAX_NAME_LENGTH} or fewer (it becomes part of the file name), e.g. add_user_bio")
    if not name.replace("_", "").isalnum():
        raise ConfigurationError(f"migration name {name!r} must be letters, digits and underscores")
    label = _app_to_write(app, project)
    folder = history_of(label, project).folder
    folder.mkdir(parents=True, exist_ok=True)
    if empty:
        files = version_files(folder)
        if not files:
            raise ConfigurationError("the first migration cannot be empty; run `datalayer migrate` without --empty")
        last = load_module(files[-1])
        number = int(files[-1].stem.split("_", 1)[0]) + 1
        planned: tuple[str, str] | None = (f"{number}_{datetime.now():%Y%m%d%H%M%S}_{name}.py",
                   render(dict.fromkeys(DIALECTS, EMPTY_UPGRADE), dict.fromkeys(DIALECTS, EMPTY_DOWNGRADE),
                          tuple(last.LIVE_UNIQUE_INDEXES), last.MODELS_STATE))
    else:
        planned = _plan(label, name, project)
    if planned is None:
        return None
    path = folder / planned[0]
    path.write_text(planned[1], encoding="utf-8")
    return path


def check_migrations(project: Any = None, apps: list[str] | None = None) -> list[str]:
    """The drift check: the apps whose models changed with no migration recording it ([] when in sync).

    Checks every loaded app with a history (or ``apps``), datalayer's packs included.
    """
    from datalayer.migrations import histories
    from datalayer.project import load_project

    project = project or load_project()
    drifted = []
    for item in histories(project):
        if (apps is None or item.label in apps) and (item.files() or not item.bundled):
            if _plan(item.label, "drift", project) is not None:
                drifted.append(item.label)
    return drifted


if __name__ == "__main__":
    main(sys.argv[1:])
