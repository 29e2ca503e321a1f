"""Schema commands: ``migrate`` (create), ``upgrade``, ``downgrade``, ``history``, ``check-migrations``.

Each loaded app has its own history (datalayer's packs, then the app's own models); see ``datalayer.migrations``.
"""

from __future__ import annotations

from pathlib import Path

import typer
from rich.markup import escape
from rich.table import Table

from datalayer import migration_writer, migrations
from datalayer.cli.app import (
    Abort,
    command,
    console,
    current_project,
    fail,
    guard_production,
    load_settings,
    run,
    user_errors,
)
from datalayer.migration_files import downgrade_refusal
from datalayer.project import Project
from datalayer.settings import Settings

APP_HELP = "the app (Tortoise label) to work on; default: your own app (DATALAYER_MODELS)"


def _shown(path: Path) -> str:
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


@command("migrate")
def migrate_command(
    name: str = typer.Argument("update", help="what the migration does, e.g. add_user_bio"),
    empty: bool = typer.Option(False, "--empty", help="write an empty migration to fill in by hand"),
    app_label: str | None = typer.Option(None, "--app", help=APP_HELP),
) -> None:
    """Create your app's next migration from its model changes (aerich, both dialects). Needs no database."""
    project = current_project()
    with user_errors():
        path = migration_writer.make_migration(name, empty=empty, app=app_label, project=project)
    if path is None:
        console.print("No changes detected: the models match the migration history.")
    else:
        console.print(f"Created {_shown(path)}", markup=False, highlight=False)
        if empty:
            console.print("Write its SQL in UPGRADE and the SQL undoing it in DOWNGRADE, for both dialects.",
                          soft_wrap=True)


@command("check-migrations")
def check_migrations_command() -> None:
    """Exit 1 when a model changed and no migration records it (for CI, like makemigrations --check)."""
    project = current_project()
    with user_errors():
        drifted = migration_writer.check_migrations(project)
    if drifted:
        raise fail(f"the models of {', '.join(drifted)} changed but no migration records it; "
                   "run `datalayer migrate <name>`")
    console.print(f"Migrations are in sync with the models ({', '.join(project.labels())}).", markup=False)


@command("upgrade")
def upgrade_command() -> None:
    """Apply every pending migration of every loaded app (datalayer's packs first, then yours)."""
    settings = load_settings()
    project = current_project()
    with user_errors():
        migrations.history(project)  # refuses a broken history (two files numbered alike) before connecting
    applied = run(migrations.upgrade(settings, project))
    for name in applied:
        console.print(f"Applied {escape(name)}")
    console.print(f"{len(applied)} migration(s) applied to {settings.target.describe()}." if applied
                  else "Already up to date.", markup=False)


@command("downgrade")
def downgrade_command(
    version: int = typer.Option(-1, "--version", "-v", help="roll back this version and every later one of the "
                                                               "app; -1 = only the last"),
    app_label: str | None = typer.Option(None, "--app", help="the app to roll back; default: the one whose "
                                                                "migration was applied last"),
    yes_production: bool = typer.Option(False, "--yes-i-mean-production", help="allow this in production"),
) -> None:
    """Roll back the last migration, or every migration of --app from --version on (drops what they added)."""
    settings = load_settings()
    guard_production(settings.is_production, yes_production, "downgrade the database (it drops columns and tables)")
    project = current_project()
    with user_errors():
        migrations.history(project)  # refuses a broken history (two files numbered alike) before connecting
    rolled_back = run(_downgrade(settings, project, version, app_label))
    for name in rolled_back:
        console.print(f"Rolled back {escape(name)}")


async def _downgrade(settings: Settings, project: Project, version: int, app_label: str | None) -> list[str]:
    """Check every file the downgrade would roll back before touching anything, then roll them back."""
    applied = await migrations.applied_migrations(settings, project)
    dialect = "postgres" if settings.target.is_postgres else "sqlite"
    for path in _files_to_roll_back(applied, version, app_label, project):
        problem = downgrade_refusal(path, dialect)
        if problem:
            raise Abort(f"cannot downgrade: {problem}")
    return await migrations.downgrade(version, settings, app=app_label, project=project)


def _files_to_roll_back(applied: list[str], version: int, app_label: str | None, project: Project) -> list[Path]:
    """The files ``migrations.downgrade`` rolls back, newest first, as aerich picks them ([] if it will refuse)."""
    rows = [name.split("/", 1) for name in applied]
    label = app_label
    if label is None:
        if version == -1 and rows:
            label = rows[-1][0]
        elif len(project.labels()) == 1:
            label = project.labels()[0]
        else:
            return []  # migrations.downgrade explains what is missing
    files = [file for app, file in rows if app == label]
    if version != -1:
        first = next((i for i, file in enumerate(files) if file.split("_", 1)[0] == str(version)), None)
        files = [] if first is None else files[first:]
    files = files[-1:] if version == -1 else files
    if not files or label not in project.labels():
        return []
    folder = migrations.history_of(label, project).folder
    return [folder / file for file in reversed(files)]


@command("history")
def history_command() -> None:
    """Every migration file of every loaded app and whether the database has it."""
    settings = load_settings()
    project = current_project()
    with user_errors():
        files = migrations.history(project)  # first: a broken history (two files numbered alike) is refused
    applied = set(run(migrations.applied_migrations(settings, project)))
    table = Table("app", "migration", "state", title=f"Migrations of {escape(settings.target.describe())}")
    for name in files:
        label, file = name.split("/", 1)
        table.add_row(escape(label), escape(file), "applied" if name in applied else "[yellow]pending[/yellow]")
    console.print(table)
